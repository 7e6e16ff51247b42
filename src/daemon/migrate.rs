//! State written by berth before store v2 (`berth.db`: one redb table `kv`, keys
//! `networks/<id>` and `containers/<id>`, addresses only inside container records) is moved
//! into the v2 store (`state.db`) once, at the first start of a newer daemon: the records in
//! one transaction, each address of each endpoint given its key. The old file is renamed,
//! not deleted, so a downgrade can still find it.

use std::path::Path;

use redb::{ReadableDatabase, TableDefinition};

use super::keys::Writes;
use crate::model::{Container, Network};

const V1: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
pub(crate) const V1_FILE: &str = "berth.db";
pub(crate) const V1_MOVED: &str = "berth.db.v1";

#[derive(Debug, thiserror::Error)]
pub(super) enum MigrateError {
    #[error("reading the state of an older berth ({path}): {reason}")]
    Read { path: String, reason: String },
    #[error("a record of an older berth ({key}) cannot be read: {source}")]
    Record {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The writes that recreate a v1 database's records in the v2 key space, or `None` when
/// `root` has no v1 database.
pub(crate) fn read_v1(root: &Path) -> Result<Option<Writes>, MigrateError> {
    let path = root.join(V1_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let err = |e: &dyn std::fmt::Display| MigrateError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let db = redb::Database::open(&path).map_err(|e| err(&e))?;
    let txn = db.begin_read().map_err(|e| err(&e))?;
    let table = match txn.open_table(V1) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Some(Writes::default())),
        Err(e) => return Err(err(&e)),
    };
    let mut w = Writes::default();
    for item in redb::ReadableTable::iter(&table).map_err(|e| err(&e))? {
        let (k, v) = item.map_err(|e| err(&e))?;
        let (key, value) = (k.value(), v.value());
        let record = |source| MigrateError::Record {
            key: key.to_string(),
            source,
        };
        if key.starts_with("networks/") {
            let n: Network = serde_json::from_slice(value).map_err(record)?;
            w.put_network(&n);
        } else if key.starts_with("containers/") {
            let c: Container = serde_json::from_slice(value).map_err(record)?;
            for ep in &c.endpoints {
                w.claim(&c.id, ep);
            }
            w.put_container(&c);
        } else {
            tracing::warn!(key, "skipping an unknown record of the old state database");
        }
    }
    Ok(Some(w))
}

/// Called once the v2 store holds the records.
pub(crate) fn retire_v1(root: &Path) -> std::io::Result<()> {
    std::fs::rename(root.join(V1_FILE), root.join(V1_MOVED))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::containers::alloc_tests::{container_on, net};

    #[test]
    fn a_v1_database_becomes_records_and_address_claims() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_v1(dir.path()).unwrap().is_none());
        let n = net("dev", "10.9.0.0/24");
        let c = container_on(&n, "web", "10.9.0.7");
        let db = redb::Database::create(dir.path().join(V1_FILE)).unwrap();
        let w = db.begin_write().unwrap();
        {
            let mut t = w.open_table(V1).unwrap();
            let nv = serde_json::to_vec(&n).unwrap();
            let cv = serde_json::to_vec(&c).unwrap();
            t.insert(format!("networks/{}", n.id).as_str(), nv.as_slice())
                .unwrap();
            t.insert(format!("containers/{}", c.id).as_str(), cv.as_slice())
                .unwrap();
        }
        w.commit().unwrap();
        drop(db);
        let w = read_v1(dir.path()).unwrap().unwrap();
        let keys: Vec<String> = w
            .ops
            .iter()
            .map(|o| match o {
                berth_store::Op::Put { key, .. } => key.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(keys.contains(&format!("/berth/networks/{}", n.id)));
        assert!(keys.contains(&format!("/berth/containers/{}", c.id)));
        assert!(keys.contains(&format!("/berth/ipam/{}/10.9.0.7", n.id)));
        assert_eq!(w.compares.len(), 1);
        retire_v1(dir.path()).unwrap();
        assert!(read_v1(dir.path()).unwrap().is_none());
        assert!(dir.path().join(V1_MOVED).exists());
    }

    #[test]
    fn a_broken_record_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join(V1_FILE)).unwrap();
        let w = db.begin_write().unwrap();
        {
            let mut t = w.open_table(V1).unwrap();
            t.insert("containers/x", b"{not json".as_slice()).unwrap();
        }
        w.commit().unwrap();
        drop(db);
        let e = read_v1(dir.path()).expect_err("refused").to_string();
        assert!(e.contains("containers/x"), "{e}");
    }
}
