//! Service virtual IPs: `table ip berth_lb`, rebuilt whole in one transaction whenever a
//! VIP's backends change. One DNAT rule for every VIP: the key is the destination and a
//! random bucket, `ip daddr . numgen random mod 120`, and every VIP fills all 120 buckets
//! with its backends in turn, so a lookup never misses and the split is even for up to 6
//! backends (and within one bucket of even beyond). Only a flow's first packet is looked
//! up: conntrack keeps its backend.
//!
//! Written as nft text, not through the nftables crate: the map's key has the `integer`
//! datatype of `numgen`, which the crate's schema (0.6) cannot declare.
//!
//! A VIP without backends stays in `vips`: its connections are refused (`input` reject)
//! rather than answered by whatever listens on the host.
//!
//! The same table carries the routing mesh (docs/cluster.md, "The routing mesh"): ports
//! published in ingress mode are DNATed on every node to a task wherever it runs, with no
//! SNAT, so the task sees the client. On the node that owns the task, a connection that
//! arrives over `berth-vx` from outside the overlays is marked with the ingress node's
//! index (read from the inner source MAC, which is that node's VXLAN MAC), and the replies
//! carry the mark to policy routing, which sends them to `berth-ret`, whose egress hook
//! forwards them over the mesh to the node in the mark (`table netdev berth_ret`): that
//! node's conntrack reverses its DNAT.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// The table's name (IPv4 only: ingress ports and VIPs are IPv4; overlays route IPv6 between
/// nodes, but the mesh does not balance it).
pub const LB_TABLE: &str = "berth_lb";
/// The return path's table (family netdev, bound to `RET_DEVICE`).
pub const RET_TABLE: &str = "berth_ret";
/// The device replies to mesh connections are routed to; its egress hook sends them on.
pub const RET_DEVICE: &str = "berth-ret";
/// The flag of a mesh connection's mark; the low 16 bits are the ingress node's index.
/// Chosen clear of berth's proxy marks (0xb1, 0xb2) and of kube-proxy's 0x4000/0x8000.
pub const MESH_MARK: u32 = 0x1000_0000;
/// Buckets per VIP: divisible by 1..=6, 8, 10, 12, 15.
pub const BUCKETS: u32 = 120;

/// The mark of connections that came in through node `index`.
pub fn mesh_mark(index: u32) -> u32 {
    MESH_MARK | (index & 0xffff)
}

/// Another node, as the return path needs it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Peer {
    /// Its VXLAN device's MAC: the inner source of what it sends over the mesh.
    pub mac: [u8; 6],
    /// `mesh_mark` of its index.
    pub mark: u32,
    /// Its underlay address (its neighbour entry on `berth-vx`).
    pub addr: Ipv4Addr,
}

/// Everything the table holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lb {
    /// VIP → its backends, in order.
    pub vips: BTreeMap<Ipv4Addr, Vec<Ipv4Addr>>,
    /// (`tcp`|`udp`, published port) → backends (task address, target port), in order.
    pub ingress: BTreeMap<(String, u16), Vec<(Ipv4Addr, u16)>>,
    /// What the mesh may deliver to this node's tasks: (task address, `tcp`|`udp`, target
    /// port) of every task container of a service with ingress ports, also those out of
    /// `ingress` (starting, draining), which other nodes may still send flows to.
    pub targets: std::collections::BTreeSet<(Ipv4Addr, String, u16)>,
    /// The other nodes.
    pub peers: Vec<Peer>,
    /// The overlays' IPv4 subnets: traffic from them is east-west, never steered.
    pub overlays: Vec<Ipv4Net>,
}

/// Every bucket of a key, filled with its backends in turn.
fn buckets<T>(b: &[T]) -> impl Iterator<Item = (u32, &T)> {
    (0..BUCKETS).map(move |i| (i, &b[usize::try_from(i).unwrap_or(0) % b.len()]))
}

fn elements(s: &mut String, elems: &[String]) {
    if !elems.is_empty() {
        let _ = writeln!(s, "\t\telements = {{ {} }}", elems.join(", "));
    }
}

