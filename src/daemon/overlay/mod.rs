//! This node in the cluster's overlay networks. One loop, woken by every change in etcd and
//! every local change of an overlay endpoint, and at least every 30 s, runs a *round* from
//! one read of `/berth/cluster/`: the networks mirrored here, this node's blocks, this
//! node's endpoint records made to match its containers, the other nodes' names in the
//! resolver, the bridges of networks used here, and the VXLAN mesh (entries per node,
//! routes per block). Each round compares the whole desired state with what is there, so a
//! restart, a lost event or a crash between two steps is put right by the next round.
//! Without a read of etcd there is no round: nothing is removed because etcd is away.

mod attach;
mod networks;

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_dns as dns;

pub(crate) use attach::records;

use super::feed::{Change, Controller, Snapshot};
use super::Daemon;
use crate::cluster::mesh::{BATCH, RESYNC};
use crate::cluster::{Cluster, View};
use crate::model::Driver;

/// Containers of other nodes, as this node's resolver answers them (by container id).
pub(crate) type RemoteNames = Arc<std::sync::Mutex<BTreeMap<String, dns::Sandbox>>>;

/// Wakes the round when a local container's overlay endpoints change.
pub(crate) struct OverlayKick {
    pub wake: Arc<tokio::sync::Notify>,
}

impl Controller for OverlayKick {
    fn resync(&self, _snap: &Snapshot) {
        self.wake.notify_one();
    }

    fn apply(&self, snap: &Snapshot, change: &Change) {
        let Change::Container { prev, new, .. } = change else {
            return;
        };
        let on_overlay = |c: &Option<Arc<crate::model::Container>>| {
            c.as_ref().is_some_and(|c| {
                c.endpoints.iter().any(|e| {
                    snap.networks
                        .get(&e.network_id)
                        .is_some_and(|n| n.driver == Driver::Overlay)
                })
            })
        };
        if on_overlay(prev) || on_overlay(new) {
            self.wake.notify_one();
        }
    }
}

/// Remote containers as resolver sandboxes: one per container, one attachment per
/// overlay network, only of Ready nodes.
pub(crate) fn remote_names(view: &View, me: &str) -> BTreeMap<String, dns::Sandbox> {
    let mut out: BTreeMap<String, dns::Sandbox> = BTreeMap::new();
    for e in view.endpoint_records() {
        // A service's VIP belongs to no node: every node answers it.
        if !e.node.is_empty() && (e.node == me || !view.ready(&e.node)) {
            continue;
        }
        let s = out
            .entry(e.container.clone())
            .or_insert_with(|| dns::Sandbox {
                id: e.container.as_str().into(),
                name: e.name.clone(),
                hostname: e.name.clone(),
                upstreams: vec![],
                ports: vec![],
                in_service: true,
                links: vec![],
                attachments: vec![],
            });
        s.attachments.push(dns::Attachment {
            network: e.network.as_str().into(),
            aliases: e.aliases.clone(),
            v4: match e.ipv4 {
                Some(std::net::IpAddr::V4(a)) => Some(a),
                _ => None,
            },
            v6: match e.ipv6 {
                Some(std::net::IpAddr::V6(a)) => Some(a),
                _ => None,
            },
        });
    }
    out
}

/// Puts every remote sandbox in again (after the index was rebuilt or a network of theirs
/// was set anew, which forgets its members).
pub(crate) fn reinsert_remote(ix: &mut dns::Index, remote: &BTreeMap<String, dns::Sandbox>) {
    for s in remote.values() {
        ix.remove_sandbox(&s.id);
        ix.upsert_sandbox(s.clone());
    }
}

