//! Scoped handles: the only way services reach the store.
//!
//! A [`TenantStore`] is bound to one tenant. Every partition key it builds is
//! `TENANT#<id>#<partition>`, and every key handed to it is checked against that prefix before
//! any I/O, so a handler holding it cannot touch another tenant's partitions: the same rule the
//! IAM `dynamodb:LeadingKeys` condition enforces on the tenant credentials in AWS.
//! A [`PlatformStore`] reaches platform data (global users, plans, the tenant index) and
//! refuses tenant partitions.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{AttrValue, Item, Key, Page, Query, Store, StoreError, UpdateAction, WriteOp, GSI1PK};

/// Prefix of every tenant partition key.
pub const TENANT_PREFIX: &str = "TENANT#";
/// Prefix of GSI1 partitions that platform jobs read across tenants (e.g. renewals due).
/// Tenant items may be indexed there; only the platform handle can query it.
pub const PLATFORM_INDEX_PREFIX: &str = "IDX#";

/// A validated tenant id: 1 to 64 of `A-Z a-z 0-9 _ -`, so it can never contain the `#`
/// delimiter and no tenant's prefix is a prefix of another's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(raw: &str) -> Result<Self, StoreError> {
        let valid = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(StoreError::Invalid(format!("invalid tenant id {raw:?}")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tenant a tenant partition key belongs to, and the partition's name within it.
    pub fn of_pk(pk: &str) -> Option<(Self, &str)> {
        let (id, partition) = pk.strip_prefix(TENANT_PREFIX)?.split_once('#')?;
        Some((Self::parse(id).ok()?, partition))
    }

    /// `TENANT#<id>#`: every partition of this tenant starts with it.
    pub fn key_prefix(&self) -> String {
        format!("{TENANT_PREFIX}{}#", self.0)
    }
}

impl TryFrom<String> for TenantId {
    type Error = StoreError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        TenantId::parse(&value)
    }
}

impl From<TenantId> for String {
    fn from(value: TenantId) -> Self {
        value.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Gives the store a tenant's requests run on: on AWS, one whose credentials IAM limits to
/// that tenant's partitions (see `vending`).
pub trait TenantStoreProvider: Send + Sync + 'static {
    fn store_for(&self, tenant: &TenantId) -> Arc<dyn Store>;
}

/// The composition root's view of the store: hands out scoped handles.
#[derive(Clone)]
pub struct Stores {
    inner: Arc<dyn Store>,
    tenant_stores: Option<Arc<dyn TenantStoreProvider>>,
}

impl Stores {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            inner: store,
            tenant_stores: None,
        }
    }

    /// Tenant handles, and transactions of tenant operations, run on the provider's
    /// per-tenant stores; platform handles keep the platform store.
    pub fn with_tenant_stores(mut self, provider: Arc<dyn TenantStoreProvider>) -> Self {
        self.tenant_stores = Some(provider);
        self
    }

    pub fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    pub fn tenant(&self, tenant: &TenantId) -> TenantStore {
        let inner = match &self.tenant_stores {
            Some(provider) => provider.store_for(tenant),
            None => self.inner.clone(),
        };
        TenantStore {
            inner,
            prefix: tenant.key_prefix(),
            tenant: tenant.clone(),
        }
    }

    pub fn platform(&self) -> PlatformStore {
        PlatformStore {
            inner: self.inner.clone(),
        }
    }
}

/// A store handle bound to one tenant.
#[derive(Clone)]
pub struct TenantStore {
    inner: Arc<dyn Store>,
    tenant: TenantId,
    prefix: String,
}

impl TenantStore {
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The partition key of one of this tenant's partitions.
    pub fn pk(&self, partition: &str) -> String {
        self.pk_of(&[partition])
    }

    /// The partition key of the partition named by `parts` joined (one allocation; usage
    /// events build several keys each).
    pub fn pk_of(&self, parts: &[&str]) -> String {
        let len = parts.iter().map(|p| p.len()).sum::<usize>();
        let mut pk = String::with_capacity(self.prefix.len() + len);
        pk.push_str(&self.prefix);
        for part in parts {
            pk.push_str(part);
        }
        pk
    }

    pub fn key(&self, partition: &str, sk: impl Into<String>) -> Key {
        Key::new(self.pk(partition), sk)
    }

    fn check_pk(&self, pk: &str) -> Result<(), StoreError> {
        if pk.starts_with(&self.prefix) && pk.len() > self.prefix.len() {
            Ok(())
        } else {
            Err(StoreError::CrossTenant { pk: pk.to_owned() })
        }
    }

    /// A tenant item may sit in GSI1 under its own tenant's partitions or a platform index;
    /// never under another tenant's, where that tenant's queries would find it.
    fn check_gsi1(&self, value: &AttrValue) -> Result<(), StoreError> {
        match value.as_str() {
            Some(gpk) if gpk.starts_with(PLATFORM_INDEX_PREFIX) => Ok(()),
            Some(gpk) => self.check_pk(gpk),
            None => Ok(()), // a wrong type is refused by the shared validation
        }
    }

