//! Overlay networks across nodes: daemons in host namespaces on an underlay LAN share
//! networks through a real etcd; containers on different nodes talk over the VXLAN mesh,
//! by name and by address.

mod common;

use common::cluster::{dig, Fabric, ETCD};
use common::{wait_until, Host};

/// `reply` came back from `target:port` through `net`, asked from a fresh container on `h`.
fn reaches(h: &Host, net: &str, target: &str, port: u16) -> String {
    h.socat_from(net, &format!("TCP:{target}:{port},connect-timeout=2"))
}

fn in_ctr(h: &Host, net: &str, script: &str) -> String {
    h.ok(&["run", "--rm", "--network", net, "--", "sh", "-c", script])
}

/// Two nodes: a network created on one is on the other at once, with a subnet of the
/// cluster's pool; containers on both talk TCP by name and by address; links have the
/// underlay's MTU less VXLAN's 50 bytes; egress leaves through the local node; the network
/// cannot be removed while another node has an endpoint on it, and can once it has none.
#[test]
fn containers_on_two_nodes_talk_by_name_and_address() {
    need_root!();
    let fabric = Fabric::new();
    let n1 = fabric.node(11);
    let n2 = fabric.node(12);
    n1.ok(&["network", "create", "-d", "overlay", "--attachable", "ov1"]);
    let listed = n2.ok(&[
        "network",
        "ls",
        "--filter",
        "driver=overlay",
        "--format",
        "{{.Name}} {{.Driver}} {{.Scope}}",
    ]);
    assert_eq!(listed, "ov1 overlay swarm\n");
    // The docker CLI sees the same, and creates overlays through berth's API.
    if std::process::Command::new("docker")
        .arg("--version")
        .output()
        .is_ok()
    {
        let o = n2.docker(&[
            "network",
            "create",
            "-d",
            "overlay",
            "--attachable",
            "viadocker",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = n1.docker(&[
            "network",
            "ls",
            "--filter",
            "driver=overlay",
            "--format",
            "{{.Name}} {{.Scope}}",
        ]);
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "ov1 swarm\nviadocker swarm\n"
        );
        assert!(n1.docker(&["network", "rm", "viadocker"]).status.success());
    }
    let subnet = n2.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}",
        "ov1",
    ]);
    assert_eq!(subnet.trim(), "10.0.0.0/24 10.0.0.1");

    n2.server("web", "ov1", 8080, "hello-from-n12");
    let ip = n2.ip_of("web", "ov1");
    assert!(ip.starts_with("10.0.0."), "{ip}");
    wait_until("web answers n11 by name", || {
        reaches(&n1, "ov1", "web", 8080).contains("hello-from-n12")
    });
    assert!(reaches(&n1, "ov1", &ip, 8080).contains("hello-from-n12"));
    // n11's catalog has n12's container, with the node it is on.
    let catalog: serde_json::Value =
        serde_json::from_str(&n1.ok(&["catalog", "--format", "json"])).unwrap();
    let web = catalog["Services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Name"] == "web")
        .unwrap_or_else(|| panic!("web in {catalog}"));
    assert_eq!(web["Endpoints"][0]["Node"], "n12", "{web}");
    assert_eq!(web["Endpoints"][0]["Address"], ip.as_str());
    assert_eq!(web["Endpoints"][0]["Network"], "ov1");
    // A blocking query on n11 wakes when a container starts on n12.
    let index = catalog["Index"].as_u64().unwrap().to_string();
    n2.sleeper("later", &["--network", "ov1"]);
    let woke: serde_json::Value = serde_json::from_str(&n1.ok(&[
        "catalog", "--index", &index, "--wait", "20s", "--format", "json",
    ]))
    .unwrap();
    assert!(woke["Index"].as_u64().unwrap() > index.parse::<u64>().unwrap());
    wait_until("later in n11's catalog", || {
        n1.ok(&[
            "catalog",
            "--format",
            "{{range .Services}}{{.Name}} {{end}}",
        ])
        .contains("later")
    });
    n2.ok(&["rm", "-f", "later"]);
    // Each node hands out addresses from blocks of its own.
    n1.sleeper("a1", &["--network", "ov1"]);
    let a1 = n1.ip_of("a1", "ov1");
    assert_ne!(a1, ip);
    let link = in_ctr(&n1, "ov1", "ip -o link show eth0");
    assert!(link.contains(" mtu 1450 "), "{link}");
    // Out of the cluster through the local node: etcd's address on the LAN.
    in_ctr(&n1, "ov1", &format!("ping -c 1 -W 2 {ETCD}"));
    // Kernel state per node: one VXLAN device, one route per remote block.
    let routes = n1.ns.sh_ok("ip route show dev berth-vx");
    assert!(
        routes.contains("via 10.99.0.12") && routes.contains("onlink"),
        "{routes}"
    );
    assert!(!routes.contains("via 10.99.0.11"), "{routes}");

    let err = n1.fails(&["network", "rm", "ov1"]);
    assert!(
        err.contains("active endpoints") && err.contains("web on n12"),
        "{err}"
    );
    n1.ok(&["rm", "-f", "a1"]);
    n2.ok(&["rm", "-f", "web"]);
    // n11's events tell of n12's endpoints, with the node they are on.
    let events = |h: &Host| {
        h.ok(&[
            "events",
            "--since",
            "1m",
            "--until",
            "0s",
            "--filter",
            "type=network",
            "--format",
            "{{.Action}} {{.Actor.Attributes.containerName}} {{index .Actor.Attributes \"node.name\"}} {{.Scope}}",
        ])
    };
    wait_until("web's connect and disconnect in n11's events", || {
        let e = events(&n1);
        e.contains("connect web n12 swarm") && e.contains("disconnect web n12 swarm")
    });
    assert!(
        events(&n1).contains("connect a1 n11 swarm"),
        "{}",
        events(&n1)
    );
    wait_until("the endpoints gone from etcd", || {
        n1.berth(&["network", "rm", "ov1"]).status.success()
    });
    wait_until("ov1 gone on n12", || {
        !n2.ok(&["network", "ls", "--format", "{{.Name}}"])
            .contains("ov1")
    });
    // --internal: the network spans the nodes, nothing leaves it.
    n2.ok(&["network", "create", "-d", "overlay", "--internal", "priv"]);
    n2.server("inner", "priv", 7070, "inside");
    wait_until("inner answers n11 on an internal overlay", || {
        reaches(&n1, "priv", "inner", 7070).contains("inside")
    });
    let out = n1.berth(&[
        "run",
        "--rm",
        "--network",
        "priv",
        "--",
        "ping",
        "-c",
        "1",
        "-W",
        "1",
        ETCD,
    ]);
    assert!(!out.status.success(), "an internal overlay reached the LAN");
    n2.ok(&["rm", "-f", "inner"]);
    wait_until("priv removed", || {
        n2.berth(&["network", "rm", "priv"]).status.success()
    });
    // The node's mesh devices stay (VXLAN, the routing mesh's return path); bridges go.
    let bridge = |l: &String| {
        l.starts_with("berth-") && !["berth-vx", "berth-ret", "berth-ret-p"].contains(&l.as_str())
    };
    wait_until("the bridges gone", || {
        !n1.links().iter().any(bridge) && !n2.links().iter().any(bridge)
    });
}

