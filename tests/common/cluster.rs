//! A cluster topology for the tests: an underlay LAN (a bridge `lan0` in a "fabric"
//! network namespace), a real etcd on it (Debian's `etcd-server`, started by the test in
//! the fabric namespace), and hosts wired to the LAN, each with its own daemon, `--root`
//! and `--run`. Dropping the fabric kills etcd and the namespace with the LAN; each host
//! tears itself down (common::Host). Nothing is created in the machine's own namespaces.

use std::process::{Child, Command, Output, Stdio};

use super::{berth_bin, Host, Ns};

pub(crate) const ETCD: &str = "10.99.0.1";

pub(crate) struct Fabric {
    pub ns: Ns,
    etcd: Option<Child>,
    pub dir: tempfile::TempDir,
}

fn etcd_bin() -> String {
    let p = std::env::var("BERTH_TEST_ETCD").unwrap_or_else(|_| "/usr/bin/etcd".into());
    assert!(
        std::path::Path::new(&p).exists(),
        "{p} is missing: install Debian's etcd-server (scripts/deps.sh does)"
    );
    p
}

impl Fabric {
    /// The LAN and etcd on it, answering.
    pub(crate) fn new() -> Fabric {
        let ns = Ns::new(false);
        ns.sh_ok(&format!(
            "ip link add lan0 type bridge && ip addr add {ETCD}/24 dev lan0 && ip link set lan0 up"
        ));
        let dir = tempfile::Builder::new()
            .prefix("berth-fabric-")
            .tempdir()
            .unwrap();
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let etcd = Command::new("nsenter")
            .args(["-t", &ns.pid.to_string(), "-n", "--"])
            .arg(etcd_bin())
            .arg("--name=fabric")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls=http://{ETCD}:2379"))
            .arg(format!("--advertise-client-urls=http://{ETCD}:2379"))
            .arg(format!("--listen-peer-urls=http://{ETCD}:2380"))
            .arg(format!("--initial-advertise-peer-urls=http://{ETCD}:2380"))
            .arg(format!("--initial-cluster=fabric=http://{ETCD}:2380"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let f = Fabric {
            ns,
            etcd: Some(etcd),
            dir,
        };
        super::wait_until("etcd to answer", || {
            f.ns.sh(&format!("curl -s -m 1 http://{ETCD}:2379/health"))
                .stdout
                .windows(6)
                .any(|w| w == b"\"true\"")
        });
        f
    }

    /// A host on the LAN at 10.99.0.`n` (no daemon yet).
    pub(crate) fn host(&self, n: u8) -> Host {
        let h = Host::new();
        self.ns.sh_ok(&format!(
            "ip link add n{n} type veth peer name lan netns {} && ip link set n{n} master lan0 up",
            h.ns.pid
        ));
        h.ns.sh_ok(&format!(
            "ip addr add 10.99.0.{n}/24 dev lan && ip link set lan up"
        ));
        h
    }

    /// A host on the LAN with a daemon that joined the cluster as node `nN`.
    pub(crate) fn node(&self, n: u8) -> Host {
        let mut h = self.host(n);
        start_node(&mut h, n, &[]);
        h
    }

    /// SIGSTOP (`true`) or SIGCONT etcd: an etcd that stops answering, as a partition or a
    /// stalled disk makes it.
    pub(crate) fn pause_etcd(&self, stop: bool) {
        let pid = self.etcd.as_ref().expect("etcd runs").id();
        let sig = if stop {
            nix::sys::signal::Signal::SIGSTOP
        } else {
            nix::sys::signal::Signal::SIGCONT
        };
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid.cast_signed()), sig).unwrap();
    }

    pub(crate) fn etcd_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }
}

pub(crate) fn cluster_flags(n: u8) -> Vec<String> {
    [
        "--cluster-store".to_string(),
        format!("etcd://{ETCD}:2379"),
        "--advertise-addr".into(),
        format!("10.99.0.{n}"),
        "--node-name".into(),
        format!("n{n}"),
        "--node-ttl".into(),
        "2s".into(),
    ]
    .into()
}

pub(crate) fn start_node(h: &mut Host, n: u8, extra: &[&str]) {
    let flags = cluster_flags(n);
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    h.start_daemon_with(&args);
}

/// `berth daemon` in the host with its own root and run, expected to stop by itself (a
/// configuration it refuses); bounded by `timeout`.
pub(crate) fn daemon_once(h: &Host, tag: &str, args: &[&str]) -> Output {
    let d = h.dir.path();
    Command::new("nsenter")
        .args(["-t", &h.ns.pid.to_string(), "-n", "-m", "-p", "--"])
        .args(["timeout", "20"])
        .arg(berth_bin())
        .arg("daemon")
        .arg("--root")
        .arg(d.join(format!("root-{tag}")))
        .arg("--run")
        .arg(d.join(format!("run-{tag}")))
        .arg("-H")
        .arg(format!(
            "unix://{}",
            d.join(format!("{tag}.sock")).display()
        ))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

impl Drop for Fabric {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- etcd log (tail) ----");
            let log = self.etcd_log();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
        if let Some(mut c) = self.etcd.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id().cast_signed()),
                nix::sys::signal::Signal::SIGCONT,
            );
            // Should nsenter have forked etcd, the child goes too.
            let kids = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", c.id()))
                .unwrap_or_default();
            for k in kids.split_whitespace() {
                if let Ok(p) = k.parse::<i32>() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(p),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
