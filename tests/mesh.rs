//! The routing mesh: a port published in ingress mode answers on every node's address,
//! also on a node that runs no task, balanced over the tasks wherever they run; the task
//! sees the client's own address (docs/cluster.md, "The routing mesh"); a lost node's
//! tasks leave every node's maps and every request is answered again by the others.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::cluster::Fabric;
use common::wait_until;

/// The answers of `n` requests to each node's published port.
fn answers(fabric: &Fabric, nodes: &[u8], port: u16, n: usize) -> Vec<(u8, String)> {
    nodes
        .iter()
        .flat_map(|node| {
            (0..n).map(move |_| (*node, fabric.ask(&format!("10.99.0.{node}:{port}"))))
        })
        .collect()
}

#[test]
fn the_mesh_answers_everywhere_keeps_the_client_and_survives_a_node() {
    need_root!();
    let fabric = Fabric::new();
    let n1 = fabric.node(11);
    let mut n2 = fabric.node(12);
    let _n3 = fabric.node(13);
    n1.ok(&["network", "create", "-d", "overlay", "app"]);
    // Two tasks, never on n13: n13 answers through the mesh alone.
    let out = n1.ok(&[
        "service",
        "create",
        "--name",
        "who",
        "--replicas",
        "2",
        "--network",
        "app",
        "--constraint",
        "node.hostname!=n13",
        "-p",
        "8080:80",
        "-p",
        "5353:53/udp",
        "--",
        "sh",
        "-c",
        "socat UDP-RECVFROM:53,fork 'SYSTEM:echo udp $SOCAT_PEERADDR' & exec socat TCP-LISTEN:80,fork,reuseaddr 'SYSTEM:echo $SOCAT_PEERADDR $(hostname)'",
    ]);
    assert!(out.contains("2/2 running"), "{out}");
    let ls = n1.ok(&["service", "ls", "--format", "{{.Name}} {{.Ports}}"]);
    assert_eq!(ls, "who *:8080->80/tcp, *:5353->53/udp\n");
    // Every node answers, every task answers through every node, and every task saw the
    // client's own address.
    wait_until("every node's port 8080 answers", || {
        [11, 12, 13]
            .iter()
            .all(|n| !fabric.ask(&format!("10.99.0.{n}:8080")).is_empty())
    });
    let got = answers(&fabric, &[11, 12, 13], 8080, 10);
    for (node, a) in &got {
        let peer = a.split(' ').next().unwrap_or("");
        assert_eq!(peer, "10.99.0.1", "through n{node}: {a:?}");
    }
    let tasks: BTreeSet<&str> = got
        .iter()
        .filter_map(|(_, a)| a.split(' ').nth(1))
        .collect();
    assert_eq!(tasks.len(), 2, "tasks that answered: {tasks:?}");
    let via13: BTreeSet<&str> = got
        .iter()
        .filter(|(n, _)| *n == 13)
        .filter_map(|(_, a)| a.split(' ').nth(1))
        .collect();
    assert!(!via13.is_empty(), "n13 has no task and answers");
    // UDP through the node without a task.
    let udp = fabric.ns.sh_out("echo q | socat -T2 - UDP:10.99.0.13:5353");
    assert_eq!(udp.trim(), "udp 10.99.0.1");

    // Drain n11 under a client loop through every node: its task moves to n12 and no
    // request fails (every node drops the task from its maps before its container stops).
    let lp = Loop::start(&fabric, &[11, 12, 13], 8080);
    std::thread::sleep(Duration::from_millis(500));
    n1.ok(&["node", "update", "--availability", "drain", "n11"]);
    wait_until("both tasks on n12", || {
        let t = running(&n1, "who");
        t.len() == 2 && t.iter().all(|l| l == "n12 Running")
    });
    wait_until("n11's task container gone", || {
        n1.ok(&[
            "ps",
            "--filter",
            "label=com.docker.swarm.service.name=who",
            "-q",
        ])
        .is_empty()
    });
    std::thread::sleep(Duration::from_millis(500));
    let (sent, failed, _) = lp.stop();
    assert!(sent > 6, "{sent} requests during the drain");
    assert!(
        failed.is_empty(),
        "{} of {sent} failed: {failed:?}",
        failed.len()
    );
    n1.ok(&["node", "update", "--availability", "active", "n11"]);

    // A connection held open through n13 to a task on n12 when n12 is lost: once the task
    // leaves n13's maps, its flow goes from n13's conntrack, and the client's next segment
    // is answered with a reset instead of vanishing towards the dead node (moby#26060).
    n1.ok(&[
        "service",
        "create",
        "--name",
        "hold",
        "--network",
        "app",
        "--constraint",
        "node.hostname==n12",
        "-p",
        "8081:81",
        "--",
        "socat",
        "TCP-LISTEN:81,fork,reuseaddr",
        "SYSTEM:cat",
    ]);
    wait_until("hold echoes through n13", || {
        fabric
            .ns
            .sh_out("echo x | socat -T2 - TCP:10.99.0.13:8081,connect-timeout=2")
            .trim()
            == "x"
    });
    let held = std::process::Command::new("nsenter")
        .args(["-t", &fabric.ns.pid.to_string(), "-n", "--", "sh", "-c"])
        .arg("(echo first; sleep 8; echo second; sleep 2) | socat -d -T20 - TCP:10.99.0.13:8081 2>&1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    // n12 lost: daemon killed, link down. Requests through the surviving nodes are all
    // answered again, by the task on n11 and the one placed again.
    let lost = Instant::now();
    n2.kill9_daemon();
    n2.ns.sh_ok("ip link set lan down");
    let mut first = None;
    loop {
        let ok = [11, 13]
            .iter()
            .all(|n| !fabric.ask(&format!("10.99.0.{n}:8080")).is_empty());
        if ok && first.is_none() {
            first = Some(lost.elapsed());
        }
        let all = ok
            && answers(&fabric, &[11, 13], 8080, 5)
                .iter()
                .all(|(_, a)| !a.is_empty());
        if all {
            break;
        }
        assert!(
            lost.elapsed() < Duration::from_secs(60),
            "the mesh never recovered"
        );
    }
    eprintln!(
        "failover: first answers after {:?}, all answered after {:?}",
        first.unwrap_or_default(),
        lost.elapsed()
    );
    wait_until("who back at 2 running tasks without n12", || {
        let t = running(&n1, "who");
        t.len() == 2 && t.iter().all(|l| l == "n11 Running")
    });
    let got = answers(&fabric, &[11, 13], 8080, 10);
    assert!(
        got.iter().all(|(_, a)| a.starts_with("10.99.0.1 ")),
        "{got:?}"
    );
    let out = held.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.starts_with("first\n"), "{out}");
    assert!(out.contains("Connection reset by peer"), "{out}");
}