/// Three nodes: an alias held on two nodes answers both holders everywhere; two overlay
/// networks are isolated from each other across nodes; concurrent runs on all three nodes
/// get distinct addresses.
#[test]
fn aliases_isolation_and_concurrent_runs_on_three_nodes() {
    need_root!();
    let fabric = Fabric::new();
    let n1 = fabric.node(11);
    let n2 = fabric.node(12);
    let n3 = fabric.node(13);
    n1.ok(&["network", "create", "-d", "overlay", "front"]);
    n2.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.50.0.0/24",
        "--ip-range",
        "10.50.0.128/25",
        "-o",
        "com.docker.network.driver.mtu=1400",
        "back",
    ]);
    let err = n3.fails(&[
        "network",
        "create",
        "-d",
        "overlay",
        "-o",
        "com.docker.network.driver.mtu=1500",
        "big",
    ]);
    assert!(err.contains("does not fit the underlay"), "{err}");
    // One subnet per network, across the cluster: overlapping subnets are refused.
    let err = n3.fails(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.50.0.128/25",
        "clash",
    ]);
    assert!(err.contains("overlaps"), "{err}");
    let err = n3.fails(&["network", "create", "-d", "overlay", "front"]);
    assert!(err.contains("already exists"), "{err}");

    n1.sleeper("db1", &["--network", "front", "--network-alias", "db"]);
    n2.sleeper("db2", &["--network", "front", "--network-alias", "db"]);
    n3.sleeper("client", &["--network", "front"]);
    let want = {
        let mut v = vec![n1.ip_of("db1", "front"), n2.ip_of("db2", "front")];
        v.sort();
        v
    };
    wait_until("db answers both holders on n13", || {
        dig(&n3, "client", "db") == want
    });
    assert_eq!(dig(&n3, "client", "db1"), [n1.ip_of("db1", "front")]);
    // Reverse lookups of a remote address name its container.
    let ptr = n3.ok(&[
        "exec",
        "client",
        "dig",
        "+short",
        "-x",
        &n2.ip_of("db2", "front"),
    ]);
    assert!(ptr.starts_with("db2"), "{ptr}");

    // connect and disconnect of a running container, seen on another node.
    n1.sleeper("joiner", &[]);
    n1.ok(&[
        "network",
        "connect",
        "--alias",
        "late-alias",
        "front",
        "joiner",
    ]);
    let joined = n1.ip_of("joiner", "front");
    wait_until("the connected container answers on n13", || {
        dig(&n3, "client", "late-alias") == [joined.clone()]
    });
    n1.ok(&["network", "disconnect", "front", "joiner"]);
    wait_until("the disconnected container gone from n13's answers", || {
        dig(&n3, "client", "late-alias").is_empty()
    });

    // Isolation: a server on `back` at n12 is out of reach from `front` at n11, and from
    // a container on n12's own `front` bridge.
    n2.server("hidden", "back", 7000, "secret");
    let hidden = n2.ip_of("hidden", "back");
    let last: u8 = hidden.strip_prefix("10.50.0.").unwrap().parse().unwrap();
    assert!(last >= 128, "{hidden} outside --ip-range");
    let link = in_ctr(&n1, "back", "ip -o link show eth0");
    assert!(link.contains(" mtu 1400 "), "{link}");
    wait_until("hidden answers on back from n11", || {
        reaches(&n1, "back", &hidden, 7000).contains("secret")
    });
    assert!(!reaches(&n1, "front", &hidden, 7000).contains("secret"));
    assert!(!reaches(&n2, "front", &hidden, 7000).contains("secret"));

    // Concurrent runs: 4 on each node at once, every address distinct.
    let hosts = [&n1, &n2, &n3];
    std::thread::scope(|s| {
        for (i, h) in hosts.iter().enumerate() {
            for k in 0..4 {
                s.spawn(move || h.sleeper(&format!("c{i}{k}"), &["--network", "front"]));
            }
        }
    });
    let mut ips: Vec<String> = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        for k in 0..4 {
            ips.push(h.ip_of(&format!("c{i}{k}"), "front"));
        }
    }
    let n = ips.len();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), n, "an address handed out twice: {ips:?}");
}

