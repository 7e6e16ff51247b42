//! The routed VXLAN layout of berth's overlay networks, as flannel's `vxlan` backend lays
//! it out and `../shared/reference/cluster.md` (E1) recommends: one VXLAN device per node
//! (learning off, UDP 4789 on the advertise address), and for every *other* Ready node one
//! static FDB entry (its device's MAC → its underlay address), one permanent neighbour entry
//! (its underlay address → that MAC, on the VXLAN device) and one route per address block it
//! owns (`BLOCK via UNDERLAY dev VXLAN onlink`). IPv6 blocks ride the same IPv4 underlay:
//! the kernel takes no IPv4 gateway for an IPv6 route, so each node's device also has a
//! link-local address derived from its MAC ([`link_local`]), every other node a permanent
//! IPv6 neighbour entry for it, and an IPv6 block is routed `via fe80::… dev VXLAN`. Kernel
//! state grows with nodes and blocks, never with containers; nothing floods, nothing is
//! learnt.
//!
//! [`desired`] is what the kernel should hold for a view of the cluster; [`plan`] is how to
//! get there from what the kernel holds now (listed at start, so entries a crash left behind
//! go and missing ones come: level-triggered, flannel#2554's lesson). Both are pure.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;

/// The VXLAN device's name on every node.
pub const DEVICE: &str = "berth-vx";
/// The IANA VXLAN port.
pub const PORT: u16 = 4789;
/// One VNI for all of berth's overlay networks: the layout is routed, so networks are told
/// apart by their subnets, and isolation between them is in berth's nftables table.
pub const VNI: u32 = 4096;
/// VXLAN over IPv4 costs 50 bytes of the underlay's MTU (outer IP 20, UDP 8, VXLAN 8, inner
/// Ethernet 14).
pub const OVERHEAD: u32 = 50;

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// A node's VXLAN device MAC, derived from its id: every node computes every other's
/// without asking. Locally administered, unicast (`02:b7:…`), 32 bits of an FNV-1a hash.
pub fn device_mac(node_id: &str) -> Mac {
    let mut h: u32 = 0x811c_9dc5;
    for b in node_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let b = h.to_be_bytes();
    Mac([0x02, 0xb7, b[0], b[1], b[2], b[3]])
}

/// The link-local address a node's device answers to: EUI-64 of its MAC (RFC 4291,
/// the universal/local bit flipped), which the kernel also gives the device itself.
pub fn link_local(mac: Mac) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([m[0] ^ 0x02, m[1]]),
        u16::from_be_bytes([m[2], 0xff]),
        u16::from_be_bytes([0xfe, m[3]]),
        u16::from_be_bytes([m[4], m[5]]),
    )
}

/// A node as the layout needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    pub underlay: IpAddr,
    pub ready: bool,
}

/// An address block of an overlay network and the node that owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub block: IpNet,
    pub owner: String,
}

/// What the VXLAN device holds (besides itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Remote device MAC → the remote node's underlay address.
    pub fdb: BTreeSet<(Mac, IpAddr)>,
    /// Remote underlay address (and remote device's link-local address) → its MAC.
    pub neigh: BTreeSet<(IpAddr, Mac)>,
    /// Block → the underlay address of its owner (its link-local address for an IPv6
    /// block).
    pub routes: BTreeSet<(IpNet, IpAddr)>,
}

/// The state node `me` should have. Down nodes are left out (their blocks stop being
/// routed once their lease expired); so are blocks of nodes nobody knows, and our own.
pub fn desired(me: &str, nodes: &[Node], blocks: &[Block]) -> State {
    let mut s = State::default();
    for n in nodes.iter().filter(|n| n.ready && n.id != me) {
        let mac = device_mac(&n.id);
        s.fdb.insert((mac, n.underlay));
        s.neigh.insert((n.underlay, mac));
        s.neigh.insert((IpAddr::V6(link_local(mac)), mac));
    }
    for b in blocks {
        if b.owner == me {
            continue;
        }
        if let Some(n) = nodes.iter().find(|n| n.id == b.owner && n.ready) {
            let via = match b.block {
                IpNet::V4(_) => n.underlay,
                IpNet::V6(_) => IpAddr::V6(link_local(device_mac(&n.id))),
            };
            s.routes.insert((b.block, via));
        }
    }
    s
}

/// The changes from `have` to `want`, removals first (a moved block's old route goes before
/// its new one comes) and each kind in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub del_routes: Vec<(IpNet, IpAddr)>,
    pub del_neigh: Vec<(IpAddr, Mac)>,
    pub del_fdb: Vec<(Mac, IpAddr)>,
    pub add_fdb: Vec<(Mac, IpAddr)>,
    pub add_neigh: Vec<(IpAddr, Mac)>,
    pub add_routes: Vec<(IpNet, IpAddr)>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many kernel requests the plan is.
    pub fn len(&self) -> usize {
        self.del_routes.len()
            + self.del_neigh.len()
            + self.del_fdb.len()
            + self.add_fdb.len()
            + self.add_neigh.len()
            + self.add_routes.len()
    }
}

