//! Whatever the kernel holds (entries a crash left, a stale view), carrying out the plan
//! reaches exactly the desired state, and a second plan from there is empty.

use std::net::{IpAddr, Ipv4Addr};

use berth_overlay::{applied, desired, device_mac, link_local, plan, Block, Node, State};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;

fn view() -> impl Strategy<Value = (Vec<Node>, Vec<Block>)> {
    (
        prop::collection::vec(any::<bool>(), 1..6),
        prop::collection::vec((0..16u8, 0..6usize), 0..20),
    )
        .prop_map(|(ready, blocks)| {
            let nodes: Vec<Node> = ready
                .iter()
                .enumerate()
                .map(|(i, r)| Node {
                    id: format!("n{i}"),
                    underlay: IpAddr::V4(Ipv4Addr::new(10, 99, 0, 10 + u8::try_from(i).unwrap())),
                    ready: *r,
                })
                .collect();
            let blocks = blocks
                .into_iter()
                .map(|(b, owner)| Block {
                    // Odd blocks are IPv6 ones, routed via the owner's link-local address.
                    block: if b % 2 == 0 {
                        IpNet::V4(Ipv4Net::new(Ipv4Addr::new(10, 0, b, 0), 26).unwrap())
                    } else {
                        IpNet::V6(
                            Ipv6Net::new(
                                std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, u16::from(b), 0),
                                112,
                            )
                            .unwrap(),
                        )
                    },
                    owner: format!("n{owner}"),
                })
                .collect();
            (nodes, blocks)
        })
}

fn junk() -> impl Strategy<Value = State> {
    prop::collection::vec((0..8u8, 0..16u8), 0..10).prop_map(|v| {
        let mut s = State::default();
        for (n, b) in v {
            let ip = IpAddr::V4(Ipv4Addr::new(10, 99, 0, 10 + n));
            let mac = device_mac(&format!("n{n}"));
            s.fdb.insert((mac, ip));
            s.neigh.insert((ip, mac));
            s.routes.insert((
                IpNet::V4(Ipv4Net::new(Ipv4Addr::new(10, 0, b, 0), 26).unwrap()),
                ip,
            ));
        }
        s
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn a_plan_reaches_the_desired_state((nodes, blocks) in view(), have in junk(), me in 0..6usize) {
        let me = format!("n{me}");
        let want = desired(&me, &nodes, &blocks);
        let p = plan(&have, &want);
        let after = applied(&have, &p);
        prop_assert_eq!(&after, &want);
        prop_assert!(plan(&after, &want).is_empty());
        // Nothing of ours or of a node that is down is ever wanted.
        for (_, gw) in &want.routes {
            let owner = nodes
                .iter()
                .find(|n| n.underlay == *gw || IpAddr::V6(link_local(device_mac(&n.id))) == *gw)
                .unwrap();
            prop_assert!(owner.ready && owner.id != me);
        }
        // State grows with nodes and blocks only.
        let others = nodes.iter().filter(|n| n.ready && n.id != me).count();
        prop_assert_eq!(want.fdb.len(), others);
        prop_assert_eq!(want.neigh.len(), 2 * others, "an IPv4 and an IPv6 neighbour per node");
        prop_assert!(want.routes.len() <= blocks.len());
    }
}
