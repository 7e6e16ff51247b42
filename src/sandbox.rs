//! Sandboxes: entering namespaces, spawning and supervising processes, and the files a
//! sandbox sees as /etc/hosts, /etc/resolv.conf and /etc/hostname.
//!
//! A container's first process is started by a small *shim* (`berth shim DIR`), a child of
//! the daemon that waits for the process and records its exit status in DIR/exit. The shim
//! keeps containers (and their exit codes) alive across a daemon crash or restart; the
//! daemon re-adopts them through pidfds.

use std::ffi::CString;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use serde::{Deserialize, Serialize};

/// Everything needed to start a process inside a sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    /// Network namespace to join; `None` keeps the caller's (host network).
    pub netns: Option<PathBuf>,
    /// UTS namespace to join instead of creating one (exec, and `container:` mode).
    pub join_uts: Option<PathBuf>,
    /// Mount namespace to join instead of creating one (exec).
    pub join_mnt: Option<PathBuf>,
    /// A new UTS namespace with this hostname (ignored when `join_uts` is set).
    pub hostname: Option<String>,
    /// Files bind-mounted over their targets in a private mount namespace, e.g.
    /// (DIR/hosts, /etc/hosts).
    pub binds: Vec<(PathBuf, PathBuf)>,
    /// Make stdin the controlling terminal (it is a pty slave).
    pub tty: bool,
    /// For a container's first process: its output goes through the shim to DIR/log with
    /// these limits (`None`: the stdio the shim was given).
    #[serde(default)]
    pub log: Option<crate::logs::LogOptions>,
    /// A PID namespace to nest the container's own in (`container:NAME` sandboxes).
    #[serde(default)]
    pub join_pid: Option<PathBuf>,
}

/// Resolves the program the way execvp would, in the sandbox's PATH, so a missing command is
/// reported before anything is started (Docker: exit status 127).
pub fn find_program(cmd: &str, env: &[String]) -> Option<PathBuf> {
    if cmd.contains('/') {
        return Path::new(cmd).exists().then(|| PathBuf::from(cmd));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    path.split(':')
        .map(|d| Path::new(d).join(cmd))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Builds the command; the namespace work happens in the child between fork and exec,
/// where only async-signal-safe system calls run (all fds are opened before the fork).
pub fn command(spec: &Spec) -> std::io::Result<Command> {
    let program = find_program(&spec.cmd[0], &spec.env).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "exec: \"{}\": executable file not found in $PATH",
                spec.cmd[0]
            ),
        )
    })?;
    let open = |p: &Option<PathBuf>| -> std::io::Result<Option<OwnedFd>> {
        p.as_ref()
            .map(|p| std::fs::File::open(p).map(OwnedFd::from))
            .transpose()
    };
    let netns = open(&spec.netns)?;
    let uts = open(&spec.join_uts)?;
    let mnt = open(&spec.join_mnt)?;
    let hostname = spec.hostname.clone();
    let binds: Vec<(CString, CString)> = spec
        .binds
        .iter()
        .filter(|(_, dst)| dst.exists())
        .map(|(s, d)| (cstr(s), cstr(d)))
        .collect();
    let cwd = cstr(Path::new(if spec.cwd.is_empty() { "/" } else { &spec.cwd }));
    let tty = spec.tty;

    let mut cmd = Command::new(program);
    cmd.arg0(&spec.cmd[0]).args(&spec.cmd[1..]).env_clear();
    for e in &spec.env {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    // SAFETY: the closure only makes raw system calls (setns, unshare, mount, sethostname,
    // setsid, ioctl, chdir) on values prepared before the fork; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let err = |e: nix::Error| std::io::Error::from_raw_os_error(e as i32);
            if let Some(fd) = &netns {
                setns(fd.as_fd(), CloneFlags::CLONE_NEWNET).map_err(err)?;
            }
            match &uts {
                Some(fd) => setns(fd.as_fd(), CloneFlags::CLONE_NEWUTS).map_err(err)?,
                None if hostname.is_some() => unshare(CloneFlags::CLONE_NEWUTS).map_err(err)?,
                None => {}
            }
            if let Some(h) = &hostname {
                if uts.is_none() {
                    nix::unistd::sethostname(h).map_err(err)?;
                }
            }
            match &mnt {
                Some(fd) => setns(fd.as_fd(), CloneFlags::CLONE_NEWNS).map_err(err)?,
                None => {
                    unshare(CloneFlags::CLONE_NEWNS).map_err(err)?;
                    // Private first, so the bind mounts below never propagate to the host.
                    mount(
                        None::<&str>,
                        "/",
                        None::<&str>,
                        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                        None::<&str>,
                    )
                    .map_err(err)?;
                    for (src, dst) in &binds {
                        mount(
                            Some(src.as_c_str()),
                            dst.as_c_str(),
                            None::<&str>,
                            MsFlags::MS_BIND,
                            None::<&str>,
                        )
                        .map_err(err)?;
                    }
                }
            }
            // Nothing but stdio crosses into the sandbox (close_range is a plain syscall).
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            nix::unistd::setsid().map_err(err)?;
            if tty && libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::chdir(cwd.as_ptr()) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(cmd)
}

