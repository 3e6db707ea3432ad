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