/// A node whose daemon is killed keeps its data path while it is down and re-adopts its
/// containers when it comes back; leftover mesh routes go. A node lost for good (daemon
/// dead, LAN link down) is Down everywhere within the TTL, and its names leave the
/// other nodes' answers.
#[test]
fn daemon_restart_and_node_loss() {
    need_root!();
    let fabric = Fabric::new();
    let mut n1 = fabric.node_with_ttl(11, "8s");
    let mut n2 = fabric.node(12);
    n1.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.60.0.0/24",
        "ov",
    ]);
    n1.server("api", "ov", 9000, "api-on-n11");
    n2.server("web", "ov", 8080, "web-on-n12");
    n2.sleeper("probe", &["--network", "ov"]);
    let api = n1.ip_of("api", "ov");
    let web = n2.ip_of("web", "ov");
    wait_until("n12 reaches api", || {
        reaches(&n2, "ov", "api", 9000).contains("api-on-n11")
    });

    // kill -9: within the lease's TTL the data path is untouched.
    n1.kill9_daemon();
    assert!(reaches(&n2, "ov", &api, 9000).contains("api-on-n11"));
    n1.ns
        .sh_ok("ip route add 10.60.9.0/26 via 10.99.0.77 dev berth-vx proto 183 onlink");
    common::cluster::start_node(&mut n1, 11, &[]);
    assert!(n1.ok(&["ps", "--format", "{{.Names}}"]).contains("api"));
    wait_until("the leftover route gone", || {
        !n1.ns
            .sh_ok("ip route show dev berth-vx")
            .contains("10.99.0.77")
    });
    wait_until("n11 reaches web after its restart", || {
        reaches(&n1, "ov", "web", 8080).contains("web-on-n12")
    });
    assert!(reaches(&n2, "ov", "api", 9000).contains("api-on-n11"));

    // n12 lost for good: Down, and its names gone from n11's answers.
    n1.sleeper("asker", &["--network", "ov"]);
    assert_eq!(dig(&n1, "asker", "web").len(), 1);
    n2.kill9_daemon();
    n2.ns.sh_ok("ip link set lan down");
    wait_until("n12 Down on n11", || {
        n1.ok(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"])
            .contains("n12 Down")
    });
    wait_until("web gone from n11's answers", || {
        dig(&n1, "asker", "web").is_empty()
    });
    wait_until("n12's routes gone from n11", || {
        !n1.ns
            .sh_ok("ip route show dev berth-vx")
            .contains("10.99.0.12")
    });
    // n12's address block is its own while it is only Down, and free once it is removed.
    let err = n1.fails(&[
        "run",
        "-d",
        "--network",
        "ov",
        "--ip",
        &web,
        "--",
        "sleep",
        "60",
    ]);
    assert!(err.contains("node n12"), "{err}");
    n1.ok(&["node", "rm", "n12"]);
    n1.sleeper("heir", &["--network", "ov", "--ip", &web]);
    let _ = &mut n2;
}

