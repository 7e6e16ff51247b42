//! Pure generation of berth's nftables batches (no I/O).
//!
//! Per-network state lives only in set elements: the rules never mention a
//! network, so adding the 1000th network is as cheap as the first and a
//! packet costs a constant number of set lookups however many networks exist.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use nftables::batch::Batch;
use nftables::expr::Expression;
use nftables::schema::{NfListObject, Nftables};

use crate::table::{
    add_chains, addr_map, concat, elements, ifname, port_map, prefix, sets, table, MAP_PORTS4,
    MAP_PORTS4_ANY, MAP_PORTS6, MAP_PORTS6_ANY, SET_BRIDGES, SET_HAIRPIN4, SET_HAIRPIN6, SET_ICC,
    SET_INTERNAL, SET_LOOPBACK4, SET_MASQ4, SET_MASQ6,
};
use crate::FirewallError;

/// What berth's firewall needs to know about one bridge network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRules {
    /// Interface name, validated: 1..=15 chars of `[A-Za-z0-9_.-]`.
    pub bridge: String,
    /// IPv4 and/or IPv6 subnets.
    pub subnets: Vec<IpNet>,
    pub internal: bool,
    /// Ignored (no NAT) when `internal`.
    pub masquerade: bool,
    /// Inter-container connectivity on this network (Docker's default: true).
    pub icc: bool,
}

impl NetworkRules {
    pub fn validate(&self) -> Result<(), FirewallError> {
        validate_bridge_name(&self.bridge)
    }

    fn masquerades(&self) -> bool {
        self.masquerade && !self.internal
    }

    /// Host bits cleared and overlaps merged: nft rejects both in interval sets.
    /// Deterministic, so removal computes exactly the elements addition did.
    fn normalized_subnets(&self) -> Vec<IpNet> {
        IpNet::aggregate(&self.subnets)
    }
}

/// One published port as the kernel path sees it: traffic to `host_ip:host_port` (any
/// local address when unspecified) goes to `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortMapping {
    pub proto: berth_ports::Proto,
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub target: SocketAddr,
}

impl PortMapping {
    /// Where this mapping lives in the table. A loopback binding is served by the daemon's
    /// proxy and only guarded here; a binding whose target is of the other family (an IPv6
    /// host address to an IPv4-only container) is left to the proxy as well.
    fn elements(&self, e: &mut Elements) {
        let proto = Expression::String(self.proto.as_str().into());
        let port = Expression::Number(self.host_port.into());
        let to_addr = Expression::String(self.target.ip().to_string().into());
        let to_port = Expression::Number(self.target.port().into());
        let addr = Expression::String(self.host_ip.to_string().into());
        match (self.host_ip, self.target.ip()) {
            (IpAddr::V4(h), _) if h.is_loopback() => {
                e.push(SET_LOOPBACK4, concat(vec![addr, proto, port]));
            }
            (IpAddr::V6(h), _) if h.is_loopback() => {}
            (IpAddr::V4(_), IpAddr::V6(_)) | (IpAddr::V6(_), IpAddr::V4(_)) => {}
            (h, _) => {
                let (base, key) = match h {
                    IpAddr::V4(h) if h.is_unspecified() => {
                        (MAP_PORTS4_ANY, concat(vec![proto, port]))
                    }
                    IpAddr::V6(h) if h.is_unspecified() => {
                        (MAP_PORTS6_ANY, concat(vec![proto, port]))
                    }
                    IpAddr::V4(_) => (MAP_PORTS4, concat(vec![addr, proto, port])),
                    IpAddr::V6(_) => (MAP_PORTS6, concat(vec![addr, proto, port])),
                };
                e.push(addr_map(base), pair(key.clone(), to_addr));
                e.push(port_map(base), pair(key, to_port));
            }
        }
    }

    /// Whether the kernel path serves this mapping (otherwise only the proxy does).
    pub fn in_kernel(&self) -> bool {
        !self.host_ip.is_loopback() && self.host_ip.is_ipv4() == self.target.is_ipv4()
    }