fn cstr(p: &Path) -> CString {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

/// Closes every descriptor above stderr except `keep`: whatever another thread of the
/// daemon had open (without close-on-exec) while this process was spawned.
pub(crate) fn close_stray_fds(keep: &[RawFd]) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<RawFd> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .filter(|fd| *fd > 2 && !keep.contains(fd))
        .collect();
    for fd in fds {
        // SAFETY: closing descriptors this fresh process inherited and does not use.
        unsafe { libc::close(fd) };
    }
}

/// Exit status in Docker's convention: the code, or 128 + signal number.
pub fn exit_code(status: std::process::ExitStatus) -> i64 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c as i64,
        (None, Some(s)) => 128 + s as i64,
        _ => 255,
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ExitRecord {
    pub code: i64,
    pub finished_at: chrono::DateTime<chrono::Utc>,
}

pub const SPEC_FILE: &str = "spec.json";
pub const EXIT_FILE: &str = "exit";

pub fn read_exit(dir: &Path) -> Option<ExitRecord> {
    serde_json::from_slice(&std::fs::read(dir.join(EXIT_FILE)).ok()?).ok()
}

/// `starttime` (field 22 of /proc/PID/stat): with the PID it names one process for good.
pub fn proc_start_time(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it follow the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

pub fn alive(pid: u32, start: u64) -> bool {
    pid != 0 && proc_start_time(pid) == Some(start) && !is_zombie(pid)
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .unwrap_or(true)
}

pub fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: plain system call; a non-negative return is a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.cast_signed(), 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd)
        .map_err(|_| std::io::Error::other("pidfd_open: descriptor out of range"))?;
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Resolves when the process behind the pidfd has exited (works for non-children, which is
/// what re-adopted containers are).
pub async fn wait_pidfd(fd: OwnedFd) -> std::io::Result<()> {
    // SAFETY: the AsyncFd owns the pidfd for its whole registration; nothing else
    // closes or reuses that descriptor while it is registered.
    let afd = unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)?;
    let _ = afd.readable().await?;
    Ok(())
}

pub fn pidfd_signal(pid: u32, start: u64, sig: i32) -> std::io::Result<()> {
    let fd = pidfd_open(pid)?;
    // The pidfd pins the process, so this check cannot race with PID reuse.
    if proc_start_time(pid) != Some(start) {
        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
    }
    // SAFETY: plain system call on a pidfd we own.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// /etc/hosts of a sandbox: Docker's localhost lines, `--add-host` entries, then the
/// sandbox's own addresses with its hostname.
pub fn hosts_file(hostname: &str, own: &[IpAddr], extra: &[(String, IpAddr)]) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for (name, ip) in extra {
        s.push_str(&format!("{ip}\t{name}\n"));
    }
    for ip in own {
        s.push_str(&format!("{ip}\t{hostname}\n"));
    }
    s
}

