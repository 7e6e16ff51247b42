//! The daemon's HTTP API on a unix socket: Docker Engine API paths and shapes, plus the
//! `berth-stdio` upgrade that passes a client's stdio descriptors (or a pty master) over the
//! socket so foreground processes use the client's terminal directly, with no relaying.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::{UnixListener, UnixStream};
use tower::ServiceExt;

use super::types;
use crate::daemon::{
    ContainerCreate, Daemon, Error, ExecRequest, IpamConfigReq, NetworkCreate, Stdio,
};
use crate::model::EndpointRequest;

pub const UPGRADE_PROTO: &str = "berth-stdio";

pub(crate) struct ApiError(Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        json_response(
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &json!({ "message": self.0.to_string() }),
        )
    }
}

pub(crate) type ApiResult<T = axum::response::Response> = Result<T, ApiError>;

fn json_response(status: StatusCode, v: &Value) -> axum::response::Response {
    let mut body = serde_json::to_vec(v).expect("json");
    body.push(b'\n');
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("response")
}

fn ok(v: Value) -> ApiResult {
    Ok(json_response(StatusCode::OK, &v))
}

fn no_content() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn bad_json(e: serde_json::Error) -> ApiError {
    ApiError(Error::InvalidParameter(format!("invalid JSON body: {e}")))
}

/// Docker's filters: `{"name":{"x":true}}` (or the legacy `{"name":["x"]}`).
pub fn parse_filters(raw: Option<&str>) -> Result<BTreeMap<String, Vec<String>>, Error> {
    let Some(raw) = raw.filter(|s| !s.is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let v: Value = serde_json::from_str(raw)
        .map_err(|e| Error::InvalidParameter(format!("invalid filter JSON {raw:?}: {e}")))?;
    let mut out = BTreeMap::new();
    if let Value::Object(m) = v {
        for (k, vals) in m {
            let list = match vals {
                Value::Object(o) => o
                    .into_iter()
                    .filter(|(_, b)| b != &json!(false))
                    .map(|(k, _)| k)
                    .collect(),
                Value::Array(a) => a
                    .into_iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect(),
                _ => vec![],
            };
            out.insert(k, list);
        }
    }
    Ok(out)
}

fn label_match(labels: &BTreeMap<String, String>, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, v)) => labels.get(k).map(String::as_str) == Some(v),
        None => labels.contains_key(want),
    }
}

#[derive(Deserialize, Default)]
struct FilterQuery {
    filters: Option<String>,
    all: Option<String>,
}

fn truthy(s: &Option<String>) -> bool {
    matches!(s.as_deref(), Some("1") | Some("true") | Some("True"))
}

pub fn router(d: Arc<Daemon>) -> Router {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/events", get(super::discovery::events))
        .route("/catalog", get(super::discovery::catalog_get))
        .route("/networks", get(network_list))
        .route("/networks/create", post(network_create))
        .route("/networks/prune", post(network_prune))
        .route(
            "/networks/{id}",
            get(network_inspect).delete(network_delete),
        )
        .route("/networks/{id}/connect", post(network_connect))
        .route("/networks/{id}/disconnect", post(network_disconnect))
        .route("/containers/json", get(container_list))
        .route("/containers/create", post(container_create))
        .route("/containers/{id}/json", get(container_inspect))
        .route("/containers/{id}/start", post(container_start))
        .route("/containers/{id}/stop", post(container_stop))
        .route("/containers/{id}/restart", post(container_restart))
        .route("/containers/{id}/kill", post(container_kill))
        .route("/containers/{id}/wait", post(container_wait))
        .route("/containers/{id}/logs", get(container_logs))
        .route("/containers/{id}", axum::routing::delete(container_delete))
        .route("/berth/containers/{id}/exec", post(container_exec))
        .route("/images/{id}/json", get(no_such_object))
        .route("/volumes/{id}", get(no_such_object))
        .route("/plugins/{id}/json", get(no_such_object))
        .fallback(|| async {
            json_response(StatusCode::NOT_FOUND, &json!({"message": "page not found"}))
        })
        .layer(axum::middleware::map_response(docker_headers))
        .with_state(d)
}

