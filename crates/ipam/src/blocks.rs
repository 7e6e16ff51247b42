//! Address blocks for networks that span nodes (Calico's block affinity): a network's
//! subnet is cut into equal blocks; a node claims whole blocks (a store transaction with a
//! compare on the block's key, so two nodes cannot both claim one) and hands addresses out
//! of its own blocks without asking anybody. Blocks also make the routes: one route per
//! remote block, not per remote container.
//!
//! What a block may hand out leaves out the subnet's network and broadcast addresses, the
//! gateway (every node's bridge carries it) and the aux addresses, like a [`crate::Pool`].
//! The cluster's proof that an address is never given twice is still the address's own key,
//! claimed in the attach's transaction; blocks keep those compares from colliding.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::addr::{bounds, from_u128, to_u128};

/// The block size for a subnet: /26 (64 addresses) for IPv4 and /122 for IPv6, Calico's
/// defaults, or the subnet itself when it is smaller.
pub fn block_len(subnet: &IpNet) -> u8 {
    let want = match subnet {
        IpNet::V4(_) => 26,
        IpNet::V6(_) => 122,
    };
    want.max(subnet.prefix_len())
}

/// How many blocks the subnet has (saturating: an IPv6 /64 has 2^58).
pub fn block_count(subnet: &IpNet, len: u8) -> u128 {
    let bits = u32::from(len.saturating_sub(subnet.prefix_len()));
    1u128.checked_shl(bits).unwrap_or(u128::MAX)
}

/// Block number `i` of the subnet.
pub fn block(subnet: &IpNet, len: u8, i: u128) -> Option<IpNet> {
    if i >= block_count(subnet, len) {
        return None;
    }
    let size = block_size(subnet, len);
    let start = to_u128(subnet.network()) + i * size;
    IpNet::new(from_u128(start, subnet.network().is_ipv6()), len).ok()
}

fn block_size(subnet: &IpNet, len: u8) -> u128 {
    let host_bits = u32::from(subnet.max_prefix_len() - len);
    1u128.checked_shl(host_bits).unwrap_or(u128::MAX)
}

/// The block an address of the subnet is in.
pub fn block_of(subnet: &IpNet, len: u8, ip: IpAddr) -> Option<IpNet> {
    if !subnet.contains(&ip) {
        return None;
    }
    let i = (to_u128(ip) - to_u128(subnet.network())) / block_size(subnet, len);
    block(subnet, len, i)
}

/// The first block not in `taken`, searching from block `start % count` on and wrapping,
/// so nodes that start from different places (a hash of their id) rarely race for one.
/// Blocks with nothing to hand out (a /31's only block minus its reserved ends) are
/// skipped.
pub fn free_block(
    subnet: &IpNet,
    len: u8,
    taken: &BTreeSet<IpNet>,
    reserved: &[IpAddr],
    start: u128,
) -> Option<IpNet> {
    let count = block_count(subnet, len);
    // A bounded walk: huge IPv6 subnets have more blocks than anyone will take.
    let tries = count.min(taken.len() as u128 + 1 + 4096);
    (0..tries)
        .map(|k| (start % count).wrapping_add(k) % count)
        .filter_map(|i| block(subnet, len, i))
        .find(|b| !taken.contains(b) && usable(subnet, b, reserved).next().is_some())
}

/// The addresses a block hands out, in order.
pub fn usable<'a>(
    subnet: &'a IpNet,
    block: &IpNet,
    reserved: &'a [IpAddr],
) -> impl Iterator<Item = IpAddr> + 'a {
    let (lo, hi) = bounds(block);
    let (net_lo, net_hi) = bounds(subnet);
    let v6 = subnet.network().is_ipv6();
    // IPv4's network and broadcast addresses are not hosts; IPv6's subnet-router anycast
    // (the all-zero address) is left out too, as the kernel answers it.
    let skip_ends = !v6 || subnet.prefix_len() < 127;
    (lo..=hi)
        .filter(move |v| !(skip_ends && (*v == net_lo || (!v6 && *v == net_hi))))
        .map(move |v| from_u128(v, v6))
        .filter(move |ip| !reserved.contains(ip))
}

/// The next address of `owned` blocks that is not `held`, or `None`: the node must claim
/// another block.
pub fn next_address(
    subnet: &IpNet,
    owned: &[IpNet],
    reserved: &[IpAddr],
    held: &BTreeSet<IpAddr>,
) -> Option<IpAddr> {
    owned
        .iter()
        .flat_map(|b| usable(subnet, b, reserved))
        .find(|ip| !held.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_of_a_slash_24_and_their_addresses() {
        let s = net("10.0.1.0/24");
        assert_eq!(block_len(&s), 26);
        assert_eq!(block_count(&s, 26), 4);
        assert_eq!(block(&s, 26, 0), Some(net("10.0.1.0/26")));
        assert_eq!(block(&s, 26, 3), Some(net("10.0.1.192/26")));
        assert_eq!(block(&s, 26, 4), None);
        let gw: IpAddr = "10.0.1.1".parse().unwrap();
        let first: Vec<IpAddr> = usable(&s, &net("10.0.1.0/26"), &[gw]).take(2).collect();
        assert_eq!(
            first,
            [
                "10.0.1.2".parse::<IpAddr>().unwrap(),
                "10.0.1.3".parse().unwrap()
            ]
        );
        assert_eq!(usable(&s, &net("10.0.1.0/26"), &[gw]).count(), 62);
        // The broadcast address is the last block's last.
        assert_eq!(usable(&s, &net("10.0.1.192/26"), &[gw]).count(), 63);
        assert_eq!(
            block_of(&s, 26, "10.0.1.130".parse().unwrap()),
            Some(net("10.0.1.128/26"))
        );
        assert_eq!(block_of(&s, 26, "10.0.2.1".parse().unwrap()), None);
        // A small subnet is one block.
        let small = net("10.9.0.0/28");
        assert_eq!(block_len(&small), 28);
        assert_eq!(block_count(&small, 28), 1);
    }

    #[test]
    fn free_blocks_skip_the_taken_and_wrap() {
        let s = net("10.0.1.0/24");
        let taken: BTreeSet<IpNet> = [net("10.0.1.64/26"), net("10.0.1.128/26")].into();
        assert_eq!(
            free_block(&s, 26, &taken, &[], 1),
            Some(net("10.0.1.192/26"))
        );
        assert_eq!(
            free_block(&s, 26, &taken, &[], 3),
            Some(net("10.0.1.192/26"))
        );
        let all: BTreeSet<IpNet> = (0..4).filter_map(|i| block(&s, 26, i)).collect();
        assert_eq!(free_block(&s, 26, &all, &[], 0), None);
        // IPv6: blocks of /122 in a /64, found without walking 2^58 of them.
        let v6 = net("fd00:1::/64");
        assert_eq!(block_len(&v6), 122);
        assert_eq!(
            free_block(&v6, 122, &BTreeSet::new(), &[], u128::MAX),
            block(&v6, 122, u128::MAX % block_count(&v6, 122))
        );
    }
}
