//! A Stripe-like event log per tenant (`invoice.created`, `invoice.paid`,
//! `invoice.payment_failed`, `customer.subscription.created/updated/deleted`, `plan.changed`,
//! `usage.threshold_reached`), written in the transaction of the change it reports. Each entry
//! is also the webhook outbox's (`webhooks::outbox`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{ListParams, ListResponse};
use crate::store::{AttrValue, Condition, Item, Query, Store, TenantStore, WriteOp};
use crate::time;
use crate::AppContext;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: String,
    pub data: Value,
}

pub fn op(t: &TenantStore, kind: &str, data: Value, now: DateTime<Utc>) -> WriteOp {
    let id = crate::ids::new_id("evt");
    let at = time::fmt(now);
    let mut item = Item::new(t.key("EVENTS", format!("E#{at}#{id}")))
        .with("event_id", id.as_str())
        .with("type", kind)
        .with("created_at", at.as_str())
        .with(
            "data",
            AttrValue::from_json(&data).unwrap_or(AttrValue::Null),
        );
    // In the webhook outbox too, in this same write: the delivery worker finds it there.
    for (name, value) in crate::webhooks::outbox::index(t.tenant(), &id, &at) {
        item = item.with(name, value);
    }
    WriteOp::Put {
        item,
        condition: Some(Condition::ItemNotExists),
    }
}

fn view(item: &Item) -> Result<EventView, ApiError> {
    Ok(EventView {
        id: item.required_str("event_id")?.to_owned(),
        kind: item.required_str("type")?.to_owned(),
        created_at: item.required_str("created_at")?.to_owned(),
        data: item
            .get("data")
            .map(AttrValue::to_json)
            .unwrap_or(Value::Null),
    })
}

/// The caller's tenant's events, newest first (tenant admins).
pub async fn list(
    ctx: &AppContext,
    caller: &Caller,
    params: ListParams,
) -> Result<ListResponse<EventView>, ApiError> {
    let tenant = caller.own_tenant()?;
    caller.admin_tenant(tenant.as_str())?;
    let t = ctx.stores.tenant(tenant);
    let page = t
        .query(
            &Query::table(t.pk("EVENTS"))
                .begins_with("E#")
                .descending()
                .limit(params.limit()?)
                .after(params.cursor),
        )
        .await?;
    ListResponse::from_page(page, view)
}
