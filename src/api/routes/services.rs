//! `/services…` and `/tasks` (Docker's swarm service API): create, list, inspect, update
//! (the whole spec, as `docker service update/scale` send it, or `?rollback=previous`),
//! remove, and the tasks. The
//! services live in etcd; outside a cluster the answer is dockerd's outside a swarm (503).

use std::sync::Arc;

use axum::extract::{Path, State};
use berth_api::service::{
    ContainerSpec, ContainerStatus, Endpoint, EndpointSpec, NetworkAttachment, Placement,
    PortConfig, Replicated, RestartPolicy, Service, ServiceCreateResponse, ServiceMode,
    ServiceSpec, ServiceStatus, Task, TaskStatus, TaskTemplate, UpdateConfig, UpdateStatus,
    Version, VirtualIp,
};
use serde::Deserialize;

use super::parse_filters;
use crate::api::errors::{ok, ApiResult};
use crate::api::extract::{parse_json, ReqBody, Q};
use crate::api::types::go_time;
use crate::cluster::services::{Mode, ServiceView};
use crate::cluster::View;
use crate::daemon::services::{ServiceChange, ServiceCreate};
use crate::daemon::{Daemon, Error};

fn version(v: i64) -> Version {
    Version {
        index: u64::try_from(v).unwrap_or(0),
    }
}

fn template(spec: &crate::cluster::services::ServiceSpec, view: &View) -> TaskTemplate {
    TaskTemplate {
        container_spec: ContainerSpec {
            image: spec.image.clone(),
            command: spec.cmd.clone(),
            args: vec![],
            env: spec.env.clone(),
            dir: spec.workdir.clone(),
            healthcheck: spec
                .healthcheck
                .as_ref()
                .map(|h| berth_api::container::Healthcheck {
                    test: h.test.clone(),
                    interval: h.interval_ms * 1_000_000,
                    timeout: h.timeout_ms * 1_000_000,
                    start_period: h.start_period_ms * 1_000_000,
                    retries: h.retries,
                }),
        },
        placement: Placement {
            constraints: spec.constraints.clone(),
        },
        restart_policy: Some(RestartPolicy {
            condition: spec.restart.clone(),
        }),
        networks: spec
            .networks
            .iter()
            .map(|id| NetworkAttachment {
                target: view
                    .networks
                    .iter()
                    .find(|n| &n.id == id)
                    .map_or(id.clone(), |n| n.id.clone()),
                aliases: spec.aliases.get(id).cloned().unwrap_or_default(),
            })
            .collect(),
    }
}

fn port_configs(ports: &[crate::cluster::services::PublishedPort]) -> Vec<PortConfig> {
    ports
        .iter()
        .map(|p| PortConfig {
            protocol: p.protocol.clone(),
            target_port: p.target,
            published_port: p.published,
            publish_mode: p.mode.clone(),
        })
        .collect()
}

fn service_json(s: &ServiceView, view: &View) -> Service {
    let r = &s.record;
    let tasks: Vec<_> = view.services.tasks_of(&r.id).collect();
    let running = tasks
        .iter()
        .filter(|t| crate::daemon::services::task_up(view, t))
        .count();
    let desired = crate::daemon::services::desired_tasks(view, &r.spec);
    Service {
        id: r.id.clone(),
        version: version(s.version),
        created_at: go_time(&r.created),
        updated_at: go_time(&r.updated),
        spec: spec_json(&r.spec, view),
        previous_spec: r.previous.as_ref().map(|p| spec_json(p, view)),
        endpoint: Endpoint {
            spec: EndpointSpec {
                mode: r.spec.endpoint_mode.clone(),
                ports: port_configs(&r.spec.ports),
            },
            ports: port_configs(&r.spec.ports),
            virtual_ips: r
                .vips
                .iter()
                .map(|(net, ip)| VirtualIp {
                    network_id: net.clone(),
                    addr: format!(
                        "{ip}/{}",
                        view.networks
                            .iter()
                            .find(|n| &n.id == net)
                            .and_then(|n| n.pools.first())
                            .map_or(32, |p| p.prefix_len())
                    ),
                })
                .collect(),
        },
        service_status: Some(ServiceStatus {
            running_tasks: running as u64,
            desired_tasks: desired,
            completed_tasks: 0,
        }),
        update_status: r.previous.as_ref().map(|_| {
            let template = r.spec.template_hash();
            let updating = tasks
                .iter()
                .any(|t| t.template != template || t.replacing.is_some());
            UpdateStatus {
                state: if updating { "updating" } else { "completed" }.into(),
                message: if updating {
                    "update in progress".into()
                } else {
                    "update completed".into()
                },
            }
        }),
    }
}

