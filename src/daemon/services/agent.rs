//! The agent: this node's containers made to match the tasks the scheduler placed on it
//! (swarmkit's worker `reconcileTaskState`), and their states reported to etcd. A task's
//! container carries the task's id in a label, so a restarted daemon finds its tasks among
//! its containers; a container whose task is gone (moved, scaled away, service removed) is
//! removed, after `DRAIN`: every node's load balancing drops a task with its record, in
//! the round the same etcd event starts, so no new connection reaches it once it stops
//! and the ones it serves get that long to finish (a drain or a move under a client loop
//! loses no request).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::{SERVICE_LABEL, TASK_LABEL};
use crate::cluster::services::{ServiceRecord, TaskRecord, TaskState};
use crate::cluster::{Cluster, View};
use crate::daemon::containers::{ContainerCreate, Stdio};
use crate::daemon::Daemon;
use crate::model::{EndpointRequest, RestartPolicy};

/// How long a task's container outlives its task on this node: every node's round drops
/// the task from its maps first (tens of milliseconds; the margin is for loaded nodes).
const DRAIN: Duration = Duration::from_secs(2);

/// docker's task container name: `SERVICE.SLOT.TASK` (the node's id for a global service).
fn container_name(svc: &ServiceRecord, t: &TaskRecord) -> String {
    let slot = if t.slot == 0 {
        t.node.chars().take(10).collect()
    } else {
        t.slot.to_string()
    };
    format!("{}.{slot}.{}", svc.spec.name, t.id)
}

