//! `berth stack deploy` of seed 004's cluster (examples/seed-cluster: nginx, three web
//! replicas counting hits in redis) on three nodes: port 8080 answers on every node, the
//! three replicas answer, the counter grows; `stack ls/services/ps`; `stack rm` removes the
//! services and the networks.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::cluster::Fabric;

#[test]
fn the_seed_cluster_as_a_stack_on_three_nodes() {
    need_root!();
    let fabric = Fabric::new();
    let n1 = fabric.node(11);
    let n2 = fabric.node(12);
    let _n3 = fabric.node(13);
    // A copy: nginx writes run/ in its directory.
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/seed-cluster");
    for f in ["compose.yaml", "app.py", "nginx.conf"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let file = dir.path().join("compose.yaml");
    let out = n1.ok(&["stack", "deploy", "-c", file.to_str().unwrap(), "seed"]);
    assert!(out.contains("Creating service seed_web"), "{out}");
    let curl = |n: u8| {
        let o = fabric
            .ns
            .sh(&format!("curl -s -m 3 http://10.99.0.{n}:8080/"));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    // The stack settles: web's health checks pass, nginx resolves `web`.
    let t = Instant::now();
    while ![11, 12, 13]
        .iter()
        .all(|n| curl(*n).starts_with("Hello from"))
    {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no answer: {:?}",
            curl(11)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut hosts = BTreeSet::new();
    let mut last = 0;
    for i in 0..30 {
        let r = curl([11, 12, 13][i % 3]);
        // "Hello from HOST! I have been seen N times."
        let w: Vec<&str> = r.split_whitespace().collect();
        let n: u64 = w
            .get(7)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{r}"));
        assert!(n > last, "the counter grows: {r}");
        last = n;
        hosts.insert(w[2].trim_end_matches('!').to_string());
    }
    assert_eq!(hosts.len(), 3, "the three web replicas answered: {hosts:?}");
    let ls = n2.ok(&["stack", "ls"]);
    assert!(ls.contains("seed") && ls.contains('3'), "{ls}");
    let services = n2.ok(&["stack", "services", "seed"]);
    assert!(
        services.contains("seed_web") && services.contains("3/3"),
        "{services}"
    );
    assert!(services.contains("*:8080->80/tcp"), "{services}");
    let ps = n2.ok(&["stack", "ps", "seed"]);
    assert_eq!(
        ps.lines().filter(|l| l.contains("seed_web.")).count(),
        3,
        "{ps}"
    );
    // Deploying again updates in place.
    let again = n1.ok(&["stack", "deploy", "-c", file.to_str().unwrap(), "seed"]);
    assert!(again.contains("Updating service seed_proxy"), "{again}");
    assert!(curl(12).starts_with("Hello from"));
    n1.ok(&["stack", "rm", "seed"]);
    assert_eq!(n2.ok(&["service", "ls", "-q"]), "");
    let nets = n2.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!nets.contains("seed_"), "{nets}");
}
