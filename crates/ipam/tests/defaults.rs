//! Docker's default subnet choice.

use berth_ipam::{default_pools_v4, overlaps, pick_default_v4, pick_default_v6};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn v4(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

#[test]
fn default_pools_in_dockers_order() {
    let pools = default_pools_v4();
    assert_eq!(pools.len(), 15 + 16);
    for (i, b) in (17..=31).enumerate() {
        assert_eq!(pools[i], v4(&format!("172.{b}.0.0/16")));
    }
    assert_eq!(pools[15], v4("192.168.0.0/20"));
    assert_eq!(pools[16], v4("192.168.16.0/20"));
    assert_eq!(pools[30], v4("192.168.240.0/20"));
}

#[test]
fn pick_v4_takes_first_free_pool() {
    assert_eq!(pick_default_v4(&[]), Some(v4("172.17.0.0/16")));
    assert_eq!(
        pick_default_v4(&[net("172.17.0.0/16"), net("172.19.0.0/16")]),
        Some(v4("172.18.0.0/16"))
    );
}

#[test]
fn pick_v4_skips_pools_overlapping_host_routes() {
    assert_eq!(
        pick_default_v4(&[net("172.17.5.0/24")]),
        Some(v4("172.18.0.0/16"))
    );
    // A route wider than the pools blocks all of them.
    assert_eq!(
        pick_default_v4(&[net("172.16.0.0/12"), net("192.168.1.0/24")]),
        Some(v4("192.168.16.0/20"))
    );
    assert_eq!(
        pick_default_v4(&[net("172.16.0.0/12"), net("192.168.0.0/16")]),
        None
    );
    // Unrelated and IPv6 entries block nothing.
    assert_eq!(
        pick_default_v4(&[net("10.0.0.0/8"), net("::/0")]),
        Some(v4("172.17.0.0/16"))
    );
}

#[test]
fn overlap_rules() {
    assert!(overlaps(&net("10.0.0.0/8"), &net("10.1.2.0/24")));
    assert!(overlaps(&net("10.1.2.0/24"), &net("10.0.0.0/8")));
    assert!(overlaps(&net("10.1.2.0/24"), &net("10.1.2.0/24")));
    assert!(!overlaps(&net("10.1.2.0/24"), &net("10.1.3.0/24")));
    assert!(overlaps(&net("10.1.2.9/24"), &net("10.1.2.200/32")));
    assert!(!overlaps(&net("0.0.0.0/0"), &net("::/0")));
    assert!(overlaps(&net("fd00::/8"), &net("fd12:3456::/64")));
    assert!(!overlaps(&net("fd00::/64"), &net("fd00:0:0:1::/64")));
}

fn is_ula_64(n: &Ipv6Net) -> bool {
    let bits = u128::from(n.network());
    n.prefix_len() == 64 && bits >> 120 == 0xfd && (bits >> 64) & 0xffff == 0
}

#[test]
fn pick_v6_is_a_deterministic_ula_64() {
    let a = pick_default_v6(b"network-one", &[]);
    assert!(is_ula_64(&a), "{a}");
    assert_eq!(a, pick_default_v6(b"network-one", &[]));
    assert_ne!(a, pick_default_v6(b"network-two", &[]));
    assert!(is_ula_64(&pick_default_v6(b"", &[])));
}

#[test]
fn pick_v6_avoids_used_subnets() {
    let first = pick_default_v6(b"id", &[]);
    let used = [IpNet::V6(first), net("10.0.0.0/8")];
    let second = pick_default_v6(b"id", &used);
    assert!(is_ula_64(&second));
    assert_ne!(second, first);
    // A route covering the candidate's whole /48 pushes it elsewhere too.
    let block48 = IpNet::V6(Ipv6Net::new(first.network(), 48).unwrap().trunc());
    let third = pick_default_v6(b"id", &[block48]);
    assert!(is_ula_64(&third));
    assert!(!overlaps(&IpNet::V6(third), &block48));
}

#[test]
fn pick_v6_returns_even_when_ula_space_is_covered() {
    let n = pick_default_v6(b"id", &[net("fd00::/8")]);
    assert!(is_ula_64(&n));
}

/// The result is persisted and must not change between builds or releases.
#[test]
fn pick_v6_is_stable_across_releases() {
    assert_eq!(
        pick_default_v6(b"network-one", &[]).to_string(),
        "fd9e:cfe3:18e::/64"
    );
}

/// Overlay networks without --subnet: 10.0.0.0/24, 10.0.1.0/24… as Docker's swarm pool,
/// past whatever the cluster or the underlay holds, wide or narrow.
#[test]
fn overlay_subnets_from_docker_swarm_pool() {
    use berth_ipam::pick_default_overlay;
    let n = |s: &str| -> ipnet::IpNet { s.parse().unwrap() };
    assert_eq!(
        pick_default_overlay(&[]).unwrap().to_string(),
        "10.0.0.0/24"
    );
    assert_eq!(
        pick_default_overlay(&[n("10.0.0.0/24"), n("10.0.1.128/28")])
            .unwrap()
            .to_string(),
        "10.0.2.0/24"
    );
    // A /16 in the way is skipped whole; networks outside 10/8 and IPv6 do not matter.
    assert_eq!(
        pick_default_overlay(&[n("10.0.0.0/16"), n("172.17.0.0/16"), n("fd00::/64")])
            .unwrap()
            .to_string(),
        "10.1.0.0/24"
    );
    // Everything taken: no answer.
    assert_eq!(pick_default_overlay(&[n("10.0.0.0/8")]), None);
    assert_eq!(pick_default_overlay(&[n("0.0.0.0/0")]), None);
}

proptest::proptest! {
    /// The pick overlaps nothing used, and no lower /24 of the pool was free.
    #[test]
    fn overlay_pick_is_the_lowest_free(used in proptest::collection::vec((0u8..4, 0u8..=255, 16u8..=28), 0..12)) {
        use berth_ipam::{overlaps, pick_default_overlay};
        let used: Vec<ipnet::IpNet> = used
            .iter()
            .map(|(b, c, len)| format!("10.{b}.{c}.0/{len}").parse::<ipnet::IpNet>().unwrap().trunc())
            .collect();
        let free = |n: &ipnet::IpNet| !used.iter().any(|u| overlaps(u, n));
        let pick = pick_default_overlay(&used).map(ipnet::IpNet::V4);
        if let Some(p) = pick {
            proptest::prop_assert!(free(&p));
        }
        // Used networks lie in 10.0-10.3, so the first free /24 lies in 10.0-10.7.
        let first = (0u32..2048)
            .map(|i| format!("10.{}.{}.0/24", i / 256, i % 256).parse::<ipnet::IpNet>().unwrap())
            .find(free);
        proptest::prop_assert_eq!(pick, first);
    }
}
