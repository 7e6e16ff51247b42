//! Whatever the nodes and the tasks that exist, one plan reaches a placement that needs no
//! other: every slot on an allowed Ready node or waiting, never two tasks for one slot, and
//! tasks on nodes that may keep them never moved.

use std::collections::BTreeMap;

use berth_sched::{plan, Availability, Mode, Node, Placement};
use proptest::prelude::*;

fn nodes() -> impl Strategy<Value = Vec<Node>> {
    prop::collection::vec((any::<bool>(), 0u8..3), 1..6).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (ready, a))| Node {
                id: format!("n{i}"),
                hostname: format!("n{i}"),
                labels: BTreeMap::new(),
                ready,
                availability: [
                    Availability::Active,
                    Availability::Pause,
                    Availability::Drain,
                ][usize::from(a)],
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn one_plan_is_enough(nodes in nodes(), replicas in 0u32..8, current in prop::collection::vec((1u32..10, 0usize..6), 0..8)) {
        let mut cur: Vec<Placement> = Vec::new();
        for (slot, n) in current {
            if !cur.iter().any(|p| p.slot == slot) {
                cur.push(Placement { slot, node: format!("n{n}") });
            }
        }
        let mut load = BTreeMap::new();
        for p in &cur {
            *load.entry(p.node.clone()).or_insert(0usize) += 1;
        }
        let p = plan(Mode::Replicated(replicas), &[], &nodes, &cur, &load, None);
        // Apply it.
        let mut after: Vec<Placement> = cur.iter()
            .filter(|c| !p.remove.iter().any(|r| r.slot == c.slot) && !p.place.iter().any(|x| x.slot == c.slot))
            .cloned()
            .collect();
        after.extend(p.place.iter().cloned());
        let mut slots: Vec<u32> = after.iter().map(|a| a.slot).collect();
        slots.sort_unstable();
        let n = slots.len();
        slots.dedup();
        prop_assert_eq!(n, slots.len(), "a slot twice");
        for a in &after {
            prop_assert!(a.slot >= 1 && a.slot <= replicas);
            let node = nodes.iter().find(|x| x.id == a.node);
            prop_assert!(node.is_some_and(|x| x.ready && x.availability != Availability::Drain), "{a:?} on a node that may not hold it");
        }
        // Kept tasks did not move.
        for c in &cur {
            let node = nodes.iter().find(|x| x.id == c.node);
            if c.slot <= replicas && node.is_some_and(|x| x.ready && x.availability != Availability::Drain) {
                prop_assert!(after.contains(c), "{c:?} moved");
            }
        }
        // Every slot is placed when an Active Ready node exists.
        if nodes.iter().any(|x| x.ready && x.availability == Availability::Active) {
            prop_assert_eq!(after.len(), replicas as usize);
        }
        let mut load2 = BTreeMap::new();
        for a in &after {
            *load2.entry(a.node.clone()).or_insert(0usize) += 1;
        }
        prop_assert!(plan(Mode::Replicated(replicas), &[], &nodes, &after, &load2, None).is_empty(), "a second plan");
    }
}
