//! One cheap data-path check: a test "host" namespace with two bridges, three
//! "containers" and an "outside" peer that has no route back to the containers
//! (so it can only answer masqueraded connections). TCP via socat.

mod common;

use std::time::Duration;

use berth_firewall::{add_network, full_ruleset, remove_network, NetworkRules};
use common::{network, Killed, Netns};

const PORT: &str = "7777";

struct Lab {
    // Fields drop in order: stop the listeners before their namespaces go.
    _listeners: Vec<Killed>,
    host: Netns,
    a1: Netns,
    a2: Netns,
    b1: Netns,
    _outside: Netns,
}

fn container(host: &Netns, tag: &str, veth: &str, bridge: &str, addr: &str, gw: &str) -> Netns {
    let c = Netns::new(tag);
    host.exec(&[
        "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", &c.name,
    ]);
    host.exec(&["ip", "link", "set", veth, "master", bridge, "up"]);
    c.exec(&["ip", "addr", "add", addr, "dev", "eth0"]);
    c.exec(&["ip", "link", "set", "eth0", "up"]);
    c.exec(&["ip", "link", "set", "lo", "up"]);
    c.exec(&["ip", "route", "add", "default", "via", gw]);
    c
}

fn lab() -> Lab {
    let host = Netns::new("dp-host");
    host.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    for (br, addr) in [("br-a", "10.10.1.1/24"), ("br-b", "10.10.2.1/24")] {
        host.exec(&["ip", "link", "add", br, "type", "bridge"]);
        host.exec(&["ip", "addr", "add", addr, "dev", br]);
        host.exec(&["ip", "link", "set", br, "up"]);
    }
    let a1 = container(&host, "dp-a1", "va1", "br-a", "10.10.1.2/24", "10.10.1.1");
    let a2 = container(&host, "dp-a2", "va2", "br-a", "10.10.1.3/24", "10.10.1.1");
    let b1 = container(&host, "dp-b1", "vb1", "br-b", "10.10.2.2/24", "10.10.2.1");

    let outside = Netns::new("dp-out");
    host.exec(&[
        "ip",
        "link",
        "add",
        "up0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &outside.name,
    ]);
    host.exec(&["ip", "addr", "add", "192.0.2.1/24", "dev", "up0"]);
    host.exec(&["ip", "link", "set", "up0", "up"]);
    outside.exec(&["ip", "addr", "add", "192.0.2.2/24", "dev", "eth0"]);
    outside.exec(&["ip", "link", "set", "eth0", "up"]);

    let listen = ["socat", "-u", "TCP-LISTEN:7777,fork,reuseaddr", "/dev/null"];
    let listeners = vec![a1.spawn(&listen), b1.spawn(&listen), outside.spawn(&listen)];
    Lab {
        _listeners: listeners,
        host,
        a1,
        a2,
        b1,
        _outside: outside,
    }
}

fn connects(from: &Netns, to: &str) -> bool {
    let target = format!("TCP:{to}:{PORT},connect-timeout=1");
    from.try_exec(&["timeout", "5", "socat", "-u", "OPEN:/dev/null", &target])
}

/// Retries so that listeners still starting up do not look like a block.
fn assert_allowed(from: &Netns, to: &str) {
    for _ in 0..20 {
        if connects(from, to) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{} -> {to} should connect", from.name);
}

fn assert_blocked(from: &Netns, to: &str) {
    assert!(
        !connects(from, to),
        "{} -> {to} should be blocked",
        from.name
    );
}

const A1: &str = "10.10.1.2";
const B1: &str = "10.10.2.2";
const OUT: &str = "192.0.2.2";

#[test]
fn isolation_icc_internal_and_masquerade() {
    require_root!("socat");
    let lab = lab();
    let nft = lab.host.nft();
    let a = network("br-a", &["10.10.1.0/24"]);
    let b = network("br-b", &["10.10.2.0/24"]);

    // Without berth's table: plain routing between bridges, no NAT to the outside.
    assert_allowed(&lab.a1, B1);
    assert_allowed(&lab.a2, A1);
    assert_allowed(&lab.host, OUT);
    assert_blocked(&lab.a1, OUT);

    nft.apply(&full_ruleset(&[a.clone(), b.clone()], &[]).unwrap())
        .unwrap();
    assert_allowed(&lab.a2, A1);
    assert_allowed(&lab.a1, OUT);
    assert_blocked(&lab.a1, B1);
    assert_blocked(&lab.b1, A1);

    // icc=false only bites when br_netfilter hands bridged frames to the inet hooks.
    let br_nf = "/proc/sys/net/bridge/bridge-nf-call-iptables";
    let host_br_nf = lab.host.try_exec(&["grep", "-qx", "1", br_nf]);
    let no_icc = NetworkRules {
        icc: false,
        ..a.clone()
    };
    nft.apply(&remove_network(&a).unwrap()).unwrap();
    nft.apply(&add_network(&no_icc).unwrap()).unwrap();
    if host_br_nf {
        assert_blocked(&lab.a2, A1);
    } else {
        eprintln!("br_netfilter off: not checking icc=false");
    }
    assert_allowed(&lab.a1, OUT);

    let internal = NetworkRules {
        internal: true,
        ..a.clone()
    };
    nft.apply(&remove_network(&no_icc).unwrap()).unwrap();
    nft.apply(&add_network(&internal).unwrap()).unwrap();
    assert_allowed(&lab.a2, A1);
    assert_blocked(&lab.a1, OUT);
    assert_blocked(&lab.b1, A1);

    nft.apply(&remove_network(&internal).unwrap()).unwrap();
    nft.apply(&remove_network(&b).unwrap()).unwrap();
    assert_allowed(&lab.a1, B1);
    assert_allowed(&lab.b1, A1);
    assert_blocked(&lab.a1, OUT);
}