async fn docker_headers(mut r: axum::response::Response) -> axum::response::Response {
    let h = r.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(types::API_VERSION));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert(
        header::SERVER,
        HeaderValue::from_static(concat!("berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

async fn ping() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::HeaderName::from_static("builder-version"), ""),
            (header::HeaderName::from_static("swarm"), "inactive"),
        ],
        "OK",
    )
}

fn kernel_version() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

async fn version() -> ApiResult {
    let v = env!("CARGO_PKG_VERSION");
    ok(json!({
        "Platform": { "Name": "berth" },
        "Components": [{ "Name": "Engine", "Version": v, "Details": {
            "ApiVersion": types::API_VERSION, "MinAPIVersion": types::MIN_API_VERSION,
            "Os": "linux", "Arch": std::env::consts::ARCH, "KernelVersion": kernel_version() } }],
        "Version": v,
        "ApiVersion": types::API_VERSION,
        "MinAPIVersion": types::MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH },
        "KernelVersion": kernel_version(),
        "BuildTime": "",
    }))
}

async fn info(State(d): State<Arc<Daemon>>) -> ApiResult {
    let (nets, ctrs) = d.snapshot().await;
    let running = ctrs.iter().filter(|c| c.is_running()).count();
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    ok(json!({
        "ID": "",
        "Containers": ctrs.len(),
        "ContainersRunning": running,
        "ContainersPaused": 0,
        "ContainersStopped": ctrs.len() - running,
        "Images": 0,
        "Driver": "",
        "Name": host,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "OperatingSystem": "berth",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "KernelVersion": kernel_version(),
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "DockerRootDir": d.opts.root.display().to_string(),
        "Plugins": { "Volume": [], "Network": ["bridge", "host", "null"], "Log": [] },
        "Swarm": { "LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "", "ControlAvailable": false, "Error": "", "RemoteManagers": null },
        "Networks": nets.len(),
        "BerthRun": d.opts.run.display().to_string(),
        "BerthSocket": d.opts.socket.display().to_string(),
        "BerthDNS": d.dns.host_addr().map(|a| a.to_string()).unwrap_or_default(),
        "Warnings": d.warnings().await,
    }))
}

async fn no_such_object(Path(id): Path<String>) -> ApiResult {
    Err(Error::NotFound(format!("No such object: {id}")).into())
}

async fn network_list(State(d): State<Arc<Daemon>>, Query(q): Query<FilterQuery>) -> ApiResult {
    let f = parse_filters(q.filters.as_deref())?;
    for k in f.keys() {
        if !["name", "id", "driver", "label", "type", "scope", "dangling"].contains(&k.as_str()) {
            return Err(Error::InvalidParameter(format!("invalid filter '{k}'")).into());
        }
    }
    let (nets, ctrs) = d.snapshot().await;
    let out: Vec<Value> = nets
        .iter()
        .filter(|n| {
            let any = |k: &str, pred: &dyn Fn(&str) -> bool| {
                f.get(k).is_none_or(|v| v.iter().any(|x| pred(x)))
            };
            any("name", &|x| n.name.contains(x))
                && any("id", &|x| n.id.starts_with(x))
                && any("driver", &|x| n.driver.as_str() == x)
                && any("scope", &|x| x == "local")
                && any("type", &|x| (x == "builtin") == n.builtin)
                && f.get("label")
                    .is_none_or(|v| v.iter().all(|x| label_match(&n.labels, x)))
                && any("dangling", &|x| {
                    let unused = !n.builtin
                        && !ctrs
                            .iter()
                            .any(|c| c.endpoints.iter().any(|e| e.network_id == n.id));
                    (x == "true" || x == "1") == unused
                })
        })
        .map(|n| types::network(n, &ctrs, false))
        .collect();
    ok(Value::Array(out))
}

async fn network_inspect(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> ApiResult {
    let (nets, ctrs) = d.snapshot().await;
    let nid = {
        let st = d.state.lock().await;
        st.network_id(&id)?
    };
    let n = nets
        .iter()
        .find(|n| n.id == nid)
        .ok_or_else(|| Error::NotFound(format!("network {id} not found")))?;
    ok(types::network(n, &ctrs, true))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct IpamConfigJson {
    subnet: Option<String>,
    #[serde(rename = "IPRange")]
    ip_range: Option<String>,
    gateway: Option<String>,
    auxiliary_addresses: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct IpamJson {
    config: Option<Vec<IpamConfigJson>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct NetworkCreateJson {
    name: String,
    driver: Option<String>,
    #[serde(rename = "IPAM")]
    ipam: Option<IpamJson>,
    internal: bool,
    attachable: bool,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: Option<bool>,
    options: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
}

fn empty_none(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

async fn network_create(State(d): State<Arc<Daemon>>, body: Bytes) -> ApiResult {
    let r: NetworkCreateJson = serde_json::from_slice(&body).map_err(bad_json)?;
    let req = NetworkCreate {
        name: r.name,
        driver: empty_none(r.driver),
        ipam: r
            .ipam
            .and_then(|i| i.config)
            .unwrap_or_default()
            .into_iter()
            .map(|c| IpamConfigReq {
                subnet: empty_none(c.subnet),
                ip_range: empty_none(c.ip_range),
                gateway: empty_none(c.gateway),
                aux: c.auxiliary_addresses.unwrap_or_default(),
            })
            .collect(),
        internal: r.internal,
        attachable: r.attachable,
        ipv6: r.enable_ipv6.unwrap_or(false),
        options: r.options.unwrap_or_default(),
        labels: r.labels.unwrap_or_default(),
    };
    let n = d.network_create(req).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"Id": n.id, "Warning": ""}),
    ))
}

async fn network_delete(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> ApiResult {
    d.network_remove(&id).await?;
    no_content()
}

async fn network_prune(State(d): State<Arc<Daemon>>, Query(q): Query<FilterQuery>) -> ApiResult {
    let f = parse_filters(q.filters.as_deref())?;
    let labels: Vec<(String, Option<String>)> = f
        .get("label")
        .map(|v| {
            v.iter()
                .map(|l| match l.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (l.clone(), None),
                })
                .collect()
        })
        .unwrap_or_default();
    let deleted = d.network_prune(&labels).await?;
    ok(json!({ "NetworksDeleted": deleted }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct IpamEndpointJson {
    #[serde(rename = "IPv4Address")]
    ipv4_address: Option<String>,
    #[serde(rename = "IPv6Address")]
    ipv6_address: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct EndpointJson {
    #[serde(rename = "IPAMConfig")]
    ipam_config: Option<IpamEndpointJson>,
    aliases: Option<Vec<String>>,
}

fn endpoint_request(e: Option<EndpointJson>) -> Result<EndpointRequest, Error> {
    let e = e.unwrap_or_default();
    let ip = |s: Option<String>, what: &str| -> Result<_, Error> {
        empty_none(s)
            .map(|s| {
                s.parse().map_err(|_| {
                    Error::InvalidParameter(format!(
                        "invalid {what} address {s:?}: not an IP address"
                    ))
                })
            })
            .transpose()
    };
    let ipam = e.ipam_config.unwrap_or_default();
    Ok(EndpointRequest {
        ipv4: ip(ipam.ipv4_address, "IPv4")?,
        ipv6: ip(ipam.ipv6_address, "IPv6")?,
        aliases: e.aliases.unwrap_or_default(),
    })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectJson {
    container: String,
    endpoint_config: Option<EndpointJson>,
    force: bool,
}

async fn network_connect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let r: ConnectJson = serde_json::from_slice(&body).map_err(bad_json)?;
    d.network_connect(&id, &r.container, endpoint_request(r.endpoint_config)?)
        .await?;
    Ok(StatusCode::OK.into_response())
}

async fn network_disconnect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let r: ConnectJson = serde_json::from_slice(&body).map_err(bad_json)?;
    d.network_disconnect(&id, &r.container, r.force).await?;
    Ok(StatusCode::OK.into_response())
}

async fn container_list(State(d): State<Arc<Daemon>>, Query(q): Query<FilterQuery>) -> ApiResult {
    let f = parse_filters(q.filters.as_deref())?;
    let all = truthy(&q.all);
    let (nets, mut ctrs) = d.snapshot().await;
    ctrs.sort_by_key(|c| std::cmp::Reverse(c.created));
    let now = chrono::Utc::now();
    let out: Vec<Value> = ctrs
        .iter()
        .filter(|c| all || c.is_running() || f.contains_key("status"))
        .filter(|c| {
            let any = |k: &str, pred: &dyn Fn(&str) -> bool| {
                f.get(k).is_none_or(|v| v.iter().any(|x| pred(x)))
            };
            any("name", &|x| c.name.contains(x.trim_start_matches('/')))
                && any("id", &|x| c.id.starts_with(x))
                && any("status", &|x| c.state.status.as_str() == x)
                && any("network", &|x| {
                    c.config.networks.iter().any(|(n, _)| n == x)
                        || c.endpoints
                            .iter()
                            .any(|e| e.network_name == x || e.network_id.starts_with(x))
                        || c.config.network_mode_name == x
                })
                && f.get("label")
                    .is_none_or(|v| v.iter().all(|x| label_match(&c.config.labels, x)))
        })
        .map(|c| types::container_summary(c, &nets, now))
        .collect();
    ok(Value::Array(out))
}

async fn container_inspect(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> ApiResult {
    let cid = d.state.lock().await.container_id(&id)?;
    let (nets, ctrs) = d.snapshot().await;
    let c = ctrs
        .iter()
        .find(|c| c.id == cid)
        .ok_or_else(|| Error::NotFound(format!("No such container: {id}")))?;
    let paths = types::Paths {
        dir: d.opts.run.join("containers").join(&c.id),
        netns: d.opts.run.join("netns").join(&c.id),
    };
    ok(types::container_inspect(c, &nets, &paths))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct HostConfigJson {
    network_mode: Option<String>,
    dns: Option<Vec<String>>,
    dns_search: Option<Vec<String>>,
    dns_options: Option<Vec<String>>,
    extra_hosts: Option<Vec<String>>,
    links: Option<Vec<String>>,
    auto_remove: bool,
    port_bindings: Option<BTreeMap<String, Option<Vec<PortBindingJson>>>>,
    publish_all_ports: bool,
    restart_policy: Option<RestartPolicyJson>,
    log_config: Option<LogConfigJson>,
}

/// docker's `HostConfig.LogConfig`: berth writes files with json-file's size limits.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct LogConfigJson {
    #[serde(rename = "Type")]
    kind: String,
    config: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RestartPolicyJson {
    name: String,
    maximum_retry_count: u32,
}

/// docker's `Config.Healthcheck`: durations in nanoseconds, 0 = the default.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct HealthcheckJson {
    test: Option<Vec<String>>,
    interval: u64,
    timeout: u64,
    retries: u32,
    start_period: u64,
}

fn healthcheck(h: Option<HealthcheckJson>) -> Result<Option<crate::model::Healthcheck>, Error> {
    let Some(h) = h else { return Ok(None) };
    let test = h.test.unwrap_or_default();
    match test.first().map(String::as_str) {
        None | Some("NONE") => return Ok(None),
        Some("CMD") | Some("CMD-SHELL") if test.len() > 1 => {}
        _ => {
            return Err(Error::InvalidParameter(format!(
                "invalid Healthcheck.Test {test:?}: use [\"CMD\", prog, args…], [\"CMD-SHELL\", script] or [\"NONE\"]"
            )))
        }
    }
    let ms = |ns: u64, default: u64| {
        if ns == 0 {
            default
        } else {
            (ns / 1_000_000).max(1)
        }
    };
    Ok(Some(crate::model::Healthcheck {
        test,
        interval_ms: ms(h.interval, 30_000),
        timeout_ms: ms(h.timeout, 30_000),
        retries: if h.retries == 0 { 3 } else { h.retries },
        start_period_ms: ms(h.start_period, 0),
    }))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PortBindingJson {
    #[serde(rename = "HostIp")]
    host_ip: String,
    #[serde(rename = "HostPort")]
    host_port: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct NetworkingConfigJson {
    endpoints_config: Option<serde_json::Map<String, Value>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateJson {
    hostname: String,
    domainname: String,
    tty: bool,
    open_stdin: bool,
    env: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    working_dir: String,
    labels: Option<BTreeMap<String, String>>,
    exposed_ports: Option<BTreeMap<String, Value>>,
    host_config: Option<HostConfigJson>,
    networking_config: Option<NetworkingConfigJson>,
    healthcheck: Option<HealthcheckJson>,
}

#[derive(Deserialize, Default)]
struct NameQuery {
    name: Option<String>,
}

async fn container_create(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<NameQuery>,
    body: Bytes,
) -> ApiResult {
    let r: CreateJson = serde_json::from_slice(&body).map_err(bad_json)?;
    let hc = r.host_config.unwrap_or_default();
    let mut endpoints = Vec::new();
    for (net, ep) in r
        .networking_config
        .and_then(|n| n.endpoints_config)
        .unwrap_or_default()
    {
        let ep: EndpointJson = serde_json::from_value(ep).map_err(bad_json)?;
        endpoints.push((net, endpoint_request(Some(ep))?));
    }
    let req = ContainerCreate {
        name: empty_none(q.name),
        cmd: r
            .entrypoint
            .unwrap_or_default()
            .into_iter()
            .chain(r.cmd.unwrap_or_default())
            .collect(),
        env: r.env.unwrap_or_default(),
        working_dir: r.working_dir,
        hostname: r.hostname,
        domainname: r.domainname,
        tty: r.tty,
        open_stdin: r.open_stdin,
        dns: hc.dns.unwrap_or_default(),
        dns_search: hc.dns_search.unwrap_or_default(),
        dns_options: hc.dns_options.unwrap_or_default(),
        extra_hosts: hc.extra_hosts.unwrap_or_default(),
        links: hc.links.unwrap_or_default(),
        restart: {
            let r = hc.restart_policy.unwrap_or_default();
            let spec = match (r.name.as_str(), r.maximum_retry_count) {
                ("on-failure", n) if n > 0 => format!("on-failure:{n}"),
                (name, _) => name.to_string(),
            };
            crate::model::RestartPolicy::parse(&spec).map_err(Error::InvalidParameter)?
        },
        healthcheck: healthcheck(r.healthcheck)?,
        auto_remove: hc.auto_remove,
        log_opts: match hc.log_config {
            Some(l) if !matches!(l.kind.as_str(), "" | "json-file" | "local") => {
                return Err(Error::InvalidParameter(format!(
                    "log driver {:?} is not supported: berth keeps logs in files (json-file, with max-size and max-file)",
                    l.kind
                ))
                .into())
            }
            Some(l) => l.config.into_iter().collect(),
            None => vec![],
        },
        labels: r.labels.unwrap_or_default(),
        network_mode: hc.network_mode.unwrap_or_default(),
        endpoints,
        exposed_ports: r.exposed_ports.unwrap_or_default().into_keys().collect(),
        port_bindings: hc
            .port_bindings
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                let list = v
                    .unwrap_or_default()
                    .into_iter()
                    .map(|b| (b.host_ip, b.host_port))
                    .collect();
                (k, list)
            })
            .collect(),
        publish_all: hc.publish_all_ports,
    };
    let id = d.container_create(req).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"Id": id, "Warnings": []}),
    ))
}

#[derive(Deserialize, Default)]
struct StartQuery {
    stdio: Option<String>,
}

/// Plain start (detached), or with `Upgrade: berth-stdio` the foreground protocol:
/// after 101 the client sends one byte carrying its stdin/stdout/stderr (`stdio=fds`) or
/// none (`stdio=tty`); the server answers one JSON line (`{"Started":true}`, carrying the
/// pty master with `tty`, or `{"message":…}`), then `{"StatusCode":N}` when the process exits.
async fn container_start(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<StartQuery>,
    mut req: Request,
) -> ApiResult {
    if !is_upgrade(&req) {
        d.container_start(&id, Stdio::Detached).await?;
        return no_content();
    }
    let id = d.state.lock().await.container_id(&id)?;
    let tty = q.stdio.as_deref() == Some("tty");
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Some(stream) = upgraded_stream(on_upgrade).await else {
            return;
        };
        serve_stdio(stream, tty, move |stdio| async move {
            let rx = d.subscribe();
            let master = d.container_start(&id, stdio).await?;
            let wait = tokio::spawn(async move { d.wait_exit_event(rx, id).await.unwrap_or(255) });
            Ok((master, wait))
        })
        .await;
    });
    Ok(switching())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ExecJson {
    cmd: Vec<String>,
    env: Option<Vec<String>>,
    working_dir: String,
    tty: bool,
}

async fn container_exec(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    mut req: Request,
) -> ApiResult {
    if !is_upgrade(&req) {
        return Err(Error::InvalidParameter("exec needs the berth-stdio upgrade".into()).into());
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .map_err(|e| Error::InvalidParameter(e.to_string()))?;
    let r: ExecJson = serde_json::from_slice(&body).map_err(bad_json)?;
    {
        let st = d.state.lock().await;
        let cid = st.container_id(&id)?;
        if !st.containers[&cid].is_running() {
            return Err(Error::Conflict(format!("Container {cid} is not running")).into());
        }
    }
    let tty = r.tty;
    let er = ExecRequest {
        cmd: r.cmd,
        env: r.env.unwrap_or_default(),
        working_dir: r.working_dir,
        tty,
    };
    tokio::spawn(async move {
        let Some(stream) = upgraded_stream(on_upgrade).await else {
            return;
        };
        serve_stdio(stream, tty, move |stdio| async move {
            d.container_exec(&id, er, stdio).await
        })
        .await;
    });
    Ok(switching())
}

fn is_upgrade(req: &Request) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(UPGRADE_PROTO))
}

fn switching() -> axum::response::Response {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, UPGRADE_PROTO)
        .body(Body::empty())
        .expect("response")
}

