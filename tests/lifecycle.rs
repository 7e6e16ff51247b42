//! Containers' life: run in the foreground and detached, logs, exec, stop/start/restart, rm,
//! and the guarantees under failure (all-or-nothing, nothing left behind, no IP twice).

mod common;
use common::{wait_until, Host};

#[test]
fn foreground_run_uses_the_callers_stdio_and_exit_status() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    let o = h.berth(&[
        "run",
        "--rm",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    // --rm: nothing is left.
    assert_eq!(h.ok(&["ps", "-aq"]), "");
    // A process that exits at once still reports its status (its exit record is never
    // mistaken for a stale one).
    for i in 0..30 {
        let o = h.berth(&["run", "--rm", "--", "sh", "-c", &format!("exit {}", i % 3)]);
        assert_eq!(o.status.code(), Some(i % 3), "run {i}");
    }
    // stdin with -i.
    let mut child = std::process::Command::new(common::berth_bin())
        .args([
            "-H",
            &format!("unix://{}", h.socket().display()),
            "run",
            "--rm",
            "-i",
            "--",
            "tr",
            "a-z",
            "A-Z",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello berth\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HELLO BERTH\n");
    // A missing program: docker's 127, and nothing half-made.
    let o = h.berth(&["run", "--rm", "--", "no-such-program-xyz"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&o.stderr).contains("executable file not found"));
    assert_eq!(h.ok(&["ps", "-aq"]), "");
    assert!(
        !h.links().iter().any(|l| l.starts_with("bv")),
        "{:?}",
        h.links()
    );
}

#[test]
fn detached_logs_exec_stop_start_restart_rm() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    let id = h.ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "--",
        "sh",
        "-c",
        "echo started; trap 'echo bye; exit 0' TERM; while :; do sleep 0.1; done",
    ]);
    assert_eq!(id.trim().len(), 64);
    wait_until("log line", || h.ok(&["logs", "ticker"]).contains("started"));
    let ps = h.ok(&["ps"]);
    assert!(ps.starts_with("CONTAINER ID   COMMAND"), "{ps}");
    assert!(ps.contains("Up ") && ps.contains("ticker"), "{ps}");
    let o = h.ok(&["exec", "ticker", "sh", "-c", "hostname; cat /etc/hostname"]);
    let short = &id.trim()[..12];
    assert_eq!(o, format!("{short}\n{short}\n"));
    let o = h.berth(&["exec", "ticker", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3));
    let ip1 = h.ip_of("ticker", "bridge");
    assert!(ip1.starts_with("172."), "{ip1}");
    assert_eq!(h.ok(&["stop", "ticker"]), "ticker\n");
    assert!(h.ok(&["logs", "ticker"]).contains("bye"), "SIGTERM first");
    let st = h.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        "ticker",
    ]);
    assert_eq!(st.trim(), "exited 0");
    assert!(h.ok(&["ps", "-a"]).contains("Exited (0)"));
    h.ok(&["start", "ticker"]);
    let ip2 = h.ip_of("ticker", "bridge");
    assert_ne!(ip1, ip2, "a freed address is not reused at once");
    h.ok(&["restart", "-t", "1", "ticker"]);
    assert_eq!(
        h.ok(&["inspect", "-f", "{{.State.Running}}", "ticker"])
            .trim(),
        "true"
    );
    let e = h.fails(&["rm", "ticker"]);
    assert!(
        e.contains("Stop the container before attempting removal or force remove"),
        "{e}"
    );
    assert_eq!(h.ok(&["rm", "-f", "ticker"]), "ticker\n");
    assert_eq!(h.ok(&["ps", "-aq"]), "");
    // Nothing of it remains: no veth, no namespace pin.
    wait_until("veth deleted", || {
        !h.links().iter().any(|l| l.starts_with("bv"))
    });
    let pins = std::fs::read_dir(h.dir.path().join("run/netns"))
        .unwrap()
        .count();
    assert_eq!(pins, 0);
    // A stop that is ignored ends with SIGKILL after -t.
    h.ok(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        "--",
        "sh",
        "-c",
        "trap '' TERM; while :; do sleep 0.1; done",
    ]);
    h.ok(&["stop", "-t", "1", "stubborn"]);
    assert_eq!(
        h.ok(&["inspect", "-f", "{{.State.ExitCode}}", "stubborn"])
            .trim(),
        "137"
    );
}

