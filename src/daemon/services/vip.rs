//! Virtual IPs: one address per service per network, from blocks of the network that no
//! node hands out (owned by `vip`), recorded as an endpoint that belongs to the cluster
//! (no node), so every node's resolver answers the service's name with it whatever node
//! dies. Each node balances connections to a VIP over the service's running tasks with
//! `table ip berth_lb` (`crates/firewall/src/lb.rs`), and holds the VIP on its loopback so
//! that the bridges answer ARP for it and a VIP without tasks refuses connections.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use berth_ipam::blocks;

use crate::cluster::{Cluster, EndpointRecord, View};
use crate::daemon::{Daemon, Error, Result};

/// The owner of the blocks VIPs come from.
const VIP_OWNER: &str = "vip";

impl Daemon {
    /// A VIP on each of `networks` for service `id`, with the records that claim them.
    pub(super) async fn pick_vips(
        &self,
        cluster: &Cluster,
        id: &str,
        name: &str,
        networks: &[String],
        aliases: &BTreeMap<String, Vec<String>>,
    ) -> Result<(BTreeMap<String, IpAddr>, Vec<EndpointRecord>)> {
        let mut vips = BTreeMap::new();
        let mut records = Vec::new();
        for net in networks {
            let pool = {
                let st = self.state.lock().await;
                let n = st
                    .networks
                    .get(net)
                    .ok_or_else(|| Error::NotFound(format!("network {net} not found")))?;
                n.pools
                    .iter()
                    .find(|p| p.subnet().addr().is_ipv4())
                    .map(berth_ipam::Pool::persistable)
                    .ok_or_else(|| {
                        Error::InvalidParameter("the network has no IPv4 subnet".into())
                    })?
            };
            let subnet = pool.subnet();
            let area = pool.config().ip_range.unwrap_or(subnet);
            let len = blocks::block_len(&area);
            let reserved: Vec<IpAddr> = std::iter::once(pool.gateway())
                .chain(pool.config().aux_addresses.values().copied())
                .collect();
            let mut ip = None;
            for _ in 0..4 {
                let view = cluster
                    .view()
                    .await
                    .map_err(|e| crate::cluster::overlay::needs_cluster("service create", &e))?;
                let held: BTreeSet<String> = view.endpoints.keys().cloned().collect();
                let free = |b: &ipnet::IpNet| {
                    blocks::usable(&subnet, b, &reserved)
                        .find(|a| !held.contains(&crate::cluster::overlay::endpoint_key(net, *a)))
                };
                if let Some(a) = view.blocks_of(net, VIP_OWNER).iter().find_map(free) {
                    ip = Some(a);
                    break;
                }
                let taken: BTreeSet<ipnet::IpNet> = view
                    .blocks
                    .iter()
                    .filter(|b| &b.network == net)
                    .map(|b| b.block)
                    .collect();
                // From the top of the range down, away from where nodes start.
                let count = blocks::block_count(&area, len);
                let block = blocks::free_block(&area, len, &taken, &reserved, count - 1)
                    .ok_or_else(|| {
                        Error::Unavailable(format!(
                            "no address block left for virtual IPs on network {net}"
                        ))
                    })?;
                cluster.claim_block_as(net, block, VIP_OWNER).await?;
            }
            let ip = ip.ok_or_else(|| {
                Error::Conflict("the virtual IP blocks kept changing; try again".into())
            })?;
            vips.insert(net.clone(), ip);
            records.push(EndpointRecord {
                network: net.clone(),
                container: format!("vip-{id}"),
                name: name.to_string(),
                aliases: aliases.get(net).cloned().unwrap_or_default(),
                node: String::new(),
                ipv4: Some(ip),
                ipv6: None,
                ports: vec![],
                labels: BTreeMap::new(),
            });
        }
        Ok((vips, records))
    }

    /// VIPs on `lo`: those wanted are there, other addresses of overlay subnets go.
    pub(super) async fn sync_vip_addresses(
        &self,
        view: &View,
        want: &BTreeMap<Ipv4Addr, Vec<Ipv4Addr>>,
    ) -> Result<()> {
        let lo = self
            .host
            .link_index("lo")
            .await?
            .ok_or_else(|| Error::Internal("no loopback link".into()))?;
        let have = self.host.host_addresses_v4(lo).await?;
        let ours = |a: &Ipv4Addr| {
            view.networks
                .iter()
                .flat_map(|n| n.pools.iter())
                .any(|p| p.subnet().contains(&IpAddr::V4(*a)))
        };
        for a in have.iter().filter(|a| ours(a) && !want.contains_key(a)) {
            self.host.del_address(lo, IpAddr::V4(*a), 32).await?;
        }
        for a in want.keys().filter(|a| !have.contains(a)) {
            self.host.add_address(lo, IpAddr::V4(*a), 32).await?;
        }
        Ok(())
    }
}
