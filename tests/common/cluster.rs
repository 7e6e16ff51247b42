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
    /// One process per etcd member.
    etcd: Vec<Option<Child>>,
    pub dir: tempfile::TempDir,
    /// `--cluster-store` for the daemons: every member's client URL.
    pub store: String,
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
    /// The LAN and a one-member etcd on it, answering.
    pub(crate) fn new() -> Fabric {
        Fabric::with_members(1)
    }

    /// The LAN and an etcd cluster of `n` members on it (client ports 2379, 22379, …),
    /// answering.
    pub(crate) fn with_members(n: usize) -> Fabric {
        let ns = Ns::new(false);
        ns.sh_ok(&format!(
            "ip link add lan0 type bridge && ip addr add {ETCD}/24 dev lan0 && ip link set lan0 up"
        ));
        let dir = tempfile::Builder::new()
            .prefix("berth-fabric-")
            .tempdir()
            .unwrap();
        let port = |i: usize, base: u32| 10_000 * u32::try_from(i).unwrap() + base;
        let cluster: Vec<String> = (0..n)
            .map(|i| format!("m{i}=http://{ETCD}:{}", port(i, 2380)))
            .collect();
        let mut etcd = Vec::new();
        for i in 0..n {
            let log = std::fs::File::create(dir.path().join(format!("etcd-m{i}.log"))).unwrap();
            let child = Command::new("nsenter")
                .args(["-t", &ns.pid.to_string(), "-n", "--"])
                .arg(etcd_bin())
                .arg(format!("--name=m{i}"))
                .arg(format!(
                    "--data-dir={}",
                    dir.path().join(format!("m{i}")).display()
                ))
                .arg(format!(
                    "--listen-client-urls=http://{ETCD}:{}",
                    port(i, 2379)
                ))
                .arg(format!(
                    "--advertise-client-urls=http://{ETCD}:{}",
                    port(i, 2379)
                ))
                .arg(format!(
                    "--listen-peer-urls=http://{ETCD}:{}",
                    port(i, 2380)
                ))
                .arg(format!(
                    "--initial-advertise-peer-urls=http://{ETCD}:{}",
                    port(i, 2380)
                ))
                .arg(format!("--initial-cluster={}", cluster.join(",")))
                .arg("--initial-cluster-state=new")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            etcd.push(Some(child));
        }
        let store = format!(
            "etcd://{}",
            (0..n)
                .map(|i| format!("{ETCD}:{}", port(i, 2379)))
                .collect::<Vec<_>>()
                .join(",")
        );
        let f = Fabric {
            ns,
            etcd,
            dir,
            store,
        };
        for i in 0..n {
            super::wait_until("etcd to answer", || {
                f.ns.sh(&format!(
                    "curl -s -m 1 http://{ETCD}:{}/health",
                    port(i, 2379)
                ))
                .stdout
                .windows(6)
                .any(|w| w == b"\"true\"")
            });
        }
        f
    }

    /// Stops member `i` for good (SIGKILL), as a member whose host went away.
    pub(crate) fn kill_member(&mut self, i: usize) {
        if let Some(mut c) = self.etcd[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
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

    /// A host on the LAN with a daemon that joined the cluster as node `nN` (TTL 2 s).
    pub(crate) fn node(&self, n: u8) -> Host {
        self.node_with_ttl(n, "2s")
    }

    pub(crate) fn node_with_ttl(&self, n: u8, ttl: &str) -> Host {
        let mut h = self.host(n);
        let flags = flags_for(n, &self.store, ttl);
        h.start_daemon_with(&flags.iter().map(String::as_str).collect::<Vec<_>>());
        h
    }

    /// SIGSTOP (`true`) or SIGCONT etcd: an etcd that stops answering, as a partition or a
    /// stalled disk makes it.
    /// Nodes 11 and 12, and the overlay network `app` made on 11.
    pub(crate) fn two_nodes_on_app(&self) -> (Host, Host) {
        let n1 = self.node(11);
        let n2 = self.node(12);
        n1.ok(&["network", "create", "-d", "overlay", "app"]);
        (n1, n2)
    }

    /// What one TCP request from the LAN (this namespace, 10.99.0.1) to `target` got ("" if
    /// nothing answered within 2 s).
    pub(crate) fn ask(&self, target: &str) -> String {
        let o = self.ns.sh(&format!(
            "socat -T2 - TCP:{target},connect-timeout=2 </dev/null"
        ));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    pub(crate) fn pause_etcd(&self, stop: bool) {
        let pid = self.etcd[0].as_ref().expect("etcd runs").id();
        let sig = if stop {
            nix::sys::signal::Signal::SIGSTOP
        } else {
            nix::sys::signal::Signal::SIGCONT
        };
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid.cast_signed()), sig).unwrap();
    }

    pub(crate) fn etcd_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd-m0.log")).unwrap_or_default()
    }
}

/// The flags of node `nN` at 10.99.0.`n` on a one-member etcd, TTL 2 s.
pub(crate) fn cluster_flags(n: u8) -> Vec<String> {
    flags_for(n, &format!("etcd://{ETCD}:2379"), "2s")
}

fn flags_for(n: u8, store: &str, ttl: &str) -> Vec<String> {
    [
        "--cluster-store".to_string(),
        store.into(),
        "--advertise-addr".into(),
        format!("10.99.0.{n}"),
        "--node-name".into(),
        format!("n{n}"),
        "--node-ttl".into(),
        ttl.into(),
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
        for c in self.etcd.iter_mut() {
            if let Some(mut c) = c.take() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(c.id().cast_signed()),
                    nix::sys::signal::Signal::SIGCONT,
                );
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// The sorted answers of `dig +short NAME` asked in container `ctr` on `h`.
pub(crate) fn dig(h: &Host, ctr: &str, name: &str) -> Vec<String> {
    let mut v: Vec<String> = h
        .ok(&["exec", ctr, "dig", "+short", "+time=1", "+tries=2", name])
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}