async fn upgraded_stream(on: hyper::upgrade::OnUpgrade) -> Option<std::os::unix::net::UnixStream> {
    let up = on.await.ok()?;
    let parts = up.downcast::<TokioIo<UnixStream>>().ok()?;
    if !parts.read_buf.is_empty() {
        return None;
    }
    let s = parts.io.into_inner().into_std().ok()?;
    s.set_nonblocking(false).ok()?;
    Some(s)
}

async fn serve_stdio<F, Fut>(stream: std::os::unix::net::UnixStream, tty: bool, start: F)
where
    F: FnOnce(Stdio) -> Fut,
    Fut: std::future::Future<
        Output = Result<(Option<OwnedFd>, tokio::task::JoinHandle<i64>), Error>,
    >,
{
    let s2 = match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    };
    let fds = match tokio::task::spawn_blocking(move || super::fdpass::recv_fds(&s2, 3)).await {
        Ok(Ok(f)) => f,
        _ => return,
    };
    let stdio = if tty {
        Stdio::Tty
    } else {
        let mut it = fds.into_iter();
        match (it.next(), it.next(), it.next()) {
            (Some(a), Some(b), Some(c)) => Stdio::Fds([a, b, c]),
            _ => {
                let _ = super::fdpass::send_line(
                    &stream,
                    &json!({"message": "expected 3 descriptors (stdin, stdout, stderr)"}),
                    None,
                );
                return;
            }
        }
    };
    match start(stdio).await {
        Err(e) => {
            let _ = super::fdpass::send_line(
                &stream,
                &json!({"message": e.to_string(), "status": e.status()}),
                None,
            );
        }
        Ok((master, wait)) => {
            if super::fdpass::send_line(&stream, &json!({"Started": true}), master.as_ref())
                .is_err()
            {
                return;
            }
            drop(master);
            let code = wait.await.unwrap_or(255);
            let _ = super::fdpass::send_line(&stream, &json!({"StatusCode": code}), None);
        }
    }
}

