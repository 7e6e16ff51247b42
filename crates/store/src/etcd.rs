//! The etcd v3 backend, through the `etcd-client` crate (gRPC; `protoc` at build time).
//! etcd-client over etcd's JSON gateway because watches and lease keep-alives are streams:
//! the gateway turns them into chunked HTTP that must be parsed by hand, and a gRPC client
//! reconnects and balances over the endpoints by itself.

use std::time::Duration;

use etcd_client as ec;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::types::{Cmp, Compare, Event, KeyValue, LeaseId, Op, Revision, Txn, TxnResult, Watch};
use crate::{Result, Store, StoreError};

const WATCH_BUFFER: usize = 4096;

#[derive(Clone)]
pub struct Etcd {
    /// One client per member, so that a member that cannot be reached is left for the next
    /// one deterministically (a balanced channel kept picking a dead member under load).
    clients: std::sync::Arc<Vec<ec::Client>>,
    /// The member requests go to, until it fails them.
    current: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    endpoints: String,
}

impl Etcd {
    /// Connects to the cluster; fails, naming the endpoints, when none answers in `timeout`.
    pub async fn connect(endpoints: &[String], timeout: Duration) -> Result<Etcd> {
        let names = endpoints.join(",");
        let opts = || {
            ec::ConnectOptions::new()
                .with_connect_timeout(timeout)
                .with_timeout(timeout)
                .with_keep_alive(Duration::from_secs(2), timeout)
        };
        let mut clients = Vec::new();
        for ep in endpoints {
            let c = ec::Client::connect([ep.as_str()], Some(opts()))
                .await
                .map_err(|e| unavailable(&names, e))?;
            clients.push(c);
        }
        // A lazy channel connects on first use: make sure a member answers now, and start
        // with the first that does.
        let mut last = None;
        for (i, c) in clients.iter().enumerate() {
            match c.clone().status().await {
                Ok(_) => {
                    return Ok(Etcd {
                        clients: std::sync::Arc::new(clients),
                        current: std::sync::Arc::new(i.into()),
                        endpoints: names,
                    })
                }
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => unavailable(&names, e),
            None => StoreError::Rejected("no etcd endpoint was given".into()),
        })
    }

