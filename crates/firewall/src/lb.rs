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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// The table's name (IPv4 only: overlays route IPv4 between nodes).
pub const LB_TABLE: &str = "berth_lb";
/// Buckets per VIP: divisible by 1..=6, 8, 10, 12, 15.
pub const BUCKETS: u32 = 120;

/// The whole table for `vips` (VIP → its backends, in order): `add; delete; table {…}`, so
/// applying it replaces whatever was there atomically.
pub fn lb_table(vips: &BTreeMap<Ipv4Addr, Vec<Ipv4Addr>>) -> String {
    let mut s =
        format!("add table ip {LB_TABLE}\ndelete table ip {LB_TABLE}\ntable ip {LB_TABLE} {{\n");
    let _ = writeln!(s, "\tset vips {{\n\t\ttype ipv4_addr;");
    if !vips.is_empty() {
        let list: Vec<String> = vips.keys().map(ToString::to_string).collect();
        let _ = writeln!(s, "\t\telements = {{ {} }}", list.join(", "));
    }
    let _ = writeln!(s, "\t}}");
    let _ = writeln!(
        s,
        "\tmap backends {{\n\t\ttypeof ip daddr . numgen random mod {BUCKETS} : ip daddr;"
    );
    let elems: Vec<String> = vips
        .iter()
        .filter(|(_, b)| !b.is_empty())
        .flat_map(|(vip, b)| {
            (0..BUCKETS).map(move |i| {
                let n = usize::try_from(i).unwrap_or(0) % b.len();
                format!("{vip} . {i} : {}", b[n])
            })
        })
        .collect();
    if !elems.is_empty() {
        let _ = writeln!(s, "\t\telements = {{ {} }}", elems.join(", "));
    }
    let _ = writeln!(s, "\t}}");
    // Before berth's own DNAT of published ports (priority -100).
    let _ = writeln!(
        s,
        "\tchain prerouting {{\n\t\ttype nat hook prerouting priority -101; policy accept;\n\t\tip daddr @vips dnat ip to ip daddr . numgen random mod {BUCKETS} map @backends\n\t}}"
    );
    let _ = writeln!(
        s,
        "\tchain input {{\n\t\ttype filter hook input priority -1; policy accept;\n\t\tip daddr @vips reject\n\t}}"
    );
    s.push_str("}\n");
    s
}

/// Removes the table (nothing if it is not there).
pub fn lb_delete() -> String {
    format!("add table ip {LB_TABLE}\ndelete table ip {LB_TABLE}\n")
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
        let t = lb_table(&BTreeMap::from([(v, b.clone()), (w, vec![])]));
        assert!(t.starts_with("add table ip berth_lb\ndelete table ip berth_lb\n"));
        assert!(t.contains("elements = { 10.0.0.250, 10.0.1.250 }"), "{t}");
        for backend in &b {
            let n = t.matches(&format!(": {backend}")).count();
            assert_eq!(n, 40, "{backend} has a third of the buckets");
        }
        assert!(!t.contains("10.0.1.250 . 0"), "no buckets without backends");
        assert!(t.contains("10.0.0.250 . 119 : "));
    }
}
