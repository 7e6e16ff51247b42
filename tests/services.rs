//! Services across nodes: the elected scheduler spreads a service's tasks over the nodes,
//! each node's agent runs its own, the service's name answers every task, a lost node's
//! tasks are placed again elsewhere, and scaling and removal reach every node.

mod common;

use common::cluster::{dig, Fabric};
use common::{wait_until, Host};

fn tasks(h: &Host, svc: &str) -> Vec<String> {
    let mut v: Vec<String> = h
        .ok(&[
            "service",
            "ps",
            svc,
            "--format",
            "{{.Name}} {{.Node}} {{.CurrentState}}",
        ])
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// What `n` connections to `target` from container `ctr` on `h` were answered with (an
/// unanswered one is "").
fn answers(h: &Host, ctr: &str, target: &str, n: usize) -> std::collections::BTreeSet<String> {
    let to = format!("TCP:{target},connect-timeout=2");
    (0..n)
        .map(|_| {
            let o = h.berth(&["exec", ctr, "socat", "-T2", "-", &to]);
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        })
        .collect()
}

fn task_containers(h: &Host) -> usize {
    h.ok(&[
        "ps",
        "--filter",
        "label=com.docker.swarm.service.name",
        "--format",
        "{{.Names}}",
    ])
    .lines()
    .count()
}

#[test]
fn replicas_spread_answer_by_name_survive_a_node_and_scale() {
    need_root!();
    let fabric = Fabric::new();
    let n1 = fabric.node(11);
    let n2 = fabric.node(12);
    let mut n3 = fabric.node(13);
    n1.ok(&["network", "create", "-d", "overlay", "app"]);
    let out = n1.ok(&[
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        "3",
        "--network",
        "app",
        "--",
        "socat",
        "TCP-LISTEN:80,fork,reuseaddr",
        "SYSTEM:hostname",
    ]);
    assert!(out.contains("3/3 running"), "{out}");
    let ls = n2.ok(&[
        "service",
        "ls",
        "--format",
        "{{.Name}} {{.Mode}} {{.Replicas}}",
    ]);
    assert_eq!(ls, "web replicated 3/3\n");
    // One task per node: the scheduler spreads by load.
    let t = tasks(&n2, "web");
    assert_eq!(t.len(), 3, "{t:?}");
    let mut nodes: Vec<&str> = t.iter().map(|l| l.split(' ').nth(1).unwrap()).collect();
    nodes.sort_unstable();
    assert_eq!(nodes, ["n11", "n12", "n13"], "{t:?}");
    assert!(t.iter().all(|l| l.ends_with(" Running")), "{t:?}");
    for h in [&n1, &n2, &n3] {
        assert_eq!(task_containers(h), 1);
    }
    if std::process::Command::new("docker")
        .arg("--version")
        .output()
        .is_ok()
    {
        let o = n3.docker(&[
            "service",
            "ls",
            "--format",
            "{{.Name}} {{.Mode}} {{.Replicas}}",
        ]);
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "web replicated 3/3\n",
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let o = n3.docker(&[
            "service",
            "ps",
            "web",
            "--format",
            "{{.Name}} {{.CurrentState}}",
        ]);
        let text = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            text.lines().count(),
            3,
            "{text} {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    // The name answers the service's virtual IP on every node, tasks.NAME every task;
    // connections to the VIP are balanced over the tasks by the client's node.
    let vip = n2.ok(&[
        "service",
        "inspect",
        "-f",
        "{{range .Endpoint.VirtualIPs}}{{.Addr}}{{end}}",
        "web",
    ]);
    let vip = vip.trim().split('/').next().unwrap().to_string();
    assert!(vip.starts_with("10.0.0."), "{vip}");
    n1.sleeper("client", &["--network", "app"]);
    n3.sleeper("client3", &["--network", "app"]);
    wait_until("web answers its VIP and tasks.web the three tasks", || {
        dig(&n1, "client", "web") == [vip.clone()]
            && dig(&n3, "client3", "web") == [vip.clone()]
            && dig(&n1, "client", "tasks.web").len() == 3
    });
    assert!(!dig(&n1, "client", "tasks.web").contains(&vip));
    let mut seen = answers(&n1, "client", "web:80", 30);
    seen.remove("");
    assert_eq!(seen.len(), 3, "replicas that answered: {seen:?}");

    // Through the VIP to a task on another node, the task sees the client's own address.
    n1.ok(&[
        "service",
        "create",
        "--name",
        "peer",
        "--network",
        "app",
        "--constraint",
        "node.hostname==n12",
        "--",
        "socat",
        "TCP-LISTEN:81,fork,reuseaddr",
        "SYSTEM:echo $SOCAT_PEERADDR",
    ]);
    let client_ip = n1.ip_of("client", "app");
    wait_until("peer answers through its VIP", || {
        let o = n1.berth(&[
            "exec",
            "client",
            "socat",
            "-T2",
            "-",
            "TCP:peer:81,connect-timeout=2",
        ]);
        String::from_utf8_lossy(&o.stdout).trim() == client_ip
    });
    n1.ok(&["service", "rm", "peer"]);
    // dnsrr: the name answers every task, no VIP.
    n1.ok(&[
        "service",
        "create",
        "--name",
        "rr",
        "--replicas",
        "2",
        "--endpoint-mode",
        "dnsrr",
        "--network",
        "app",
        "--",
        "sleep",
        "600",
    ]);
    wait_until("rr answers its two tasks", || {
        dig(&n1, "client", "rr").len() == 2
    });
    n1.ok(&["service", "rm", "rr"]);

    // n13 lost: its task is placed again on a Ready node, the service is back at 3.
    n3.kill9_daemon();
    n3.ns.sh_ok("ip link set lan down");
    wait_until("web back at 3 running tasks without n13", || {
        let t = tasks(&n1, "web");
        t.len() == 3
            && t.iter().all(|l| l.ends_with(" Running"))
            && !t.iter().any(|l| l.contains(" n13 "))
    });
    wait_until("tasks.web answers the three live tasks", || {
        dig(&n1, "client", "tasks.web").len() == 3
    });
    // Through the VIP, every request is answered by a live task.
    wait_until("30 requests through the VIP all answered", || {
        (0..30).all(|_| {
            !n1.berth(&[
                "exec",
                "client",
                "socat",
                "-T2",
                "-",
                "TCP:web:80,connect-timeout=2",
            ])
            .stdout
            .is_empty()
        })
    });

    // Drain: n12's task moves to n11, the only other Ready node.
    n1.ok(&["node", "update", "--availability", "drain", "n12"]);
    wait_until("no task on the drained node", || {
        let t = tasks(&n1, "web");
        t.len() == 3
            && t.iter()
                .all(|l| l.contains(" n11 ") && l.ends_with(" Running"))
    });
    wait_until("n12's task container gone", || task_containers(&n2) == 0);
    n1.ok(&["node", "update", "--availability", "active", "n12"]);
    // Constraints: a second service only where the label is.
    n1.ok(&["node", "update", "--label-add", "disk=ssd", "n12"]);
    n1.ok(&[
        "service",
        "create",
        "--name",
        "db",
        "--replicas",
        "2",
        "--network",
        "app",
        "--constraint",
        "node.labels.disk==ssd",
        "--",
        "sleep",
        "600",
    ]);
    let t = tasks(&n1, "db");
    assert!(
        t.len() == 2 && t.iter().all(|l| l.contains(" n12 ")),
        "{t:?}"
    );
    n1.ok(&["service", "rm", "db"]);
    wait_until("db's containers gone", || task_containers(&n2) == 0);

    // Scale down: the tasks go, and so do their containers.
    n2.ok(&["service", "scale", "web=1"]);
    wait_until("one task left", || tasks(&n1, "web").len() == 1);
    wait_until("one task container left", || {
        task_containers(&n1) + task_containers(&n2) == 1
    });
    let err = n1.fails(&["network", "rm", "app"]);
    assert!(err.contains("in use by service web"), "{err}");
    n1.ok(&["service", "rm", "web"]);
    wait_until("no task container left", || {
        task_containers(&n1) + task_containers(&n2) == 0
    });
    assert_eq!(n2.ok(&["service", "ls", "-q"]), "");
}

#[test]
fn services_need_a_cluster_and_good_input() {
    need_root!();
    let mut solo = Host::new();
    solo.start_daemon();
    let err = solo.fails(&["service", "ls"]);
    assert!(err.contains("cluster mode"), "{err}");

    let fabric = Fabric::new();
    let n1 = fabric.node(11);
    n1.ok(&["network", "create", "--subnet", "10.77.0.0/24", "local"]);
    for (args, want) in [
        (
            vec!["--name", "a", "--network", "local", "--", "sleep", "60"],
            "not an overlay network",
        ),
        (
            vec![
                "--name",
                "b",
                "--constraint",
                "node.cpu==4",
                "--",
                "sleep",
                "60",
            ],
            "not a key berth knows",
        ),
        (
            vec![
                "--name",
                "c",
                "--restart-condition",
                "sometimes",
                "--",
                "sleep",
                "60",
            ],
            "invalid restart condition",
        ),
    ] {
        let mut a = vec!["service", "create", "-d"];
        a.extend(args);
        let err = n1.fails(&a);
        assert!(err.contains(want), "{a:?}: {err}");
    }
    assert_eq!(n1.ok(&["service", "ls", "-q"]), "");
    n1.ok(&[
        "service", "create", "-d", "--name", "once", "--", "sleep", "60",
    ]);
    let err = n1.fails(&[
        "service", "create", "-d", "--name", "once", "--", "sleep", "60",
    ]);
    assert!(err.contains("already exists"), "{err}");
}

/// A task that fails its health check leaves the VIP and is replaced by a new task; the
/// service is back at its replica count and the sick task never answers again.
#[test]
fn an_unhealthy_task_leaves_the_vip_and_is_replaced() {
    need_root!();
    let fabric = Fabric::new();
    let n1 = fabric.node(11);
    let n2 = fabric.node(12);
    let flags = std::env::temp_dir().join(format!("berth-sick-{}", std::process::id()));
    std::fs::create_dir_all(&flags).unwrap();
    n1.ok(&["network", "create", "-d", "overlay", "app"]);
    let check = format!("test ! -e {}/$(hostname)", flags.display());
    let out = n1.ok(&[
        "service",
        "create",
        "--name",
        "hc",
        "--replicas",
        "2",
        "--network",
        "app",
        "--health-cmd",
        &check,
        "--health-interval",
        "200ms",
        "--health-retries",
        "1",
        "--",
        "socat",
        "TCP-LISTEN:80,fork,reuseaddr",
        "SYSTEM:hostname",
    ]);
    assert!(out.contains("2/2 running"), "{out}");
    n1.sleeper("client", &["--network", "app"]);
    let answers = |n: usize| answers(&n1, "client", "hc:80", n);
    let mut first = std::collections::BTreeSet::new();
    wait_until("both tasks answer through the VIP", || {
        first = answers(20);
        first.len() == 2 && !first.contains("")
    });
    let sick = first.iter().next().unwrap().clone();
    std::fs::write(flags.join(&sick), "").unwrap();
    wait_until(
        "the sick task replaced, two healthy tasks answering",
        || {
            let now = answers(20);
            now.len() == 2 && !now.contains(&sick) && !now.contains("")
        },
    );
    let ps = n2.ok(&["service", "ls", "--format", "{{.Replicas}}"]);
    assert_eq!(ps.trim(), "2/2");
    let _ = std::fs::remove_dir_all(&flags);
}

/// A port published in host mode answers on the nodes that run a task, from outside the
/// cluster; one task per node holds it, so a replica beyond the nodes waits. Ingress
/// publishing is refused with what to do instead.
#[test]
fn host_mode_ports_answer_where_a_task_runs() {
    need_root!();
    let fabric = Fabric::new();
    let n1 = fabric.node(11);
    let _n2 = fabric.node(12);
    let _n3 = fabric.node(13);
    n1.ok(&["network", "create", "-d", "overlay", "app"]);
    // The mesh reaches tasks over an overlay: without one, the error says what to add.
    let err = n1.fails(&[
        "service", "create", "-d", "--name", "mesh", "-p", "8080:80", "--", "sleep", "60",
    ]);
    assert!(
        err.contains("--network NET") && err.contains("mode=host"),
        "{err}"
    );
    n1.ok(&[
        "service",
        "create",
        "--name",
        "edge",
        "--replicas",
        "2",
        "--network",
        "app",
        "-p",
        "published=8090,target=80,mode=host",
        "--",
        "socat",
        "TCP-LISTEN:80,fork,reuseaddr",
        "SYSTEM:hostname",
    ]);
    let ls = n1.ok(&[
        "service",
        "ls",
        "--format",
        "{{.Name}} {{.Replicas}} {{.Ports}}",
    ]);
    assert_eq!(ls, "edge 2/2 *:8090->80/tcp\n");
    let on: Vec<String> = tasks(&n1, "edge")
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap().to_string())
        .collect();
    for n in [11, 12, 13] {
        let o = fabric.ns.sh(&format!(
            "socat -T2 - TCP:10.99.0.{n}:8090,connect-timeout=2 </dev/null"
        ));
        let answered = !String::from_utf8_lossy(&o.stdout).trim().is_empty();
        assert_eq!(
            answered,
            on.contains(&format!("n{n}")),
            "n{n}: tasks on {on:?}"
        );
    }
    // A fourth replica on three nodes: no node can hold the port twice, so it waits.
    n1.ok(&["service", "scale", "-d", "edge=4"]);
    wait_until("three of four running", || {
        n1.ok(&["service", "ls", "--format", "{{.Replicas}}"])
            .trim()
            == "3/4"
    });
    assert_eq!(tasks(&n1, "edge").len(), 3);
}

/// `service update` replaces the tasks one at a time with the new template: every task
/// answers with the new environment afterwards, and the service stays at its count.
#[test]
fn an_update_rolls_the_tasks_over() {
    need_root!();
    let fabric = Fabric::new();
    let (n1, _n2) = fabric.two_nodes_on_app();
    n1.ok(&[
        "service",
        "create",
        "--name",
        "echo",
        "--replicas",
        "2",
        "--network",
        "app",
        "-e",
        "MSG=one",
        "--",
        "socat",
        "TCP-LISTEN:80,fork,reuseaddr",
        "SYSTEM:echo $MSG",
    ]);
    n1.sleeper("client", &["--network", "app"]);
    let answers = |n: usize| answers(&n1, "client", "echo:80", n);
    wait_until("the old template answers", || {
        answers(10) == ["one".to_string()].into()
    });
    let ids = || n1.ok(&["service", "ps", "echo", "--format", "{{.ID}}"]);
    let before = ids();
    n1.ok(&["service", "update", "--env-add", "MSG=two", "echo"]);
    wait_until("every task on the new template", || {
        answers(20) == ["two".to_string()].into()
            && tasks(&n1, "echo")
                .iter()
                .filter(|l| l.ends_with(" Running"))
                .count()
                == 2
    });
    let after = ids();
    assert_eq!(after.lines().count(), 2, "{after}");
    assert!(
        after.lines().all(|id| !before.contains(id)),
        "every task replaced: {before} / {after}"
    );
    let env = n1.ok(&[
        "service",
        "inspect",
        "-f",
        "{{json .Spec.TaskTemplate.ContainerSpec.Env}}",
        "echo",
    ]);
    assert_eq!(env.trim(), r#"["MSG=two"]"#);
}

/// A global service runs one task on every Ready, active node, also on a node that joins
/// later, and leaves a drained one.
#[test]
fn a_global_service_follows_the_nodes() {
    need_root!();
    let fabric = Fabric::new();
    let (n1, _n2) = fabric.two_nodes_on_app();
    n1.ok(&[
        "service",
        "create",
        "--name",
        "agent",
        "--mode",
        "global",
        "--network",
        "app",
        "--",
        "sleep",
        "600",
    ]);
    let nodes = |h: &Host| -> Vec<String> {
        let mut v: Vec<String> = tasks(h, "agent")
            .iter()
            .filter(|l| l.ends_with(" Running"))
            .map(|l| l.split(' ').nth(1).unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(nodes(&n1), ["n11", "n12"]);
    let _n3 = fabric.node(13);
    wait_until("a task on the node that joined", || {
        nodes(&n1) == ["n11", "n12", "n13"]
    });
    n1.ok(&["node", "update", "--availability", "drain", "n12"]);
    wait_until("none on the drained node", || nodes(&n1) == ["n11", "n13"]);
    let ls = n1.ok(&["service", "ls", "--format", "{{.Mode}} {{.Replicas}}"]);
    assert_eq!(ls, "global 2/2\n");
}

/// The node that schedules (docker's `Leader` in `node ls`) is lost: another node takes the
/// scheduler's key once the lost one's lease expires, and a scale-up asked meanwhile is
/// carried out on the survivors with every slot once: no task lost, none twice.
#[test]
fn a_lost_scheduler_is_replaced_without_losing_or_duplicating_tasks() {
    need_root!();
    let fabric = Fabric::new();
    let mut hosts = vec![fabric.node(11), fabric.node(12), fabric.node(13)];
    hosts[0].ok(&["network", "create", "-d", "overlay", "app"]);
    hosts[0].ok(&[
        "service",
        "create",
        "--name",
        "s",
        "--replicas",
        "3",
        "--network",
        "app",
        "--",
        "sleep",
        "600",
    ]);
    let leader = |h: &Host| {
        h.ok(&["node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}"])
            .lines()
            .find(|l| l.ends_with(" Leader"))
            .map(|l| l.split(' ').next().unwrap_or_default().to_string())
    };
    let first = leader(&hosts[0]).expect("a node schedules");
    let i = ["n11", "n12", "n13"]
        .iter()
        .position(|n| *n == first)
        .unwrap();
    let mut lost = hosts.remove(i);
    lost.kill9_daemon();
    lost.ns.sh_ok("ip link set lan down");
    let other = &hosts[0];
    other.ok(&["service", "scale", "-d", "s=4"]);
    wait_until("another node schedules", || {
        leader(other).is_some_and(|l| l != first)
    });
    wait_until("four tasks on the survivors, each slot once", || {
        let t: Vec<String> = other
            .ok(&[
                "service",
                "ps",
                "s",
                "--filter",
                "desired-state=running",
                "--format",
                "{{.Name}} {{.Node}} {{.CurrentState}}",
            ])
            .lines()
            .map(str::to_string)
            .collect();
        let slots: std::collections::BTreeSet<&str> =
            t.iter().filter_map(|l| l.split(' ').next()).collect();
        t.len() == 4
            && slots.len() == 4
            && t.iter()
                .all(|l| l.ends_with(" Running") && !l.contains(&format!(" {first} ")))
    });
}
