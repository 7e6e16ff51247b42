//! Endpoints on overlay networks: the address blocks a node hands addresses out of, the
//! one etcd transaction of an attach, and the bridge that exists while the node has an
//! endpoint on the network.

use std::collections::BTreeSet;
use std::net::IpAddr;

use berth_ipam::blocks;
use ipnet::IpNet;

use crate::cluster::EndpointRecord;
use crate::daemon::{Daemon, Error, Inner, Result};
use crate::model::{Container, Driver, Network};

/// The overlay endpoints of a container, as the cluster records them.
pub(crate) fn records(st: &Inner, c: &Container, node: &str) -> Vec<EndpointRecord> {
    c.endpoints
        .iter()
        .filter(|e| {
            st.networks
                .get(&e.network_id)
                .is_some_and(|n| n.driver == Driver::Overlay)
        })
        .map(|e| EndpointRecord {
            network: e.network_id.clone(),
            container: c.id.clone(),
            name: c.name.clone(),
            aliases: e.aliases.clone(),
            node: node.to_string(),
            ipv4: e.ipv4,
            ipv6: e.ipv6,
            ports: crate::daemon::events::catalog_ports(c),
            labels: c.config.labels.clone(),
        })
        .collect()
}

/// Every (container, network, address) this node's containers hold.
pub(crate) fn held_addresses(st: &Inner) -> BTreeSet<(String, String, IpAddr)> {
    st.containers
        .values()
        .flat_map(|c| {
            c.endpoints.iter().flat_map(move |e| {
                e.ipv4
                    .iter()
                    .chain(e.ipv6.iter())
                    .map(move |ip| (c.id.clone(), e.network_id.clone(), *ip))
            })
        })
        .collect()
}

/// A record of this node's that no container here holds any more: its release is on the
/// way (the next round deletes it).
pub(crate) fn stale(held: &BTreeSet<(String, String, IpAddr)>, r: &EndpointRecord) -> bool {
    r.ipv4
        .iter()
        .chain(r.ipv6.iter())
        .all(|ip| !held.contains(&(r.container.clone(), r.network.clone(), *ip)))
}

/// Where a node starts looking for a free block: spread by its id, so nodes starting
/// together rarely race for the same block.
fn start_of(node: &str) -> u128 {
    node.bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
        .into()
}