impl Daemon {
    /// One agent pass over `view` (from the round's read).
    pub(crate) async fn agent(self: &Arc<Self>, cluster: &Cluster, view: &View) {
        let mine: Vec<(&TaskRecord, &ServiceRecord)> = view
            .services
            .tasks
            .values()
            .filter(|t| t.node == cluster.id)
            .filter_map(|t| {
                let s = view
                    .services
                    .services
                    .iter()
                    .find(|s| s.record.id == t.service)?;
                Some((t, &s.record))
            })
            .collect();
        // Containers of tasks, by task id, read once.
        let local: BTreeMap<String, Local> = {
            let st = self.state.lock().await;
            st.containers
                .values()
                .filter_map(|c| {
                    let task = c.config.labels.get(TASK_LABEL)?;
                    Some((
                        task.clone(),
                        Local {
                            cid: c.id.clone(),
                            pid: c.state.pid,
                            started: c.state.started_at,
                            running: c.is_running(),
                            exit: c.state.exit_code,
                            health: c.state.health.as_ref().map(|h| h.status.clone()),
                        },
                    ))
                })
                .collect()
        };
        // Tasks of this node being replaced start-first: they run until their successor does.
        let kept: Vec<&TaskRecord> = view
            .services
            .tasks
            .values()
            .filter_map(|t| t.replacing.as_deref())
            .filter(|o| o.node == cluster.id)
            .collect();
        let now = std::time::Instant::now();
        let mut due = Vec::new();
        {
            let mut draining = self.draining.lock().expect("lock");
            draining.retain(|task, _| local.contains_key(task));
            for (task, Local { cid, .. }) in &local {
                if mine.iter().any(|(t, _)| &t.id == task) || kept.iter().any(|o| &o.id == task) {
                    draining.remove(task);
                    continue;
                }
                let since = *draining.entry(task.clone()).or_insert_with(|| {
                    tracing::info!(
                        task,
                        "task no longer on this node: its container goes in {DRAIN:?}"
                    );
                    let wake = self.overlay_wake.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(DRAIN).await;
                        wake.notify_one();
                    });
                    now
                });
                if now.duration_since(since) >= DRAIN {
                    due.push((task.clone(), cid.clone()));
                }
            }
        }
        for (task, cid) in due {
            tracing::info!(task, "removing the container of a task that left this node");
            if let Err(e) = self.container_remove(&cid, true).await {
                tracing::warn!(task, "removing a task's container: {e}");
            }
        }
        let mut states = Vec::new();
        // A task waiting for its program to listen is looked at again soon, events or not.
        let mut listening = false;
        for (t, svc) in &mine {
            let reported = view.services.states.get(&t.id).map(|s| s.state.as_str());
            let state = match local.get(&t.id) {
                Some(l) if l.running => match l.health.as_deref() {
                    // A task that failed its health check is stopped; the scheduler
                    // replaces it.
                    Some("unhealthy") => {
                        tracing::info!(task = %t.id, service = %svc.spec.name, "task unhealthy: stopping it");
                        if let Err(e) = self.container_stop(&l.cid, Duration::ZERO).await {
                            tracing::warn!(task = %t.id, "stopping an unhealthy task: {e}");
                        }
                        state(t, "failed", &l.cid, "task: container is unhealthy")
                    }
                    Some(h) if h != "healthy" => state(t, "starting", &l.cid, ""),
                    // Checked but not yet once: not ready either.
                    None if checked(svc) => state(t, "starting", &l.cid, ""),
                    _ if !ready(l, svc) => {
                        listening = true;
                        state(t, "starting", &l.cid, "")
                    }
                    _ => state(t, "running", &l.cid, ""),
                },
                Some(l) if l.exit == 0 => state(t, "complete", &l.cid, ""),
                Some(l) => state(
                    t,
                    "failed",
                    &l.cid,
                    &format!("task: non-zero exit ({})", l.exit),
                ),
                // Ended here before: it waits for the scheduler to replace it.
                None if matches!(reported, Some("failed" | "complete" | "rejected")) => {
                    view.services.states[&t.id].clone()
                }
                None => match self.start_task(svc, t).await {
                    Ok(cid) => state(t, "running", &cid, ""),
                    Err(e) => {
                        tracing::warn!(task = %t.id, service = %svc.spec.name, "starting a task: {e}");
                        state(t, "rejected", "", &e.to_string())
                    }
                },
            };
            states.push(state);
        }
        for o in &kept {
            if let Some(l) = local.get(&o.id) {
                states.push(if l.running {
                    state(o, "running", &l.cid, "")
                } else {
                    state(o, "failed", &l.cid, "task: exited while being replaced")
                });
            }
        }
        if listening {
            let wake = self.overlay_wake.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                wake.notify_one();
            });
        }
        if let Err(e) = cluster.report(&view.services.states, &states).await {
            tracing::warn!("reporting task states: {e}");
        }
    }

    async fn start_task(
        self: &Arc<Self>,
        svc: &ServiceRecord,
        t: &TaskRecord,
    ) -> crate::daemon::Result<String> {
        let spec = &svc.spec;
        let mut labels = spec.labels.clone();
        labels.insert(TASK_LABEL.into(), t.id.clone());
        labels.insert(SERVICE_LABEL.into(), spec.name.clone());
        labels.insert("com.docker.swarm.service.id".into(), svc.id.clone());
        labels.insert("com.docker.swarm.node.id".into(), t.node.clone());
        let names: Vec<(String, String)> = {
            let st = self.state.lock().await;
            spec.networks
                .iter()
                .filter_map(|id| st.networks.get(id).map(|n| (id.clone(), n.name.clone())))
                .collect()
        };
        // Every task answers to tasks.NAME on each network, and to the service's names too
        // in dnsrr mode (in vip mode they are the VIP's).
        let aliases = |net: &str| {
            let mut a = vec![format!("tasks.{}", spec.name)];
            if spec.endpoint_mode == "dnsrr" {
                a.insert(0, spec.name.clone());
                a.extend(spec.aliases.get(net).cloned().unwrap_or_default());
            }
            a
        };
        let req = ContainerCreate {
            name: Some(container_name(svc, t)),
            cmd: spec.cmd.clone(),
            env: spec.env.clone(),
            working_dir: spec.workdir.clone(),
            labels,
            // Never restarted in place: an ended task is replaced by a new one (docker's
            // orchestrator), as `--restart-condition` says.
            restart: RestartPolicy::default(),
            healthcheck: spec.healthcheck.clone(),
            exposed_ports: host_ports(spec).into_iter().map(|(c, _)| c).collect(),
            port_bindings: host_ports(spec)
                .into_iter()
                .map(|(c, published)| (c, vec![(String::new(), published.to_string())]))
                .collect(),
            network_mode: names
                .first()
                .map_or_else(|| "bridge".into(), |(_, n)| n.clone()),
            endpoints: names
                .iter()
                .map(|(id, n)| {
                    (
                        n.clone(),
                        EndpointRequest {
                            aliases: aliases(id),
                            ..Default::default()
                        },
                    )
                })
                .collect(),
            ..Default::default()
        };
        let id = self.container_create(req).await?;
        if let Err(e) = self.container_start(&id, Stdio::Detached).await {
            let _ = self.container_remove(&id, true).await;
            return Err(e);
        }
        Ok(id)
    }
}

