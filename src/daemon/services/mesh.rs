//! Each node's load balancing, in one nft transaction per change (`table ip berth_lb` and
//! `table netdev berth_ret`, `crates/firewall/src/lb.rs`): the VIPs over the running tasks,
//! the ports published in ingress mode (the routing mesh) over the running tasks wherever
//! they run, and the return path of the mesh's connections to this node's tasks.
//!
//! A backend that leaves the maps while its container still runs (a drain, a scale-down,
//! an update: its task went, its container goes `agent::DRAIN` later) keeps its flows to
//! finish them; once its endpoint is gone or its node is Down, the flows towards it are
//! deleted from conntrack, so they do not hang on a dead task (moby#26060): the client's
//! next packet is a new flow, to a live task (which resets it) or to nothing here.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};

use berth_firewall::{mesh_mark, Lb, Peer, MESH_MARK};

use crate::cluster::View;
use crate::daemon::Daemon;

/// The policy routing table of the mesh's replies (berth's proxy has 177).
const RET_ROUTE_TABLE: u32 = 178;

/// What the node last programmed.
#[derive(Debug, Default)]
pub(crate) struct LbState {
    applied: Option<Lb>,
    /// The return path's device and rules are in place.
    ret: bool,
    /// Backends out of the maps whose containers still run.
    draining: BTreeSet<Ipv4Addr>,
}

/// Whether a container on a Ready node holds `a`.
fn alive(view: &View, a: Ipv4Addr) -> bool {
    view.endpoint_records()
        .any(|e| e.ipv4 == Some(IpAddr::V4(a)) && !e.node.is_empty() && view.ready(&e.node))
}

/// The table `view` asks of node `me`.
pub(crate) fn desired(view: &View, me: &str) -> Lb {
    // Each endpoint's address by (container, network), once per round.
    let addr: HashMap<(&str, &str), Ipv4Addr> = view
        .endpoint_records()
        .filter_map(|e| match e.ipv4 {
            Some(IpAddr::V4(a)) => Some(((e.container.as_str(), e.network.as_str()), a)),
            _ => None,
        })
        .collect();
    let mut lb = Lb::default();
    for s in &view.services.services {
        // Running tasks of Ready nodes: a task of a Down node leaves every node's maps
        // with its node's lease.
        // In a start-first update, a task that does not run yet stands for the one it
        // replaces, which serves until then.
        let up = |t: &crate::cluster::services::TaskRecord| super::task_up(view, t);
        let running: Vec<&str> = view
            .services
            .tasks_of(&s.record.id)
            .filter_map(|t| match &t.replacing {
                Some(o) if !up(t) && up(o) => Some(&**o),
                _ => up(t).then_some(t),
            })
            .filter_map(|t| view.services.states.get(&t.id))
            .map(|st| st.container.as_str())
            .collect();
        let on = |net: &str| -> Vec<Ipv4Addr> {
            let mut v: Vec<Ipv4Addr> = running
                .iter()
                .filter_map(|c| addr.get(&(*c, net)).copied())
                .collect();
            v.sort();
            v
        };
        for (net, vip) in &s.record.vips {
            if let IpAddr::V4(vip) = vip {
                lb.vips.insert(*vip, on(net));
            }
        }
        // The mesh reaches a task on the service's first network.
        let Some(first) = s.record.spec.networks.first() else {
            continue;
        };
        let backends = on(first);
        // Every task container of the service, whatever its state: an ingress node that
        // has not seen a task leave may still send it a flow, which must not be dropped.
        let containers: Vec<Ipv4Addr> = view
            .endpoint_records()
            .filter(|e| &e.network == first)
            .filter(|e| e.labels.get(super::SERVICE_LABEL) == Some(&s.record.spec.name))
            .filter_map(|e| match e.ipv4 {
                Some(IpAddr::V4(a)) => Some(a),
                _ => None,
            })
            .collect();
        for p in s.record.spec.ports.iter().filter(|p| p.mode == "ingress") {
            if p.protocol != "tcp" && p.protocol != "udp" {
                continue;
            }
            lb.ingress.insert(
                (p.protocol.clone(), p.published),
                backends.iter().map(|a| (*a, p.target)).collect(),
            );
            lb.targets.extend(
                containers
                    .iter()
                    .map(|a| (*a, p.protocol.clone(), p.target)),
            );
        }
    }
    lb.peers = view
        .nodes
        .iter()
        .filter(|n| n.record.id != me && n.record.index != 0)
        .filter_map(|n| match n.record.addr {
            IpAddr::V4(a) => Some(Peer {
                mac: berth_overlay::device_mac(&n.record.id).0,
                mark: mesh_mark(n.record.index),
                addr: a,
            }),
            IpAddr::V6(_) => None,
        })
        .collect();
    lb.peers.sort();
    lb.overlays = view
        .networks
        .iter()
        .flat_map(|n| n.pools.iter())
        .filter_map(|p| match p.subnet() {
            ipnet::IpNet::V4(n) => Some(n),
            ipnet::IpNet::V6(_) => None,
        })
        .collect();
    lb.overlays.sort();
    lb
}

