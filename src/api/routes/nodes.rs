//! `/nodes…` (Docker's swarm node API): list, inspect, update, remove. The nodes live in
//! etcd; a daemon outside a cluster answers as dockerd outside a swarm does (503).

use std::sync::Arc;

use axum::extract::{Path, State};
use berth_api::node::{
    Engine, ManagerStatus, Node, NodeDescription, NodePlatform, NodeSpec, NodeStatus, Version,
};
use serde::Deserialize;

use crate::api::errors::{ok, ApiResult};
use crate::api::extract::{parse_json, ReqBody, Q};
use crate::api::types::go_time;
use crate::cluster::{Availability, Cluster, NodeChange, NodeView};
use crate::daemon::{Daemon, Error};

fn cluster(d: &Daemon) -> Result<&Arc<Cluster>, Error> {
    d.cluster.as_ref().ok_or_else(|| {
        Error::Unavailable(
            "this daemon is not in a cluster: start it with --cluster-store etcd://HOST:PORT --advertise-addr IP".into(),
        )
    })
}

/// `leader`: the node that schedules, if one does.
pub(crate) fn node_json(n: &NodeView, leader: Option<&str>) -> Node {
    let r = &n.record;
    Node {
        id: r.id.clone(),
        version: Version {
            index: u64::try_from(n.revision).unwrap_or(0),
        },
        created_at: go_time(&r.created),
        updated_at: go_time(&r.updated),
        spec: NodeSpec {
            labels: r.labels.clone(),
            role: "manager".into(),
            availability: r.availability.as_str().into(),
        },
        description: NodeDescription {
            hostname: r.name.clone(),
            platform: NodePlatform {
                architecture: std::env::consts::ARCH.into(),
                os: "linux".into(),
            },
            engine: Engine {
                engine_version: r.engine_version.clone(),
                labels: Default::default(),
            },
        },
        status: NodeStatus {
            state: if n.ready { "ready" } else { "down" }.into(),
            addr: r.addr.to_string(),
        },
        manager_status: Some(ManagerStatus {
            leader: leader == Some(r.id.as_str()),
            reachability: if n.ready { "reachable" } else { "unreachable" }.into(),
            addr: r.addr.to_string(),
        }),
    }
}

pub(super) async fn node_list(State(d): State<Arc<Daemon>>) -> ApiResult {
    let view = cluster(&d)?.view().await.map_err(Error::from)?;
    let leader = view.services.scheduler.as_deref();
    ok(view
        .nodes
        .iter()
        .map(|n| node_json(n, leader))
        .collect::<Vec<_>>())
}

pub(super) async fn node_inspect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> ApiResult {
    let c = cluster(&d)?;
    let n = c.node(&id).await?;
    let view = c.view().await.map_err(Error::from)?;
    ok(node_json(&n, view.services.scheduler.as_deref()))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct UpdateQuery {
    version: Option<i64>,
}

pub(super) async fn node_update(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Q(q): Q<UpdateQuery>,
    ReqBody(body): ReqBody,
) -> ApiResult {
    let spec: NodeSpec = parse_json(&body)?;
    let availability = match spec.availability.as_str() {
        "" => None,
        a => Some(Availability::parse(a).ok_or_else(|| {
            Error::InvalidParameter(format!(
                "invalid availability {a:?}: use active, pause or drain"
            ))
        })?),
    };
    let change = NodeChange {
        availability,
        labels: Some(spec.labels),
    };
    cluster(&d)?.update(&id, q.version, &change).await?;
    ok(serde_json::json!({}))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct RemoveQuery {
    force: Option<String>,
}

pub(super) async fn node_delete(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Q(q): Q<RemoveQuery>,
) -> ApiResult {
    let force = matches!(q.force.as_deref(), Some("1" | "true" | "True"));
    cluster(&d)?.remove(&id, force).await?;
    ok(serde_json::json!({}))
}
