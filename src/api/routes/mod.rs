//! The API's routes: Docker Engine API paths (networks, containers, system) and berth's
//! extensions, on one axum router.

mod containers;
mod networks;
mod nodes;
mod service_logs;
mod services;

pub(super) use service_logs::{peer_router, PEER_PORT};
mod stdio;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use berth_api::system::{
    Component, ComponentDetails, Platform, Plugins, Swarm, SystemInfo, SystemVersion,
};
use berth_api::{ErrorResponse, Filters, API_VERSION, MIN_API_VERSION};

use super::errors::{json_response, ok, ApiResult};
use crate::daemon::{Daemon, Error};

/// Docker's filters: `{"name":{"x":true}}` (or the legacy `{"name":["x"]}`).
pub(super) fn parse_filters(raw: Option<&str>) -> Result<BTreeMap<String, Vec<String>>, Error> {
    Filters::parse(raw).map_err(|e| Error::InvalidParameter(e.to_string()))
}

pub(super) fn label_match(labels: &BTreeMap<String, String>, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, v)) => labels.get(k).map(String::as_str) == Some(v),
        None => labels.contains_key(want),
    }
}

pub(super) fn router(d: Arc<Daemon>) -> Router {
    let api = Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/events", get(super::discovery::events))
        .route("/catalog", get(super::discovery::catalog_get))
        .route("/networks", get(networks::network_list))
        .route("/networks/create", post(networks::network_create))
        .route("/networks/prune", post(networks::network_prune))
        .route(
            "/networks/{id}",
            get(networks::network_inspect).delete(networks::network_delete),
        )
        .route("/networks/{id}/connect", post(networks::network_connect))
        .route(
            "/networks/{id}/disconnect",
            post(networks::network_disconnect),
        )
        .route("/nodes", get(nodes::node_list))
        .route(
            "/nodes/{id}",
            get(nodes::node_inspect).delete(nodes::node_delete),
        )
        .route("/nodes/{id}/update", post(nodes::node_update))
        .route("/services", get(services::service_list))
        .route("/services/create", post(services::service_create))
        .route(
            "/services/{id}",
            get(services::service_inspect).delete(services::service_delete),
        )
        .route("/services/{id}/update", post(services::service_update))
        .route("/services/{id}/logs", get(service_logs::service_logs))
        .route("/tasks", get(services::task_list))
        .route("/tasks/{id}", get(services::task_inspect))
        .route("/containers/json", get(containers::container_list))
        .route("/containers/create", post(containers::container_create))
        .route("/containers/{id}/json", get(containers::container_inspect))
        .route("/containers/{id}/start", post(stdio::container_start))
        .route("/containers/{id}/stop", post(containers::container_stop))
        .route(
            "/containers/{id}/restart",
            post(containers::container_restart),
        )
        .route("/containers/{id}/kill", post(containers::container_kill))
        .route("/containers/{id}/wait", post(containers::container_wait))
        .route("/containers/{id}/logs", get(containers::container_logs))
        .route(
            "/containers/{id}",
            axum::routing::delete(containers::container_delete),
        )
        .route("/berth/containers/{id}/exec", post(stdio::container_exec))
        .route("/images/{id}/json", get(no_such_object))
        .route("/volumes/{id}", get(no_such_object))
        .route("/plugins/{id}/json", get(no_such_object))
        .fallback(|| async {
            json_response(
                StatusCode::NOT_FOUND,
                &ErrorResponse {
                    message: "page not found".into(),
                },
            )
        })
        // Inside the routes, where the matched route template is known.
        .route_layer(axum::middleware::from_fn(crate::metrics::track))
        .with_state(d);
    // Outside the routes: axum adds a 405's `Allow` header after route layers run.
    Router::new()
        .fallback_service(api)
        .layer(axum::middleware::from_fn(super::errors::json_errors))
        .layer(axum::middleware::from_fn(super::version::api_version))
        .layer(axum::middleware::map_response(docker_headers))
}

async fn docker_headers(mut r: axum::response::Response) -> axum::response::Response {
    let h = r.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
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
    ok(SystemVersion {
        platform: Platform {
            name: "berth".into(),
        },
        components: vec![Component {
            name: "Engine".into(),
            version: v.into(),
            details: ComponentDetails {
                api_version: API_VERSION.into(),
                min_api_version: MIN_API_VERSION.into(),
                os: "linux".into(),
                arch: std::env::consts::ARCH.into(),
                kernel_version: kernel_version(),
            },
        }],
        version: v.into(),
        api_version: API_VERSION.into(),
        min_api_version: MIN_API_VERSION.into(),
        git_commit: String::new(),
        go_version: String::new(),
        os: "linux".into(),
        // Go's name for it, which docker clients print.
        arch: match std::env::consts::ARCH {
            "x86_64" => "amd64",
            a => a,
        }
        .into(),
        kernel_version: kernel_version(),
        build_time: String::new(),
    })
}

async fn info(State(d): State<Arc<Daemon>>) -> ApiResult {
    let (nets, ctrs) = d.snapshot().await;
    let running = ctrs.iter().filter(|c| c.is_running()).count();
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let strings = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    ok(SystemInfo {
        id: String::new(),
        containers: ctrs.len(),
        containers_running: running,
        containers_paused: 0,
        containers_stopped: ctrs.len() - running,
        images: 0,
        driver: String::new(),
        name: host,
        server_version: env!("CARGO_PKG_VERSION").into(),
        operating_system: "berth".into(),
        os_type: "linux".into(),
        architecture: std::env::consts::ARCH.into(),
        kernel_version: kernel_version(),
        ncpu: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        docker_root_dir: d.opts.root.display().to_string(),
        plugins: Plugins {
            volume: vec![],
            network: strings(&["bridge", "host", "null"]),
            log: vec![],
        },
        swarm: match &d.cluster {
            Some(c) => Swarm {
                local_node_state: if c.degraded().is_some() {
                    "error"
                } else {
                    "active"
                }
                .into(),
                node_id: c.id.clone(),
                node_addr: c.addr.to_string(),
                error: c.degraded().unwrap_or_default(),
                ..Default::default()
            },
            None => Swarm {
                local_node_state: "inactive".into(),
                ..Default::default()
            },
        },
        networks: nets.len(),
        berth_run: d.opts.run.display().to_string(),
        berth_socket: d.opts.socket.display().to_string(),
        berth_dns: d.dns.host_addr().map(|a| a.to_string()).unwrap_or_default(),
        warnings: {
            let mut w = d.warnings().await;
            w.extend(d.cluster.as_ref().and_then(|c| c.degraded()));
            w
        },
    })
}

async fn no_such_object(Path(id): Path<String>) -> ApiResult {
    Err(Error::NotFound(format!("No such object: {id}")).into())
}

/// "" as absent: docker clients send empty strings for what they leave unset.
fn empty_none(s: impl Into<Option<String>>) -> Option<String> {
    s.into().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_filters_are_invalid_parameters() {
        let e = parse_filters(Some("[1]")).unwrap_err();
        assert!(matches!(&e, Error::InvalidParameter(m) if m.starts_with("invalid filter JSON")));
        assert_eq!(
            parse_filters(Some(r#"{"name":["x"]}"#)).unwrap()["name"],
            ["x"]
        );
    }

    #[test]
    fn labels() {
        let l = BTreeMap::from([("a".to_string(), "b".to_string())]);
        assert!(label_match(&l, "a"));
        assert!(label_match(&l, "a=b"));
        assert!(!label_match(&l, "a=c"));
    }
}
