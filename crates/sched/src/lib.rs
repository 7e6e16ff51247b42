//! Placing a service's tasks on nodes, as Swarm's orchestrator and scheduler do together,
//! as a pure function of what is: the nodes (readiness, availability, labels), the service's
//! mode and constraints, and the tasks that exist. The daemon elected to schedule runs it on
//! every change and writes the difference to etcd; everything else (starting containers,
//! reporting state) is the nodes' agents'.
//!
//! The rules (docker's): a task stays where it is while its node is Ready, not drained, and
//! meets the constraints, so a healthy replica is never moved; a task on a node that is
//! Down, drained or no longer allowed is placed anew on the allowed Ready node with the
//! fewest tasks (of all services: `load`), ties by node name; a paused node keeps its tasks
//! and gets no new ones. Replicated services have slots `1..=replicas`; a global service has
//! one task per allowed node.

use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Active,
    Pause,
    Drain,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    pub ready: bool,
    pub availability: Availability,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Replicated(u32),
    Global,
}

/// What a constraint compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Hostname,
    Id,
    Label(String),
}

/// `node.hostname==x`, `node.labels.zone!=b`, … (docker's placement constraints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub field: Field,
    pub equal: bool,
    pub value: String,
}

impl Constraint {
    pub fn parse(s: &str) -> Result<Constraint, String> {
        let (key, equal, value) = if let Some((k, v)) = s.split_once("!=") {
            (k, false, v)
        } else if let Some((k, v)) = s.split_once("==") {
            (k, true, v)
        } else {
            return Err(format!(
                "constraint {s:?}: use KEY==VALUE or KEY!=VALUE, e.g. node.hostname==n1 or node.labels.zone!=b"
            ));
        };
        let key = key.trim();
        let value = value.trim();
        let field = match key {
            "node.hostname" => Field::Hostname,
            "node.id" => Field::Id,
            k => match k.strip_prefix("node.labels.") {
                Some(l) if !l.is_empty() => Field::Label(l.to_string()),
                _ => {
                    return Err(format!(
                        "constraint {s:?}: {key:?} is not a key berth knows (node.hostname, node.id, node.labels.NAME)"
                    ))
                }
            },
        };
        if value.is_empty() {
            return Err(format!("constraint {s:?}: no value to compare with"));
        }
        Ok(Constraint {
            field,
            equal,
            value: value.to_string(),
        })
    }

    pub fn allows(&self, n: &Node) -> bool {
        let have = match &self.field {
            Field::Hostname => Some(n.hostname.as_str()),
            Field::Id => Some(n.id.as_str()),
            Field::Label(l) => n.labels.get(l).map(String::as_str),
        };
        (have == Some(self.value.as_str())) == self.equal
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = match &self.field {
            Field::Hostname => "node.hostname".to_string(),
            Field::Id => "node.id".to_string(),
            Field::Label(l) => format!("node.labels.{l}"),
        };
        let op = if self.equal { "==" } else { "!=" };
        write!(f, "{key}{op}{}", self.value)
    }
}

/// A task slot and the node it is on (for a global service the slot is unused: 0).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Placement {
    pub slot: u32,
    pub node: String,
}

/// What the scheduler wants changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Slots to (re)place: a new task on that node (the slot's old task, if any, goes).
    pub place: Vec<Placement>,
    /// Slots whose task goes and is not replaced (scaled down, global node gone).
    pub remove: Vec<Placement>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.place.is_empty() && self.remove.is_empty()
    }
}

fn eligible(n: &Node, constraints: &[Constraint]) -> bool {
    n.ready && constraints.iter().all(|c| c.allows(n))
}

/// Where each task of the service should be, from `current` (its tasks now) and `load`
/// (tasks per node, of every service, this one's included). `max_per_node` caps how many of
/// this service's tasks one node takes (docker's `--replicas-max-per-node`; a port published
/// in host mode allows one): a slot with no node under the cap waits.
pub fn plan(
    mode: Mode,
    constraints: &[Constraint],
    nodes: &[Node],
    current: &[Placement],
    load: &BTreeMap<String, usize>,
    max_per_node: Option<usize>,
) -> Plan {
    let mut load = load.clone();
    let by_id: BTreeMap<&str, &Node> = nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    // A task may stay on a Ready node that allows it and is not drained.
    let stays = |p: &Placement| {
        by_id
            .get(p.node.as_str())
            .is_some_and(|n| eligible(n, constraints) && n.availability != Availability::Drain)
    };
    let mut out = Plan::default();
    match mode {
        Mode::Replicated(replicas) => {
            // This service's tasks per node, of those that stay.
            let mut mine: BTreeMap<String, usize> = BTreeMap::new();
            for p in current
                .iter()
                .filter(|p| p.slot >= 1 && p.slot <= replicas && stays(p))
            {
                *mine.entry(p.node.clone()).or_default() += 1;
            }
            for p in current {
                if p.slot == 0 || p.slot > replicas {
                    out.remove.push(p.clone());
                    dec(&mut load, &p.node);
                }
            }
            for slot in 1..=replicas {
                let here = current.iter().find(|p| p.slot == slot);
                if here.is_some_and(stays) {
                    continue;
                }
                if let Some(h) = here {
                    dec(&mut load, &h.node);
                }
                let target = nodes
                    .iter()
                    .filter(|n| eligible(n, constraints) && n.availability == Availability::Active)
                    .filter(|n| {
                        max_per_node.is_none_or(|m| mine.get(&n.id).copied().unwrap_or(0) < m)
                    })
                    .min_by_key(|n| (load.get(&n.id).copied().unwrap_or(0), n.hostname.clone()));
                match target {
                    Some(n) => {
                        *load.entry(n.id.clone()).or_default() += 1;
                        *mine.entry(n.id.clone()).or_default() += 1;
                        out.place.push(Placement {
                            slot,
                            node: n.id.clone(),
                        });
                    }
                    // Nowhere to go: the task waits (docker: "no suitable node"), and an
                    // unreachable one is not kept as if it ran.
                    None => {
                        if let Some(h) = here {
                            out.remove.push(h.clone());
                        }
                    }
                }
            }
        }
        Mode::Global => {
            for p in current {
                if !stays(p) {
                    out.remove.push(p.clone());
                }
            }
            for n in nodes
                .iter()
                .filter(|n| eligible(n, constraints) && n.availability == Availability::Active)
            {
                if !current.iter().any(|p| p.node == n.id) {
                    out.place.push(Placement {
                        slot: 0,
                        node: n.id.clone(),
                    });
                }
            }
        }
    }
    out.place.sort();
    out.remove.sort();
    out
}

