//! The API's limits and its errors: every failure is `{"message"}` JSON that says what was
//! wrong (bodies too large, bad query strings, wrong methods, bad versions, bad filters,
//! refused peers), idle and slow connections are closed, and a connection cap keeps the
//! daemon serving.

mod common;
use common::Host;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// An answer read with curl: status, content type and body.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

impl Answer {
    /// Asserts a JSON error with this status whose message contains `want`.
    fn json_error(&self, status: u16, want: &str) -> String {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.content_type, "application/json", "{}", self.body);
        let v: serde_json::Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body));
        let m = v["message"].as_str().expect("message").to_string();
        assert!(m.contains(want), "{m:?} does not contain {want:?}");
        m
    }
}

fn curl_in(dir: &Path, socket: &Path, prefix: &[&str], args: &[&str]) -> Answer {
    let out = dir.join("curl-body");
    let argv: Vec<&str> = prefix.iter().copied().chain(["curl"]).collect();
    let o = Command::new(argv[0])
        .args(&argv[1..])
        .args(["-s", "--max-time", "60", "--unix-socket"])
        .arg(socket)
        .arg("-o")
        .arg(&out)
        .args(["-w", "%{http_code} %{content_type}"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("curl");
    let w = String::from_utf8_lossy(&o.stdout).into_owned();
    let (status, ct) = w.split_once(' ').unwrap_or((&w, ""));
    Answer {
        status: status.parse().unwrap_or(0),
        content_type: ct.to_string(),
        body: std::fs::read_to_string(&out).unwrap_or_default(),
    }
}

fn curl(h: &Host, args: &[&str]) -> Answer {
    curl_in(h.dir.path(), &h.socket(), &[], args)
}

fn url(path: &str) -> String {
    format!("http://berth{path}")
}

#[test]
fn errors_are_json_and_say_what_was_wrong() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();

    // Bodies over the limit: with a Content-Length, and chunked (no length known up front).
    let big = h.dir.path().join("big.json");
    std::fs::write(&big, vec![b' '; 3 << 20]).unwrap();
    let data = format!("@{}", big.display());
    let a = curl(
        &h,
        &[
            "-X",
            "POST",
            "--data-binary",
            &data,
            &url("/networks/create"),
        ],
    );
    a.json_error(
        413,
        "request body is larger than the 2 MiB limit of POST /networks/create (3 MiB sent)",
    );
    let a = curl(
        &h,
        &[
            "-X",
            "POST",
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            &data,
            &url("/networks/create"),
        ],
    );
    a.json_error(413, "larger than the 2 MiB limit");
    std::fs::write(&big, vec![b' '; 17 << 20]).unwrap();
    let a = curl(
        &h,
        &[
            "-X",
            "POST",
            "--data-binary",
            &data,
            &url("/containers/create"),
        ],
    );
    a.json_error(
        413,
        "larger than the 16 MiB limit of POST /containers/create",
    );

    // Query strings.
    let a = curl(&h, &["-X", "POST", &url("/containers/x/stop?t=abc")]);
    a.json_error(
        400,
        "invalid query parameter in \"t=abc\": t: invalid digit",
    );
    let a = curl(&h, &[&url("/catalog?index=-1")]);
    a.json_error(400, "index: invalid digit");

    // A method the path does not have: 405 with the allowed ones.
    let a = curl(&h, &["-X", "PUT", &url("/networks/x")]);
    let m = a.json_error(405, "PUT is not allowed on /networks/x: use ");
    assert!(m.contains("DELETE"), "{m}");

    // Every port in one request: ~4 MiB of JSON gets through to the daemon, which answers
    // on its merits (here: --network none has nothing to publish to).
    let err = h.fails(&["run", "--network", "none", "-p", "1-65535", "--", "true"]);
    assert!(err.contains("no address to publish"), "{err}");
}

#[test]
fn refused_peers_are_told_why() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    let nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    let as_nobody = |args: &[&str]| {
        Command::new(nobody[0])
            .args(&nobody[1..])
            .arg(common::berth_bin())
            .arg("-H")
            .arg(format!("unix://{}", h.socket().display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // The socket's directory is root's: connect() itself is refused.
    let o = as_nobody(&["ps"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("permission denied while trying to connect to the berth daemon socket"),
        "{err}"
    );

    // With the socket opened to everyone, the daemon checks the peer's uid and says so.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(h.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::set_permissions(h.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = h.dir.path().join("nobody");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    let a = curl_in(&out, &h.socket(), &nobody, &[&url("/containers/json")]);
    a.json_error(403, "permission denied: the berth socket is root-only");
    let o = as_nobody(&["ps"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("Error response from daemon: permission denied: the berth socket is root-only (this connection is from uid 65534)"),
        "{err}"
    );
    // Root is still served.
    h.ok(&["ps"]);
}

#[test]
fn requests_are_checked_strictly() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    // A struct given as an array is the wrong type, not an empty struct.
    let a = curl(
        &h,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            r#"{"Cmd":["true"],"HostConfig":[]}"#,
            &url("/containers/create"),
        ],
    );
    a.json_error(
        400,
        "invalid JSON body: HostConfig: invalid type: sequence, expected a JSON object",
    );
    assert_eq!(h.ok(&["ps", "-aq"]), "", "nothing was created");

    for sig in ["99999", "-1", "0", "SIGBOGUS"] {
        let a = curl(
            &h,
            &[
                "-X",
                "POST",
                &url(&format!("/containers/x/kill?signal={sig}")),
            ],
        );
        a.json_error(400, &format!("Invalid signal: {sig}"));
    }

    let err = h.fails(&["ps", "--filter", "bogus=1"]);
    assert!(err.contains("invalid filter 'bogus'"), "{err}");
    let err = h.fails(&["ps", "--filter", "status=sleeping"]);
    assert!(err.contains("invalid filter 'status=sleeping'"), "{err}");
    let err = h.fails(&["ps", "--filter", "ancestor=x"]);
    assert!(err.contains("filter 'ancestor' is not supported"), "{err}");
    for f in ["[1]", "\"x\"", r#"{"name":"web"}"#] {
        let a = curl(
            &h,
            &[
                "-G",
                "--data-urlencode",
                &format!("filters={f}"),
                &url("/containers/json"),
            ],
        );
        a.json_error(400, "invalid filter JSON");
    }
    h.ok(&["ps", "--filter", "status=running", "--filter", "name=x"]);
}

#[test]
fn api_versions_are_checked() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    for ok in [
        "/v1.50/containers/json",
        "/v1.24/containers/json",
        "/containers/json",
    ] {
        let a = curl(&h, &[&url(ok)]);
        assert_eq!((a.status, a.body.as_str()), (200, "[]\n"), "{ok}");
    }
    curl(&h, &[&url("/v1.99/containers/json")]).json_error(
        400,
        "client version 1.99 is too new. Maximum supported API version is 1.50",
    );
    curl(&h, &[&url("/v0.1/containers/json")]).json_error(
        400,
        "client version 0.1 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version",
    );
    for bad in ["/v..../containers/json", "/v1.50.1.2/containers/json"] {
        curl(&h, &[&url(bad)]).json_error(400, "malformed API version");
    }
    curl(&h, &[&url("/v/containers/json")]).json_error(404, "page not found");

    // The docker CLI negotiates down to the daemon's version, or names a fixed one.
    if Command::new("docker").arg("--version").output().is_ok() {
        let o = h.docker(&["network", "ls", "-q"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let cfg = h.dir.path().join("docker-config");
        let pinned = |v: &str| {
            Command::new("docker")
                .env("DOCKER_HOST", format!("unix://{}", h.socket().display()))
                .env("DOCKER_CONFIG", &cfg)
                .env("DOCKER_API_VERSION", v)
                .args(["network", "ls", "-q"])
                .stdin(Stdio::null())
                .output()
                .unwrap()
        };
        assert!(pinned("1.41").status.success());
        let o = pinned("1.99");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(err.contains("client version 1.99 is too new"), "{err}");
    }
}

/// A raw connection to the daemon's socket. Reads give up after 30 s, so a connection the
/// daemon failed to close (or answer) fails the test instead of hanging it.
fn raw(h: &Host) -> UnixStream {
    let s = UnixStream::connect(h.socket()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

fn read_until(s: &mut UnixStream, needle: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(needle) {
        match s.read(&mut buf) {
            Ok(0) => panic!(
                "closed before {needle:?}: {}",
                String::from_utf8_lossy(&got)
            ),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("no {needle:?} ({e}): {}", String::from_utf8_lossy(&got)),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Reads until the daemon closes the connection.
fn assert_closed(s: &mut UnixStream, what: &str) {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => panic!("{what}: the daemon did not close it ({e})"),
        }
    }
}

const PING: &str = "GET /_ping HTTP/1.1\r\nHost: berth\r\n\r\n";

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn idle_and_slow_connections_are_closed() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon_with(&["--api-idle-timeout", "1s"]);

    // Long-lived work first: an event follower, a blocking catalog query and a
    // foreground container (an upgraded stdio session), all quiet for longer than the
    // idle timeout while the probes below are closed.
    let mut events = raw(&h);
    events
        .write_all(b"GET /events HTTP/1.1\r\nHost: berth\r\n\r\n")
        .unwrap();
    read_until(&mut events, "\r\n\r\n");
    let index = serde_json::from_str::<serde_json::Value>(&curl(&h, &[&url("/catalog")]).body)
        .unwrap()["Index"]
        .as_u64()
        .unwrap();
    let mut catalog = raw(&h);
    write!(
        catalog,
        "GET /catalog?index={index}&wait=120s HTTP/1.1\r\nHost: berth\r\n\r\n"
    )
    .unwrap();
    let flag = h.dir.path().join("go");
    let script = format!(
        "i=0; while [ ! -e {} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; echo done",
        flag.display()
    );
    let fg = KillOnDrop(
        Command::new(common::berth_bin())
            .arg("-H")
            .arg(format!("unix://{}", h.socket().display()))
            .args([
                "run",
                "--name",
                "fg",
                "--network",
                "none",
                "--",
                "sh",
                "-c",
                &script,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    common::wait_until("the foreground container to run", || {
        h.ok(&["ps", "--format", "{{.Names}}"]).contains("fg")
    });

    // Probes: silent, sending half a request head (slowloris), and kept alive after
    // one request.
    let mut probes = Vec::new();
    for i in 0..30 {
        let mut s = raw(&h);
        match i % 3 {
            0 => {}
            1 => s.write_all(b"GET /_ping HTTP/1.1\r\nHost: ber").unwrap(),
            _ => {
                s.write_all(PING.as_bytes()).unwrap();
                read_until(&mut s, "\r\n\r\nOK");
            }
        }
        probes.push(s);
    }
    h.ok(&["ps"]);
    for (i, s) in probes.iter_mut().enumerate() {
        assert_closed(s, &format!("probe {i}"));
    }
    h.ok(&["ps"]);

    // The long-lived ones still work.
    h.ok(&["network", "create", "after-idle"]);
    read_until(&mut events, "after-idle");
    // A name on a network changes the catalog (fg, on `none`, has none to add).
    h.ok(&[
        "run",
        "-d",
        "--name",
        "named",
        "--network",
        "after-idle",
        "--",
        "sleep",
        "60",
    ]);
    std::fs::write(&flag, "").unwrap();
    let mut fg = fg;
    let mut out = String::new();
    fg.0.stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "done\n");
    assert!(fg.0.wait().unwrap().success());
    let answer = read_until(&mut catalog, "\"named\"");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn connection_cap_keeps_the_daemon_serving() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon_with(&["--api-max-connections", "4"]);
    // start_daemon's own `version` calls have closed: four connections fill the cap.
    let mut holders: Vec<UnixStream> = (0..4)
        .map(|_| {
            let mut s = raw(&h);
            s.write_all(PING.as_bytes()).unwrap();
            read_until(&mut s, "\r\n\r\nOK");
            s
        })
        .collect();
    common::wait_until("the daemon to report the cap", || {
        h.daemon_log().contains("4 API connections are open")
    });
    let ps = KillOnDrop(
        Command::new(common::berth_bin())
            .arg("-H")
            .arg(format!("unix://{}", h.socket().display()))
            .arg("ps")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Each closes once answered, making room for the next.
    let mut waiting: Vec<UnixStream> = (0..10)
        .map(|_| {
            let mut s = raw(&h);
            s.write_all(b"GET /_ping HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    // Held connections keep being served.
    for s in holders.iter_mut() {
        s.write_all(PING.as_bytes()).unwrap();
        read_until(s, "\r\n\r\nOK");
    }
    let mut ps = ps;
    assert!(ps.0.try_wait().unwrap().is_none(), "served beyond the cap");
    drop(holders);
    for (i, s) in waiting.iter_mut().enumerate() {
        read_until(s, "\r\n\r\nOK");
        assert_closed(s, &format!("waiting connection {i}"));
    }
    common::wait_until("the waiting ps to finish", || {
        ps.0.try_wait().unwrap().is_some()
    });
    assert!(ps.0.wait().unwrap().success());
    h.ok(&["ps"]);
}

#[test]
fn deep_templates_are_an_error_not_a_crash() {
    need_root!();
    let mut h = Host::new();
    h.start_daemon();
    let nested = |open: &str, n: usize, inner: &str, close: &str| {
        format!("{}{inner}{}", open.repeat(n), close.repeat(n))
    };
    for t in [
        nested("{{with .}}", 6000, "x", "{{end}}"),
        nested("{{if 1}}", 7000, "x", "{{end}}"),
        format!("{{{{{}}}}}", nested("(", 60_000, "1", ")")),
    ] {
        let o = h.berth(&["inspect", "-f", &t, "bridge"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("max nesting depth exceeded"), "{err}");
    }
    let t = r#"{{define "t"}}{{template "t" .}}{{end}}{{template "t" .}}"#;
    let o = h.berth(&["network", "inspect", "-f", t, "bridge"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("exceeded maximum template depth"), "{err}");
}