fn mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The whole table for `lb`: `add; delete; table {…}`, so applying it replaces whatever
/// was there atomically.
pub fn lb_table(lb: &Lb) -> String {
    let mut s =
        format!("add table ip {LB_TABLE}\ndelete table ip {LB_TABLE}\ntable ip {LB_TABLE} {{\n");
    let _ = writeln!(s, "\tset vips {{\n\t\ttype ipv4_addr;");
    elements(
        &mut s,
        &lb.vips.keys().map(ToString::to_string).collect::<Vec<_>>(),
    );
    let _ = writeln!(s, "\t}}");
    let _ = writeln!(
        s,
        "\tmap backends {{\n\t\ttypeof ip daddr . numgen random mod {BUCKETS} : ip daddr;"
    );
    let elems: Vec<String> = lb
        .vips
        .iter()
        .filter(|(_, b)| !b.is_empty())
        .flat_map(|(vip, b)| buckets(b).map(move |(i, a)| format!("{vip} . {i} : {a}")))
        .collect();
    elements(&mut s, &elems);
    let _ = writeln!(s, "\t}}");
    let _ = writeln!(
        s,
        "\tmap ingress {{\n\t\ttypeof meta l4proto . th dport . numgen random mod {BUCKETS} : ip daddr . th dport;"
    );
    let elems: Vec<String> = lb
        .ingress
        .iter()
        .filter(|(_, b)| !b.is_empty())
        .flat_map(|((proto, port), b)| {
            buckets(b).map(move |(i, (a, t))| format!("{proto} . {port} . {i} : {a} . {t}"))
        })
        .collect();
    elements(&mut s, &elems);
    let _ = writeln!(s, "\t}}");
    let _ = writeln!(
        s,
        "\tset targets {{\n\t\ttypeof ip daddr . meta l4proto . th dport;"
    );
    let elems: Vec<String> = lb
        .targets
        .iter()
        .map(|(a, proto, t)| format!("{a} . {proto} . {t}"))
        .collect();
    elements(&mut s, &elems);
    let _ = writeln!(s, "\t}}");
    let _ = writeln!(
        s,
        "\tmap node_marks {{\n\t\ttypeof ether saddr : meta mark;"
    );
    let elems: Vec<String> = lb
        .peers
        .iter()
        .map(|p| format!("{} : {:#x}", mac(&p.mac), p.mark))
        .collect();
    elements(&mut s, &elems);
    let _ = writeln!(s, "\t}}");
    let _ = writeln!(
        s,
        "\tset overlays {{\n\t\ttype ipv4_addr;\n\t\tflags interval;\n\t\tauto-merge;"
    );
    elements(
        &mut s,
        &lb.overlays
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
    );
    let _ = writeln!(s, "\t}}");
    // Before berth's own DNAT of published ports (priority -100). The ingress rule matches
    // connections to any address of the node, as Docker's routing mesh does; a port
    // without backends misses the map and goes on to whatever else would take it.
    let ingress = format!(
        "meta l4proto {{ tcp, udp }} dnat ip to meta l4proto . th dport . numgen random mod {BUCKETS} map @ingress"
    );
    let _ = writeln!(
        s,
        "\tchain prerouting {{\n\t\ttype nat hook prerouting priority -101; policy accept;\n\t\tip daddr @vips dnat ip to ip daddr . numgen random mod {BUCKETS} map @backends\n\t\tfib daddr type local {ingress}\n\t}}"
    );
    // The node's own processes reach the mesh on its addresses too (not on 127/8: a
    // loopback source cannot leave the node).
    let _ = writeln!(
        s,
        "\tchain output {{\n\t\ttype nat hook output priority -101; policy accept;\n\t\tip daddr != 127.0.0.0/8 fib daddr type local {ingress}\n\t}}"
    );
    let _ = writeln!(
        s,
        "\tchain input {{\n\t\ttype filter hook input priority -1; policy accept;\n\t\tip daddr @vips reject\n\t}}"
    );
    // The owner's side: remember which node a mesh connection came in through, and give
    // its replies that mark for policy routing. After conntrack (-200), before NAT.
    let _ = writeln!(
        s,
        "\tchain mesh_mark {{\n\t\ttype filter hook prerouting priority -150; policy accept;\n\t\tiifname \"{mesh}\" ct state new ip saddr != @overlays ct mark set ether saddr map @node_marks\n\t\tct direction reply ct mark & {MESH_MARK:#x} == {MESH_MARK:#x} meta mark set ct mark\n\t}}",
        mesh = crate::MESH_DEVICE
    );
    let _ = writeln!(
        s,
        "\tchain mesh_filter {{\n\t\ttype filter hook forward priority -1; policy accept;\n\t\tiifname \"{mesh}\" ct state new ct mark & {MESH_MARK:#x} == {MESH_MARK:#x} ip daddr . meta l4proto . th dport != @targets drop\n\t}}",
        mesh = crate::MESH_DEVICE
    );
    s.push_str("}\n");
    s
}