/// The service's host-mode ports: (container port, host port).
fn host_ports(spec: &crate::cluster::services::ServiceSpec) -> Vec<(berth_ports::PortProto, u16)> {
    spec.ports
        .iter()
        .filter(|p| p.mode == "host")
        .filter_map(|p| {
            Some((
                berth_ports::PortProto {
                    port: p.target,
                    proto: p.protocol.parse().ok()?,
                },
                p.published,
            ))
        })
        .collect()
}

/// A task's container here, as the agent reads it.
struct Local {
    cid: String,
    pid: u32,
    started: Option<chrono::DateTime<Utc>>,
    running: bool,
    exit: i64,
    health: Option<String>,
}

/// Whether the service's tasks have a health check (docker's `NONE` test turns it off).
fn checked(svc: &ServiceRecord) -> bool {
    svc.spec
        .healthcheck
        .as_ref()
        .is_some_and(|h| !h.test.is_empty() && h.test[0] != "NONE")
}

/// How long a task's published ports may take to be served before it counts as running
/// anyway (a port the program never listens on must not hold the service back for ever).
const LISTEN_WAIT: Duration = Duration::from_secs(10);

/// Whether a running task of `svc` may take connections: its process serves every port the
/// service publishes (a socket listening on the target port in the task's namespace), so a
/// task that replaces another in the load balancing does not refuse the first requests
/// while its program starts. A health check, where there is one, decides instead.
fn ready(l: &Local, svc: &ServiceRecord) -> bool {
    let want: Vec<(bool, u16)> = svc
        .spec
        .ports
        .iter()
        .filter(|p| p.protocol == "tcp" || p.protocol == "udp")
        .map(|p| (p.protocol == "udp", p.target))
        .collect();
    if want.is_empty() {
        return true;
    }
    let waited = l
        .started
        .and_then(|s| (Utc::now() - s).to_std().ok())
        .is_some_and(|d| d >= LISTEN_WAIT);
    if waited {
        return true;
    }
    let read =
        |f: &str| std::fs::read_to_string(format!("/proc/{}/net/{f}", l.pid)).unwrap_or_default();
    let tcp = read("tcp") + &read("tcp6");
    let udp = read("udp") + &read("udp6");
    want.iter().all(|(is_udp, port)| {
        if *is_udp {
            bound(&udp, "07").contains(port)
        } else {
            bound(&tcp, "0A").contains(port)
        }
    })
}

/// The local ports of the sockets in `state` (`0A` LISTEN for TCP, `07` unconnected for
/// UDP) in a /proc/net/{tcp,udp}[6] table.
fn bound(table: &str, state: &str) -> std::collections::BTreeSet<u16> {
    table
        .lines()
        .skip_while(|l| l.trim_start().starts_with("sl"))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let local = f.nth(1)?;
            let st = f.nth(1)?;
            (st == state)
                .then(|| u16::from_str_radix(local.rsplit(':').next()?, 16).ok())
                .flatten()
        })
        .collect()
}

fn state(t: &TaskRecord, s: &str, container: &str, error: &str) -> TaskState {
    TaskState {
        task: t.id.clone(),
        state: s.into(),
        container: container.into(),
        error: error.into(),
        since: Utc::now(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn listening_ports_from_proc() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n   1: 0100000A:C350 0200000A:0050 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1\n";
        let ports = super::bound(tcp, "0A");
        assert_eq!(ports.into_iter().collect::<Vec<_>>(), vec![80]);
        let udp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n  10: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3 2 0 0\n";
        assert!(super::bound(udp, "07").contains(&53));
        assert!(super::bound(udp, "0A").is_empty());
    }
}
