//! Services in etcd: their specs, their tasks (a slot placed on a node, written by the one
//! elected scheduler), and the tasks' states (written by the nodes that run them).
//!
//! ```text
//! /berth/cluster/services/<id>           the spec (what the user asked)
//! /berth/cluster/svcnames/<name>         → its id: one service per name in the cluster
//! /berth/cluster/tasks/<service>/<slot>  a task: the slot's current placement (slot 0.. for
//!                                        a global service: one per node, keyed by node id)
//! /berth/cluster/taskstate/<task>        what the node running it says of it
//! /berth/cluster/scheduler               → the node that schedules, on its lease
//! ```
//!
//! A task exists while it should run: the scheduler replaces a slot's task (a new id, on
//! another node) rather than editing it, so an agent never has to guess whether a task it
//! runs is still its own.

use std::collections::BTreeMap;

use berth_store::{Cmp, Compare, KeyValue, Op, Txn};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::overlay::needs_cluster;
use super::Cluster;
use crate::daemon::Error;

pub(crate) const SERVICES: &str = "/berth/cluster/services/";
const SVCNAMES: &str = "/berth/cluster/svcnames/";
pub(crate) const TASKS: &str = "/berth/cluster/tasks/";
pub(crate) const TASKSTATE: &str = "/berth/cluster/taskstate/";
pub(crate) const SCHEDULER: &str = "/berth/cluster/scheduler";

fn service_key(id: &str) -> String {
    format!("{SERVICES}{id}")
}

fn task_key(service: &str, slot: &str) -> String {
    format!("{TASKS}{service}/{slot}")
}

fn state_key(task: &str) -> String {
    format!("{TASKSTATE}{task}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "replicas")]
pub enum Mode {
    Replicated(u32),
    Global,
}

/// What the user asked of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub name: String,
    pub mode: Mode,
    /// Overlay network ids.
    pub networks: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub constraints: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// Shown, not pulled: berth runs host programs.
    pub image: String,
    /// docker's restart condition: any, on-failure, none.
    pub restart: String,
    /// `vip` (the name answers one virtual IP per network, balanced by nftables on the
    /// client's node) or `dnsrr` (the name answers every task).
    #[serde(default = "vip_mode")]
    pub endpoint_mode: String,
    /// The tasks' health check: a task that fails it leaves the VIP and is replaced.
    #[serde(default)]
    pub healthcheck: Option<crate::model::Healthcheck>,
    /// Published ports.
    #[serde(default)]
    pub ports: Vec<PublishedPort>,
    /// How a rolling update replaces the tasks (not part of the template: changing it
    /// replaces nothing).
    #[serde(default)]
    pub update: UpdateConfig,
    /// The tasks' working directory ("": the daemon's).
    #[serde(default)]
    pub workdir: String,
    /// More names for the service on a network (network id → names): its VIP's in vip mode,
    /// its tasks' in dnsrr mode. A stack names its services by their short names.
    #[serde(default)]
    pub aliases: BTreeMap<String, Vec<String>>,
}

/// docker's `UpdateConfig`: how many tasks at a time, and whether a new task starts before
/// the old one stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateConfig {
    /// Tasks replaced at once; 0: all.
    pub parallelism: u32,
    /// `stop-first` or `start-first`.
    pub order: String,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            parallelism: 1,
            order: "stop-first".into(),
        }
    }
}

/// A published port of a service, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPort {
    pub published: u16,
    pub target: u16,
    /// tcp, udp or sctp.
    pub protocol: String,
    /// ingress or host.
    pub mode: String,
}

fn vip_mode() -> String {
    "vip".into()
}

