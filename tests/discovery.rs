//! Discovery for tools: the event stream (docker's shape, also through the real docker
//! CLI) and the service catalog's blocking queries.

mod common;
use common::{wait_until, Host};

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A long-running berth command (a follower) with its stdout piped.
fn follow(h: &Host, args: &[&str]) -> std::process::Child {
    berth_cmd(h, args).stdout(Stdio::piped()).spawn().unwrap()
}

fn berth_cmd(h: &Host, args: &[&str]) -> Command {
    let mut c = Command::new(common::berth_bin());
    c.arg("-H")
        .arg(format!("unix://{}", h.socket().display()))
        .args(args);
    c
}

#[test]
fn catalog_blocking_query_sees_a_new_container_at_once() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    h.ok(&["network", "create", "--subnet", "10.41.0.0/24", "app"]);
    let index: u64 = h
        .ok(&["catalog", "--format", "{{.Index}}"])
        .trim()
        .parse()
        .unwrap();
    // A follower blocks on the catalog …
    let index = index.to_string();
    let waiter = follow(
        &h,
        &[
            "catalog", "--index", &index, "--wait", "30s", "--format", "json",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    // … a container starts …
    h.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "app",
        "--network-alias",
        "www",
        "-p",
        "8080:80",
        "--label",
        "svc=front",
        "--",
        "sleep",
        "300",
    ]);
    let started = Instant::now();
    // … and the follower has it within the same second.
    let out = waiter.wait_with_output().unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "catalog answered {took:?} after run returned"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["Index"].as_u64().unwrap() > index.parse().unwrap());
    let ip = h.ip_of("web", "app");
    let services = v["Services"].as_array().unwrap();
    for name in ["web", "www"] {
        let s = services
            .iter()
            .find(|s| s["Name"] == name)
            .unwrap_or_else(|| panic!("{name} in {v}"));
        let e = &s["Endpoints"][0];
        assert_eq!(e["Address"], ip.as_str());
        assert_eq!(e["Network"], "app");
        assert_eq!(e["ContainerName"], "web");
        assert_eq!(e["Labels"]["svc"], "front");
        assert_eq!(e["Ports"][0]["PrivatePort"], 80);
        assert_eq!(e["Ports"][0]["HostPort"], 8080);
    }
    // Without a change, a blocking query returns after its wait with the same index.
    let now: u64 = h
        .ok(&["catalog", "--format", "{{.Index}}"])
        .trim()
        .parse()
        .unwrap();
    let t = Instant::now();
    let same = h.ok(&[
        "catalog",
        "--index",
        &now.to_string(),
        "--wait",
        "500ms",
        "--format",
        "{{.Index}}",
    ]);
    assert_eq!(same.trim(), now.to_string());
    assert!(t.elapsed() >= Duration::from_millis(450));
    // Gone from the catalog when it stops.
    h.ok(&["stop", "-t", "0", "web"]);
    assert!(!h.ok(&["catalog"]).contains("www"));
}

#[test]
fn events_follow_containers_and_networks() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    let log = h.dir.path().join("events.jsonl");
    let mut follower = berth_cmd(&h, &["events", "--format", "json"])
        .stdout(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let tmpl = "{{.Action}} {{.Actor.Attributes.name}}";
    let mut nets = follow(
        &h,
        &["events", "--filter", "type=network", "--format", tmpl],
    );
    std::thread::sleep(Duration::from_millis(300));
    h.ok(&["network", "create", "--subnet", "10.42.0.0/24", "app"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "app",
        "-p",
        "8080:80",
        "--",
        "sleep",
        "300",
    ]);
    let ip = h.ip_of("web", "app");
    h.ok(&["stop", "-t", "1", "web"]);
    h.ok(&["rm", "web"]);
    h.ok(&["network", "rm", "app"]);
    let read = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    wait_until("the destroy events", || {
        read().iter().filter(|e| e["Action"] == "destroy").count() == 2
    });
    let evs = read();
    let seq: Vec<String> = evs
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["Type"].as_str().unwrap(),
                e["Action"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        seq,
        [
            "network create",
            "container create",
            "network connect",
            "container start",
            "container kill",
            "network disconnect",
            "container die",
            "container stop",
            "container destroy",
            "network destroy",
        ]
    );
    // Registrator reads the legacy fields; addresses and ports ride along.
    let start = &evs[3];
    assert_eq!(start["status"], "start");
    assert_eq!(start["from"], "sleep");
    assert_eq!(start["Actor"]["Attributes"]["name"], "web");
    assert_eq!(start["Actor"]["Attributes"]["ip.app"], ip.as_str());
    assert!(start["Actor"]["Attributes"]["ports"]
        .as_str()
        .unwrap()
        .contains("->80/tcp"));
    assert_eq!(evs[2]["Actor"]["Attributes"]["ipv4Address"], ip.as_str());
    assert_eq!(evs[2]["Actor"]["Attributes"]["containerName"], "web");
    assert_eq!(evs[6]["Actor"]["Attributes"]["exitCode"], "143");
    follower.kill().unwrap();
    let _ = follower.wait();
    nets.kill().unwrap();
    let out = nets.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["create app", "connect app", "disconnect app", "destroy app"]
    );

    // The past: --since/--until replay and end (the real docker CLI sends the same).
    let replay = h.ok(&[
        "events",
        "--since",
        "1m",
        "--until",
        "0s",
        "--filter",
        "event=die",
        "--format",
        "{{.Actor.Attributes.name}}",
    ]);
    assert_eq!(replay.trim(), "web");
    let docker = Command::new("docker").arg("--version").output();
    if docker.is_ok_and(|o| o.status.success()) {
        // The docker CLI sends whole seconds: end the window just after now.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let (since, until) = ((now - 60).to_string(), (now + 1).to_string());
        let o = h.docker(&[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "type=container",
            "--format",
            "{{.Action}}",
        ]);
        let text = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            ["create", "start", "kill", "die", "stop", "destroy"],
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
