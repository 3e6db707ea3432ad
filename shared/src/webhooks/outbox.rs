//! The outbox: every event-log entry is indexed for the worker in the transaction that writes
//! it, and the worker's fan-out turns it into one message per matching endpoint, taking it off
//! the index in the same transaction (so a crash on either side of it loses and doubles
//! nothing: the event stays indexed until its messages exist).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::endpoints::view as endpoint_view;
use super::types::{wants, webhook_type};
use crate::error::ApiError;
use crate::store::shard;
use crate::store::{
    AttrValue, Condition, Item, Key, Query, Store, TenantId, TenantStore, UpdateAction, WriteOp,
    GSI1PK, GSI1SK,
};
use crate::time;
use crate::AppContext;

/// Shards of the outbox and message indexes (as the renewal index: one busy tenant stays in
/// one, the others spread).
pub const SHARDS: u32 = 16;

fn outbox_partition(shard: u32) -> String {
    format!("IDX#OUTBOX#{shard:02}")
}

pub fn outbox_partitions() -> Vec<String> {
    (0..SHARDS).map(outbox_partition).collect()
}

/// The GSI1 attributes that put an event-log entry in the outbox (`billing::events::op`).
pub fn index(tenant: &TenantId, event_id: &str, at: &str) -> [(&'static str, String); 2] {
    [
        (GSI1PK, outbox_partition(shard::of(tenant, SHARDS))),
        (GSI1SK, format!("{at}#{tenant}#{event_id}")),
    ]
}

fn webhook_partition(shard: u32) -> String {
    format!("IDX#WEBHOOK#{shard:02}")
}

pub(super) fn message_partition(tenant: &TenantId) -> String {
    webhook_partition(shard::of(tenant, SHARDS))
}

pub fn message_partitions() -> Vec<String> {
    (0..SHARDS).map(webhook_partition).collect()
}

/// A message to one endpoint: `TENANT#…#WEBHOOKS` / `MSG#<endpoint>#<event>`.
pub(super) fn message_key(t: &TenantStore, endpoint: &str, event_id: &str) -> Key {
    t.key("WEBHOOKS", format!("MSG#{endpoint}#{event_id}"))
}

/// A message's place in the due index: its next attempt.
pub(super) fn message_sk(
    due: DateTime<Utc>,
    tenant: &TenantId,
    endpoint: &str,
    event: &str,
) -> String {
    format!("{}#{tenant}#{endpoint}#{event}", time::fmt(due))
}

/// A new message to one endpoint, due `now`.
pub(super) fn message_item(
    t: &TenantStore,
    endpoint: &str,
    event_id: &str,
    kind: &str,
    body: &str,
    now: DateTime<Utc>,
) -> Item {
    let tenant = t.tenant();
    Item::new(message_key(t, endpoint, event_id))
        .with("message_id", event_id)
        .with("endpoint_id", endpoint)
        .with("event_type", kind)
        .with("body", body)
        .with("status", "pending")
        .with("attempts", 0)
        .with("created_at", time::fmt(now))
        .with(GSI1PK, message_partition(tenant))
        .with(GSI1SK, message_sk(now, tenant, endpoint, event_id))
}

/// The Standard Webhooks body: `{type, timestamp, data}`, the event's id beside its data.
pub(super) fn body(kind: &str, event_id: &str, at: &str, data: &Value) -> String {
    json!({"type": kind, "timestamp": at, "data": data, "event_id": event_id}).to_string()
}

/// Fans one outbox entry out. Returns the outcome's name for the job's report.
pub async fn fan_out(
    ctx: &AppContext,
    event: &Item,
    now: DateTime<Utc>,
) -> Result<&'static str, ApiError> {
    // The tenant comes from the partition key, the one thing IAM and the scoped handles vouch
    // for.
    let Some((tenant, "EVENTS")) = TenantId::of_pk(&event.key.pk) else {
        return Ok("skipped");
    };
    let t = ctx.stores.tenant(&tenant);
    let data = event
        .get("data")
        .map(AttrValue::to_json)
        .unwrap_or(Value::Null);
    let kind = event.str("type").unwrap_or("");
    let event_id = event.required_str("event_id")?;
    let at = event.required_str("created_at")?;
    let mut tx = ctx.stores.transaction();
    let mut sent = 0;
    if let Some(kind) = webhook_type(kind, &data) {
        let endpoints = t
            .query(
                &Query::table(t.pk("WEBHOOKS"))
                    .begins_with("EP#")
                    .limit(super::endpoints::MAX_ENDPOINTS as u32),
            )
            .await?;
        let body = body(kind, event_id, at, &data);
        for endpoint in &endpoints.items {
            // One unreadable record must not hold the tenant's whole outbox.
            let Ok(view) = endpoint_view(endpoint) else {
                tracing::warn!(key = %endpoint.key.sk, "skipping an unreadable webhook endpoint");
                continue;
            };
            // Events from before an endpoint existed are not its (times compare as text: one
            // fixed-width RFC 3339 format).
            if !view.enabled || !wants(&view.event_types, kind) || view.created_at.as_str() > at {
                continue;
            }
            tx = tx.tenant(
                &t,
                WriteOp::Put {
                    item: message_item(&t, &view.id, event_id, kind, &body, now),
                    condition: Some(Condition::ItemNotExists),
                },
            );
            sent += 1;
        }
    }
    // Off the outbox, unless another run took it off first.
    tx = tx.tenant(
        &t,
        WriteOp::Update {
            key: event.key.clone(),
            actions: vec![UpdateAction::remove(GSI1PK), UpdateAction::remove(GSI1SK)],
            condition: Some(Condition::exists(GSI1PK)),
        },
    );
    match tx.commit().await {
        Ok(()) if sent == 0 => Ok("no_endpoint"),
        Ok(()) => Ok("fanned_out"),
        Err(e) if e.is_condition_failure() => Ok("taken"),
        Err(e) => Err(e.into()),
    }
}