    /// `f` on the current member's client, and on the next members' when the request never
    /// reached a member: with one member gone, the cluster keeps answering. A request that
    /// reached a member and got no answer is repeated only if `idempotent`, as its outcome
    /// is unknown.
    async fn retrying<T, F, Fut>(&self, idempotent: bool, mut f: F) -> Result<T, ec::Error>
    where
        F: FnMut(ec::Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, ec::Error>>,
    {
        use std::sync::atomic::Ordering;
        let n = self.clients.len().max(1);
        let mut tries = n + 1;
        loop {
            let i = self.current.load(Ordering::Relaxed) % n;
            match f(self.clients[i].clone()).await {
                Err(e) if tries > 1 && (never_sent(&e) || (idempotent && unanswered(&e))) => {
                    tries -= 1;
                    // The next member, unless another request moved on already.
                    let _ = self.current.compare_exchange(
                        i,
                        (i + 1) % n,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
                r => return r,
            }
        }
    }

    fn err(&self, e: ec::Error) -> StoreError {
        match &e {
            ec::Error::GRpcStatus(s)
                if matches!(
                    s.code(),
                    tonic_code::INVALID_ARGUMENT
                        | tonic_code::FAILED_PRECONDITION
                        | tonic_code::OUT_OF_RANGE
                ) =>
            {
                StoreError::Rejected(s.message().to_string())
            }
            ec::Error::GRpcStatus(s) if s.code() == tonic_code::NOT_FOUND => {
                StoreError::Rejected(s.message().to_string())
            }
            // The keep-alive stream reports an unknown lease this way, not as a status.
            ec::Error::LeaseKeepAliveError(m) => StoreError::Rejected(m.clone()),
            _ => unavailable(&self.endpoints, e),
        }
    }
}

/// gRPC status codes, by the names etcd's errors use.
mod tonic_code {
    pub(super) use tonic::Code as C;
    pub(super) const INVALID_ARGUMENT: C = C::InvalidArgument;
    pub(super) const FAILED_PRECONDITION: C = C::FailedPrecondition;
    pub(super) const OUT_OF_RANGE: C = C::OutOfRange;
    pub(super) const NOT_FOUND: C = C::NotFound;
}

/// The request could not be sent: no connection to the member the client picked.
fn never_sent(e: &ec::Error) -> bool {
    match e {
        ec::Error::GRpcStatus(s) => {
            s.code() == tonic::Code::Unavailable && s.message().contains("connect")
        }
        ec::Error::TransportError(_) => true,
        _ => false,
    }
}

/// Sent, and no answer came (the member stopped or was cut off meanwhile).
fn unanswered(e: &ec::Error) -> bool {
    match e {
        ec::Error::GRpcStatus(s) => matches!(
            s.code(),
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ),
        _ => false,
    }
}

fn unavailable(endpoints: &str, e: ec::Error) -> StoreError {
    StoreError::Unavailable {
        endpoints: endpoints.to_string(),
        source: Box::new(e),
    }
}

fn kv(k: &ec::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(k.key()).into_owned(),
        value: k.value().to_vec(),
        create_revision: k.create_revision(),
        mod_revision: k.mod_revision(),
        lease: (k.lease() != 0).then_some(k.lease()),
    }
}

fn cmp_op(c: Cmp) -> ec::CompareOp {
    match c {
        Cmp::Equal => ec::CompareOp::Equal,
        Cmp::NotEqual => ec::CompareOp::NotEqual,
        Cmp::Less => ec::CompareOp::Less,
        Cmp::Greater => ec::CompareOp::Greater,
    }
}

fn compare(c: &Compare) -> ec::Compare {
    match c {
        Compare::Absent(k) => ec::Compare::create_revision(k.as_str(), ec::CompareOp::Equal, 0),
        Compare::Present(k) => ec::Compare::create_revision(k.as_str(), ec::CompareOp::Greater, 0),
        Compare::ModRevision(k, c, r) => ec::Compare::mod_revision(k.as_str(), cmp_op(*c), *r),
        Compare::Value(k, v) => ec::Compare::value(k.as_str(), ec::CompareOp::Equal, v.clone()),
    }
}

fn op(o: &Op) -> ec::TxnOp {
    match o {
        Op::Put { key, value, lease } => ec::TxnOp::put(
            key.as_str(),
            value.clone(),
            lease.map(|l| ec::PutOptions::new().with_lease(l)),
        ),
        Op::Delete(k) => ec::TxnOp::delete(k.as_str(), None),
        Op::DeletePrefix(p) => {
            ec::TxnOp::delete(p.as_str(), Some(ec::DeleteOptions::new().with_prefix()))
        }
    }
}

impl Store for Etcd {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>>> {
        Box::pin(async move {
            let r = self
                .retrying(true, |mut c| async move { c.get(key, None).await })
                .await
                .map_err(|e| self.err(e))?;
            Ok(r.kvs().first().map(kv))
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<(Vec<KeyValue>, Revision)>> {
        Box::pin(async move {
            let opts = || {
                ec::GetOptions::new()
                    .with_prefix()
                    .with_sort(ec::SortTarget::Key, ec::SortOrder::Ascend)
            };
            let r = self
                .retrying(
                    true,
                    |mut c| async move { c.get(prefix, Some(opts())).await },
                )
                .await
                .map_err(|e| self.err(e))?;
            let rev = r.header().map_or(0, |h| h.revision());
            Ok((r.kvs().iter().map(kv).collect(), rev))
        })
    }

    fn txn(&self, txn: Txn) -> BoxFuture<'_, Result<TxnResult>> {
        Box::pin(async move {
            let t = || {
                ec::Txn::new()
                    .when(txn.compares.iter().map(compare).collect::<Vec<_>>())
                    .and_then(txn.then.iter().map(op).collect::<Vec<_>>())
                    .or_else(txn.otherwise.iter().map(op).collect::<Vec<_>>())
            };
            // Not idempotent: repeated only when it never reached a member.
            let r = self
                .retrying(false, |mut c| {
                    let t = t();
                    async move { c.txn(t).await }
                })
                .await
                .map_err(|e| match self.err(e) {
                    StoreError::Rejected(m) if m.contains("lease not found") => {
                        StoreError::LeaseNotFound(lease_of(&txn).unwrap_or(0))
                    }
                    other => other,
                })?;
            Ok(TxnResult {
                succeeded: r.succeeded(),
                revision: r.header().map_or(0, |h| h.revision()),
            })
        })
    }

    fn watch<'a>(&'a self, prefix: &'a str, from: Revision) -> BoxFuture<'a, Result<Watch>> {
        Box::pin(async move {
            let opts = || {
                let o = ec::WatchOptions::new().with_prefix().with_prev_key();
                if from > 0 {
                    o.with_start_revision(from)
                } else {
                    o
                }
            };
            let stream = self
                .retrying(
                    true,
                    |mut c| async move { c.watch(prefix, Some(opts())).await },
                )
                .await
                .map_err(|e| self.err(e))?;
            let (tx, rx) = mpsc::channel(WATCH_BUFFER);
            tokio::spawn(forward(stream, tx));
            Ok(rx)
        })
    }

    fn grant(&self, ttl: Duration) -> BoxFuture<'_, Result<LeaseId>> {
        Box::pin(async move {
            // etcd's TTLs are whole seconds.
            let secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
            // A lease granted twice leaves one unused, which expires by itself.
            let r = self
                .retrying(true, |mut c| async move { c.lease_grant(secs, None).await })
                .await
                .map_err(|e| self.err(e))?;
            Ok(r.id())
        })
    }

    fn keep_alive(&self, lease: LeaseId) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let not_found = |e: StoreError| match e {
                StoreError::Rejected(m) if m.contains("lease not found") => {
                    StoreError::LeaseNotFound(lease)
                }
                other => other,
            };
            let (mut keeper, mut stream) = self
                .retrying(true, |mut c| async move { c.lease_keep_alive(lease).await })
                .await
                .map_err(|e| not_found(self.err(e)))?;
            keeper
                .keep_alive()
                .await
                .map_err(|e| not_found(self.err(e)))?;
            match stream.message().await.map_err(|e| not_found(self.err(e)))? {
                // etcd answers a keep-alive of an unknown lease with TTL 0.
                Some(r) if r.ttl() > 0 => Ok(()),
                _ => Err(StoreError::LeaseNotFound(lease)),
            }
        })
    }

