//! The in-process backend: etcd's semantics over a `BTreeMap`, with a bounded history for
//! watches and leases expired by a timer. It is the model the other backends are tested
//! against, and the store of one-process tests.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::types::{Compare, Event, KeyValue, LeaseId, Op, Revision, Txn, TxnResult, Watch};
use crate::{Result, Store, StoreError};

/// Events kept for watches that start in the past.
pub(crate) const HISTORY: usize = 10_000;
/// Buffered events per watch; a watcher that falls this far behind is cut off (it sees its
/// channel close and watches again from its last revision), as etcd cancels slow watchers.
const WATCH_BUFFER: usize = 4096;

struct Lease {
    ttl: Duration,
    deadline: Instant,
    keys: HashSet<String>,
}

struct Watcher {
    prefix: String,
    tx: mpsc::Sender<Event>,
}

#[derive(Default)]
struct Inner {
    kv: BTreeMap<String, KeyValue>,
    revision: Revision,
    /// (revision, event), oldest first.
    history: VecDeque<Event>,
    /// Events before this revision are gone.
    compacted: Revision,
    leases: HashMap<LeaseId, Lease>,
    next_lease: LeaseId,
    watchers: Vec<Watcher>,
    /// Where changes are made durable before they are applied (the redb backend).
    persist: Option<Box<dyn Persist>>,
}

/// What a durable backend had when it was opened.
pub(crate) struct Loaded {
    pub kv: BTreeMap<String, KeyValue>,
    pub revision: Revision,
    pub compacted: Revision,
    pub history: VecDeque<Event>,
}

/// A backend's durable copy: given a revision's events before they take effect; an error
/// leaves the store unchanged.
pub(crate) trait Persist: Send {
    fn persist(&mut self, events: &[Event], revision: Revision) -> Result<()>;
    fn compacted(&mut self, revision: Revision) -> Result<()>;
}

#[derive(Clone)]
pub struct Memory {
    inner: Arc<Mutex<Inner>>,
}

impl Default for Memory {
    fn default() -> Self {
        Memory::new()
    }
}

impl Memory {
    /// A new, empty store. Must be called inside a tokio runtime (its lease timer).
    pub fn new() -> Memory {
        let m = Memory {
            inner: Arc::new(Mutex::new(Inner {
                revision: 1,
                next_lease: 0x1000,
                ..Inner::default()
            })),
        };
        let weak = Arc::downgrade(&m.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let Some(inner) = weak.upgrade() else { return };
                let mut st = inner.lock().expect("lock");
                let now = Instant::now();
                let expired: Vec<LeaseId> = st
                    .leases
                    .iter()
                    .filter(|(_, l)| l.deadline <= now)
                    .map(|(id, _)| *id)
                    .collect();
                for id in expired {
                    st.drop_lease(id);
                }
            }
        });
        m
    }

    /// A store over loaded state whose changes go to `persist` first (the redb backend).
    pub(crate) fn with_state(state: Loaded, persist: Box<dyn Persist>) -> Memory {
        let m = Memory::new();
        {
            let mut st = m.lock();
            st.kv = state.kv;
            st.revision = state.revision.max(1);
            st.compacted = state.compacted;
            st.history = state.history;
            st.persist = Some(persist);
        }
        m
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("lock")
    }
}

impl Inner {
    fn holds(&self, c: &Compare) -> bool {
        match c {
            Compare::Absent(k) => !self.kv.contains_key(k),
            Compare::Present(k) => self.kv.contains_key(k),
            Compare::ModRevision(k, cmp, rev) => {
                cmp.holds(self.kv.get(k).map_or(0, |kv| kv.mod_revision), *rev)
            }
            Compare::Value(k, v) => self.kv.get(k).is_some_and(|kv| &kv.value == v),
        }
    }

    /// Applies `ops` as one revision; returns the events (none: the revision stays). The
    /// events are planned first, then made durable (the redb backend), then applied: a
    /// failure to persist changes nothing.
    fn apply(&mut self, ops: &[Op]) -> Result<Vec<Event>> {
        let events = self.plan(ops)?;
        if events.is_empty() {
            return Ok(events);
        }
        let rev = self.revision + 1;
        if let Some(p) = self.persist.as_mut() {
            p.persist(&events, rev)?;
        }
        for e in &events {
            match e {
                Event::Put { kv, prev } => {
                    if let Some(old) = prev.as_ref().and_then(|p| p.lease) {
                        if Some(old) != kv.lease {
                            if let Some(l) = self.leases.get_mut(&old) {
                                l.keys.remove(&kv.key);
                            }
                        }
                    }
                    if let Some(l) = kv.lease.and_then(|id| self.leases.get_mut(&id)) {
                        l.keys.insert(kv.key.clone());
                    }
                    self.kv.insert(kv.key.clone(), kv.clone());
                }
                Event::Delete { prev, .. } => {
                    self.remove_key(&prev.key);
                }
                Event::Compacted { .. } => {}
            }
        }
        self.revision = rev;
        self.publish(&events);
        Ok(events)
    }

