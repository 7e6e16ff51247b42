//! The overlay driver on one node: the network's bridge carries the gateway address (the
//! same on every node) and answers ARP for addresses of other nodes' blocks (proxy ARP,
//! at once: the default `proxy_delay` holds answers back up to 0.8 s), which the node
//! routes onto the VXLAN mesh. The bridge exists while the node has an endpoint on the
//! network: [`Overlay::bridge_up`] with the first, [`Overlay::bridge_down`] after the last,
//! so a node's kernel state follows the networks it uses, not every network of the cluster.
//! IPv6 has no subnet-wide proxy NDP, so a sandbox routes an overlay's IPv6 subnet through
//! the gateway (its address without the on-link prefix route); the bridge routes it on to
//! a local sandbox or onto the mesh.

use futures::future::BoxFuture;

use super::{Bridge, NetworkDriver, SandboxNs};
use crate::daemon::Result;
use crate::model::{Endpoint, Network};
use crate::netlink::{self, Netlink};

pub(crate) struct Overlay {
    bridge: Bridge,
    host: Netlink,
}

impl Overlay {
    pub(super) fn new(host: Netlink, reaper: Netlink) -> Overlay {
        Overlay {
            bridge: Bridge::new(host.clone(), reaper),
            host,
        }
    }

    /// Whether the network's bridge exists on this node.
    pub(crate) async fn is_up(&self, net: &Network) -> Result<bool> {
        let Some(b) = net.bridge.as_deref() else {
            return Ok(false);
        };
        Ok(self.host.link_index(b).await?.is_some())
    }

    /// The bridge, addressed, answering ARP for the rest of the subnet; idempotent.
    pub(crate) async fn bridge_up(&self, net: &Network) -> Result<()> {
        self.bridge.ensure_bridge(net).await?;
        let Some(b) = net.bridge.as_deref() else {
            return Ok(());
        };
        netlink::sysctl(&format!("net.ipv4.conf.{b}.proxy_arp"), "1")?;
        netlink::sysctl(&format!("net.ipv4.neigh.{b}.proxy_delay"), "0")?;
        Ok(())
    }

    pub(crate) async fn bridge_down(&self, net: &Network) -> Vec<String> {
        self.bridge.remove(net).await
    }
}

impl NetworkDriver for Overlay {
    /// Nothing at `network create` or start-up: the bridge comes with the first endpoint.
    fn ensure<'a>(&'a self, _net: &'a Network) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn remove<'a>(&'a self, net: &'a Network) -> BoxFuture<'a, Vec<String>> {
        Box::pin(self.bridge_down(net))
    }

    fn join<'a>(
        &'a self,
        ns: SandboxNs<'a>,
        net: &'a Network,
        ep: &'a Endpoint,
        default_route: bool,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.bridge.join_bridge(ns, net, ep, default_route, true))
    }

    fn leave<'a>(&'a self, ep: &'a Endpoint) -> BoxFuture<'a, Result<()>> {
        self.bridge.leave(ep)
    }
}