    /// Whether this mapping puts anything in the table: a DNAT when the kernel serves it,
    /// the guard when it is on an IPv4 loopback address (IPv6 never routes `::1` from a
    /// link, so it needs none).
    pub fn has_kernel_state(&self) -> bool {
        self.in_kernel() || matches!(self.host_ip, IpAddr::V4(h) if h.is_loopback())
    }
}

fn pair(key: Expression<'static>, value: Expression<'static>) -> Expression<'static> {
    Expression::List(vec![key, value])
}

/// Adds a container's published ports: one batch, however many (`-p 9000-9999:...` is one
/// `nft` run with one element command per map).
pub fn add_ports(ports: &[PortMapping]) -> Nftables<'static> {
    let mut e = Elements::default();
    for p in ports {
        p.elements(&mut e);
    }
    let mut batch = Batch::new();
    e.push_into(&mut batch, Batch::add);
    batch.to_nftables()
}

/// Removes published ports; never fails because one is already gone (add, then delete, in
/// one transaction). Elements of the maps are keyed without their value, so the add cannot
/// clash with a different target.
pub fn remove_ports(ports: &[PortMapping]) -> Nftables<'static> {
    let mut e = Elements::default();
    for p in ports {
        p.elements(&mut e);
    }
    let mut batch = Batch::new();
    batch.add(table());
    for set in sets() {
        batch.add(set);
    }
    e.push_into(&mut batch, Batch::add);
    e.push_into(&mut batch, Batch::delete);
    batch.to_nftables()
}

/// Linux's own limits (IFNAMSIZ, no "." / "..") plus a conservative charset,
/// so a name can never smuggle syntax into nft or a shell.
pub fn validate_bridge_name(name: &str) -> Result<(), FirewallError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > 15 {
        "it is longer than 15 characters (the kernel's limit)"
    } else if name == "." || name == ".." {
        "the kernel does not allow it"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        "only letters, digits, '_', '.' and '-' are allowed"
    } else {
        return Ok(());
    };
    Err(FirewallError::InvalidBridgeName {
        name: name.to_string(),
        reason,
    })
}

/// The whole table in one atomic batch: `add table` (so the `delete` cannot fail),
/// `delete table`, then everything anew. There is never a moment without rules,
/// and leftovers from an older berth are gone.
pub fn full_ruleset(
    networks: &[NetworkRules],
    ports: &[PortMapping],
) -> Result<Nftables<'static>, FirewallError> {
    check_consistent(networks)?;
    let mut batch = Batch::new();
    batch.add(table());
    batch.delete(table());
    batch.add(table());
    for set in sets() {
        batch.add(set);
    }
    add_chains(&mut batch);
    let mut all = Elements::default();
    for n in networks {
        all.extend(Elements::of(n));
    }
    for p in ports {
        p.elements(&mut all);
    }
    all.push_into(&mut batch, Batch::add);
    Ok(batch.to_nftables())
}

/// Adds one network's elements. Fails (nft: "No such file or directory") if the
/// table is missing, because elements without rules would silently not isolate.
pub fn add_network(n: &NetworkRules) -> Result<Nftables<'static>, FirewallError> {
    n.validate()?;
    let mut batch = Batch::new();
    Elements::of(n).push_into(&mut batch, Batch::add);
    Ok(batch.to_nftables())
}

/// Removes everything one network could have put in the sets and never fails
/// because something is already gone: nft 1.0.6 has no `destroy`, so each
/// element is added then deleted in the same transaction, and the table and
/// sets are declared with `add` (a no-op when they exist; if the whole table
/// was missing, an empty table with empty sets and no chains remains, which
/// affects no traffic). `internal`/`masquerade`/`icc` are ignored so stale
/// flags can never leave elements behind.
pub fn remove_network(n: &NetworkRules) -> Result<Nftables<'static>, FirewallError> {
    n.validate()?;
    let owned = Elements::everything_of(n);
    let mut batch = Batch::new();
    batch.add(table());
    for set in sets() {
        batch.add(set);
    }
    owned.push_into(&mut batch, Batch::add);
    owned.push_into(&mut batch, Batch::delete);
    Ok(batch.to_nftables())
}

