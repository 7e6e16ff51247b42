//! Crash safety (issue 16, D3): the daemon is killed (SIGKILL, through `BERTH_FAILPOINT`) at
//! each step of `run` and of `rm -f`; after each restart the store and the kernel agree.
//! Nothing runs that the store does not know as running, nothing that is not running holds an
//! address, a veth or a namespace, and no address is ever lost or handed out twice.

mod common;
use common::Host;

const POINTS: [&str; 4] = [
    "start:after-allocate",
    "start:after-attach",
    "start:after-spawn",
    "start:after-commit",
];

/// The container ids whose shim is alive (from /proc, as the daemon looks: argv[1] is
/// `shim`, the last argument this host's container directory).
fn shim_ids(h: &Host) -> Vec<String> {
    let base = h.dir.path().join("run/containers");
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        if stat.rsplit(") ").next().is_some_and(|r| r.starts_with('Z')) {
            continue;
        }
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.get(1).map(String::as_str) != Some("shim") {
            continue;
        }
        let dir = std::path::Path::new(args.last().unwrap());
        if dir.parent() == Some(base.as_path()) {
            let pid: u32 = e.file_name().to_string_lossy().parse().unwrap();
            let ppid: u32 = stat
                .rsplit(") ")
                .next()
                .unwrap()
                .split_whitespace()
                .nth(1)
                .unwrap()
                .parse()
                .unwrap();
            found.push((
                dir.file_name().unwrap().to_string_lossy().into_owned(),
                pid,
                ppid,
            ));
        }
    }
    // The shim's init is a fork of it, with the same command line.
    let pids: Vec<u32> = found.iter().map(|f| f.1).collect();
    let mut ids: Vec<String> = found
        .into_iter()
        .filter(|f| !pids.contains(&f.2))
        .map(|f| f.0)
        .collect();
    ids.sort();
    ids
}

/// Runs a container on each of the 13 addresses of a /28 `net`: none was lost.
fn refill(h: &Host, net: &str) {
    for i in 0..13 {
        h.ok(&[
            "run",
            "-d",
            "--name",
            &format!("f{i}"),
            "--network",
            net,
            "--",
            "sleep",
            "600",
        ]);
    }
}

/// Checks the store against the kernel; returns the running containers' ids.
fn consistent(h: &Host, point: &str) -> Vec<String> {
    let rows = h.ok(&["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.State}}"]);
    let mut running = Vec::new();
    let mut ips = Vec::new();
    for row in rows.lines() {
        let (id, state) = row.split_once(' ').unwrap();
        let ip = h.ok(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            id,
        ]);
        let ip = ip.trim().to_string();
        if state == "running" {
            running.push(id.to_string());
            assert!(!ip.is_empty(), "{point}: running {id} has no address");
            h.ns.sh_ok(&format!("ping -c1 -W2 {ip}"));
            ips.push(ip);
        } else {
            assert!(ip.is_empty(), "{point}: {state} container {id} holds {ip}");
        }
    }
    running.sort();
    assert_eq!(
        shim_ids(h),
        running,
        "{point}: shims alive ≠ containers running"
    );
    let sleeps = h.ns.sh("exec pgrep -fx 'sleep 600'");
    assert_eq!(
        String::from_utf8_lossy(&sleeps.stdout).lines().count(),
        running.len(),
        "{point}: container processes"
    );
    let veths = h.links().iter().filter(|l| l.starts_with("bv")).count();
    assert_eq!(veths, running.len(), "{point}: host veths");
    let pins = std::fs::read_dir(h.dir.path().join("run/netns"))
        .unwrap()
        .count();
    assert_eq!(pins, running.len(), "{point}: netns pins");
    let mut distinct = ips.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        ips.len(),
        "{point}: an address twice: {ips:?}"
    );
    running
}