fn spec_json(spec: &crate::cluster::services::ServiceSpec, view: &View) -> ServiceSpec {
    ServiceSpec {
        name: spec.name.clone(),
        labels: spec.labels.clone(),
        task_template: template(spec, view),
        mode: match spec.mode {
            Mode::Replicated(n) => ServiceMode {
                replicated: Some(Replicated {
                    replicas: Some(u64::from(n)),
                }),
                global: None,
            },
            Mode::Global => ServiceMode {
                replicated: None,
                global: Some(Default::default()),
            },
        },
        endpoint_spec: Some(EndpointSpec {
            mode: spec.endpoint_mode.clone(),
            ports: port_configs(&spec.ports),
        }),
        update_config: Some(UpdateConfig {
            parallelism: u64::from(spec.update.parallelism),
            order: spec.update.order.clone(),
        }),
    }
}

/// docker's `UpdateConfig`, checked by the daemon.
fn update_config(
    u: Option<UpdateConfig>,
) -> Result<Option<crate::cluster::services::UpdateConfig>, Error> {
    u.map(|u| {
        Ok(crate::cluster::services::UpdateConfig {
            parallelism: u32::try_from(u.parallelism).map_err(|_| {
                Error::InvalidParameter(format!("update parallelism {}: too large", u.parallelism))
            })?,
            order: if u.order.is_empty() {
                "stop-first".into()
            } else {
                u.order
            },
        })
    })
    .transpose()
}

/// A replicated service's count, as the daemon keeps it.
fn replicas(mode: &ServiceMode) -> Result<Option<u32>, Error> {
    mode.replicated
        .and_then(|r| r.replicas)
        .map(|n| {
            u32::try_from(n).map_err(|_| Error::InvalidParameter(format!("replicas {n}: too many")))
        })
        .transpose()
}

/// docker's `Command` then `Args`: the one command line berth runs.
fn command(mut command: Vec<String>, args: Vec<String>) -> Vec<String> {
    command.extend(args);
    command
}

/// docker's `EndpointSpec.Ports` as berth's.
fn service_ports(e: Option<&EndpointSpec>) -> Result<Vec<berth_ports::ServicePort>, Error> {
    e.map(|e| e.ports.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|p| {
            Ok(berth_ports::ServicePort {
                published: if p.published_port == 0 {
                    p.target_port
                } else {
                    p.published_port
                },
                target: p.target_port,
                proto: if p.protocol.is_empty() {
                    berth_ports::Proto::Tcp
                } else {
                    p.protocol.parse().map_err(|e: berth_ports::PortError| {
                        Error::InvalidParameter(e.to_string())
                    })?
                },
                mode: match p.publish_mode.as_str() {
                    "" | "ingress" => berth_ports::PublishMode::Ingress,
                    "host" => berth_ports::PublishMode::Host,
                    m => {
                        return Err(Error::InvalidParameter(format!(
                            "invalid publish mode {m:?}: use ingress or host"
                        )))
                    }
                },
            })
        })
        .collect()
}

fn create_request(spec: ServiceSpec) -> Result<ServiceCreate, Error> {
    let replicas = replicas(&spec.mode)?;
    let cs = spec.task_template.container_spec;
    let cmd = command(cs.command, cs.args);
    let aliases = spec
        .task_template
        .networks
        .iter()
        .map(|n| (n.target.clone(), n.aliases.clone()))
        .collect();
    Ok(ServiceCreate {
        name: spec.name,
        replicas,
        global: spec.mode.global.is_some(),
        networks: spec
            .task_template
            .networks
            .into_iter()
            .map(|n| n.target)
            .collect(),
        workdir: cs.dir,
        aliases,
        cmd,
        env: cs.env,
        constraints: spec.task_template.placement.constraints,
        labels: spec.labels,
        image: cs.image,
        restart: spec
            .task_template
            .restart_policy
            .map(|r| r.condition)
            .filter(|c| !c.is_empty()),
        ports: service_ports(spec.endpoint_spec.as_ref())?,
        endpoint_mode: spec.endpoint_spec.map(|e| e.mode).filter(|m| !m.is_empty()),
        healthcheck: super::containers::healthcheck(cs.healthcheck)?,
        update: update_config(spec.update_config)?,
    })
}

pub(super) async fn service_create(
    State(d): State<Arc<Daemon>>,
    ReqBody(body): ReqBody,
) -> ApiResult {
    let spec: ServiceSpec = parse_json(&body)?;
    let req = create_request(spec)?;
    let mut warnings = vec![];
    if !req.image.is_empty() {
        warnings.push(format!(
            "image {} is not pulled: berth runs the command on each node's filesystem",
            req.image
        ));
    }
    let rec = d.service_create(req).await?;
    let mut resp = ok(ServiceCreateResponse {
        id: rec.id,
        warnings,
    })?;
    *resp.status_mut() = axum::http::StatusCode::CREATED;
    Ok(resp)
}

pub(super) async fn service_list(State(d): State<Arc<Daemon>>) -> ApiResult {
    let (services, view) = d.service_list().await?;
    ok(services
        .iter()
        .map(|s| service_json(s, &view))
        .collect::<Vec<_>>())
}