    fn check_write(&self, op: &WriteOp) -> Result<(), StoreError> {
        self.check_pk(&op.key().pk)?;
        match op {
            WriteOp::Put { item, .. } => item.get(GSI1PK).map_or(Ok(()), |v| self.check_gsi1(v)),
            WriteOp::Update { actions, .. } => actions.iter().try_for_each(|a| match a {
                UpdateAction::Set(name, value) if name == GSI1PK => self.check_gsi1(value),
                _ => Ok(()),
            }),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl Store for TenantStore {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.check_pk(&key.pk)?;
        self.inner.get(key).await
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        for key in keys {
            self.check_pk(&key.pk)?;
        }
        self.inner.get_many(keys).await
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        self.check_pk(&query.pk)?;
        self.inner.query(query).await
    }

    async fn write(&self, op: WriteOp) -> Result<Option<Item>, StoreError> {
        self.check_write(&op)?;
        self.inner.write(op).await
    }

    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        ops.iter().try_for_each(|op| self.check_write(op))?;
        self.inner.transact(ops).await
    }

    async fn get_claim(&self, key: &Key, now: i64) -> Result<Option<Item>, StoreError> {
        self.check_pk(&key.pk)?;
        self.inner.get_claim(key, now).await
    }
}

/// A store handle for platform-level data; it refuses tenant partitions.
#[derive(Clone)]
pub struct PlatformStore {
    inner: Arc<dyn Store>,
}

impl PlatformStore {
    fn check_pk(pk: &str) -> Result<(), StoreError> {
        if pk.starts_with(TENANT_PREFIX) {
            Err(StoreError::CrossTenant { pk: pk.to_owned() })
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Store for PlatformStore {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        Self::check_pk(&key.pk)?;
        self.inner.get(key).await
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        for key in keys {
            Self::check_pk(&key.pk)?;
        }
        self.inner.get_many(keys).await
    }

    /// Platform queries may read platform indexes (`IDX#…` on GSI1), whose items can belong to
    /// tenants: that is how jobs find due work without scanning.
    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        Self::check_pk(&query.pk)?;
        self.inner.query(query).await
    }

    async fn write(&self, op: WriteOp) -> Result<Option<Item>, StoreError> {
        Self::check_pk(&op.key().pk)?;
        self.inner.write(op).await
    }

    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        ops.iter().try_for_each(|op| Self::check_pk(&op.key().pk))?;
        self.inner.transact(ops).await
    }

    async fn get_claim(&self, key: &Key, now: i64) -> Result<Option<Item>, StoreError> {
        Self::check_pk(&key.pk)?;
        self.inner.get_claim(key, now).await
    }
}

/// Which principal a transaction's operations belong to.
#[derive(Clone)]
enum Scope {
    Empty,
    Platform,
    Tenant(TenantStore),
    /// Operations of two scopes: refused at commit.
    Mixed,
}

/// A transaction built from scoped operations, each checked by the handle it goes through and
/// committed with **one principal**: a tenant's operations on that tenant's store (on AWS, its
/// vended credentials, which IAM limits to `TENANT#<id>#…`), platform operations on the
/// platform store. A transaction mixing the two, or two tenants, is refused before any I/O:
/// no request may carry one tenant's items under another principal's signature
/// (`docs/data-model.md`, "Who signs what"). Use cases that change both sides write them as
/// separate steps in an order that keeps their invariants.
pub struct ScopedTransaction {
    platform: Arc<dyn Store>,
    scope: Scope,
    ops: Vec<WriteOp>,
    refused: Option<StoreError>,
}

impl ScopedTransaction {
    pub fn platform(mut self, op: WriteOp) -> Self {
        if let Err(e) = PlatformStore::check_pk(&op.key().pk) {
            self.refused.get_or_insert(e);
        }
        self.scope = match self.scope {
            Scope::Empty | Scope::Platform => Scope::Platform,
            _ => Scope::Mixed,
        };
        self.ops.push(op);
        self
    }

    pub fn tenant(mut self, handle: &TenantStore, op: WriteOp) -> Self {
        if let Err(e) = handle.check_write(&op) {
            self.refused.get_or_insert(e);
        }
        // The handle is kept once, from the first operation (a usage event adds seven: no
        // clone per operation on that path); later ones only compare tenants.
        self.scope = match std::mem::replace(&mut self.scope, Scope::Empty) {
            Scope::Empty => Scope::Tenant(handle.clone()),
            Scope::Tenant(t) if t.tenant == handle.tenant => Scope::Tenant(t),
            _ => Scope::Mixed,
        };
        self.ops.push(op);
        self
    }

    /// Operations so far (to locate a failed condition by index).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The store that signs this transaction, unless a check refused an operation.
    fn principal(&mut self) -> Result<Arc<dyn Store>, StoreError> {
        if let Some(e) = self.refused.take() {
            return Err(e);
        }
        match &self.scope {
            Scope::Platform | Scope::Empty => Ok(self.platform.clone()),
            Scope::Tenant(t) => Ok(t.inner.clone()),
            Scope::Mixed => Err(StoreError::Invalid(
                "a transaction holds one tenant's items or platform items, never both".into(),
            )),
        }
    }

    pub async fn commit(mut self) -> Result<(), StoreError> {
        let store = self.principal()?;
        store.transact(self.ops).await
    }

    /// Commits, answering with operation `index`'s item as it is afterwards
    /// (see [`Store::transact_returning`]).
    pub async fn commit_returning(mut self, index: usize) -> Result<Option<Item>, StoreError> {
        let store = self.principal()?;
        store.transact_returning(self.ops, index).await
    }
}

impl Stores {
    pub fn transaction(&self) -> ScopedTransaction {
        ScopedTransaction {
            platform: self.inner.clone(),
            scope: Scope::Empty,
            ops: Vec::new(),
            refused: None,
        }
    }
}
