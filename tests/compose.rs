//! `berth compose` end to end: a project of host programs with replicas, two networks, a
//! published port, DNS round robin over the replicas; idempotent `up`, scaling, `down`
//! leaving nothing, and bad files refused with nothing created.

mod common;
use common::{wait_until, Host};

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

/// seed 004's shape with socat: `proxy` (front only, publishes 8080) forwards each
/// connection to `web` by name (a new lookup per connection: DNS round robin spreads them);
/// each `web` replica answers with its hostname; `db` lives on `back`, which the proxy is
/// not on.
const PROJECT: &str = r#"
name: ${PROJECT_NAME:-shop}
services:
  proxy:
    command: ["socat", "TCP-LISTEN:8080,fork,reuseaddr", "TCP:web:8000,connect-timeout=2"]
    ports: ["${PROXY_PORT:-18080}:8080"]
    networks: [front]
    depends_on: [web]
  web:
    command: sh -c 'exec socat TCP-LISTEN:8000,fork,reuseaddr SYSTEM:"echo $$HOSTNAME $$DB_HOST"'
    deploy: {replicas: 3}
    environment:
      DB_HOST: db
    networks: [front, back]
    expose: ["8000"]
    depends_on: [db]
  db:
    command: ["sh", "-c", "echo db ready; exec socat TCP-LISTEN:6379,fork,reuseaddr SYSTEM:'echo +PONG'"]
    networks:
      back: {aliases: [redis]}
networks:
  front: {}
  back:
    internal: true
"#;

/// `berth compose ARGS` run in a project directory, against the host's daemon.
fn compose_cmd(h: &Host, dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(common::berth_bin());
    c.arg("-H")
        .arg(format!("unix://{}", h.socket().display()))
        .arg("compose")
        .args(args)
        .current_dir(dir);
    c
}

fn compose(h: &Host, dir: &Path, args: &[&str]) -> std::process::Output {
    compose_cmd(h, dir, args).output().unwrap()
}

/// A host with a daemon and a project directory `NAME` holding `FILE` with `text`.
fn project(name: &str, file: &str, text: &str) -> (Host, std::path::PathBuf) {
    let mut h = Host::new();
    h.start_daemon();
    let dir = h.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(file), text).unwrap();
    (h, dir)
}

