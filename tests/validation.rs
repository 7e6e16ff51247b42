//! Bad input is refused at create with a clear 400 and changes nothing: values that would
//! reach a sandbox's /etc files or `execve`, names, and subnets (issue 16, D8 and D10).

mod common;
use common::Host;

/// Everything a user can see of the daemon's and the kernel's state.
fn state(h: &Host) -> String {
    format!(
        "{}\n{}\n{}\n{}",
        h.ok(&["ps", "-a", "--no-trunc"]),
        h.ok(&["network", "ls", "--no-trunc"]),
        h.ns.sh_ok(
            "ip -o link show | awk -F': ' '{print $2}'; ip -o addr show | awk '{print $2, $4}'"
        ),
        h.ns.sh_ok("nft list table inet berth"),
    )
}

/// A raw API call: (HTTP status, body).
fn api(h: &Host, method: &str, path: &str, body: &str) -> (u16, String) {
    let o = h.ns.sh_ok(&format!(
        "curl -s -o /dev/stdout -w '\\n%{{http_code}}' --unix-socket {} -X {method} -H 'Content-Type: application/json' --data-binary @- http://d{path} <<'EOF'\n{body}\nEOF",
        h.socket().display()
    ));
    let (body, code) = o.trim_end().rsplit_once('\n').expect("status line");
    (code.parse().expect("status"), body.to_string())
}

#[test]
fn sandbox_files_cannot_be_injected_into() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    h.ok(&["network", "create", "v1"]);
    let before = state(&h);
    for (args, want) in [
        (
            vec!["--dns-search", "x\nnameserver 6.6.6.6"],
            "invalid --dns-search",
        ),
        (
            vec!["--dns-option", "ndots:1\nnameserver 6.6.6.6"],
            "invalid --dns-option",
        ),
        (
            vec!["--add-host", "a\nb:1.2.3.4"],
            "invalid --add-host name",
        ),
        (vec!["-h", "h\nx"], "invalid hostname"),
        (
            vec!["--hostname", &"h".repeat(65)],
            "the most Linux takes is 64",
        ),
    ] {
        let mut a = vec!["run", "-d", "--network", "v1"];
        a.extend(args.iter().copied());
        a.extend(["--", "sleep", "60"]);
        let err = h.fails(&a);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // Over the API too (compose and the docker CLI use it), with 400 and nothing recorded.
    for body in [
        r#"{"Cmd":["sleep","60"],"HostConfig":{"DnsSearch":["a\nnameserver 6.6.6.6"]}}"#,
        r#"{"Cmd":["sleep","60"],"Hostname":"a\nb"}"#,
        r#"{"Cmd":["sleep","60"],"Env":["A=x\u0000y"]}"#,
        r#"{"Cmd":["sleep\u0000x"]}"#,
    ] {
        let (code, msg) = api(&h, "POST", "/containers/create", body);
        assert_eq!(code, 400, "{body}: {msg}");
        assert!(msg.contains("\"message\""), "{msg}");
    }
    assert_eq!(state(&h), before, "a refused create changed something");
    // A good value of each kind still reaches the files.
    h.ok(&[
        "run",
        "-d",
        "--name",
        "good",
        "--network",
        "v1",
        "--dns-search",
        "corp.example",
        "--dns-option",
        "ndots:2",
        "--add-host",
        "db.local:10.9.9.9",
        "-h",
        "web-1",
        "--",
        "sleep",
        "60",
    ]);
    let files = h.ok(&[
        "exec",
        "good",
        "cat",
        "/etc/resolv.conf",
        "/etc/hosts",
        "/etc/hostname",
    ]);
    for want in [
        "search corp.example",
        "options ndots:2",
        "10.9.9.9\tdb.local",
        "web-1\n",
    ] {
        assert!(files.contains(want), "{want} in {files}");
    }
    // The resolver's own port is named as such, not blamed on "a process on the host".
    let err = h.fails(&[
        "run",
        "-d",
        "--network",
        "v1",
        "-p",
        "10053:80",
        "--",
        "sleep",
        "60",
    ]);
    assert!(err.contains("embedded DNS resolver"), "{err}");
}

#[test]
fn names_and_subnets_that_cannot_work_are_refused() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    let before = state(&h);
    let long = "n".repeat(10_000);
    let err = h.fails(&["network", "create", &long]);
    assert!(err.contains("at most 128 characters"), "{err}");
    let err = h.fails(&["run", "-d", "--name", &long, "--", "sleep", "1"]);
    assert!(err.contains("at most 128 characters"), "{err}");
    for (subnet, want) in [
        ("127.0.0.0/8", "loopback"),
        ("127.5.0.0/16", "loopback"),
        ("224.0.0.0/8", "multicast"),
        ("10.70.0.1/32", "no address for a container"),
        ("10.70.0.0/31", "no address for a container"),
        ("0.0.0.0/8", "this network"),
    ] {
        let err = h.fails(&["network", "create", "--subnet", subnet, "bad"]);
        assert!(err.contains(want), "{subnet}: {err}");
    }
    for subnet in ["ff02::/16", "fd00::1/128"] {
        let err = h.fails(&["network", "create", "--ipv6", "--subnet", subnet, "bad"]);
        assert!(err.contains("invalid subnet"), "{subnet}: {err}");
    }
    let (code, msg) = api(
        &h,
        "POST",
        "/networks/create",
        r#"{"Name":"m","IPAM":{"Config":[{"Subnet":"224.0.0.0/8"}]}}"#,
    );
    assert_eq!(code, 400, "{msg}");
    assert_eq!(state(&h), before, "a refused create changed something");
    // The smallest subnet that works: one container next to the gateway.
    h.ok(&["network", "create", "--subnet", "10.70.0.0/30", "tiny"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "t1",
        "--network",
        "tiny",
        "--",
        "sleep",
        "60",
    ]);
    assert_eq!(h.ip_of("t1", "tiny"), "10.70.0.2");
}

#[test]
fn a_name_dns_cannot_carry_is_never_answered_as_the_root() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    h.ok(&["network", "create", "--subnet", "10.71.0.0/24", "dn"]);
    // 100 characters: a valid container name, but no DNS label (63 at most).
    let long = "l".repeat(100);
    h.ok(&[
        "run",
        "-d",
        "--name",
        &long,
        "--network",
        "dn",
        "--ip",
        "10.71.0.10",
        "--",
        "sleep",
        "60",
    ]);
    // On a network whose name is no DNS label, no name of a container fits.
    let longnet = "n".repeat(100);
    h.ok(&["network", "create", "--subnet", "10.72.0.0/24", &longnet]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "far",
        "--network",
        &longnet,
        "--ip",
        "10.72.0.11",
        "--",
        "sleep",
        "60",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "asker",
        "--network",
        "dn",
        "--",
        "sleep",
        "60",
    ]);
    let dig = |args: &[&str]| {
        let mut a = vec!["exec", "asker", "dig", "@10.71.0.1"];
        a.extend_from_slice(args);
        h.ok(&a)
    };
    // PTR: a name of the container that DNS can carry (its hostname), which leads back.
    let ptr = dig(&["+short", "-x", "10.71.0.10"]);
    let ptr = ptr.trim();
    assert!(ptr.ends_with(".dn.") && ptr.len() < 64, "{ptr}");
    assert_eq!(dig(&["+short", ptr]).trim(), "10.71.0.10");
    // No name fits: no record, never the root.
    let none = h.ok(&["exec", "far", "dig", "@10.72.0.1", "-x", "10.72.0.11"]);
    assert!(none.contains("status: NXDOMAIN"), "{none}");
    assert!(!none.contains("PTR\t."), "{none}");
}
