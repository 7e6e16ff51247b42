//! The one change feed: the store's watch on `/berth/`, turned into a state cache and
//! handed to the controllers.
//!
//! The cache ([`Snapshot`]) holds the records as committed, in persistent maps, and is
//! swapped whole after every batch of changes: a reader never sees half a transaction,
//! and a snapshot costs nothing to keep. Nothing but the watch changes it, the daemon's
//! own writes included, so what a controller sees is what another node of a cluster would
//! see. Each controller has `resync` (the whole state, at start and after the watch lost
//! history) and `apply` (one change); they must agree, and the DNS controller's test
//! checks that they do.
//!
//! Read-your-writes: an operation that committed at revision R waits with [`Feed::settle`]
//! until the controllers have applied R before it answers, so a name is resolvable when
//! `run -d` returns and gone when `rm` does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use berth_store::{Event, Revision, Store};
use tokio::sync::watch;

use super::keys;
use crate::model::{Container, Network};

/// The records as committed at `revision`.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub revision: Revision,
    pub networks: imbl::OrdMap<String, Arc<Network>>,
    pub containers: imbl::OrdMap<String, Arc<Container>>,
}

/// One record's change, with the record before it (from the cache, so every backend gives
/// the same) and after it (`None`: deleted).
#[derive(Debug, Clone)]
pub(crate) enum Change {
    Network {
        prev: Option<Arc<Network>>,
        new: Option<Arc<Network>>,
    },
    Container {
        prev: Option<Arc<Container>>,
        new: Option<Arc<Container>>,
        revision: Revision,
    },
}

/// Something that keeps a part of the world in line with the records.
pub(crate) trait Controller: Send + Sync {
    /// Brings everything in line with the whole state.
    fn resync(&self, snap: &Snapshot);
    /// Follows one change; `snap` is the state after it.
    fn apply(&self, snap: &Snapshot, change: &Change);
}

pub(crate) struct Feed {
    snapshot: ArcSwap<Snapshot>,
    applied: watch::Sender<Revision>,
    running: AtomicBool,
    controllers: Vec<Arc<dyn Controller>>,
}

/// How long an operation waits for its own change to reach the controllers before it
/// answers anyway (the feed is in the same process: only a stuck controller takes this).
const SETTLE_WAIT: Duration = Duration::from_secs(10);

