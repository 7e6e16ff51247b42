//! The node mesh: this node's VXLAN device, with an FDB and a neighbour entry for every
//! other Ready node and a route per address block a remote Ready node owns, kept
//! in line with etcd. Level-triggered: each round lists the kernel, plans against what the
//! cluster wants (`crates/overlay`) and carries the plan out, so entries a crash or another
//! daemon left go, and missing ones come (flannel#2554). A burst of etcd events costs one
//! round. When etcd cannot be read, the kernel keeps what it has: a node that loses etcd
//! keeps its data path (flannel#636).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use berth_overlay::{desired, device_mac, plan, Block, Node, DEVICE, OVERHEAD};

use super::Cluster;
use crate::netlink::Netlink;

/// The MTU of the link that holds `addr` (1500 if it cannot be read).
fn underlay_mtu(addr: IpAddr) -> u32 {
    super::interface_addresses()
        .into_iter()
        .find(|(_, ip)| *ip == addr)
        .and_then(|(n, _)| std::fs::read_to_string(format!("/sys/class/net/{n}/mtu")).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1500)
}

/// This node's side of the mesh: its VXLAN device and what it last made of it.
pub struct Mesh {
    nl: Netlink,
    me: String,
    local: std::net::Ipv4Addr,
    mac: berth_overlay::Mac,
    mtu: u32,
    /// The device's index once it was made as wanted; looked up again after a failed
    /// round and at every resync, not on every event.
    device: Option<u32>,
}

impl Cluster {
    /// The MTU of the link carrying the advertise address.
    pub fn underlay_mtu(&self) -> u32 {
        underlay_mtu(self.addr)
    }

    /// The mesh of this node; `nl` is the daemon's own namespace.
    pub fn mesh(&self, nl: Netlink) -> Option<Mesh> {
        let IpAddr::V4(local) = self.addr else {
            tracing::warn!(addr = %self.addr, "an IPv6 underlay is not supported yet: no overlay data path");
            return None;
        };
        Some(Mesh {
            nl,
            me: self.id.clone(),
            local,
            mac: device_mac(&self.id),
            mtu: self.underlay_mtu().saturating_sub(OVERHEAD),
            device: None,
        })
    }

    /// Wakes `wake` on every change under `/berth/cluster/`; watches again (from the last
    /// revision seen) when the watch ends, as after an etcd restart.
    pub fn follow(self: Arc<Self>, wake: Arc<tokio::sync::Notify>) {
        tokio::spawn(async move {
            let mut from = 0;
            loop {
                match self.store.watch("/berth/cluster/", from).await {
                    Ok(mut w) => {
                        while let Some(e) = w.recv().await {
                            from = e.revision() + 1;
                            wake.notify_one();
                        }
                    }
                    Err(e) => tracing::debug!("watching the cluster: {e}"),
                }
                // Whatever happened meanwhile is covered by a full round.
                wake.notify_one();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }
}

/// A full round even without events: what another program changed on the device is put
/// right within this.
pub(crate) const RESYNC: Duration = Duration::from_secs(30);
/// Events arriving this close together are one round.
pub(crate) const BATCH: Duration = Duration::from_millis(20);

impl Mesh {
    /// The next round looks the device up again.
    pub fn resync(&mut self) {
        self.device = None;
    }

    /// The kernel in line with `view` (read from etcd just before: a node that cannot read
    /// etcd has no view, and its kernel keeps what it has).
    pub async fn round(&mut self, view: &super::View) {
        if let Err(e) = self.try_round(view).await {
            tracing::warn!("programming the overlay mesh: {e}; trying again");
            self.device = None;
        }
    }

    async fn try_round(&mut self, view: &super::View) -> Result<(), String> {
        let nodes: Vec<Node> = view
            .nodes
            .iter()
            .map(|n| Node {
                id: n.record.id.clone(),
                underlay: n.record.addr,
                ready: n.ready,
            })
            .collect();
        let blocks: Vec<Block> = view
            .blocks
            .iter()
            .map(|b| Block {
                block: b.block,
                owner: b.owner.clone(),
            })
            .collect();
        let idx = match self.device {
            Some(i) => i,
            None => {
                let i = self
                    .nl
                    .ensure_vxlan(self.local, self.mac, self.mtu)
                    .await
                    .map_err(|e| e.to_string())?;
                // The routing mesh brings clients' packets in over the device, whose
                // sources the node routes elsewhere: loose reverse-path filtering.
                if let Err(e) =
                    crate::netlink::sysctl(&format!("net.ipv4.conf.{DEVICE}.rp_filter"), "2")
                {
                    tracing::warn!("{e}: the routing mesh may drop clients' packets");
                }
                // IPv6 blocks are routed via the other nodes' link-local addresses on the
                // device, whose neighbour entries need IPv6 on it.
                if let Err(e) =
                    crate::netlink::sysctl(&format!("net.ipv6.conf.{DEVICE}.disable_ipv6"), "0")
                {
                    tracing::warn!("{e}: IPv6 overlay traffic cannot cross nodes");
                }
                i
            }
        };
        self.device = Some(idx);
        let want = desired(&self.me, &nodes, &blocks);
        let have = self.nl.vxlan_state(idx).await.map_err(|e| e.to_string())?;
        let p = plan(&have, &want);
        tracing::trace!(
            peers = want.fdb.len(),
            routes = want.routes.len(),
            "overlay mesh round"
        );
        if !p.is_empty() {
            tracing::debug!(requests = p.len(), "overlay mesh: applying a plan");
            self.nl
                .apply_overlay(idx, &p)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
