//! Around a service's life, with berth's CLI and docker's: `service logs` gathers every
//! task's log from every node, `service update --publish-add/--publish-rm/--args` changes
//! what a service publishes and runs, and the real docker CLI creates, inspects, scales,
//! updates, reads the logs of and removes a service.

mod common;

use common::cluster::Fabric;
use common::wait_until;

fn ask(fabric: &Fabric, node: u8, port: u16) -> String {
    fabric.ask(&format!("10.99.0.{node}:{port}"))
}

#[test]
fn logs_from_every_node_and_updates_of_ports_and_command() {
    need_root!();
    let fabric = Fabric::new();
    let (n1, _n2) = fabric.two_nodes_on_app();
    n1.ok(&[
        "service",
        "create",
        "--name",
        "talk",
        "--replicas",
        "2",
        "--network",
        "app",
        "--",
        "sh",
        "-c",
        "echo hello from $(hostname); exec sleep 600",
    ]);
    // One task per node; each one's line, named as docker names it, from one daemon.
    wait_until("both tasks' lines", || {
        let o = n1.ok(&["service", "logs", "talk"]);
        o.lines().count() == 2
            && o.contains("@n11    | hello from")
            && o.contains("@n12    | hello from")
    });
    let logs = n1.ok(&["service", "logs", "talk"]);
    assert!(logs.lines().all(|l| l.starts_with("talk.")), "{logs}");

    // A port and a new command by update; then the port taken away.
    n1.ok(&[
        "service",
        "update",
        "--publish-add",
        "8080:80",
        "--args",
        "socat TCP-LISTEN:80,fork,reuseaddr SYSTEM:hostname",
        "talk",
    ]);
    wait_until("8080 answers through both nodes", || {
        !ask(&fabric, 11, 8080).is_empty() && !ask(&fabric, 12, 8080).is_empty()
    });
    let ls = n1.ok(&["service", "ls", "--format", "{{.Ports}}"]);
    assert_eq!(ls.trim(), "*:8080->80/tcp");
    n1.ok(&["service", "update", "--publish-rm", "8080", "talk"]);
    wait_until("8080 no longer published", || {
        ask(&fabric, 12, 8080).is_empty()
    });
    let err = n1.fails(&["service", "update", "--publish-add", "8080:80/sctp", "talk"]);
    assert!(err.contains("host mode"), "{err}");

    if std::process::Command::new("docker")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping the docker CLI part: no docker CLI");
        return;
    }
    let docker = |args: &[&str]| {
        let o = n1.docker(args);
        assert!(
            o.status.success(),
            "docker {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    docker(&[
        "service",
        "create",
        "--detach",
        "--no-resolve-image",
        "--name",
        "d1",
        "--network",
        "app",
        "--replicas",
        "2",
        "busybox",
        "sh",
        "-c",
        "echo docker says hi; exec sleep 600",
    ]);
    assert_eq!(
        docker(&[
            "service",
            "inspect",
            "--format",
            "{{.Spec.Name}} {{.Spec.Mode.Replicated.Replicas}}",
            "d1"
        ])
        .trim(),
        "d1 2"
    );
    wait_until("d1 at 2/2", || {
        n1.ok(&["service", "ls", "--format", "{{.Name}} {{.Replicas}}"])
            .lines()
            .any(|l| l == "d1 2/2")
    });
    let logs = docker(&["service", "logs", "d1"]);
    assert_eq!(logs.matches("docker says hi").count(), 2, "{logs}");
    assert!(logs.contains("d1.1.") && logs.contains("@n1"), "{logs}");
    docker(&["service", "scale", "--detach", "d1=3"]);
    wait_until("d1 at 3/3", || {
        n1.ok(&["service", "ls", "--format", "{{.Name}} {{.Replicas}}"])
            .lines()
            .any(|l| l == "d1 3/3")
    });
    docker(&["service", "update", "--detach", "--env-add", "X=1", "d1"]);
    let env = n1.ok(&[
        "service",
        "inspect",
        "-f",
        "{{.Spec.TaskTemplate.ContainerSpec.Env}}",
        "d1",
    ]);
    assert!(env.contains("X=1"), "{env}");
    docker(&["service", "rm", "d1"]);
    assert!(!n1.ok(&["service", "ls"]).contains("d1"));
}
