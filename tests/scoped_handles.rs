//! Tenant and platform handles: a tenant handle cannot reach another tenant's partitions, and
//! a refused request never reaches the store.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use eshtarek_core::store::{
    Item, Key, Page, Query, Store, StoreError, StoreExt, Stores, TenantId, UpdateAction, WriteOp,
    GSI1PK,
};
use eshtarek_tests::stores;

/// Counts the calls that reach the real store.
struct Counting(Arc<dyn Store>, AtomicUsize);

#[async_trait]
impl Store for Counting {
    fn kind(&self) -> &'static str {
        "counting"
    }
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.get(key).await
    }
    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.query(query).await
    }
    async fn write(&self, op: WriteOp) -> Result<Option<Item>, StoreError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.write(op).await
    }
    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.transact(ops).await
    }
}

fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).unwrap()
}

#[tokio::test]
async fn tenant_handle_refuses_other_tenants_keys_before_any_io() {
    let counting = Arc::new(Counting(stores::sqlite().await, AtomicUsize::new(0)));
    let stores = Stores::new(counting.clone());
    let a = stores.tenant(&tenant("acme"));
    let b = stores.tenant(&tenant("globex"));

    let secret = b.key("SUB", "SUB#1");
    b.put(Item::new(secret.clone()).with("plan", "pro"), None)
        .await
        .unwrap();
    let calls = counting.1.load(Ordering::SeqCst);

    let cross = StoreError::CrossTenant {
        pk: secret.pk.clone(),
    };
    assert_eq!(a.get(&secret).await.unwrap_err(), cross);
    // A batch read with one foreign key among its own is refused whole.
    assert_eq!(
        a.get_many(&[a.key("SUB", "SUB#1"), secret.clone()])
            .await
            .unwrap_err(),
        cross
    );
    assert_eq!(a.query(&Query::table(&secret.pk)).await.unwrap_err(), cross);
    assert_eq!(
        a.put(Item::new(secret.clone()), None).await.unwrap_err(),
        cross
    );
    assert_eq!(
        a.update(
            secret.clone(),
            vec![UpdateAction::set("plan", "free")],
            None
        )
        .await
        .unwrap_err(),
        cross
    );
    assert_eq!(a.delete(secret.clone(), None).await.unwrap_err(), cross);
    // A transaction with one foreign key among its own is refused whole.
    let own = a.key("SUB", "SUB#1");
    let mixed = vec![
        WriteOp::Put {
            item: Item::new(own.clone()),
            condition: None,
        },
        WriteOp::Delete {
            key: secret.clone(),
            condition: None,
        },
    ];
    assert_eq!(a.transact(mixed).await.unwrap_err(), cross);
    // Prefix tricks: "acme" must not reach "acme2" nor the bare prefix.
    let sibling = stores.tenant(&tenant("acme2")).key("SUB", "X");
    assert!(matches!(
        a.get(&sibling).await,
        Err(StoreError::CrossTenant { .. })
    ));
    assert!(matches!(
        a.get(&Key::new("TENANT#acme#", "X")).await,
        Err(StoreError::CrossTenant { .. })
    ));
    // Indexing an item under another tenant's GSI partition would leak it into their queries.
    let planted = Item::new(a.key("SUB", "SUB#2")).with_gsi1(b.pk("SUB"), "X");
    assert!(matches!(
        a.put(planted, None).await,
        Err(StoreError::CrossTenant { .. })
    ));
    let moved = a
        .update(
            a.key("SUB", "SUB#3"),
            vec![UpdateAction::set(GSI1PK, b.pk("SUB"))],
            None,
        )
        .await;
    assert!(matches!(moved, Err(StoreError::CrossTenant { .. })));

    assert_eq!(
        counting.1.load(Ordering::SeqCst),
        calls,
        "no refused call reached the store"
    );
    let stored = b.get(&secret).await.unwrap().unwrap();
    assert_eq!(stored.str("plan"), Some("pro"), "B's data is unchanged");
    assert_eq!(
        a.get(&own).await.unwrap(),
        None,
        "the mixed transaction wrote nothing"
    );
}

#[tokio::test]
async fn tenant_items_may_sit_in_platform_indexes_read_by_the_platform_handle() {
    let stores = Stores::new(stores::sqlite().await);
    let a = stores.tenant(&tenant("acme"));
    a.put(
        Item::new(a.key("SUB", "SUB#1")).with_gsi1("IDX#RENEWAL", "2026-12-01"),
        None,
    )
    .await
    .unwrap();
    let due = stores
        .platform()
        .query(&Query::gsi1("IDX#RENEWAL"))
        .await
        .unwrap();
    assert_eq!(due.items.len(), 1);
    assert_eq!(due.items[0].key.pk, "TENANT#acme#SUB");
}

