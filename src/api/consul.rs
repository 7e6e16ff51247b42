//! Consul's HTTP API, the part discovery tools read (`--consul-api ADDR`): berth's published
//! ports as Consul services (`berth_api::consul`, Registrator's model), with blocking
//! queries on the catalog's index. Read-only: registering is what berth's containers do.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use berth_api::consul::{instances, node_of, Instance, Node, Source};

use crate::daemon::Daemon;

/// The datacenter berth answers for (Consul's default name).
pub const DATACENTER: &str = "dc1";
/// Consul's cap on a blocking query's wait.
const MAX_WAIT: Duration = Duration::from_secs(600);
/// Consul's default wait.
const DEFAULT_WAIT: Duration = Duration::from_secs(300);

type Params = Vec<(String, String)>;
/// A refused request: its status and the message.
type Refusal = (StatusCode, String);

fn param<'a>(q: &'a Params, k: &str) -> Option<&'a str> {
    q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// Consul's `wait`: `10s`, `1m`, or a bare number of seconds.
fn wait_of(q: &Params) -> Result<Duration, Refusal> {
    match param(q, "wait") {
        None | Some("") => Ok(DEFAULT_WAIT),
        Some(w) => {
            let parsed = if w.bytes().all(|b| b.is_ascii_digit()) {
                w.parse()
                    .map(Duration::from_secs)
                    .map_err(|e| e.to_string())
            } else {
                berth_format::parse_duration(w)
            };
            parsed
                .map(|d| d.min(MAX_WAIT))
                .map_err(|e| (StatusCode::BAD_REQUEST, format!("Invalid wait time: {e}")))
        }
    }
}

/// Waits, for a query with `index`, until the catalog's index passes it or the wait ends,
/// then answers the index the answer is made at.
async fn block(d: &Daemon, q: &Params) -> Result<u64, Refusal> {
    let mut rx = d.journal.index();
    if let Some(i) = param(q, "index") {
        let seen: u64 = i.parse().map_err(|_| {
            (
                StatusCode::BAD_REQUEST,
                format!("Invalid index {i:?}: give the X-Consul-Index of an earlier answer"),
            )
        })?;
        let deadline = tokio::time::Instant::now() + wait_of(q)?;
        while *rx.borrow_and_update() <= seen {
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
    }
    // Consul's index is never 0 (clients treat 0 as "no blocking").
    let index = *rx.borrow();
    Ok(index.max(1))
}

fn check_dc(q: &Params) -> Result<(), Refusal> {
    match param(q, "dc") {
        None | Some("") | Some(DATACENTER) => Ok(()),
        Some(dc) => Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("No path to datacenter {dc:?}: berth answers for {DATACENTER}"),
        )),
    }
}

