//! Network drivers: what a network is in the kernel. The daemon's operations validate, plan
//! and record; a driver carries out. `ensure` is one call for `network create` and for the
//! start-up resync, so a bridge is set up by one piece of code whether it is new, left from
//! a crash or made by an older berth. `host` and `null` have nothing in the kernel; an
//! `overlay` network is a bridge per node, made with its first endpoint there, on the
//! node's VXLAN mesh (`crate::cluster`).

mod bridge;
mod overlay;

use std::os::fd::OwnedFd;

use futures::future::BoxFuture;

pub(crate) use bridge::Bridge;
pub(crate) use overlay::Overlay;

use super::{Error, Result};
use crate::model::{Driver, Endpoint, Network};
use crate::netlink::Netlink;

/// A sandbox's network namespace: its descriptor (to create links in) and a netlink socket
/// inside it (to address them).
#[derive(Clone, Copy)]
pub(crate) struct SandboxNs<'a> {
    pub fd: &'a OwnedFd,
    pub nl: &'a Netlink,
}

pub(crate) trait NetworkDriver: Send + Sync {
    /// The network's kernel objects exist and are as recorded (idempotent).
    fn ensure<'a>(&'a self, net: &'a Network) -> BoxFuture<'a, Result<()>>;
    /// The network's kernel objects are gone (best effort: every step is tried).
    fn remove<'a>(&'a self, net: &'a Network) -> BoxFuture<'a, Vec<String>>;
    /// The endpoint's link in the sandbox, addressed and up, with the default route when
    /// `default_route`; all or nothing.
    fn join<'a>(
        &'a self,
        ns: SandboxNs<'a>,
        net: &'a Network,
        ep: &'a Endpoint,
        default_route: bool,
    ) -> BoxFuture<'a, Result<()>>;
    /// The endpoint's link is gone.
    fn leave<'a>(&'a self, ep: &'a Endpoint) -> BoxFuture<'a, Result<()>>;
}

/// `host` and `null`: the sandbox keeps the host's namespace or has only `lo`.
pub(crate) struct Plain;

impl NetworkDriver for Plain {
    fn ensure<'a>(&'a self, _net: &'a Network) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn remove<'a>(&'a self, _net: &'a Network) -> BoxFuture<'a, Vec<String>> {
        Box::pin(async { vec![] })
    }

    fn join<'a>(
        &'a self,
        _ns: SandboxNs<'a>,
        net: &'a Network,
        _ep: &'a Endpoint,
        _default_route: bool,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            Err(Error::InvalidParameter(format!(
                "network {} ({}) has no endpoints to join",
                net.name,
                net.driver.as_str()
            )))
        })
    }

    fn leave<'a>(&'a self, _ep: &'a Endpoint) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// The daemon's drivers, by the driver a network names.
pub(crate) struct Drivers {
    bridge: Bridge,
    pub(crate) overlay: Overlay,
    plain: Plain,
}

impl Drivers {
    pub(super) fn new(host: Netlink, reaper: Netlink) -> Drivers {
        Drivers {
            bridge: Bridge::new(host.clone(), reaper.clone()),
            overlay: Overlay::new(host, reaper),
            plain: Plain,
        }
    }

    pub(super) fn of(&self, d: Driver) -> &dyn NetworkDriver {
        match d {
            Driver::Bridge => &self.bridge,
            Driver::Overlay => &self.overlay,
            Driver::Host | Driver::Null => &self.plain,
        }
    }
}