#[tokio::test]
async fn platform_handle_refuses_tenant_partitions() {
    let stores = Stores::new(stores::sqlite().await);
    let platform = stores.platform();
    let tenant_key = stores.tenant(&tenant("acme")).key("SUB", "SUB#1");
    assert!(matches!(
        platform.get(&tenant_key).await,
        Err(StoreError::CrossTenant { .. })
    ));
    assert!(matches!(
        platform.put(Item::new(tenant_key), None).await,
        Err(StoreError::CrossTenant { .. })
    ));
    platform
        .put(
            Item::new(Key::new("USER#u1", "PROFILE")).with("email", "a@b.c"),
            None,
        )
        .await
        .unwrap();
}

/// Each tenant's store counted apart, over the same backing store (as vended clients are).
struct PerTenant(
    Arc<dyn Store>,
    std::sync::Mutex<Vec<(String, Arc<Counting>)>>,
);

impl eshtarek_core::store::TenantStoreProvider for PerTenant {
    fn store_for(&self, tenant: &TenantId) -> Arc<dyn Store> {
        let mut stores = self.1.lock().unwrap();
        if let Some((_, s)) = stores.iter().find(|(t, _)| t == tenant.as_str()) {
            return s.clone();
        }
        let store = Arc::new(Counting(self.0.clone(), AtomicUsize::new(0)));
        stores.push((tenant.as_str().to_owned(), store.clone()));
        store
    }
}

impl PerTenant {
    fn calls(&self, tenant: &str) -> usize {
        let stores = self.1.lock().unwrap();
        stores
            .iter()
            .find(|(t, _)| t == tenant)
            .map_or(0, |(_, s)| s.1.load(Ordering::SeqCst))
    }
}

#[tokio::test]
async fn a_transaction_commits_with_one_principal_and_never_mixes() {
    let backing = stores::sqlite().await;
    let platform = Arc::new(Counting(backing.clone(), AtomicUsize::new(0)));
    let per_tenant = Arc::new(PerTenant(backing, Default::default()));
    let stores = Stores::new(platform.clone()).with_tenant_stores(per_tenant.clone());
    let a = stores.tenant(&tenant("acme"));
    let b = stores.tenant(&tenant("globex"));
    let put = |key: Key| WriteOp::Put {
        item: Item::new(key),
        condition: None,
    };

    // One tenant's operations: on that tenant's store, not the platform's.
    stores
        .transaction()
        .tenant(&a, put(a.key("X", "1")))
        .tenant(&a, put(a.key("Y", "1")))
        .commit()
        .await
        .unwrap();
    assert_eq!(per_tenant.calls("acme"), 1);
    assert_eq!(platform.1.load(Ordering::SeqCst), 0);
    // Platform operations: on the platform store.
    stores
        .transaction()
        .platform(put(Key::new("USER#u1", "PROFILE")))
        .commit()
        .await
        .unwrap();
    assert_eq!(platform.1.load(Ordering::SeqCst), 1);

    // A mix, in either order, and two tenants: refused before any I/O, nothing written.
    let mixed = [
        stores
            .transaction()
            .tenant(&a, put(a.key("X", "2")))
            .platform(put(Key::new("USER#u2", "PROFILE"))),
        stores
            .transaction()
            .platform(put(Key::new("USER#u2", "PROFILE")))
            .tenant(&a, put(a.key("X", "2"))),
        stores
            .transaction()
            .tenant(&a, put(a.key("X", "2")))
            .tenant(&b, put(b.key("X", "2"))),
    ];
    for tx in mixed {
        assert!(matches!(tx.commit().await, Err(StoreError::Invalid(_))));
    }
    assert_eq!(per_tenant.calls("acme"), 1);
    assert_eq!(per_tenant.calls("globex"), 0);
    assert_eq!(platform.1.load(Ordering::SeqCst), 1);
    assert!(a.get(&a.key("X", "2")).await.unwrap().is_none());
}

#[test]
fn tenant_ids_cannot_carry_the_delimiter() {
    for bad in ["", "a#b", "a b", "ü", &"x".repeat(65)] {
        assert!(TenantId::parse(bad).is_err(), "{bad:?} accepted");
    }
    assert_eq!(tenant("t_01-X").key_prefix(), "TENANT#t_01-X#");
}