impl Daemon {
    /// Starts the rounds (cluster mode only).
    pub(crate) fn start_overlay(self: &Arc<Self>) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        let wake = self.overlay_wake.clone();
        cluster.clone().follow(wake.clone());
        let mut mesh = cluster.mesh(self.host.clone());
        let d = self.clone();
        tokio::spawn(async move {
            // The other nodes' endpoints of the last round, for their events.
            let mut seen = None;
            loop {
                match cluster.view().await {
                    Ok(view) => {
                        d.round(&cluster, &view).await;
                        d.remote_events(&view, &cluster.id, &mut seen);
                        d.set_remote_catalog(&view, &cluster.id);
                        if let Some(m) = &mut mesh {
                            m.round(&view).await;
                        }
                        // After the mesh (the return path forwards onto its device), before
                        // the agent: a task that left leaves this node's maps without
                        // waiting for the containers the agent starts.
                        d.lb_round(&view).await;
                        d.schedule(&cluster, &view).await;
                        d.agent(&cluster, &view).await;
                    }
                    Err(e) => {
                        tracing::debug!(
                            "no overlay round: the cluster store does not answer ({e})"
                        );
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        continue;
                    }
                }
                if tokio::time::timeout(RESYNC, wake.notified()).await.is_ok() {
                    tokio::time::sleep(BATCH).await;
                } else if let Some(m) = &mut mesh {
                    m.resync();
                }
            }
        });
    }

    /// `connect`/`disconnect` events of other nodes' endpoints, from what changed since
    /// the last round (the first round tells nothing of what already existed, as dockerd
    /// at its start).
    fn remote_events(
        &self,
        view: &View,
        me: &str,
        seen: &mut Option<BTreeMap<(String, String), crate::cluster::EndpointRecord>>,
    ) {
        let now: BTreeMap<(String, String), crate::cluster::EndpointRecord> = view
            .endpoint_records()
            .filter(|e| !e.node.is_empty() && e.node != me && view.ready(&e.node))
            .map(|e| ((e.network.clone(), e.container.clone()), e.clone()))
            .collect();
        let node_name = |id: &str| {
            view.nodes
                .iter()
                .find(|n| n.record.id == id)
                .map_or(id.to_string(), |n| n.record.name.clone())
        };
        let nets: BTreeMap<&str, &crate::model::Network> =
            view.networks.iter().map(|n| (n.id.as_str(), n)).collect();
        if let Some(seen) = seen.as_ref() {
            for (k, e) in &now {
                if !seen.contains_key(k) {
                    if let Some(n) = nets.get(e.network.as_str()) {
                        self.journal
                            .remote_endpoint(n, "connect", e, &node_name(&e.node));
                    }
                }
            }
            for (k, e) in seen.iter() {
                if !now.contains_key(k) {
                    if let Some(n) = nets.get(e.network.as_str()) {
                        self.journal
                            .remote_endpoint(n, "disconnect", e, &node_name(&e.node));
                    }
                }
            }
        }
        *seen = Some(now);
    }

    /// Other nodes' endpoints for the catalog; a change moves the catalog's index, which
    /// wakes its blocking queries.
    fn set_remote_catalog(&self, view: &View, me: &str) {
        let mut now: Vec<(crate::cluster::EndpointRecord, String, String)> = view
            .endpoint_records()
            .filter(|e| e.node != me && view.ready(&e.node))
            .filter_map(|e| {
                let node = view.nodes.iter().find(|n| n.record.id == e.node)?;
                let net = view.networks.iter().find(|n| n.id == e.network)?;
                Some((e.clone(), node.record.name.clone(), net.name.clone()))
            })
            .collect();
        now.sort_by(|a, b| (&a.0.network, &a.0.container).cmp(&(&b.0.network, &b.0.container)));
        *self.remote_nodes.lock().expect("lock") = view
            .nodes
            .iter()
            .filter(|n| n.ready && n.record.id != me)
            .map(|n| {
                (
                    n.record.id.clone(),
                    n.record.name.clone(),
                    n.record.addr.to_string(),
                )
            })
            .collect();
        let mut held = self.remote_catalog.lock().expect("lock");
        if *held != now {
            *held = now;
            self.journal.index_sender().send_modify(|i| *i += 1);
        }
    }

    /// Other Ready nodes (id, name, address) with their containers' endpoint records, one
    /// per container, for the Consul API.
    pub(crate) fn remote_consul(
        &self,
    ) -> Vec<(String, String, String, Vec<crate::cluster::EndpointRecord>)> {
        let held = self.remote_catalog.lock().expect("lock");
        self.remote_nodes
            .lock()
            .expect("lock")
            .iter()
            .map(|(id, name, addr)| {
                let mut eps: Vec<crate::cluster::EndpointRecord> = Vec::new();
                for (e, _, _) in held.iter().filter(|(e, _, _)| &e.node == id) {
                    if !eps.iter().any(|x| x.container == e.container) {
                        eps.push(e.clone());
                    }
                }
                (id.clone(), name.clone(), addr.clone(), eps)
            })
            .collect()
    }

    /// The catalog's entries of other nodes (`events::remote_entries`).
    pub(crate) fn remote_catalog(&self) -> Vec<(String, berth_api::discovery::CatalogEndpoint)> {
        super::events::remote_entries(&self.remote_catalog.lock().expect("lock"))
    }

    /// The cluster's networks here now, not at the next round: what reads networks on
    /// behalf of a user (ls, inspect) sees a network another node created a moment ago.
    pub(crate) async fn overlay_refresh(&self) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        match cluster.view().await {
            Ok(view) => {
                let mut st = self.state.lock().await;
                self.mirror_networks(&mut st, &view).await;
            }
            Err(e) => {
                tracing::debug!("listing the cluster's networks: {e}; showing the last known")
            }
        }
    }

    /// `overlay_refresh` when one of `names` is not a network known here.
    pub(crate) async fn overlay_refresh_for(&self, names: &[&str]) {
        if self.cluster.is_none() {
            return;
        }
        let unknown = {
            let st = self.state.lock().await;
            names.iter().any(|n| {
                !n.is_empty()
                    && st.network_id(n).is_err()
                    && st.container_id(n.trim_start_matches("container:")).is_err()
            })
        };
        if unknown {
            self.overlay_refresh().await;
        }
    }

    /// Networks of the cluster mirrored here; those gone from it removed once no
    /// container here uses them.
    async fn mirror_networks(&self, st: &mut super::Inner, view: &View) {
        for n in &view.networks {
            if !st.networks.contains_key(&n.id) {
                if let Err(e) = self.mirror_add(st, self.local_copy(n)).await {
                    tracing::warn!(network = %n.name, "overlay network not usable here: {e}");
                }
            }
        }
        let gone: Vec<String> = st
            .networks
            .values()
            .filter(|n| n.driver == Driver::Overlay)
            .filter(|n| !view.networks.iter().any(|x| x.id == n.id))
            .filter(|n| st.active_endpoints(&n.id).is_empty())
            .map(|n| n.id.clone())
            .collect();
        for id in gone {
            if let Err(e) = self.mirror_remove(st, &id).await {
                tracing::warn!(
                    network = id,
                    "removing an overlay network gone from the cluster: {e}"
                );
            }
        }
    }

    async fn round(&self, cluster: &Cluster, view: &View) {
        let want = {
            let mut st = self.state.lock().await;
            self.mirror_networks(&mut st, view).await;
            for n in &view.networks {
                let owned = st.blocks.entry(n.id.clone()).or_default();
                for b in view.blocks_of(&n.id, &cluster.id) {
                    if !owned.contains(&b) {
                        owned.push(b);
                    }
                }
            }
            let mut want = BTreeMap::new();
            for c in st.containers.values() {
                for r in records(&st, c, &cluster.id) {
                    for k in r.keys() {
                        want.insert(k, r.clone());
                    }
                }
            }
            want
        };
        match cluster.sync_endpoints(view, &want).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(changes = n, "endpoint records of this node put right"),
            Err(e) => tracing::warn!("recording this node's overlay endpoints: {e}"),
        }
        let remote = remote_names(view, &cluster.id);
        {
            // Only what changed: a network set anew (which forgets its members) puts every
            // remote sandbox back by itself (`DnsController`).
            let mut held = self.remote_names.lock().expect("lock");
            let gone: Vec<String> = held
                .keys()
                .filter(|k| !remote.contains_key(*k))
                .cloned()
                .collect();
            let changed: BTreeMap<String, dns::Sandbox> = remote
                .iter()
                .filter(|(k, s)| held.get(*k) != Some(*s))
                .map(|(k, s)| (k.clone(), s.clone()))
                .collect();
            if !gone.is_empty() || !changed.is_empty() {
                self.dns.update(|ix| {
                    for id in &gone {
                        ix.remove_sandbox(id);
                    }
                    reinsert_remote(ix, &changed);
                });
            }
            *held = remote;
        }
        self.overlay_bridges().await;
    }
}