#[test]
fn errors_are_clear_and_change_nothing() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    h.ok(&["network", "create", "--subnet", "10.40.0.0/24", "dev"]);
    let links_before = h.links();
    let nets_before = h.ok(&["network", "ls", "-q"]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["network", "create", "--subnet", "10.40.0.0", "x"],
            "invalid subnet",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.41.0.0/24",
                "--gateway",
                "10.42.0.1",
                "x",
            ],
            "outside subnet",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.41.0.0/24",
                "--ip-range",
                "10.42.0.0/28",
                "x",
            ],
            "outside subnet",
        ),
        (
            &["network", "create", "--subnet", "10.40.0.128/25", "x"],
            "overlaps",
        ),
        (
            &["network", "create", "--subnet", "10.41.0.0/24", "dev"],
            "already exists",
        ),
        (&["network", "create", "-d", "bogus", "x"], "not found"),
        (&["network", "rm", "nosuch"], "not found"),
        (&["network", "rm", "bridge"], "pre-defined network"),
        (
            &["run", "--network", "nosuch", "--", "true"],
            "network nosuch not found",
        ),
        (
            &["run", "--network", "dev", "--ip", "10.99.0.9", "--", "true"],
            "does not belong",
        ),
        (
            &["run", "--ip", "172.17.0.9", "--", "true"],
            "user defined networks only",
        ),
        (
            &["run", "--name", "bad name", "--", "true"],
            "Invalid container name",
        ),
        (&["stop", "nosuch"], "No such container"),
    ];
    for (args, want) in cases {
        let e = h.fails(args);
        assert!(
            e.contains(want),
            "berth {args:?}: expected {want:?} in {e:?}"
        );
    }
    assert_eq!(
        h.links(),
        links_before,
        "a failed operation left links behind"
    );
    assert_eq!(h.ok(&["network", "ls", "-q"]), nets_before);
    // Name taken; network in use.
    h.ok(&[
        "run",
        "-d",
        "--name",
        "one",
        "--network",
        "dev",
        "--",
        "sleep",
        "300",
    ]);
    let e = h.fails(&["run", "-d", "--name", "one", "--", "true"]);
    assert!(e.contains("is already in use"), "{e}");
    let e = h.fails(&["network", "rm", "dev"]);
    assert!(e.contains("has active endpoints (one)"), "{e}");
    // The firewall table holds exactly the networks of the store.
    let t = h.ns.sh_ok("nft list set inet berth bridges");
    let dev_id = h.ok(&["network", "inspect", "-f", "{{.Id}}", "dev"]);
    let dev_bridge = format!("berth-{}", &dev_id.trim()[..9]);
    assert!(t.contains("\"berth0\"") && t.contains(&dev_bridge), "{t}");
    assert_eq!(t.matches("berth-").count(), 1, "only dev's bridge: {t}");
}

#[test]
fn two_hundred_concurrent_runs_never_share_an_address() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    h.ok(&["network", "create", "--subnet", "10.50.0.0/16", "crowd"]);
    let sock = h.socket();
    let threads: Vec<_> = (0..200)
        .map(|i| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                let o = std::process::Command::new(common::berth_bin())
                    .args([
                        "-H",
                        &format!("unix://{}", sock.display()),
                        "run",
                        "-d",
                        "--name",
                        &format!("c{i}"),
                        "--network",
                        "crowd",
                        "--",
                        "sleep",
                        "600",
                    ])
                    .output()
                    .unwrap();
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let ips = h.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.IPv4Address}} {{end}}",
        "crowd",
    ]);
    let mut v: Vec<&str> = ips.split_whitespace().collect();
    assert_eq!(v.len(), 200);
    v.sort();
    v.dedup();
    assert_eq!(v.len(), 200, "an address was handed out twice");
    // Every one of them is configured in its sandbox: the host reaches them all.
    let o = h.ns.sh(&format!(
        "for ip in {}; do ping -c1 -W1 ${{ip%/*}} >/dev/null || echo $ip; done",
        ips.trim()
    ));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "",
        "unreachable addresses"
    );
}

