//! The bridge driver: a Linux bridge per network with the gateway addresses on it, and a
//! veth per endpoint whose peer is created inside the sandbox.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use std::path::Path;
use std::sync::Mutex;

use futures::future::BoxFuture;

use super::{NetworkDriver, SandboxNs};
use crate::daemon::{Error, Result};
use crate::model::{Endpoint, Network};
use crate::netlink::{self, Netlink};

pub(crate) struct Bridge {
    host: Netlink,
    /// For veth deletions, which hold the kernel for tens of milliseconds (see
    /// `Netlink::current_on_own_thread`): they never delay a join.
    reaper: Netlink,
    /// Bridge name → ifindex. Bridges live as long as their network (the resync rebuilds
    /// them before any join), so one lookup per bridge suffices.
    index: Mutex<HashMap<String, u32>>,
}

impl Bridge {
    pub(crate) fn new(host: Netlink, reaper: Netlink) -> Bridge {
        Bridge {
            host,
            reaper,
            index: Default::default(),
        }
    }

    async fn bridge_index(&self, net: &Network, bridge: &str) -> Result<u32> {
        if let Some(i) = self.index.lock().expect("lock").get(bridge).copied() {
            return Ok(i);
        }
        let i = self.host.link_index(bridge).await?.ok_or_else(|| {
            Error::Internal(format!(
                "bridge {bridge} of network {} is missing: restart the daemon to rebuild it",
                net.name
            ))
        })?;
        self.index
            .lock()
            .expect("lock")
            .insert(bridge.to_string(), i);
        Ok(i)
    }

    pub(super) async fn ensure_bridge(&self, net: &Network) -> Result<()> {
        let Some(bridge) = net.bridge.as_deref() else {
            return Ok(());
        };
        let idx = match self.host.link_index(bridge).await? {
            Some(i) => {
                // Left from a crash or made by an older berth: today's settings.
                self.host
                    .adopt_bridge(bridge, netlink::bridge_mac(bridge))
                    .await?;
                i
            }
            None => self
                .host
                .create_bridge(bridge, net.mtu, &[])
                .await
                .map_err(|e| Error::Internal(format!("cannot create bridge {bridge}: {e}")))?,
        };
        self.index
            .lock()
            .expect("lock")
            .insert(bridge.to_string(), idx);
        if net.ipv6 {
            // The gateway must answer at once, not after duplicate address detection.
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{bridge}/accept_dad"), "0");
            netlink::sysctl("net.ipv6.conf.all.forwarding", "1")?;
        }
        for p in &net.pools {
            self.host
                .add_address(idx, p.gateway(), p.prefix_len())
                .await?;
        }
        self.host.set_up(idx).await?;
        Ok(())
    }