fn answer(index: u64, body: &impl serde::Serialize) -> Response {
    let mut r = axum::Json(body).into_response();
    let h = r.headers_mut();
    h.insert(
        "X-Consul-Index",
        HeaderValue::from_str(&index.to_string()).expect("digits"),
    );
    h.insert("X-Consul-KnownLeader", HeaderValue::from_static("true"));
    h.insert("X-Consul-LastContact", HeaderValue::from_static("0"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// This node and its address as Consul shows them.
fn me(d: &Daemon, listen: SocketAddr) -> (String, String, String) {
    match &d.cluster {
        Some(c) => (c.name.clone(), c.id.clone(), c.addr.to_string()),
        None => {
            let name = nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "berth".into());
            let addr = if listen.ip().is_unspecified() || listen.ip().is_loopback() {
                crate::cluster::interface_addresses()
                    .into_iter()
                    .map(|(_, ip)| ip)
                    .find(|ip| ip.is_ipv4() && !ip.is_loopback())
                    .unwrap_or(listen.ip())
            } else {
                listen.ip()
            };
            (name.clone(), name, addr.to_string())
        }
    }
}

/// Every node and every service instance, at `index`.
fn world(d: &Daemon, listen: SocketAddr, index: u64) -> (Vec<Node>, Vec<Instance>) {
    let (name, id, addr) = me(d, listen);
    let mut nodes = vec![node_of(&name, &id, &addr, DATACENTER, index)];
    let mut out = Vec::new();
    for c in d.feed.snapshot().containers.values() {
        if !c.is_running() {
            continue;
        }
        out.extend(instances(&Source {
            container_name: c.name.clone(),
            node: name.clone(),
            node_addr: addr.clone(),
            labels: c.config.labels.clone(),
            env: c.config.env.clone(),
            published: published(&crate::daemon::events::catalog_ports(c)),
            health: c.state.health.as_ref().map(|h| h.status.clone()),
        }));
    }
    for (rid, rname, raddr, eps) in d.remote_consul() {
        nodes.push(node_of(&rname, &rid, &raddr, DATACENTER, index));
        for e in eps {
            out.extend(instances(&Source {
                container_name: e.name.clone(),
                node: rname.clone(),
                node_addr: raddr.clone(),
                labels: e.labels.clone(),
                env: vec![],
                published: published(&e.ports),
                health: None,
            }));
        }
    }
    out.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
    (nodes, out)
}

fn published(ports: &[berth_api::discovery::CatalogPort]) -> Vec<(u16, String, String, u16)> {
    ports
        .iter()
        .filter_map(|p| {
            Some((
                p.private_port,
                p.proto.clone(),
                p.host_ip.clone().unwrap_or_default(),
                p.host_port?,
            ))
        })
        .collect()
}

#[derive(Clone)]
struct Ctx {
    d: Arc<Daemon>,
    listen: SocketAddr,
}

fn tagged(i: &Instance, q: &Params) -> bool {
    q.iter()
        .filter(|(k, _)| k == "tag")
        .all(|(_, t)| i.tags.contains(t))
}

async fn agent_self(State(c): State<Ctx>) -> Response {
    let (name, id, addr) = me(&c.d, c.listen);
    let node = node_of(&name, &id, &addr, DATACENTER, 1);
    answer(
        1,
        &serde_json::json!({
            "Config": {
                "Datacenter": DATACENTER,
                "PrimaryDatacenter": DATACENTER,
                "NodeName": name,
                "NodeID": node.id,
                "Server": true,
                "Revision": "berth",
                "Version": "1.15.0",
            },
            "Member": {
                "Name": name,
                "Addr": addr,
                "Port": 8301,
                "Tags": { "dc": DATACENTER, "role": "consul", "build": "berth" },
                "Status": 1,
            },
            "Meta": {},
        }),
    )
}

async fn leader(State(c): State<Ctx>) -> Response {
    let (_, _, addr) = me(&c.d, c.listen);
    answer(1, &format!("{addr}:8300"))
}

async fn peers(State(c): State<Ctx>) -> Response {
    let (_, _, addr) = me(&c.d, c.listen);
    answer(1, &[format!("{addr}:8300")])
}

async fn datacenters() -> Response {
    answer(1, &[DATACENTER])
}

async fn nodes(State(c): State<Ctx>, Query(q): Query<Params>) -> Response {
    run(&c, &q, |nodes, _| serde_json::to_value(nodes)).await
}

async fn services(State(c): State<Ctx>, Query(q): Query<Params>) -> Response {
    run(&c, &q, |_, inst| {
        let mut m: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for i in inst {
            let tags = m.entry(&i.name).or_default();
            for t in &i.tags {
                if !tags.contains(&t.as_str()) {
                    tags.push(t);
                }
            }
        }
        serde_json::to_value(m)
    })
    .await
}

async fn catalog_service(
    State(c): State<Ctx>,
    Path(name): Path<String>,
    Query(q): Query<Params>,
) -> Response {
    let q2 = q.clone();
    run(&c, &q, move |nodes, inst| {
        let v: Vec<_> = inst
            .iter()
            .filter(|i| i.name == name && tagged(i, &q2))
            .filter_map(|i| Some(i.catalog(nodes.iter().find(|n| n.node == i.node)?)))
            .collect();
        serde_json::to_value(v)
    })
    .await
}

async fn health_service(
    State(c): State<Ctx>,
    Path(name): Path<String>,
    Query(q): Query<Params>,
) -> Response {
    // `?passing` (no value), `passing=1` or `passing=true`; `passing=false` is off.
    let passing = param(&q, "passing").is_some_and(|v| !matches!(v, "0" | "false"));
    let q2 = q.clone();
    run(&c, &q, move |nodes, inst| {
        let v: Vec<_> = inst
            .iter()
            .filter(|i| i.name == name && tagged(i, &q2))
            .filter(|i| !passing || i.status == "passing")
            .filter_map(|i| Some(i.health(nodes.iter().find(|n| n.node == i.node)?)))
            .collect();
        serde_json::to_value(v)
    })
    .await
}

/// Checks the datacenter, blocks as asked, then answers `f` of the world at the index.
async fn run(
    c: &Ctx,
    q: &Params,
    f: impl FnOnce(&[Node], &[Instance]) -> serde_json::Result<serde_json::Value>,
) -> Response {
    if let Err(r) = check_dc(q) {
        return r.into_response();
    }
    if param(q, "filter").is_some() {
        return (
            StatusCode::BAD_REQUEST,
            "filter expressions are not supported by berth's Consul API: filter by tag (?tag=) or by name",
        )
            .into_response();
    }
    let index = match block(&c.d, q).await {
        Ok(i) => i,
        Err(r) => return r.into_response(),
    };
    let (nodes, inst) = world(&c.d, c.listen, index);
    match f(&nodes, &inst) {
        Ok(v) => answer(index, &v),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn router(c: Ctx) -> Router {
    Router::new()
        .route("/v1/agent/self", get(agent_self))
        .route("/v1/status/leader", get(leader))
        .route("/v1/status/peers", get(peers))
        .route("/v1/catalog/datacenters", get(datacenters))
        .route("/v1/catalog/nodes", get(nodes))
        .route("/v1/catalog/services", get(services))
        .route("/v1/catalog/service/{name}", get(catalog_service))
        .route("/v1/health/service/{name}", get(health_service))
        .with_state(c)
}

/// Serves the Consul API on `listener` (bound by the caller, so a bad address fails the
/// daemon's start).
pub async fn serve(listener: tokio::net::TcpListener, d: Arc<Daemon>) {
    let listen = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8500)));
    tracing::info!(%listen, "serving Consul's catalog and health API");
    if let Err(e) = axum::serve(listener, router(Ctx { d, listen })).await {
        tracing::warn!("the Consul API on {listen}: {e}");
    }
}

/// Serves Consul's DNS interface on `sock` (bound by the caller): `NAME.service.consul`
/// and its tag and datacenter forms, from the same instances as the HTTP API, passing
/// ones only (`berth_dns::consul`).
pub async fn serve_dns(sock: tokio::net::UdpSocket, d: Arc<Daemon>) {
    let listen = sock
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8600)));
    tracing::info!(%listen, "serving Consul's DNS interface");
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!("consul dns: {e}");
                continue;
            }
        };
        let (_, inst) = world(&d, listen, 0);
        let records: Vec<berth_dns::consul::Instance> = inst
            .iter()
            .filter(|i| i.status == "passing")
            .filter_map(|i| {
                Some(berth_dns::consul::Instance {
                    name: i.name.clone(),
                    tags: i.tags.clone(),
                    addr: i.address.parse().ok()?,
                    port: i.port,
                    node: i.node.clone(),
                    node_addr: i.node_addr.parse().ok()?,
                })
            })
            .collect();
        if let Some(out) = berth_dns::consul::answer(&records, DATACENTER, &buf[..n]) {
            let _ = sock.send_to(&out, from).await;
        }
    }
}
