//! The desired state: a small key-value interface with atomic multi-key commits. The daemon
//! writes every record of an operation in one commit *before* it touches the kernel, so a
//! crash leaves either the whole operation or nothing, and the reconciler can rebuild the
//! kernel from what is here. The embedded backend is redb; the cluster backend (etcd) will
//! implement the same trait.

use std::path::Path;

use redb::{Database, ReadableDatabase, TableDefinition};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the state database {path}: {source} (is another berth daemon using this --root?)")]
    Open {
        path: String,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("state database error: {0}")]
    Db(String),
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.to_string()) }
        }
    )*};
}
db_err!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

pub enum Op {
    Put(String, Vec<u8>),
    Delete(String),
}

pub trait Store: Send + Sync {
    fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// All operations become visible together or not at all.
    fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError>;
}

pub struct RedbStore {
    db: Database,
}

impl RedbStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // A daemon restarted right after a crash may find the lock still held for a moment
        // by the dying process; a second daemon on the same --root keeps holding it.
        let mut tries = 0;
        let db = loop {
            match Database::create(path) {
                Ok(db) => break db,
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if tries < 30 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(source) => {
                    return Err(StoreError::Open {
                        path: path.display().to_string(),
                        source,
                    })
                }
            }
        };
        let txn = db.begin_write()?;
        txn.open_table(KV)?;
        txn.commit()?;
        Ok(RedbStore { db })
    }
}

impl Store for RedbStore {
    fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(KV)?;
        let mut out = Vec::new();
        for item in table.range(prefix..)? {
            let (k, v) = item?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(KV)?;
            for op in &ops {
                match op {
                    Op::Put(k, v) => {
                        table.insert(k.as_str(), v.as_slice())?;
                    }
                    Op::Delete(k) => {
                        table.remove(k.as_str())?;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_and_list_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let s = RedbStore::open(&dir.path().join("db")).unwrap();
        s.commit(vec![
            Op::Put("networks/a".into(), b"1".to_vec()),
            Op::Put("networks/b".into(), b"2".to_vec()),
            Op::Put("containers/x".into(), b"3".to_vec()),
        ])
        .unwrap();
        let n = s.list("networks/").unwrap();
        assert_eq!(n.len(), 2);
        assert_eq!(n[1], ("networks/b".to_string(), b"2".to_vec()));
        s.commit(vec![Op::Delete("networks/a".into())]).unwrap();
        assert_eq!(s.list("networks/").unwrap().len(), 1);
        drop(s);
        // Reopening sees the committed state.
        let s = RedbStore::open(&dir.path().join("db")).unwrap();
        assert_eq!(s.list("containers/").unwrap().len(), 1);
    }
}
