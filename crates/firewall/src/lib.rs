//! berth's firewall: one nftables table, `inet berth`, that nothing else shares.
//!
//! `table.rs` is the fixed skeleton, `rules.rs` builds batches from networks
//! (pure, testable without root), [`Nft`] applies them. The daemon rebuilds the
//! whole table at start ([`full_ruleset`]) and afterwards only adds and removes
//! set elements per network ([`add_network`], [`remove_network`]).

mod apply;
mod error;
mod lb;
mod policy;
mod rules;
mod table;

pub use apply::Nft;
pub use error::FirewallError;
pub use lb::{
    lb_delete, lb_table, mesh_mark, ret_table, Lb, Peer, BUCKETS, LB_TABLE, MESH_MARK, RET_DEVICE,
    RET_TABLE,
};
pub use policy::{policy_table_text, POLICY_TABLE};
pub use rules::{
    add_network, add_ports, delete_table, full_ruleset, remove_network, remove_ports,
    validate_bridge_name, NetworkRules, PortMapping,
};
pub use table::{
    MESH_DEVICE, PROXY_MARK, PROXY_SOCKET_MARK, RESOLVER_HOST_ADDR, RESOLVER_PORT, TABLE,
};

/// Re-exported so callers can name the batch types without their own dependency.
pub use nftables;
