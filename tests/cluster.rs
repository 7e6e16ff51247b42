//! Cluster mode, nodes: daemons in three host namespaces join through a real etcd on an
//! underlay LAN; membership follows their leases.

mod common;

use common::cluster::{cluster_flags, daemon_once, start_node, Fabric, ETCD};
use common::wait_until;

fn nodes(h: &common::Host) -> String {
    h.ok(&[
        "node",
        "ls",
        "--format",
        "{{.Hostname}} {{.Status}} {{.Availability}}",
    ])
}

/// Three nodes (n11, n12, n13: named after their address) see each other Ready; an update made on one is seen on another; a node
/// whose daemon dies is Down everywhere once its lease's TTL ran out, can then be removed,
/// and a restarted node keeps its id.
#[test]
fn nodes_join_update_and_go_down() {
    need_root!();
    let fabric = Fabric::new();
    let n1 = fabric.node(11);
    let mut n2 = fabric.node(12);
    let mut n3 = fabric.node(13);
    for h in [&n1, &n2, &n3] {
        assert_eq!(
            nodes(h),
            "n11 Ready Active\nn12 Ready Active\nn13 Ready Active\n"
        );
    }
    // docker's table, with the asking node marked.
    let table = n2.ok(&["node", "ls"]);
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("ID "), "{table}");
    let mine = table.lines().find(|l| l.contains(" n12 ")).unwrap();
    assert!(mine.contains(" * "), "{table}");
    assert!(!table
        .lines()
        .find(|l| l.contains(" n11 "))
        .unwrap()
        .contains(" * "));
    let info_id = n2.ok(&["info", "--format", "{{.Swarm.NodeID}}"]);
    assert!(mine.starts_with(info_id.trim()), "{table} / {info_id}");

    // Updates: availability and labels, made on n1, read on n2.
    n1.ok(&[
        "node",
        "update",
        "--availability",
        "drain",
        "--label-add",
        "zone=b",
        "--label-add",
        "disk=ssd",
        "n13",
    ]);
    n1.ok(&["node", "update", "--label-rm", "disk", "n13"]);
    assert_eq!(
        n2.ok(&[
            "node",
            "inspect",
            "--format",
            "{{.Spec.Availability}} {{json .Spec.Labels}} {{.Status.State}} {{.Status.Addr}}",
            "n13"
        ])
        .trim(),
        r#"drain {"zone":"b"} ready 10.99.0.13"#
    );
    let err = n1.fails(&["node", "update", "--availability", "sleepy", "n13"]);
    assert!(err.contains("active, pause or drain"), "{err}");
    let err = n1.fails(&["node", "update", "--label-rm", "nope", "n13"]);
    assert!(err.contains("doesn't exist"), "{err}");
    let err = n1.fails(&["node", "rm", "n13"]);
    assert!(err.contains("is not down"), "{err}");
    let err = n1.fails(&["node", "inspect", "n9"]);
    assert!(err.contains("not found"), "{err}");

    // n3's daemon dies: Down for the others within the TTL (2 s), its spec kept.
    n3.kill9_daemon();
    wait_until("n3 Down on n1", || nodes(&n1).contains("n13 Down Drain"));
    assert!(nodes(&n2).contains("n13 Down Drain"));
    // A restart brings it back Ready under the same id, with what `update` set.
    let id3 = n1.ok(&["node", "inspect", "--format", "{{.ID}}", "n13"]);
    start_node(&mut n3, 13, &[]);
    wait_until("n13 Ready again", || nodes(&n1).contains("n13 Ready Drain"));
    assert_eq!(
        n1.ok(&["node", "inspect", "--format", "{{.ID}}", "n13"]),
        id3
    );

    // Down, then removed.
    n3.kill9_daemon();
    wait_until("n3 Down again", || nodes(&n2).contains("n13 Down"));
    n2.ok(&["node", "rm", "n13"]);
    assert_eq!(nodes(&n1), "n11 Ready Active\nn12 Ready Active\n");
    // `--force` removes a node that is still up.
    n1.ok(&["node", "rm", "--force", "n12"]);
    assert_eq!(nodes(&n1), "n11 Ready Active\n");
    n2.kill9_daemon();
}

