//! A tenant admin's webhook endpoints: register (the signing secret shown once), list, read,
//! change, delete, and rotate the secret with an overlap during which both secrets sign.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::address::{check_resolves, check_url};
use super::types::EVENT_TYPES;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{ListParams, ListResponse};
use crate::ids::{is_key_safe, new_id};
use crate::store::{
    Condition, Item, Key, Query, Store, StoreExt, TenantStore, UpdateAction, WriteOp,
};
use crate::time;
use crate::AppContext;

/// Endpoints per tenant: each event's fan-out is one transaction (a message per endpoint).
pub const MAX_ENDPOINTS: i64 = 20;
/// The longest overlap of a rotated secret with its successor.
pub const MAX_OVERLAP_HOURS: u32 = 168;

pub(super) fn endpoint_key(t: &TenantStore, id: &str) -> Key {
    t.key("WEBHOOKS", format!("EP#{id}"))
}

fn count_key(t: &TenantStore) -> Key {
    t.key("WEBHOOKS", "COUNT")
}

/// A new signing secret: `whsec_` and the base64 of 32 random bytes (Standard Webhooks).
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("whsec_{}", STANDARD.encode(bytes))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpointRequest {
    /// Where messages are POSTed: `https`, a public host.
    #[schema(
        min_length = 1,
        max_length = 2048,
        example = "https://example.com/webhooks/eshtarek"
    )]
    pub url: String,
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: String,
    /// The event types to send (none: every type).
    #[serde(default)]
    #[schema(max_items = 20)]
    pub event_types: Vec<String>,
    /// Default true.
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchEndpointRequest {
    #[schema(min_length = 1, max_length = 2048)]
    pub url: Option<String>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
    #[schema(max_items = 20)]
    pub event_types: Option<Vec<String>>,
    /// Enabling an endpoint the worker disabled clears its failure record.
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecretRequest {
    /// How long the old secret keeps signing beside the new one (default 24; 0 ends it now).
    #[schema(minimum = 0, maximum = 168)]
    pub overlap_hours: Option<u32>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EndpointView {
    pub id: String,
    pub url: String,
    pub description: String,
    /// Empty: every type.
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Why the delivery worker disabled it (`gone`: it answered 410; `failing`: five days of
    /// failures), if it did.
    pub disabled_reason: Option<String>,
    /// Since when every attempt has failed, while that lasts.
    pub failing_since: Option<String>,
    /// Until when the previous secret still signs beside the current one, after a rotation.
    pub previous_secret_until: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A new endpoint or secret: the secret is shown here only.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointWithSecret {
    pub endpoint: EndpointView,
    /// `whsec_…`: verify each message's `webhook-signature` with it. Shown once.
    pub secret: Option<String>,
}

pub(super) fn view(item: &Item) -> Result<EndpointView, ApiError> {
    let types = item.str("event_types").unwrap_or("");
    Ok(EndpointView {
        id: item.required_str("endpoint_id")?.to_owned(),
        url: item.required_str("url")?.to_owned(),
        description: item.str("description").unwrap_or("").to_owned(),
        event_types: types.split_whitespace().map(str::to_owned).collect(),
        enabled: item.bool("enabled").unwrap_or(false),
        disabled_reason: item.str("disabled_reason").map(str::to_owned),
        failing_since: item.str("failing_since").map(str::to_owned),
        previous_secret_until: item.str("previous_until").map(str::to_owned),
        created_at: item.required_str("created_at")?.to_owned(),
        updated_at: item.required_str("updated_at")?.to_owned(),
    })
}

/// The secrets that sign a message sent at `now`: the current one, and the previous one
/// during its overlap.
pub(super) fn signing_secrets(item: &Item, now: DateTime<Utc>) -> Vec<String> {
    let mut secrets: Vec<String> = item.str("secret").map(str::to_owned).into_iter().collect();
    let overlapping = item
        .str("previous_until")
        .and_then(time::parse)
        .is_some_and(|until| until > now);
    if overlapping {
        secrets.extend(item.str("previous_secret").map(str::to_owned));
    }
    secrets
}

fn check_types(types: Vec<String>) -> Result<String, ApiError> {
    let mut types = types;
    types.sort();
    types.dedup();
    if types.len() > 20 {
        return Err(ApiError::validation(
            "event_types",
            "at most 20 event types",
        ));
    }
    if let Some(unknown) = types.iter().find(|t| !EVENT_TYPES.contains(&t.as_str())) {
        return Err(ApiError::validation(
            "event_types",
            format!(
                "unknown event type {unknown:?}; the types are {}",
                EVENT_TYPES.join(", ")
            ),
        ));
    }
    Ok(types.join(" "))
}

async fn checked_url(ctx: &AppContext, raw: &str) -> Result<String, ApiError> {
    let allow = ctx.webhooks.allow_private;
    let url = check_url(raw.trim(), allow, "url")?;
    check_resolves(&url, allow, "url").await?;
    Ok(url.to_string())
}

/// Registers an endpoint for the caller's tenant (tenant admins).
pub async fn create(
    ctx: &AppContext,
    caller: &Caller,
    req: CreateEndpointRequest,
) -> Result<EndpointWithSecret, ApiError> {
    let tenant = crate::access::own_admin_tenant(caller)?;
    let description = crate::text::check_description(&req.description, "description")?;
    let types = check_types(req.event_types)?;
    let url = checked_url(ctx, &req.url).await?;
    let t = ctx.stores.tenant(&tenant);
    let id = new_id("ep");
    let secret = new_secret();
    let at = time::fmt(ctx.clock.now());
    let item = Item::new(endpoint_key(&t, &id))
        .with("endpoint_id", id.as_str())
        .with("url", url.as_str())
        .with("description", description.as_str())
        .with("event_types", types.as_str())
        .with("enabled", req.enabled.unwrap_or(true))
        .with("secret", secret.as_str())
        .with("created_at", at.as_str())
        .with("updated_at", at.as_str());
    let committed = ctx
        .stores
        .transaction()
        .tenant(
            &t,
            WriteOp::Put {
                item: item.clone(),
                condition: Some(Condition::ItemNotExists),
            },
        )
        .tenant(
            &t,
            WriteOp::Update {
                key: count_key(&t),
                actions: vec![UpdateAction::add("count", 1)],
                condition: Some(Condition::Or(vec![
                    Condition::not_exists("count"),
                    Condition::lt("count", MAX_ENDPOINTS),
                ])),
            },
        )
        .commit()
        .await;
    match committed {
        Ok(()) => {}
        Err(e) if e.failed_condition_index() == Some(1) => {
            return Err(ApiError::conflict(format!(
                "a tenant keeps at most {MAX_ENDPOINTS} webhook endpoints; delete one first"
            )))
        }
        Err(e) => return Err(e.into()),
    }
    Ok(EndpointWithSecret {
        endpoint: view(&item)?,
        secret: Some(secret),
    })
}

/// The endpoint `id` of the caller's tenant (a tenant admin), or 404.
pub(super) async fn load(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
) -> Result<(TenantStore, Item), ApiError> {
    let tenant = crate::access::own_admin_tenant(caller)?;
    let t = ctx.stores.tenant(&tenant);
    let missing = || ApiError::not_found("no such webhook endpoint");
    if !is_key_safe(id) {
        return Err(missing());
    }
    let item = t.get(&endpoint_key(&t, id)).await?.ok_or_else(missing)?;
    Ok((t, item))
}

pub async fn get(ctx: &AppContext, caller: &Caller, id: &str) -> Result<EndpointView, ApiError> {
    view(&load(ctx, caller, id).await?.1)
}

pub async fn list(
    ctx: &AppContext,
    caller: &Caller,
    params: ListParams,
) -> Result<ListResponse<EndpointView>, ApiError> {
    let tenant = crate::access::own_admin_tenant(caller)?;
    let t = ctx.stores.tenant(&tenant);
    let page = t
        .query(
            &Query::table(t.pk("WEBHOOKS"))
                .begins_with("EP#")
                .limit(params.limit()?)
                .after(params.cursor),
        )
        .await?;
    ListResponse::from_page(page, view)
}

/// Changes an endpoint; enabling it again clears what the worker recorded against it.
pub async fn patch(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
    req: PatchEndpointRequest,
) -> Result<EndpointView, ApiError> {
    let (t, item) = load(ctx, caller, id).await?;
    let mut actions = vec![UpdateAction::set("updated_at", time::fmt(ctx.clock.now()))];
    if let Some(url) = &req.url {
        actions.push(UpdateAction::set("url", checked_url(ctx, url).await?));
    }
    if let Some(description) = &req.description {
        actions.push(UpdateAction::set(
            "description",
            crate::text::check_description(description, "description")?,
        ));
    }
    if let Some(types) = req.event_types {
        actions.push(UpdateAction::set("event_types", check_types(types)?));
    }
    if let Some(enabled) = req.enabled {
        actions.push(UpdateAction::set("enabled", enabled));
        if enabled {
            actions.push(UpdateAction::remove("disabled_reason"));
            actions.push(UpdateAction::remove("failing_since"));
        }
    }
    let updated = t
        .update(
            item.key.clone(),
            actions,
            Some(Condition::exists("endpoint_id")),
        )
        .await
        .map_err(|e| {
            if e.is_condition_failure() {
                ApiError::not_found("no such webhook endpoint")
            } else {
                e.into()
            }
        })?;
    view(&updated)
}

/// Deletes an endpoint; its undelivered messages are dropped when they come due.
pub async fn delete(ctx: &AppContext, caller: &Caller, id: &str) -> Result<(), ApiError> {
    let (t, item) = load(ctx, caller, id).await?;
    let committed = ctx
        .stores
        .transaction()
        .tenant(
            &t,
            WriteOp::Delete {
                key: item.key.clone(),
                condition: Some(Condition::exists("endpoint_id")),
            },
        )
        .tenant(
            &t,
            WriteOp::Update {
                key: count_key(&t),
                actions: vec![UpdateAction::add("count", -1)],
                condition: None,
            },
        )
        .commit()
        .await;
    match committed {
        Ok(()) => Ok(()),
        Err(e) if e.failed_condition_index() == Some(0) => {
            Err(ApiError::not_found("no such webhook endpoint"))
        }
        Err(e) => Err(e.into()),
    }
}

/// A new secret; the old one keeps signing beside it for `overlap_hours` (default 24), so
/// receivers can switch without dropping a message.
pub async fn rotate_secret(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
    req: RotateSecretRequest,
) -> Result<EndpointWithSecret, ApiError> {
    let hours = req.overlap_hours.unwrap_or(24);
    if hours > MAX_OVERLAP_HOURS {
        return Err(ApiError::validation("overlap_hours", "0 to 168 hours"));
    }
    let (t, item) = load(ctx, caller, id).await?;
    let now = ctx.clock.now();
    let secret = new_secret();
    let previous = item.required_str("secret")?.to_owned();
    let updated = t
        .update(
            item.key.clone(),
            vec![
                UpdateAction::set("secret", secret.as_str()),
                UpdateAction::set("previous_secret", previous.as_str()),
                UpdateAction::set(
                    "previous_until",
                    time::fmt(now + Duration::hours(i64::from(hours))),
                ),
                UpdateAction::set("updated_at", time::fmt(now)),
            ],
            // Two rotations at once: one wins, the other is refused (its secret would be lost).
            Some(Condition::eq("secret", previous.as_str())),
        )
        .await
        .map_err(|e| {
            if e.is_condition_failure() {
                ApiError::conflict("the secret was rotated meanwhile; try again")
            } else {
                e.into()
            }
        })?;
    Ok(EndpointWithSecret {
        endpoint: view(&updated)?,
        secret: Some(secret),
    })
}
