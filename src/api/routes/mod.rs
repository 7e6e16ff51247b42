//! The API's routes: Docker Engine API paths (networks, containers, system) and berth's
//! extensions, on one axum router.

mod containers;
mod networks;
mod stdio;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::{json_response, ok, ApiResult};
use super::types;
use crate::daemon::{Daemon, Error};

/// Docker's filters: `{"name":{"x":true}}` (or the legacy `{"name":["x"]}`).
pub fn parse_filters(raw: Option<&str>) -> Result<BTreeMap<String, Vec<String>>, Error> {
    let Some(raw) = raw.filter(|s| !s.is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let bad = |why: String| {
        Error::InvalidParameter(format!(
            "invalid filter JSON {raw:?}: {why}; expected an object such as {{\"name\":{{\"web\":true}}}}"
        ))
    };
    let v: Value = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
    let Value::Object(m) = v else {
        return Err(bad("not an object".into()));
    };
    let mut out = BTreeMap::new();
    for (k, vals) in m {
        let list = match vals {
            Value::Object(o) => {
                let mut list = Vec::new();
                for (v, on) in o {
                    match on {
                        Value::Bool(true) => list.push(v),
                        Value::Bool(false) => {}
                        _ => return Err(bad(format!("the value of {k}.{v} is not true or false"))),
                    }
                }
                list
            }
            Value::Array(a) => a
                .into_iter()
                .map(|s| match s {
                    Value::String(s) => Ok(s),
                    other => Err(bad(format!("{k} lists {other}, not a string"))),
                })
                .collect::<Result<_, _>>()?,
            other => return Err(bad(format!("{k} is {other}, not an object or a list"))),
        };
        out.insert(k, list);
    }
    Ok(out)
}

pub(super) fn label_match(labels: &BTreeMap<String, String>, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, v)) => labels.get(k).map(String::as_str) == Some(v),
        None => labels.contains_key(want),
    }
}

#[derive(Deserialize, Default)]
pub(super) struct FilterQuery {
    pub filters: Option<String>,
    pub all: Option<String>,
}

pub(super) fn truthy(s: &Option<String>) -> bool {
    matches!(s.as_deref(), Some("1") | Some("true") | Some("True"))
}

pub fn router(d: Arc<Daemon>) -> Router {
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
            json_response(StatusCode::NOT_FOUND, &json!({"message": "page not found"}))
        })
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

fn empty_none(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
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
        for bad in [
            "[1]",
            "\"x\"",
            "1",
            r#"{"name":"x"}"#,
            r#"{"name":[1]}"#,
            r#"{"name":{"x":1}}"#,
        ] {
            let e = parse_filters(Some(bad)).expect_err(bad).to_string();
            assert!(e.starts_with("invalid filter JSON"), "{e}");
        }
        let f = parse_filters(Some(r#"{"name":{"a":true,"b":false}}"#)).unwrap();
        assert_eq!(f["name"], vec!["a"]);
        assert!(parse_filters(None).unwrap().is_empty());
    }

    #[test]
    fn labels() {
        let l = BTreeMap::from([("a".to_string(), "b".to_string())]);
        assert!(label_match(&l, "a"));
        assert!(label_match(&l, "a=b"));
        assert!(!label_match(&l, "a=c"));
    }
}