/// Deletes the table if present (`add` first so a missing table is not an error).
pub fn delete_table() -> Nftables<'static> {
    let mut batch = Batch::new();
    batch.add(table());
    batch.delete(table());
    batch.to_nftables()
}

/// Turns what would be an anonymous nft failure of the whole start-up batch
/// into an error naming the networks involved.
fn check_consistent(networks: &[NetworkRules]) -> Result<(), FirewallError> {
    let mut bridges = HashSet::new();
    let mut masq: Vec<(IpNet, &str)> = Vec::new();
    for n in networks {
        n.validate()?;
        if !bridges.insert(n.bridge.as_str()) {
            return Err(FirewallError::DuplicateBridge {
                bridge: n.bridge.clone(),
            });
        }
        if n.masquerades() {
            let bridge = n.bridge.as_str();
            masq.extend(n.normalized_subnets().into_iter().map(|s| (s, bridge)));
        }
    }
    // Prefixes either nest or are disjoint, so once sorted any overlap shows
    // up between neighbours.
    masq.sort();
    for pair in masq.windows(2) {
        let ((first, first_bridge), (second, second_bridge)) = (pair[0], pair[1]);
        if first.contains(&second.network()) {
            return Err(FirewallError::OverlappingSubnets {
                first,
                first_bridge: first_bridge.to_string(),
                second,
                second_bridge: second_bridge.to_string(),
            });
        }
    }
    Ok(())
}

/// Set name -> elements, in a fixed order so batches are reproducible.
#[derive(Default)]
struct Elements(BTreeMap<&'static str, Vec<Expression<'static>>>);

impl Elements {
    fn of(n: &NetworkRules) -> Elements {
        let mut e = Elements::default();
        e.push(SET_BRIDGES, ifname(&n.bridge));
        e.push_hairpin(&n.bridge, &n.normalized_subnets());
        if n.internal {
            e.push(SET_INTERNAL, ifname(&n.bridge));
        }
        if n.icc {
            e.push(SET_ICC, concat(vec![ifname(&n.bridge), ifname(&n.bridge)]));
        }
        if n.masquerades() {
            e.push_subnets(&n.normalized_subnets());
        }
        e
    }

    fn everything_of(n: &NetworkRules) -> Elements {
        let mut e = Elements::default();
        e.push(SET_BRIDGES, ifname(&n.bridge));
        e.push_hairpin(&n.bridge, &n.normalized_subnets());
        e.push(SET_INTERNAL, ifname(&n.bridge));
        e.push(SET_ICC, concat(vec![ifname(&n.bridge), ifname(&n.bridge)]));
        e.push_subnets(&n.normalized_subnets());
        e
    }

    fn push(&mut self, set: &'static str, elem: Expression<'static>) {
        self.0.entry(set).or_default().push(elem);
    }

    fn push_hairpin(&mut self, bridge: &str, subnets: &[IpNet]) {
        for s in subnets {
            let set = match s {
                IpNet::V4(_) => SET_HAIRPIN4,
                IpNet::V6(_) => SET_HAIRPIN6,
            };
            self.push(set, concat(vec![ifname(bridge), prefix(s)]));
        }
    }

    fn push_subnets(&mut self, subnets: &[IpNet]) {
        for s in subnets {
            let set = match s {
                IpNet::V4(_) => SET_MASQ4,
                IpNet::V6(_) => SET_MASQ6,
            };
            self.push(set, prefix(s));
        }
    }

    fn extend(&mut self, other: Elements) {
        for (set, elems) in other.0 {
            self.0.entry(set).or_default().extend(elems);
        }
    }

    fn push_into(
        &self,
        batch: &mut Batch<'static>,
        cmd: fn(&mut Batch<'static>, NfListObject<'static>),
    ) {
        for (set, elems) in &self.0 {
            cmd(batch, elements(set, elems.clone()));
        }
    }
}