fn compose_ok(h: &Host, dir: &Path, args: &[&str]) -> String {
    let o = compose(h, dir, args);
    assert!(
        o.status.success(),
        "compose {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ids(h: &Host) -> Vec<String> {
    let mut v: Vec<String> = h
        .ok(&["ps", "-a", "--no-trunc", "--format", "{{.Names}} {{.ID}}"])
        .lines()
        .map(String::from)
        .collect();
    v.sort();
    v
}

fn through_proxy(h: &Host) -> String {
    let o =
        h.ns.sh("socat -T2 - TCP:127.0.0.1:18080,connect-timeout=2 </dev/null");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn a_project_up_scaled_and_down() {
    need_root!();
    let (h, dir) = project("shop", "compose.yaml", PROJECT);
    std::fs::write(dir.join(".env"), "PROXY_PORT=18080\n").unwrap();

    compose_ok(&h, &dir, &["up", "-d"]);
    let names: Vec<String> = ids(&h)
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "shop-db-1",
            "shop-proxy-1",
            "shop-web-1",
            "shop-web-2",
            "shop-web-3"
        ]
    );
    assert!(h
        .ok(&["network", "ls", "--format", "{{.Name}}"])
        .contains("shop_back"));

    // The seed's curl loop: every replica answers, and each knows the db by name.
    wait_until("the proxy to answer", || !through_proxy(&h).is_empty());
    let mut seen = HashSet::new();
    for _ in 0..30 {
        let r = through_proxy(&h);
        assert!(r.ends_with(" db"), "{r}");
        seen.insert(r.split(' ').next().unwrap().to_string());
    }
    assert_eq!(seen.len(), 3, "answers from {seen:?}");
    // The service name holds all replicas; db is not reachable (nor named) from the proxy.
    assert_eq!(
        h.ok(&["exec", "shop-proxy-1", "dig", "+short", "web"])
            .lines()
            .count(),
        3
    );
    assert!(h
        .ok(&["exec", "shop-proxy-1", "dig", "+short", "db"])
        .trim()
        .is_empty());
    // db's alias on back.
    let redis = h.ok(&["exec", "shop-web-2", "dig", "+short", "redis"]);
    assert_eq!(redis.trim(), h.ip_of("shop-db-1", "shop_back"));
    let port = compose_ok(&h, &dir, &["port", "proxy", "8080"]);
    assert_eq!(port.lines().next(), Some("0.0.0.0:18080"), "{port}");
    let ps = compose_ok(&h, &dir, &["ps"]);
    assert_eq!(ps.lines().count(), 6, "{ps}");
    assert!(ps.contains("0.0.0.0:18080->8080/tcp"), "{ps}");

    // exec and logs by service.
    let host = compose_ok(&h, &dir, &["exec", "-T", "--index", "2", "web", "hostname"]);
    assert_eq!(
        host.trim(),
        h.ok(&["inspect", "--format", "{{.Config.Hostname}}", "shop-web-2"])
            .trim()
    );
    let logs = compose_ok(&h, &dir, &["logs", "db"]);
    assert_eq!(logs.trim(), "db-1 | db ready", "{logs}");

    // Up again: nothing changes.
    let before = ids(&h);
    compose_ok(&h, &dir, &["up", "-d"]);
    assert_eq!(ids(&h), before);

    // Scale down then up: the others are not touched.
    compose_ok(&h, &dir, &["up", "-d", "--scale", "web=1"]);
    let after = ids(&h);
    assert_eq!(after.len(), 3);
    for kept in ["shop-db-1 ", "shop-proxy-1 ", "shop-web-1 "] {
        let a = after.iter().find(|l| l.starts_with(kept)).unwrap();
        assert!(before.contains(a), "{kept} was recreated");
    }
    compose_ok(&h, &dir, &["up", "-d", "--scale", "web=2"]);
    assert_eq!(ids(&h).len(), 4);

    // A changed service is recreated, the others stay.
    std::fs::write(
        dir.join("compose.yaml"),
        PROJECT.replace("DB_HOST: db", "DB_HOST: redis"),
    )
    .unwrap();
    let before = ids(&h);
    compose_ok(&h, &dir, &["up", "-d"]);
    let now = ids(&h);
    assert!(now
        .iter()
        .any(|l| l.starts_with("shop-db-1 ") && before.contains(l)));
    assert!(now
        .iter()
        .filter(|l| l.starts_with("shop-web-"))
        .all(|l| !before.contains(l)));
    wait_until("the new web replicas", || {
        through_proxy(&h).ends_with(" redis")
    });

    // A service removed from the file is an orphan: down keeps it (and says so) unless
    // --remove-orphans.
    let small = PROJECT.split("  proxy:").next().unwrap().to_string()
        + &PROJECT[PROJECT.find("  web:").unwrap()..];
    std::fs::write(dir.join("compose.yaml"), &small).unwrap();
    let o = compose(&h, &dir, &["down"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("orphan containers (shop-proxy-1)"));
    assert_eq!(ids(&h).len(), 1, "the orphan stays");
    compose_ok(&h, &dir, &["down", "--remove-orphans"]);
    assert!(ids(&h).is_empty());
    let nets = h.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!nets.contains("shop_"), "{nets}");
    assert!(
        h.links().iter().all(|l| !l.starts_with("bv")),
        "{:?}",
        h.links()
    );
}

