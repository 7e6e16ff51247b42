//! Services across the cluster: the operations (`service create`, `ls`, `ps`, `scale`,
//! `rm`), the scheduler (run by the one node elected through etcd, `berth_sched` deciding),
//! and the agent every node runs: it makes its containers match the tasks placed on it and
//! reports their states. Both run in the overlay round, from the same read of etcd.

mod agent;
mod mesh;
pub(crate) use mesh::LbState;
mod vip;

use std::collections::BTreeMap;

use chrono::Utc;

use crate::cluster::services::{
    Mode, ServiceRecord, ServiceSpec, ServiceView, TaskRecord, TaskState, UpdateConfig,
};
use crate::cluster::{Cluster, View};
use crate::daemon::{Daemon, Error, Result};
use crate::model::{new_id, valid_name, Driver};

/// What `service create` asks.
#[derive(Debug, Clone, Default)]
pub struct ServiceCreate {
    pub name: String,
    pub replicas: Option<u32>,
    pub global: bool,
    pub networks: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub constraints: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub image: String,
    pub restart: Option<String>,
    /// `vip` (default) or `dnsrr`.
    pub endpoint_mode: Option<String>,
    pub healthcheck: Option<crate::model::Healthcheck>,
    pub ports: Vec<berth_ports::ServicePort>,
    pub update: Option<UpdateConfig>,
    pub workdir: String,
    /// Network (as named in `networks`) → more names for the service there.
    pub aliases: BTreeMap<String, Vec<String>>,
}

/// What `service update` changes (`None`: kept).
#[derive(Debug, Clone, Default)]
pub struct ServiceChange {
    pub replicas: Option<u32>,
    pub cmd: Option<Vec<String>>,
    pub env: Option<Vec<String>>,
    pub image: Option<String>,
    pub constraints: Option<Vec<String>>,
    pub update: Option<UpdateConfig>,
    /// The whole list of published ports.
    pub ports: Option<Vec<berth_ports::ServicePort>>,
}

/// An update names the version it read (docker's optimistic concurrency).
fn in_sequence(s: &ServiceView, version: Option<i64>) -> Result<()> {
    if version.is_some_and(|v| v != s.version) {
        return Err(Error::Conflict(format!(
            "update out of sequence: service {} is at version {}",
            s.record.spec.name, s.version
        )));
    }
    Ok(())
}

/// Whether task `t` runs on a Ready node (what the load balancing and the counts take).
pub(crate) fn task_up(view: &View, t: &TaskRecord) -> bool {
    view.ready(&t.node)
        && view
            .services
            .states
            .get(&t.id)
            .is_some_and(|st| st.state == "running")
}

/// An update config as given, checked.
fn check_update(u: UpdateConfig) -> Result<UpdateConfig> {
    match u.order.as_str() {
        "stop-first" | "start-first" => Ok(u),
        o => Err(Error::InvalidParameter(format!(
            "invalid update order {o:?}: use stop-first or start-first"
        ))),
    }
}

/// A task as `service ps` shows it.
#[derive(Debug, Clone)]
pub struct TaskView {
    pub task: TaskRecord,
    pub service: String,
    pub node: String,
    pub state: Option<TaskState>,
}

/// The label that ties a container to its task (docker's).
pub(crate) const TASK_LABEL: &str = "com.docker.swarm.task.id";
pub(crate) const SERVICE_LABEL: &str = "com.docker.swarm.service.name";

fn sched_nodes(view: &View) -> Vec<berth_sched::Node> {
    view.nodes
        .iter()
        .map(|n| berth_sched::Node {
            id: n.record.id.clone(),
            hostname: n.record.name.clone(),
            labels: n.record.labels.clone(),
            ready: n.ready,
            availability: match n.record.availability {
                crate::cluster::Availability::Active => berth_sched::Availability::Active,
                crate::cluster::Availability::Pause => berth_sched::Availability::Pause,
                crate::cluster::Availability::Drain => berth_sched::Availability::Drain,
            },
        })
        .collect()
}