fn dec(load: &mut BTreeMap<String, usize>, node: &str) {
    if let Some(l) = load.get_mut(node) {
        *l = l.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, ready: bool, a: Availability) -> Node {
        Node {
            id: id.into(),
            hostname: id.into(),
            labels: BTreeMap::from([("zone".to_string(), format!("z{}", &id[1..]))]),
            ready,
            availability: a,
        }
    }

    fn at(slot: u32, node: &str) -> Placement {
        Placement {
            slot,
            node: node.into(),
        }
    }

    #[test]
    fn spread_then_keep_then_move_off_a_down_node() {
        let nodes = [
            node("n1", true, Availability::Active),
            node("n2", true, Availability::Active),
            node("n3", true, Availability::Active),
        ];
        let p = plan(
            Mode::Replicated(3),
            &[],
            &nodes,
            &[],
            &BTreeMap::new(),
            None,
        );
        assert_eq!(p.place, [at(1, "n1"), at(2, "n2"), at(3, "n3")]);
        let now = p.place.clone();
        let load: BTreeMap<String, usize> = now.iter().map(|p| (p.node.clone(), 1)).collect();
        assert!(plan(Mode::Replicated(3), &[], &nodes, &now, &load, None).is_empty());
        let down = [
            nodes[0].clone(),
            nodes[1].clone(),
            node("n3", false, Availability::Active),
        ];
        let p = plan(Mode::Replicated(3), &[], &down, &now, &load, None);
        assert_eq!(p.place, [at(3, "n1")]);
        assert!(p.remove.is_empty());
    }

    #[test]
    fn drain_pause_constraints_scale_and_global() {
        let nodes = [
            node("n1", true, Availability::Drain),
            node("n2", true, Availability::Pause),
            node("n3", true, Availability::Active),
        ];
        // A paused node keeps its task, a drained one loses it; nothing new on either.
        let now = [at(1, "n1"), at(2, "n2")];
        let load = BTreeMap::from([("n1".into(), 1), ("n2".into(), 1)]);
        let p = plan(Mode::Replicated(2), &[], &nodes, &now, &load, None);
        assert_eq!(p.place, [at(1, "n3")]);
        // Scaled down: the highest slots go.
        let p = plan(
            Mode::Replicated(1),
            &[],
            &nodes,
            &[at(1, "n3"), at(2, "n3")],
            &load,
            None,
        );
        assert_eq!(p.remove, [at(2, "n3")]);
        // Constraints.
        let c = [Constraint::parse("node.labels.zone!=z3").unwrap()];
        let p = plan(Mode::Replicated(1), &c, &nodes, &[], &BTreeMap::new(), None);
        assert!(
            p.place.is_empty(),
            "n3 excluded, n1 drained, n2 paused: {p:?}"
        );
        // Global: one per Active allowed node.
        let all = [
            node("n1", true, Availability::Active),
            node("n2", false, Availability::Active),
            node("n3", true, Availability::Active),
        ];
        let p = plan(
            Mode::Global,
            &[],
            &all,
            &[at(0, "n2")],
            &BTreeMap::new(),
            None,
        );
        assert_eq!(p.place, [at(0, "n1"), at(0, "n3")]);
        assert_eq!(p.remove, [at(0, "n2")]);
    }

    #[test]
    fn at_most_one_per_node_when_asked() {
        let nodes = [
            node("n1", true, Availability::Active),
            node("n2", true, Availability::Active),
        ];
        let p = plan(
            Mode::Replicated(3),
            &[],
            &nodes,
            &[],
            &BTreeMap::new(),
            Some(1),
        );
        assert_eq!(p.place, [at(1, "n1"), at(2, "n2")], "the third slot waits");
        let p = plan(
            Mode::Replicated(3),
            &[],
            &nodes,
            &[],
            &BTreeMap::new(),
            None,
        );
        assert_eq!(p.place.len(), 3);
    }

    #[test]
    fn constraints_parse_and_print() {
        for s in ["node.hostname==n1", "node.labels.zone!=b", "node.id==abc"] {
            assert_eq!(Constraint::parse(s).unwrap().to_string(), s);
        }
        for bad in [
            "node.hostname=n1",
            "node.cpu==4",
            "node.labels.==x",
            "node.hostname==",
        ] {
            assert!(Constraint::parse(bad).is_err(), "{bad}");
        }
    }
}
