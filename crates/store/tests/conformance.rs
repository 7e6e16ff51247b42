//! One suite, every backend: the in-memory model and a real etcd started by the test.

mod common;

use std::sync::Arc;
use std::time::Duration;

use berth_store::{Cmp, Compare, Event, Memory, Op, Store, StoreError, Txn};
use common::EtcdServer;

/// Waits for the next event, bounded.
async fn next(w: &mut berth_store::Watch) -> Event {
    tokio::time::timeout(Duration::from_secs(10), w.recv())
        .await
        .expect("an event within 10 s")
        .expect("the watch is open")
}

async fn put(s: &dyn Store, k: &str, v: &str) -> i64 {
    s.txn(Txn::ops(vec![Op::put(k, v)])).await.unwrap().revision
}

async fn revisions_and_reads(s: &dyn Store) {
    let r1 = put(s, "/a/1", "one").await;
    let r2 = put(s, "/a/2", "two").await;
    assert!(r2 > r1);
    let r3 = put(s, "/a/1", "uno").await;
    let kv = s.get("/a/1").await.unwrap().unwrap();
    assert_eq!(kv.value, b"uno");
    assert_eq!((kv.create_revision, kv.mod_revision), (r1, r3));
    assert!(s.get("/a/none").await.unwrap().is_none());
    put(s, "/ab", "not under /a/").await;
    let (list, rev) = s.list("/a/").await.unwrap();
    assert_eq!(
        list.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(),
        ["/a/1", "/a/2"]
    );
    assert!(rev >= r3);
    // A transaction that changes nothing leaves the revision alone.
    let same = s
        .txn(Txn::ops(vec![Op::Delete("/a/none".into())]))
        .await
        .unwrap();
    assert_eq!(same.revision, s.list("/").await.unwrap().1);
    // Deleting a prefix removes exactly it.
    s.txn(Txn::ops(vec![Op::DeletePrefix("/a/".into())]))
        .await
        .unwrap();
    assert!(s.list("/a/").await.unwrap().0.is_empty());
    assert!(s.get("/ab").await.unwrap().is_some());
}

async fn compares(s: &dyn Store) {
    let create = |v: &str| Txn {
        compares: vec![Compare::Absent("/c/name".into())],
        then: vec![Op::put("/c/name", v)],
        otherwise: vec![Op::put("/c/lost", v)],
    };
    assert!(s.txn(create("first")).await.unwrap().succeeded);
    let second = s.txn(create("second")).await.unwrap();
    assert!(!second.succeeded, "a second create must fail its compare");
    assert_eq!(s.get("/c/name").await.unwrap().unwrap().value, b"first");
    assert_eq!(
        s.get("/c/lost").await.unwrap().unwrap().value,
        b"second",
        "otherwise ran"
    );
    let kv = s.get("/c/name").await.unwrap().unwrap();
    let cas = |rev: i64| {
        Txn::when(
            vec![Compare::ModRevision("/c/name".into(), Cmp::Equal, rev)],
            vec![Op::put("/c/name", "updated")],
        )
    };
    assert!(!s.txn(cas(kv.mod_revision - 1)).await.unwrap().succeeded);
    assert!(s.txn(cas(kv.mod_revision)).await.unwrap().succeeded);
    assert!(
        s.txn(Txn::when(
            vec![Compare::Value("/c/name".into(), b"updated".to_vec())],
            vec![]
        ))
        .await
        .unwrap()
        .succeeded
    );
    assert!(
        !s.txn(Txn::when(
            vec![Compare::Value("/c/name".into(), b"first".to_vec())],
            vec![]
        ))
        .await
        .unwrap()
        .succeeded
    );
    assert!(
        s.txn(Txn::when(vec![Compare::Present("/c/name".into())], vec![]))
            .await
            .unwrap()
            .succeeded
    );
}