/// etcd stopped (SIGSTOP) for 10 s: traffic between containers on two nodes keeps flowing
/// the whole time, operations that need the cluster say so, a container started from the
/// node's own block runs and its name reaches the other node once etcd is back, and
/// afterwards everything works again.
#[test]
fn cross_node_traffic_survives_a_stopped_etcd() {
    need_root!();
    let fabric = Fabric::new();
    let n1 = fabric.node(11);
    let n2 = fabric.node(12);
    n1.ok(&["network", "create", "-d", "overlay", "ov"]);
    n2.server("web", "ov", 8080, "still-here");
    n1.sleeper("client", &["--network", "ov"]);
    let web = n2.ip_of("web", "ov");
    wait_until("client reaches web", || {
        n1.berth(&[
            "exec",
            "client",
            "sh",
            "-c",
            &format!("socat -T2 - TCP:{web}:8080,connect-timeout=2"),
        ])
        .stdout
        .starts_with(b"still-here")
    });
    fabric.pause_etcd(true);
    // 10 s of requests, one every 250 ms, each with its own connection.
    let script = format!(
        "ok=0; fail=0; for i in $(seq 40); do if socat -T2 - TCP:{web}:8080,connect-timeout=2 | grep -q still-here; then ok=$((ok+1)); else fail=$((fail+1)); fi; sleep 0.25; done; echo $ok $fail"
    );
    let out = n1.ok(&["exec", "client", "sh", "-c", &script]);
    let err = n1.fails(&["network", "create", "-d", "overlay", "during"]);
    // A container from n11's own address block starts meanwhile; its record follows.
    n1.sleeper("late", &["--network", "ov"]);
    fabric.pause_etcd(false);
    assert_eq!(
        out.trim(),
        "40 0",
        "requests ok/failed while etcd was stopped"
    );
    assert!(err.contains("cluster store"), "{err}");
    wait_until("cluster operations work again", || {
        n1.berth(&["network", "create", "-d", "overlay", "after"])
            .status
            .success()
    });
    let late = n1.ip_of("late", "ov");
    wait_until("late answers on n12", || {
        dig(&n2, "web", "late") == [late.clone()]
    });
    wait_until("a new container reaches web by name", || {
        reaches(&n1, "ov", "web", 8080).contains("still-here")
    });
}