impl Daemon {
    /// Runs the planning step `plan` under the state lock; when it answers `NoBlock` (an
    /// overlay network whose blocks here are full, or a static address in a block not yet
    /// claimed), claims that block with the lock released and plans again.
    pub(crate) async fn plan_with_blocks<'a, T>(
        &'a self,
        mut st: tokio::sync::MutexGuard<'a, Inner>,
        mut plan: impl FnMut(&mut Inner) -> Result<T>,
    ) -> Result<(tokio::sync::MutexGuard<'a, Inner>, T)> {
        for _ in 0..4 {
            match plan(&mut st) {
                Err(Error::NoBlock { network, v6, want }) => {
                    drop(st);
                    self.claim_block(&network, v6, want).await?;
                    st = self.state.lock().await;
                }
                r => return r.map(|t| (st, t)),
            }
        }
        plan(&mut st).map(|t| (st, t))
    }

    /// Claims a block for what `Error::NoBlock` asked (a block with room, or the block of
    /// a static address), then the caller plans again.
    pub(crate) async fn claim_block(
        &self,
        network: &str,
        v6: bool,
        want: Option<IpAddr>,
    ) -> Result<()> {
        let cluster = self
            .cluster
            .clone()
            .ok_or_else(|| Error::Unavailable("overlay networks need cluster mode".into()))?;
        let (pool, name) = {
            let st = self.state.lock().await;
            let n = st
                .networks
                .get(network)
                .ok_or_else(|| Error::NotFound(format!("network {network} not found")))?;
            let p = n
                .pools
                .iter()
                .find(|p| p.subnet().addr().is_ipv6() == v6)
                .ok_or_else(|| Error::Internal("no pool of that family".into()))?;
            (p.persistable(), n.name.clone())
        };
        let area = pool.config().ip_range.unwrap_or(pool.subnet());
        let len = blocks::block_len(&area);
        let reserved: Vec<IpAddr> = std::iter::once(pool.gateway())
            .chain(pool.config().aux_addresses.values().copied())
            .collect();
        for _ in 0..8 {
            let view = cluster
                .view()
                .await
                .map_err(|e| crate::cluster::overlay::needs_cluster("a new address block", &e))?;
            let taken: BTreeSet<IpNet> = view
                .blocks
                .iter()
                .filter(|b| b.network == network)
                .map(|b| b.block)
                .collect();
            let block = match want {
                Some(ip) => {
                    let b = blocks::block_of(&pool.subnet(), blocks::block_len(&pool.subnet()), ip)
                        .ok_or_else(|| {
                            Error::InvalidParameter(format!(
                                "address {ip} is not in a subnet of network {name}"
                            ))
                        })?;
                    if let Some(other) = view
                        .blocks
                        .iter()
                        .find(|x| x.network == network && x.block == b && x.owner != cluster.id)
                    {
                        let owner = view
                            .nodes
                            .iter()
                            .find(|n| n.record.id == other.owner)
                            .map_or(other.owner.as_str(), |n| n.record.name.as_str());
                        return Err(Error::Conflict(format!(
                            "address {ip} lies in block {b} of network {name}, which node {owner} hands out: start the container there, or give an address outside that block"
                        )));
                    }
                    b
                }
                None => blocks::free_block(&area, len, &taken, &reserved, start_of(&cluster.id))
                    .ok_or_else(|| {
                        Error::Unavailable(format!(
                            "network {name} has no free address block left for this node: every block of {area} is held by a node"
                        ))
                    })?,
            };
            let mine = view.blocks_of(network, &cluster.id).contains(&block);
            if mine || cluster.claim_block(network, block).await? {
                tracing::debug!(network = %name, %block, "address block claimed");
                let mut st = self.state.lock().await;
                let owned = st.blocks.entry(network.to_string()).or_default();
                if !owned.contains(&block) {
                    owned.push(block);
                }
                return Ok(());
            }
        }
        Err(Error::Conflict(format!(
            "other nodes kept taking the address blocks of network {name}; try again"
        )))
    }

    /// `c`'s endpoints on overlay networks as this node records them (none outside a
    /// cluster).
    pub(crate) fn overlay_records(&self, st: &Inner, c: &Container) -> Vec<EndpointRecord> {
        match &self.cluster {
            Some(cl) => records(st, c, &cl.id),
            None => vec![],
        }
    }

    /// The overlay endpoints of a start or connect, claimed in the cluster in one
    /// transaction.
    pub(crate) async fn claim_overlay(&self, eps: &[EndpointRecord]) -> Result<()> {
        match &self.cluster {
            Some(cluster) if !eps.is_empty() => {
                // Nothing is read of this node's state on the usual path: only a compare
                // that failed asks whether the holder is a record of ours on its way out.
                let mut r = cluster.claim_endpoints(eps, |_| false).await;
                if matches!(r, Err(Error::Conflict(_))) {
                    let held = held_addresses(&*self.state.lock().await);
                    r = cluster.claim_endpoints(eps, |rec| stale(&held, rec)).await;
                }
                match r {
                    Err(Error::Store(e)) => self.queue_claims(eps, &e).await,
                    r => r,
                }
            }
            _ => Ok(()),
        }
    }

    /// etcd does not answer: addresses from blocks this node already owns are its own to
    /// hand out (no other node can hold them), so the endpoint goes ahead and its record
    /// waits for the round that follows etcd's return (which writes it with a compare on
    /// absence: fenced). An address that needs the cluster's word is refused.
    async fn queue_claims(
        &self,
        eps: &[EndpointRecord],
        e: &berth_store::StoreError,
    ) -> Result<()> {
        let st = self.state.lock().await;
        let own = eps.iter().all(|r| {
            let blocks = st.blocks.get(&r.network).map_or(&[][..], Vec::as_slice);
            r.ipv4
                .iter()
                .chain(r.ipv6.iter())
                .all(|ip| blocks.iter().any(|b| b.contains(ip)))
        });
        if !own {
            return Err(crate::cluster::overlay::needs_cluster(
                "attaching to an overlay network",
                e,
            ));
        }
        tracing::warn!(
            endpoints = eps.len(),
            "the cluster store does not answer ({e}): attaching from this node's own address blocks; the records follow when it answers"
        );
        Ok(())
    }

    /// Claims of a start or connect that failed later: gone at once (the next round would
    /// remove them too).
    pub(crate) async fn release_overlay(&self, eps: &[EndpointRecord]) {
        if let Some(cluster) = &self.cluster {
            cluster.release_endpoints(eps).await;
        }
    }

    /// The network's bridge on this node, with its resolver, before an endpoint joins it.
    /// Under `overlay_lock`, so the bridge of a network that is losing its last endpoint
    /// here cannot be removed under a join.
    pub(crate) async fn overlay_bridge_up(&self, net: &Network) -> Result<()> {
        let _g = self.overlay_lock.lock().await;
        self.drivers.overlay.bridge_up(net).await?;
        self.overlay_listen(net);
        Ok(())
    }

    /// The resolver on the network's gateway (which exists while the bridge does).
    fn overlay_listen(&self, net: &Network) {
        if self.dns.listening(&net.id) {
            return;
        }
        if let Some(dn) = crate::daemon::discovery::dns_network(net) {
            let gws: Vec<IpAddr> = net.pools.iter().map(|p| p.gateway()).collect();
            if let Err(e) = self.dns.listen(&dn.id, &gws) {
                tracing::warn!(network = %net.name, "no embedded DNS on this overlay network: {e}");
            }
        }
    }

    /// Bridges of overlay networks that have no endpoint on this node any more go; those
    /// that have (after a restart) get their resolver back.
    pub(crate) async fn overlay_bridges(&self) {
        let _g = self.overlay_lock.lock().await;
        let (idle, busy): (Vec<Network>, Vec<Network>) = {
            let st = self.state.lock().await;
            st.networks
                .values()
                .filter(|n| n.driver == Driver::Overlay)
                .map(crate::daemon::without_allocations)
                .partition(|n| st.active_endpoints(&n.id).is_empty())
        };
        for n in idle {
            if self.drivers.overlay.is_up(&n).await.unwrap_or(false) {
                tracing::debug!(network = %n.name, "last endpoint gone: removing the overlay bridge");
                self.dns_unlisten(&n.id);
                let errs = self.drivers.overlay.bridge_down(&n).await;
                if !errs.is_empty() {
                    tracing::warn!(network = %n.name, "removing the bridge: {}", errs.join("; "));
                }
            }
        }
        for n in busy {
            if !self.dns.listening(&n.id) && self.drivers.overlay.is_up(&n).await.unwrap_or(false) {
                self.overlay_listen(&n);
            }
        }
    }
}