async fn one_of_many_wins(s: Arc<dyn Store>) {
    // Twenty claims of one address at once: exactly one holds it.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.txn(Txn::when(
                    vec![Compare::Absent("/ipam/net/10.0.0.2".into())],
                    vec![Op::put("/ipam/net/10.0.0.2", format!("ep{i}"))],
                ))
                .await
                .unwrap()
                .succeeded
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1);
}

async fn watches_replay_then_follow(s: &dyn Store) {
    let from = put(s, "/w/1", "a").await;
    put(s, "/w/2", "b").await;
    put(s, "/x/1", "elsewhere").await;
    s.txn(Txn::ops(vec![Op::Delete("/w/1".into())]))
        .await
        .unwrap();
    let mut w = s.watch("/w/", from).await.unwrap();
    // History, in order, only under the prefix, with previous values.
    match next(&mut w).await {
        Event::Put { kv, prev: None } => {
            assert_eq!((kv.key.as_str(), kv.mod_revision), ("/w/1", from))
        }
        e => panic!("{e:?}"),
    }
    assert!(matches!(next(&mut w).await, Event::Put { kv, .. } if kv.key == "/w/2"));
    match next(&mut w).await {
        Event::Delete { prev, .. } => assert_eq!(
            (prev.key.as_str(), prev.value.as_slice()),
            ("/w/1", &b"a"[..])
        ),
        e => panic!("{e:?}"),
    }
    // Then live changes.
    let live = put(s, "/w/3", "c").await;
    match next(&mut w).await {
        Event::Put { kv, .. } => assert_eq!((kv.key.as_str(), kv.mod_revision), ("/w/3", live)),
        e => panic!("{e:?}"),
    }
    put(s, "/w/3", "d").await;
    match next(&mut w).await {
        Event::Put { kv, prev: Some(p) } => {
            assert_eq!((kv.value, p.value), (b"d".to_vec(), b"c".to_vec()))
        }
        e => panic!("{e:?}"),
    }
}

async fn compaction_resets_old_watches(s: &dyn Store) {
    let old = put(s, "/k/1", "a").await;
    let now = put(s, "/k/1", "b").await;
    s.compact(now).await.unwrap();
    let mut w = s.watch("/k/", old).await.unwrap();
    match next(&mut w).await {
        Event::Compacted { compact_revision } => {
            assert!(compact_revision >= now - 1, "{compact_revision}")
        }
        e => panic!("expected a reset, got {e:?}"),
    }
    // From the compaction point on, watches work.
    let mut w = s.watch("/k/", now).await.unwrap();
    assert!(matches!(next(&mut w).await, Event::Put { kv, .. } if kv.value == b"b"));
}