impl Feed {
    pub(crate) fn new(controllers: Vec<Arc<dyn Controller>>) -> Feed {
        Feed {
            snapshot: Default::default(),
            applied: watch::channel(0).0,
            running: AtomicBool::new(false),
            controllers,
        }
    }

    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Waits until the controllers have applied `revision`. Before the feed runs (while the
    /// daemon loads and reconciles) there is nobody to wait for: the start's resync sees
    /// everything committed until then.
    pub(crate) async fn settle(&self, revision: Revision) {
        if !self.running.load(Ordering::Acquire) {
            return;
        }
        let mut rx = self.applied.subscribe();
        let reached = tokio::time::timeout(SETTLE_WAIT, rx.wait_for(|r| *r >= revision)).await;
        if reached.is_err() {
            tracing::warn!(
                revision,
                "the change feed is behind; answering before the controllers caught up"
            );
        }
    }

    /// Lists the state, resyncs every controller from it, then follows the watch from the
    /// next revision on, in a task of its own.
    pub(crate) async fn start(
        self: &Arc<Self>,
        store: Arc<dyn Store>,
    ) -> berth_store::Result<tokio::task::JoinHandle<()>> {
        self.resync(&*store).await?;
        self.running.store(true, Ordering::Release);
        let feed = self.clone();
        Ok(tokio::spawn(async move { feed.follow(store).await }))
    }

    async fn resync(&self, store: &dyn Store) -> berth_store::Result<()> {
        let (records, revision) = store.list(keys::ROOT).await?;
        let mut snap = Snapshot {
            revision,
            ..Snapshot::default()
        };
        for kv in records {
            step(&mut snap, &kv.key, Some(&kv.value), revision);
        }
        let snap = Arc::new(snap);
        // Swapped in first: a reader woken by a controller finds the state it woke for.
        self.snapshot.store(snap.clone());
        for c in &self.controllers {
            c.resync(&snap);
        }
        self.applied.send_replace(revision);
        Ok(())
    }

    async fn follow(&self, store: Arc<dyn Store>) {
        let mut backoff = Duration::from_millis(50);
        loop {
            let from = self.snapshot.load().revision + 1;
            let mut w = match store.watch(keys::ROOT, from).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!("watching the store: {e}; trying again");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            backoff = Duration::from_millis(50);
            while let Some(first) = w.recv().await {
                // Whatever is queued already goes in the same snapshot: a transaction's
                // events are queued together, so none is published half applied.
                let mut batch = vec![first];
                while let Ok(e) = w.try_recv() {
                    batch.push(e);
                }
                if batch.iter().any(|e| matches!(e, Event::Compacted { .. })) {
                    tracing::info!("the store's history no longer reaches the cache: resync");
                    while let Err(e) = self.resync(&*store).await {
                        tracing::warn!("resyncing from the store: {e}; trying again");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    break;
                }
                self.apply_batch(batch);
            }
            // The watch ended (cut off as a slow watcher, or a backend reconnecting):
            // again from the cache's revision, with no gap.
        }
    }

    fn apply_batch(&self, batch: Vec<Event>) {
        let mut snap = Snapshot::clone(&self.snapshot.load());
        let mut changes = Vec::with_capacity(batch.len());
        for e in batch {
            let revision = e.revision();
            snap.revision = snap.revision.max(revision);
            let (key, value) = match &e {
                Event::Put { kv, .. } => (kv.key.as_str(), Some(kv.value.as_slice())),
                Event::Delete { prev, .. } => (prev.key.as_str(), None),
                Event::Compacted { .. } => continue,
            };
            if let Some(change) = step(&mut snap, key, value, revision) {
                changes.push(change);
            }
        }
        let revision = snap.revision;
        let snap = Arc::new(snap);
        self.snapshot.store(snap.clone());
        // Controllers see the state after the whole batch, and each change of it in order.
        for change in &changes {
            for c in &self.controllers {
                c.apply(&snap, change);
            }
        }
        self.applied.send_replace(revision);
    }
}

/// A record before and after a change (`None`: absent).
type BeforeAfter<T> = (Option<Arc<T>>, Option<Arc<T>>);

/// A record put (`value`) into or deleted from `map`: (before, after), or `None` for a
/// value the cache cannot read (the record is left as it was).
fn swap<T: serde::de::DeserializeOwned>(
    map: &mut imbl::OrdMap<String, Arc<T>>,
    key: &str,
    id: &str,
    value: Option<&[u8]>,
) -> Option<BeforeAfter<T>> {
    let new = match value {
        Some(v) => Some(Arc::new(
            serde_json::from_slice::<T>(v)
                .map_err(|e| tracing::warn!(key, "a record the cache cannot read: {e}"))
                .ok()?,
        )),
        None => None,
    };
    let prev = match &new {
        Some(n) => map.insert(id.to_string(), n.clone()),
        None => map.remove(id),
    };
    Some((prev, new))
}

/// One event into the snapshot; the change it makes, if it is a record the cache holds.
pub(crate) fn step(
    snap: &mut Snapshot,
    key: &str,
    value: Option<&[u8]>,
    revision: Revision,
) -> Option<Change> {
    if let Some(id) = key.strip_prefix(keys::NETWORKS) {
        let (prev, new) = swap(&mut snap.networks, key, id, value)?;
        Some(Change::Network { prev, new })
    } else if let Some(id) = key.strip_prefix(keys::CONTAINERS) {
        let (prev, new) = swap(&mut snap.containers, key, id, value)?;
        Some(Change::Container {
            prev,
            new,
            revision,
        })
    } else {
        None
    }
}
