//! Real traffic through berth's bridge data path, in test hosts made of namespaces.

mod common;
use common::{wait_until, Host};

/// Connects from a fresh container on `net`; returns what came back (empty on failure).
fn client(h: &Host, net: &str, addr: &str, port: u16) -> String {
    h.socat_from(net, &format!("TCP:{addr}:{port},connect-timeout=2"))
        .trim()
        .to_string()
}

fn wait_listening(h: &Host, ctr: &str, port: u16) {
    wait_until("server to listen", || {
        let o = h.berth(&[
            "exec",
            ctr,
            "sh",
            "-c",
            &format!("ss -ltn | grep -q ':{port} '"),
        ]);
        o.status.success()
    });
}

#[test]
fn tcp_within_a_network_and_isolation_across_networks() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    h.ok(&["network", "create", "--subnet", "10.31.0.0/24", "front"]);
    h.ok(&["network", "create", "--subnet", "10.32.0.0/24", "back"]);
    h.server("web", "front", 8080, "hello-from-web");
    wait_listening(&h, "web", 8080);
    let ip = h.ip_of("web", "front");
    assert!(ip.starts_with("10.31.0."), "{ip}");
    assert_eq!(client(&h, "front", &ip, 8080), "hello-from-web");
    // Another berth network must not reach it.
    assert_eq!(client(&h, "back", &ip, 8080), "");
    // The host (the daemon's namespace) reaches container IPs by route.
    let out =
        h.ns.sh_ok(&format!("socat -T2 - TCP:{ip}:8080,connect-timeout=2"));
    assert_eq!(out.trim(), "hello-from-web");
    // On an IPv4 network no interface of berth's speaks IPv6 (no router solicitations or
    // MLD reports flooded to every port), and the bridge floods multicast instead of
    // snooping it (no per-port multicast timers).
    let ports =
        h.ns.sh_ok("ip -o link show type veth | awk -F': ' '{print $2}' | cut -d@ -f1");
    assert!(!ports.trim().is_empty());
    for p in ports.lines() {
        assert_eq!(
            h.ns.sh_ok(&format!("cat /proc/sys/net/ipv6/conf/{p}/disable_ipv6"))
                .trim(),
            "1",
            "{p}"
        );
    }
    assert_eq!(
        h.ns.sh_ok("ip -6 route show table all | grep -c ' dev bv' || true")
            .trim(),
        "0"
    );
    let bridges = h.ns.sh_ok("ip -d link show type bridge");
    assert_eq!(bridges.matches("mcast_snooping 0").count(), 3, "{bridges}");
    let v6 = String::from_utf8_lossy(
        &h.berth(&[
            "exec", "web", "ip", "-6", "-o", "addr", "show", "dev", "eth0",
        ])
        .stdout,
    )
    .to_string();
    assert_eq!(v6.trim(), "", "{v6}");
    // Connected to both networks, a container reaches it again, through eth1.
    h.ok(&[
        "run",
        "-d",
        "--name",
        "both",
        "--network",
        "back",
        "--",
        "sleep",
        "300",
    ]);
    h.ok(&["network", "connect", "front", "both"]);
    let o = h.berth(&[
        "exec",
        "both",
        "socat",
        "-T2",
        "-",
        &format!("TCP:{ip}:8080,connect-timeout=2"),
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "hello-from-web");
    let links =
        String::from_utf8_lossy(&h.berth(&["exec", "both", "ip", "-o", "link"]).stdout).to_string();
    assert!(links.contains("eth0") && links.contains("eth1"), "{links}");
    let routes =
        String::from_utf8_lossy(&h.berth(&["exec", "both", "ip", "route"]).stdout).to_string();
    assert!(
        routes.contains("default via 10.32.0.1 dev eth0"),
        "{routes}"
    );
    // Back to back, with no pause: the next attach must not trip over the previous
    // detach's interface, which the kernel may still be deleting.
    for _ in 0..10 {
        h.ok(&["network", "disconnect", "front", "both"]);
        h.ok(&["network", "connect", "front", "both"]);
    }
    // Disconnect removes the interface and the path.
    h.ok(&["network", "disconnect", "front", "both"]);
    let o = h.berth(&[
        "exec",
        "both",
        "socat",
        "-T2",
        "-",
        &format!("TCP:{ip}:8080,connect-timeout=2"),
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "");
}

#[test]
fn egress_is_masqueraded_and_internal_networks_have_no_way_out() {
    need_root!();
    let mut h = Host::with_outside();
    h.start_daemon();
    // The outside answers with the source address it sees.
    let mut srv =
        h.outside_sh("socat TCP-LISTEN:9000,fork,reuseaddr 'SYSTEM:echo $SOCAT_PEERADDR'");
    wait_until("the outside server to listen", || {
        h.outside_out("ss -ltn").contains(":9000 ")
    });
    let seen = client(&h, "bridge", "203.0.113.2", 9000);
    assert_eq!(
        seen, "203.0.113.1",
        "egress must leave with the host's address"
    );
    h.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.33.0.0/24",
        "sealed",
    ]);
    assert_eq!(client(&h, "sealed", "203.0.113.2", 9000), "");
    let routes = String::from_utf8_lossy(
        &h.berth(&["run", "--rm", "--network", "sealed", "--", "ip", "route"])
            .stdout,
    )
    .to_string();
    assert!(
        !routes.contains("default"),
        "internal networks get no default route: {routes}"
    );
    let _ = srv.kill();
    let _ = srv.wait();
}

