//! The single-host backend: the model's semantics (`Memory`) made durable in a redb file.
//! Every revision is one redb write transaction holding the changed records, the revision
//! counter and the revision's events (the watch history, bounded as the model's), committed
//! before the change takes effect in memory; reads are served from memory.
//!
//! Leases live in the process that granted them: on open, keys left on a previous process's
//! leases are deleted (in one revision, seen by watches from before it), as etcd deletes
//! keys whose lease expired while their owner was away.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::time::Duration;

use futures::future::BoxFuture;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::memory::{Loaded, Persist, HISTORY};
use crate::types::{Event, KeyValue, LeaseId, Op, Revision, Txn, TxnResult, Watch};
use crate::{Memory, Result, Store, StoreError};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// Sequence number → one event, oldest first.
const HISTORY_T: TableDefinition<u64, &[u8]> = TableDefinition::new("history");
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");

pub struct Redb {
    mem: Memory,
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Rejected(format!("state database: {e}"))
}

impl Redb {
    /// Opens (or creates) the store at `path`. Must be called inside a tokio runtime.
    pub async fn open(path: &Path) -> Result<Redb> {
        // A daemon restarted right after a crash may find the file lock still held for a
        // moment by the dying process; a second daemon on the same file keeps holding it.
        let mut tries = 0;
        let db = loop {
            match Database::create(path) {
                Ok(db) => break db,
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if tries < 30 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    return Err(StoreError::Unavailable {
                        endpoints: format!(
                            "{} (is another berth daemon using this --root?)",
                            path.display()
                        ),
                        source: Box::new(e),
                    })
                }
            }
        };
        let state = load(&db)?;
        let stale: Vec<String> = state
            .kv
            .values()
            .filter(|kv| kv.lease.is_some())
            .map(|kv| kv.key.clone())
            .collect();
        let next_seq = {
            let txn = db.begin_read().map_err(db_err)?;
            let t = txn.open_table(HISTORY_T).map_err(db_err)?;
            let last = t.last().map_err(db_err)?.map(|(k, _)| k.value());
            last.map_or(0, |l| l + 1)
        };
        let mem = Memory::with_state(state, Box::new(Durable { db, next_seq }));
        if !stale.is_empty() {
            tracing::info!(
                keys = stale.len(),
                "removing keys of leases from before the restart"
            );
            mem.txn(Txn::ops(stale.into_iter().map(Op::Delete).collect()))
                .await?;
        }
        Ok(Redb { mem })
    }
}

fn load(db: &Database) -> Result<Loaded> {
    let w = db.begin_write().map_err(db_err)?;
    w.open_table(KV).map_err(db_err)?;
    w.open_table(HISTORY_T).map_err(db_err)?;
    w.open_table(META).map_err(db_err)?;
    w.commit().map_err(db_err)?;
    let txn = db.begin_read().map_err(db_err)?;
    let mut kv = BTreeMap::new();
    for item in txn.open_table(KV).map_err(db_err)?.iter().map_err(db_err)? {
        let (k, v) = item.map_err(db_err)?;
        kv.insert(k.value().to_string(), decode_record(k.value(), v.value())?);
    }
    let mut history = VecDeque::new();
    for item in txn
        .open_table(HISTORY_T)
        .map_err(db_err)?
        .iter()
        .map_err(db_err)?
    {
        let (_, v) = item.map_err(db_err)?;
        history.push_back(decode_event(v.value())?);
    }
    let meta = txn.open_table(META).map_err(db_err)?;
    let get =
        |k: &str| -> Result<i64> { Ok(meta.get(k).map_err(db_err)?.map_or(0, |v| v.value())) };
    Ok(Loaded {
        kv,
        revision: get("revision")?.max(1),
        compacted: get("compacted")?,
        history,
    })
}

struct Durable {
    db: Database,
    next_seq: u64,
}

impl Persist for Durable {
    fn persist(&mut self, events: &[Event], revision: Revision) -> Result<()> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut kv = txn.open_table(KV).map_err(db_err)?;
            let mut hist = txn.open_table(HISTORY_T).map_err(db_err)?;
            for e in events {
                match e {
                    Event::Put { kv: r, .. } => {
                        kv.insert(r.key.as_str(), encode_record(r).as_slice())
                            .map_err(db_err)?;
                    }
                    Event::Delete { prev, .. } => {
                        kv.remove(prev.key.as_str()).map_err(db_err)?;
                    }
                    Event::Compacted { .. } => continue,
                }
                hist.insert(self.next_seq, encode_event(e).as_slice())
                    .map_err(db_err)?;
                self.next_seq += 1;
            }
            // The same bound as the model's history.
            let keep_from = self.next_seq.saturating_sub(HISTORY as u64);
            hist.retain_in(..keep_from, |_, _| false).map_err(db_err)?;
            let mut meta = txn.open_table(META).map_err(db_err)?;
            meta.insert("revision", revision).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    fn compacted(&mut self, revision: Revision) -> Result<()> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut hist = txn.open_table(HISTORY_T).map_err(db_err)?;
            hist.retain(|_, v| decode_event(v).is_ok_and(|e| e.revision() >= revision))
                .map_err(db_err)?;
            let mut meta = txn.open_table(META).map_err(db_err)?;
            meta.insert("compacted", revision).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }
}