#[test]
fn reconcile_removes_leftovers_at_start() {
    need_root!();
    let mut h = Host::new();
    // Leftovers of an earlier berth that the (empty) store does not know, and something
    // that is not berth's, which must stay.
    h.ns.sh_ok("ip link add berth-0abcdef12 type bridge && ip link add bv0123456789 type veth peer name tmp0 && ip link add br-other type bridge");
    std::fs::create_dir_all(h.dir.path().join("run/netns")).unwrap();
    std::fs::write(h.dir.path().join("run/netns/deadbeef"), "").unwrap();
    h.start_daemon();
    let links = h.links();
    assert!(
        !links
            .iter()
            .any(|l| l == "berth-0abcdef12" || l == "bv0123456789"),
        "{links:?}"
    );
    assert!(links.iter().any(|l| l == "br-other"), "{links:?}");
    assert!(links.iter().any(|l| l == "berth0"), "{links:?}");
    assert!(!h.dir.path().join("run/netns/deadbeef").exists());
}

#[test]
fn tty_gives_the_process_a_terminal() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    let o = h.berth(&[
        "run",
        "-t",
        "--rm",
        "--",
        "sh",
        "-c",
        "tty; test -t 0 && test -t 1 && echo isatty; exit 4",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("/dev/pts/"), "{out}");
    assert!(out.contains("isatty"), "{out}");
    assert_eq!(o.status.code(), Some(4));
    // Without -t the process writes straight into our pipes: not a terminal.
    let o = h.ok(&["run", "--rm", "--", "sh", "-c", "test -t 1 || echo notatty"]);
    assert_eq!(o, "notatty\n");
}

#[test]
fn a_kernel_step_failing_midway_is_rolled_back() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    h.ok(&["network", "create", "--subnet", "10.45.0.0/29", "small"]);
    h.ok(&["network", "create", "--subnet", "10.46.0.0/24", "other"]);
    let id = h.ok(&["network", "inspect", "-f", "{{.Id}}", "small"]);
    let bridge = format!("berth-{}", &id.trim()[..9]);
    // Pull the bridge away behind berth's back: the second attach of this run fails after
    // the namespace and the first veth (on `other`) were made.
    h.ns.sh_ok(&format!("ip link del {bridge}"));
    h.ok(&[
        "run",
        "-d",
        "--name",
        "victim",
        "--network",
        "other",
        "--",
        "sleep",
        "300",
    ]);
    h.ok(&["stop", "-t", "0", "victim"]);
    h.ok(&["network", "connect", "small", "victim"]);
    let e = h.fails(&["start", "victim"]);
    assert!(e.contains("missing"), "{e}");
    assert!(
        !h.links().iter().any(|l| l.starts_with("bv")),
        "veth left: {:?}",
        h.links()
    );
    assert_eq!(
        std::fs::read_dir(h.dir.path().join("run/netns"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        h.ok(&["inspect", "-f", "{{.State.Status}}", "victim"])
            .trim(),
        "exited"
    );
    for net in ["small", "other"] {
        assert_eq!(
            h.ok(&["network", "inspect", "-f", "{{len .Containers}}", net])
                .trim(),
            "0"
        );
    }
    // The addresses were released: after a restart rebuilds the bridge, the /29's five
    // dynamic addresses are all still available.
    h.kill9_daemon();
    h.start_daemon();
    h.ok(&["start", "victim"]);
    for i in 0..4 {
        h.ok(&[
            "run",
            "-d",
            "--name",
            &format!("fill{i}"),
            "--network",
            "small",
            "--",
            "sleep",
            "300",
        ]);
    }
    let e = h.fails(&["run", "-d", "--network", "small", "--", "sleep", "300"]);
    assert!(e.contains("no available IP addresses"), "{e}");
}

#[test]
fn addresses_in_use_survive_a_daemon_restart() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    // A /29 has five addresses to hand out.
    h.ok(&["network", "create", "--subnet", "10.47.0.0/29", "tiny"]);
    let mut ips = Vec::new();
    for i in 0..5 {
        h.ok(&[
            "run",
            "-d",
            "--name",
            &format!("t{i}"),
            "--network",
            "tiny",
            "--",
            "sleep",
            "300",
        ]);
        ips.push(h.ip_of(&format!("t{i}"), "tiny"));
    }
    h.kill9_daemon();
    h.start_daemon();
    // The pools are rebuilt from the running containers' endpoints: still full.
    let e = h.fails(&["run", "-d", "--network", "tiny", "--", "sleep", "300"]);
    assert!(e.contains("no available IP addresses"), "{e}");
    h.ok(&["rm", "-f", "t2"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "again",
        "--network",
        "tiny",
        "--",
        "sleep",
        "300",
    ]);
    assert_eq!(h.ip_of("again", "tiny"), ips[2], "the only free address");
}