#[test]
fn a_daemon_killed_at_any_step_of_run_or_rm_is_repaired_at_start() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    // 13 addresses: a leak anywhere shows at the end, when all of them must be had again.
    h.ok(&["network", "create", "--subnet", "10.77.0.0/28", "crash"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "steady",
        "--network",
        "crash",
        "-p",
        "80",
        "--",
        "sleep",
        "600",
    ]);
    for (i, point) in POINTS.iter().enumerate() {
        h.kill9_daemon();
        h.start_daemon_env(&[], &[("BERTH_FAILPOINT", point.to_string())]);
        let name = format!("c{i}");
        let o = h.berth(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "crash",
            "-p",
            "80",
            "--",
            "sleep",
            "600",
        ]);
        assert!(!o.status.success(), "{point}: the daemon did not die");
        h.kill9_daemon();
        h.start_daemon();
        let running = consistent(&h, point);
        assert!(!running.is_empty(), "{point}: the steady container");
        // Whatever state it was left in, it starts once and stops for good.
        h.ok(&["start", &name]);
        let id = h
            .ok(&["inspect", "-f", "{{.Id}}", &name])
            .trim()
            .to_string();
        let expect = running.len() + usize::from(!running.contains(&id));
        assert_eq!(
            shim_ids(&h).len(),
            expect,
            "{point}: start ran a second copy"
        );
        h.ok(&["rm", "-f", &name]);
        consistent(&h, point);
    }
    // rm -f killed between the kill and the record's removal.
    h.kill9_daemon();
    h.start_daemon_env(&[], &[("BERTH_FAILPOINT", "rm:after-kill".into())]);
    assert!(!h.berth(&["rm", "-f", "steady"]).status.success());
    h.kill9_daemon();
    h.start_daemon();
    consistent(&h, "rm:after-kill");
    h.ok(&["rm", "-f", "steady"]);
    assert_eq!(consistent(&h, "end"), Vec::<String>::new());
    // Every address of the /28 can be had again, each once.
    refill(&h, "crash");
    let err = h.fails(&["run", "-d", "--network", "crash", "--", "sleep", "600"]);
    assert!(err.contains("no available IP addresses"), "{err}");
    assert_eq!(consistent(&h, "refill").len(), 13);
}

/// The audit's reproduction, bounded: twelve concurrent `run`s and `rm -f`s on a /28, the daemon
/// killed 30 to 150 ms into them, four rounds; after each restart the store and the kernel agree.
#[test]
fn kill9_under_concurrent_runs_and_removals() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    h.ok(&["network", "create", "--subnet", "10.78.0.0/28", "busy"]);
    let delays = [30u64, 150, 70, 110];
    for (round, delay) in delays.iter().enumerate() {
        let existing: Vec<String> = h.ok(&["ps", "-aq"]).lines().map(String::from).collect();
        std::thread::scope(|s| {
            for i in 0..12 {
                let h = &h;
                let name = format!("r{round}x{i}");
                s.spawn(move || {
                    let _ = h.berth(&[
                        "run",
                        "-d",
                        "--name",
                        &name,
                        "--network",
                        "busy",
                        "-p",
                        "80",
                        "--",
                        "sleep",
                        "600",
                    ]);
                });
            }
            for id in existing.iter().take(6) {
                let h = &h;
                s.spawn(move || {
                    let _ = h.berth(&["rm", "-f", id]);
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(*delay));
            // `kill9_daemon` needs `&mut h`, which the threads share: SIGKILL by name instead.
            h.ns.sh_ok("pkill -9 -f '^[^ ]*berth daemon' || true");
        });
        h.kill9_daemon();
        h.start_daemon();
        consistent(&h, &format!("round {round}"));
    }
    // Everything removed, every address can be had again.
    for id in h.ok(&["ps", "-aq"]).lines() {
        h.ok(&["rm", "-f", id]);
    }
    assert_eq!(consistent(&h, "end"), Vec::<String>::new());
    refill(&h, "busy");
    assert_eq!(consistent(&h, "refill").len(), 13);
}