pub(super) async fn service_inspect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> ApiResult {
    let (s, view) = d.service_get(&id).await?;
    ok(service_json(&s, &view))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct UpdateQuery {
    version: Option<i64>,
    /// `previous`: back to the spec before the last update (the body is ignored).
    rollback: Option<String>,
}

/// What berth can change of a running service: its replica count (`docker service scale`
/// is an update of the whole spec with a new count).
pub(super) async fn service_update(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Q(q): Q<UpdateQuery>,
    ReqBody(body): ReqBody,
) -> ApiResult {
    match q.rollback.as_deref() {
        None | Some("") => {}
        Some("previous") => {
            d.service_rollback(&id, q.version).await?;
            return ok(serde_json::json!({ "Warnings": [] }));
        }
        Some(r) => {
            return Err(
                Error::InvalidParameter(format!("invalid rollback {r:?}: use previous")).into(),
            )
        }
    }
    let spec: ServiceSpec = parse_json(&body)?;
    let replicas = replicas(&spec.mode)?;
    let cs = spec.task_template.container_spec;
    let cmd = command(cs.command, cs.args);
    // docker sends the whole spec: what it carries replaces what was there.
    let change = ServiceChange {
        replicas,
        cmd: Some(cmd),
        env: Some(cs.env),
        image: Some(cs.image),
        constraints: Some(spec.task_template.placement.constraints),
        update: update_config(spec.update_config)?,
        ports: Some(service_ports(spec.endpoint_spec.as_ref())?),
    };
    d.service_update(&id, q.version, change).await?;
    ok(serde_json::json!({ "Warnings": [] }))
}

pub(super) async fn service_delete(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> ApiResult {
    d.service_remove(&id).await?;
    ok(serde_json::json!({}))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct TasksQuery {
    filters: Option<String>,
}

pub(super) async fn task_list(State(d): State<Arc<Daemon>>, Q(q): Q<TasksQuery>) -> ApiResult {
    let f = parse_filters(q.filters.as_deref())?;
    for k in f.keys() {
        if !["service", "node", "desired-state", "id", "name"].contains(&k.as_str()) {
            return Err(Error::InvalidParameter(format!("invalid filter '{k}'")).into());
        }
    }
    let (services, view) = d.service_list().await?;
    let wanted: Option<Vec<String>> = f.get("service").map(|names| {
        names
            .iter()
            .filter_map(|n| view.services.service(n).map(|s| s.record.id.clone()))
            .collect()
    });
    let mut out = Vec::new();
    for tv in Daemon::task_views(&view, None) {
        if wanted
            .as_ref()
            .is_some_and(|w| !w.contains(&tv.task.service))
        {
            continue;
        }
        // Tasks that exist should run; a task that ran elsewhere before is gone from etcd.
        if f.get("desired-state")
            .is_some_and(|v| !v.iter().any(|x| x == "running"))
        {
            continue;
        }
        if f.get("node")
            .is_some_and(|v| !v.iter().any(|x| x == &tv.node || x == &tv.task.node))
        {
            continue;
        }
        let Some(s) = services.iter().find(|s| s.record.id == tv.task.service) else {
            continue;
        };
        out.push(task_json(&tv, s, &view));
    }
    ok(out)
}

/// `GET /tasks/{id}` (the docker CLI names tasks in `service logs` with it).
pub(super) async fn task_inspect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> ApiResult {
    let (services, view) = d.service_list().await?;
    let tv = Daemon::task_views(&view, None)
        .into_iter()
        .find(|t| t.task.id == id)
        .ok_or_else(|| Error::NotFound(format!("task {id} not found")))?;
    let s = services
        .iter()
        .find(|s| s.record.id == tv.task.service)
        .ok_or_else(|| Error::NotFound(format!("task {id} not found")))?;
    ok(task_json(&tv, s, &view))
}

fn task_json(tv: &crate::daemon::services::TaskView, s: &ServiceView, view: &View) -> Task {
    {
        let state = tv.state.clone();
        let node_down = !view.ready(&tv.task.node);
        Task {
            id: tv.task.id.clone(),
            version: version(s.version),
            created_at: go_time(&tv.task.created),
            updated_at: go_time(&state.as_ref().map_or(tv.task.created, |s| s.since)),
            service_id: tv.task.service.clone(),
            slot: u64::from(tv.task.slot),
            node_id: tv.task.node.clone(),
            status: TaskStatus {
                timestamp: go_time(&state.as_ref().map_or(tv.task.created, |s| s.since)),
                state: if node_down {
                    "orphaned".into()
                } else {
                    state
                        .as_ref()
                        .map_or("assigned".into(), |s| s.state.clone())
                },
                message: state.as_ref().map_or(String::new(), |s| s.state.clone()),
                err: state.as_ref().map_or(String::new(), |s| s.error.clone()),
                container_status: ContainerStatus {
                    container_id: state.map(|s| s.container).unwrap_or_default(),
                },
            },
            desired_state: "running".into(),
            spec: template(&s.record.spec, view),
        }
    }
}