#[test]
fn a_full_bridge_is_a_clear_error_that_changes_nothing() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    h.ok(&["network", "create", "--subnet", "10.47.0.0/16", "big"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "first",
        "--network",
        "big",
        "--",
        "sleep",
        "300",
    ]);
    h.ok(&["network", "create", "--subnet", "10.48.0.0/24", "other"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "spare",
        "--network",
        "other",
        "--",
        "sleep",
        "300",
    ]);
    let id = h.ok(&["network", "inspect", "-f", "{{.Id}}", "big"]);
    let bridge = format!("berth-{}", &id.trim()[..9]);
    // A Linux bridge takes 1023 ports: fill the other 1022 with plain veth pairs.
    h.ns.sh_ok(&format!(
        "for i in $(seq 1 1022); do echo \"link add fx$i type veth peer name fy$i\"; \
         echo \"link set fx$i master {bridge}\"; done | ip -batch -"
    ));
    let veths = |h: &Host| h.links().iter().filter(|l| l.starts_with("bv")).count();
    let netns = |h: &Host| {
        std::fs::read_dir(h.dir.path().join("run/netns"))
            .unwrap()
            .count()
    };
    let (v0, n0) = (veths(&h), netns(&h));

    let e = h.fails(&[
        "run",
        "-d",
        "--name",
        "second",
        "--network",
        "big",
        "--",
        "sleep",
        "300",
    ]);
    assert!(
        e.contains("network big has no room") && e.contains("1023"),
        "{e}"
    );
    let e = h.fails(&["network", "connect", "big", "spare"]);
    assert!(e.contains("network big has no room"), "{e}");
    // Nothing of either attempt remains.
    assert_eq!((veths(&h), netns(&h)), (v0, n0));
    // As with docker, `run` leaves the container created when its start fails.
    assert_eq!(
        h.ok(&["inspect", "-f", "{{.State.Status}}", "second"])
            .trim(),
        "created"
    );
    assert_eq!(
        h.ok(&["network", "inspect", "-f", "{{len .Containers}}", "big"])
            .trim(),
        "1"
    );
    assert_eq!(
        h.ok(&[
            "inspect",
            "-f",
            "{{len .NetworkSettings.Networks}}",
            "spare"
        ])
        .trim(),
        "1"
    );
    // With one port free again the same commands work.
    h.ns.sh_ok("ip link del fx1");
    h.ok(&["start", "second"]);
    h.ns.sh_ok("ip link del fx2");
    h.ok(&["network", "connect", "big", "spare"]);
}
