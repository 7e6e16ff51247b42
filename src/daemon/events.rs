//! The event stream (`GET /events`, docker's message shape, so registry tools like
//! Registrator can follow) and the service catalog (`GET /catalog` blocking queries).
//! Events are emitted by the operation after its commit has reached the controllers: a
//! follower never sees an event before the state it describes. The catalog is made from
//! the change feed's snapshot, and its index is the store revision of the last change
//! that altered it, as Consul's index is its Raft index.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{broadcast, watch};

pub use super::feed::Snapshot;
use super::feed::{Change, Controller};
use super::{Daemon, Inner};
use crate::model::{Container, Network};

/// Past events kept for `since` (docker keeps 256; a little more costs nothing).
const KEEP: usize = 1024;

/// docker's `events.Message`, with the legacy `status`/`id`/`from` fields for containers.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(rename = "Type")]
    pub typ: &'static str,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: &'static str,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

pub struct Journal {
    tx: broadcast::Sender<Arc<Message>>,
    recent: std::sync::Mutex<VecDeque<Arc<Message>>>,
    /// The catalog's index: the revision of the last change that altered it (kept by the
    /// catalog controller).
    index: Arc<watch::Sender<u64>>,
}

impl Default for Journal {
    fn default() -> Self {
        Journal {
            tx: broadcast::channel(4096).0,
            recent: Default::default(),
            index: Arc::new(watch::channel(1).0),
        }
    }
}

impl Journal {
    fn emit(&self, m: Message) {
        let m = Arc::new(m);
        {
            let mut r = self.recent.lock().expect("lock");
            if r.len() == KEEP {
                r.pop_front();
            }
            r.push_back(m.clone());
        }
        let _ = self.tx.send(m);
    }

    /// Past events from `since` (unix nanoseconds) and a receiver for what follows, taken
    /// together so nothing falls between them.
    pub fn subscribe(
        &self,
        since: Option<i64>,
    ) -> (Vec<Arc<Message>>, broadcast::Receiver<Arc<Message>>) {
        let r = self.recent.lock().expect("lock");
        let rx = self.tx.subscribe();
        let past = match since {
            Some(t) => r.iter().filter(|m| m.time_nano >= t).cloned().collect(),
            None => vec![],
        };
        (past, rx)
    }

    pub fn index(&self) -> watch::Receiver<u64> {
        self.index.subscribe()
    }

    pub(crate) fn index_sender(&self) -> Arc<watch::Sender<u64>> {
        self.index.clone()
    }
}

/// Moves the catalog's index to the revision of every change that alters the catalog.
pub(crate) struct CatalogController {
    pub index: Arc<watch::Sender<u64>>,
}

impl Controller for CatalogController {
    fn resync(&self, snap: &Snapshot) {
        let r = u64::try_from(snap.revision).unwrap_or(0);
        self.index.send_if_modified(|i| {
            let moved = r > *i;
            *i = (*i).max(r);
            moved
        });
    }

    fn apply(&self, _snap: &Snapshot, change: &Change) {
        let Change::Container {
            prev,
            new,
            revision,
        } = change
        else {
            return;
        };
        let entries = |c: &Option<Arc<Container>>| c.as_deref().map(entries_of).unwrap_or_default();
        if entries(prev) != entries(new) {
            let r = u64::try_from(*revision).unwrap_or(0);
            self.index.send_if_modified(|i| {
                let moved = r > *i;
                *i = (*i).max(r);
                moved
            });
        }
    }
}

fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

/// berth runs host programs, not images: the program's name stands in for the image
/// (registry tools name services after it).
pub fn image_of(c: &Container) -> String {
    c.config
        .cmd
        .first()
        .map(|p| p.rsplit('/').next().unwrap_or(p).to_string())
        .unwrap_or_default()
}

impl Daemon {
    /// A container event; `start` also carries its addresses and published ports
    /// (berth's additions: `ip.NETWORK`, `ip6.NETWORK`, `ports`).
    pub(crate) fn emit_container(&self, c: &Container, action: &str, extra: &[(&str, String)]) {
        let mut attributes: BTreeMap<String, String> = c.config.labels.clone();
        attributes.insert("name".into(), c.name.clone());
        attributes.insert("image".into(), image_of(c));
        if action == "start" {
            for e in &c.endpoints {
                if let Some(ip) = e.ipv4 {
                    attributes.insert(format!("ip.{}", e.network_name), ip.to_string());
                }
                if let Some(ip) = e.ipv6 {
                    attributes.insert(format!("ip6.{}", e.network_name), ip.to_string());
                }
            }
            if !c.ports.is_empty() {
                let list: Vec<String> = c
                    .ports
                    .iter()
                    .map(|p| {
                        let host = std::net::SocketAddr::new(p.host_ip, p.host_port);
                        format!(
                            "{host}->{}/{}",
                            p.container.port,
                            p.container.proto.as_str()
                        )
                    })
                    .collect();
                attributes.insert("ports".into(), list.join(", "));
            }
        }
        for (k, v) in extra {
            attributes.insert(k.to_string(), v.clone());
        }
        let t = now_nanos();
        self.journal.emit(Message {
            status: Some(action.to_string()),
            id: Some(c.id.clone()),
            from: Some(image_of(c)),
            typ: "container",
            action: action.to_string(),
            actor: Actor {
                id: c.id.clone(),
                attributes,
            },
            scope: "local",
            time: t / 1_000_000_000,
            time_nano: t,
        });
    }

