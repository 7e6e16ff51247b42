//! The daemon's key space in the store, and the writes each kind of record takes.
//!
//! ```text
//! /berth/networks/<id>          network record, its pools without allocations
//! /berth/containers/<id>        container record, its endpoints included
//! /berth/ipam/<network>/<ip>    → the container holding the address
//! ```
//!
//! An address is a key of its own, claimed with a compare on its absence: an attach writes
//! two small keys whatever the number of containers, and two claims of one address (two
//! operations here, or two nodes of a cluster) cannot both succeed, because the store refuses
//! the second transaction rather than the daemon remembering to check.

use std::net::IpAddr;

use berth_store::{Compare, Op, Txn};

use crate::model::{Container, Endpoint, Network};

pub(crate) const ROOT: &str = "/berth/";
pub(crate) const NETWORKS: &str = "/berth/networks/";
pub(crate) const CONTAINERS: &str = "/berth/containers/";
pub(crate) const IPAM: &str = "/berth/ipam/";

pub(crate) fn network(id: &str) -> String {
    format!("{NETWORKS}{id}")
}

pub(crate) fn container(id: &str) -> String {
    format!("{CONTAINERS}{id}")
}

pub(crate) fn address(net: &str, ip: IpAddr) -> String {
    format!("{IPAM}{net}/{ip}")
}

/// `(network id, address)` of an address key.
pub(crate) fn parse_address(key: &str) -> Option<(&str, IpAddr)> {
    let (net, ip) = key.strip_prefix(IPAM)?.split_once('/')?;
    Some((net, ip.parse().ok()?))
}

/// The writes of one operation: compares that must hold and the operations applied if they
/// do, committed as one transaction.
#[derive(Debug, Default)]
pub(crate) struct Writes {
    pub compares: Vec<Compare>,
    pub ops: Vec<Op>,
}

impl Writes {
    /// One container record put.
    pub(crate) fn container(c: &Container) -> Writes {
        let mut w = Writes::default();
        w.put_container(c);
        w
    }

    /// One network record put.
    pub(crate) fn network(n: &Network) -> Writes {
        let mut w = Writes::default();
        w.put_network(n);
        w
    }

    pub(crate) fn put_network(&mut self, n: &Network) -> &mut Self {
        self.ops.push(Op::put(
            network(&n.id),
            serde_json::to_vec(&crate::daemon::without_allocations(n)).expect("serializable"),
        ));
        self
    }

    pub(crate) fn delete_network(&mut self, id: &str) -> &mut Self {
        self.ops.push(Op::Delete(network(id)));
        self
    }

    pub(crate) fn put_container(&mut self, c: &Container) -> &mut Self {
        self.ops.push(Op::put(
            container(&c.id),
            serde_json::to_vec(c).expect("serializable"),
        ));
        self
    }

    pub(crate) fn delete_container(&mut self, id: &str) -> &mut Self {
        self.ops.push(Op::Delete(container(id)));
        self
    }

    /// The endpoint's addresses, each claimed only if nobody holds it.
    pub(crate) fn claim(&mut self, owner: &str, ep: &Endpoint) -> &mut Self {
        for ip in ep.ipv4.iter().chain(ep.ipv6.iter()) {
            let key = address(&ep.network_id, *ip);
            self.compares.push(Compare::Absent(key.clone()));
            self.ops.push(Op::put(key, owner.as_bytes().to_vec()));
        }
        self
    }

    pub(crate) fn release(&mut self, ep: &Endpoint) -> &mut Self {
        for ip in ep.ipv4.iter().chain(ep.ipv6.iter()) {
            self.ops.push(Op::Delete(address(&ep.network_id, *ip)));
        }
        self
    }

    pub(crate) fn into_txn(self) -> Txn {
        Txn::when(self.compares, self.ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_keys_round_trip() {
        for ip in ["10.1.2.3", "fd00::1", "::"] {
            let ip: IpAddr = ip.parse().unwrap();
            let k = address("abc", ip);
            assert_eq!(parse_address(&k), Some(("abc", ip)));
        }
        assert_eq!(parse_address("/berth/ipam/abc"), None);
        assert_eq!(parse_address("/berth/networks/abc/1.2.3.4"), None);
    }

    #[test]
    fn a_claim_compares_on_absence_of_every_address() {
        let ep = Endpoint {
            network_id: "n".into(),
            ipv4: Some("10.0.0.2".parse().unwrap()),
            ipv6: Some("fd00::2".parse().unwrap()),
            ..Default::default()
        };
        let mut w = Writes::default();
        w.claim("c1", &ep);
        assert_eq!(
            w.compares,
            vec![
                Compare::Absent("/berth/ipam/n/10.0.0.2".into()),
                Compare::Absent("/berth/ipam/n/fd00::2".into())
            ]
        );
        assert_eq!(w.ops.len(), 2);
        let mut r = Writes::default();
        r.release(&ep);
        assert!(r.compares.is_empty());
        assert_eq!(r.ops[0], Op::Delete("/berth/ipam/n/10.0.0.2".into()));
    }
}