    /// The events `ops` would make, in order, without changing anything. Later ops see the
    /// effect of earlier ones in the same transaction.
    fn plan(&self, ops: &[Op]) -> Result<Vec<Event>> {
        for op in ops {
            if let Op::Put {
                lease: Some(id), ..
            } = op
            {
                if !self.leases.contains_key(id) {
                    return Err(StoreError::LeaseNotFound(*id));
                }
            }
        }
        let rev = self.revision + 1;
        let mut overlay: HashMap<String, Option<KeyValue>> = HashMap::new();
        let current = |overlay: &HashMap<String, Option<KeyValue>>, k: &str| -> Option<KeyValue> {
            match overlay.get(k) {
                Some(v) => v.clone(),
                None => self.kv.get(k).cloned(),
            }
        };
        let mut events = Vec::new();
        for op in ops {
            match op {
                Op::Put { key, value, lease } => {
                    let prev = current(&overlay, key);
                    let kv = KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
                        mod_revision: rev,
                        lease: *lease,
                    };
                    overlay.insert(key.clone(), Some(kv.clone()));
                    events.push(Event::Put { kv, prev });
                }
                Op::Delete(key) => {
                    if let Some(prev) = current(&overlay, key) {
                        overlay.insert(key.clone(), None);
                        events.push(Event::Delete {
                            prev,
                            revision: rev,
                        });
                    }
                }
                Op::DeletePrefix(prefix) => {
                    let mut keys: Vec<String> = self
                        .kv
                        .range(prefix.clone()..)
                        .take_while(|(k, _)| k.starts_with(prefix.as_str()))
                        .map(|(k, _)| k.clone())
                        .collect();
                    keys.extend(
                        overlay
                            .keys()
                            .filter(|k| k.starts_with(prefix.as_str()))
                            .cloned(),
                    );
                    keys.sort();
                    keys.dedup();
                    for k in keys {
                        if let Some(prev) = current(&overlay, &k) {
                            overlay.insert(k.clone(), None);
                            events.push(Event::Delete {
                                prev,
                                revision: rev,
                            });
                        }
                    }
                }
            }
        }
        Ok(events)
    }

    fn remove_key(&mut self, key: &str) -> Option<KeyValue> {
        let prev = self.kv.remove(key)?;
        if let Some(l) = prev.lease.and_then(|id| self.leases.get_mut(&id)) {
            l.keys.remove(key);
        }
        Some(prev)
    }

    fn publish(&mut self, events: &[Event]) {
        for e in events {
            self.history.push_back(e.clone());
        }
        while self.history.len() > HISTORY {
            if let Some(old) = self.history.pop_front() {
                self.compacted = self.compacted.max(old.revision() + 1);
            }
        }
        self.watchers.retain(|w| {
            events
                .iter()
                .filter(|e| e.key().is_some_and(|k| k.starts_with(&w.prefix)))
                .all(|e| w.tx.try_send(e.clone()).is_ok())
        });
    }

    fn drop_lease(&mut self, id: LeaseId) -> bool {
        let Some(lease) = self.leases.remove(&id) else {
            return false;
        };
        let ops: Vec<Op> = lease.keys.into_iter().map(Op::Delete).collect();
        let _ = self.apply(&ops);
        true
    }
}

impl Store for Memory {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>>> {
        Box::pin(async move { Ok(self.lock().kv.get(key).cloned()) })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<(Vec<KeyValue>, Revision)>> {
        Box::pin(async move {
            let st = self.lock();
            let out = st
                .kv
                .range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(_, v)| v.clone())
                .collect();
            Ok((out, st.revision))
        })
    }

    fn txn(&self, txn: Txn) -> BoxFuture<'_, Result<TxnResult>> {
        Box::pin(async move {
            let mut st = self.lock();
            let succeeded = txn.compares.iter().all(|c| st.holds(c));
            let ops = if succeeded { &txn.then } else { &txn.otherwise };
            st.apply(ops)?;
            Ok(TxnResult {
                succeeded,
                revision: st.revision,
            })
        })
    }

    fn watch<'a>(&'a self, prefix: &'a str, from: Revision) -> BoxFuture<'a, Result<Watch>> {
        Box::pin(async move {
            let (tx, rx) = mpsc::channel(WATCH_BUFFER);
            let mut st = self.lock();
            if from > 0 && from < st.compacted {
                let _ = tx.try_send(Event::Compacted {
                    compact_revision: st.compacted,
                });
                return Ok(rx);
            }
            if from > 0 {
                for e in st.history.iter().filter(|e| e.revision() >= from) {
                    if e.key().is_some_and(|k| k.starts_with(prefix))
                        && tx.try_send(e.clone()).is_err()
                    {
                        // More history than a watch buffers: the caller lists instead.
                        let (tx, rx) = mpsc::channel(1);
                        let _ = tx.try_send(Event::Compacted {
                            compact_revision: st.revision,
                        });
                        return Ok(rx);
                    }
                }
            }
            st.watchers.push(Watcher {
                prefix: prefix.to_string(),
                tx,
            });
            Ok(rx)
        })
    }

    fn grant(&self, ttl: Duration) -> BoxFuture<'_, Result<LeaseId>> {
        Box::pin(async move {
            let mut st = self.lock();
            st.next_lease += 1;
            let id = st.next_lease;
            st.leases.insert(
                id,
                Lease {
                    ttl,
                    deadline: Instant::now() + ttl,
                    keys: HashSet::new(),
                },
            );
            Ok(id)
        })
    }

    fn keep_alive(&self, lease: LeaseId) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut st = self.lock();
            let l = st
                .leases
                .get_mut(&lease)
                .ok_or(StoreError::LeaseNotFound(lease))?;
            l.deadline = Instant::now() + l.ttl;
            Ok(())
        })
    }

    fn revoke(&self, lease: LeaseId) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if self.lock().drop_lease(lease) {
                Ok(())
            } else {
                Err(StoreError::LeaseNotFound(lease))
            }
        })
    }

    fn compact(&self, revision: Revision) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut st = self.lock();
            if revision > st.revision {
                return Err(StoreError::Rejected(format!(
                    "cannot compact to revision {revision}: the store is at {}",
                    st.revision
                )));
            }
            if let Some(p) = st.persist.as_mut() {
                p.compacted(revision)?;
            }
            while st.history.front().is_some_and(|e| e.revision() < revision) {
                st.history.pop_front();
            }
            st.compacted = st.compacted.max(revision);
            Ok(())
        })
    }
}
