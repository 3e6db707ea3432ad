//! Deliberately broken adapters: the suite must fail on them, which shows its cases are real.

use std::sync::Arc;

use async_trait::async_trait;
use eshtarek_core::store::{Item, Key, Page, Query, Store, StoreError, WriteOp};

/// Drops every condition: check-and-write is no longer atomic (it no longer checks at all).
pub struct IgnoresConditions(pub Arc<dyn Store>);

fn strip(op: WriteOp) -> WriteOp {
    match op {
        WriteOp::Put { item, .. } => WriteOp::Put {
            item,
            condition: None,
        },
        WriteOp::Update { key, actions, .. } => WriteOp::Update {
            key,
            actions,
            condition: None,
        },
        WriteOp::Delete { key, .. } => WriteOp::Delete {
            key,
            condition: None,
        },
        check @ WriteOp::Check { .. } => check,
        // A claim that never finds the one before it.
        WriteOp::Claim { item, .. } => WriteOp::Put {
            item,
            condition: None,
        },
    }
}

#[async_trait]
impl Store for IgnoresConditions {
    fn kind(&self) -> &'static str {
        "broken"
    }
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.0.get(key).await
    }
    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        self.0.query(query).await
    }
    async fn write(&self, op: WriteOp) -> Result<Option<Item>, StoreError> {
        self.0.write(strip(op)).await
    }
    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        self.0.transact(ops.into_iter().map(strip).collect()).await
    }
}

/// Applies a transaction's operations one by one: a late failure leaves earlier writes behind.
pub struct PiecemealTransactions(pub Arc<dyn Store>);

#[async_trait]
impl Store for PiecemealTransactions {
    fn kind(&self) -> &'static str {
        "broken"
    }
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.0.get(key).await
    }
    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        self.0.query(query).await
    }
    async fn write(&self, op: WriteOp) -> Result<Option<Item>, StoreError> {
        self.0.write(op).await
    }
    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        for op in ops {
            if let WriteOp::Check { key, condition } = op {
                if !condition.evaluate(self.0.get(&key).await?.as_ref()) {
                    return Err(StoreError::ConditionFailed { current: None });
                }
            } else {
                self.0.write(op).await?;
            }
        }
        Ok(())
    }
}