/// The published ports, checked: a port in ingress mode (the routing mesh, every node's
/// address) needs the service on an overlay, which the mesh reaches its tasks by (Docker
/// adds its `ingress` network for this; berth uses the service's first network); the
/// mesh balances TCP and UDP; no published port another service holds.
/// `own`: the service whose ports these are (an update), whose current ports clash with
/// nothing.
fn check_ports(
    ports: &[berth_ports::ServicePort],
    on_overlay: bool,
    view: &View,
    own: Option<&str>,
) -> Result<Vec<crate::cluster::services::PublishedPort>> {
    let mut out: Vec<crate::cluster::services::PublishedPort> = Vec::new();
    for p in ports {
        if p.mode == berth_ports::PublishMode::Ingress {
            if !on_overlay {
                return Err(Error::InvalidParameter(format!(
                    "port {}:{}: the routing mesh reaches a service's tasks over an overlay network: add --network NET (berth network create -d overlay NET), or publish in host mode (--publish published={},target={},mode=host)",
                    p.published, p.target, p.published, p.target
                )));
            }
            if p.proto == berth_ports::Proto::Sctp {
                return Err(Error::InvalidParameter(format!(
                    "port {}/sctp: the routing mesh balances TCP and UDP; publish SCTP in host mode",
                    p.published
                )));
            }
        }
        let rec = crate::cluster::services::PublishedPort {
            published: p.published,
            target: p.target,
            protocol: p.proto.as_str().into(),
            mode: p.mode.as_str().into(),
        };
        let clash = |q: &crate::cluster::services::PublishedPort| {
            q.published == rec.published && q.protocol == rec.protocol
        };
        if out.iter().any(clash) {
            return Err(Error::InvalidParameter(format!(
                "port {}/{} is published twice",
                rec.published, rec.protocol
            )));
        }
        if let Some(s) = view
            .services
            .services
            .iter()
            .filter(|s| Some(s.record.id.as_str()) != own)
            .find(|s| s.record.spec.ports.iter().any(clash))
        {
            return Err(Error::Conflict(format!(
                "port {}/{} is already published by service {}",
                rec.published, rec.protocol, s.record.spec.name
            )));
        }
        out.push(rec);
    }
    Ok(out)
}

/// How many tasks a service wants: its replicas, or for a global service the nodes that
/// may run one (Ready, active, allowed by its constraints).
pub(crate) fn desired_tasks(view: &View, spec: &ServiceSpec) -> u64 {
    match spec.mode {
        Mode::Replicated(n) => u64::from(n),
        Mode::Global => {
            let constraints: Vec<berth_sched::Constraint> = spec
                .constraints
                .iter()
                .filter_map(|c| berth_sched::Constraint::parse(c).ok())
                .collect();
            sched_nodes(view)
                .iter()
                .filter(|n| n.ready && n.availability == berth_sched::Availability::Active)
                .filter(|n| constraints.iter().all(|c| c.allows(n)))
                .count() as u64
        }
    }
}

impl Daemon {
    fn cluster_for(&self, what: &str) -> Result<std::sync::Arc<Cluster>> {
        self.cluster.clone().ok_or_else(|| {
            Error::Unavailable(format!(
                "{what} needs cluster mode: start the daemon with --cluster-store etcd://HOST:PORT and --advertise-addr (this node is not a swarm manager)"
            ))
        })
    }

    async fn read_cluster(&self, what: &str) -> Result<(std::sync::Arc<Cluster>, View)> {
        let c = self.cluster_for(what)?;
        let v = c
            .view()
            .await
            .map_err(|e| crate::cluster::overlay::needs_cluster(what, &e))?;
        Ok((c, v))
    }

