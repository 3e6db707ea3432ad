//! The storage port: one narrow, async, single-table interface shaped after DynamoDB, with two
//! adapters behind it (DynamoDB and embedded SQLite) held to the same behaviour by the
//! conformance suite in `tests/`.
//!
//! Services never hold a raw [`Store`]: they get a [`TenantStore`] bound to one tenant or the
//! [`PlatformStore`] for platform-level data, both from [`Stores`].

mod cursor;
mod error;
mod expr;
mod item;
mod scoped;
pub mod shard;

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "dynamodb")]
pub mod vending;

use async_trait::async_trait;

pub use cursor::Position;
pub use error::{CancelReason, StoreError};
pub use expr::{Condition, Index, Page, Query, SortKeyCondition, Stamp, UpdateAction, WriteOp};
pub use item::{AttrValue, Item, Key, GSI1PK, GSI1SK, TTL};
pub use scoped::{
    PlatformStore, ScopedTransaction, Stores, TenantId, TenantStore, TenantStoreProvider,
};

/// Most operations one transaction may hold (DynamoDB's TransactWriteItems limit).
pub const MAX_TRANSACTION_OPS: usize = 100;

/// Most keys one [`Store::get_many`] may ask for (DynamoDB's BatchGetItem limit).
pub const MAX_BATCH_GET: usize = 100;

/// A `get_many` asks for 1 to [`MAX_BATCH_GET`] keys, each once (DynamoDB refuses duplicates).
pub fn validate_get_many(keys: &[Key]) -> Result<(), StoreError> {
    if keys.is_empty() || keys.len() > MAX_BATCH_GET {
        return Err(StoreError::Invalid(format!(
            "get_many takes 1 to {MAX_BATCH_GET} keys, not {}",
            keys.len()
        )));
    }
    for (i, key) in keys.iter().enumerate() {
        if keys[..i].contains(key) {
            return Err(StoreError::Invalid(format!(
                "get_many asks for {key:?} twice"
            )));
        }
    }
    Ok(())
}

/// The port every adapter implements. Reads are strongly consistent on the table (GSI1 reads
/// are eventually consistent on DynamoDB, immediately consistent on SQLite).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A short name for health output: `sqlite` or `dynamodb`.
    fn kind(&self) -> &'static str;

    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError>;

    /// Several items by key, in order, each strongly consistent (`None` where absent); at most
    /// [`MAX_BATCH_GET`] keys, no key twice. The default reads them one by one; adapters that
    /// can do better read them in one round trip (DynamoDB's BatchGetItem) or one read
    /// transaction (SQLite: one snapshot, one set of locks).
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        validate_get_many(keys)?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.get(key).await?);
        }
        Ok(out)
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError>;

    /// One conditional write. Returns the item as it is after the write (`None` after a delete).
    async fn write(&self, op: WriteOp) -> Result<Option<Item>, StoreError>;

    /// All-or-nothing: every condition holds and every write lands, or nothing is written and
    /// [`StoreError::TransactionCancelled`] says which operation failed.
    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError>;

    /// [`Store::transact`], then the item that operation `index` wrote as it is afterwards
    /// (`None` after a delete or a check). The default reads it back with a strongly
    /// consistent get, so it may include writes that landed in between (DynamoDB's
    /// TransactWriteItems returns no values); an adapter that can read it inside the
    /// transaction overrides this and returns exactly its own post-image.
    async fn transact_returning(
        &self,
        ops: Vec<WriteOp>,
        index: usize,
    ) -> Result<Option<Item>, StoreError> {
        validate_returning(&ops, index)?;
        let key = ops[index].key().clone();
        self.transact(ops).await?;
        self.get(&key).await
    }

    /// The unexpired claim at `key` (its TTL at or after `now`), if any.
    /// The default serves adapters that keep claims with other items (DynamoDB); the embedded
    /// one keeps them apart and overrides it.
    async fn get_claim(&self, key: &Key, now: i64) -> Result<Option<Item>, StoreError> {
        Ok(self
            .get(key)
            .await?
            .filter(|i| i.ttl().is_some_and(|ttl| ttl >= now)))
    }
}

