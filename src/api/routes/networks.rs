//! `/networks…`: list, inspect, create, remove, prune, connect and disconnect.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use berth_api::network::NetworkPruneResponse;
use berth_api::query::ListQuery;
use berth_api::{
    EndpointSettings, Network, NetworkConnectRequest, NetworkCreateRequest, NetworkCreateResponse,
    NetworkDisconnectRequest,
};

use super::{empty_none, label_match, parse_filters};
use crate::api::errors::{json_response, no_content, ok, ApiResult};
use crate::api::extract::{parse_json, ReqBody, Q};
use crate::api::types;
use crate::daemon::{Daemon, Error, IpamConfigReq, NetworkCreate};
use crate::model::EndpointRequest;

pub(super) async fn network_list(State(d): State<Arc<Daemon>>, Q(q): Q<ListQuery>) -> ApiResult {
    let f = parse_filters(q.filters.as_deref())?;
    for k in f.keys() {
        if !["name", "id", "driver", "label", "type", "scope", "dangling"].contains(&k.as_str()) {
            return Err(Error::InvalidParameter(format!("invalid filter '{k}'")).into());
        }
    }
    d.overlay_refresh().await;
    let (nets, ctrs) = d.snapshot().await;
    let out: Vec<Network> = nets
        .iter()
        .filter(|n| {
            let any = |k: &str, pred: &dyn Fn(&str) -> bool| {
                f.get(k).is_none_or(|v| v.iter().any(|x| pred(x)))
            };
            any("name", &|x| n.name.contains(x))
                && any("id", &|x| n.id.starts_with(x))
                && any("driver", &|x| n.driver.as_str() == x)
                && any("scope", &|x| x == n.scope())
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
    ok(out)
}

pub(super) async fn network_inspect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> ApiResult {
    d.overlay_refresh().await;
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

pub(super) async fn network_create(
    State(d): State<Arc<Daemon>>,
    ReqBody(body): ReqBody,
) -> ApiResult {
    let r: NetworkCreateRequest = parse_json(&body)?;
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
                aux: c.auxiliary_addresses,
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
        &NetworkCreateResponse {
            id: n.id,
            warning: String::new(),
        },
    ))
}

pub(super) async fn network_delete(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> ApiResult {
    d.network_remove(&id).await?;
    no_content()
}

pub(super) async fn network_prune(State(d): State<Arc<Daemon>>, Q(q): Q<ListQuery>) -> ApiResult {
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
    ok(NetworkPruneResponse {
        networks_deleted: deleted,
    })
}

/// What the daemon takes of an endpoint's settings: its static addresses and aliases.
pub(super) fn endpoint_request(e: Option<EndpointSettings>) -> Result<EndpointRequest, Error> {
    let e = e.unwrap_or_default();
    let ip = |s: String, what: &str| -> Result<_, Error> {
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

pub(super) async fn network_connect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    ReqBody(body): ReqBody,
) -> ApiResult {
    let r: NetworkConnectRequest = parse_json(&body)?;
    d.network_connect(&id, &r.container, endpoint_request(r.endpoint_config)?)
        .await?;
    Ok(StatusCode::OK.into_response())
}

pub(super) async fn network_disconnect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    ReqBody(body): ReqBody,
) -> ApiResult {
    let r: NetworkDisconnectRequest = parse_json(&body)?;
    d.network_disconnect(&id, &r.container, r.force).await?;
    Ok(StatusCode::OK.into_response())
}
