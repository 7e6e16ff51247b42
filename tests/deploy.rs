//! Flocker's deploy files (seed 000) on three nodes: the application runs on the node the
//! deployment file names, its external port answers on every node (the routing mesh), and
//! moving it to another node in the file and deploying again moves it, the port answering
//! everywhere the whole time; bad files change nothing.

mod common;

use std::time::Duration;

use common::cluster::Fabric;
use common::wait_until;

const APP: &str = r#""version": 1
"applications":
  "mongodb-port-example":
    "image": "dockerfile/mongodb"
    "command": "socat TCP-LISTEN:27017,fork,reuseaddr SYSTEM:hostname"
    "ports":
    - "internal": 27017
      "external": 27017
"#;

fn ask(fabric: &Fabric, node: u8) -> String {
    fabric.ask(&format!("10.99.0.{node}:27017"))
}

#[test]
fn flocker_files_deploy_and_move_an_application() {
    need_root!();
    let fabric = Fabric::new();
    let n1 = fabric.node(11);
    let n2 = fabric.node(12);
    let _n3 = fabric.node(13);
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("port-application.yml");
    let dep = dir.path().join("port-deployment.yml");
    std::fs::write(&app, APP).unwrap();
    let write_dep = |on: &str, off: &str| {
        std::fs::write(
            &dep,
            format!("\"version\": 1\n\"nodes\":\n  \"{on}\": [\"mongodb-port-example\"]\n  \"{off}\": []\n"),
        )
        .unwrap();
    };
    let deploy = |h: &common::Host| h.ok(&["deploy", dep.to_str().unwrap(), app.to_str().unwrap()]);

    // Bad files: errors with line and column, and nothing made.
    std::fs::write(
        dir.path().join("bad.yml"),
        "\"version\": 1\n\"applications\":\n  \"x\":\n    \"command\": \"true\"\n    \"volume\": {\"mountpoint\": \"/data\"}\n",
    )
    .unwrap();
    write_dep("10.99.0.11", "10.99.0.12");
    let err = n1.fails(&[
        "deploy",
        dep.to_str().unwrap(),
        dir.path().join("bad.yml").to_str().unwrap(),
    ]);
    assert!(
        err.contains("line 5, column 5") && err.contains("volume"),
        "{err}"
    );
    write_dep("10.99.0.77", "10.99.0.12");
    let err = n1.fails(&["deploy", dep.to_str().unwrap(), app.to_str().unwrap()]);
    assert!(
        err.contains("\"10.99.0.77\" is not in the cluster"),
        "{err}"
    );
    assert_eq!(n1.ok(&["service", "ls", "-q"]), "");
    assert!(!n1.ok(&["network", "ls"]).contains("flocker"));

    // On n11 (named by its address, as in the seed); the port answers on all three nodes.
    write_dep("10.99.0.11", "10.99.0.12");
    let out = deploy(&n1);
    assert!(
        out.contains("mongodb-port-example: started on n11"),
        "{out}"
    );
    for n in [11, 12, 13] {
        wait_until(&format!("27017 answers through n{n}"), || {
            !ask(&fabric, n).is_empty()
        });
    }
    let task_host = ask(&fabric, 13);
    // Deploying the same files again changes nothing.
    let again = deploy(&n2);
    assert!(again.contains("mongodb-port-example: on n11"), "{again}");
    assert_eq!(ask(&fabric, 12), task_host);

    // Moved to n12 in the file: the port answers through every node all along.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let pid = fabric.ns.pid;
    let looper = std::thread::spawn(move || {
        let mut failed = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            for n in [11, 12, 13] {
                let o = std::process::Command::new("nsenter")
                    .args(["-t", &pid.to_string(), "-n", "--", "sh", "-c"])
                    .arg(format!(
                        "socat -T2 - TCP:10.99.0.{n}:27017,connect-timeout=2 </dev/null"
                    ))
                    .output()
                    .unwrap();
                let a = String::from_utf8_lossy(&o.stdout).trim().to_string();
                if a.is_empty() {
                    failed.push(n);
                } else {
                    seen.insert(a);
                }
            }
        }
        (failed, seen)
    });
    std::thread::sleep(Duration::from_millis(500));
    write_dep("n12", "n11");
    let out = deploy(&n1);
    assert!(out.contains("mongodb-port-example: moving to n12"), "{out}");
    let ps = n1.ok(&[
        "service",
        "ps",
        "mongodb-port-example",
        "--format",
        "{{.Node}} {{.CurrentState}}",
    ]);
    assert_eq!(ps, "n12 Running\n");
    // The old container goes 2 s after the new one runs.
    std::thread::sleep(Duration::from_millis(2500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (failed, seen) = looper.join().unwrap();
    assert!(
        failed.is_empty(),
        "requests failed during the move through {failed:?}"
    );
    assert_eq!(
        seen.len(),
        2,
        "the old task and then the new one answered: {seen:?}"
    );
    assert_ne!(ask(&fabric, 11), task_host, "the new task answers");
    wait_until("the old container gone from n11", || {
        n1.ok(&[
            "ps",
            "-q",
            "--filter",
            "label=com.docker.swarm.service.name",
        ])
        .is_empty()
    });

    // On no node: the application stops.
    std::fs::write(
        &dep,
        "\"version\": 1\n\"nodes\":\n  \"n11\": []\n  \"n12\": []\n",
    )
    .unwrap();
    let out = deploy(&n1);
    assert!(out.contains("stopped (no node runs it)"), "{out}");
    assert_eq!(n1.ok(&["service", "ls", "-q"]), "");
}