/// Conveniences over [`Store::write`], for every store and handle.
#[async_trait]
pub trait StoreExt {
    async fn write_op(&self, op: WriteOp) -> Result<Option<Item>, StoreError>;

    async fn put(&self, item: Item, condition: Option<Condition>) -> Result<(), StoreError> {
        self.write_op(WriteOp::Put { item, condition })
            .await
            .map(|_| ())
    }

    /// Updates (or creates, unless the condition forbids it) and returns the new item.
    async fn update(
        &self,
        key: Key,
        actions: Vec<UpdateAction>,
        condition: Option<Condition>,
    ) -> Result<Item, StoreError> {
        let item = self
            .write_op(WriteOp::Update {
                key,
                actions,
                condition,
            })
            .await?;
        item.ok_or_else(|| StoreError::Backend("update returned no item".into()))
    }

    async fn delete(&self, key: Key, condition: Option<Condition>) -> Result<(), StoreError> {
        self.write_op(WriteOp::Delete { key, condition })
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl<S: Store + ?Sized> StoreExt for S {
    async fn write_op(&self, op: WriteOp) -> Result<Option<Item>, StoreError> {
        self.write(op).await
    }
}

/// Checks what every adapter refuses alike, before any I/O.
pub fn validate_write(op: &WriteOp, in_transaction: bool) -> Result<(), StoreError> {
    let invalid = |m: String| Err(StoreError::Invalid(m));
    validate_key(op.key())?;
    if let WriteOp::Check { .. } = op {
        if !in_transaction {
            return invalid("a condition check only exists inside a transaction".into());
        }
    }
    if let WriteOp::Claim { item, stamp, .. } = op {
        if item.ttl().is_none() {
            return invalid("a claim needs a TTL".into());
        }
        if item.get(GSI1PK).is_some() || item.get(GSI1SK).is_some() {
            return invalid("a claim is not indexed".into());
        }
        if stamp.is_some() && !in_transaction {
            return invalid("a stamp copies from another operation of a transaction".into());
        }
    }
    if let Some(condition) = op.condition() {
        if condition.has_empty_group() {
            return invalid("an And/Or condition needs at least one member".into());
        }
        for name in condition.attr_names() {
            validate_attr_name(name)?;
        }
    }
    match op {
        WriteOp::Put { item, .. } | WriteOp::Claim { item, .. } => {
            for (name, value) in &item.attrs {
                validate_attr_name(name)?;
                validate_reserved_type(name, value)?;
            }
        }
        WriteOp::Update { actions, .. } => {
            if actions.is_empty() {
                return invalid("an update needs at least one action".into());
            }
            // A linear scan: updates name a handful of attributes, and hashing each name cost
            // more than comparing them (this runs on every usage event).
            for (i, action) in actions.iter().enumerate() {
                let name = action.attr_name();
                validate_attr_name(name)?;
                if actions[..i].iter().any(|a| a.attr_name() == name) {
                    return invalid(format!("attribute {name} updated twice"));
                }
                match action {
                    UpdateAction::Set(name, value) => validate_reserved_type(name, value)?,
                    UpdateAction::Add(name, _) if is_index_attr(name) => {
                        return invalid(format!("{name} is a string key attribute"))
                    }
                    _ => {}
                }
            }
        }
        WriteOp::Delete { .. } | WriteOp::Check { .. } => {}
    }
    Ok(())
}

pub fn validate_transaction(ops: &[WriteOp]) -> Result<(), StoreError> {
    if ops.is_empty() || ops.len() > MAX_TRANSACTION_OPS {
        return Err(StoreError::Invalid(format!(
            "a transaction holds 1 to {MAX_TRANSACTION_OPS} operations, not {}",
            ops.len()
        )));
    }
    for (index, op) in ops.iter().enumerate() {
        validate_write(op, true)?;
        if let WriteOp::Claim {
            stamp: Some(stamp), ..
        } = op
        {
            let source = ops.get(stamp.from);
            if stamp.from == index
                || !matches!(source, Some(WriteOp::Put { .. } | WriteOp::Update { .. }))
            {
                return Err(StoreError::Invalid(format!(
                    "a stamp copies from another put or update, not operation {}",
                    stamp.from
                )));
            }
            validate_attr_name(&stamp.attr)?;
        }
        // Linear, as above: at most 100 operations, usually a handful.
        if ops[..index].iter().any(|o| o.key() == op.key()) {
            return Err(StoreError::Invalid(format!(
                "key {}/{} appears twice in one transaction",
                op.key().pk,
                op.key().sk
            )));
        }
    }
    Ok(())
}

/// Which operation's post-image [`Store::transact_returning`] may answer with: one that
/// exists, and not a claim (claims are read only with [`Store::get_claim`]).
pub fn validate_returning(ops: &[WriteOp], index: usize) -> Result<(), StoreError> {
    match ops.get(index) {
        None => Err(StoreError::Invalid(format!(
            "no operation {index} to return"
        ))),
        Some(WriteOp::Claim { .. }) => Err(StoreError::Invalid(
            "a claim's post-image is not returned".into(),
        )),
        Some(_) => Ok(()),
    }
}

pub fn validate_query(query: &Query) -> Result<(), StoreError> {
    if query.pk.is_empty() {
        return Err(StoreError::Invalid("empty partition key".into()));
    }
    // DynamoDB refuses an empty string as a key value in a key condition; refusing it here
    // makes SQLite refuse it too, so a query that works locally works deployed.
    let values: &[&String] = match &query.sk {
        None => &[],
        Some(
            SortKeyCondition::Eq(v)
            | SortKeyCondition::BeginsWith(v)
            | SortKeyCondition::Lt(v)
            | SortKeyCondition::Le(v)
            | SortKeyCondition::Gt(v)
            | SortKeyCondition::Ge(v),
        ) => &[v],
        Some(SortKeyCondition::Between(low, high)) => &[low, high],
    };
    if values.iter().any(|v| v.is_empty()) {
        return Err(StoreError::Invalid(
            "a sort key condition compares with an empty string".into(),
        ));
    }
    if query.limit == 0 || query.limit > Query::MAX_LIMIT {
        return Err(StoreError::Invalid(format!(
            "query limit must be 1..={}",
            Query::MAX_LIMIT
        )));
    }
    if let Some(cursor) = &query.cursor {
        Position::decode(cursor, query.index, &query.pk)?;
    }
    Ok(())
}

fn validate_key(key: &Key) -> Result<(), StoreError> {
    // DynamoDB's limits: 2048 bytes of partition key, 1024 of sort key.
    if key.pk.is_empty() || key.pk.len() > 2048 || key.sk.is_empty() || key.sk.len() > 1024 {
        return Err(StoreError::Invalid(format!(
            "key {}/{} is empty or too long",
            key.pk, key.sk
        )));
    }
    Ok(())
}

fn validate_attr_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.len() > 255 || item::KEY_ATTRS.contains(&name) {
        return Err(StoreError::Invalid(format!(
            "attribute name {name:?} is empty, too long or reserved"
        )));
    }
    Ok(())
}

fn is_index_attr(name: &str) -> bool {
    name == GSI1PK || name == GSI1SK
}

fn validate_reserved_type(name: &str, value: &AttrValue) -> Result<(), StoreError> {
    let ok = match name {
        GSI1PK | GSI1SK => matches!(value, AttrValue::S(s) if !s.is_empty()),
        TTL => matches!(value, AttrValue::N(_)),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "attribute {name} has the wrong type"
        )))
    }
}
