//! `/metrics` (`--metrics-addr`): Prometheus' text format with the daemon's operations,
//! containers, endpoints, published ports, DNS queries and proxy connections, scraped by a
//! real Prometheus (Debian's package) from an outside namespace.

mod common;

use std::time::Duration;

use common::{wait_until, Host};

const AT: &str = "203.0.113.1:9323";

/// The value of the first sample line starting with `series` (name and labels as written).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_for_prometheus() {
    need_root!();
    let mut h = Host::with_outside();
    h.start_daemon_with(&["--metrics-addr", AT]);
    h.ok(&["network", "create", "app"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "app",
        "-p",
        "8080:80",
        "--",
        "sleep",
        "300",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--network",
        "app",
        "--",
        "sleep",
        "300",
    ]);
    // Three DNS answers from berth's names.
    h.ok(&[
        "run",
        "--rm",
        "--network",
        "app",
        "--",
        "sh",
        "-c",
        "getent hosts web && getent hosts db && getent hosts web",
    ]);
    let text = h.outside_out(&format!("curl -sf --max-time 5 http://{AT}/metrics"));
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(
        sample(&text, "berth_containers{state=\"running\"}"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(sample(&text, "berth_endpoints "), Some(2.0), "{text}");
    assert_eq!(sample(&text, "berth_published_ports "), Some(1.0), "{text}");
    assert!(
        sample(&text, "berth_dns_queries_total{outcome=\"local\"}").unwrap_or(0.0) >= 3.0,
        "{text}"
    );
    assert!(
        text.contains("berth_api_requests_total{method=\"POST\",route=\"/{version}/containers/create\",status=\"201\"}")
            || text.contains("route=\"/containers/create\",status=\"201\"}"),
        "{text}"
    );
    assert!(
        text.contains("berth_api_request_duration_seconds_bucket{"),
        "{text}"
    );

    // Prometheus scrapes it.
    let Ok(o) = std::process::Command::new("prometheus")
        .arg("--version")
        .output()
    else {
        eprintln!("no prometheus: the scrape part is skipped (apt-get install prometheus)");
        return;
    };
    assert!(o.status.success());
    let dir = h.dir.path().join("prom");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!("global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: berth\n    static_configs:\n      - targets: ['{AT}']\n"),
    )
    .unwrap();
    let mut prom = h.outside_sh(&format!(
        "exec prometheus --config.file={d}/prometheus.yml --storage.tsdb.path={d}/data --web.listen-address=127.0.0.1:9090 > {d}/log 2>&1",
        d = dir.display()
    ));
    let query = |h: &Host, q: &str| -> Option<f64> {
        let out = h.outside_out(&format!(
            "curl -sf --max-time 2 'http://127.0.0.1:9090/api/v1/query' --data-urlencode 'query={q}'"
        ));
        let v: serde_json::Value = serde_json::from_str(&out).ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    };
    let t = std::time::Instant::now();
    while query(&h, "berth_containers{state=\"running\"}") != Some(2.0) {
        assert!(
            t.elapsed() < Duration::from_secs(40),
            "Prometheus did not scrape berth: {}",
            std::fs::read_to_string(dir.join("log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    h.ok(&["stop", "-t", "0", "db"]);
    wait_until("Prometheus sees one running container", || {
        query(&h, "berth_containers{state=\"running\"}") == Some(1.0)
    });
    assert_eq!(query(&h, "up{job=\"berth\"}"), Some(1.0));
    let _ = prom.kill();
    let _ = prom.wait();
}

/// In cluster mode, every round trip to etcd is counted and timed by operation.
#[test]
fn etcd_round_trips_in_cluster_mode() {
    need_root!();
    let f = common::cluster::Fabric::new();
    let mut h = f.host(21);
    common::cluster::start_node(&mut h, 21, &["--metrics-addr", "127.0.0.1:9323"]);
    h.ok(&["network", "create", "-d", "overlay", "app"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "a",
        "--network",
        "app",
        "--",
        "sleep",
        "300",
    ]);
    let o =
        h.ns.sh("curl -sf --max-time 5 http://127.0.0.1:9323/metrics");
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    for op in ["txn", "list", "watch", "grant"] {
        let series = format!("berth_etcd_requests_total{{op=\"{op}\",outcome=\"ok\"}}");
        assert!(
            sample(&text, &series).unwrap_or(0.0) >= 1.0,
            "{series}: {text}"
        );
    }
    assert!(
        sample(
            &text,
            "berth_etcd_request_duration_seconds_count{op=\"txn\"}"
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{text}"
    );
}
