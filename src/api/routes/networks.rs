//! `/networks…`: list, inspect, create, remove, prune, connect and disconnect.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{empty_none, label_match, parse_filters, FilterQuery};
use crate::api::errors::{json_response, no_content, ok, ApiResult};
use crate::api::extract::{parse_json, Obj, ReqBody, Q};
use crate::api::types;
use crate::daemon::{Daemon, Error, IpamConfigReq, NetworkCreate};
use crate::model::EndpointRequest;

pub(super) async fn network_list(State(d): State<Arc<Daemon>>, Q(q): Q<FilterQuery>) -> ApiResult {
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

pub(super) async fn network_inspect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> ApiResult {
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
    config: Option<Vec<Obj<IpamConfigJson>>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct NetworkCreateJson {
    name: String,
    driver: Option<String>,
    #[serde(rename = "IPAM")]
    ipam: Option<Obj<IpamJson>>,
    internal: bool,
    attachable: bool,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: Option<bool>,
    options: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
}

pub(super) async fn network_create(
    State(d): State<Arc<Daemon>>,
    ReqBody(body): ReqBody,
) -> ApiResult {
    let r: NetworkCreateJson = parse_json::<Obj<NetworkCreateJson>>(&body)?.0;
    let req = NetworkCreate {
        name: r.name,
        driver: empty_none(r.driver),
        ipam: r
            .ipam
            .and_then(|i| i.0.config)
            .unwrap_or_default()
            .into_iter()
            .map(|Obj(c)| IpamConfigReq {
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

pub(super) async fn network_delete(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> ApiResult {
    d.network_remove(&id).await?;
    no_content()
}

pub(super) async fn network_prune(State(d): State<Arc<Daemon>>, Q(q): Q<FilterQuery>) -> ApiResult {
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
pub(super) struct EndpointJson {
    #[serde(rename = "IPAMConfig")]
    ipam_config: Option<Obj<IpamEndpointJson>>,
    aliases: Option<Vec<String>>,
}

pub(super) fn endpoint_request(e: Option<EndpointJson>) -> Result<EndpointRequest, Error> {
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
    let ipam = e.ipam_config.map(|o| o.0).unwrap_or_default();
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
    endpoint_config: Option<Obj<EndpointJson>>,
    force: bool,
}

pub(super) async fn network_connect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    ReqBody(body): ReqBody,
) -> ApiResult {
    let r: ConnectJson = parse_json::<Obj<ConnectJson>>(&body)?.0;
    d.network_connect(
        &id,
        &r.container,
        endpoint_request(r.endpoint_config.map(|o| o.0))?,
    )
    .await?;
    Ok(StatusCode::OK.into_response())
}

pub(super) async fn network_disconnect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    ReqBody(body): ReqBody,
) -> ApiResult {
    let r: ConnectJson = parse_json::<Obj<ConnectJson>>(&body)?.0;
    d.network_disconnect(&id, &r.container, r.force).await?;
    Ok(StatusCode::OK.into_response())
}
