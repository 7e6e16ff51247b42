//! IPv6 on overlay networks across nodes: the same routed VXLAN layout over the IPv4
//! underlay, IPv6 blocks routed via the other nodes' link-local addresses on the mesh
//! device, sandboxes routing the subnet through the gateway.

mod common;

use common::cluster::Fabric;
use common::{wait_until, Host};

/// What `socat` got back from `target` (an IPv6 address or a name) from a fresh container
/// on `h`, over IPv6 only.
fn asks6(h: &Host, net: &str, target: &str, port: u16) -> String {
    let t = if target.contains(':') {
        format!("[{target}]")
    } else {
        target.to_string()
    };
    h.socat_from(net, &format!("TCP6:{t}:{port},connect-timeout=2"))
}

/// Two nodes, a dual-stack overlay: a container on one node answers a container on the
/// other over IPv6, by address and by name (AAAA from the embedded resolver); two
/// containers of one node talk over IPv6 too (through the gateway); the mesh holds one
/// IPv6 neighbour per remote node and one route per remote IPv6 block, via link-local
/// addresses; the IPv6 block route goes when its owner is lost.
#[test]
fn ipv6_between_nodes_by_address_and_name() {
    need_root!();
    let fabric = Fabric::new();
    let n1 = fabric.node(11);
    let mut n2 = fabric.node(12);
    n1.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--attachable",
        "--ipv6",
        "--subnet",
        "fd00:b1::/64",
        "ov6",
    ]);
    n2.ok(&[
        "run",
        "-d",
        "--name",
        "web6",
        "--network",
        "ov6",
        "--",
        "socat",
        "TCP6-LISTEN:8080,ipv6only=0,fork,reuseaddr",
        "SYSTEM:echo hello-v6",
    ]);
    let ip6 = n2
        .ok(&[
            "inspect",
            "-f",
            "{{(index .NetworkSettings.Networks \"ov6\").GlobalIPv6Address}}",
            "web6",
        ])
        .trim()
        .to_string();
    assert!(ip6.starts_with("fd00:b1::"), "{ip6}");
    wait_until("web6 answers n11 over IPv6 by address", || {
        asks6(&n1, "ov6", &ip6, 8080).contains("hello-v6")
    });
    assert!(asks6(&n1, "ov6", "web6", 8080).contains("hello-v6"));
    // On web6's own node, through the gateway.
    assert!(asks6(&n2, "ov6", "web6", 8080).contains("hello-v6"));
    // IPv4 on the same network still works.
    let o = n1.berth(&[
        "run",
        "--rm",
        "--network",
        "ov6",
        "--",
        "socat",
        "-T2",
        "-",
        "TCP4:web6:8080",
    ]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("hello-v6"));

    let neigh = n1.ns.sh_ok("ip -6 neigh show dev berth-vx");
    assert!(
        neigh.contains("fe80::") && neigh.contains("PERMANENT"),
        "{neigh}"
    );
    assert_eq!(neigh.lines().count(), 1, "one per remote node: {neigh}");
    let routes = n1.ns.sh_ok("ip -6 route show dev berth-vx proto 183");
    assert!(
        routes.contains("fd00:b1::") && routes.contains("via fe80::"),
        "{routes}"
    );

    // n12 lost: its IPv6 block's route leaves n11 with its lease.
    n2.kill9_daemon();
    n2.ns.sh_ok("ip link set lan down");
    wait_until("n12's IPv6 route gone from n11", || {
        !n1.ns
            .sh_out("ip -6 route show dev berth-vx proto 183")
            .contains("fd00:b1::")
    });
    assert!(n1
        .ns
        .sh_out("ip -6 neigh show dev berth-vx")
        .trim()
        .is_empty());
}
