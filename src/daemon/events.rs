//! The event stream (`GET /events`, docker's message shape, so registry tools like
//! Registrator can follow) and the service catalog (`GET /catalog` blocking queries).
//! Events are emitted by the operation after its commit has reached the controllers: a
//! follower never sees an event before the state it describes. The catalog is made from
//! the change feed's snapshot, and its index is the store revision of the last change
//! that altered it, as Consul's index is its Raft index.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use tokio::sync::{broadcast, watch};

pub use super::feed::Snapshot;
use super::feed::{Change, Controller};
use super::Daemon;
use crate::model::{Container, Network};

/// Past events kept for `since` (docker keeps 256; a little more costs nothing).
const KEEP: usize = 1024;

pub use berth_api::discovery::{Actor, CatalogEndpoint, CatalogPort, Message, Service};

pub struct Journal {
    tx: broadcast::Sender<Arc<Message>>,
    recent: std::sync::Mutex<VecDeque<Arc<Message>>>,
    /// The catalog's index: the revision of the last change that altered it (kept by the
    /// catalog controller).
    index: Arc<watch::Sender<u64>>,
    /// This node's name in a cluster: every event says where it happened.
    node: Option<String>,
}

impl Journal {
    pub(crate) fn new(node: Option<String>) -> Journal {
        Journal {
            tx: broadcast::channel(4096).0,
            recent: Default::default(),
            index: Arc::new(watch::channel(1).0),
            node,
        }
    }
}