pub fn plan(have: &State, want: &State) -> Plan {
    fn minus<T: Ord + Copy>(a: &BTreeSet<T>, b: &BTreeSet<T>) -> Vec<T> {
        a.difference(b).copied().collect()
    }
    Plan {
        // A route whose block moved to another node differs in its gateway: the old one
        // goes, the new one comes.
        del_routes: minus(&have.routes, &want.routes),
        del_neigh: minus(&have.neigh, &want.neigh),
        del_fdb: minus(&have.fdb, &want.fdb),
        add_fdb: minus(&want.fdb, &have.fdb),
        add_neigh: minus(&want.neigh, &have.neigh),
        add_routes: minus(&want.routes, &have.routes),
    }
}

/// `have` after the plan was carried out (what the caller records when every request
/// succeeded).
pub fn applied(have: &State, p: &Plan) -> State {
    let mut s = have.clone();
    for r in &p.del_routes {
        s.routes.remove(r);
    }
    for n in &p.del_neigh {
        s.neigh.remove(n);
    }
    for f in &p.del_fdb {
        s.fdb.remove(f);
    }
    s.fdb.extend(p.add_fdb.iter().copied());
    s.neigh.extend(p.add_neigh.iter().copied());
    s.routes.extend(p.add_routes.iter().copied());
    s
}

/// The MTU of an overlay network's links: the underlay's less the encapsulation, unless the
/// network sets one (which may not exceed that).
pub fn mtu(underlay: u32, asked: Option<u32>) -> Result<u32, String> {
    let max = underlay.saturating_sub(OVERHEAD);
    match asked {
        None => Ok(max),
        Some(m) if m >= 1280 && m <= max => Ok(m),
        Some(m) => Err(format!(
            "MTU {m} does not fit the underlay: between 1280 and {max} (the underlay's {underlay} less {OVERHEAD} for VXLAN)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, ip: &str, ready: bool) -> Node {
        Node {
            id: id.into(),
            underlay: ip.parse().unwrap(),
            ready,
        }
    }

    fn blk(b: &str, owner: &str) -> Block {
        Block {
            block: b.parse().unwrap(),
            owner: owner.into(),
        }
    }

    #[test]
    fn entries_per_remote_node_and_routes_per_remote_block() {
        let nodes = [
            node("a", "10.99.0.11", true),
            node("b", "10.99.0.12", true),
            node("c", "10.99.0.13", false),
        ];
        let blocks = [
            blk("10.0.1.0/26", "a"),
            blk("10.0.1.64/26", "b"),
            blk("10.0.2.0/26", "b"),
            blk("10.0.1.128/26", "c"),
            blk("10.0.1.192/26", "gone"),
        ];
        let blocks = [
            &blocks[..],
            &[blk("fd00:1::/112", "b"), blk("fd00:1::1:0/112", "a")],
        ]
        .concat();
        let s = desired("a", &nodes, &blocks);
        let b_ip: IpAddr = "10.99.0.12".parse().unwrap();
        let b_ll = IpAddr::V6(link_local(device_mac("b")));
        assert_eq!(s.fdb, [(device_mac("b"), b_ip)].into());
        assert_eq!(
            s.neigh,
            [(b_ip, device_mac("b")), (b_ll, device_mac("b"))].into()
        );
        assert_eq!(
            s.routes,
            [
                ("10.0.1.64/26".parse().unwrap(), b_ip),
                ("10.0.2.0/26".parse().unwrap(), b_ip),
                ("fd00:1::/112".parse().unwrap(), b_ll),
            ]
            .into()
        );
        assert_eq!(device_mac("b").to_string().len(), 17);
        assert_ne!(device_mac("a"), device_mac("b"));
        assert_eq!(device_mac("a").0[0] & 0x03, 0x02, "local, unicast");
    }

    #[test]
    fn a_moved_block_and_a_lost_node() {
        let nodes = [node("a", "10.99.0.11", true), node("b", "10.99.0.12", true)];
        let before = desired("a", &nodes, &[blk("10.0.1.64/26", "b")]);
        // b goes down: its entries and routes go; then its block is c's.
        let nodes2 = [
            node("a", "10.99.0.11", true),
            node("b", "10.99.0.12", false),
            node("c", "10.99.0.13", true),
        ];
        let after = desired("a", &nodes2, &[blk("10.0.1.64/26", "c")]);
        let p = plan(&before, &after);
        assert_eq!(p.del_routes.len(), 1);
        assert_eq!(p.add_routes.len(), 1);
        assert_eq!(p.del_fdb.len(), 1);
        assert_eq!(p.add_fdb.len(), 1);
        assert_eq!(p.len(), 8, "each node: an fdb entry and two neighbours");
        assert_eq!(applied(&before, &p), after);
        assert!(plan(&after, &after).is_empty());
    }

    #[test]
    fn link_local_is_the_eui64_of_the_mac() {
        let ll = link_local(Mac([0x02, 0xb7, 0x12, 0x34, 0x56, 0x78]));
        assert_eq!(ll, "fe80::b7:12ff:fe34:5678".parse::<Ipv6Addr>().unwrap());
    }

    #[test]
    fn mtu_is_the_underlays_less_fifty() {
        assert_eq!(mtu(1500, None), Ok(1450));
        assert_eq!(mtu(1500, Some(1400)), Ok(1400));
        assert!(mtu(1500, Some(1451))
            .unwrap_err()
            .contains("between 1280 and 1450"));
        mtu(1500, Some(1000)).unwrap_err();
    }
}