/// Every backend address of `lb`.
fn backends(lb: &Lb) -> BTreeSet<Ipv4Addr> {
    lb.vips
        .values()
        .flatten()
        .copied()
        .chain(lb.ingress.values().flatten().map(|(a, _)| *a))
        .collect()
}

impl Daemon {
    /// The load-balancing tables and the loopback's VIPs in line with `view`.
    pub(crate) async fn lb_round(&self, view: &View) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let want = desired(view, &cluster.id);
        let mut st = self.lb_state.lock().await;
        if st.applied.as_ref() == Some(&want) {
            if !st.draining.is_empty() {
                self.flush_dead(&mut st, view, &want).await;
            }
            return;
        }
        if !st.ret {
            let mtu = cluster
                .underlay_mtu()
                .saturating_sub(berth_overlay::OVERHEAD);
            match self
                .host
                .ensure_return_path(mtu, MESH_MARK, RET_ROUTE_TABLE)
                .await
            {
                Ok(()) => st.ret = true,
                Err(e) => tracing::warn!(
                    "the routing mesh's return path: {e}; tasks here answer only clients of this node"
                ),
            }
        }
        let mut text = berth_firewall::lb_table(&want);
        // The return path forwards onto the VXLAN device, which the mesh's round makes.
        let mesh_up = matches!(
            self.host.link_index(berth_firewall::MESH_DEVICE).await,
            Ok(Some(_))
        );
        if st.ret && mesh_up {
            text.push_str(&berth_firewall::ret_table(&want.peers));
        }
        if let Err(e) = self.nft.apply_text(&text) {
            tracing::warn!("programming the services' load balancing: {e}");
            return;
        }
        if let Err(e) = self.sync_vip_addresses(view, &want.vips).await {
            tracing::warn!("the virtual IPs on the loopback: {e}");
            return;
        }
        if let Some(old) = &st.applied {
            let left: Vec<Ipv4Addr> = backends(old)
                .difference(&backends(&want))
                .copied()
                .collect();
            st.draining.extend(left);
        }
        self.flush_dead(&mut st, view, &want).await;
        tracing::debug!(
            vips = want.vips.len(),
            ingress = want.ingress.len(),
            "load balancing programmed"
        );
        st.applied = Some(want);
    }

    /// Deletes the flows towards the draining backends that died (or came back: those
    /// just stop draining).
    async fn flush_dead(&self, st: &mut LbState, view: &View, want: &Lb) {
        let now = backends(want);
        st.draining.retain(|a| !now.contains(a));
        let dead: BTreeSet<Ipv4Addr> = st
            .draining
            .iter()
            .copied()
            .filter(|a| !alive(view, *a))
            .collect();
        if dead.is_empty() {
            return;
        }
        st.draining.retain(|a| !dead.contains(a));
        let d = dead.clone();
        match tokio::task::spawn_blocking(move || crate::netlink::conntrack::flush_towards(&d))
            .await
        {
            Ok(Ok(n)) => {
                tracing::debug!(backends = ?dead, flows = n, "flows of dead backends deleted")
            }
            Ok(Err(e)) => tracing::warn!("deleting the flows of dead backends: {e}"),
            Err(e) => tracing::warn!("deleting the flows of dead backends: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gone_backends_are_the_difference() {
        let a: Ipv4Addr = "10.0.0.5".parse().unwrap();
        let b: Ipv4Addr = "10.0.0.6".parse().unwrap();
        let mut old = Lb::default();
        old.vips.insert("10.0.0.250".parse().unwrap(), vec![a, b]);
        old.ingress.insert(("tcp".into(), 8080), vec![(a, 80)]);
        let mut new = old.clone();
        new.vips.insert("10.0.0.250".parse().unwrap(), vec![b]);
        assert_eq!(
            backends(&old).difference(&backends(&new)).count(),
            0,
            "a is still an ingress backend"
        );
        new.ingress.clear();
        let gone: Vec<_> = backends(&old)
            .difference(&backends(&new))
            .copied()
            .collect();
        assert_eq!(gone, vec![a]);
    }
}
