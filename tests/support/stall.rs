//! A store that can hold one transaction at its door: the test arms it, the next transaction
//! waits there until released (or until its request is dropped, as a killed invocation is).
//! On DynamoDB the door stands in front of the tenants' vended stores too, so a tenant's
//! transaction (an invoice, a usage event) can be held as well as a platform one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use eshtarek_core::store::{
    Item, Key, Page, Query, Store, StoreError, TenantId, TenantStoreProvider, WriteOp,
};
use tokio::sync::Notify;

/// The door's state, shared by every store it stands in front of.
pub struct Stalls {
    inner: Arc<dyn Store>,
    armed: AtomicBool,
    reached: Notify,
    release: Notify,
}

/// Stalling stores made here, by address: how `TestApp` finds the door to put in front of
/// the tenants' vended stores.
static MADE: Mutex<Option<HashMap<usize, Weak<Stalls>>>> = Mutex::new(None);

fn address(store: &Arc<dyn Store>) -> usize {
    Arc::as_ptr(store) as *const () as usize
}

impl Stalls {
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            armed: AtomicBool::new(false),
            reached: Notify::new(),
            release: Notify::new(),
        })
    }

    /// The next transaction waits at the door.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Returns once an armed transaction is waiting.
    pub async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Lets the waiting transaction through.
    pub fn release(&self) {
        self.release.notify_one();
    }

    /// This door in front of the store it wraps, as the app's store (on DynamoDB, on the inner
    /// store's table).
    pub fn store(self: &Arc<Self>) -> Arc<dyn Store> {
        let store: Arc<dyn Store> = Arc::new(Door {
            stalls: self.clone(),
            inner: self.inner.clone(),
        });
        crate::stores::same_table(&store, &self.inner);
        let mut made = MADE.lock().unwrap();
        let made = made.get_or_insert_with(HashMap::new);
        made.retain(|_, stalls| stalls.strong_count() > 0);
        made.insert(address(&store), Arc::downgrade(self));
        store
    }

    /// The door of `store`, if it is one made by [`Stalls::store`].
    pub fn of(store: &Arc<dyn Store>) -> Option<Arc<Self>> {
        MADE.lock()
            .unwrap()
            .as_ref()?
            .get(&address(store))?
            .upgrade()
    }

    /// The same door in front of every store `provider` vends.
    pub fn provider(
        self: &Arc<Self>,
        provider: Arc<dyn TenantStoreProvider>,
    ) -> Arc<dyn TenantStoreProvider> {
        Arc::new(Vended {
            stalls: self.clone(),
            inner: provider,
        })
    }

    async fn door(&self) {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.reached.notify_one();
            self.release.notified().await;
        }
    }
}

struct Vended {
    stalls: Arc<Stalls>,
    inner: Arc<dyn TenantStoreProvider>,
}

impl TenantStoreProvider for Vended {
    fn store_for(&self, tenant: &TenantId) -> Arc<dyn Store> {
        Arc::new(Door {
            stalls: self.stalls.clone(),
            inner: self.inner.store_for(tenant),
        })
    }
}

/// One store behind the door: reads and single writes pass, transactions may be held.
struct Door {
    stalls: Arc<Stalls>,
    inner: Arc<dyn Store>,
}

#[async_trait]
impl Store for Door {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.inner.get(key).await
    }
    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        self.inner.query(query).await
    }
    async fn write(&self, op: WriteOp) -> Result<Option<Item>, StoreError> {
        self.inner.write(op).await
    }
    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        self.stalls.door().await;
        self.inner.transact(ops).await
    }
    async fn transact_returning(
        &self,
        ops: Vec<WriteOp>,
        index: usize,
    ) -> Result<Option<Item>, StoreError> {
        self.stalls.door().await;
        self.inner.transact_returning(ops, index).await
    }
    async fn get_claim(&self, key: &Key, now: i64) -> Result<Option<Item>, StoreError> {
        self.inner.get_claim(key, now).await
    }
}
