//! Consul's HTTP API served by the daemon (`--consul-api`), read by real clients: curl for
//! the shapes and a blocking query, py-consul (PyPI) reading the catalog and health and
//! blocking until a container starts.

mod common;

use std::time::Duration;

use common::{wait_until, Host};

const API: &str = "203.0.113.1:8500";

/// A container answering Prometheus' scrape on its port 9100, published on `host_port`.
fn exporter(h: &Host, name: &str, host_port: u16, extra: &[&str]) {
    let publish = format!("{host_port}:9100");
    let mut a = vec![
        "run",
        "-d",
        "--name",
        name,
        "-p",
        &publish,
        "-e",
        "SERVICE_NAME=metrics",
        "-l",
        "SERVICE_TAGS=prod,exporter",
    ];
    a.extend_from_slice(extra);
    let reply = format!(
        "printf 'HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\nberth_test_up{{name=\"{name}\"}} 1\\n'"
    );
    let sys = format!("SYSTEM:{reply}");
    a.extend_from_slice(&["--", "socat", "TCP-LISTEN:9100,fork,reuseaddr", &sys]);
    h.ok(&a);
}

fn get(h: &Host, path: &str) -> serde_json::Value {
    let out = h.outside_out(&format!("curl -sf --max-time 5 'http://{API}{path}'"));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{path}: {e}: {out:?}"))
}

