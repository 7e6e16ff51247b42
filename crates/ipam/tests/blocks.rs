//! Block affinity across simulated nodes: random interleavings of attaches and detaches on
//! several nodes, each working from a possibly stale view of which blocks are taken and
//! claiming blocks and addresses by compare-and-set on a shared store (as the etcd
//! transaction does), never give one address to two holders, and every address comes from a
//! block its holder owns.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use berth_ipam::blocks::{
    block, block_count, block_len, block_of, free_block, next_address, usable,
};
use ipnet::IpNet;
use proptest::prelude::*;

/// The shared store: who owns each block, who holds each address.
#[derive(Default)]
struct Store {
    blocks: BTreeMap<IpNet, usize>,
    addrs: BTreeMap<IpAddr, usize>,
}

struct Node {
    /// The blocks as this node last read them (stale between refreshes).
    seen: BTreeSet<IpNet>,
    owned: Vec<IpNet>,
    held: BTreeSet<IpAddr>,
}

#[derive(Debug, Clone)]
enum Step {
    Attach(usize),
    Detach(usize, usize),
    Refresh(usize),
}

fn steps(nodes: usize) -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![
            4 => (0..nodes).prop_map(Step::Attach),
            2 => (0..nodes, 0..64usize).prop_map(|(n, k)| Step::Detach(n, k)),
            1 => (0..nodes).prop_map(Step::Refresh),
        ],
        1..300,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn no_address_twice_across_nodes(
        nodes in 2..5usize,
        prefix in 22..28u8,
        plan in steps(4),
    ) {
        let subnet: IpNet = format!("10.0.0.0/{prefix}").parse().unwrap();
        let gw: IpAddr = "10.0.0.1".parse().unwrap();
        let reserved = [gw];
        let len = block_len(&subnet);
        let mut store = Store::default();
        let mut ns: Vec<Node> = (0..nodes)
            .map(|_| Node { seen: BTreeSet::new(), owned: vec![], held: BTreeSet::new() })
            .collect();
        for step in plan {
            match step {
                Step::Attach(n) if n < nodes => {
                    let node = &mut ns[n];
                    let ip = match next_address(&subnet, &node.owned, &reserved, &node.held) {
                        Some(ip) => Some(ip),
                        None => {
                            // Claim a block from the stale view: the compare fails if another
                            // node took it meanwhile, and the node reads again.
                            let start = n as u128 * 7919;
                            match free_block(&subnet, len, &node.seen, &reserved, start) {
                                Some(b) if !store.blocks.contains_key(&b) => {
                                    store.blocks.insert(b, n);
                                    node.owned.push(b);
                                    node.seen.insert(b);
                                    next_address(&subnet, &node.owned, &reserved, &node.held)
                                }
                                Some(_) => {
                                    node.seen = store.blocks.keys().copied().collect();
                                    None
                                }
                                None => None,
                            }
                        }
                    };
                    if let Some(ip) = ip {
                        // The address key's compare on absence.
                        prop_assert!(!store.addrs.contains_key(&ip), "{ip} twice");
                        store.addrs.insert(ip, n);
                        node.held.insert(ip);
                    }
                }
                Step::Detach(n, k) if n < nodes => {
                    let node = &mut ns[n];
                    if let Some(ip) = node.held.iter().nth(k % node.held.len().max(1)).copied() {
                        node.held.remove(&ip);
                        prop_assert_eq!(store.addrs.remove(&ip), Some(n));
                    }
                }
                Step::Refresh(n) if n < nodes => {
                    ns[n].seen = store.blocks.keys().copied().collect();
                }
                _ => {}
            }
        }
        for (ip, n) in &store.addrs {
            let b = block_of(&subnet, len, *ip).unwrap();
            prop_assert_eq!(store.blocks.get(&b), Some(n), "{} outside its holder's blocks", ip);
            prop_assert!(*ip != gw && *ip != subnet.network() && *ip != subnet.broadcast());
        }
    }

    /// A subnet's blocks are disjoint, cover it, and each hands out its own addresses.
    #[test]
    fn blocks_partition_the_subnet(prefix in 20..31u8, third in 0..=255u8) {
        let subnet: IpNet = format!("10.7.{third}.0/{prefix}").parse::<IpNet>().unwrap().trunc();
        let len = block_len(&subnet);
        let mut seen = BTreeSet::new();
        let mut total = 0u128;
        for i in 0..block_count(&subnet, len) {
            let b = block(&subnet, len, i).unwrap();
            prop_assert!(subnet.contains(&b.network()) && subnet.contains(&b.broadcast()));
            for ip in usable(&subnet, &b, &[]) {
                prop_assert_eq!(block_of(&subnet, len, ip), Some(b));
                prop_assert!(seen.insert(ip));
            }
            total += 1u128 << (32 - u32::from(len));
        }
        prop_assert_eq!(total, 1u128 << (32 - u32::from(prefix)));
        // Every host address of the subnet is handed out by exactly one block.
        prop_assert_eq!(seen.len() as u128, (1u128 << (32 - u32::from(prefix))) - 2);
    }
}
