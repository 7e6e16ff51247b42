//! The shim (`berth shim DIR`): started by the daemon for each container, it outlives daemon
//! restarts, owns the container's PID namespace and its log, and records the exit status.
//!
//! ```text
//! shim ─ init (PID 1 of a new PID namespace; reaps orphans) ─ the container's process
//! ```
//! The container's process is not PID 1, so it keeps the default signal dispositions:
//! `stop`'s SIGTERM ends a `sleep` at once, as it would outside a container. When it exits,
//! init exits with its status, and the kernel kills everything else in the namespace:
//! whatever the process started (`sh -c 'sleep 777 & sleep 778'`), and what `exec` started
//! there. `container:NAME` sandboxes get a PID namespace nested in NAME's (through a middle
//! process, since a process that entered a PID namespace cannot create one itself): they
//! see NAME's processes, and die with NAME, as docker's `--pid container:` does.
//!
//! Detached output goes through a pipe that the shim copies to DIR/log with rotation
//! (`max-size`, `max-file`, as docker's json-file driver), so a chatty container cannot
//! fill the disk, and nothing writes to a removed log once the container is gone.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use crate::sandbox::{self, ExitRecord, Spec, EXIT_FILE, SPEC_FILE};

/// The shim's main: started by the daemon with the container's stdio as its own and a sync
/// pipe on `sync_fd`; it reports "ok PID" (the container process's PID in the daemon's
/// namespace) or "err MESSAGE" there, then copies the log, waits, and writes DIR/exit.
pub fn shim_main(sync_fd: RawFd, dir: &Path) -> ! {
    sandbox::close_stray_fds(&[sync_fd]);
    // SAFETY: the daemon passed this descriptor to exactly this process.
    let mut sync = unsafe { std::fs::File::from_raw_fd(sync_fd) };
    let _ = nix::fcntl::fcntl(
        &sync,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    let started = match start(dir) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(sync, "err {e}");
            std::process::exit(1);
        }
    };
    let _ = writeln!(sync, "ok {}", started.pid);
    drop(sync);
    // Only the container should hold the caller's terminal or pipes from now on.
    null_stdio();
    if let Some((r, opts)) = started.log {
        copy_log(r, dir, opts);
    }
    let code = wait_code(started.top);
    let rec = ExitRecord {
        code,
        finished_at: chrono::Utc::now(),
    };
    let tmp = dir.join("exit.tmp");
    if std::fs::write(&tmp, serde_json::to_vec(&rec).unwrap_or_default()).is_ok() {
        let _ = std::fs::rename(&tmp, dir.join(EXIT_FILE));
    }
    std::process::exit(0)
}

struct Started {
    /// The shim's own child: init, or the middle process of a nested namespace.
    top: Pid,
    /// The container's process, as the daemon sees it.
    pid: u32,
    log: Option<(OwnedFd, crate::logs::LogOptions)>,
}

fn io(e: nix::Error) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

fn start(dir: &Path) -> std::io::Result<Started> {
    let spec: Spec = serde_json::from_slice(&std::fs::read(dir.join(SPEC_FILE))?)?;
    let _ = nix::unistd::setsid();
    let log = match &spec.log {
        Some(opts) => {
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io)?;
            Some((r, w, *opts))
        }
        None => None,
    };
    let (report_r, report_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io)?;
    let (go_r, go_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io)?;
    let join = spec
        .join_pid
        .as_ref()
        .map(std::fs::File::open)
        .transpose()?;
    let log_w = log.as_ref().map(|(_, w, _)| w.as_raw_fd());
    let mut parent_only = vec![report_r.as_raw_fd(), go_w.as_raw_fd()];
    parent_only.extend(log.as_ref().map(|(r, _, _)| r.as_raw_fd()));
    let init_fds = InitFds {
        log_w,
        report_w: report_w.as_raw_fd(),
        go_r: go_r.as_raw_fd(),
        parent_only,
    };
    // The shim is single-threaded, so the children below may run ordinary Rust code.
    let top = match &join {
        Some(ns) => {
            setns(ns.as_fd(), CloneFlags::CLONE_NEWPID).map_err(io)?;
            // SAFETY: single-threaded process.
            match unsafe { fork() }.map_err(io)? {
                ForkResult::Child => middle(&spec, &init_fds),
                ForkResult::Parent { child } => child,
            }
        }
        None => {
            unshare(CloneFlags::CLONE_NEWPID).map_err(io)?;
            fork_init(&spec, &init_fds)?
        }
    };
    drop(report_w);
    drop(go_r);
    let log = log.map(|(r, w, opts)| {
        drop(w);
        (r, opts)
    });
    let mut line = String::new();
    let _ = std::fs::File::from(report_r).read_to_string(&mut line);
    let line = line.trim();
    if let Some(msg) = line.strip_prefix("err ") {
        let _ = waitpid(top, None);
        return Err(std::io::Error::other(msg.to_string()));
    }
    if line != "ok" {
        let _ = waitpid(top, None);
        return Err(std::io::Error::other("the container's init died"));
    }
    // The process is init's child and is not reaped before `go`: its PID can be read.
    let init = if join.is_some() {
        only_child(top.as_raw().cast_unsigned())
    } else {
        Some(top.as_raw().cast_unsigned())
    };
    let pid = init.and_then(only_child).unwrap_or(0);
    let _ = std::fs::File::from(go_w).write_all(b"g");
    Ok(Started { top, pid, log })
}

