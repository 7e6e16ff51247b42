//! `enable_icc=false` isolates the containers of a network from each other whatever the host's
//! br_netfilter settings (issue 16, D7): the bridge's own port isolation does it, so it holds
//! with `net.bridge.bridge-nf-call-iptables` 0 and 1 alike.

mod common;
use common::{wait_until, Host};

fn tcp(h: &Host, from: &str, to: &str) -> bool {
    h.berth(&[
        "exec",
        from,
        "socat",
        "-T2",
        "-",
        &format!("TCP:{to}:80,connect-timeout=2"),
    ])
    .status
    .success()
}

fn ping(h: &Host, from: &str, to: &str) -> bool {
    h.berth(&["exec", from, "ping", "-c1", "-W1", to])
        .status
        .success()
}

#[test]
fn icc_off_holds_with_and_without_bridge_netfilter() {
    need_root!();
    let mut h = Host::with_outside();
    h.start_daemon();
    let has_brnf =
        h.ns.sh("test -e /proc/sys/net/bridge/bridge-nf-call-iptables")
            .status
            .success();
    h.ok(&[
        "network",
        "create",
        "-o",
        "com.docker.network.bridge.enable_icc=false",
        "closed",
    ]);
    h.ok(&["network", "create", "open"]);
    for (name, net) in [
        ("a", "closed"),
        ("b", "closed"),
        ("c", "open"),
        ("d", "open"),
    ] {
        h.server(name, net, 80, "hi");
    }
    for name in ["a", "b", "c", "d"] {
        wait_until("listener", || {
            h.berth(&["exec", name, "sh", "-c", "ss -lnt | grep -q ':80 '"])
                .status
                .success()
        });
    }
    let (b, d) = (h.ip_of("b", "closed"), h.ip_of("d", "open"));
    let settings: &[&str] = if has_brnf { &["0", "1"] } else { &["absent"] };
    for setting in settings {
        if has_brnf {
            h.ns.sh_ok(&format!("sysctl -qw net.bridge.bridge-nf-call-iptables={setting} net.bridge.bridge-nf-call-ip6tables={setting}"));
        }
        // Blocked between the containers of the closed network, by address and by name…
        assert!(
            !tcp(&h, "a", &b),
            "bridge-nf-call-iptables={setting}: TCP a→b"
        );
        assert!(
            !tcp(&h, "a", "b"),
            "bridge-nf-call-iptables={setting}: TCP a→b by name"
        );
        assert!(
            !ping(&h, "a", &b),
            "bridge-nf-call-iptables={setting}: ping a→b"
        );
        // …while names resolve, the gateway and the outside answer, and the open network
        // is as open as ever.
        let dns = h.ok(&["exec", "a", "dig", "+short", "b"]);
        assert_eq!(dns.trim(), b, "{setting}");
        assert!(ping(&h, "a", "203.0.113.2"), "{setting}: a to the outside");
        assert!(tcp(&h, "c", &d), "{setting}: TCP c→d on the open network");
    }
    // Reconcile keeps the ports isolated across a daemon restart.
    h.kill9_daemon();
    h.start_daemon();
    assert!(!tcp(&h, "a", &b), "after a restart: TCP a→b");
    let ports =
        h.ns.sh_ok("bridge -d link show | grep -c 'isolated on' || true");
    assert_eq!(ports.trim(), "2", "two isolated ports");
}