async fn leases(s: &dyn Store) {
    let gone = s.grant(Duration::from_secs(2)).await.unwrap();
    let kept = s.grant(Duration::from_secs(2)).await.unwrap();
    let revoked = s.grant(Duration::from_secs(30)).await.unwrap();
    s.txn(Txn::ops(vec![
        Op::put_on("/n/gone", "x", gone),
        Op::put_on("/n/kept", "x", kept),
        Op::put_on("/n/revoked", "x", revoked),
    ]))
    .await
    .unwrap();
    let mut w = s.watch("/n/", 0).await.unwrap();
    s.revoke(revoked).await.unwrap();
    assert!(matches!(next(&mut w).await, Event::Delete { prev, .. } if prev.key == "/n/revoked"));
    // One lease kept alive past its TTL, the other left to expire.
    let t = tokio::time::Instant::now();
    let mut expired = false;
    while t.elapsed() < Duration::from_secs(12) {
        s.keep_alive(kept).await.unwrap();
        if s.get("/n/gone").await.unwrap().is_none() {
            expired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(expired, "the lease's key outlived it");
    assert!(matches!(next(&mut w).await, Event::Delete { prev, .. } if prev.key == "/n/gone"));
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "expired before its TTL"
    );
    assert!(s.get("/n/kept").await.unwrap().is_some());
    let k = s.keep_alive(gone).await;
    assert!(matches!(k, Err(StoreError::LeaseNotFound(_))), "{k:?}");
    assert!(matches!(
        s.txn(Txn::ops(vec![Op::put_on("/n/late", "x", gone)]))
            .await,
        Err(StoreError::LeaseNotFound(_))
    ));
}

async fn suite(s: Arc<dyn Store>) {
    revisions_and_reads(&*s).await;
    compares(&*s).await;
    one_of_many_wins(s.clone()).await;
    watches_replay_then_follow(&*s).await;
    compaction_resets_old_watches(&*s).await;
    leases(&*s).await;
}

#[tokio::test]
async fn memory_backend() {
    suite(Arc::new(Memory::new())).await;
}

#[tokio::test]
async fn etcd_backend() {
    let server = EtcdServer::start().await;
    suite(Arc::new(server.client().await)).await;
}

#[tokio::test]
async fn etcd_client_survives_an_etcd_restart() {
    let mut server = EtcdServer::start().await;
    let s = server.client().await;
    put(&s, "/r/before", "x").await;
    server.stop();
    match s.get("/r/before").await {
        Err(StoreError::Unavailable { endpoints, .. }) => assert!(endpoints.contains("127.0.0.1")),
        other => panic!("expected unavailable, got {other:?}"),
    }
    server.restart();
    // The same client, retried: the channel reconnects by itself.
    let t = std::time::Instant::now();
    loop {
        match s.get("/r/before").await {
            Ok(Some(kv)) => {
                assert_eq!(kv.value, b"x");
                break;
            }
            r if t.elapsed() < Duration::from_secs(20) => {
                let _ = r;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            r => panic!("no reconnect after 20 s: {r:?}"),
        }
    }
    put(&s, "/r/after", "y").await;
}

#[tokio::test]
async fn an_unreachable_etcd_is_named() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    match berth_store::Etcd::connect(std::slice::from_ref(&url), Duration::from_millis(500)).await {
        Err(e @ StoreError::Unavailable { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&url), "{msg}");
        }
        Ok(_) => panic!("connected to nothing"),
        Err(e) => panic!("{e}"),
    }
}

/// The same random transactions on the model and on `other`: the same outcomes, the same
/// revisions, the same records (creation and modification revisions included).
async fn agrees_with_the_model(other: &dyn Store) {
    let model = Memory::new();
    let mut seed: u64 = 0x5eed_1234_abcd_0001;
    let mut rnd = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for i in 0..300 {
        let key = |r: u64| format!("/p/{}", r % 6);
        let mut ops = Vec::new();
        for _ in 0..=rnd(2) {
            ops.push(match rnd(5) {
                0 => Op::Delete(key(rnd(6))),
                1 if i % 50 == 0 => Op::DeletePrefix("/p/".into()),
                _ => Op::put(key(rnd(6)), format!("v{}", rnd(3))),
            });
        }
        // etcd refuses a transaction that changes one key twice: keep the keys distinct.
        let mut seen = std::collections::HashSet::new();
        ops.retain(|o| match o {
            Op::Put { key, .. } | Op::Delete(key) => seen.insert(key.clone()),
            Op::DeletePrefix(_) => seen.insert("*".into()),
        });
        if ops.iter().any(|o| matches!(o, Op::DeletePrefix(_))) {
            ops.retain(|o| matches!(o, Op::DeletePrefix(_)));
        }
        let k = key(rnd(6));
        let compares = match rnd(4) {
            0 => vec![Compare::Absent(k)],
            1 => vec![Compare::Value(k, format!("v{}", rnd(3)).into_bytes())],
            2 => {
                let rev = model.get(&k).await.unwrap().map_or(0, |kv| kv.mod_revision);
                vec![Compare::ModRevision(k, Cmp::Equal, rev)]
            }
            _ => vec![],
        };
        let txn = Txn {
            compares,
            then: ops.clone(),
            otherwise: vec![],
        };
        let (a, b) = (
            model.txn(txn.clone()).await.unwrap(),
            other.txn(txn.clone()).await.unwrap(),
        );
        assert_eq!(a, b, "transaction {i}: {txn:?}");
    }
    let (m, mr) = model.list("/p/").await.unwrap();
    let (e, er) = other.list("/p/").await.unwrap();
    assert_eq!(mr, er);
    assert_eq!(m, e);
}

