//! The storage conformance suite on the embedded SQLite adapter.

eshtarek_tests::conformance_suite!(eshtarek_tests::stores::sqlite());

/// The embedded store deletes items whose TTL has passed on its own (DynamoDB's TTL does on
/// AWS), and leaves the others.
#[tokio::test]
async fn expired_items_are_purged_by_the_writer() {
    use eshtarek_core::store::{Item, Key, Store, StoreExt};
    let dir = tempfile::tempdir().unwrap();
    let store = eshtarek_core::store::sqlite::SqliteStore::open_purging_every(
        dir.path().join("ttl.db"),
        std::time::Duration::from_millis(50),
    )
    .unwrap();
    let now = chrono::Utc::now().timestamp();
    let gone = Key::new("TTL", "PAST");
    let kept = Key::new("TTL", "FUTURE");
    let plain = Key::new("TTL", "NONE");
    store
        .put(Item::new(gone.clone()).with_ttl(now - 10), None)
        .await
        .unwrap();
    store
        .put(Item::new(kept.clone()).with_ttl(now + 3600), None)
        .await
        .unwrap();
    store.put(Item::new(plain.clone()), None).await.unwrap();
    let mut purged = false;
    for _ in 0..100 {
        if store.get(&gone).await.unwrap().is_none() {
            purged = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(purged, "the expired item is still there after 2 s");
    assert!(store.get(&kept).await.unwrap().is_some());
    assert!(store.get(&plain).await.unwrap().is_some());
}

/// Claims outlive the process, through every stage of their log: in the active segment, in
/// sealed segments (indexed on disk, filtered in memory), after a restart; and a sealed
/// segment whose claims all expired is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_survive_sealing_restart_and_expire_by_segment() {
    use eshtarek_core::store::sqlite::{ClaimSettings, SqliteStore, Tuning};
    use eshtarek_core::store::{Item, Key, Store, StoreError, WriteOp};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("claims.db");
    let settings = ClaimSettings {
        segment_claims: 10,
        segment_age: std::time::Duration::from_secs(3600),
    };
    let open = || {
        SqliteStore::open_with(
            &path,
            Tuning {
                purge_every: std::time::Duration::from_millis(50),
                claims: settings,
                ..Tuning::default()
            },
        )
        .unwrap()
    };
    let now = chrono::Utc::now().timestamp();
    let key = |i: usize| Key::new("TENANT#t#UIDEM", format!("K#{i}"));
    // 35 short-lived claims (3 segments and half of a fourth), then 25 long-lived.
    let claim = |i: usize, ttl: i64| WriteOp::Claim {
        item: Item::new(key(i)).with("n", i as i64).with_ttl(ttl),
        now,
        stamp: None,
    };
    let refused = |result: Result<(), StoreError>| {
        matches!(result, Err(StoreError::TransactionCancelled { .. }))
    };
    let segments = || {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let segments: i64 = conn
            .query_row("SELECT COUNT(*) FROM claim_segments", [], |r| r.get(0))
            .unwrap();
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM claims", [], |r| r.get(0))
            .unwrap();
        (segments, rows)
    };
    {
        let store = open();
        for i in 0..60 {
            let ttl = if i < 35 { now + 2 } else { now + 3600 };
            store.transact(vec![claim(i, ttl)]).await.unwrap();
            if i % 10 == 9 {
                // A full segment is sealed (sorted on a thread of its own) between group
                // commits; while one seals, the next keeps filling. Waiting here keeps every
                // segment at exactly ten claims, so the expiry below is deterministic.
                let sealed = (i / 10 + 1) as i64;
                let mut waited = 0;
                while segments().0 < sealed {
                    assert!(waited < 200, "segment {sealed} not sealed after 2 s");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    waited += 1;
                }
            }
        }
        for i in 0..60 {
            assert!(
                refused(store.transact(vec![claim(i, now + 3600)]).await),
                "claim {i} taken twice"
            );
            let found = store
                .get_claim(&key(i), now)
                .await
                .unwrap()
                .expect("claim found");
            assert_eq!(found.i64("n"), Some(i as i64));
        }
        assert_eq!(store.get_claim(&key(60), now).await.unwrap(), None);
    }
    // Let the writer thread close, then reopen the file: the indexes are rebuilt.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let store = open();
    for i in 0..60 {
        assert!(
            refused(store.transact(vec![claim(i, now + 3600)]).await),
            "claim {i} lost at restart"
        );
    }
    let (sealed, rows) = segments();
    assert_eq!(sealed, 6, "60 claims in segments of 10");
    assert_eq!(rows, 60);
    // The first 35 expire 2 s from the start; their three full segments are deleted.
    let mut deleted = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if chrono::Utc::now().timestamp() > now + 2 && segments().1 <= 30 {
            deleted = true;
            break;
        }
    }
    assert!(deleted, "expired segments still there: {:?}", segments());
    for i in 0..30 {
        let later = WriteOp::Claim {
            item: Item::new(key(i)).with_ttl(now + 7200),
            now: now + 3,
            stamp: None,
        };
        store.transact(vec![later]).await.unwrap();
    }
    for i in 35..60 {
        assert!(
            refused(store.transact(vec![claim(i, now + 3600)]).await),
            "live claim {i} deleted"
        );
    }
}