    pub async fn service_create(&self, req: ServiceCreate) -> Result<ServiceRecord> {
        let c = self.cluster_for("service create")?;
        if !valid_name(&req.name) {
            return Err(Error::InvalidParameter(format!(
                "invalid service name {:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit",
                req.name
            )));
        }
        if req.cmd.is_empty() {
            return Err(Error::InvalidParameter(
                "no command: give the program the tasks run after the options, e.g. `berth service create --name web -- sleep 600`".into(),
            ));
        }
        if req.global && req.replicas.is_some() {
            return Err(Error::InvalidParameter(
                "--replicas can only be used with replicated mode".into(),
            ));
        }
        for k in &req.constraints {
            berth_sched::Constraint::parse(k).map_err(Error::InvalidParameter)?;
        }
        let restart = req.restart.clone().unwrap_or_else(|| "any".into());
        if !["any", "on-failure", "none"].contains(&restart.as_str()) {
            return Err(Error::InvalidParameter(format!(
                "invalid restart condition {restart:?}: use any, on-failure or none"
            )));
        }
        self.overlay_refresh_for(&req.networks.iter().map(String::as_str).collect::<Vec<_>>())
            .await;
        let mut networks = Vec::new();
        {
            let st = self.state.lock().await;
            for n in &req.networks {
                let id = st.network_id(n)?;
                let net = &st.networks[&id];
                if net.driver != Driver::Overlay {
                    return Err(Error::InvalidParameter(format!(
                        "network {} is not an overlay network: services attach to networks of cluster scope (create one with -d overlay)",
                        net.name
                    )));
                }
                networks.push(id);
            }
        }
        // Aliases by network id, as the records keep networks.
        let aliases: BTreeMap<String, Vec<String>> = req
            .aliases
            .iter()
            .filter(|(_, a)| !a.is_empty())
            .filter_map(|(n, a)| {
                let i = req.networks.iter().position(|x| x == n)?;
                Some((networks[i].clone(), a.clone()))
            })
            .collect();
        for a in aliases.values().flatten() {
            if !valid_name(a) {
                return Err(Error::InvalidParameter(format!("invalid alias {a:?}")));
            }
        }
        let (_, view) = self.read_cluster("service create").await?;
        let ports = check_ports(&req.ports, !req.networks.is_empty(), &view, None)?;
        let endpoint_mode = req.endpoint_mode.clone().unwrap_or_else(|| "vip".into());
        if !["vip", "dnsrr"].contains(&endpoint_mode.as_str()) {
            return Err(Error::InvalidParameter(format!(
                "invalid endpoint mode {endpoint_mode:?}: use vip or dnsrr"
            )));
        }
        let id = new_id()[..25].to_string();
        let (vips, vip_records) = if endpoint_mode == "vip" {
            self.pick_vips(&c, &id, &req.name, &networks, &aliases)
                .await?
        } else {
            Default::default()
        };
        let now = Utc::now();
        let rec = ServiceRecord {
            id,
            vips,
            spec: ServiceSpec {
                endpoint_mode,
                healthcheck: req.healthcheck.clone(),
                ports,
                name: req.name,
                mode: if req.global {
                    Mode::Global
                } else {
                    Mode::Replicated(req.replicas.unwrap_or(1))
                },
                networks,
                cmd: req.cmd,
                env: req.env,
                constraints: req.constraints,
                labels: req.labels,
                image: req.image,
                restart,
                update: req
                    .update
                    .map(check_update)
                    .transpose()?
                    .unwrap_or_default(),
                workdir: req.workdir,
                aliases,
            },
            created: now,
            updated: now,
            previous: None,
        };
        c.create_service(&rec, &vip_records).await?;
        Ok(rec)
    }

    pub async fn service_list(&self) -> Result<(Vec<ServiceView>, View)> {
        let (_, v) = self.read_cluster("service ls").await?;
        let mut s = v.services.services.clone();
        s.sort_by(|a, b| a.record.spec.name.cmp(&b.record.spec.name));
        Ok((s, v))
    }