// Records: create, mod, lease (0: none) as little-endian i64, then the value.
fn encode_record(r: &KeyValue) -> Vec<u8> {
    let mut b = Vec::with_capacity(24 + r.value.len());
    b.extend_from_slice(&r.create_revision.to_le_bytes());
    b.extend_from_slice(&r.mod_revision.to_le_bytes());
    b.extend_from_slice(&r.lease.unwrap_or(0).to_le_bytes());
    b.extend_from_slice(&r.value);
    b
}

fn decode_record(key: &str, b: &[u8]) -> Result<KeyValue> {
    let n = |i: usize| -> Result<i64> {
        b.get(i * 8..i * 8 + 8)
            .map(|s| i64::from_le_bytes(s.try_into().expect("8 bytes")))
            .ok_or_else(|| db_err(format!("record of {key} is truncated")))
    };
    let lease = n(2)?;
    Ok(KeyValue {
        key: key.to_string(),
        create_revision: n(0)?,
        mod_revision: n(1)?,
        lease: (lease != 0).then_some(lease),
        value: b[24..].to_vec(),
    })
}

// Events: a tag, then length-prefixed keys and records (put: new and, if any, previous;
// delete: the revision and the previous record).
/// A length prefix. Keys and records are bounded far below 4 GiB (a record is one JSON
/// document of the daemon's), so a larger one is a bug, not an input.
fn len32(n: usize) -> [u8; 4] {
    u32::try_from(n)
        .expect("a key or record under 4 GiB")
        .to_le_bytes()
}

fn put_kv(b: &mut Vec<u8>, r: &KeyValue) {
    let rec = encode_record(r);
    b.extend_from_slice(&len32(r.key.len()));
    b.extend_from_slice(r.key.as_bytes());
    b.extend_from_slice(&len32(rec.len()));
    b.extend_from_slice(&rec);
}

fn encode_event(e: &Event) -> Vec<u8> {
    let mut b = Vec::new();
    match e {
        Event::Put { kv, prev } => {
            b.push(if prev.is_some() { 2 } else { 1 });
            put_kv(&mut b, kv);
            if let Some(p) = prev {
                put_kv(&mut b, p);
            }
        }
        Event::Delete { prev, revision } => {
            b.push(3);
            b.extend_from_slice(&revision.to_le_bytes());
            put_kv(&mut b, prev);
        }
        Event::Compacted { .. } => {}
    }
    b
}

fn decode_event(b: &[u8]) -> Result<Event> {
    let bad = || db_err("an event of the history is truncated");
    let mut at = 1usize;
    let mut take = |n: usize| -> Result<&[u8]> {
        let s = b.get(at..at + n).ok_or_else(bad)?;
        at += n;
        Ok(s)
    };
    let kv = |take: &mut dyn FnMut(usize) -> Result<Vec<u8>>| -> Result<KeyValue> {
        let kl = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
        let key = String::from_utf8(take(kl)?).map_err(|_| bad())?;
        let rl = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
        decode_record(&key, &take(rl)?)
    };
    let mut owned = |n: usize| take(n).map(<[u8]>::to_vec);
    match b.first() {
        Some(1) => Ok(Event::Put {
            kv: kv(&mut owned)?,
            prev: None,
        }),
        Some(2) => {
            let new = kv(&mut owned)?;
            let prev = kv(&mut owned)?;
            Ok(Event::Put {
                kv: new,
                prev: Some(prev),
            })
        }
        Some(3) => {
            let revision = i64::from_le_bytes(owned(8)?.try_into().map_err(|_| bad())?);
            Ok(Event::Delete {
                prev: kv(&mut owned)?,
                revision,
            })
        }
        _ => Err(bad()),
    }
}

impl Store for Redb {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>>> {
        self.mem.get(key)
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<(Vec<KeyValue>, Revision)>> {
        self.mem.list(prefix)
    }

    fn txn(&self, txn: Txn) -> BoxFuture<'_, Result<TxnResult>> {
        self.mem.txn(txn)
    }

    fn watch<'a>(&'a self, prefix: &'a str, from: Revision) -> BoxFuture<'a, Result<Watch>> {
        self.mem.watch(prefix, from)
    }

    fn grant(&self, ttl: Duration) -> BoxFuture<'_, Result<LeaseId>> {
        self.mem.grant(ttl)
    }

    fn keep_alive(&self, lease: LeaseId) -> BoxFuture<'_, Result<()>> {
        self.mem.keep_alive(lease)
    }

    fn revoke(&self, lease: LeaseId) -> BoxFuture<'_, Result<()>> {
        self.mem.revoke(lease)
    }

    fn compact(&self, revision: Revision) -> BoxFuture<'_, Result<()>> {
        self.mem.compact(revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        let r = |k: &str, v: &str, lease| KeyValue {
            key: k.into(),
            value: v.as_bytes().to_vec(),
            create_revision: 3,
            mod_revision: 7,
            lease,
        };
        for e in [
            Event::Put {
                kv: r("/a", "x", None),
                prev: None,
            },
            Event::Put {
                kv: r("/a", "y", Some(9)),
                prev: Some(r("/a", "x", None)),
            },
            Event::Delete {
                prev: r("/b", "", Some(4)),
                revision: 8,
            },
        ] {
            assert_eq!(decode_event(&encode_event(&e)).unwrap(), e);
        }
        decode_event(&[2, 1]).unwrap_err();
    }
}
