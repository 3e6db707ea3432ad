//! The audit log: who did what to which resource, with before/after, written in the same
//! transaction as the change it records. Append-only: nothing updates or deletes an event.
//!
//! Platform resources (plans, policies, tenants) keep their events under
//! `AUDIT#<type>#<id>`; tenant resources under the tenant's `AUDIT` partition. Every event is
//! also in the platform index `IDX#AUDIT` (by time) for the platform admins' feed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{ListParams, ListResponse};
use crate::store::{
    AttrValue, Condition, Item, Key, Query, SortKeyCondition, Store, TenantId, TenantStore, WriteOp,
};
use crate::time;
use crate::AppContext;

const AUDIT_INDEX: &str = "IDX#AUDIT";

/// One change to record.
pub struct Change<'a> {
    pub action: &'a str,
    pub resource_type: &'a str,
    pub resource_id: &'a str,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub reason: Option<&'a str>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEvent {
    pub id: String,
    pub at: String,
    pub actor_id: String,
    pub actor_role: Option<String>,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub tenant_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub reason: Option<String>,
}

fn event_item(
    key: Key,
    caller: &Caller,
    change: &Change<'_>,
    tenant: Option<&TenantId>,
    now: DateTime<Utc>,
) -> Item {
    let id = crate::ids::new_id("aud");
    let at = time::fmt(now);
    let mut item = Item::new(key)
        .with("event_id", id.as_str())
        .with("at", at.as_str())
        .with("actor_id", caller.user_id.as_str())
        .with("action", change.action)
        .with("resource_type", change.resource_type)
        .with("resource_id", change.resource_id)
        .with_gsi1(AUDIT_INDEX, format!("{at}#{id}"));
    if let Some(role) = caller.role {
        item = item.with("actor_role", role.as_str());
    }
    if let Some(tenant) = tenant {
        item = item.with("tenant_id", tenant.as_str());
    }
    if let Some(reason) = change.reason {
        item = item.with("reason", reason);
    }
    for (name, value) in [("before", &change.before), ("after", &change.after)] {
        if let Some(value) = value {
            if let Ok(attr) = AttrValue::from_json(value) {
                item = item.with(name, attr);
            }
        }
    }
    item
}

fn sort_key(item: &Item) -> String {
    format!(
        "A#{}#{}",
        item.str("at").unwrap_or_default(),
        item.str("event_id").unwrap_or_default()
    )
}

/// The write that records a change to a platform resource.
pub fn platform_op(caller: &Caller, change: Change<'_>, now: DateTime<Utc>) -> WriteOp {
    let mut item = event_item(Key::new("-", "-"), caller, &change, None, now);
    item.key = Key::new(
        format!("AUDIT#{}#{}", change.resource_type, change.resource_id),
        sort_key(&item),
    );
    WriteOp::Put {
        item,
        condition: Some(Condition::ItemNotExists),
    }
}

/// The write that records a change inside a tenant.
pub fn tenant_op(
    tenant: &TenantStore,
    caller: &Caller,
    change: Change<'_>,
    now: DateTime<Utc>,
) -> WriteOp {
    let mut item = event_item(
        Key::new("-", "-"),
        caller,
        &change,
        Some(tenant.tenant()),
        now,
    );
    item.key = tenant.key("AUDIT", sort_key(&item));
    WriteOp::Put {
        item,
        condition: Some(Condition::ItemNotExists),
    }
}

