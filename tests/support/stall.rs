//! A store that can hold one transaction at its door: the test arms it, the next transaction
//! waits there until released (or until its request is dropped, as a killed invocation is).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use eshtarek_core::store::{Item, Key, Page, Query, Store, StoreError, WriteOp};
use tokio::sync::Notify;

pub struct Stalls {
    inner: Arc<dyn Store>,
    armed: AtomicBool,
    reached: Notify,
    release: Notify,
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

    /// This wrapper as the app's store (on DynamoDB, on the inner store's table).
    pub fn store(self: &Arc<Self>) -> Arc<dyn Store> {
        let store: Arc<dyn Store> = self.clone();
        crate::stores::same_table(&store, &self.inner);
        store
    }
}

#[async_trait]
impl Store for Stalls {
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
        self.door().await;
        self.inner.transact(ops).await
    }
    async fn transact_returning(
        &self,
        ops: Vec<WriteOp>,
        index: usize,
    ) -> Result<Option<Item>, StoreError> {
        self.door().await;
        self.inner.transact_returning(ops, index).await
    }
    async fn get_claim(&self, key: &Key, now: i64) -> Result<Option<Item>, StoreError> {
        self.inner.get_claim(key, now).await
    }
}

impl Stalls {
    async fn door(&self) {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.reached.notify_one();
            self.release.notified().await;
        }
    }
}