/// The return path: replies routed to `RET_DEVICE` go over the mesh to the node their mark
/// names (its permanent neighbour entry on `berth-vx` gives the MAC, the FDB the node).
/// Anything else routed there is dropped. The device must exist.
pub fn ret_table(peers: &[Peer]) -> String {
    let mut s = format!(
        "add table netdev {RET_TABLE}\ndelete table netdev {RET_TABLE}\ntable netdev {RET_TABLE} {{\n"
    );
    let _ = writeln!(s, "\tmap nodes {{\n\t\ttypeof meta mark : ip daddr;");
    let elems: Vec<String> = peers
        .iter()
        .map(|p| format!("{:#x} : {}", p.mark, p.addr))
        .collect();
    elements(&mut s, &elems);
    let _ = writeln!(s, "\t}}");
    let _ = writeln!(
        s,
        "\tchain egress {{\n\t\ttype filter hook egress device \"{RET_DEVICE}\" priority 0; policy accept;\n\t\tmeta protocol ip fwd ip to meta mark map @nodes device \"{mesh}\"\n\t\tdrop\n\t}}",
        mesh = crate::MESH_DEVICE
    );
    s.push_str("}\n");
    s
}

/// Removes both tables (nothing if they are not there).
pub fn lb_delete() -> String {
    format!(
        "add table ip {LB_TABLE}\ndelete table ip {LB_TABLE}\nadd table netdev {RET_TABLE}\ndelete table netdev {RET_TABLE}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bucket_of_every_vip_has_a_backend() {
        let v: Ipv4Addr = "10.0.0.250".parse().unwrap();
        let w: Ipv4Addr = "10.0.1.250".parse().unwrap();
        let b: Vec<Ipv4Addr> = ["10.0.0.5", "10.0.0.70", "10.0.0.130"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let lb = Lb {
            vips: BTreeMap::from([(v, b.clone()), (w, vec![])]),
            ..Lb::default()
        };
        let t = lb_table(&lb);
        assert!(t.starts_with("add table ip berth_lb\ndelete table ip berth_lb\n"));
        assert!(t.contains("elements = { 10.0.0.250, 10.0.1.250 }"), "{t}");
        for backend in &b {
            let n = t.matches(&format!(": {backend}")).count();
            assert_eq!(n, 40, "{backend} has a third of the buckets");
        }
        assert!(!t.contains("10.0.1.250 . 0"), "no buckets without backends");
        assert!(t.contains("10.0.0.250 . 119 : "));
    }

    #[test]
    fn ingress_ports_and_the_return_path() {
        let a: Ipv4Addr = "10.0.0.5".parse().unwrap();
        let b: Ipv4Addr = "10.0.0.70".parse().unwrap();
        let peer = Peer {
            mac: [2, 0xb7, 0, 0, 0, 1],
            mark: mesh_mark(3),
            addr: "10.99.0.12".parse().unwrap(),
        };
        let lb = Lb {
            ingress: BTreeMap::from([
                (("tcp".to_string(), 8080), vec![(a, 80), (b, 80)]),
                (("udp".to_string(), 53), vec![]),
            ]),
            targets: [(a, "tcp".to_string(), 80), (b, "tcp".to_string(), 80)].into(),
            peers: vec![peer.clone()],
            overlays: vec!["10.0.0.0/24".parse().unwrap()],
            ..Lb::default()
        };
        let t = lb_table(&lb);
        assert_eq!(t.matches(": 10.0.0.5 . 80").count(), 60, "{t}");
        assert!(t.contains("tcp . 8080 . 119 : 10.0.0.70 . 80"));
        assert!(
            !t.contains("udp . 53 ."),
            "a port without backends has no buckets"
        );
        assert!(t.contains("elements = { 10.0.0.5 . tcp . 80, 10.0.0.70 . tcp . 80 }"));
        assert!(t.contains("02:b7:00:00:00:01 : 0x10000003"));
        assert!(t.contains("elements = { 10.0.0.0/24 }"));
        let r = ret_table(&[peer]);
        assert!(r.contains("0x10000003 : 10.99.0.12"), "{r}");
        assert!(r.contains("hook egress device \"berth-ret\""));
        assert_eq!(mesh_mark(0x1_0005), 0x1000_0005, "16 bits of index");
    }
}
