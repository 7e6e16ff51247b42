//! Overlay networks in etcd: the networks of cluster scope, the address blocks nodes own,
//! and the endpoints on them. The records and their transactions; what a node does with
//! them (its bridges, its routes, its resolver) is the daemon's.
//!
//! ```text
//! /berth/cluster/networks/<id>             the network (pools' configuration, no allocations)
//! /berth/cluster/netnames/<name>           → its id: one network per name in the cluster
//! /berth/cluster/netseq                    touched by every network create and rm: the
//!                                          compare that keeps two creates from picking one subnet
//! /berth/cluster/netuse/<id>               touched by every endpoint claim: the compare that
//!                                          keeps `network rm` from racing an attach
//! /berth/cluster/blocks/<id>/<block>       → the node owning that address block
//! /berth/cluster/endpoints/<id>/<ip>       the endpoint holding that address (its claim)
//! ```
//!
//! An attach is one transaction: its address keys, compared absent, and the network's use
//! key, with the network compared present. Blocks are claimed apart, only when a node's
//! blocks are full, so concurrent attaches on different nodes never compare the same key.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use berth_store::{Cmp, Compare, KeyValue, Op, Revision, Txn};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::nodes::{self, NodeRecord, NodeView};
use super::Cluster;
use crate::daemon::Error;
use crate::model::Network;

pub(crate) const NETWORKS: &str = "/berth/cluster/networks/";
const NETNAMES: &str = "/berth/cluster/netnames/";
const NETSEQ: &str = "/berth/cluster/netseq";
const NETUSE: &str = "/berth/cluster/netuse/";
pub(crate) const BLOCKS: &str = "/berth/cluster/blocks/";
pub(crate) const ENDPOINTS: &str = "/berth/cluster/endpoints/";

fn network_key(id: &str) -> String {
    format!("{NETWORKS}{id}")
}

fn use_key(id: &str) -> String {
    format!("{NETUSE}{id}")
}

/// `/` cannot be in a key's last part: `10.0.1.0/26` is written `10.0.1.0_26`.
pub(crate) fn block_key(net: &str, block: &IpNet) -> String {
    format!("{BLOCKS}{net}/{}", block.to_string().replace('/', "_"))
}

pub(crate) fn endpoint_key(net: &str, ip: IpAddr) -> String {
    format!("{ENDPOINTS}{net}/{ip}")
}

