//! The embedded resolver with real queries: `dig` and the C library (`getent`, `socat` to a
//! name) inside sandboxes, a real upstream (dnsmasq) in the outside namespace.

mod common;
use common::{wait_until, Host};

/// dnsmasq as the host's upstream resolver, at 203.0.113.2 in the outside namespace:
/// `ext.test` → 192.0.2.7; `big.test` has 60 A records (too many for 512 bytes).
fn start_upstream(h: &Host) -> Upstream {
    let mut args = String::from(
        "exec dnsmasq --keep-in-foreground --no-resolv --no-hosts --no-daemon --user=root \
         --listen-address=203.0.113.2 --bind-interfaces --port=53 \
         --local=/test/ --address=/ext.test/192.0.2.7 --log-facility=/dev/null",
    );
    for i in 1..=60 {
        args.push_str(&format!(" --host-record=big.test,192.0.2.{i}"));
    }
    let c = Upstream(h.outside_sh(&args));
    wait_until("dnsmasq to answer", || {
        h.outside_out("dig +short +time=1 +tries=1 @203.0.113.2 ext.test")
            .contains("192.0.2.7")
    });
    c
}

/// The upstream's process lives in the test's own PID namespace: killed when dropped,
/// also when the test fails.
struct Upstream(std::process::Child);

