use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Docker's default local-scope pools, in Docker's order, so networks get the
/// subnets users expect: 172.17.0.0/16 … 172.31.0.0/16, then 192.168.0.0/16 in /20s.
pub fn default_pools_v4() -> Vec<Ipv4Net> {
    let wide = (17..=31u8).map(|b| Ipv4Net::new_assert(Ipv4Addr::new(172, b, 0, 0), 16));
    let narrow = (0..16u8).map(|i| Ipv4Net::new_assert(Ipv4Addr::new(192, 168, i * 16, 0), 20));
    wide.chain(narrow).collect()
}

/// First default pool that overlaps none of `used`. None if all are taken.
pub fn pick_default_v4(used: &[IpNet]) -> Option<Ipv4Net> {
    default_pools_v4()
        .into_iter()
        .find(|p| !used.iter().any(|u| overlaps(&IpNet::V4(*p), u)))
}

/// Docker's default pool for swarm-scope (overlay) networks: 10.0.0.0/8 in /24 steps.
pub fn default_overlay_pool() -> (Ipv4Net, u8) {
    (Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8), 24)
}

/// The first /24 of 10.0.0.0/8 that overlaps none of `used` (the cluster's networks and the
/// underlay's routes), or `None` when all 65 536 are taken. Overlaps are checked both ways,
/// so a used /16 skips its 256 /24s and a used /28 skips the /24 around it.
pub fn pick_default_overlay(used: &[IpNet]) -> Option<Ipv4Net> {
    let (pool, len) = default_overlay_pool();
    let mut sorted: Vec<Ipv4Net> = used
        .iter()
        .filter_map(|n| match n {
            IpNet::V4(v) => Some(v.trunc()),
            IpNet::V6(_) => None,
        })
        .filter(|n| overlaps(&IpNet::V4(*n), &IpNet::V4(pool)))
        .collect();
    sorted.sort();
    let step = 1u32 << (32 - u32::from(len));
    let base = u32::from(pool.network());
    let count = 1u32 << (u32::from(len) - u32::from(pool.prefix_len()));
    let mut i = 0u32;
    while i < count {
        let cand = Ipv4Net::new_assert(Ipv4Addr::from(base + i * step), len);
        match sorted
            .iter()
            .find(|u| overlaps(&IpNet::V4(**u), &IpNet::V4(cand)))
        {
            None => return Some(cand),
            // Jump past the blocking network (it may be wider than one step).
            Some(u) => {
                let end = u32::from(u.broadcast()).max(u32::from(cand.broadcast()));
                i = (end - base) / step + 1;
            }
        }
    }
    None
}

/// Enough tries to get past any realistic set of routes; only something that
/// covers fd00::/8 as a whole exhausts them.
const V6_ATTEMPTS: u32 = 4096;

/// A ULA /64 (RFC 4193: fd00::/8, 40-bit global id, subnet id 0) derived
/// from `seed`, so a network keeps its subnet if it is re-created from the same
/// id. Overlapping candidates are skipped by re-deriving with a counter. If
/// `used` covers the whole ULA space, there is no good answer and the first
/// candidate is returned.
pub fn pick_default_v6(seed: &[u8], used: &[IpNet]) -> Ipv6Net {
    (0..V6_ATTEMPTS)
        .map(|attempt| ula_candidate(seed, attempt))
        .find(|c| !used.iter().any(|u| overlaps(&IpNet::V6(*c), u)))
        .unwrap_or_else(|| ula_candidate(seed, 0))
}

/// True if the two networks share at least one address. Networks of different
/// families never overlap; host bits in either are ignored.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    match (a, b) {
        (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_)) => {
            a.contains(&b.network()) || b.contains(&a.network())
        }
        _ => false,
    }
}

fn ula_candidate(seed: &[u8], attempt: u32) -> Ipv6Net {
    let global_id = u128::from(stable_hash(seed, attempt) >> 24);
    let addr = (0xfd_u128 << 120) | (global_id << 80);
    Ipv6Net::new_assert(Ipv6Addr::from(addr), 64)
}

/// FNV-1a then a splitmix64 finaliser: written out rather than std's hasher,
/// whose output may change between Rust releases, because the result is
/// persisted and must be reproducible.
fn stable_hash(seed: &[u8], attempt: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in seed.iter().chain(attempt.to_le_bytes().iter()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}