    pub(super) async fn join_bridge(
        &self,
        ns: SandboxNs<'_>,
        net: &Network,
        ep: &Endpoint,
        default_route: bool,
        routed_v6: bool,
    ) -> Result<()> {
        let bridge = net.bridge.as_deref().unwrap_or_default();
        let bidx = self.bridge_index(net, bridge).await?;
        if let Err(e) = self
            .host
            .add_veth_into(
                &ep.host_ifname,
                netlink::BridgePort {
                    bridge: bidx,
                    mtu: net.mtu,
                    isolated: !net.icc,
                },
                &ep.ifname,
                ns.fd,
                parse_mac(&ep.mac),
            )
            .await
        {
            if let netlink::NetError::BridgeFull = e {
                return Err(Error::Unavailable(format!(
                    "network {} has no room for another container: its bridge {bridge} already has 1023 ports, the most a Linux bridge takes; connect the container to another network",
                    net.name
                )));
            }
            // Perhaps the bridge was deleted behind our back: say so, and look it up again
            // next time.
            self.index.lock().expect("lock").remove(bridge);
            self.bridge_index(net, bridge).await?;
            return Err(e.into());
        }
        let inner = async {
            let nsnl = ns.nl;
            let idx = nsnl.link_index(&ep.ifname).await?.ok_or_else(|| {
                Error::Internal(format!("{} did not appear in the sandbox", ep.ifname))
            })?;
            if ep.ipv6.is_some() {
                use std::os::fd::AsRawFd;
                netlink::sysctl_in(
                    Path::new(&format!("/proc/self/fd/{}", ns.fd.as_raw_fd())),
                    format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", ep.ifname),
                    "0",
                )
                .await?;
            }
            // Pipelined: every request goes out at once and the kernel takes them in order
            // (addresses, up, then routes, whose gateways need both), one round trip in all.
            // An overlay's IPv6 subnet spans nodes, and the bridge cannot answer neighbour
            // solicitations for other nodes' addresses without an entry per address (proxy
            // NDP has no subnet-wide form, unlike proxy ARP): the sandbox routes the subnet
            // through the gateway instead of taking it as on-link.
            let v6_routes = match (routed_v6, ep.ipv6, ep.gateway6) {
                (true, Some(ip), Some(gw)) => {
                    let subnet = IpNet::new(ip, ep.ipv6_prefix)
                        .map_err(|e| Error::Internal(format!("{ip}/{}: {e}", ep.ipv6_prefix)))?
                        .trunc();
                    vec![(IpNet::from(gw), None), (subnet, Some(gw))]
                }
                _ => vec![],
            };
            let addrs = futures::future::try_join_all(
                [(ep.ipv4, ep.ipv4_prefix), (ep.ipv6, ep.ipv6_prefix)]
                    .into_iter()
                    .filter_map(|(ip, len)| {
                        ip.map(|ip| async move {
                            if ip.is_ipv6() && routed_v6 {
                                nsnl.add_address_unrouted(idx, ip, len).await
                            } else {
                                nsnl.add_address(idx, ip, len).await
                            }
                        })
                    }),
            );
            let gws: Vec<IpAddr> = if default_route && !net.internal {
                ep.gateway4
                    .iter()
                    .chain(ep.gateway6.iter())
                    .copied()
                    .collect()
            } else {
                vec![]
            };
            // The gateway's host route first: the routes after it go through it.
            let routes = futures::future::try_join_all(
                v6_routes
                    .into_iter()
                    .map(|(dst, gw)| futures::future::Either::Left(nsnl.add_route(dst, gw, idx)))
                    .chain(
                        gws.into_iter().map(|gw| {
                            futures::future::Either::Right(nsnl.add_default_route(gw, idx))
                        }),
                    ),
            );
            let (a, u, r) = tokio::join!(addrs, nsnl.set_up(idx), routes);
            a?;
            u?;
            r?;
            Ok::<_, Error>(())
        }
        .await;
        if inner.is_err() {
            let _ = self.host.delete_link_by_name(&ep.host_ifname).await;
        }
        inner
    }
}

impl NetworkDriver for Bridge {
    fn ensure<'a>(&'a self, net: &'a Network) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.ensure_bridge(net))
    }

    fn remove<'a>(&'a self, net: &'a Network) -> BoxFuture<'a, Vec<String>> {
        Box::pin(async move {
            let mut errs = Vec::new();
            if let Some(b) = &net.bridge {
                self.index.lock().expect("lock").remove(b);
                if let Err(e) = self.host.delete_link_by_name(b).await {
                    errs.push(e.to_string());
                }
            }
            errs
        })
    }

    fn join<'a>(
        &'a self,
        ns: SandboxNs<'a>,
        net: &'a Network,
        ep: &'a Endpoint,
        default_route: bool,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.join_bridge(ns, net, ep, default_route, false))
    }

    fn leave<'a>(&'a self, ep: &'a Endpoint) -> BoxFuture<'a, Result<()>> {
        // Deleting the host end deletes the peer in the sandbox.
        Box::pin(async move { Ok(self.reaper.delete_link_by_name(&ep.host_ifname).await?) })
    }
}

/// `02:42:…` as bytes (an unparsable part is 0: the MAC was written by berth).
fn parse_mac(s: &str) -> [u8; 6] {
    let mut m = [0u8; 6];
    for (i, p) in s.split(':').take(6).enumerate() {
        m[i] = u8::from_str_radix(p, 16).unwrap_or(0);
    }
    m
}

#[cfg(test)]
mod tests {
    #[test]
    fn macs_as_berth_writes_them() {
        assert_eq!(
            super::parse_mac("02:42:0a:01:00:02"),
            [2, 0x42, 10, 1, 0, 2]
        );
    }
}
