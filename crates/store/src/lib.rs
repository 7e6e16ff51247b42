//! berth's state store, version 2: keys with a value, a creation and a modification
//! revision and an optional lease; reads at a revision, transactions with compares, watches
//! that replay from a revision with no gap, and leases whose keys vanish when they expire.
//! One interface, [`Store`], with three backends: [`Memory`] (one process: tests, and the
//! model the others are held to), [`Redb`] (the model made durable in a file: one host) and
//! [`Etcd`] (etcd v3, the cluster's shared state). The
//! semantics are etcd's, so code written against one runs on the other; a conformance suite
//! (`tests/conformance.rs`) runs the same cases on both, etcd started by the test.

mod error;
mod etcd;
mod memory;
mod redb;
mod types;

pub use error::StoreError;
pub use etcd::Etcd;
pub use memory::Memory;
pub use redb::Redb;
pub use types::{Cmp, Compare, Event, KeyValue, LeaseId, Op, Revision, Txn, TxnResult, Watch};

use std::time::Duration;

use futures::future::BoxFuture;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Keeps a lease alive until dropped (a node's membership, a scheduler's election): renews it
/// every third of its TTL, so two renewals can be lost before it expires. A renewal that
/// finds the lease gone ends the task; `alive()` then says so. A renewal that cannot reach
/// the store is tried again at the next tick; `unreachable()` says since when it fails.
pub struct KeepAlive {
    lease: LeaseId,
    task: tokio::task::JoinHandle<()>,
    alive: std::sync::Arc<std::sync::atomic::AtomicBool>,
    trouble: std::sync::Arc<std::sync::Mutex<Option<(std::time::SystemTime, String)>>>,
}

impl KeepAlive {
    pub fn start(store: std::sync::Arc<dyn Store>, lease: LeaseId, ttl: Duration) -> KeepAlive {
        use std::sync::atomic::{AtomicBool, Ordering};
        let alive = std::sync::Arc::new(AtomicBool::new(true));
        let flag = alive.clone();
        let trouble = std::sync::Arc::new(std::sync::Mutex::new(None));
        let seen = trouble.clone();
        let task = tokio::spawn(async move {
            let every = (ttl / 3).max(Duration::from_millis(100));
            loop {
                tokio::time::sleep(every).await;
                let r = store.keep_alive(lease).await;
                let mut t = seen.lock().expect("lock");
                match r {
                    Ok(()) => *t = None,
                    Err(StoreError::LeaseNotFound(_)) => {
                        *t = None;
                        flag.store(false, Ordering::Relaxed);
                        return;
                    }
                    // Unreachable for now: try again at the next tick, while the TTL lasts.
                    Err(e) => {
                        tracing::warn!(lease, "renewing the lease: {e}");
                        t.get_or_insert_with(|| (std::time::SystemTime::now(), e.to_string()));
                    }
                }
            }
        });
        KeepAlive {
            lease,
            task,
            alive,
            trouble,
        }
    }

    /// Since when, and why, renewals have failed to reach the store (`None`: the last one
    /// reached it).
    pub fn unreachable(&self) -> Option<(std::time::SystemTime, String)> {
        self.trouble.lock().expect("lock").clone()
    }

    /// Whether the lease was still there at the last renewal.
    /// The lease kept alive.
    pub fn lease(&self) -> LeaseId {
        self.lease
    }

    pub fn alive(&self) -> bool {
        self.alive.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The store's interface. Every method is one round trip to the backend; none blocks the
/// caller's runtime.
pub trait Store: Send + Sync {
    /// One key, or `None`.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>>>;
    /// Every key under `prefix`, in key order, and the store's revision they were read at.
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<(Vec<KeyValue>, Revision)>>;
    /// All compares hold: `then` is applied, else `otherwise`; atomically, in one revision.
    fn txn(&self, txn: Txn) -> BoxFuture<'_, Result<TxnResult>>;
    /// Changes under `prefix` from revision `from` on (0: from now), in revision order with
    /// no gap. A `from` older than the kept history yields [`Event::Compacted`] and ends.
    fn watch<'a>(&'a self, prefix: &'a str, from: Revision) -> BoxFuture<'a, Result<Watch>>;
    /// A lease of `ttl`; keys put with it are deleted when it expires or is revoked.
    fn grant(&self, ttl: Duration) -> BoxFuture<'_, Result<LeaseId>>;
    /// Renews a lease for its whole TTL.
    fn keep_alive(&self, lease: LeaseId) -> BoxFuture<'_, Result<()>>;
    fn revoke(&self, lease: LeaseId) -> BoxFuture<'_, Result<()>>;
    /// Drops history before `revision`: watches from before it get `Compacted`.
    fn compact(&self, revision: Revision) -> BoxFuture<'_, Result<()>>;
}
