//! etcd round trips in cluster mode: a [`Store`] that times and counts every call of the
//! one it wraps, by operation and outcome. A wrapper rather than counters inside the etcd
//! backend, so the store crate stays free of the daemon's metrics and every backend can be
//! measured the same way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_store::{LeaseId, Result, Revision, Store, Txn, TxnResult, Watch};
use futures::future::BoxFuture;

use super::METRICS;

pub struct Metered(pub Arc<dyn Store>);

async fn timed<T>(op: &'static str, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    let t = Instant::now();
    let r = f.await;
    let m = &*METRICS;
    let outcome = if r.is_ok() { "ok" } else { "error" };
    m.etcd_requests
        .get_or_create(&vec![
            ("op", op.to_string()),
            ("outcome", outcome.to_string()),
        ])
        .inc();
    m.etcd_seconds
        .get_or_create(&vec![("op", op.to_string())])
        .observe(t.elapsed().as_secs_f64());
    r
}

impl Store for Metered {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<berth_store::KeyValue>>> {
        Box::pin(timed("get", self.0.get(key)))
    }
    fn list<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<(Vec<berth_store::KeyValue>, Revision)>> {
        Box::pin(timed("list", self.0.list(prefix)))
    }
    fn txn(&self, txn: Txn) -> BoxFuture<'_, Result<TxnResult>> {
        Box::pin(timed("txn", self.0.txn(txn)))
    }
    fn watch<'a>(&'a self, prefix: &'a str, from: Revision) -> BoxFuture<'a, Result<Watch>> {
        Box::pin(timed("watch", self.0.watch(prefix, from)))
    }
    fn grant(&self, ttl: Duration) -> BoxFuture<'_, Result<LeaseId>> {
        Box::pin(timed("grant", self.0.grant(ttl)))
    }
    fn keep_alive(&self, lease: LeaseId) -> BoxFuture<'_, Result<()>> {
        Box::pin(timed("keep_alive", self.0.keep_alive(lease)))
    }
    fn revoke(&self, lease: LeaseId) -> BoxFuture<'_, Result<()>> {
        Box::pin(timed("revoke", self.0.revoke(lease)))
    }
    fn compact(&self, revision: Revision) -> BoxFuture<'_, Result<()>> {
        Box::pin(timed("compact", self.0.compact(revision)))
    }
}
