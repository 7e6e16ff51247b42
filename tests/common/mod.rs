//! Test hosts: each is a holder process in new network, mount and PID namespaces, made with
//! `unshare`. The daemon, its shims and containers all live in that PID namespace, so
//! killing the holder's init tears everything down (processes, namespace pins, links,
//! nftables state) even when a test fails. The machine's own namespaces are never touched.
#![allow(dead_code)]

pub(crate) mod cluster;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Integration tests need root and the kernel features; skip (loudly) without them.
#[macro_export]
macro_rules! need_root {
    () => {
        if !common::root() {
            eprintln!("skipping: needs root");
            return;
        }
    };
}

pub(crate) fn berth_bin() -> &'static str {
    env!("CARGO_BIN_EXE_berth")
}

pub(crate) struct Ns {
    holder: Child,
    /// PID (in our namespace) of the holder's init, inside the new namespaces.
    pub pid: u32,
}

impl Ns {
    /// `pid_mount`: also new PID and mount namespaces (a daemon host), else network only.
    fn new(pid_mount: bool) -> Ns {
        let mut cmd = Command::new("unshare");
        cmd.arg("--net");
        if pid_mount {
            cmd.args(["--mount", "--propagation", "private", "--pid", "--fork"]);
        }
        let script = if pid_mount {
            // PID 1 of the namespace: reaps orphans so exited shims leave no zombies.
            "mount -t proc proc /proc && mount -t sysfs sysfs /sys && ip link set lo up && echo ready && exec sh -c 'trap \"\" TERM; while :; do wait; sleep 1; done'"
        } else {
            "ip link set lo up && echo ready && exec sleep 100000"
        };
        cmd.args(["--", "sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut holder = cmd.spawn().expect("unshare");
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "namespace holder did not start");
        let pid = if pid_mount {
            let children =
                std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", holder.id()))
                    .unwrap();
            children.split_whitespace().next().unwrap().parse().unwrap()
        } else {
            holder.id()
        };
        Ns { holder, pid }
    }

    pub(crate) fn netns_path(&self) -> String {
        format!("/proc/{}/ns/net", self.pid)
    }

    /// A shell command inside the namespaces.
    pub(crate) fn sh(&self, script: &str) -> Output {
        Command::new("nsenter")
            .args([
                "-t",
                &self.pid.to_string(),
                "-n",
                "-m",
                "-p",
                "--",
                "sh",
                "-c",
                script,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("nsenter")
    }

    /// What a command printed, failed or not: for polling state that may not exist yet
    /// (a device the daemon makes in its first round).
    pub(crate) fn sh_out(&self, script: &str) -> String {
        String::from_utf8_lossy(&self.sh(script).stdout).into_owned()
    }

    pub(crate) fn sh_ok(&self, script: &str) -> String {
        let o = self.sh(script);
        assert!(
            o.status.success(),
            "`{script}` failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub(crate) fn spawn(&self, script: &str) -> Child {
        Command::new("nsenter")
            .args([
                "-t",
                &self.pid.to_string(),
                "-n",
                "-m",
                "-p",
                "--",
                "sh",
                "-c",
                script,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nsenter")
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid.cast_signed()),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// A daemon host, optionally wired to an "outside" namespace that plays the internet:
/// host `uplink` 203.0.113.1/24 ↔ outside 203.0.113.2/24, default route through it. The
/// outside has no route back to container subnets: only masqueraded traffic gets answers.
pub(crate) struct Host {
    pub ns: Ns,
    pub outside: Option<Ns>,
    pub dir: tempfile::TempDir,
    daemon: Option<Child>,
    /// Processes started in the outside namespace: it shares our PID namespace, so nothing
    /// kills them with the host; `Drop` does.
    outside_pids: std::sync::Mutex<Vec<u32>>,
}

impl Host {
    pub(crate) fn new() -> Host {
        let ns = Ns::new(true);
        let dir = tempfile::Builder::new()
            .prefix("berth-test-")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("resolv.conf"), "nameserver 203.0.113.2\n").unwrap();
        Host {
            ns,
            outside: None,
            dir,
            daemon: None,
            outside_pids: Default::default(),
        }
    }

    pub(crate) fn with_outside() -> Host {
        let mut h = Host::new();
        let out = Ns::new(false);
        // Created from the outside (which shares our PID namespace, so the host's PID
        // names its network namespace).
        let st = Command::new("nsenter")
            .args([
                "-t",
                &out.pid.to_string(),
                "-n",
                "--",
                "sh",
                "-c",
                &format!(
                    "ip link add wan type veth peer name uplink netns {} && \
                 ip addr add 203.0.113.2/24 dev wan && ip link set wan up",
                    h.ns.pid
                ),
            ])
            .status()
            .unwrap();
        assert!(st.success(), "wiring the outside namespace");
        h.ns.sh_ok(
            "ip addr add 203.0.113.1/24 dev uplink && ip link set uplink up && \
             ip route add default via 203.0.113.2",
        );
        h.outside = Some(out);
        h
    }

    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.path().join("berth.sock")
    }

    pub(crate) fn start_daemon(&mut self) {
        self.start_daemon_with(&[]);
    }

    /// The daemon with extra flags (e.g. `--userland-proxy always`).
    pub(crate) fn start_daemon_with(&mut self, extra: &[&str]) {
        self.start_daemon_env(extra, &[]);
    }

    /// The daemon with extra flags and environment (e.g. a PATH whose `nft` can be made
    /// to fail).
    pub(crate) fn start_daemon_env(&mut self, extra: &[&str], env: &[(&str, String)]) {
        let d = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("daemon.log"))
            .unwrap();
        let child = Command::new("nsenter")
            .args(["-t", &self.ns.pid.to_string(), "-n", "-m", "-p", "--"])
            .arg(berth_bin())
            .args(["daemon", "--log-level", "debug", "--root"])
            .arg(d.join("root"))
            .arg("--run")
            .arg(d.join("run"))
            .arg("--resolv-conf")
            .arg(d.join("resolv.conf"))
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .args(extra)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemon = Some(child);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            if self.berth(&["version"]).status.success() {
                return;
            }
            if let Some(Ok(Some(st))) = self.daemon.as_mut().map(|c| c.try_wait()) {
                panic!("daemon exited with {st}: {}", self.daemon_log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("daemon did not answer: {}", self.daemon_log());
    }

    pub(crate) fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// `kill -9` of the daemon (nsenter forked it: kill the real daemon, its child).
    pub(crate) fn kill9_daemon(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let kids = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", c.id()))
                .unwrap_or_default();
            for k in kids.split_whitespace() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(k.parse().unwrap()),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = c.kill();
            let _ = c.wait();
            // Dead means gone or a zombie: only then are its files (the store's lock) closed.
            for k in kids.split_whitespace() {
                wait_until("the killed daemon to exit", || {
                    std::fs::read_to_string(format!("/proc/{k}/stat"))
                        .map(|s| s.rsplit(") ").next().is_some_and(|r| r.starts_with('Z')))
                        .unwrap_or(true)
                });
            }
        }
    }

    pub(crate) fn berth(&self, args: &[&str]) -> Output {
        Command::new(berth_bin())
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs berth and asserts success; returns stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let o = self.berth(args);
        assert!(
            o.status.success(),
            "berth {args:?} failed ({}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs berth expecting failure; returns stderr.
    pub(crate) fn fails(&self, args: &[&str]) -> String {
        let o = self.berth(args);
        assert!(
            !o.status.success(),
            "berth {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// A detached container on `net` that answers every TCP connection to `port` with `reply`.
    pub(crate) fn server(&self, name: &str, net: &str, port: u16, reply: &str) {
        self.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            net,
            "--",
            "socat",
            &format!("TCP-LISTEN:{port},fork,reuseaddr"),
            &format!("SYSTEM:echo {reply}"),
        ]);
    }

    /// What a fresh container on `net` got back from socat's `address` (e.g.
    /// `TCP:web:80,connect-timeout=2`); empty when it could not connect.
    pub(crate) fn socat_from(&self, net: &str, address: &str) -> String {
        let o = self.berth(&[
            "run",
            "--rm",
            "--network",
            net,
            "--",
            "socat",
            "-T2",
            "-",
            address,
        ]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `run -d --name NAME FLAGS -- sleep 300`: an address to reach or to hold.
    pub(crate) fn sleeper(&self, name: &str, flags: &[&str]) {
        let mut a = vec!["run", "-d", "--name", name];
        a.extend_from_slice(flags);
        a.extend_from_slice(&["--", "sleep", "300"]);
        self.ok(&a);
    }

    pub(crate) fn docker(&self, args: &[&str]) -> Output {
        let cfg = self.dir.path().join("docker-config");
        std::fs::create_dir_all(&cfg).unwrap();
        Command::new("docker")
            .env("DOCKER_HOST", format!("unix://{}", self.socket().display()))
            .env("DOCKER_CONFIG", &cfg)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub(crate) fn ip_of(&self, ctr: &str, net: &str) -> String {
        self.ok(&[
            "inspect",
            "-f",
            &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
            ctr,
        ])
        .trim()
        .to_string()
    }

    /// Interfaces (names) of the host namespace.
    pub(crate) fn links(&self) -> Vec<String> {
        self.ns
            .sh_ok("ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1")
            .lines()
            .map(String::from)
            .collect()
    }

    /// Runs a command in the outside namespace and returns its stdout.
    pub(crate) fn outside_out(&self, script: &str) -> String {
        let out = self.outside.as_ref().expect("host has no outside");
        let o = Command::new("nsenter")
            .args(["-t", &out.pid.to_string(), "-n", "--", "sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub(crate) fn outside_sh(&self, script: &str) -> Child {
        let out = self.outside.as_ref().expect("host has no outside");
        // A process group of its own: whatever the script starts is killed with it, also
        // after the shell itself was killed or exited.
        let c = std::os::unix::process::CommandExt::process_group(
            Command::new("nsenter")
                .args(["-t", &out.pid.to_string(), "-n", "--", "sh", "-c", script])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            0,
        )
        .spawn()
        .unwrap();
        self.outside_pids.lock().unwrap().push(c.id());
        c
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- daemon log ----\n{}", self.daemon_log());
        }
        self.kill9_daemon();
        for pid in self.outside_pids.lock().unwrap().drain(..) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid.cast_signed()),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

pub(crate) fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("timed out waiting for {what}");
}