#[test]
fn none_host_and_container_modes() {
    need_root!();
    let mut h = Host::with_outside();
    h.start_daemon();
    let o = h.ok(&["run", "--rm", "--network", "none", "--", "ip", "-o", "link"]);
    let names: Vec<&str> = o.lines().filter_map(|l| l.split(": ").nth(1)).collect();
    assert_eq!(names, vec!["lo"], "{o}");
    // host: the daemon host's interfaces (the uplink exists only there).
    let o = h.ok(&["run", "--rm", "--network", "host", "--", "ip", "-o", "link"]);
    assert!(o.contains("uplink"), "{o}");
    // container:NAME shares the stack: they talk over 127.0.0.1 (seed 004's "joined").
    h.ok(&[
        "run",
        "-d",
        "--name",
        "joined1",
        "--network",
        "none",
        "--",
        "socat",
        "TCP-LISTEN:3333,bind=127.0.0.1,fork,reuseaddr",
        "SYSTEM:echo joined",
    ]);
    wait_listening(&h, "joined1", 3333);
    let o = h.ok(&[
        "run",
        "--rm",
        "--network",
        "container:joined1",
        "--",
        "socat",
        "-T2",
        "-",
        "TCP:127.0.0.1:3333",
    ]);
    assert_eq!(o.trim(), "joined");
    // Its own hostname, files and namespaces: /etc/hostname is the container's.
    let o = h.ok(&[
        "run",
        "--rm",
        "--hostname",
        "box1",
        "--network",
        "none",
        "--",
        "sh",
        "-c",
        "hostname; cat /etc/hostname",
    ]);
    assert_eq!(o, "box1\nbox1\n");
    let e = h.fails(&["run", "--rm", "--network", "container:nosuch", "--", "true"]);
    assert!(e.contains("No such container: nosuch"), "{e}");
    h.ok(&["stop", "-t", "1", "joined1"]);
    let e = h.fails(&[
        "run",
        "--rm",
        "--network",
        "container:joined1",
        "--",
        "true",
    ]);
    assert!(e.contains("non running container"), "{e}");
}

#[test]
fn daemon_kill9_keeps_containers_running_and_reachable() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    h.ok(&["network", "create", "--subnet", "10.34.0.0/24", "dev"]);
    h.server("es", "dev", 9200, "es-ok");
    wait_listening(&h, "es", 9200);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "app",
        "--network",
        "dev",
        "--",
        "sleep",
        "300",
    ]);
    let ip = h.ip_of("es", "dev");
    h.kill9_daemon();
    // The data path does not depend on the daemon.
    let out =
        h.ns.sh_ok(&format!("socat -T2 - TCP:{ip}:9200,connect-timeout=2"));
    assert_eq!(out.trim(), "es-ok");
    h.start_daemon();
    let ps = h.ok(&["ps", "--format", "{{.Names}} {{.State}}"]);
    assert!(
        ps.contains("es running") && ps.contains("app running"),
        "{ps}"
    );
    let o = h.berth(&[
        "exec",
        "app",
        "socat",
        "-T2",
        "-",
        &format!("TCP:{ip}:9200,connect-timeout=2"),
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "es-ok");
    // The re-adopted container is still supervised: stop works and records the exit.
    h.ok(&["stop", "-t", "1", "app"]);
    let st = h.ok(&["inspect", "-f", "{{.State.Status}}", "app"]);
    assert_eq!(st.trim(), "exited");
    // A process that dies while the daemon is down is marked exited at start, and its
    // address is released.
    let pid = h
        .ok(&["inspect", "-f", "{{.State.Pid}}", "es"])
        .trim()
        .to_string();
    h.kill9_daemon();
    h.ns.sh_ok(&format!("kill -9 {pid}"));
    h.start_daemon();
    wait_until("es to be exited", || {
        h.ok(&["inspect", "-f", "{{.State.Status}}", "es"]).trim() == "exited"
    });
    let net = h.ok(&["network", "inspect", "-f", "{{len .Containers}}", "dev"]);
    assert_eq!(net.trim(), "0");
}