#[derive(Deserialize, Default)]
struct StopQuery {
    t: Option<i64>,
    signal: Option<String>,
    force: Option<String>,
}

async fn container_stop(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<StopQuery>,
) -> ApiResult {
    let t = Duration::from_secs(q.t.unwrap_or(10).max(0) as u64);
    d.container_stop(&id, t).await?;
    no_content()
}

async fn container_restart(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<StopQuery>,
) -> ApiResult {
    let t = Duration::from_secs(q.t.unwrap_or(10).max(0) as u64);
    d.container_restart(&id, t).await?;
    no_content()
}

pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return Some(n);
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    let sig: nix::sys::signal::Signal = format!("SIG{name}").parse().ok()?;
    Some(sig as i32)
}

async fn container_kill(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<StopQuery>,
) -> ApiResult {
    let s = q.signal.unwrap_or_else(|| "SIGKILL".into());
    let sig =
        parse_signal(&s).ok_or_else(|| Error::InvalidParameter(format!("Invalid signal: {s}")))?;
    d.container_kill(&id, sig).await?;
    no_content()
}

async fn container_wait(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> ApiResult {
    let code = d.container_wait(&id, None).await?.unwrap_or(255);
    ok(json!({"StatusCode": code, "Error": null}))
}

async fn container_delete(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<StopQuery>,
) -> ApiResult {
    d.container_remove(&id, truthy(&q.force)).await?;
    no_content()
}

#[derive(Deserialize, Default)]
struct LogsQuery {
    follow: Option<String>,
}

/// The log as a raw stream (what dockerd sends for tty containers); `follow` keeps it open
/// until the container stops.
async fn container_logs(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> ApiResult {
    let cid = d.state.lock().await.container_id(&id)?;
    let dir = d
        .log_path(&cid)
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let follow = truthy(&q.follow);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        // The log's rotated files oldest first, then the live one, across rotations.
        let mut log = crate::logs::Follower::new(&dir);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = log.read(&mut buf);
            if n > 0 {
                if tx
                    .send(Ok(Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
            if !follow {
                return;
            }
            let running = {
                let st = d.state.lock().await;
                st.containers.get(&cid).is_some_and(|c| c.is_running())
            };
            if !running {
                // Drain what the process wrote just before it exited.
                let n = log.read(&mut buf);
                if n > 0 {
                    let _ = tx.send(Ok(Bytes::copy_from_slice(&buf[..n]))).await;
                    continue;
                }
                return;
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let body = Body::from_stream(tokio_stream_from(rx));
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/vnd.docker.raw-stream")
        .body(body)
        .expect("response"))
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Docker clients prefix paths with `/v1.xx`; dockerd answers both forms.
fn strip_version(mut req: Request) -> Request {
    let path = req.uri().path();
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some(i) = rest.find('/') {
            if rest[..i].chars().all(|c| c.is_ascii_digit() || c == '.') {
                let new = match req.uri().query() {
                    Some(q) => format!("{}?{q}", &rest[i..]),
                    None => rest[i..].to_string(),
                };
                if let Ok(u) = new.parse() {
                    *req.uri_mut() = u;
                }
            }
        }
    }
    req
}

/// Accepts connections from root only (the socket is 0660 root:root, and the peer's
/// credentials are checked too, since containers' processes could share the filesystem).
pub async fn serve(listener: UnixListener, d: Arc<Daemon>) {
    let app = router(d);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if stream.peer_cred().map(|c| c.uid() != 0).unwrap_or(true) {
            continue;
        }
        let app = app.clone();
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let app = app.clone();
                    async move {
                        let req = strip_version(req.map(Body::new));
                        app.oneshot(req).await
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_both_forms() {
        let f = parse_filters(Some(r#"{"name":{"dev":true},"label":["a=b"]}"#)).unwrap();
        assert_eq!(f["name"], vec!["dev"]);
        assert_eq!(f["label"], vec!["a=b"]);
        assert!(parse_filters(Some("{nope")).is_err());
        assert!(parse_filters(None).unwrap().is_empty());
    }

    #[test]
    fn version_prefix_is_stripped() {
        let r = Request::builder()
            .uri("/v1.50/networks?filters=x")
            .body(Body::empty())
            .unwrap();
        assert_eq!(strip_version(r).uri().to_string(), "/networks?filters=x");
        let r = Request::builder()
            .uri("/volumes/v1")
            .body(Body::empty())
            .unwrap();
        assert_eq!(strip_version(r).uri().to_string(), "/volumes/v1");
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGTERM"), Some(15));
        assert_eq!(parse_signal("kill"), Some(9));
        assert_eq!(parse_signal("2"), Some(2));
        assert_eq!(parse_signal("BOGUS"), None);
    }

    #[test]
    fn labels() {
        let l = BTreeMap::from([("a".to_string(), "b".to_string())]);
        assert!(label_match(&l, "a"));
        assert!(label_match(&l, "a=b"));
        assert!(!label_match(&l, "a=c"));
    }
}