fn have_python_consul() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import consul"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn consul_api_for_real_clients() {
    need_root!();
    let mut h = Host::with_outside();
    h.start_daemon_with(&["--consul-api", API, "--consul-dns", "203.0.113.1:8600"]);
    exporter(&h, "exp1", 9101, &[]);
    exporter(&h, "exp2", 9102, &[]);
    // A container whose health check fails is in the catalog, critical, and not passing.
    exporter(
        &h,
        "sick",
        9103,
        &[
            "--health-cmd",
            "false",
            "--health-interval",
            "200ms",
            "--health-retries",
            "1",
        ],
    );

    // The shapes, as curl reads them from the outside.
    let me = get(&h, "/v1/agent/self");
    assert_eq!(me["Config"]["Datacenter"], "dc1", "{me}");
    assert_eq!(
        get(&h, "/v1/catalog/datacenters"),
        serde_json::json!(["dc1"])
    );
    let leader = h.outside_out(&format!("curl -sf 'http://{API}/v1/status/leader'"));
    assert!(leader.contains(":8300"), "{leader}");
    let nodes = get(&h, "/v1/catalog/nodes");
    assert_eq!(nodes.as_array().unwrap().len(), 1, "{nodes}");
    let svcs = get(&h, "/v1/catalog/services");
    assert_eq!(
        svcs["metrics"],
        serde_json::json!(["prod", "exporter"]),
        "{svcs}"
    );
    let cat = get(&h, "/v1/catalog/service/metrics");
    let ports: Vec<u64> = cat
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["ServicePort"].as_u64().unwrap())
        .collect();
    assert_eq!(ports, [9101, 9102, 9103], "{cat}");
    assert_eq!(cat[0]["ServiceAddress"], "203.0.113.1", "{cat}");
    assert_eq!(
        cat[0]["ServiceID"],
        cat[0]["Node"].as_str().unwrap().to_string() + ":exp1:9100"
    );
    assert!(get(&h, "/v1/catalog/service/metrics?tag=nope")
        .as_array()
        .unwrap()
        .is_empty());
    wait_until("sick is critical", || {
        let all = get(&h, "/v1/health/service/metrics");
        all.as_array()
            .unwrap()
            .iter()
            .any(|e| e["Service"]["Port"] == 9103 && e["Checks"][1]["Status"] == "critical")
    });
    let passing = get(&h, "/v1/health/service/metrics?passing");
    let ports: Vec<u64> = passing
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Service"]["Port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports, [9101, 9102], "{passing}");
    // DNS: SRV with the host ports of passing instances, A, tags, unknown names.
    let dig = |q: &str| {
        let mut v: Vec<String> = h
            .outside_out(&format!(
                "dig @203.0.113.1 -p 8600 +short +time=2 +tries=1 {q}"
            ))
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    let node = cat[0]["Node"].as_str().unwrap();
    assert_eq!(
        dig("SRV metrics.service.consul"),
        [
            format!("1 1 9101 {node}.node.dc1.consul."),
            format!("1 1 9102 {node}.node.dc1.consul."),
        ],
        "the sick one is left out"
    );
    assert_eq!(
        dig("metrics.service.dc1.consul"),
        ["203.0.113.1", "203.0.113.1"]
    );
    assert_eq!(dig("SRV exporter.metrics.service.consul").len(), 2);
    assert!(dig("SRV nosuchtag.metrics.service.consul").is_empty());
    let nx = h.outside_out("dig @203.0.113.1 -p 8600 +time=2 +tries=1 nope.service.consul");
    assert!(nx.contains("NXDOMAIN"), "{nx}");
    let other_dc = h.outside_out(&format!(
        "curl -s -o /dev/null -w '%{{http_code}}' 'http://{API}/v1/catalog/services?dc=eu'"
    ));
    assert_eq!(other_dc, "500");
    // A blocking query answers at once without an index and waits with one.
    let idx = h.outside_out(&format!(
        "curl -sf -D - -o /dev/null 'http://{API}/v1/catalog/services' | tr -d '\\r' | sed -n 's/^X-Consul-Index: //ip'"
    ));
    let idx: u64 = idx.trim().parse().unwrap_or_else(|_| panic!("{idx:?}"));
    assert!(idx > 0);
    let t = std::time::Instant::now();
    h.outside_out(&format!(
        "curl -sf 'http://{API}/v1/catalog/services?index={idx}&wait=1s'"
    ));
    assert!(t.elapsed() >= Duration::from_millis(900), "did not block");

    if have_python_consul() {
        // py-consul: the catalog, and a blocking query that returns when a container starts.
        let out_file = h.dir.path().join("pyconsul.out");
        let script = format!(
            r#"
import consul, sys
c = consul.Consul(host="203.0.113.1", port=8500)
idx, svcs = c.catalog.services()
assert "metrics" in svcs, svcs
_, nodes = c.health.service("metrics", passing=True)
print("passing", sorted(n["Service"]["Port"] for n in nodes), flush=True)
open("{ready}", "w").write(str(idx))
while True:
    idx, svcs = c.catalog.services(index=idx, wait="20s")
    if "late" in svcs:
        break
_, late = c.catalog.service("late")
print("late", late[0]["ServicePort"], flush=True)
"#,
            ready = h.dir.path().join("pyconsul.ready").display()
        );
        std::fs::write(h.dir.path().join("client.py"), script).unwrap();
        let mut py = h.outside_sh(&format!(
            "python3 {} > {} 2>&1",
            h.dir.path().join("client.py").display(),
            out_file.display()
        ));
        wait_until("py-consul's first answers", || {
            h.dir.path().join("pyconsul.ready").exists()
        });
        // The client is now blocked on the index it read.
        std::thread::sleep(Duration::from_millis(300));
        h.ok(&[
            "run", "-d", "--name", "late", "-p", "9200:80", "--", "sleep", "300",
        ]);
        let st = wait_timeout(&mut py, Duration::from_secs(20));
        let out = std::fs::read_to_string(&out_file).unwrap();
        assert!(st, "py-consul did not return: {out}");
        assert!(out.contains("passing [9101, 9102]"), "{out}");
        assert!(out.contains("late 9200"), "{out}");
    } else {
        eprintln!(
            "python3 -c 'import consul' fails: py-consul part skipped (pip install py-consul)"
        );
    }

    // Prometheus: Debian's package (2.42.0+ds-5+deb12u1) is built without Consul service
    // discovery ("Disable Consul SD until its Debian package is back in shape", its
    // changelog; `consul_sd_configs` is refused as an unknown field), so it cannot be the
    // client here. See docs/integrations.md.
    let _ = &mut h;
}

fn wait_timeout(c: &mut std::process::Child, d: Duration) -> bool {
    let t = std::time::Instant::now();
    while t.elapsed() < d {
        if let Ok(Some(_)) = c.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