impl Journal {
    fn emit(&self, mut m: Message) {
        if let Some(n) = &self.node {
            m.actor
                .attributes
                .entry("node.name".into())
                .or_insert_with(|| n.clone());
        }
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

/// Moves the catalog's index to the revision of every change that alters the catalog (or a
/// container's health, which Consul's API answers).
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
        // Health decides what Consul's `?passing` answers, so it moves the index too.
        let health = |c: &Option<Arc<Container>>| {
            c.as_deref()
                .filter(|c| c.is_running())
                .and_then(|c| c.state.health.as_ref())
                .map(|h| h.status.clone())
        };
        if entries(prev) != entries(new) || health(prev) != health(new) {
            // At least the store's revision, and always forward: changes of other nodes
            // move the index too (by one), so it is not the local store's revision alone.
            let r = u64::try_from(*revision).unwrap_or(0);
            self.index.send_modify(|i| *i = (*i + 1).max(r));
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

impl Journal {
    /// A container event; `start` also carries its addresses and published ports
    /// (berth's additions: `ip.NETWORK`, `ip6.NETWORK`, `ports`).
    pub(crate) fn container(&self, c: &Container, action: &str, extra: &[(&str, String)]) {
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
        self.emit(Message {
            status: Some(action.to_string()),
            id: Some(c.id.clone()),
            from: Some(image_of(c)),
            typ: "container".into(),
            action: action.to_string(),
            actor: Actor {
                id: c.id.clone(),
                attributes,
            },
            scope: "local".into(),
            time: t / 1_000_000_000,
            time_nano: t,
        });
    }

    /// A network event; connect and disconnect name the container and its addresses.
    pub(crate) fn network(&self, n: &Network, action: &str, c: Option<&Container>) {
        let ep = c.map(|c| {
            let e = c.endpoints.iter().find(|e| e.network_id == n.id);
            EndpointFacts {
                container: &c.id,
                name: &c.name,
                ipv4: e.and_then(|e| e.ipv4),
                ipv6: e.and_then(|e| e.ipv6),
                aliases: e.map_or(&[][..], |e| e.aliases.as_slice()),
                node: None,
            }
        });
        self.network_event(n, action, ep);
    }

    /// `connect`/`disconnect` of a container on another node, as the cluster's endpoint
    /// records tell them (`node.name` says which node).
    pub(crate) fn remote_endpoint(
        &self,
        n: &Network,
        action: &str,
        e: &crate::cluster::EndpointRecord,
        node: &str,
    ) {
        self.network_event(
            n,
            action,
            Some(EndpointFacts {
                container: &e.container,
                name: &e.name,
                ipv4: e.ipv4,
                ipv6: e.ipv6,
                aliases: &e.aliases,
                node: Some(node),
            }),
        );
    }

    fn network_event(&self, n: &Network, action: &str, ep: Option<EndpointFacts<'_>>) {
        let mut attributes = BTreeMap::new();
        attributes.insert("name".into(), n.name.clone());
        attributes.insert("type".into(), n.driver.as_str().to_string());
        if let Some(e) = ep {
            attributes.insert("container".into(), e.container.to_string());
            attributes.insert("containerName".into(), e.name.to_string());
            if let Some(ip) = e.ipv4 {
                attributes.insert("ipv4Address".into(), ip.to_string());
            }
            if let Some(ip) = e.ipv6 {
                attributes.insert("ipv6Address".into(), ip.to_string());
            }
            if !e.aliases.is_empty() {
                attributes.insert("aliases".into(), e.aliases.join(","));
            }
            if let Some(node) = e.node {
                attributes.insert("node.name".into(), node.to_string());
            }
        }
        let t = now_nanos();
        self.emit(Message {
            status: None,
            id: None,
            from: None,
            typ: "network".into(),
            action: action.to_string(),
            actor: Actor {
                id: n.id.clone(),
                attributes,
            },
            scope: n.scope().into(),
            time: t / 1_000_000_000,
            time_nano: t,
        });
    }
}

/// What a network event says of the endpoint it is about.
struct EndpointFacts<'a> {
    container: &'a str,
    name: &'a str,
    ipv4: Option<std::net::IpAddr>,
    ipv6: Option<std::net::IpAddr>,
    aliases: &'a [String],
    node: Option<&'a str>,
}

impl Daemon {
    /// An event of an action (kill, stop).
    pub(crate) fn emit_container(&self, c: &Container, action: &str, extra: &[(&str, String)]) {
        self.journal.container(c, action, extra);
    }

    /// `network connect`/`disconnect` of a running container, once its kernel work is done.
    pub(crate) fn emit_network(&self, n: &Network, action: &str, c: Option<&Container>) {
        self.journal.network(n, action, c);
    }
}

/// The events of record changes, in the order of the feed: what a container's or a
/// network's record became tells what happened to it (created, started with its
/// attachments, health changed, died with its detachments, removed). Events of actions
/// come from their operations: kill and stop change no record, and `network connect` of a
/// running container commits alongside its kernel work, so only the operation knows when
/// the attachment is real. There is nothing to resync: the journal is history, and like dockerd at its
/// start the daemon tells nothing of what already existed.
pub(crate) struct EventsController {
    pub journal: Arc<Journal>,
}

impl Controller for EventsController {
    fn resync(&self, _snap: &Snapshot) {}

    fn apply(&self, snap: &Snapshot, change: &Change) {
        let j = &self.journal;
        match change {
            Change::Network {
                prev: None,
                new: Some(n),
            } => j.network(n, "create", None),
            Change::Network {
                prev: Some(p),
                new: None,
            } => j.network(p, "destroy", None),
            Change::Network { .. } => {}
            Change::Container { prev, new, .. } => {
                container_events(j, snap, prev.as_deref(), new.as_deref())
            }
        }
    }
}

fn container_events(
    j: &Journal,
    snap: &Snapshot,
    prev: Option<&Container>,
    new: Option<&Container>,
) {
    let attach = |c: &Container, ep: &crate::model::Endpoint, action: &str| {
        if let Some(n) = snap.networks.get(&ep.network_id) {
            j.network(n, action, Some(c));
        }
    };
    let running = |c: Option<&Container>| c.is_some_and(Container::is_running);
    if prev.is_none() {
        if let Some(c) = new {
            j.container(c, "create", &[]);
        }
    }
    match (prev, new) {
        (_, Some(c)) if !running(prev) && c.is_running() => {
            for ep in &c.endpoints {
                attach(c, ep, "connect");
            }
            j.container(c, "start", &[]);
        }
        (Some(p), c) if p.is_running() && !running(c) => {
            for ep in &p.endpoints {
                attach(p, ep, "disconnect");
            }
            // An auto-removed container's exit is recorded before its record goes.
            if let Some(c) = c {
                j.container(c, "die", &[("exitCode", c.state.exit_code.to_string())]);
            }
        }
        (Some(p), Some(c)) if p.is_running() && c.is_running() => {
            // `network connect`/`disconnect` of a running container tell of themselves once
            // the kernel work is done (the record is committed alongside it).
            let status = |c: &Container| c.state.health.as_ref().map(|h| h.status.clone());
            if let (Some(s), true) = (status(c), status(p) != status(c)) {
                j.container(c, &format!("health_status: {s}"), &[]);
            }
        }
        _ => {}
    }
    if let (Some(p), None) = (prev, new) {
        j.container(p, "destroy", &[]);
    }
}

/// Whether an event passes docker's filters (`type`, `event`, `container`, `network`,
/// `label`); values of one key are alternatives, keys must all match.
pub fn matches(m: &Message, f: &BTreeMap<String, Vec<String>>) -> bool {
    f.iter().all(|(k, vals)| {
        vals.is_empty()
            || vals.iter().any(|v| match k.as_str() {
                "type" => &m.typ == v,
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

/// One container's entries: each name it answers to on each network, with its endpoint
/// there. Empty unless it runs.
fn entries_of(c: &Container) -> Vec<(String, CatalogEndpoint)> {
    let mut out = Vec::new();
    if !c.is_running() {
        return out;
    }
    let ports = catalog_ports(c);
    for e in &c.endpoints {
        let ep = CatalogEndpoint {
            container_id: c.id.clone(),
            container_name: c.name.clone(),
            network: e.network_name.clone(),
            address: e.ipv4.map(|a| a.to_string()),
            address_v6: e.ipv6.map(|a| a.to_string()),
            ports: ports.clone(),
            labels: c.config.labels.clone(),
            node: None,
        };
        for n in names_of(&c.name, &e.aliases) {
            out.push((n, ep.clone()));
        }
    }
    out
}

/// The name, then the aliases not equal to it.
fn names_of(name: &str, aliases: &[String]) -> Vec<String> {
    let mut names = vec![name.to_string()];
    for a in aliases {
        if !names.contains(a) {
            names.push(a.clone());
        }
    }
    names
}

/// The catalog entries of other nodes' endpoints on overlays (`(record, node name, network
/// name)`).
pub(crate) fn remote_entries(
    remote: &[(crate::cluster::EndpointRecord, String, String)],
) -> Vec<(String, CatalogEndpoint)> {
    let mut out = Vec::new();
    for (r, node, network) in remote {
        let ep = CatalogEndpoint {
            container_id: r.container.clone(),
            container_name: r.name.clone(),
            network: network.clone(),
            address: r.ipv4.map(|a| a.to_string()),
            address_v6: r.ipv6.map(|a| a.to_string()),
            ports: r.ports.clone(),
            labels: r.labels.clone(),
            node: Some(node.clone()),
        };
        for n in names_of(&r.name, &r.aliases) {
            out.push((n, ep.clone()));
        }
    }
    out
}

/// What the catalog says of a container's ports: each exposed port, with its published
/// host ports.
pub(crate) fn catalog_ports(c: &Container) -> Vec<CatalogPort> {
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
    ports
}

/// The catalog of a snapshot: every name the resolver answers (container names and
/// network aliases, per network) with its endpoints; sorted by name, then network.
pub fn catalog(snap: &Snapshot) -> Vec<Service> {
    catalog_with(snap, vec![])
}

/// The catalog of a snapshot and of other nodes' entries.
pub(crate) fn catalog_with(
    snap: &Snapshot,
    remote: Vec<(String, CatalogEndpoint)>,
) -> Vec<Service> {
    let mut by_name: BTreeMap<String, Vec<CatalogEndpoint>> = BTreeMap::new();
    for c in snap.containers.values() {
        for (n, ep) in entries_of(c) {
            by_name.entry(n).or_default().push(ep);
        }
    }
    for (n, ep) in remote {
        by_name.entry(n).or_default().push(ep);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::containers::alloc_tests::{container_on, net};
    use crate::daemon::feed::step;
    use crate::daemon::keys;
    use crate::model::{Health, Status};

    /// A container's life as records tells its events in docker's order, with the exit
    /// code and the addresses it had; the catalog index moves only with the catalog.
    #[test]
    fn record_changes_tell_the_events() {
        let journal = Arc::new(Journal::new(None));
        let events = EventsController {
            journal: journal.clone(),
        };
        let catalog = CatalogController {
            index: journal.index_sender(),
        };
        let n = net("app", "10.42.0.0/24");
        let created = container_on(&n, "web", "10.42.0.7");
        let mut running = created.clone();
        running.state.status = Status::Running;
        let mut healthy = running.clone();
        healthy.state.health = Some(Health {
            status: "healthy".into(),
            failing_streak: 0,
            log: vec![],
        });
        let mut exited = healthy.clone();
        exited.state.status = Status::Exited;
        exited.state.exit_code = 143;
        exited.endpoints.clear();
        let put = |c: &Container| Some(serde_json::to_vec(c).unwrap());
        let history = [
            (keys::network(&n.id), Some(serde_json::to_vec(&n).unwrap())),
            (keys::container("web"), put(&created)),
            (keys::container("web"), put(&running)),
            (keys::container("web"), put(&healthy)),
            (keys::container("web"), put(&exited)),
            (keys::container("web"), None),
            (keys::network(&n.id), None),
        ];
        let mut snap = Snapshot::default();
        let mut indexes = vec![];
        for (i, (key, value)) in history.iter().enumerate() {
            let change = step(
                &mut snap,
                key,
                value.as_deref(),
                i64::try_from(i).unwrap() + 2,
            )
            .unwrap();
            events.apply(&snap, &change);
            catalog.apply(&snap, &change);
            indexes.push(*journal.index().borrow());
        }
        let (past, _) = journal.subscribe(Some(0));
        let seq: Vec<String> = past
            .iter()
            .map(|m| format!("{} {}", m.typ, m.action))
            .collect();
        assert_eq!(
            seq,
            [
                "network create",
                "container create",
                "network connect",
                "container start",
                "container health_status: healthy",
                "network disconnect",
                "container die",
                "container destroy",
                "network destroy",
            ]
        );
        assert_eq!(past[2].actor.attributes["ipv4Address"], "10.42.0.7");
        assert_eq!(past[3].actor.attributes["ip.app"], "10.42.0.7");
        assert_eq!(past[6].actor.attributes["exitCode"], "143");
        // In at the start (revision 4), healthy (5), out at the exit (6); nothing else
        // moves it.
        assert_eq!(indexes, [1, 1, 4, 5, 6, 6, 6]);
    }
}
