//! The node mesh: this node's VXLAN device, with an FDB and a neighbour entry for every
//! other Ready node (and, with overlay networks, a route per remote address block), kept
//! in line with etcd. Level-triggered: each round lists the kernel, plans against what the
//! cluster wants (`crates/overlay`) and carries the plan out, so entries a crash or another
//! daemon left go, and missing ones come (flannel#2554). A burst of etcd events costs one
//! round. When etcd cannot be read, the kernel keeps what it has: a node that loses etcd
//! keeps its data path (flannel#636).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use berth_overlay::{desired, device_mac, plan, Node, OVERHEAD};

use super::Cluster;
use crate::netlink::Netlink;

/// A full round even without events: what another program changed on the device is put
/// right within this.
const RESYNC: Duration = Duration::from_secs(30);
/// Events arriving this close together are one round.
const BATCH: Duration = Duration::from_millis(20);

/// The MTU of the link that holds `addr` (1500 if it cannot be read).
fn underlay_mtu(addr: IpAddr) -> u32 {
    super::interface_addresses()
        .into_iter()
        .find(|(_, ip)| *ip == addr)
        .and_then(|(n, _)| std::fs::read_to_string(format!("/sys/class/net/{n}/mtu")).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1500)
}

impl Cluster {
    /// Starts keeping the mesh; `nl` is the daemon's own namespace.
    pub fn start_mesh(self: &Arc<Self>, nl: Netlink) {
        let IpAddr::V4(local) = self.addr else {
            tracing::warn!(addr = %self.addr, "an IPv6 underlay is not supported yet: no overlay data path");
            return;
        };
        let c = self.clone();
        tokio::spawn(async move {
            let mac = device_mac(&c.id);
            let mtu = underlay_mtu(c.addr).saturating_sub(OVERHEAD);
            let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
            c.clone().follow(tx);
            // The device's index once it was made as wanted; checked again after a failed
            // round and at every resync, not on every event.
            let mut device = None;
            loop {
                if let Err(e) = c.mesh_round(&nl, local, mac, mtu, &mut device).await {
                    tracing::warn!("programming the overlay mesh: {e}; trying again");
                    device = None;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                // The next round: an event (and whatever follows it closely), or the resync.
                if tokio::time::timeout(RESYNC, rx.recv()).await.is_ok() {
                    tokio::time::sleep(BATCH).await;
                    while rx.try_recv().is_ok() {}
                } else {
                    device = None;
                }
            }
        });
    }

    /// Wakes the mesh on every change of the cluster's nodes; watches again (from the last
    /// revision seen) when the watch ends, as after an etcd restart.
    fn follow(self: Arc<Self>, tx: tokio::sync::mpsc::Sender<()>) {
        tokio::spawn(async move {
            let mut from = 0;
            loop {
                match self.store.watch("/berth/cluster/", from).await {
                    Ok(mut w) => {
                        while let Some(e) = w.recv().await {
                            from = e.revision() + 1;
                            let _ = tx.try_send(());
                        }
                    }
                    Err(e) => tracing::debug!("watching the cluster: {e}"),
                }
                // Whatever happened meanwhile is covered by a full round.
                let _ = tx.try_send(());
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }

    async fn mesh_round(
        &self,
        nl: &Netlink,
        local: std::net::Ipv4Addr,
        mac: berth_overlay::Mac,
        mtu: u32,
        device: &mut Option<u32>,
    ) -> Result<(), String> {
        // etcd first: if it cannot be read, nothing in the kernel changes.
        let nodes: Vec<Node> = self
            .nodes()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|n| Node {
                id: n.record.id,
                underlay: n.record.addr,
                ready: n.ready,
            })
            .collect();
        let idx = match *device {
            Some(i) => i,
            None => nl
                .ensure_vxlan(local, mac, mtu)
                .await
                .map_err(|e| e.to_string())?,
        };
        *device = Some(idx);
        let want = desired(&self.id, &nodes, &[]);
        let have = nl.vxlan_state(idx).await.map_err(|e| e.to_string())?;
        let p = plan(&have, &want);
        tracing::trace!(node = %self.name, peers = want.fdb.len(), "overlay mesh round");
        if !p.is_empty() {
            tracing::debug!(node = %self.name, requests = p.len(), "overlay mesh: applying a plan");
            nl.apply_overlay(idx, &p).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
