//! `/metrics` in Prometheus' text format (`--metrics-addr`), off the API socket: API
//! operations and their latencies, DNS queries by outcome and their latencies, proxy
//! connections, and, read from the state at each scrape, containers, endpoints and
//! published ports, and, in cluster mode, etcd round trips ([`etcd::Metered`]). One process-wide registry: the DNS server and the proxy count where
//! the work happens, without a handle passed down to them. The hot paths touch only
//! pre-made counters (an atomic add each).

mod etcd;
pub use etcd::Metered;

use std::sync::{Arc, LazyLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

fn latency() -> Histogram {
    // 50 µs … ~1.6 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    api_requests: Family<Labels, Counter>,
    api_seconds: Histograms,
    /// Queries answered from berth's own names.
    pub dns_local: Counter,
    /// Queries relayed to upstream resolvers.
    pub dns_forwarded: Counter,
    /// Queries answered SERVFAIL because too many relays were in flight or none answered.
    pub dns_servfail: Counter,
    /// Time to answer a query from berth's names (per query).
    pub dns_local_seconds: Histogram,
    /// Time for an upstream relay.
    pub dns_forward_seconds: Histogram,
    /// Connections the userland proxy relayed.
    pub proxy_connections: Counter,
    etcd_requests: Family<Labels, Counter>,
    etcd_seconds: Histograms,
    containers: Family<Labels, Gauge>,
    endpoints: Gauge,
    published: Gauge,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("berth");
    let api_requests = Family::<Labels, Counter>::default();
    registry.register(
        "api_requests",
        "API requests by method, route and status",
        api_requests.clone(),
    );
    let api_seconds: Histograms = Family::new_with_constructor(latency as fn() -> Histogram);
    registry.register(
        "api_request_duration_seconds",
        "API request latency by method and route",
        api_seconds.clone(),
    );
    let dns = Family::<Labels, Counter>::default();
    registry.register(
        "dns_queries",
        "DNS queries by outcome: local (berth's names), forwarded (upstream), servfail",
        dns.clone(),
    );
    let outcome = |o: &str| dns.get_or_create_owned(&vec![("outcome", o.to_string())]);
    let (dns_local, dns_forwarded, dns_servfail) =
        (outcome("local"), outcome("forwarded"), outcome("servfail"));
    let dns_local_seconds = latency();
    registry.register(
        "dns_local_answer_duration_seconds",
        "Time to answer a query from berth's names",
        dns_local_seconds.clone(),
    );
    let dns_forward_seconds = latency();
    registry.register(
        "dns_forward_duration_seconds",
        "Time for a query relayed to upstream resolvers",
        dns_forward_seconds.clone(),
    );
    let proxy_connections = Counter::default();
    registry.register(
        "proxy_connections",
        "TCP connections relayed by the userland proxy",
        proxy_connections.clone(),
    );
    let etcd_requests = Family::<Labels, Counter>::default();
    registry.register(
        "etcd_requests",
        "Round trips to etcd (cluster mode) by operation and outcome",
        etcd_requests.clone(),
    );
    let etcd_seconds: Histograms = Family::new_with_constructor(latency as fn() -> Histogram);
    registry.register(
        "etcd_request_duration_seconds",
        "Round-trip time to etcd by operation",
        etcd_seconds.clone(),
    );
    let containers = Family::<Labels, Gauge>::default();
    registry.register("containers", "Containers by state", containers.clone());
    let endpoints = Gauge::default();
    registry.register(
        "endpoints",
        "Network endpoints of running containers",
        endpoints.clone(),
    );
    let published = Gauge::default();
    registry.register(
        "published_ports",
        "Published ports of running containers",
        published.clone(),
    );
    Metrics {
        registry,
        api_requests,
        api_seconds,
        dns_local,
        dns_forwarded,
        dns_servfail,
        dns_local_seconds,
        dns_forward_seconds,
        proxy_connections,
        etcd_requests,
        etcd_seconds,
        containers,
        endpoints,
        published,
    }
});

/// Counts and times an API request (axum middleware on the API router).
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let t = Instant::now();
    let resp = next.run(req).await;
    let m = &*METRICS;
    m.api_seconds
        .get_or_create(&vec![("method", method.clone()), ("route", route.clone())])
        .observe(t.elapsed().as_secs_f64());
    m.api_requests
        .get_or_create(&vec![
            ("method", method),
            ("route", route),
            ("status", resp.status().as_u16().to_string()),
        ])
        .inc();
    resp
}

async fn scrape(State(d): State<Arc<crate::daemon::Daemon>>) -> Response {
    let m = &*METRICS;
    let snap = d.feed.snapshot();
    let mut by_state: std::collections::BTreeMap<String, i64> = ["running", "exited", "created"]
        .into_iter()
        .map(|s| (s.to_string(), 0))
        .collect();
    let (mut eps, mut ports) = (0i64, 0i64);
    for c in snap.containers.values() {
        *by_state
            .entry(c.state.status.as_str().to_string())
            .or_default() += 1;
        if c.is_running() {
            eps += i64::try_from(c.endpoints.len()).unwrap_or(0);
            let n = crate::daemon::events::catalog_ports(c)
                .iter()
                .filter(|p| p.host_port.is_some())
                .count();
            ports += i64::try_from(n).unwrap_or(i64::MAX);
        }
    }
    for (s, n) in by_state {
        m.containers.get_or_create(&vec![("state", s)]).set(n);
    }
    m.endpoints.set(eps);
    m.published.set(ports);
    let mut body = String::new();
    if let Err(e) = encode(&mut body, &m.registry) {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Serves `/metrics` on `listener` (bound by the caller, so a bad address fails the start).
pub async fn serve(listener: tokio::net::TcpListener, d: Arc<crate::daemon::Daemon>) {
    let at = listener.local_addr().ok();
    tracing::info!(?at, "serving /metrics");
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(d);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!("the metrics listener: {e}");
    }
}
