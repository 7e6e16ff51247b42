//! A container's processes and output as a whole (issue 16, D4 and D6): everything a
//! container started ends with it, `exec`ed processes too, and its log is capped and rotated.

mod common;
use common::{wait_until, Host};

/// How many processes of the daemon's host have exactly `pattern` as command line.
fn count(h: &Host, pattern: &str) -> usize {
    // `exec`: no shell whose command line holds the pattern too (pgrep skips itself).
    let o = h.ns.sh(&format!("exec pgrep -fx '{pattern}'"));
    String::from_utf8_lossy(&o.stdout).lines().count()
}

#[test]
fn stop_and_rm_end_every_process_the_container_started() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    h.ok(&[
        "run",
        "-d",
        "--name",
        "kids",
        "--",
        "sh",
        "-c",
        "sleep 777 & sleep 778",
    ]);
    // A new session escapes a process group, not the PID namespace.
    h.ok(&[
        "exec",
        "kids",
        "sh",
        "-c",
        "setsid sleep 779 </dev/null >/dev/null 2>&1 &",
    ]);
    h.ok(&[
        "exec",
        "kids",
        "sh",
        "-c",
        "sleep 780 </dev/null >/dev/null 2>&1 &",
    ]);
    wait_until("the container's processes", || {
        ["sleep 777", "sleep 778", "sleep 779", "sleep 780"]
            .iter()
            .all(|p| count(&h, p) == 1)
    });
    // Its process is not PID 1 of its namespace: a plain SIGTERM ends it, as outside.
    h.ok(&["stop", "-t", "30", "kids"]);
    assert_eq!(
        h.ok(&["inspect", "-f", "{{.State.ExitCode}}", "kids"])
            .trim(),
        "143"
    );
    for p in ["sleep 777", "sleep 778", "sleep 779", "sleep 780"] {
        assert_eq!(count(&h, p), 0, "{p} outlived stop");
    }
    h.ok(&["rm", "kids"]);

    // rm -f of a running container, and a container sharing another's network (and PID
    // namespace, nested): it dies with the container it joined.
    h.ok(&[
        "run",
        "-d",
        "--name",
        "base",
        "--",
        "sh",
        "-c",
        "sleep 781 & sleep 782",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "joined",
        "--network",
        "container:base",
        "--",
        "sh",
        "-c",
        "sleep 783 & sleep 784",
    ]);
    wait_until("both containers' processes", || {
        ["sleep 781", "sleep 782", "sleep 783", "sleep 784"]
            .iter()
            .all(|p| count(&h, p) == 1)
    });
    // The joined one sees the base's processes (a nested PID namespace).
    let seen = h.ok(&[
        "exec",
        "joined",
        "sh",
        "-c",
        "echo $$; kill -0 1 && echo sees-init",
    ]);
    assert!(seen.contains("sees-init"), "{seen}");
    h.ok(&["rm", "-f", "base"]);
    for p in ["sleep 781", "sleep 782", "sleep 783", "sleep 784"] {
        assert_eq!(count(&h, p), 0, "{p} outlived rm -f of the base");
    }
    wait_until("the joined container to be exited", || {
        h.ok(&["ps", "-q"]).trim().is_empty()
    });
    h.ok(&["rm", "joined"]);
    // Nothing of the shims or inits remains either.
    assert_eq!(count(&h, ".*berth shim.*"), 0);
}

fn log_bytes(h: &Host, id: &str) -> u64 {
    let dir = h.dir.path().join("run/containers").join(id);
    std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("log"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

fn log_files(h: &Host, id: &str) -> Vec<String> {
    let dir = h.dir.path().join("run/containers").join(id);
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("log"))
        .collect();
    v.sort();
    v
}

#[test]
fn a_chatty_container_cannot_fill_the_disk() {
    need_root!();
    let mut h = Host::new();
    // The daemon's default for containers that set nothing.
    h.start_daemon_with(&["--log-opt", "max-size=64k", "--log-opt", "max-file=1"]);
    let err = h.fails(&["run", "-d", "--log-opt", "max-size=lots", "--", "true"]);
    assert!(err.contains("invalid log option max-size"), "{err}");
    let err = h.fails(&["run", "-d", "--log-opt", "colour=red", "--", "true"]);
    assert!(err.contains("unknown log opt 'colour'"), "{err}");

    let own = h.ok(&[
        "run",
        "-d",
        "--name",
        "chatty",
        "--log-opt",
        "max-size=100k",
        "--log-opt",
        "max-file=3",
        "--",
        "sh",
        "-c",
        "yes berth-was-here",
    ]);
    let dflt = h.ok(&["run", "-d", "--name", "chatty2", "--", "yes", "second"]);
    let (own, dflt) = (own.trim().to_string(), dflt.trim().to_string());
    // Enough output for many rotations (yes writes hundreds of MB a second unthrottled).
    wait_until("rotations", || log_files(&h, &own).len() == 3);
    std::thread::sleep(std::time::Duration::from_millis(500));
    // Stopped, so the files are not caught in the middle of a rotation.
    h.ok(&["stop", "chatty", "chatty2"]);
    // At most max-file files of max-size each (one write of up to 64 KiB may pass the cap).
    assert_eq!(log_files(&h, &own), ["log", "log.1", "log.2"]);
    assert!(
        log_bytes(&h, &own) <= 3 * (100 << 10) + (64 << 10),
        "{}",
        log_bytes(&h, &own)
    );
    assert_eq!(log_files(&h, &dflt), ["log"]);
    assert!(
        log_bytes(&h, &dflt) <= 2 * (64 << 10),
        "{}",
        log_bytes(&h, &dflt)
    );
    // The log reads as before, oldest file first, and inspect shows the options.
    let logs = h.berth(&["logs", "chatty"]);
    let out = String::from_utf8_lossy(&logs.stdout);
    assert!(
        out.lines()
            .take(100)
            .all(|l| l == "berth-was-here" || l.is_empty() || "berth-was-here".starts_with(l)),
        "{}",
        &out[..200.min(out.len())]
    );
    let cfg = h.ok(&["inspect", "-f", "{{json .HostConfig.LogConfig}}", "chatty"]);
    assert!(cfg.contains("\"max-size\":\"100k\""), "{cfg}");
    // Removed: nothing keeps writing anywhere.
    h.ok(&["rm", "-f", "chatty", "chatty2"]);
    assert_eq!(count(&h, "yes berth-was-here"), 0);
    assert_eq!(count(&h, "yes second"), 0);
    assert!(!h.dir.path().join("run/containers").join(&own).exists());
}