    pub async fn service_get(&self, key: &str) -> Result<(ServiceView, View)> {
        let (_, v) = self.read_cluster("service inspect").await?;
        let s = v
            .services
            .service(key)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("service {key} not found")))?;
        Ok((s, v))
    }

    /// `service update`: what a task runs (command, environment, image) and where
    /// (constraints, replicas); tasks of the old template are then replaced one at a time.
    pub async fn service_update(
        &self,
        key: &str,
        version: Option<i64>,
        change: ServiceChange,
    ) -> Result<()> {
        let c = self.cluster_for("service update")?;
        let (s, _) = self.service_get(key).await?;
        in_sequence(&s, version)?;
        let mut rec = s.record.clone();
        if let Some(n) = change.replicas {
            if rec.spec.mode == Mode::Global {
                return Err(Error::InvalidParameter(format!(
                    "replicas can only be used with replicated mode: {} is global",
                    rec.spec.name
                )));
            }
            rec.spec.mode = Mode::Replicated(n);
        }
        if let Some(cmd) = change.cmd.filter(|c| !c.is_empty()) {
            rec.spec.cmd = cmd;
        }
        if let Some(env) = change.env {
            rec.spec.env = env;
        }
        if let Some(image) = change.image {
            rec.spec.image = image;
        }
        if let Some(k) = change.constraints {
            for x in &k {
                berth_sched::Constraint::parse(x).map_err(Error::InvalidParameter)?;
            }
            rec.spec.constraints = k;
        }
        if let Some(u) = change.update {
            rec.spec.update = check_update(u)?;
        }
        if let Some(ports) = change.ports {
            let (_, view) = self.read_cluster("service update").await?;
            rec.spec.ports =
                check_ports(&ports, !rec.spec.networks.is_empty(), &view, Some(&rec.id))?;
        }
        if rec.spec == s.record.spec {
            return Ok(());
        }
        rec.previous = Some(s.record.spec.clone());
        rec.updated = Utc::now();
        c.update_service(&rec, s.version).await
    }

    /// docker's `service rollback`: the spec before the last update comes back (and the
    /// current one becomes the previous, so a second rollback undoes the first); the tasks
    /// roll over as for an update.
    pub async fn service_rollback(&self, key: &str, version: Option<i64>) -> Result<()> {
        let c = self.cluster_for("service rollback")?;
        let (s, _) = self.service_get(key).await?;
        in_sequence(&s, version)?;
        let mut rec = s.record.clone();
        let Some(prev) = rec.previous.take() else {
            return Err(Error::InvalidParameter(format!(
                "service {} has no previous spec to roll back to",
                s.record.spec.name
            )));
        };
        rec.previous = Some(std::mem::replace(&mut rec.spec, prev));
        rec.updated = Utc::now();
        c.update_service(&rec, s.version).await
    }

    pub async fn service_remove(&self, key: &str) -> Result<()> {
        let c = self.cluster_for("service rm")?;
        let (s, _) = self.service_get(key).await?;
        c.remove_service(&s.record).await
    }

    /// Tasks (of one service, or all), with their nodes' names and states.
    pub fn task_views(view: &View, service: Option<&str>) -> Vec<TaskView> {
        let mut out: Vec<TaskView> = view
            .services
            .tasks
            .values()
            .filter(|t| service.is_none_or(|s| s == t.service))
            .map(|t| TaskView {
                task: t.clone(),
                service: view
                    .services
                    .services
                    .iter()
                    .find(|s| s.record.id == t.service)
                    .map_or(t.service.clone(), |s| s.record.spec.name.clone()),
                node: view
                    .nodes
                    .iter()
                    .find(|n| n.record.id == t.node)
                    .map_or(t.node.clone(), |n| n.record.name.clone()),
                state: view.services.states.get(&t.id).cloned(),
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.service, a.task.slot, &a.node).cmp(&(&b.service, b.task.slot, &b.node))
        });
        out
    }

    /// The elected scheduler's part of a round: each service's tasks placed as
    /// `berth_sched` says, written with a compare on the service's version.
    pub(crate) async fn schedule(&self, cluster: &Cluster, view: &View) {
        if !cluster.elect(view.services.scheduler.as_deref()).await {
            return;
        }
        let nodes = sched_nodes(view);
        let mut load: BTreeMap<String, usize> = BTreeMap::new();
        for t in view.services.tasks.values() {
            *load.entry(t.node.clone()).or_default() += 1;
        }
        for s in &view.services.services {
            let spec = &s.record.spec;
            let mode = match spec.mode {
                Mode::Replicated(n) => berth_sched::Mode::Replicated(n),
                Mode::Global => berth_sched::Mode::Global,
            };
            let constraints: Vec<berth_sched::Constraint> = spec
                .constraints
                .iter()
                .filter_map(|c| berth_sched::Constraint::parse(c).ok())
                .collect();
            let tasks: Vec<&TaskRecord> = view.services.tasks_of(&s.record.id).collect();
            let running = |t: &TaskRecord| {
                view.services
                    .states
                    .get(&t.id)
                    .is_some_and(|st| st.state == "running")
            };
            // A start-first replacement is over once the new task runs (or the old one's
            // node is lost): the old task's state goes, and its agent lets it go.
            let done: Vec<TaskRecord> = tasks
                .iter()
                .filter(|t| {
                    t.replacing
                        .as_ref()
                        .is_some_and(|o| running(t) || !view.ready(&o.node))
                })
                .map(|t| TaskRecord {
                    replacing: None,
                    ..(*t).clone()
                })
                .collect();
            if !done.is_empty() {
                let old: Vec<TaskRecord> = tasks
                    .iter()
                    .filter_map(|t| t.replacing.as_deref())
                    .filter(|o| done.iter().any(|d| d.slot_key() == o.slot_key()))
                    .cloned()
                    .collect();
                if let Err(e) = cluster.write_tasks(s, &done, &old).await {
                    tracing::warn!(service = %spec.name, "finishing a start-first update: {e}");
                }
                continue;
            }
            // A task that ended is replaced as its restart condition says (docker's
            // orchestrator): it is left out of the placement, so its slot gets a new task.
            let ended = |t: &TaskRecord| {
                view.services.states.get(&t.id).is_some_and(|st| {
                    match (spec.restart.as_str(), st.state.as_str()) {
                        ("none", _) => false,
                        ("on-failure", s) => s == "failed" || s == "rejected",
                        (_, s) => s == "failed" || s == "rejected" || s == "complete",
                    }
                })
            };
            let current: Vec<berth_sched::Placement> = tasks
                .iter()
                .filter(|t| !ended(t))
                .map(|t| berth_sched::Placement {
                    slot: t.slot,
                    node: t.node.clone(),
                })
                .collect();
            // A port published in host mode is the node's: one task per node can hold it.
            let max = spec.ports.iter().any(|p| p.mode == "host").then_some(1);
            let mut plan = berth_sched::plan(mode, &constraints, &nodes, &current, &load, max);
            let template = spec.template_hash();
            // With start-first order, a new task in a slot whose task still runs (a rolling
            // update, or a move: a drain, a constraint) carries that task, which serves until
            // the new one runs (not with host-mode ports: both would need the node's port).
            let start_first = spec.update.order == "start-first" && max.is_none();
            if plan.is_empty() {
                // A rolling update: once every task runs, up to `parallelism` tasks of an
                // older template are replaced in their slots, on their nodes.
                if !tasks.iter().all(|t| running(t)) {
                    continue;
                }
                let n = match spec.update.parallelism {
                    0 => usize::MAX,
                    n => n as usize,
                };
                let old: Vec<&&TaskRecord> = tasks
                    .iter()
                    .filter(|t| t.template != template)
                    .take(n)
                    .collect();
                if old.is_empty() {
                    continue;
                }
                plan.place
                    .extend(old.iter().map(|o| berth_sched::Placement {
                        slot: o.slot,
                        node: o.node.clone(),
                    }));
            }
            let now = Utc::now();
            let put: Vec<TaskRecord> = plan
                .place
                .iter()
                .map(|p| TaskRecord {
                    id: new_id()[..25].to_string(),
                    service: s.record.id.clone(),
                    slot: p.slot,
                    node: p.node.clone(),
                    created: now,
                    template,
                    replacing: start_first
                        .then(|| {
                            tasks
                                .iter()
                                .find(|t| {
                                    p.slot != 0
                                        && t.slot == p.slot
                                        && running(t)
                                        && view.ready(&t.node)
                                })
                                .map(|t| Box::new((*t).clone()))
                        })
                        .flatten(),
                })
                .collect();
            // A replaced slot's old task goes; so does every task the plan removes.
            let gone: Vec<TaskRecord> = tasks
                .iter()
                .filter(|t| {
                    plan.remove
                        .iter()
                        .chain(plan.place.iter())
                        .any(|p| p.slot == t.slot && (t.slot != 0 || p.node == t.node))
                })
                .map(|t| (*t).clone())
                .collect();
            match cluster.write_tasks(s, &put, &gone).await {
                Ok(true) => tracing::info!(
                    service = %spec.name,
                    placed = put.len(),
                    removed = gone.len(),
                    "tasks scheduled"
                ),
                Ok(false) => {
                    tracing::debug!(service = %spec.name, "the service changed while scheduling it; next round")
                }
                Err(e) => tracing::warn!(service = %spec.name, "writing tasks: {e}"),
            }
        }
    }
}
