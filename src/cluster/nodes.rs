//! Nodes in etcd: the records, the key space, and the decisions about them (registering
//! under a name, updating a spec, removing), pure so they are tested without etcd.
//!
//! ```text
//! /berth/cluster/nodes/<id>     the node's record (kept while the node is down)
//! /berth/cluster/names/<name>   → the id holding the name
//! /berth/cluster/alive/<id>     → the advertise address, on the node's lease
//! /berth/cluster/nodeidx/<n>    → the id holding index n (1..=65535)
//! ```
//!
//! The index is a small number unique among the cluster's nodes, for as long as the node
//! is a member: the routing mesh writes it into the marks of the connections a node
//! brought in (16 bits of a packet mark, where an id or an address would not fit).
//!
//! Liveness is one key per node on its lease, so a node's loss is one watch event (its
//! lease expires) however many containers it ran, and `Ready`/`Down` needs no clock.

use std::collections::BTreeMap;
use std::net::IpAddr;

use berth_store::{Compare, LeaseId, Op, Txn};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub(crate) const NODES: &str = "/berth/cluster/nodes/";
pub(crate) const NAMES: &str = "/berth/cluster/names/";
pub(crate) const ALIVE: &str = "/berth/cluster/alive/";
pub(crate) const INDEXES: &str = "/berth/cluster/nodeidx/";
/// Indexes are 16 bits (`berth_firewall::mesh_mark`); 0 is no index.
pub(crate) const MAX_INDEX: u32 = 0xffff;

pub(crate) fn index_key(n: u32) -> String {
    format!("{INDEXES}{n}")
}

/// The smallest index no node holds.
pub(crate) fn free_index(taken: &std::collections::BTreeSet<u32>) -> Option<u32> {
    (1..=MAX_INDEX).find(|i| !taken.contains(i))
}

pub(crate) fn node_key(id: &str) -> String {
    format!("{NODES}{id}")
}

pub(crate) fn name_key(name: &str) -> String {
    format!("{NAMES}{name}")
}

pub(crate) fn alive_key(id: &str) -> String {
    format!("{ALIVE}{id}")
}

/// Whether the scheduler may place work on the node (docker's node availability).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    #[default]
    Active,
    Pause,
    Drain,
}

impl Availability {
    pub(crate) fn parse(s: &str) -> Option<Availability> {
        match s.to_ascii_lowercase().as_str() {
            "active" => Some(Availability::Active),
            "pause" => Some(Availability::Pause),
            "drain" => Some(Availability::Drain),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Availability::Active => "active",
            Availability::Pause => "pause",
            Availability::Drain => "drain",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: String,
    pub name: String,
    pub addr: IpAddr,
    /// Set with `node update --label-add` (and `--node-label` at the daemon's start).
    pub labels: BTreeMap<String, String>,
    pub availability: Availability,
    /// See the module's doc; 0 in records written before indexes existed.
    #[serde(default)]
    pub index: u32,
    pub engine_version: String,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// A node as listed: its record, the record's revision, and whether its lease lives.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub record: NodeRecord,
    pub revision: i64,
    pub ready: bool,
}

/// Who holds the name this node starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Holder {
    Nobody,
    /// This node itself (a restart).
    Us,
    /// Another node whose lease is gone: the name passes to us, its record goes.
    DownNode(String),
    /// Another node that is alive: the name is taken.
    LiveNode {
        id: String,
        addr: String,
    },
}

pub(crate) fn holder(
    our_id: &str,
    name_holder: Option<&str>,
    holder_alive: Option<&str>,
) -> Holder {
    match (name_holder, holder_alive) {
        (None, _) => Holder::Nobody,
        (Some(id), _) if id == our_id => Holder::Us,
        (Some(id), None) => Holder::DownNode(id.to_string()),
        (Some(id), Some(addr)) => Holder::LiveNode {
            id: id.to_string(),
            addr: addr.to_string(),
        },
    }
}

/// The transaction that registers `rec` under its name on `lease`, given who held the
/// name when it was read; its compares make it fail if that changed meanwhile. `None`
/// when a live node holds the name.
/// `claim` says whether `rec.index` is new (its key must be free) or already this node's
/// (its key must still say so); `old_index` is the index of the down node whose name is
/// taken over, freed in the same transaction.
pub(crate) fn register_txn(
    rec: &NodeRecord,
    holder: &Holder,
    lease: LeaseId,
    claim: bool,
    old_index: Option<u32>,
) -> Option<Txn> {
    let name = name_key(&rec.name);
    let idx = index_key(rec.index);
    let mut compares = vec![if claim {
        Compare::Absent(idx.clone())
    } else {
        Compare::Value(idx.clone(), rec.id.clone().into_bytes())
    }];
    let mut then = Vec::new();
    match holder {
        Holder::Nobody => compares.push(Compare::Absent(name.clone())),
        Holder::Us => compares.push(Compare::Value(name.clone(), rec.id.clone().into_bytes())),
        Holder::DownNode(old) => {
            compares.push(Compare::Value(name.clone(), old.clone().into_bytes()));
            compares.push(Compare::Absent(alive_key(old)));
            then.push(Op::Delete(node_key(old)));
            if let Some(i) = old_index.filter(|i| *i != rec.index) {
                then.push(Op::Delete(index_key(i)));
            }
        }
        Holder::LiveNode { .. } => return None,
    }
    then.push(Op::put(idx, rec.id.clone()));
    then.push(Op::put(name, rec.id.clone()));
    then.push(Op::put(
        node_key(&rec.id),
        serde_json::to_vec(rec).expect("a node record serializes"),
    ));
    then.push(Op::put_on(alive_key(&rec.id), rec.addr.to_string(), lease));
    Some(Txn::when(compares, then))
}

/// What `node update` changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeChange {
    pub availability: Option<Availability>,
    /// The whole label set, as docker's update sends it (the CLI merges add and rm).
    pub labels: Option<BTreeMap<String, String>>,
}