impl Upstream {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

fn dig(h: &Host, ctr: &str, args: &str) -> String {
    let o = h.berth(&[
        "exec",
        ctr,
        "sh",
        "-c",
        &format!("dig +time=5 +tries=1 {args}"),
    ]);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn short(h: &Host, ctr: &str, name: &str) -> Vec<String> {
    let mut v: Vec<String> = dig(h, ctr, &format!("+short {name}"))
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .collect();
    v.sort();
    v
}

fn status(out: &str) -> String {
    out.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("none")
        .to_string()
}

fn run(h: &Host, args: &[&str]) {
    let mut a = vec!["run", "-d"];
    a.extend_from_slice(args);
    h.ok(&a);
}

#[test]
fn names_aliases_scoping_round_robin_and_lifecycle() {
    need_root!();
    let mut h = Host::with_outside();
    h.start_daemon();
    let _up = start_upstream(&h);
    h.ok(&["network", "create", "--subnet", "10.31.0.0/24", "dev"]);
    h.ok(&["network", "create", "--subnet", "10.32.0.0/24", "prod"]);
    // Seed 003: es on dev; two holders of the alias es on prod.
    run(
        &h,
        &[
            "--name",
            "es",
            "--network",
            "dev",
            "--network-alias",
            "search",
            "--hostname",
            "es-host",
            "--",
            "socat",
            "TCP-LISTEN:9200,fork,reuseaddr",
            "SYSTEM:echo es-on-dev",
        ],
    );
    h.sleeper("es2", &["--network", "prod", "--network-alias", "es"]);
    h.sleeper("es3", &["--network", "prod", "--network-alias", "es"]);
    h.sleeper("web", &["--network", "dev"]);
    h.ok(&["network", "connect", "--alias", "www", "prod", "web"]);
    let es = h.ip_of("es", "dev");
    let (es2, es3) = (h.ip_of("es2", "prod"), h.ip_of("es3", "prod"));
    let web_prod = h.ip_of("web", "prod");

    // resolv.conf points at the resolver on the sandbox's networks.
    let rc = h.ok(&["exec", "web", "cat", "/etc/resolv.conf"]);
    assert!(
        rc.contains("nameserver 10.31.0.1\nnameserver 10.32.0.1"),
        "{rc}"
    );

    // Names, hostnames, aliases; case does not matter; NAME.NETWORK.
    assert_eq!(short(&h, "web", "es"), vec![es.clone()]);
    assert_eq!(short(&h, "web", "ES-HOST"), vec![es.clone()]);
    assert_eq!(short(&h, "web", "search"), vec![es.clone()]);
    assert_eq!(short(&h, "web", "es.dev"), vec![es.clone()]);
    let mut both = vec![es2.clone(), es3.clone()];
    both.sort();
    assert_eq!(short(&h, "web", "es.prod"), both);
    // Asked from prod only: es is the alias, both holders (seed 003's `nslookup es`).
    assert_eq!(short(&h, "es2", "es"), both);
    assert_eq!(short(&h, "es2", "www"), vec![web_prod.clone()]);
    // Scoping: dev's names are not visible on prod and the reverse; aliases stay on their
    // network (web holds www on prod only).
    for (who, name) in [
        ("es2", "search"),
        ("es2", "es.dev"),
        ("es", "es2"),
        ("es", "www"),
    ] {
        assert!(short(&h, who, name).is_empty(), "{who} sees {name}");
    }
    // Round robin: the first record changes between queries.
    let firsts: std::collections::HashSet<String> = (0..6)
        .map(|_| {
            dig(&h, "es2", "+short es")
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(firsts.len(), 2, "first answers: {firsts:?}");
    // The C library and a real connection by name (seed 003's `curl es:9200`).
    let g = h.ok(&["exec", "web", "getent", "hosts", "es"]);
    assert!(g.starts_with(&es), "{g}");
    wait_until("es to listen", || {
        h.berth(&[
            "exec",
            "web",
            "sh",
            "-c",
            "socat -T2 - TCP:es:9200 </dev/null",
        ])
        .stdout
        .starts_with(b"es-on-dev")
    });

    // Alias gone on disconnect; name answers as soon as run returns, gone when rm returns.
    h.ok(&["network", "disconnect", "prod", "web"]);
    assert!(short(&h, "es2", "www").is_empty());
    assert!(short(&h, "es2", "web").is_empty());
    let rc = h.ok(&["exec", "web", "cat", "/etc/resolv.conf"]);
    assert!(!rc.contains("10.32.0.1"), "{rc}");
    h.sleeper("late", &["--network", "prod"]);
    assert_eq!(short(&h, "es2", "late"), [h.ip_of("late", "prod")]);
    h.ok(&["rm", "-f", "late"]);
    assert!(short(&h, "es2", "late").is_empty());
    h.ok(&["stop", "-t", "0", "es3"]);
    assert_eq!(short(&h, "es2", "es"), vec![es2.clone()]);

    // PTR, both ways of naming an SRV port.
    let rev = dig(&h, "web", &format!("+short -x {es}"));
    assert_eq!(rev.trim(), "es.dev.");
    h.sleeper(
        "api",
        &["--network", "prod", "--expose", "8080", "-p", "53/udp"],
    );
    let srv = dig(&h, "es2", "+short SRV _8080._tcp.api");
    assert_eq!(srv.trim(), "0 0 8080 api.prod.");
    let srv = dig(&h, "es2", "SRV _domain._udp.api");
    assert!(srv.contains("0 0 53 api.prod."), "{srv}");
    assert!(
        srv.contains(&h.ip_of("api", "prod")),
        "additional A record: {srv}"
    );
}

#[test]
fn forwarding_truncation_failures_and_internal_networks() {
    need_root!();
    let mut h = Host::with_outside();
    h.start_daemon_with(&["--dns-upstream-timeout", "1s"]);
    let mut up = start_upstream(&h);
    h.ok(&["network", "create", "--subnet", "10.33.0.0/24", "app"]);
    h.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.34.0.0/24",
        "sealed",
    ]);
    h.sleeper("c", &["--network", "app"]);
    h.sleeper("own", &["--network", "app", "--dns", "203.0.113.9"]);
    h.sleeper("inner", &["--network", "sealed"]);
    h.sleeper("old", &[]);

    // External names are forwarded: over UDP, and over TCP.
    assert_eq!(short(&h, "c", "ext.test"), ["192.0.2.7"]);
    assert_eq!(short(&h, "c", "+tcp ext.test"), ["192.0.2.7"]);
    // The default bridge forwards too (no names of its own).
    assert_eq!(short(&h, "old", "ext.test"), ["192.0.2.7"]);
    // NXDOMAIN from upstream passes through.
    assert_eq!(status(&dig(&h, "c", "nosuch.ext2.test")), "NXDOMAIN");
    // 60 records do not fit in 512 bytes: TC over UDP, then all of them over TCP.
    let o = dig(&h, "c", "+noedns +ignore big.test");
    assert!(o.contains(" tc"), "expected TC: {o}");
    assert_eq!(short(&h, "c", "+noedns big.test").len(), 60);
    // EDNS passes through: a 1232-byte answer over UDP.
    let o = dig(&h, "c", "+bufsize=1232 big.test");
    assert!(o.contains("EDNS: version: 0") && !o.contains(" tc"), "{o}");
    // Internal-only sandboxes get REFUSED for outside names: nothing leaks out.
    assert_eq!(status(&dig(&h, "inner", "ext.test")), "REFUSED");
    assert_eq!(short(&h, "inner", "inner"), [h.ip_of("inner", "sealed")]);
    // --dns replaces the upstream: 203.0.113.9 does not exist → SERVFAIL.
    assert_eq!(status(&dig(&h, "own", "ext.test")), "SERVFAIL");
    assert_eq!(short(&h, "own", "c"), [h.ip_of("c", "app")]);

    // Upstream down: SERVFAIL within the timeout (refused at once, silent after 1 s).
    up.stop();
    let t = std::time::Instant::now();
    assert_eq!(status(&dig(&h, "c", "ext.test")), "SERVFAIL");
    assert!(t.elapsed() < std::time::Duration::from_secs(4));
    h.outside_out("nft add table inet t; nft add chain inet t in '{ type filter hook input priority 0; }'; nft add rule inet t in udp dport 53 drop; nft add rule inet t in tcp dport 53 drop");
    let t = std::time::Instant::now();
    assert_eq!(status(&dig(&h, "c", "ext.test")), "SERVFAIL");
    let took = t.elapsed();
    assert!(took >= std::time::Duration::from_millis(900), "{took:?}");
    assert!(took < std::time::Duration::from_secs(4), "{took:?}");
    // Own names still answer.
    assert_eq!(short(&h, "c", "c"), [h.ip_of("c", "app")]);
}

#[test]
fn garbage_idle_tcp_and_the_host_resolver() {
    need_root!();
    let mut h = Host::with_outside();
    h.start_daemon();
    h.ok(&[
        "network",
        "create",
        "--subnet",
        "10.35.0.0/24",
        "--ipv6",
        "--subnet",
        "fd35::/64",
        "net6",
    ]);
    h.sleeper("alpha", &["--network", "net6"]);
    h.sleeper("beta", &["--network", "net6"]);
    let a4 = h.ip_of("alpha", "net6");
    assert_eq!(short(&h, "beta", "alpha"), [a4]);
    let aaaa = short(&h, "beta", "AAAA alpha");
    assert_eq!(aaaa.len(), 1);
    assert!(aaaa[0].starts_with("fd35::"), "{aaaa:?}");
    // Over IPv6 to the resolver's v6 address.
    assert_eq!(short(&h, "beta", "@fd35::1 alpha").len(), 1);

    // Garbage: random datagrams, a short one, a response, a TCP stream of junk.
    h.ok(&[
        "exec", "beta", "sh", "-c",
        "for i in $(seq 50); do head -c $((i * 7)) /dev/urandom | socat -u - UDP:10.35.0.1:53; done; \
         printf '\\x00' | socat -u - UDP:10.35.0.1:53; \
         head -c 3000 /dev/urandom | socat -T1 - TCP:10.35.0.1:53 >/dev/null || true",
    ]);
    assert_eq!(
        short(&h, "beta", "alpha").len(),
        1,
        "still answering after garbage"
    );

    // An idle TCP client does not block anyone and is dropped after the idle timeout.
    let mut idle = std::process::Command::new(common::berth_bin())
        .arg("-H")
        .arg(format!("unix://{}", h.socket().display()))
        .args(["exec", "beta", "socat", "-u", "TCP:10.35.0.1:53", "-"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(short(&h, "beta", "+tcp alpha").len(), 1);
    let t = std::time::Instant::now();
    let st = idle.wait().unwrap();
    assert!(st.success(), "closed by the server");
    assert!(t.elapsed() < std::time::Duration::from_secs(8));

    // The host resolves NAME.NETWORK through the address `berth info` prints.
    let info = h.ok(&["info", "--format", "{{.BerthDNS}}"]);
    assert_eq!(info.trim(), "127.0.0.11:53");
    let o =
        h.ns.sh_ok("dig +short +time=2 +tries=1 @127.0.0.11 alpha.net6");
    assert_eq!(o.trim(), h.ip_of("alpha", "net6"));
    // Bare names are for sandboxes only.
    let o = h.ns.sh("dig +short +time=2 +tries=1 @127.0.0.11 alpha");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("10.35."));

    // A daemon killed and started again answers for the containers it re-adopts.
    h.kill9_daemon();
    h.start_daemon();
    assert_eq!(short(&h, "beta", "alpha"), vec![h.ip_of("alpha", "net6")]);
    let o =
        h.ns.sh_ok("dig +short +time=2 +tries=1 @127.0.0.11 beta.net6");
    assert_eq!(o.trim(), h.ip_of("beta", "net6"));
}

#[test]
fn links_hosts_and_environment() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    // Legacy links on the default bridge (seed 004): /etc/hosts and docker's variables.
    h.sleeper("db", &["--expose", "5432", "-e", "POSTGRES_USER=app"]);
    h.sleeper(
        "web",
        &["--link", "db:pg", "--add-host", "extra.example:192.0.2.9"],
    );
    let db = h.ip_of("db", "bridge");
    let hosts = h.ok(&["exec", "web", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&format!("{db}\tpg ")), "{hosts}");
    assert!(hosts.contains(" db\n"), "{hosts}");
    assert!(hosts.contains("192.0.2.9\textra.example"), "{hosts}");
    let env = h.ok(&["exec", "web", "env"]);
    for want in [
        "PG_NAME=/web/pg".to_string(),
        format!("PG_PORT=tcp://{db}:5432"),
        format!("PG_PORT_5432_TCP_ADDR={db}"),
        "PG_PORT_5432_TCP_PORT=5432".into(),
        "PG_PORT_5432_TCP_PROTO=tcp".into(),
        "PG_ENV_POSTGRES_USER=app".into(),
    ] {
        assert!(
            env.lines().any(|l| l == want),
            "{want} missing from:\n{env}"
        );
    }
    assert_eq!(
        h.ok(&["exec", "web", "getent", "hosts", "pg"])
            .split_whitespace()
            .next(),
        Some(db.as_str())
    );
    let inspect = h.ok(&["inspect", "--format", "{{json .HostConfig.Links}}", "web"]);
    assert_eq!(inspect.trim(), r#"["/db:/web/pg"]"#);
    // Default bridge: no names by DNS.
    assert!(short(&h, "web", "db").is_empty());

    // On a user network a link is a resolver alias for the linking container only.
    h.ok(&["network", "create", "--subnet", "10.36.0.0/24", "u"]);
    h.sleeper("cache", &["--network", "u"]);
    h.sleeper("app", &["--network", "u", "--link", "cache:kv"]);
    h.sleeper("other", &["--network", "u"]);
    assert_eq!(short(&h, "app", "kv"), [h.ip_of("cache", "u")]);
    assert!(short(&h, "other", "kv").is_empty());

    // Bad links: clear errors, nothing created.
    let e = h.fails(&[
        "run", "-d", "--name", "x", "--link", "nosuch:y", "--", "true",
    ]);
    assert!(e.contains("could not get container for nosuch"), "{e}");
    h.ok(&["stop", "-t", "0", "db"]);
    let e = h.fails(&["run", "-d", "--name", "y", "--link", "db", "--", "true"]);
    assert!(e.contains("Cannot link to a non running container"), "{e}");
    assert!(!h.ok(&["ps", "-a", "--format", "{{.Names}}"]).contains('x'));
}

#[test]
fn port_53_stays_free_to_publish() {
    need_root!();
    let mut h = Host::with_outside();
    // Another DNS server on the host, bound to every address before the daemon starts: the
    // resolver does not need the host's port 53 (the firewall redirects a gateway's 53).
    let mut other =
        h.ns.spawn("exec socat -u UDP4-RECVFROM:53,fork - >/dev/null");
    wait_until("the other server", || {
        h.ns.sh_ok("ss -lnu").contains("0.0.0.0:53")
    });
    h.start_daemon();
    h.ok(&["network", "create", "--subnet", "10.37.0.0/24", "busy"]);
    h.sleeper("first", &["--network", "busy"]);
    h.sleeper("second", &["--network", "busy"]);
    assert_eq!(short(&h, "second", "first"), vec![h.ip_of("first", "busy")]);
    let o =
        h.ns.sh_ok("dig +short +time=2 +tries=1 @127.0.0.11 first.busy");
    assert_eq!(o.trim(), h.ip_of("first", "busy"));
    // (nsenter forked to enter the PID namespace: the server is its child.)
    h.ns.sh_ok("pkill -f '^socat -u UDP4-RECVFROM:53'");
    let _ = other.wait();

    // A DNS server container publishes port 53; sandboxes still reach berth's resolver.
    run(
        &h,
        &[
            "--name",
            "pihole",
            "--network",
            "busy",
            "-p",
            "53:53/udp",
            "-p",
            "53:53/tcp",
            "--",
            "socat",
            "UDP-RECVFROM:53,fork",
            "SYSTEM:echo not-dns",
        ],
    );
    assert_eq!(short(&h, "second", "first"), vec![h.ip_of("first", "busy")]);
    assert_eq!(
        short(&h, "second", "+tcp first"),
        vec![h.ip_of("first", "busy")]
    );
    // UDP has no handshake: a datagram sent before the server's socket is bound is lost, so
    // the outside asks until the server (started by `run -d`) answers.
    wait_until("the published port answers from outside", || {
        h.outside_out("echo hi | socat -T1 - UDP:203.0.113.1:53")
            .trim()
            == "not-dns"
    });
}

#[test]
fn a_taken_resolver_port_costs_names_not_the_network() {
    need_root!();
    let mut h = Host::new();
    let port = berth::firewall::RESOLVER_PORT;
    let mut other = h.ns.spawn(&format!(
        "exec socat -u UDP4-RECVFROM:{port},fork - >/dev/null"
    ));
    wait_until("the other server", || {
        h.ns.sh_ok("ss -lnu").contains(&format!("0.0.0.0:{port}"))
    });
    h.start_daemon();
    h.ok(&["network", "create", "--subnet", "10.38.0.0/24", "busy"]);
    h.sleeper("c", &["--network", "busy"]);
    let rc = h.ok(&["exec", "c", "cat", "/etc/resolv.conf"]);
    assert!(!rc.contains("10.38.0.1"), "{rc}");
    assert!(
        rc.contains("nameserver 203.0.113.2"),
        "the host's resolvers: {rc}"
    );
    assert!(h.daemon_log().contains("no embedded DNS on this network"));
    let _ = other.kill();
    let _ = other.wait();
}