#[tokio::test]
async fn etcd_agrees_with_the_model_on_random_transactions() {
    let server = EtcdServer::start().await;
    agrees_with_the_model(&server.client().await).await;
}

#[tokio::test]
async fn redb_agrees_with_the_model_on_random_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let s = berth_store::Redb::open(&dir.path().join("store.db"))
        .await
        .unwrap();
    agrees_with_the_model(&s).await;
}

/// A kept-alive lease outlives several TTLs; dropped, it expires, and its key with it.
async fn keep_alive_until_dropped(s: Arc<dyn Store>) {
    let ttl = Duration::from_secs(2);
    let lease = s.grant(ttl).await.unwrap();
    s.txn(Txn::ops(vec![Op::put_on("/ka/node", "up", lease)]))
        .await
        .unwrap();
    let keeper = berth_store::KeepAlive::start(s.clone(), lease, ttl);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(keeper.alive());
    assert!(
        s.get("/ka/node").await.unwrap().is_some(),
        "expired while kept alive"
    );
    drop(keeper);
    let t = std::time::Instant::now();
    while s.get("/ka/node").await.unwrap().is_some() {
        assert!(t.elapsed() < Duration::from_secs(10), "outlived its lease");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn keep_alive_memory_and_etcd() {
    keep_alive_until_dropped(Arc::new(Memory::new())).await;
    let server = EtcdServer::start().await;
    keep_alive_until_dropped(Arc::new(server.client().await)).await;
}

#[tokio::test]
async fn redb_backend() {
    let dir = tempfile::tempdir().unwrap();
    let s = berth_store::Redb::open(&dir.path().join("store.db"))
        .await
        .unwrap();
    suite(Arc::new(s)).await;
}

/// What a durable store keeps across a restart: records, the revision, the watch history;
/// and what it does not: the leases of the process that is gone, whose keys are deleted.
#[tokio::test]
async fn redb_keeps_records_revisions_and_history_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let (from, rev) = {
        let s = berth_store::Redb::open(&path).await.unwrap();
        let from = put(&s, "/d/1", "a").await;
        put(&s, "/d/2", "b").await;
        s.txn(Txn::ops(vec![Op::Delete("/d/1".into())]))
            .await
            .unwrap();
        let lease = s.grant(Duration::from_secs(60)).await.unwrap();
        let rev = s
            .txn(Txn::ops(vec![Op::put_on("/d/leased", "x", lease)]))
            .await
            .unwrap()
            .revision;
        (from, rev)
    };
    let s = berth_store::Redb::open(&path).await.unwrap();
    let (list, now) = s.list("/d/").await.unwrap();
    assert_eq!(
        list.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(),
        ["/d/2"]
    );
    assert_eq!(
        now,
        rev + 1,
        "one revision for removing the old lease's key"
    );
    let mut w = s.watch("/d/", from).await.unwrap();
    assert!(matches!(next(&mut w).await, Event::Put { kv, .. } if kv.key == "/d/1"));
    assert!(matches!(next(&mut w).await, Event::Put { kv, .. } if kv.key == "/d/2"));
    assert!(matches!(next(&mut w).await, Event::Delete { prev, .. } if prev.key == "/d/1"));
    assert!(matches!(next(&mut w).await, Event::Put { kv, .. } if kv.key == "/d/leased"));
    assert!(
        matches!(next(&mut w).await, Event::Delete { prev, revision } if prev.key == "/d/leased" && revision == now)
    );
    // Revisions go on from where they were.
    assert_eq!(put(&s, "/d/3", "c").await, now + 1);
}