/// An endpoint on an overlay network, as every node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub network: String,
    pub container: String,
    /// The container's name, and its aliases on this network: what other nodes answer.
    pub name: String,
    pub aliases: Vec<String>,
    pub node: String,
    pub ipv4: Option<IpAddr>,
    pub ipv6: Option<IpAddr>,
    /// The container's exposed and published ports and its labels, for the catalog of
    /// every node.
    #[serde(default)]
    pub ports: Vec<berth_api::discovery::CatalogPort>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl EndpointRecord {
    pub fn keys(&self) -> Vec<String> {
        self.ipv4
            .iter()
            .chain(self.ipv6.iter())
            .map(|ip| endpoint_key(&self.network, *ip))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockClaim {
    pub network: String,
    pub block: IpNet,
    pub owner: String,
}

/// The cluster as one read at one revision: what a node programs itself from.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub revision: Revision,
    pub nodes: Vec<NodeView>,
    pub networks: Vec<Network>,
    pub blocks: Vec<BlockClaim>,
    /// By key; a dual-stack endpoint appears under each of its addresses.
    pub endpoints: BTreeMap<String, EndpointRecord>,
    /// Services, their tasks and states, and the scheduler.
    pub services: super::services::Services,
    netseq: Revision,
}

impl View {
    pub fn ready(&self, node: &str) -> bool {
        self.nodes.iter().any(|n| n.record.id == node && n.ready)
    }

    pub fn network(&self, key: &str) -> Option<&Network> {
        self.networks
            .iter()
            .find(|n| n.name == key)
            .or_else(|| self.networks.iter().find(|n| n.id == key))
            .or_else(|| {
                let mut m = self.networks.iter().filter(|n| n.id.starts_with(key));
                match (m.next(), m.next()) {
                    (Some(n), None) if !key.is_empty() => Some(n),
                    _ => None,
                }
            })
    }

    /// The blocks `node` owns on `net`.
    pub fn blocks_of(&self, net: &str, node: &str) -> Vec<IpNet> {
        self.blocks
            .iter()
            .filter(|b| b.network == net && b.owner == node)
            .map(|b| b.block)
            .collect()
    }

    /// One record per endpoint (not per address).
    pub fn endpoint_records(&self) -> impl Iterator<Item = &EndpointRecord> {
        let mut seen = BTreeSet::new();
        self.endpoints
            .values()
            .filter(move |e| seen.insert((e.network.clone(), e.container.clone())))
    }

    fn read(kvs: Vec<KeyValue>, revision: Revision) -> View {
        let mut v = View {
            revision,
            ..View::default()
        };
        let mut records = Vec::new();
        let mut alive = std::collections::HashSet::new();
        for kv in kvs {
            if v.services.read(&kv) {
                continue;
            }
            let k = kv.key.as_str();
            if k.starts_with(nodes::NODES) {
                records.push(kv);
            } else if k.starts_with(nodes::ALIVE) {
                alive.insert(kv.key);
            } else if k.starts_with(NETWORKS) {
                match serde_json::from_slice::<Network>(&kv.value) {
                    Ok(n) => v.networks.push(n),
                    Err(e) => tracing::warn!(key = k, "a network record berth cannot read: {e}"),
                }
            } else if let Some(rest) = k.strip_prefix(BLOCKS) {
                let parsed = rest
                    .split_once('/')
                    .and_then(|(net, b)| Some((net, b.replace('_', "/").parse::<IpNet>().ok()?)));
                if let Some((net, block)) = parsed {
                    v.blocks.push(BlockClaim {
                        network: net.to_string(),
                        block,
                        owner: String::from_utf8_lossy(&kv.value).into_owned(),
                    });
                }
            } else if k.starts_with(ENDPOINTS) {
                match serde_json::from_slice::<EndpointRecord>(&kv.value) {
                    Ok(e) => {
                        v.endpoints.insert(kv.key, e);
                    }
                    Err(e) => tracing::warn!(key = k, "an endpoint record berth cannot read: {e}"),
                }
            } else if k == NETSEQ {
                v.netseq = kv.mod_revision;
            }
        }
        v.nodes = records
            .into_iter()
            .filter_map(|kv| {
                let record: NodeRecord = serde_json::from_slice(&kv.value).ok()?;
                let ready = alive.contains(&nodes::alive_key(&record.id));
                Some(NodeView {
                    record,
                    revision: kv.mod_revision,
                    ready,
                })
            })
            .collect();
        v.nodes.sort_by(|a, b| a.record.name.cmp(&b.record.name));
        v
    }
}

/// What an operation that needs etcd says when it does not answer.
pub(crate) fn needs_cluster(what: &str, e: &berth_store::StoreError) -> Error {
    Error::Unavailable(format!(
        "{what} needs the cluster store, which does not answer ({e}); try again once etcd is reachable"
    ))
}

impl Cluster {
    /// Everything under `/berth/cluster/`, in one read.
    pub async fn view(&self) -> Result<View, berth_store::StoreError> {
        let (kvs, rev) = self.store.list("/berth/cluster/").await?;
        Ok(View::read(kvs, rev))
    }

    /// Records `net`, planned against `seen`: fails with `Ok(false)` if another network
    /// was created or removed since (the caller plans again).
    pub async fn create_network(&self, net: &Network, seen: &View) -> Result<bool, Error> {
        let txn = Txn::when(
            vec![
                Compare::ModRevision(NETSEQ.into(), Cmp::Equal, seen.netseq),
                Compare::Absent(format!("{NETNAMES}{}", net.name)),
            ],
            vec![
                Op::put(
                    network_key(&net.id),
                    serde_json::to_vec(net).expect("serializes"),
                ),
                Op::put(format!("{NETNAMES}{}", net.name), net.id.clone()),
                Op::put(NETSEQ, net.id.clone()),
            ],
        );
        let r = self
            .store
            .txn(txn)
            .await
            .map_err(|e| needs_cluster("network create", &e))?;
        Ok(r.succeeded)
    }

    /// Removes `net` unless a Ready node has an endpoint on it; endpoints of Down nodes go
    /// with it, and so do this node's that `stale` says nobody here holds any more.
    pub async fn remove_network(
        &self,
        net: &Network,
        stale: impl Fn(&EndpointRecord) -> bool,
    ) -> Result<(), Error> {
        let unavailable = |e: berth_store::StoreError| needs_cluster("network rm", &e);
        for _ in 0..5 {
            let v = self.view().await.map_err(unavailable)?;
            if let Some(s) = v
                .services
                .services
                .iter()
                .find(|s| s.record.spec.networks.contains(&net.id))
            {
                return Err(Error::Forbidden(format!(
                    "rpc error: network {} is in use by service {}: remove the service first",
                    net.name, s.record.spec.name
                )));
            }
            let busy: Vec<String> = v
                .endpoint_records()
                .filter(|e| e.network == net.id && v.ready(&e.node))
                .filter(|e| e.node != self.id || !stale(e))
                .map(|e| {
                    let node = v
                        .nodes
                        .iter()
                        .find(|n| n.record.id == e.node)
                        .map_or(e.node.as_str(), |n| n.record.name.as_str());
                    format!("{} on {node}", e.name)
                })
                .collect();
            if !busy.is_empty() {
                return Err(Error::Forbidden(format!(
                    "error while removing network: network {} has active endpoints ({})",
                    net.name,
                    busy.join(", ")
                )));
            }
            let used = self
                .store
                .get(&use_key(&net.id))
                .await
                .map_err(unavailable)?
                .map_or(0, |kv| kv.mod_revision);
            let txn = Txn::when(
                vec![
                    Compare::ModRevision(use_key(&net.id), Cmp::Equal, used),
                    Compare::Present(network_key(&net.id)),
                ],
                vec![
                    Op::Delete(network_key(&net.id)),
                    Op::Delete(format!("{NETNAMES}{}", net.name)),
                    Op::Delete(use_key(&net.id)),
                    Op::DeletePrefix(format!("{BLOCKS}{}/", net.id)),
                    Op::DeletePrefix(format!("{ENDPOINTS}{}/", net.id)),
                    Op::put(NETSEQ, net.id.clone()),
                ],
            );
            if self.store.txn(txn).await.map_err(unavailable)?.succeeded {
                return Ok(());
            }
            if self
                .store
                .get(&network_key(&net.id))
                .await
                .map_err(unavailable)?
                .is_none()
            {
                return Err(Error::NotFound(format!("network {} not found", net.name)));
            }
        }
        Err(Error::Conflict(format!(
            "network {} kept being attached to while removing it; try again",
            net.name
        )))
    }

    /// Claims `block` of `net` for this node: `Ok(false)` if another node has it.
    pub async fn claim_block(&self, net: &str, block: IpNet) -> Result<bool, Error> {
        self.claim_block_as(net, block, &self.id).await
    }

    /// Claims `block` of `net` for `owner` (a node, or `vip` for services' virtual IPs).
    pub async fn claim_block_as(
        &self,
        net: &str,
        block: IpNet,
        owner: &str,
    ) -> Result<bool, Error> {
        let k = block_key(net, &block);
        let txn = Txn::when(
            vec![
                Compare::Absent(k.clone()),
                Compare::Present(network_key(net)),
            ],
            vec![Op::put(k, owner.to_string())],
        );
        let r = self
            .store
            .txn(txn)
            .await
            .map_err(|e| needs_cluster("a new address block", &e))?;
        Ok(r.succeeded)
    }

    /// The endpoints' addresses, claimed in one transaction; all or none. A key that
    /// already holds the same record (the round wrote it) counts as claimed; a key of this
    /// node's that `stale` says nobody here holds any more (its release is still on the
    /// way) is taken over with a compare on its old value. etcd not answering is
    /// `Error::Store`.
    pub async fn claim_endpoints(
        &self,
        eps: &[EndpointRecord],
        stale: impl Fn(&EndpointRecord) -> bool,
    ) -> Result<(), Error> {
        // The store's own error: the caller tells an unreachable etcd from a conflict.
        let unavailable = Error::Store;
        let nets: BTreeSet<&str> = eps.iter().map(|e| e.network.as_str()).collect();
        // What each key held at the last look (nothing, at first).
        let mut seen: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for _ in 0..3 {
            let mut compares = Vec::new();
            let mut ops = Vec::new();
            for n in &nets {
                compares.push(Compare::Present(network_key(n)));
                ops.push(Op::put(use_key(n), self.id.clone()));
            }
            for e in eps {
                let value = serde_json::to_vec(e).expect("serializes");
                for k in e.keys() {
                    compares.push(match seen.get(&k) {
                        Some(old) => Compare::Value(k.clone(), old.clone()),
                        None => Compare::Absent(k.clone()),
                    });
                    ops.push(Op::put(k, value.clone()));
                }
            }
            if self
                .store
                .txn(Txn::when(compares, ops))
                .await
                .map_err(unavailable)?
                .succeeded
            {
                return Ok(());
            }
            seen.clear();
            for n in &nets {
                if self
                    .store
                    .get(&network_key(n))
                    .await
                    .map_err(unavailable)?
                    .is_none()
                {
                    return Err(Error::NotFound(
                        "the overlay network was removed meanwhile".into(),
                    ));
                }
            }
            for e in eps {
                for k in e.keys() {
                    let Some(kv) = self.store.get(&k).await.map_err(unavailable)? else {
                        continue;
                    };
                    let holder = serde_json::from_slice::<EndpointRecord>(&kv.value).ok();
                    match holder {
                        Some(h) if h == *e || (h.node == self.id && stale(&h)) => {
                            seen.insert(k, kv.value);
                        }
                        h => {
                            return Err(Error::Conflict(format!(
                                "address {} is already in use on the cluster (by {})",
                                k.rsplit('/').next().unwrap_or_default(),
                                h.map(|h| h.name).unwrap_or_default()
                            )))
                        }
                    }
                }
            }
        }
        Err(Error::Conflict(
            "the overlay addresses kept changing while claiming them; try again".into(),
        ))
    }

    /// Brings this node's endpoint records in line with `want` (keys → records): records
    /// of ours that are not wanted go, wanted ones that are missing come. Keys held by
    /// another node are never touched.
    pub async fn sync_endpoints(
        &self,
        view: &View,
        want: &BTreeMap<String, EndpointRecord>,
    ) -> Result<usize, berth_store::StoreError> {
        let mut ops = Vec::new();
        let mut compares = Vec::new();
        let value = |e: &EndpointRecord| serde_json::to_vec(e).expect("serializes");
        for (k, e) in &view.endpoints {
            if e.node == self.id && !want.contains_key(k) {
                compares.push(Compare::Value(k.clone(), value(e)));
                ops.push(Op::Delete(k.clone()));
            }
        }
        for (k, e) in want {
            let present = view.endpoints.get(k);
            if present == Some(e) {
                continue;
            }
            if present.is_some_and(|p| p.node != self.id) {
                tracing::warn!(
                    key = k,
                    "an address this node holds is claimed by another node"
                );
                continue;
            }
            if !view.networks.iter().any(|n| n.id == e.network) {
                continue;
            }
            compares.push(match present {
                Some(p) => Compare::Value(k.clone(), value(p)),
                None => Compare::Absent(k.clone()),
            });
            ops.push(Op::put(k.clone(), value(e)));
        }
        if ops.is_empty() {
            return Ok(0);
        }
        let n = ops.len();
        self.store.txn(Txn::when(compares, ops)).await?;
        Ok(n)
    }

    /// Releases endpoint records of this node at once, rather than at the next round; a
    /// key that holds anything else is left alone.
    pub async fn release_endpoints(&self, eps: &[EndpointRecord]) {
        let mut compares = Vec::new();
        let mut ops = Vec::new();
        for e in eps {
            let value = serde_json::to_vec(e).expect("serializes");
            for k in e.keys() {
                compares.push(Compare::Value(k.clone(), value.clone()));
                ops.push(Op::Delete(k));
            }
        }
        if ops.is_empty() {
            return;
        }
        if let Err(e) = self.store.txn(Txn::when(compares, ops)).await {
            tracing::warn!("releasing overlay addresses: {e}; the next round releases them");
        }
    }
}
