//! berth: container networking the way Docker users know it — bridge, none, host and
//! `container:` networks, IPAM, sandboxes for host programs, and a Docker-compatible API.

pub mod api;
pub mod cli;
pub mod cluster;
pub mod daemon;
pub mod dns;
pub mod failpoint;
pub mod logs;
pub mod metrics;
pub mod model;
pub mod netlink;
pub mod proxy;
pub mod sandbox;
pub mod shim;
pub mod validate;

pub use berth_dns as dnsindex;
pub use berth_firewall as firewall;
pub use berth_ipam as ipam;