impl ServiceSpec {
    /// What a task runs, hashed: the command, its environment, image, health check, restart
    /// condition, ports and labels (not the replica count, not the placement, which the
    /// scheduler handles on its own).
    pub fn template_hash(&self) -> u64 {
        let t = serde_json::to_vec(&(
            &self.cmd,
            &self.env,
            &self.image,
            &self.healthcheck,
            &self.restart,
            &self.ports,
            &self.labels,
            &self.workdir,
        ))
        .expect("serializes");
        t.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub id: String,
    pub spec: ServiceSpec,
    /// The virtual IP on each network (network id → address), in `vip` mode.
    #[serde(default)]
    pub vips: BTreeMap<String, std::net::IpAddr>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    /// The spec before the last update, for `service rollback` (docker's `PreviousSpec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<ServiceSpec>,
}

/// A service as listed: its record and the record's revision (docker's `Version.Index`).
#[derive(Debug, Clone)]
pub struct ServiceView {
    pub record: ServiceRecord,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: String,
    pub service: String,
    /// `1..` for a replicated service; 0 for a global one.
    pub slot: u32,
    pub node: String,
    pub created: DateTime<Utc>,
    /// The task template it runs (`ServiceSpec::template_hash` when it was placed): a task
    /// of an older template is replaced by a rolling update.
    #[serde(default)]
    pub template: u64,
    /// In a start-first update, the task this one replaces: it keeps running and serving
    /// until this one runs; then the scheduler clears this and the old task goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacing: Option<Box<TaskRecord>>,
}

impl TaskRecord {
    /// The slot's key part: the slot number, or the node for a global service.
    pub(crate) fn slot_key(&self) -> String {
        if self.slot == 0 {
            self.node.clone()
        } else {
            self.slot.to_string()
        }
    }
}

/// What the node running a task says of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskState {
    pub task: String,
    /// docker's task states: `starting`, `running`, `failed`, `complete`, `rejected`.
    pub state: String,
    pub container: String,
    pub error: String,
    pub since: DateTime<Utc>,
}

/// The services part of a read of `/berth/cluster/`.
#[derive(Debug, Clone, Default)]
pub struct Services {
    pub services: Vec<ServiceView>,
    /// By key.
    pub tasks: BTreeMap<String, TaskRecord>,
    pub states: BTreeMap<String, TaskState>,
    pub scheduler: Option<String>,
}

impl Services {
    /// Takes the keys that are the services'; `false` for any other.
    pub(crate) fn read(&mut self, kv: &KeyValue) -> bool {
        let k = kv.key.as_str();
        if k.starts_with(SERVICES) {
            if let Ok(record) = serde_json::from_slice::<ServiceRecord>(&kv.value) {
                self.services.push(ServiceView {
                    record,
                    version: kv.mod_revision,
                });
            }
        } else if k.starts_with(TASKS) {
            if let Ok(t) = serde_json::from_slice::<TaskRecord>(&kv.value) {
                self.tasks.insert(kv.key.clone(), t);
            }
        } else if k.starts_with(TASKSTATE) {
            if let Ok(s) = serde_json::from_slice::<TaskState>(&kv.value) {
                self.states.insert(s.task.clone(), s);
            }
        } else if k == SCHEDULER {
            self.scheduler = Some(String::from_utf8_lossy(&kv.value).into_owned());
        } else {
            return k.starts_with(SVCNAMES);
        }
        true
    }

    pub fn service(&self, key: &str) -> Option<&ServiceView> {
        self.services
            .iter()
            .find(|s| s.record.spec.name == key || s.record.id == key)
            .or_else(|| {
                let mut m = self
                    .services
                    .iter()
                    .filter(|s| !key.is_empty() && s.record.id.starts_with(key));
                match (m.next(), m.next()) {
                    (Some(s), None) => Some(s),
                    _ => None,
                }
            })
    }

    pub fn tasks_of<'a>(&'a self, service: &'a str) -> impl Iterator<Item = &'a TaskRecord> + 'a {
        self.tasks.values().filter(move |t| t.service == service)
    }
}

impl Cluster {
    /// Records the service with its VIPs' address keys (each compared absent), in one
    /// transaction.
    pub async fn create_service(
        &self,
        rec: &ServiceRecord,
        vips: &[super::EndpointRecord],
    ) -> Result<(), Error> {
        let mut compares = vec![Compare::Absent(format!("{SVCNAMES}{}", rec.spec.name))];
        let mut ops = vec![
            Op::put(
                service_key(&rec.id),
                serde_json::to_vec(rec).expect("serializes"),
            ),
            Op::put(format!("{SVCNAMES}{}", rec.spec.name), rec.id.clone()),
        ];
        for v in vips {
            for k in v.keys() {
                compares.push(Compare::Absent(k.clone()));
                ops.push(Op::put(k, serde_json::to_vec(v).expect("serializes")));
            }
        }
        let txn = Txn::when(compares, ops);
        let r = self
            .store
            .txn(txn)
            .await
            .map_err(|e| needs_cluster("service create", &e))?;
        if !r.succeeded {
            let taken = self
                .store
                .get(&format!("{SVCNAMES}{}", rec.spec.name))
                .await
                .map_err(|e| needs_cluster("service create", &e))?;
            return Err(Error::Conflict(match taken {
                Some(_) => format!("service {} already exists", rec.spec.name),
                None => "a virtual IP was taken meanwhile; try again".into(),
            }));
        }
        Ok(())
    }

