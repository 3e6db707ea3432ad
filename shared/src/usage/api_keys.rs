//! Tenant API keys for machine-to-machine usage calls. The secret is shown once; only its
//! SHA-256 is kept, compared in constant time, on the key's record in the tenant's partition
//! (`TENANT#<id>#APIKEYS` / `KEY#<prefix>`): the one authority on whether a key works, read and
//! checked with the tenant's credentials. A platform pointer `APIKEY#<prefix>` only says which
//! tenant a prefix belongs to; it is written before the record and deleted after it, so a
//! pointer without a record (a crash between the steps) leads nowhere.

use serde::{Deserialize, Serialize};

use crate::auth::tokens::{random_secret, same_secret, sha256_hex};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::ids::new_id;
use crate::store::{
    Condition, Item, Key, Query, Store, StoreExt, TenantId, TenantStore, UpdateAction, WriteOp,
};
use crate::time;
use crate::AppContext;

pub const KEY_PREFIX: &str = "esk_";
pub const SCOPES: [&str; 2] = ["usage:write", "usage:read"];
/// Keys per tenant: suspension marks them all in the one transaction that changes the
/// tenant's status (a transaction holds 100 writes).
const MAX_KEYS: usize = 50;

/// The platform pointer from a key's public prefix to its tenant.
fn pointer_key(prefix: &str) -> Key {
    Key::new(format!("APIKEY#{prefix}"), "KEY")
}