/// NODE STATE of `svc`'s tasks meant to run.
fn running(h: &common::Host, svc: &str) -> Vec<String> {
    h.ok(&[
        "service",
        "ps",
        svc,
        "--filter",
        "desired-state=running",
        "--format",
        "{{.Node}} {{.CurrentState}}",
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

fn nsenter_out(pid: u32, script: &str) -> String {
    let o = std::process::Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n", "--", "sh", "-c", script])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Requests in a loop through some nodes' published port, from the LAN, until stopped.
struct Loop {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<(usize, Vec<String>, Vec<String>)>,
}

impl Loop {
    fn start(fabric: &Fabric, nodes: &[u8], port: u16) -> Loop {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let pid = fabric.ns.pid;
        let nodes = nodes.to_vec();
        let handle = std::thread::spawn(move || {
            let (mut sent, mut failed, mut answers) = (0, Vec::new(), Vec::new());
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                for n in &nodes {
                    let a = nsenter_out(
                        pid,
                        &format!(
                            "socat -T2 - TCP:10.99.0.{n}:{port},connect-timeout=2 </dev/null 2>&1"
                        ),
                    );
                    sent += 1;
                    if a.trim().is_empty() || a.contains(" E ") {
                        failed.push(format!("n{n}: {}", a.trim()));
                    } else {
                        answers.push(a.trim().to_string());
                    }
                }
            }
            (sent, failed, answers)
        });
        std::thread::sleep(Duration::from_millis(500));
        Loop { stop, handle }
    }

    /// Requests sent, failures, answers.
    fn stop(self) -> (usize, Vec<String>, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

/// A start-first update of a one-task service, then its rollback, under a client loop
/// through both nodes: the new task serves before the old one leaves, so no request fails,
/// and the answers change from the old environment to the new and back.
#[test]
fn start_first_updates_and_rollbacks_lose_no_request() {
    need_root!();
    let fabric = Fabric::new();
    let (n1, _n2) = fabric.two_nodes_on_app();
    n1.ok(&[
        "service",
        "create",
        "--name",
        "v",
        "--network",
        "app",
        "--update-order",
        "start-first",
        "-e",
        "V=one",
        "-p",
        "8080:80",
        "--",
        "socat",
        "TCP-LISTEN:80,fork,reuseaddr",
        "SYSTEM:echo $V",
    ]);
    let all = |want: &str| {
        [11, 12]
            .iter()
            .all(|n| (0..3).all(|_| fabric.ask(&format!("10.99.0.{n}:8080")) == want))
    };
    wait_until("v answers one through both nodes", || all("one"));
    let order = n1.ok(&[
        "service",
        "inspect",
        "-f",
        "{{.Spec.UpdateConfig.Order}}",
        "v",
    ]);
    assert_eq!(order.trim(), "start-first");
    for (change, want) in [
        (
            vec!["service", "update", "-d", "--env-add", "V=two", "v"],
            "two",
        ),
        (vec!["service", "rollback", "-d", "v"], "one"),
    ] {
        let lp = Loop::start(&fabric, &[11, 12], 8080);
        n1.ok(&change);
        wait_until(&format!("every answer {want}"), || all(want));
        // The old task's container goes 2 s after its successor runs.
        std::thread::sleep(Duration::from_millis(2500));
        let (sent, failed, answers) = lp.stop();
        assert!(
            failed.is_empty(),
            "{} of {sent} failed: {failed:?}",
            failed.len()
        );
        assert_eq!(answers.last().map(String::as_str), Some(want));
        let tasks = running(&n1, "v");
        assert_eq!(tasks.len(), 1, "{tasks:?}");
    }
    // A rollback with nothing to go back to is refused.
    n1.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "w",
        "--network",
        "app",
        "--",
        "sleep",
        "60",
    ]);
    let err = n1.fails(&["service", "rollback", "w"]);
    assert!(err.contains("no previous spec"), "{err}");
}
