//! The store's data: records, compares, operations, events.

/// A store-wide counter; every transaction that changes something increments it once.
pub type Revision = i64;
/// A lease's id (etcd's: non-zero).
pub type LeaseId = i64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// The revision that created the key (since its last deletion).
    pub create_revision: Revision,
    /// The revision of its last change.
    pub mod_revision: Revision,
    /// The lease it lives on, if any.
    pub lease: Option<LeaseId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Equal,
    NotEqual,
    Less,
    Greater,
}

impl Cmp {
    pub fn holds(self, left: Revision, right: Revision) -> bool {
        match self {
            Cmp::Equal => left == right,
            Cmp::NotEqual => left != right,
            Cmp::Less => left < right,
            Cmp::Greater => left > right,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key does not exist (etcd: create revision 0).
    Absent(String),
    /// The key exists.
    Present(String),
    /// The key's modification revision compared with a revision (0 for a missing key).
    ModRevision(String, Cmp, Revision),
    /// The key exists with exactly this value.
    Value(String, Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    },
    Delete(String),
    DeletePrefix(String),
}

impl Op {
    pub fn put(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Op {
        Op::Put {
            key: key.into(),
            value: value.into(),
            lease: None,
        }
    }

    pub fn put_on(key: impl Into<String>, value: impl Into<Vec<u8>>, lease: LeaseId) -> Op {
        Op::Put {
            key: key.into(),
            value: value.into(),
            lease: Some(lease),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub then: Vec<Op>,
    pub otherwise: Vec<Op>,
}

impl Txn {
    /// Unconditional: `ops` applied atomically.
    pub fn ops(ops: Vec<Op>) -> Txn {
        Txn {
            then: ops,
            ..Txn::default()
        }
    }

    pub fn when(compares: Vec<Compare>, then: Vec<Op>) -> Txn {
        Txn {
            compares,
            then,
            otherwise: vec![],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnResult {
    pub succeeded: bool,
    /// The store's revision after the transaction (unchanged if it changed nothing).
    pub revision: Revision,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Put {
        kv: KeyValue,
        prev: Option<KeyValue>,
    },
    /// `prev` is the record as it was; `revision` the deletion's.
    Delete { prev: KeyValue, revision: Revision },
    /// The watch's start is older than the kept history; nothing more comes: list again.
    Compacted { compact_revision: Revision },
}

impl Event {
    pub fn revision(&self) -> Revision {
        match self {
            Event::Put { kv, .. } => kv.mod_revision,
            Event::Delete { revision, .. } => *revision,
            Event::Compacted { compact_revision } => *compact_revision,
        }
    }

    pub fn key(&self) -> Option<&str> {
        match self {
            Event::Put { kv, .. } => Some(&kv.key),
            Event::Delete { prev, .. } => Some(&prev.key),
            Event::Compacted { .. } => None,
        }
    }
}

/// A watch's events; dropping it cancels the watch.
pub type Watch = tokio::sync::mpsc::Receiver<Event>;