/// /etc/resolv.conf of a sandbox, from the host's: nameservers on loopback cannot be
/// reached from another namespace, so they are dropped (Docker falls back to public
/// resolvers then); `--dns`, `--dns-search` and `--dns-option` replace the host's values.
pub fn resolv_conf(host: &str, dns: &[IpAddr], search: &[String], options: &[String]) -> String {
    let mut ns: Vec<String> = Vec::new();
    let mut host_search = Vec::new();
    let mut host_opts = Vec::new();
    for line in host.lines() {
        let mut it = line.split_whitespace();
        match it.next() {
            Some("nameserver") => {
                if let Some(ip) = it.next().and_then(|s| s.parse::<IpAddr>().ok()) {
                    if !ip.is_loopback() {
                        ns.push(ip.to_string());
                    }
                }
            }
            Some("search") | Some("domain") => host_search = it.map(String::from).collect(),
            Some("options") => host_opts.extend(it.map(String::from)),
            _ => {}
        }
    }
    if !dns.is_empty() {
        ns = dns.iter().map(|d| d.to_string()).collect();
    } else if ns.is_empty() {
        ns = vec!["8.8.8.8".into(), "8.8.4.4".into()];
    }
    let search = if search.is_empty() {
        host_search
    } else {
        search.to_vec()
    };
    let opts = if options.is_empty() {
        host_opts
    } else {
        options.to_vec()
    };
    let mut s = String::new();
    for n in ns {
        s.push_str(&format!("nameserver {n}\n"));
    }
    if !search.is_empty() {
        s.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !opts.is_empty() {
        s.push_str(&format!("options {}\n", opts.join(" ")));
    }
    s
}

/// Opens a pseudo-terminal pair: the slave becomes the sandbox's stdio and controlling
/// terminal, the master goes to the client that relays its own terminal.
pub fn open_pty() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let p = nix::pty::openpty(None, None).map_err(std::io::Error::from)?;
    Ok((p.master, p.slave))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_drops_loopback_and_keeps_search() {
        let host = "# comment\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch corp.example\noptions edns0\n";
        assert_eq!(
            resolv_conf(host, &[], &[], &[]),
            "nameserver 10.0.0.2\nsearch corp.example\noptions edns0\n"
        );
    }

    #[test]
    fn resolv_conf_falls_back_to_public_resolvers() {
        let out = resolv_conf("nameserver 127.0.0.53\n", &[], &[], &[]);
        assert_eq!(out, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }

    #[test]
    fn resolv_conf_overrides() {
        let out = resolv_conf(
            "nameserver 10.0.0.2\nsearch a\n",
            &["1.1.1.1".parse().unwrap()],
            &["b.example".into()],
            &["ndots:2".into()],
        );
        assert_eq!(
            out,
            "nameserver 1.1.1.1\nsearch b.example\noptions ndots:2\n"
        );
    }

    #[test]
    fn hosts_file_layout() {
        let h = hosts_file(
            "abc123",
            &["172.17.0.2".parse().unwrap()],
            &[("db".into(), "10.0.0.9".parse().unwrap())],
        );
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("10.0.0.9\tdb\n172.17.0.2\tabc123\n"));
    }

    #[test]
    fn program_lookup_uses_sandbox_path() {
        assert!(find_program("sh", &[]).is_some());
        assert!(find_program("definitely-not-a-command-xyz", &[]).is_none());
        assert!(find_program("sh", &["PATH=/nonexistent".into()]).is_none());
    }

    #[test]
    fn start_time_of_self() {
        let me = std::process::id();
        assert!(proc_start_time(me).is_some());
        assert!(alive(me, proc_start_time(me).unwrap()));
        assert!(!alive(me, 1));
    }
}
