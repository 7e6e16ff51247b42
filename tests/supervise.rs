//! What the daemon does on its own: restart policies (with back-off, also across a
//! daemon restart) and health checks that steer DNS answers.

mod common;
use common::{wait_until, Host};

fn inspect(h: &Host, name: &str, tmpl: &str) -> String {
    h.ok(&["inspect", "--format", tmpl, name])
        .trim()
        .to_string()
}

fn dig(h: &Host, from: &str, name: &str) -> Vec<String> {
    let mut v: Vec<String> = h
        .ok(&["exec", from, "dig", "+short", "+time=2", "+tries=1", name])
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(String::from)
        .collect();
    v.sort();
    v
}

#[test]
fn restart_policies() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    h.ok(&["network", "create", "--subnet", "10.51.0.0/24", "n"]);
    // on-failure:2 — two restarts, then it stays exited.
    h.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "--",
        "sh",
        "-c",
        "exit 3",
    ]);
    wait_until("two restarts", || {
        inspect(&h, "flaky", "{{.RestartCount}}") == "2"
    });
    wait_until("the last exit", || {
        inspect(&h, "flaky", "{{.State.Status}}") == "exited"
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(inspect(&h, "flaky", "{{.RestartCount}}"), "2");
    assert_eq!(
        inspect(
            &h,
            "flaky",
            "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        ),
        "on-failure:2"
    );

    // always: the process dies → it comes back, with a new address that DNS follows.
    h.sleeper("svc", &["--network", "n", "--restart", "always"]);
    h.sleeper("client", &["--network", "n"]);
    let (pid, ip) = (inspect(&h, "svc", "{{.State.Pid}}"), h.ip_of("svc", "n"));
    h.ns.sh_ok(&format!("kill -9 {pid}"));
    wait_until("svc to come back", || {
        inspect(&h, "svc", "{{.State.Status}}") == "running"
            && inspect(&h, "svc", "{{.State.Pid}}") != pid
    });
    assert_eq!(inspect(&h, "svc", "{{.RestartCount}}"), "1");
    let ip2 = h.ip_of("svc", "n");
    assert_ne!(ip, ip2, "a new address (no immediate reuse)");
    assert_eq!(dig(&h, "client", "svc"), vec![ip2]);

    // Stopped by the user: not restarted.
    h.ok(&["stop", "-t", "1", "svc"]);
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert_eq!(inspect(&h, "svc", "{{.State.Status}}"), "exited");

    // Across a daemon restart: a container that dies while the daemon is down is
    // restarted when it comes back; unless-stopped that was stopped stays stopped;
    // always starts again even after a manual stop (docker's rule).
    h.sleeper("keep", &["--network", "n", "--restart", "unless-stopped"]);
    h.sleeper("quiet", &["--restart", "unless-stopped"]);
    h.ok(&["stop", "-t", "1", "quiet"]);
    let keep_pid = inspect(&h, "keep", "{{.State.Pid}}");
    h.kill9_daemon();
    h.ns.sh_ok(&format!("kill -9 {keep_pid}"));
    h.start_daemon();
    wait_until("keep to be restarted", || {
        inspect(&h, "keep", "{{.State.Status}}") == "running"
    });
    assert_eq!(inspect(&h, "quiet", "{{.State.Status}}"), "exited");
    wait_until("svc (always) to start with the daemon", || {
        inspect(&h, "svc", "{{.State.Status}}") == "running"
    });

    // Stopping a container that waits for its restart cancels the restart.
    h.ok(&[
        "run",
        "-d",
        "--name",
        "crashy",
        "--restart",
        "always",
        "--",
        "sh",
        "-c",
        "sleep 0.2; exit 1",
    ]);
    wait_until("a first restart", || {
        inspect(&h, "crashy", "{{.RestartCount}}") != "0"
    });
    h.ok(&["stop", "-t", "1", "crashy"]);
    let count = inspect(&h, "crashy", "{{.RestartCount}}");
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(inspect(&h, "crashy", "{{.State.Status}}"), "exited");
    assert_eq!(inspect(&h, "crashy", "{{.RestartCount}}"), count);

    // Bad input: refused, nothing created.
    let e = h.fails(&[
        "run",
        "-d",
        "--name",
        "x",
        "--restart",
        "sometimes",
        "--",
        "true",
    ]);
    assert!(e.contains("invalid restart policy"), "{e}");
    let e = h.fails(&[
        "run",
        "-d",
        "--name",
        "x",
        "--rm",
        "--restart",
        "always",
        "--",
        "true",
    ]);
    assert!(e.contains("Conflicting options"), "{e}");
    assert!(!h
        .ok(&["ps", "-a", "--format", "{{.Names}}"])
        .lines()
        .any(|l| l == "x"));
}

#[test]
fn health_checks_steer_dns() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    h.ok(&["network", "create", "--subnet", "10.52.0.0/24", "n"]);
    let flag = |n: &str| h.dir.path().join(format!("ok-{n}"));
    for n in ["r1", "r2"] {
        h.ok(&[
            "run",
            "-d",
            "--name",
            n,
            "--network",
            "n",
            "--network-alias",
            "svc",
            "--health-cmd",
            &format!("test -f {}", flag(n).display()),
            "--health-interval",
            "100ms",
            "--health-retries",
            "2",
            "--health-start-period",
            "30s",
            "--",
            "sleep",
            "300",
        ]);
    }
    h.sleeper("client", &["--network", "n"]);
    let (ip1, ip2) = (h.ip_of("r1", "n"), h.ip_of("r2", "n"));
    // Starting: out of the service's answers (their own names too).
    assert!(dig(&h, "client", "svc").is_empty());
    assert_eq!(inspect(&h, "r1", "{{.State.Health.Status}}"), "starting");
    assert!(h
        .ok(&["ps", "--format", "{{.Names}} {{.Status}}"])
        .contains("r1 Up"));
    std::fs::write(flag("r1"), "").unwrap();
    wait_until("r1 healthy", || {
        inspect(&h, "r1", "{{.State.Health.Status}}") == "healthy"
    });
    assert_eq!(dig(&h, "client", "svc"), vec![ip1.clone()]);
    let ps = h.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(
        ps.lines()
            .any(|l| l.starts_with("r1 Up") && l.ends_with("(healthy)")),
        "{ps}"
    );
    assert!(
        ps.lines()
            .any(|l| l.starts_with("r2 Up") && l.ends_with("(health: starting)")),
        "{ps}"
    );
    std::fs::write(flag("r2"), "").unwrap();
    wait_until("both healthy", || dig(&h, "client", "svc").len() == 2);
    // r1 fails twice in a row: unhealthy, out of the answers; r2 stays.
    std::fs::remove_file(flag("r1")).unwrap();
    wait_until("r1 unhealthy", || {
        inspect(&h, "r1", "{{.State.Health.Status}}") == "unhealthy"
    });
    assert_eq!(dig(&h, "client", "svc"), vec![ip2]);
    let log = inspect(&h, "r1", "{{(index .State.Health.Log 0).ExitCode}}");
    assert!(log == "0" || log == "1", "{log}");
    assert!(
        inspect(&h, "r1", "{{.State.Health.FailingStreak}}")
            .parse::<u32>()
            .unwrap()
            >= 2
    );
    // And back.
    std::fs::write(flag("r1"), "").unwrap();
    wait_until("r1 healthy again", || dig(&h, "client", "svc").len() == 2);
}