struct InitFds {
    log_w: Option<RawFd>,
    report_w: RawFd,
    go_r: RawFd,
    /// The shim's ends of the pipes: a child holding `go`'s write end would wait for itself.
    parent_only: Vec<RawFd>,
}

impl InitFds {
    fn close_parent_ends(&self) {
        for fd in &self.parent_only {
            // SAFETY: inherited copies of the shim's pipe ends, unused in this process.
            unsafe { libc::close(*fd) };
        }
    }
}

fn fork_init(spec: &Spec, fds: &InitFds) -> std::io::Result<Pid> {
    // SAFETY: called in a single-threaded process (the shim, or the middle process).
    match unsafe { fork() }.map_err(io)? {
        ForkResult::Child => init(spec, fds),
        ForkResult::Parent { child } => Ok(child),
    }
}

/// In the joined namespace: makes the nested one, forks init into it, and ends as init does.
fn middle(spec: &Spec, fds: &InitFds) -> ! {
    fds.close_parent_ends();
    let fail = |e: std::io::Error| -> ! {
        // SAFETY: the descriptor is the report pipe, inherited from the shim.
        let mut w = unsafe { std::fs::File::from_raw_fd(fds.report_w) };
        let _ = writeln!(w, "err {e}");
        std::process::exit(127)
    };
    if let Err(e) = unshare(CloneFlags::CLONE_NEWPID) {
        fail(io(e));
    }
    match fork_init(spec, fds) {
        Ok(init) => {
            // SAFETY: closing inherited pipe ends this process does not use.
            unsafe {
                libc::close(fds.report_w);
                libc::close(fds.go_r);
                if let Some(w) = fds.log_w {
                    libc::close(w);
                }
            }
            null_stdio();
            std::process::exit(i32::try_from(wait_code(init)).unwrap_or(255))
        }
        Err(e) => fail(e),
    }
}

/// PID 1 of the container's namespace: starts the process, reaps every orphan, and ends
/// with the process's status (the kernel then kills what is left in the namespace).
fn init(spec: &Spec, fds: &InitFds) -> ! {
    fds.close_parent_ends();
    // SAFETY: these descriptors were inherited from the shim and are owned here.
    let mut report = unsafe { std::fs::File::from_raw_fd(fds.report_w) };
    // SAFETY: as above; nothing else in this process refers to the descriptor.
    let go = unsafe { std::fs::File::from_raw_fd(fds.go_r) };
    if let Some(w) = fds.log_w {
        // SAFETY: plain dup2 onto our own stdout and stderr.
        unsafe {
            libc::dup2(w, 1);
            libc::dup2(w, 2);
            libc::close(w);
        }
    }
    let child = sandbox::command(spec).and_then(|mut cmd| {
        cmd.stdin(std::process::Stdio::inherit())
            .stdout(std::process::Stdio::inherit())
            .stderr(std::process::Stdio::inherit());
        cmd.spawn()
    });
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(report, "err {e}");
            std::process::exit(127);
        }
    };
    let _ = writeln!(report, "ok");
    drop(report);
    null_stdio();
    // Wait for the shim to have read the process's PID before it can be reaped.
    let _ = (&go).read(&mut [0u8; 1]);
    drop(go);
    let main = Pid::from_raw(child.id().cast_signed());
    loop {
        match waitpid(None::<Pid>, None) {
            Ok(WaitStatus::Exited(p, code)) if p == main => std::process::exit(code),
            Ok(WaitStatus::Signaled(p, sig, _)) if p == main => {
                std::process::exit(128 + sig as i32)
            }
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(_) => std::process::exit(255),
        }
    }
}

/// A process's exit status in docker's convention (code, or 128 + signal).
fn wait_code(p: Pid) -> i64 {
    loop {
        match waitpid(p, None) {
            Ok(WaitStatus::Exited(_, c)) => return c as i64,
            Ok(WaitStatus::Signaled(_, s, _)) => return 128 + s as i64,
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(_) => return 255,
        }
    }
}

/// The one child of `pid` (as /proc of the caller's namespace names it).
fn only_child(pid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn null_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // SAFETY: replaces our own stdio descriptors; nothing else refers to them.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

/// Copies the container's output to DIR/log until every writer is gone, rotating it.
fn copy_log(r: OwnedFd, dir: &Path, opts: crate::logs::LogOptions) {
    let mut src = std::fs::File::from(r);
    let mut log = crate::logs::Rotating::open(dir, opts);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match src.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => log.write(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