#[test]
fn ipam_options_on_the_data_path() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    h.ok(&[
        "network",
        "create",
        "--subnet",
        "10.66.0.0/16",
        "--gateway",
        "10.66.0.254",
        "--ip-range",
        "10.66.5.0/30",
        "--aux-address",
        "printer=10.66.5.1",
        "pubnet",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "fixed",
        "--network",
        "pubnet",
        "--ip",
        "10.66.66.66",
        "--",
        "sleep",
        "300",
    ]);
    assert_eq!(h.ip_of("fixed", "pubnet"), "10.66.66.66");
    h.ok(&[
        "run",
        "-d",
        "--name",
        "d1",
        "--network",
        "pubnet",
        "--",
        "sleep",
        "300",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "d2",
        "--network",
        "pubnet",
        "--",
        "sleep",
        "300",
    ]);
    let mut got = vec![h.ip_of("d1", "pubnet"), h.ip_of("d2", "pubnet")];
    got.sort();
    // 10.66.5.0/30 minus the aux address .1: .0, .2, .3 are the dynamic ones.
    for ip in &got {
        assert!(
            ["10.66.5.0", "10.66.5.2", "10.66.5.3"].contains(&ip.as_str()),
            "{got:?}"
        );
    }
    let gw = h.ok(&[
        "inspect",
        "-f",
        "{{(index .NetworkSettings.Networks \"pubnet\").Gateway}}",
        "d1",
    ]);
    assert_eq!(gw.trim(), "10.66.0.254");
    let o = h.ok(&["exec", "d1", "ip", "route"]);
    assert!(o.contains("default via 10.66.0.254"), "{o}");
    h.ok(&[
        "run",
        "-d",
        "--name",
        "d3",
        "--network",
        "pubnet",
        "--",
        "sleep",
        "300",
    ]);
    let e = h.fails(&[
        "run",
        "-d",
        "--name",
        "d4",
        "--network",
        "pubnet",
        "--",
        "sleep",
        "300",
    ]);
    assert!(e.contains("no available IP addresses"), "{e}");
    let e = h.fails(&[
        "run",
        "-d",
        "--network",
        "pubnet",
        "--ip",
        "10.66.66.66",
        "--",
        "true",
    ]);
    assert!(e.contains("Address already in use"), "{e}");
    let e = h.fails(&[
        "run",
        "-d",
        "--network",
        "pubnet",
        "--ip",
        "10.99.0.1",
        "--",
        "true",
    ]);
    assert!(e.contains("does not belong"), "{e}");
    // The gateway answers from the bridge.
    let o = h.berth(&["exec", "d1", "ping", "-c1", "-W2", "10.66.0.254"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn ipv6_dual_stack() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    h.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.35.0.0/24",
        "--subnet",
        "fd00:35::/64",
        "v6net",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "six",
        "--network",
        "v6net",
        "--",
        "sleep",
        "300",
    ]);
    let v6 = h.ok(&[
        "inspect",
        "-f",
        "{{(index .NetworkSettings.Networks \"v6net\").GlobalIPv6Address}}",
        "six",
    ]);
    let v6 = v6.trim();
    assert!(v6.starts_with("fd00:35::"), "{v6}");
    let o = h.berth(&[
        "run",
        "--rm",
        "--network",
        "v6net",
        "--",
        "ping",
        "-6",
        "-c1",
        "-W3",
        v6,
    ]);
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let inspect = h.ok(&["network", "inspect", "v6net"]);
    assert!(
        inspect.contains("\"EnableIPv6\": true") && inspect.contains(&format!("{v6}/64")),
        "{inspect}"
    );
}