/// The key's record in its tenant's partition.
fn record_key(t: &TenantStore, prefix: &str) -> Key {
    t.key("APIKEYS", format!("KEY#{prefix}"))
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    /// The public part, shown in lists: `esk_<prefix>`.
    pub prefix: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub key: ApiKeyView,
    /// The whole key. Shown once, to the request that created it: only its hash is kept, and
    /// a replay of that request (same `Idempotency-Key`) answers without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    pub name: String,
    /// `usage:write` and/or `usage:read` (default both).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

/// An authenticated API key.
#[derive(Debug, Clone)]
pub struct KeyPrincipal {
    pub tenant: TenantId,
    pub key_id: String,
    pub scopes: Vec<String>,
}

fn view(item: &Item) -> Result<ApiKeyView, ApiError> {
    let scopes = item
        .required_str("scopes")?
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(ApiKeyView {
        id: item.required_str("key_id")?.to_owned(),
        prefix: format!("{KEY_PREFIX}{}", item.required_str("prefix")?),
        name: item.required_str("name")?.to_owned(),
        scopes,
        created_at: item.required_str("created_at")?.to_owned(),
    })
}

pub async fn create(
    ctx: &AppContext,
    caller: &Caller,
    req: CreateApiKeyRequest,
) -> Result<CreatedApiKey, ApiError> {
    let tenant = crate::access::own_admin_tenant(caller)?;
    let name = crate::text::check_name(&req.name, "name")?;
    let mut scopes = req
        .scopes
        .unwrap_or_else(|| SCOPES.iter().map(|s| s.to_string()).collect());
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() || scopes.iter().any(|s| !SCOPES.contains(&s.as_str())) {
        return Err(ApiError::validation(
            "scopes",
            "scopes are usage:write and usage:read",
        ));
    }
    let t = ctx.stores.tenant(&tenant);
    // Tenants from before the key count was kept on the tenant have keys it does not count:
    // the listing refuses them past the cap too (the count, in the transaction, is what holds
    // under concurrency).
    let existing = t
        .query(
            &Query::table(t.pk("APIKEYS"))
                .begins_with("KEY#")
                .limit(MAX_KEYS as u32),
        )
        .await?;
    if existing.items.len() >= MAX_KEYS {
        return Err(ApiError::conflict(format!(
            "a tenant keeps at most {MAX_KEYS} API keys; revoke one first"
        )));
    }
    let id = new_id("key");
    // 12 hex characters of public prefix, 43 characters of secret.
    let prefix = sha256_hex(&random_secret())[..12].to_owned();
    let secret = random_secret();
    let full = format!("{KEY_PREFIX}{prefix}_{secret}");
    let at = time::fmt(ctx.clock.now());
    let record = Item::new(record_key(&t, &prefix))
        .with("key_id", id.as_str())
        .with("prefix", prefix.as_str())
        .with("name", name.as_str())
        .with("scopes", scopes.join(" "))
        .with("secret_hash", sha256_hex(&secret))
        .with("created_at", at.as_str());
    // The pointer first (the platform's step, which also makes the prefix unique), then the
    // record and the count in the tenant's transaction; a refused record takes its pointer back.
    let pointer = Item::new(pointer_key(&prefix)).with("tenant_id", tenant.as_str());
    ctx.stores
        .platform()
        .put(pointer, Some(Condition::ItemNotExists))
        .await?;
    let committed = ctx
        .stores
        .transaction()
        .tenant(
            &t,
            WriteOp::Put {
                item: record.clone(),
                condition: Some(Condition::ItemNotExists),
            },
        )
        .tenant(&t, key_count_op(&t, 1))
        .commit()
        .await;
    if committed.is_err() {
        drop_pointer(ctx, &prefix).await;
    }
    match committed {
        Ok(()) => {}
        Err(e) if e.failed_condition_index() == Some(1) => {
            let suspended = crate::tenants::records::load_tenant(ctx, &tenant)
                .await?
                .is_some_and(|v| v.status != "active");
            return Err(if suspended {
                ApiError::tenant_suspended()
            } else {
                ApiError::conflict(format!(
                    "a tenant keeps at most {MAX_KEYS} API keys; revoke one first"
                ))
            });
        }
        Err(e) => return Err(e.into()),
    }
    Ok(CreatedApiKey {
        key: view(&record)?,
        secret: Some(full),
    })
}

/// Deletes a pointer whose record is gone or was never written. Best effort: a pointer left
/// behind leads to no record, which refuses the key just the same.
async fn drop_pointer(ctx: &AppContext, prefix: &str) {
    if let Err(e) = ctx
        .stores
        .platform()
        .delete(pointer_key(prefix), None)
        .await
    {
        tracing::warn!(error = %e, prefix, "could not delete an API key pointer");
    }
}

pub async fn list(ctx: &AppContext, caller: &Caller) -> Result<Vec<ApiKeyView>, ApiError> {
    let tenant = crate::access::own_admin_tenant(caller)?;
    let t = ctx.stores.tenant(&tenant);
    let page = t
        .query(&Query::table(t.pk("APIKEYS")).begins_with("KEY#").limit(100))
        .await?;
    page.items.iter().map(view).collect()
}

/// Revokes a key by id: it stops working at once.
pub async fn revoke(ctx: &AppContext, caller: &Caller, id: &str) -> Result<(), ApiError> {
    let tenant = crate::access::own_admin_tenant(caller)?;
    let t = ctx.stores.tenant(&tenant);
    let page = t
        .query(
            &Query::table(t.pk("APIKEYS"))
                .begins_with("KEY#")
                .limit(1000),
        )
        .await?;
    let item = page
        .items
        .into_iter()
        .find(|i| i.str("key_id") == Some(id))
        .ok_or_else(|| ApiError::not_found("no such API key"))?;
    let prefix = item.required_str("prefix")?.to_owned();
    ctx.stores
        .transaction()
        .tenant(
            &t,
            WriteOp::Delete {
                key: item.key.clone(),
                condition: Some(Condition::ItemExists),
            },
        )
        .tenant(&t, key_count_op(&t, -1))
        .commit()
        .await?;
    ctx.hot.forget_key(&prefix);
    drop_pointer(ctx, &prefix).await;
    Ok(())
}

/// A key as the in-process cache holds it.
pub struct CachedKey {
    principal: KeyPrincipal,
    secret_hash: String,
    /// When its record was read: past [`KEY_CACHE_TTL`] it is read again, so a key revoked on
    /// another instance stops being charged to its tenant's API rate here within that time
    /// (writes and checks verify it against the store whatever its age).
    loaded: std::time::Instant,
}

/// How long a cached key is used without reading its record again.
const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// What a write transaction must check when its API key came from the cache: the key's record
/// still holds this secret's hash (revoking deletes it).
#[derive(Debug, Clone)]
pub struct KeyGuard {
    prefix: String,
    secret_hash: String,
}

impl KeyGuard {
    /// The key is neither revoked (its record gone) nor its tenant suspended (the `suspended`
    /// mark that suspension puts on every key of the tenant): a check in the tenant's own
    /// partition, so it rides in the event's transaction under the tenant's credentials.
    pub fn check(&self, t: &TenantStore) -> WriteOp {
        WriteOp::Check {
            key: record_key(t, &self.prefix),
            condition: Condition::And(vec![
                Condition::eq("secret_hash", self.secret_hash.as_str()),
                Condition::not_exists(SUSPENDED),
            ]),
        }
    }

    /// The same check as a read, for an answer that writes nothing (an entitlement check):
    /// a cached key is never trusted on its own.
    pub async fn verify(&self, ctx: &AppContext, t: &TenantStore) -> Result<(), ApiError> {
        let seen = t.get(&self.record_key(t)).await?;
        self.judge(ctx, seen.as_ref())
    }

    /// Where the key's record is, for a caller that reads it among other items.
    pub fn record_key(&self, t: &TenantStore) -> Key {
        record_key(t, &self.prefix)
    }

    /// The verdict on the key's record as read (`None`: gone, revoked).
    pub fn judge(&self, ctx: &AppContext, seen: Option<&Item>) -> Result<(), ApiError> {
        let live = seen.is_some_and(|item| {
            item.str("secret_hash") == Some(self.secret_hash.as_str())
                && item.get(SUSPENDED).is_none()
        });
        if live {
            Ok(())
        } else {
            Err(self.refusal(ctx, seen))
        }
    }

    /// Why the check failed, from the item the transaction saw; the cached key is dropped.
    pub fn refusal(&self, ctx: &AppContext, seen: Option<&Item>) -> ApiError {
        ctx.hot.forget_key(&self.prefix);
        match seen {
            Some(item) if item.get(SUSPENDED).is_some() => ApiError::tenant_suspended(),
            _ => invalid(),
        }
    }
}

/// The tenant's key count moves with every key created or revoked, in the same transaction: a
/// new key needs the tenant active and under [`MAX_KEYS`] (atomically, however many are
/// created at once).
fn key_count_op(t: &TenantStore, by: i64) -> WriteOp {
    let mut conditions = vec![Condition::ItemExists];
    if by > 0 {
        conditions.push(Condition::eq("status", "active"));
        conditions.push(Condition::Or(vec![
            Condition::not_exists("api_keys"),
            Condition::lt("api_keys", MAX_KEYS as i64),
        ]));
    }
    WriteOp::Update {
        key: crate::tenants::records::meta_key(t),
        actions: vec![UpdateAction::add("api_keys", by)],
        condition: Some(Condition::And(conditions)),
    }
}

/// The mark on a key's record while its tenant is suspended.
const SUSPENDED: &str = "suspended";

/// Marks any key of a suspended tenant that is not marked yet (created just before the
/// suspension committed), one conditional write each.
pub async fn mark_unmarked(ctx: &AppContext, tenant: &TenantId) -> Result<(), ApiError> {
    for op in suspension_ops(ctx, tenant, true).await? {
        let WriteOp::Update { key, .. } = &op else {
            continue;
        };
        let t = ctx.stores.tenant(tenant);
        let marked = t
            .get(key)
            .await?
            .is_some_and(|item| item.get(SUSPENDED).is_some());
        if !marked {
            match t.write(op).await {
                Ok(_) => {}
                // Revoked meanwhile: nothing to mark.
                Err(e) if e.is_condition_failure() => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// The writes that mark (or unmark) every key of a suspended (or reactivated) tenant, for the
/// transaction that changes the tenant's status: from then on every instance refuses them,
/// cached or not, because the cached path's guard checks the mark in the event's own write.
pub async fn suspension_ops(
    ctx: &AppContext,
    tenant: &TenantId,
    suspended: bool,
) -> Result<Vec<WriteOp>, ApiError> {
    let t = ctx.stores.tenant(tenant);
    let mut ops = Vec::new();
    let mut cursor = None;
    loop {
        let page = t
            .query(
                &Query::table(t.pk("APIKEYS"))
                    .begins_with("KEY#")
                    .limit(100)
                    .after(cursor),
            )
            .await?;
        for item in &page.items {
            let action = if suspended {
                UpdateAction::set(SUSPENDED, true)
            } else {
                UpdateAction::remove(SUSPENDED)
            };
            ops.push(WriteOp::Update {
                key: item.key.clone(),
                actions: vec![action],
                condition: Some(Condition::ItemExists),
            });
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(ops),
        }
    }
}

/// Splits `esk_<prefix>_<secret>`; `None` when it is not an API key at all.
fn parse(presented: &str) -> Option<Result<(&str, &str), ApiError>> {
    let rest = presented.strip_prefix(KEY_PREFIX)?;
    let invalid = || ApiError::unauthenticated("invalid or revoked API key");
    let Some((prefix, secret)) = rest.split_once('_') else {
        return Some(Err(invalid()));
    };
    if prefix.len() != 12 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(Err(invalid()));
    }
    Some(Ok((prefix, secret)))
}

fn invalid() -> ApiError {
    ApiError::unauthenticated("invalid or revoked API key")
}

/// Authenticates `esk_<prefix>_<secret>` against the store; `None` when it is not an API key.
pub async fn authenticate(
    ctx: &AppContext,
    presented: &str,
) -> Option<Result<KeyPrincipal, ApiError>> {
    let (prefix, secret) = match parse(presented)? {
        Ok(parts) => parts,
        Err(e) => return Some(Err(e)),
    };
    Some(load(ctx, prefix, secret).await.map(|k| k.principal.clone()))
}

/// Authenticates from the in-process cache when the key is there (no read), answering with
/// the guard the caller's write transaction must carry; otherwise reads it like
/// [`authenticate`] (no guard needed, it was just read).
pub async fn authenticate_for_write(
    ctx: &AppContext,
    presented: &str,
) -> Option<Result<(KeyPrincipal, Option<KeyGuard>), ApiError>> {
    let (prefix, secret) = match parse(presented)? {
        Ok(parts) => parts,
        Err(e) => return Some(Err(e)),
    };
    let hash = sha256_hex(secret);
    if let Some(cached) = ctx
        .hot
        .key(prefix)
        .filter(|k| k.loaded.elapsed() < KEY_CACHE_TTL)
    {
        if same_secret(&hash, &cached.secret_hash) {
            let guard = KeyGuard {
                prefix: prefix.to_owned(),
                secret_hash: hash,
            };
            return Some(Ok((cached.principal.clone(), Some(guard))));
        }
    }
    Some(
        load(ctx, prefix, secret)
            .await
            .map(|k| (k.principal.clone(), None)),
    )
}

/// The key behind `prefix`: the pointer names the tenant, the tenant's record decides.
async fn load(
    ctx: &AppContext,
    prefix: &str,
    secret: &str,
) -> Result<std::sync::Arc<CachedKey>, ApiError> {
    // A refused key leaves this instance's cache: it must not go on being charged (or
    // trusted) from there.
    let refused = |e: ApiError| {
        ctx.hot.forget_key(prefix);
        e
    };
    let pointer = ctx
        .stores
        .platform()
        .get(&pointer_key(prefix))
        .await?
        .ok_or_else(|| refused(invalid()))?;
    let tenant =
        TenantId::parse(pointer.required_str("tenant_id")?).map_err(|_| refused(invalid()))?;
    let t = ctx.stores.tenant(&tenant);
    let item = t
        .get(&record_key(&t, prefix))
        .await?
        .ok_or_else(|| refused(invalid()))?;
    let secret_hash = item.str("secret_hash").unwrap_or_default();
    if !same_secret(&sha256_hex(secret), secret_hash) {
        // A wrong secret says nothing about the key (and must not let a stranger who knows
        // the prefix evict it).
        return Err(invalid());
    }
    if item.get(SUSPENDED).is_some() {
        return Err(refused(ApiError::tenant_suspended()));
    }
    let key = std::sync::Arc::new(CachedKey {
        principal: KeyPrincipal {
            tenant,
            key_id: item.required_str("key_id")?.to_owned(),
            scopes: item
                .required_str("scopes")?
                .split(' ')
                .map(str::to_owned)
                .collect(),
        },
        secret_hash: secret_hash.to_owned(),
        loaded: std::time::Instant::now(),
    });
    ctx.hot.remember_key(prefix, key.clone());
    Ok(key)
}
