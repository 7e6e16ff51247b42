//! One container flooding its resolver over TCP costs only itself (issue 16, D5): its
//! neighbours and other networks keep their TCP answers.

mod common;
use common::{wait_until, Host};

/// Opens `n` TCP connections to `gw:53` from inside a container, holds them, and prints how many
/// the resolver kept open after a second (the rest it closed at once). Bounded: ends in 8 s.
const FLOOD: &str = r#"
import socket, sys, time
gw, n = sys.argv[1], int(sys.argv[2])
conns = []
for _ in range(n):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((gw, 53))
        conns.append(s)
    except OSError:
        pass
time.sleep(1)
kept = 0
for s in conns:
    s.settimeout(0.01)
    try:
        kept += 0 if s.recv(1) == b"" else 1
    except socket.timeout:
        kept += 1
    except OSError:
        pass
print(kept, flush=True)
time.sleep(7)
"#;

fn gateway(h: &Host, net: &str) -> String {
    h.ok(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Gateway}}",
        net,
    ])
    .trim()
    .to_string()
}

fn tcp_answers(h: &Host, from: &str, gw: &str, name: &str) -> usize {
    (0..5)
        .filter(|_| {
            let o = h.berth(&[
                "exec",
                from,
                "dig",
                "+tcp",
                "+short",
                "+tries=1",
                "+time=2",
                &format!("@{gw}"),
                name,
            ]);
            o.status.success() && !String::from_utf8_lossy(&o.stdout).trim().is_empty()
        })
        .count()
}

#[test]
fn a_tcp_flood_from_one_container_costs_only_that_container() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    h.ok(&["network", "create", "n1"]);
    h.ok(&["network", "create", "n2"]);
    for (name, net) in [("flood", "n1"), ("neighbour", "n1"), ("other", "n2")] {
        h.sleeper(name, &["--network", net]);
    }
    let (gw1, gw2) = (gateway(&h, "n1"), gateway(&h, "n2"));
    wait_until("the resolvers", || {
        tcp_answers(&h, "other", &gw2, "other") == 5
    });
    let script = h.dir.path().join("flood.py");
    std::fs::write(&script, FLOOD).unwrap();
    // More connections than the old overall cap (256): it took every network's TCP DNS.
    let flood = std::process::Command::new(common::berth_bin())
        .args([
            "-H",
            &format!("unix://{}", h.socket().display()),
            "exec",
            "flood",
            "python3",
        ])
        .arg(&script)
        .args([&gw1, "300"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    // While the flood holds its connections, the others are answered over TCP.
    assert_eq!(
        tcp_answers(&h, "neighbour", &gw1, "flood"),
        5,
        "the flooder's neighbour"
    );
    assert_eq!(
        tcp_answers(&h, "other", &gw2, "other"),
        5,
        "another network"
    );
    let out = flood.wait_with_output().unwrap();
    let kept: usize = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("the flood's count");
    assert_eq!(kept, 32, "the flooder keeps exactly its own share");
}