/// The writer keeps the items it wrote between group commits; a write to the same file by
/// another connection (another process: the `admin` command beside a running server) must not
/// be hidden by that cache.
#[tokio::test]
async fn writes_by_another_connection_are_seen_by_the_writer() {
    use eshtarek_core::store::sqlite::SqliteStore;
    use eshtarek_core::store::{Condition, Item, Key, Store, StoreExt, UpdateAction};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let store = SqliteStore::open(&path).unwrap();
    let key = Key::new("EXT", "COUNTER");
    store
        .put(Item::new(key.clone()).with("n", 1), None)
        .await
        .unwrap();
    // Another connection sets n = 5 behind the writer's back.
    let other = rusqlite::Connection::open(&path).unwrap();
    other
        .busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    let changed = other
        .execute(
            "UPDATE items SET attrs = '{\"n\":{\"N\":\"5\"}}' WHERE pk = 'EXT' AND sk = 'COUNTER'",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    assert_eq!(
        store.get(&key).await.unwrap().unwrap().i64("n"),
        Some(5),
        "the attrs encoding in this test matches the store's"
    );
    // A conditional write that only holds on the other connection's value.
    let after = store
        .update(
            key.clone(),
            vec![UpdateAction::add("n", 1)],
            Some(Condition::eq("n", 5)),
        )
        .await
        .expect("the writer saw n = 5");
    assert_eq!(after.i64("n"), Some(6));
}

/// Under a steady stream of commits the WAL is started over again and again: it stays a small
/// part of what was written through it (a passive checkpoint alone never catches up, and the
/// WAL then grows with every commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_wal_is_started_over_under_steady_writes() {
    use eshtarek_core::store::sqlite::{SqliteStore, Tuning};
    use eshtarek_core::store::{Item, Key, StoreExt, UpdateAction};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    let store = Arc::new(
        SqliteStore::open_with(
            &path,
            Tuning {
                wal_restart_frames: 64,
                ..Tuning::default()
            },
        )
        .unwrap(),
    );
    // Eight writers for two seconds, each commit a counter and a new item: at least one new
    // page per commit.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let writers = (0..8).map(|w| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut commits = 0u64;
            while std::time::Instant::now() < until {
                store
                    .update(
                        Key::new("WAL", "COUNTER"),
                        vec![UpdateAction::add("n", 1)],
                        None,
                    )
                    .await
                    .unwrap();
                let filler = "x".repeat(3000);
                store
                    .put(
                        Item::new(Key::new("WAL", format!("{w}-{commits}"))).with("f", filler),
                        None,
                    )
                    .await
                    .unwrap();
                commits += 2;
            }
            commits
        })
    });
    let commits: u64 = futures::future::join_all(writers)
        .await
        .into_iter()
        .map(|c| c.unwrap())
        .sum();
    let written = commits * 4096;
    let wal = std::fs::metadata(dir.path().join("wal.db-wal"))
        .unwrap()
        .len();
    assert!(
        wal < written / 4,
        "WAL of {wal} bytes after {commits} commits of a page or more ({written} bytes)"
    );
}