    /// A network event; connect and disconnect name the container and its addresses.
    pub(crate) fn emit_network(&self, n: &Network, action: &str, c: Option<&Container>) {
        let mut attributes = BTreeMap::new();
        attributes.insert("name".into(), n.name.clone());
        attributes.insert("type".into(), n.driver.as_str().to_string());
        if let Some(c) = c {
            attributes.insert("container".into(), c.id.clone());
            attributes.insert("containerName".into(), c.name.clone());
            if let Some(e) = c.endpoints.iter().find(|e| e.network_id == n.id) {
                if let Some(ip) = e.ipv4 {
                    attributes.insert("ipv4Address".into(), ip.to_string());
                }
                if let Some(ip) = e.ipv6 {
                    attributes.insert("ipv6Address".into(), ip.to_string());
                }
                if !e.aliases.is_empty() {
                    attributes.insert("aliases".into(), e.aliases.join(","));
                }
            }
        }
        let t = now_nanos();
        self.journal.emit(Message {
            status: None,
            id: None,
            from: None,
            typ: "network",
            action: action.to_string(),
            actor: Actor {
                id: n.id.clone(),
                attributes,
            },
            scope: "local",
            time: t / 1_000_000_000,
            time_nano: t,
        });
    }

    /// Connect events for every network of a container that just started.
    pub(crate) fn emit_connects(&self, st: &Inner, c: &Container, action: &str) {
        for e in &c.endpoints {
            if let Some(n) = st.networks.get(&e.network_id) {
                self.emit_network(n, action, Some(c));
            }
        }
    }
}

/// Whether an event passes docker's filters (`type`, `event`, `container`, `network`,
/// `label`); values of one key are alternatives, keys must all match.
pub fn matches(m: &Message, f: &BTreeMap<String, Vec<String>>) -> bool {
    f.iter().all(|(k, vals)| {
        vals.is_empty()
            || vals.iter().any(|v| match k.as_str() {
                "type" => m.typ == v,
                "event" | "action" => &m.action == v,
                "container" => {
                    m.typ == "container"
                        && (m.actor.id.starts_with(v.as_str())
                            || m.actor.attributes.get("name") == Some(v))
                        || m.typ == "network"
                            && (m.actor.attributes.get("container") == Some(v)
                                || m.actor.attributes.get("containerName") == Some(v))
                }
                "network" => {
                    m.typ == "network"
                        && (m.actor.id.starts_with(v.as_str())
                            || m.actor.attributes.get("name") == Some(v))
                }
                "label" => match v.split_once('=') {
                    Some((lk, lv)) => m.actor.attributes.get(lk).map(String::as_str) == Some(lv),
                    None => m.actor.attributes.contains_key(v),
                },
                _ => true,
            })
    })
}

/// One entry of the service catalog: a name and every endpoint that answers to it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Service {
    pub name: String,
    pub endpoints: Vec<CatalogEndpoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CatalogEndpoint {
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    pub container_name: String,
    pub network: String,
    pub address: Option<String>,
    #[serde(rename = "AddressV6")]
    pub address_v6: Option<String>,
    pub ports: Vec<CatalogPort>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CatalogPort {
    pub private_port: u16,
    #[serde(rename = "Type")]
    pub proto: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(rename = "HostIP")]
    pub host_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
}

/// One container's entries: each name it answers to on each network, with its endpoint
/// there. Empty unless it runs.
fn entries_of(c: &Container) -> Vec<(String, CatalogEndpoint)> {
    let mut out = Vec::new();
    if !c.is_running() {
        return out;
    }
    let mut ports: Vec<CatalogPort> = Vec::new();
    for p in &c.config.exposed_ports {
        let published: Vec<&berth_ports::Published> =
            c.ports.iter().filter(|x| x.container == *p).collect();
        if published.is_empty() {
            ports.push(CatalogPort {
                private_port: p.port,
                proto: p.proto.as_str().into(),
                host_ip: None,
                host_port: None,
            });
        }
        for x in published {
            ports.push(CatalogPort {
                private_port: p.port,
                proto: p.proto.as_str().into(),
                host_ip: Some(x.host_ip.to_string()),
                host_port: Some(x.host_port),
            });
        }
    }
    for e in &c.endpoints {
        let ep = CatalogEndpoint {
            container_id: c.id.clone(),
            container_name: c.name.clone(),
            network: e.network_name.clone(),
            address: e.ipv4.map(|a| a.to_string()),
            address_v6: e.ipv6.map(|a| a.to_string()),
            ports: ports.clone(),
            labels: c.config.labels.clone(),
        };
        let mut names = vec![c.name.clone()];
        for a in &e.aliases {
            if !names.contains(a) {
                names.push(a.clone());
            }
        }
        for n in names {
            out.push((n, ep.clone()));
        }
    }
    out
}

/// The catalog of a snapshot: every name the resolver answers (container names and
/// network aliases, per network) with its endpoints; sorted by name, then network.
pub fn catalog(snap: &Snapshot) -> Vec<Service> {
    let mut by_name: BTreeMap<String, Vec<CatalogEndpoint>> = BTreeMap::new();
    for c in snap.containers.values() {
        for (n, ep) in entries_of(c) {
            by_name.entry(n).or_default().push(ep);
        }
    }
    by_name
        .into_iter()
        .map(|(name, mut endpoints)| {
            endpoints.sort_by(|a, b| {
                (&a.network, &a.container_name).cmp(&(&b.network, &b.container_name))
            });
            Service { name, endpoints }
        })
        .collect()
}