/// Configurations the daemon refuses, each with what was wrong, and nothing created: no
/// state under its --root, no node in etcd.
#[test]
fn bad_cluster_configuration_fails_and_changes_nothing() {
    need_root!();
    let fabric = Fabric::new();
    let n1 = fabric.node(11);
    let h = fabric.host(21);
    let refused = |tag: &str, args: &[&str], want: &str| {
        let o = daemon_once(&h, tag, args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{tag}: the daemon started");
        assert!(err.contains(want), "{tag}: {err}");
        assert!(
            !h.dir.path().join(format!("root-{tag}")).exists(),
            "{tag}: something was created under --root"
        );
    };
    let flags = |store: &str, addr: &str, name: &str| -> Vec<String> {
        vec![
            "--cluster-store".into(),
            store.into(),
            "--advertise-addr".into(),
            addr.into(),
            "--node-name".into(),
            name.into(),
        ]
    };
    let run = |tag: &str, f: Vec<String>, want: &str| {
        let args: Vec<&str> = f.iter().map(String::as_str).collect();
        refused(tag, &args, want);
    };
    // Nothing listens on that port: the error names the endpoint tried.
    run(
        "unreachable",
        flags(&format!("etcd://{ETCD}:2399"), "10.99.0.21", "n21"),
        &format!("{ETCD}:2399"),
    );
    run(
        "not-ours",
        flags(&format!("etcd://{ETCD}:2379"), "10.99.0.99", "n21"),
        "10.99.0.99 is not an address of this host",
    );
    run(
        "taken",
        flags(&format!("etcd://{ETCD}:2379"), "10.99.0.21", "n11"),
        "taken by a live node",
    );
    run(
        "scheme",
        flags(&format!("http://{ETCD}:2379"), "10.99.0.21", "n21"),
        "use etcd://HOST:PORT",
    );
    refused(
        "no-addr",
        &["--cluster-store", &format!("etcd://{ETCD}:2379")],
        "needs --advertise-addr",
    );
    assert_eq!(nodes(&n1), "n11 Ready Active\n");
    // The same flags with a free name join.
    let mut h = h;
    let f = cluster_flags(21);
    h.start_daemon_with(&f.iter().map(String::as_str).collect::<Vec<_>>());
    wait_until("n21 listed", || nodes(&n1).contains("n21 Ready"));
}

/// Outside a cluster, the node API answers as dockerd outside a swarm (503, and why).
#[test]
fn nodes_need_a_cluster() {
    need_root!();
    let mut h = common::Host::new();
    h.start_daemon();
    let err = h.fails(&["node", "ls"]);
    assert!(err.contains("not in a cluster"), "{err}");
    assert_eq!(
        h.ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"])
            .trim(),
        "inactive"
    );
}

/// Each node's VXLAN device holds an FDB and a neighbour entry for every other Ready node,
/// and they carry packets (a route the test adds, as an address block's route will be);
/// a node that goes Down loses its entries elsewhere; a restarted daemon removes entries
/// nobody wants and keeps the right ones (level-triggered).
#[test]
fn the_vxlan_mesh_follows_membership() {
    need_root!();
    let fabric = Fabric::new();
    let mut n1 = fabric.node(11);
    let n2 = fabric.node(12);
    let mut n3 = fabric.node(13);
    let fdb = |h: &common::Host| h.ns.sh_out("bridge fdb show dev berth-vx");
    let neigh = |h: &common::Host| h.ns.sh_out("ip neigh show dev berth-vx");
    wait_until("n11's entries for n12 and n13", || {
        let f = fdb(&n1);
        f.contains("dst 10.99.0.12") && f.contains("dst 10.99.0.13")
    });
    let nb = neigh(&n1);
    assert!(
        nb.contains("10.99.0.12 lladdr 02:b7:") && nb.contains("PERMANENT"),
        "{nb}"
    );
    assert!(!fdb(&n1).contains("dst 10.99.0.11"), "no entry for itself");
    let link = n1.ns.sh_ok("ip -d link show berth-vx");
    for want in [
        "vxlan id 4096",
        "local 10.99.0.11",
        "dstport 4789",
        "nolearning",
        "mtu 1450",
    ] {
        assert!(link.contains(want), "{want}: {link}");
    }
    // The MAC n11 expects for n12 is the one n12's device has.
    let mac12 = n2
        .ns
        .sh_ok("cat /sys/class/net/berth-vx/address")
        .trim()
        .to_string();
    assert!(
        nb.contains(&format!("10.99.0.12 lladdr {mac12}")),
        "{nb} / {mac12}"
    );

    // Packets across: a /32 on each device and a route to the other's, as blocks will have.
    n1.ns.sh_ok(
        "ip addr add 10.200.0.11/32 dev berth-vx && ip route add 10.200.0.12/32 via 10.99.0.12 dev berth-vx onlink",
    );
    n2.ns.sh_ok(
        "ip addr add 10.200.0.12/32 dev berth-vx && ip route add 10.200.0.11/32 via 10.99.0.11 dev berth-vx onlink",
    );
    n1.ns.sh_ok("ping -c 2 -W 2 -I 10.200.0.11 10.200.0.12");

    // n13 goes down: its entries leave n11 once its lease ran out.
    n3.kill9_daemon();
    wait_until("n13's entries gone from n11", || {
        !fdb(&n1).contains("dst 10.99.0.13") && !neigh(&n1).contains("10.99.0.13")
    });
    assert!(fdb(&n1).contains("dst 10.99.0.12"));

    // Leftovers on n11's device go when its daemon starts again; the right entries stay.
    n1.kill9_daemon();
    n1.ns.sh_ok(
        "bridge fdb add 02:b7:de:ad:be:ef dev berth-vx dst 10.99.0.99 self permanent && \
         ip neigh add 10.99.0.99 lladdr 02:b7:de:ad:be:ef dev berth-vx nud permanent",
    );
    start_node(&mut n1, 11, &[]);
    wait_until("the leftovers gone", || {
        !fdb(&n1).contains("10.99.0.99") && !neigh(&n1).contains("10.99.0.99")
    });
    assert!(fdb(&n1).contains("dst 10.99.0.12"));
    n1.ns.sh_ok("ping -c 1 -W 2 -I 10.200.0.11 10.200.0.12");
}

/// etcd stops answering for longer than the TTL: the nodes keep their mesh entries (nothing
/// is flushed for want of etcd), `node ls` says which store it cannot reach, and once etcd
/// answers again every node is Ready again by itself, with its entries. (etcd expires the
/// leases that ran out while it was stopped, so the entries may leave for one round before
/// the nodes register again: docs/cluster.md.)
#[test]
fn losing_etcd_keeps_the_mesh() {
    need_root!();
    let fabric = Fabric::new();
    let n1 = fabric.node(11);
    let n2 = fabric.node(12);
    let fdb = |h: &common::Host| h.ns.sh_out("bridge fdb show dev berth-vx");
    wait_until("the mesh", || {
        fdb(&n1).contains("dst 10.99.0.12") && fdb(&n2).contains("dst 10.99.0.11")
    });
    fabric.pause_etcd(true);
    // Longer than the 2 s TTL, in steps: the entries stay the whole time.
    for _ in 0..6 {
        std::thread::sleep(std::time::Duration::from_secs(1));
        assert!(fdb(&n1).contains("dst 10.99.0.12"), "n11 flushed its mesh");
        assert!(fdb(&n2).contains("dst 10.99.0.11"), "n12 flushed its mesh");
    }
    let err = n1.fails(&["node", "ls"]);
    assert!(err.contains(&format!("{ETCD}:2379")), "{err}");
    // `info` says the node is degraded, and why.
    let state = n1.ok(&[
        "info",
        "--format",
        "{{.Swarm.LocalNodeState}} {{.Swarm.Error}}",
    ]);
    assert!(
        state.starts_with("error cluster store unreachable since"),
        "{state}"
    );
    fabric.pause_etcd(false);
    wait_until("both Ready again", || {
        let o = n2.berth(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"]);
        String::from_utf8_lossy(&o.stdout) == "n11 Ready\nn12 Ready\n"
    });
    wait_until("the mesh again", || {
        fdb(&n1).contains("dst 10.99.0.12") && fdb(&n2).contains("dst 10.99.0.11")
    });
    wait_until("n11 active again", || {
        n1.ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"])
            .trim()
            == "active"
    });
}

/// A three-member etcd with one member gone: the nodes stay Ready, updates still go
/// through, and the mesh stays whole (the client goes to the members that answer).
#[test]
fn one_etcd_member_lost_changes_nothing() {
    need_root!();
    let mut fabric = Fabric::with_members(3);
    // A TTL long enough for a renewal to time out on the lost member and go to another.
    let n1 = fabric.node_with_ttl(11, "6s");
    let n2 = fabric.node_with_ttl(12, "6s");
    let fdb = |h: &common::Host| h.ns.sh_out("bridge fdb show dev berth-vx");
    wait_until("the mesh", || fdb(&n1).contains("dst 10.99.0.12"));
    fabric.kill_member(0);
    // Three TTLs with the member gone: Ready all along, as seen from both nodes.
    for _ in 0..18 {
        std::thread::sleep(std::time::Duration::from_secs(1));
        for h in [&n1, &n2] {
            let o = h.berth(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"]);
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(
                o.status.success(),
                "node ls failed with two members left: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert_eq!(out, "n11 Ready\nn12 Ready\n", "with two members left");
        }
        assert!(fdb(&n1).contains("dst 10.99.0.12"));
    }
    n2.ok(&["node", "update", "--label-add", "zone=c", "n11"]);
    assert_eq!(
        n1.ok(&[
            "node",
            "inspect",
            "--format",
            "{{index .Spec.Labels \"zone\"}}",
            "n11"
        ])
        .trim(),
        "c"
    );
}