impl AuditEvent {
    fn from_item(item: &Item) -> Result<Self, ApiError> {
        Ok(Self {
            id: item.required_str("event_id")?.to_owned(),
            at: item.required_str("at")?.to_owned(),
            actor_id: item.required_str("actor_id")?.to_owned(),
            actor_role: item.str("actor_role").map(str::to_owned),
            action: item.required_str("action")?.to_owned(),
            resource_type: item.required_str("resource_type")?.to_owned(),
            resource_id: item.required_str("resource_id")?.to_owned(),
            tenant_id: item.str("tenant_id").map(str::to_owned),
            before: item.get("before").map(AttrValue::to_json),
            after: item.get("after").map(AttrValue::to_json),
            reason: item.str("reason").map(str::to_owned),
        })
    }
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// With `resource_id`: events of one platform resource (`plan`, `limit_policy`, `tenant`).
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    /// Events inside one tenant (platform admins; tenant admins always see their own).
    pub tenant_id: Option<String>,
    /// RFC 3339; events at or after.
    pub from: Option<String>,
    /// RFC 3339; events before.
    pub to: Option<String>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// Newest first. Platform admins see every event; tenant admins their tenant's only.
pub async fn list(
    ctx: &AppContext,
    caller: &Caller,
    filter: AuditFilter,
) -> Result<ListResponse<AuditEvent>, ApiError> {
    let params = ListParams {
        limit: filter.limit.clone(),
        cursor: filter.cursor.clone(),
    };
    let parse_time = |text: &Option<String>, field: &str| -> Result<Option<String>, ApiError> {
        text.as_deref()
            .map(|t| {
                time::parse(t)
                    .map(time::fmt)
                    .ok_or_else(|| ApiError::validation(field, "use an RFC 3339 time"))
            })
            .transpose()
    };
    let from = parse_time(&filter.from, "from")?;
    let to = parse_time(&filter.to, "to")?;
    // Ids and types are short; a longer one can match nothing and must not reach a key.
    for (field, value) in [
        ("resource_type", &filter.resource_type),
        ("resource_id", &filter.resource_id),
        ("tenant_id", &filter.tenant_id),
    ] {
        if value
            .as_deref()
            .is_some_and(|v| !crate::ids::is_key_safe(v))
        {
            return Err(ApiError::validation(
                field,
                format!("{field} is 1 to 64 characters, without '#'"),
            ));
        }
    }
    // Sort keys are `<prefix><at>#<id>`; `~` sorts after every id character. Without `from`
    // only the upper bound applies (DynamoDB refuses an empty bound).
    let range = |prefix: &str| {
        let high = format!("{prefix}{}", to.clone().unwrap_or_else(|| "~".into()));
        match &from {
            Some(from) => SortKeyCondition::Between(format!("{prefix}{from}"), high),
            None => SortKeyCondition::Le(high),
        }
    };
    let limit = params.limit()?;
    let query = if caller.is_platform_admin() {
        match (
            &filter.resource_type,
            &filter.resource_id,
            &filter.tenant_id,
        ) {
            (Some(kind), Some(id), None) => {
                let q = Query::table(format!("AUDIT#{kind}#{id}")).sk(range("A#"));
                return page(&ctx.stores.platform(), q, limit, params.cursor).await;
            }
            (None, None, Some(tenant)) => {
                let tenant = TenantId::parse(tenant)
                    .map_err(|_| ApiError::validation("tenant_id", "no such tenant"))?;
                let t = ctx.stores.tenant(&tenant);
                let q = Query::table(t.pk("AUDIT")).sk(range("A#"));
                return page(&t, q, limit, params.cursor).await;
            }
            (None, None, None) => Query::gsi1(AUDIT_INDEX).sk(range("")),
            _ => {
                return Err(ApiError::validation(
                    "resource_type",
                    "filter by resource_type with resource_id, or by tenant_id, or neither",
                ))
            }
        }
    } else {
        let own = caller.own_tenant()?;
        caller.admin_tenant(own.as_str())?;
        if filter
            .tenant_id
            .as_deref()
            .is_some_and(|t| t != own.as_str())
        {
            return Err(ApiError::not_found("no such tenant"));
        }
        if filter.resource_type.is_some() || filter.resource_id.is_some() {
            return Err(ApiError::validation(
                "resource_type",
                "tenant admins filter by time only",
            ));
        }
        let t = ctx.stores.tenant(own);
        let q = Query::table(t.pk("AUDIT")).sk(range("A#"));
        return page(&t, q, limit, params.cursor).await;
    };
    page(&ctx.stores.platform(), query, limit, params.cursor).await
}

async fn page(
    store: &dyn Store,
    query: Query,
    limit: u32,
    cursor: Option<String>,
) -> Result<ListResponse<AuditEvent>, ApiError> {
    let page = store
        .query(&query.descending().limit(limit).after(cursor))
        .await?;
    ListResponse::from_page(page, AuditEvent::from_item)
}