#[test]
fn config_warnings_and_bad_files() {
    need_root!();
    let (h, dir) = project(
        "proj",
        "docker-compose.yml",
        "version: '3'\nservices:\n  app:\n    image: nginx:latest\n    volumes: [./x:/x]\n    command: [sleep, '${NAP:-300}']\n",
    );
    let o = compose(&h, &dir, &["config"]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    for k in ["`version`", "services.app.image", "services.app.volumes"] {
        assert_eq!(err.matches(k).count(), 1, "{k}: {err}");
    }
    let cfg = String::from_utf8_lossy(&o.stdout);
    assert!(cfg.contains("name: proj"), "{cfg}");
    assert!(
        cfg.contains("- '300'") || cfg.contains("- \"300\"") || cfg.contains("- 300"),
        "{cfg}"
    );
    // The shell's variables win over .env.
    std::fs::write(dir.join(".env"), "NAP=5\n").unwrap();
    assert!(compose_ok(&h, &dir, &["config"]).contains('5'));

    // A broken file: line and column, and nothing created.
    std::fs::write(
        dir.join("docker-compose.yml"),
        "services:\n  app:\n    command: [sleep\n    ports: 80\n",
    )
    .unwrap();
    let o = compose(&h, &dir, &["up", "-d"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("line ") && err.contains("column "), "{err}");
    assert!(ids(&h).is_empty());
    assert!(!h
        .ok(&["network", "ls", "--format", "{{.Name}}"])
        .contains("proj_"));
    // A file that parses but is wrong: the key's path.
    std::fs::write(
        dir.join("docker-compose.yml"),
        "services:\n  app: {command: [x], depends_on: [nope]}\n",
    )
    .unwrap();
    let o = compose(&h, &dir, &["up", "-d"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("services.app.depends_on: no service \"nope\"")
    );
    assert!(ids(&h).is_empty());
}

#[test]
fn service_healthy_orders_the_start() {
    need_root!();
    let (h, dir) = project("ordered", "compose.yaml", "");
    let flag = dir.join("db-ready");
    std::fs::write(
        dir.join("compose.yaml"),
        format!(
            "services:\n  db:\n    command: [sleep, '300']\n    healthcheck: {{test: 'test -f {}', interval: 100ms, start_period: 60s}}\n  web:\n    command: [sleep, '300']\n    restart: always\n    depends_on:\n      db: {{condition: service_healthy}}\n",
            flag.display()
        ),
    )
    .unwrap();
    let mut up = compose_cmd(&h, &dir, &["up", "-d"]).spawn().unwrap();
    wait_until("db to run", || {
        ids(&h).iter().any(|l| l.starts_with("ordered-db-1 "))
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        !ids(&h).iter().any(|l| l.starts_with("ordered-web-1 ")),
        "web started before db was healthy"
    );
    assert!(
        up.try_wait().unwrap().is_none(),
        "up returned before db was healthy"
    );
    std::fs::write(&flag, "").unwrap();
    assert!(up.wait().unwrap().success());
    assert!(ids(&h).iter().any(|l| l.starts_with("ordered-web-1 ")));
    assert_eq!(
        h.ok(&[
            "inspect",
            "--format",
            "{{.State.Health.Status}} {{.HostConfig.RestartPolicy.Name}}",
            "ordered-db-1"
        ])
        .trim(),
        "healthy no"
    );
    assert_eq!(
        h.ok(&[
            "inspect",
            "--format",
            "{{.HostConfig.RestartPolicy.Name}}",
            "ordered-web-1"
        ])
        .trim(),
        "always"
    );
    compose_ok(&h, &dir, &["down"]);
    assert!(ids(&h).is_empty());
}

fn have(prog: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The seed's curl loop on the host, in the background: 60 requests, 50 ms apart.
fn curl_loop(h: &Host) -> std::process::Child {
    let script = "fails=0; for i in $(seq 60); do curl -sf -m 3 -o /dev/null http://localhost:8080/ || fails=$((fails+1)); sleep 0.05; done; echo $fails";
    Command::new("nsenter")
        .args(["-t", &h.ns.pid.to_string(), "-n", "--", "sh", "-c", script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// How many requests of a `curl_loop` failed.
fn failures(loop_: std::process::Child) -> u32 {
    let out = loop_.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// examples/seed-cluster as the README runs it: the seed's curl loop spreads over three
/// replicas, the counter grows, redis is out of the proxy's reach; scaling while a loop
/// runs fails no request.
#[test]
fn the_seed_cluster_showcase() {
    need_root!();
    for p in ["nginx", "redis-server", "redis-cli", "python3", "curl"] {
        if !have(p) {
            eprintln!("skipping: {p} missing (scripts/deps.sh installs it)");
            return;
        }
    }
    // A copy: the example directory stays clean (nginx writes run/ there).
    let (h, dir) = project("seed-cluster", "compose.yaml", "");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/seed-cluster");
    for f in ["compose.yaml", "app.py", "nginx.conf"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    compose_ok(&h, &dir, &["up", "-d"]);
    let curl = |h: &Host| {
        let o = h.ns.sh("curl -s -m 3 http://localhost:8080/");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let mut hosts = HashSet::new();
    let mut last = 0;
    for _ in 0..9 {
        let r = curl(&h);
        // "Hello from HOST! I have been seen N times."
        let host = r
            .split_whitespace()
            .nth(2)
            .unwrap_or_default()
            .trim_end_matches('!')
            .to_string();
        let n: u64 = r
            .split_whitespace()
            .nth(7)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{r}"));
        assert!(n > last, "the counter grows: {r}");
        last = n;
        hosts.insert(host);
    }
    assert_eq!(hosts.len(), 3, "{hosts:?}");
    // redis is on `back` only: the proxy can neither name nor reach it.
    assert!(h
        .ok(&["exec", "seed-cluster-proxy-1", "dig", "+short", "redis"])
        .trim()
        .is_empty());
    let redis_ip = h.ip_of("seed-cluster-redis-1", "seed-cluster_back");
    let o = h.berth(&[
        "exec",
        "seed-cluster-proxy-1",
        "redis-cli",
        "-h",
        &redis_ip,
        "-t",
        "1",
        "ping",
    ]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("PONG"));
    let ps = compose_ok(&h, &dir, &["ps"]);
    assert_eq!(ps.matches("(healthy)").count(), 4, "{ps}");

    // A replica's process dies: restart: always brings it back with a new address, and the
    // service name follows once it is healthy again.
    let inspect = |t: &str| {
        h.ok(&["inspect", "--format", t, "seed-cluster-web-2"])
            .trim()
            .to_string()
    };
    let (pid, old_ip) = (
        inspect("{{.State.Pid}}"),
        h.ip_of("seed-cluster-web-2", "seed-cluster_front"),
    );
    h.ns.sh_ok(&format!("kill -9 {pid}"));
    wait_until("web-2 back and healthy", || {
        inspect("{{.RestartCount}}") == "1" && inspect("{{.State.Health.Status}}") == "healthy"
    });
    let new_ip = h.ip_of("seed-cluster-web-2", "seed-cluster_front");
    assert_ne!(old_ip, new_ip);
    let answers = h.ok(&["exec", "seed-cluster-proxy-1", "dig", "+short", "web"]);
    assert!(
        answers.contains(&new_ip) && !answers.contains(&old_ip),
        "{answers}"
    );

    // Scaling up while requests run: none fails.
    let loop_ = curl_loop(&h);
    compose_ok(&h, &dir, &["up", "-d", "--scale", "web=4"]);
    assert_eq!(failures(loop_), 0, "failed requests while scaling up");
    assert_eq!(
        h.ok(&["exec", "seed-cluster-web-1", "dig", "+short", "web"])
            .lines()
            .count(),
        4
    );

    // Scaling down while requests run: only requests in flight on a removed replica may
    // fail (nginx retries refused connections on the next replica, so usually none).
    let loop_ = curl_loop(&h);
    compose_ok(&h, &dir, &["up", "-d", "--scale", "web=2"]);
    let fails = failures(loop_);
    assert!(fails <= 2, "{fails} failed requests while scaling down");
    assert_eq!(
        h.ok(&["exec", "seed-cluster-web-1", "dig", "+short", "web"])
            .lines()
            .count(),
        2
    );
    assert!(!curl(&h).is_empty());

    compose_ok(&h, &dir, &["down"]);
    assert!(ids(&h).is_empty());
}

/// `up` without -d: the containers' output, prefixed, until Ctrl-C stops them.
#[test]
fn attached_up_follows_output_and_stops_on_interrupt() {
    need_root!();
    let (h, dir) = project(
        "att",
        "compose.yaml",
        "services:\n  talk:\n    command: [sh, -c, 'echo hello from $$HOSTNAME; exec sleep 300']\n    hostname: talker\n  stubborn:\n    command: [sh, -c, 'trap \"\" TERM; while :; do sleep 0.1; done']\n    stop_grace_period: 60s\n",
    );
    let mut up = compose_cmd(&h, &dir, &["up"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(up.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "talk-1     | hello from talker");
    let up_pid = up.id().cast_signed();
    let interrupt = || {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(up_pid),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap()
    };
    // The first Ctrl-C stops gracefully: `stubborn` ignores SIGTERM and has 60 s …
    interrupt();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        up.try_wait().unwrap().is_none(),
        "still waiting for stubborn"
    );
    // … the second one does not wait.
    let t = std::time::Instant::now();
    interrupt();
    assert!(up.wait().unwrap().success());
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
    for c in ["att-talk-1", "att-stubborn-1"] {
        wait_until("the containers to exit", || {
            h.ok(&["inspect", "--format", "{{.State.Status}}", c])
                .trim()
                == "exited"
        });
    }
}