    /// `service update`/`scale`: applied only to the record at `version`.
    pub async fn update_service(&self, rec: &ServiceRecord, version: i64) -> Result<(), Error> {
        let k = service_key(&rec.id);
        let txn = Txn::when(
            vec![Compare::ModRevision(k.clone(), Cmp::Equal, version)],
            vec![Op::put(k, serde_json::to_vec(rec).expect("serializes"))],
        );
        let r = self
            .store
            .txn(txn)
            .await
            .map_err(|e| needs_cluster("service update", &e))?;
        if !r.succeeded {
            return Err(Error::Conflict(format!(
                "update out of sequence: service {} changed since version {version}; read it again",
                rec.spec.name
            )));
        }
        Ok(())
    }

    /// The service and its tasks go; each node's agent then removes its containers.
    pub async fn remove_service(&self, rec: &ServiceRecord) -> Result<(), Error> {
        let txn = Txn::when(
            vec![],
            vec![
                Op::Delete(service_key(&rec.id)),
                Op::Delete(format!("{SVCNAMES}{}", rec.spec.name)),
                Op::DeletePrefix(format!("{TASKS}{}/", rec.id)),
            ]
            .into_iter()
            .chain(
                rec.vips
                    .iter()
                    .map(|(net, ip)| Op::Delete(super::overlay::endpoint_key(net, *ip))),
            )
            .collect(),
        );
        self.store
            .txn(txn)
            .await
            .map_err(|e| needs_cluster("service rm", &e))?;
        Ok(())
    }

    /// Becomes the scheduler if nobody is (the key lives on this node's lease, so a dead
    /// scheduler's key goes with its lease). Whether this node schedules now.
    pub async fn elect(&self, current: Option<&str>) -> bool {
        if let Some(c) = current {
            return c == self.id;
        }
        let lease = self.keep.lock().await.lease();
        let txn = Txn::when(
            vec![Compare::Absent(SCHEDULER.into())],
            vec![Op::Put {
                key: SCHEDULER.into(),
                value: self.id.clone().into_bytes(),
                lease: Some(lease),
            }],
        );
        match self.store.txn(txn).await {
            Ok(r) if r.succeeded => {
                tracing::info!(node = %self.name, "this node schedules the cluster's services");
                true
            }
            _ => false,
        }
    }

    /// The scheduler's decisions for one service, applied only while the service is as it
    /// was read (`version`) and this node still holds the scheduler key.
    pub async fn write_tasks(
        &self,
        service: &ServiceView,
        put: &[TaskRecord],
        delete: &[TaskRecord],
    ) -> Result<bool, berth_store::StoreError> {
        let mut ops: Vec<Op> = Vec::new();
        for t in delete {
            // A slot replaced is put below; its old task's state goes either way, unless the
            // new task replaces it start-first (the old one still runs and reports).
            if !put.iter().any(|p| p.slot_key() == t.slot_key()) {
                ops.push(Op::Delete(task_key(&t.service, &t.slot_key())));
            }
            let kept = put
                .iter()
                .any(|p| p.replacing.as_ref().is_some_and(|o| o.id == t.id));
            if !kept {
                ops.push(Op::Delete(state_key(&t.id)));
            }
        }
        for t in put {
            ops.push(Op::put(
                task_key(&t.service, &t.slot_key()),
                serde_json::to_vec(t).expect("serializes"),
            ));
        }
        if ops.is_empty() {
            return Ok(true);
        }
        let txn = Txn::when(
            vec![
                Compare::ModRevision(service_key(&service.record.id), Cmp::Equal, service.version),
                Compare::Value(SCHEDULER.into(), self.id.clone().into_bytes()),
            ],
            ops,
        );
        Ok(self.store.txn(txn).await?.succeeded)
    }

    /// This node's report on its tasks: states that changed, and states of tasks gone.
    pub async fn report(
        &self,
        have: &BTreeMap<String, TaskState>,
        now: &[TaskState],
    ) -> Result<(), berth_store::StoreError> {
        let ops: Vec<Op> = now
            .iter()
            .filter(|s| {
                have.get(&s.task).is_none_or(|h| {
                    h.state != s.state || h.error != s.error || h.container != s.container
                })
            })
            .map(|s| {
                Op::put(
                    state_key(&s.task),
                    serde_json::to_vec(s).expect("serializes"),
                )
            })
            .collect();
        if ops.is_empty() {
            return Ok(());
        }
        self.store.txn(Txn::when(vec![], ops)).await?;
        Ok(())
    }
}