    fn revoke(&self, lease: LeaseId) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.retrying(true, |mut c| async move { c.lease_revoke(lease).await })
                .await
                .map(|_| ())
                .map_err(|e| match self.err(e) {
                    StoreError::Rejected(m) if m.contains("lease not found") => {
                        StoreError::LeaseNotFound(lease)
                    }
                    other => other,
                })
        })
    }

    fn compact(&self, revision: Revision) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.retrying(true, |mut c| async move { c.compact(revision, None).await })
                .await
                .map(|_| ())
                .map_err(|e| self.err(e))
        })
    }
}

fn lease_of(txn: &Txn) -> Option<LeaseId> {
    txn.then.iter().chain(&txn.otherwise).find_map(|o| match o {
        Op::Put { lease, .. } => *lease,
        _ => None,
    })
}

/// etcd's watch responses as events, until the watch is cancelled (compaction: one
/// `Compacted` first) or the receiver is dropped.
async fn forward(mut stream: ec::WatchStream, tx: mpsc::Sender<Event>) {
    loop {
        let msg = match stream.message().await {
            Ok(Some(m)) => m,
            Ok(None) | Err(_) => return,
        };
        if msg.compact_revision() > 0 {
            let _ = tx
                .send(Event::Compacted {
                    compact_revision: msg.compact_revision(),
                })
                .await;
            return;
        }
        for e in msg.events() {
            let Some(k) = e.kv() else { continue };
            let ev = match e.event_type() {
                ec::EventType::Put => Event::Put {
                    kv: kv(k),
                    prev: e.prev_kv().map(kv),
                },
                ec::EventType::Delete => Event::Delete {
                    // etcd sends the tombstone; the record as it was is the previous one.
                    prev: e.prev_kv().map(kv).unwrap_or_else(|| kv(k)),
                    revision: k.mod_revision(),
                },
            };
            if tx.send(ev).await.is_err() {
                return;
            }
        }
        if msg.canceled() {
            return;
        }
    }
}