pub(crate) fn apply_change(rec: &NodeRecord, c: &NodeChange, now: DateTime<Utc>) -> NodeRecord {
    let mut r = rec.clone();
    if let Some(a) = c.availability {
        r.availability = a;
    }
    if let Some(l) = &c.labels {
        r.labels = l.clone();
    }
    r.updated = now;
    r
}

/// Docker's lookup: full id, exact name, then a unique id prefix.
pub(crate) fn find<'a>(nodes: &'a [NodeView], key: &str) -> Result<&'a NodeView, String> {
    if let Some(n) = nodes.iter().find(|n| n.record.id == key) {
        return Ok(n);
    }
    if let Some(n) = nodes.iter().find(|n| n.record.name == key) {
        return Ok(n);
    }
    let m: Vec<&NodeView> = nodes
        .iter()
        .filter(|n| !key.is_empty() && n.record.id.starts_with(key))
        .collect();
    match m.len() {
        1 => Ok(m[0]),
        0 => Err(format!("node {key} not found")),
        n => Err(format!("node {key} is ambiguous ({n} matches found)")),
    }
}

/// A node id as docker's (25 characters of [0-9a-z]).
pub(crate) fn new_node_id() -> String {
    use rand::Rng;
    const A: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    (0..25)
        .map(|_| char::from(A[rng.random_range(0..A.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, name: &str) -> NodeRecord {
        NodeRecord {
            id: id.into(),
            name: name.into(),
            addr: "10.99.0.11".parse().unwrap(),
            labels: Default::default(),
            availability: Availability::Active,
            index: 4,
            engine_version: "0.1.0".into(),
            created: Utc::now(),
            updated: Utc::now(),
        }
    }

    #[test]
    fn a_name_goes_to_a_new_node_only_from_a_down_one() {
        assert_eq!(holder("a", None, None), Holder::Nobody);
        assert_eq!(holder("a", Some("a"), Some("10.0.0.1")), Holder::Us);
        assert_eq!(holder("a", Some("b"), None), Holder::DownNode("b".into()));
        assert!(matches!(
            holder("a", Some("b"), Some("10.0.0.2")),
            Holder::LiveNode { .. }
        ));
        let r = rec("a", "n1");
        assert!(register_txn(&r, &holder("a", Some("b"), Some("x")), 7, true, None).is_none());
        // Taking a down node's name: only while it is still down and still holds it, and
        // its record goes in the same transaction.
        let t = register_txn(&r, &Holder::DownNode("b".into()), 7, true, Some(2)).unwrap();
        assert_eq!(
            t.compares,
            vec![
                Compare::Absent(index_key(4)),
                Compare::Value(name_key("n1"), b"b".to_vec()),
                Compare::Absent(alive_key("b"))
            ]
        );
        assert_eq!(t.then[0], Op::Delete(node_key("b")));
        assert_eq!(
            t.then[1],
            Op::Delete(index_key(2)),
            "the down node's index is freed"
        );
        assert!(
            matches!(&t.then[5], Op::Put { key, lease: Some(7), .. } if *key == alive_key("a"))
        );
        // A restart keeps its index, if it is still its own.
        let again = register_txn(&r, &Holder::Us, 7, false, None).unwrap();
        assert_eq!(
            again.compares[0],
            Compare::Value(index_key(4), b"a".to_vec())
        );
        let fresh = register_txn(&r, &Holder::Nobody, 7, true, None).unwrap();
        assert_eq!(
            fresh.compares,
            vec![
                Compare::Absent(index_key(4)),
                Compare::Absent(name_key("n1"))
            ]
        );
        let taken = [1, 2, 4].into_iter().collect();
        assert_eq!(free_index(&taken), Some(3));
    }

    #[test]
    fn lookups_and_updates() {
        let view = |id: &str, name: &str| NodeView {
            record: rec(id, name),
            revision: 1,
            ready: true,
        };
        let nodes = vec![view("abc1", "n1"), view("abd2", "n2")];
        assert_eq!(find(&nodes, "n2").unwrap().record.id, "abd2");
        assert_eq!(find(&nodes, "abc").unwrap().record.name, "n1");
        assert!(find(&nodes, "ab").unwrap_err().contains("ambiguous"));
        assert!(find(&nodes, "zz").unwrap_err().contains("not found"));
        let r = rec("a", "n1");
        let c = NodeChange {
            availability: Some(Availability::Drain),
            labels: Some([("zone".to_string(), "b".to_string())].into()),
        };
        let u = apply_change(&r, &c, Utc::now());
        assert_eq!(u.availability, Availability::Drain);
        assert_eq!(u.labels["zone"], "b");
        assert_eq!(u.created, r.created);
        let id = new_node_id();
        assert_eq!(id.len(), 25);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
        assert_eq!(Availability::parse("Drain"), Some(Availability::Drain));
        assert_eq!(Availability::parse("gone"), None);
    }
}
