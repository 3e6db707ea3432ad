//! An endpoint's messages and attempts as its admin sees them: the attempt log, a test send,
//! and a resend of any message (the same `webhook-id`, so a receiver that deduplicates by it
//! still can).

use serde::Serialize;
use serde_json::json;

use super::endpoints::load;
use super::outbox::{body, message_item, message_key, message_partition, message_sk};
use super::types::TEST_TYPE;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{ListParams, ListResponse};
use crate::ids::{is_key_safe, new_id};
use crate::store::{Condition, Item, Query, Store, StoreExt, UpdateAction, GSI1PK, GSI1SK};
use crate::time;
use crate::AppContext;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    /// The message's `webhook-id`.
    pub message_id: String,
    /// 1 for the first try of the message.
    pub attempt: i64,
    /// The HTTP status answered; none when no answer came (connection refused, timeout).
    pub status_code: Option<i64>,
    pub delivered: bool,
    /// The start of the answer's body, or why there was none.
    pub response: String,
    pub duration_ms: i64,
    pub created_at: String,
}

fn attempt_view(item: &Item) -> Result<AttemptView, ApiError> {
    Ok(AttemptView {
        message_id: item.required_str("message_id")?.to_owned(),
        attempt: item.i64("attempt").unwrap_or(0),
        status_code: item.i64("status_code"),
        delivered: item.bool("delivered").unwrap_or(false),
        response: item.str("response").unwrap_or("").to_owned(),
        duration_ms: item.i64("duration_ms").unwrap_or(0),
        created_at: item.required_str("created_at")?.to_owned(),
    })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    /// The `webhook-id`: the event's id (a test send's own).
    pub id: String,
    pub endpoint_id: String,
    pub event_type: String,
    /// `pending`, `delivered`, `failed` or `skipped` (the endpoint was off when it came due).
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub created_at: String,
}

fn message_view(item: &Item) -> Result<MessageView, ApiError> {
    Ok(MessageView {
        id: item.required_str("message_id")?.to_owned(),
        endpoint_id: item.required_str("endpoint_id")?.to_owned(),
        event_type: item.required_str("event_type")?.to_owned(),
        status: item.required_str("status")?.to_owned(),
        attempts: item.i64("attempts").unwrap_or(0),
        next_attempt_at: item.str("next_attempt_at").map(str::to_owned),
        created_at: item.required_str("created_at")?.to_owned(),
    })
}

/// An endpoint's attempts, newest first.
pub async fn attempts(
    ctx: &AppContext,
    caller: &Caller,
    endpoint: &str,
    params: ListParams,
) -> Result<ListResponse<AttemptView>, ApiError> {
    endpoint_page(ctx, caller, endpoint, "ATT", params, attempt_view).await
}

/// An endpoint's messages, newest event first.
pub async fn messages(
    ctx: &AppContext,
    caller: &Caller,
    endpoint: &str,
    params: ListParams,
) -> Result<ListResponse<MessageView>, ApiError> {
    endpoint_page(ctx, caller, endpoint, "MSG", params, message_view).await
}

/// A page, newest first, of the endpoint's items of one kind (`<kind>#<endpoint>#…`).
async fn endpoint_page<T>(
    ctx: &AppContext,
    caller: &Caller,
    endpoint: &str,
    kind: &str,
    params: ListParams,
    convert: fn(&Item) -> Result<T, ApiError>,
) -> Result<ListResponse<T>, ApiError> {
    let (t, _) = load(ctx, caller, endpoint).await?;
    let page = t
        .query(
            &Query::table(t.pk("WEBHOOKS"))
                .begins_with(format!("{kind}#{endpoint}#"))
                .descending()
                .limit(params.limit()?)
                .after(params.cursor),
        )
        .await?;
    ListResponse::from_page(page, convert)
}

/// Queues a `webhook.test` message to the endpoint, due now (the next worker run sends it).
pub async fn send_test(
    ctx: &AppContext,
    caller: &Caller,
    endpoint: &str,
) -> Result<MessageView, ApiError> {
    let (t, _) = load(ctx, caller, endpoint).await?;
    let now = ctx.clock.now();
    let id = new_id("msg");
    let at = time::fmt(now);
    let body = body(
        TEST_TYPE,
        &id,
        &at,
        &json!({"message": "a test from Eshtarek"}),
    );
    let item = message_item(&t, endpoint, &id, TEST_TYPE, &body, now);
    t.put(item.clone(), Some(Condition::ItemNotExists)).await?;
    message_view(&item)
}

/// Queues a message again, due now, whatever became of it, with a fresh retry schedule.
pub async fn resend(
    ctx: &AppContext,
    caller: &Caller,
    endpoint: &str,
    message_id: &str,
) -> Result<MessageView, ApiError> {
    let (t, _) = load(ctx, caller, endpoint).await?;
    let missing = || ApiError::not_found("no such message for this endpoint");
    if !is_key_safe(message_id) {
        return Err(missing());
    }
    let key = message_key(&t, endpoint, message_id);
    let now = ctx.clock.now();
    let updated = t
        .update(
            key,
            vec![
                UpdateAction::set("status", "pending"),
                // A fresh schedule: a message that used up its retries gets them all again.
                UpdateAction::set("attempts", 0),
                UpdateAction::set(GSI1PK, message_partition(t.tenant())),
                UpdateAction::set(GSI1SK, message_sk(now, t.tenant(), endpoint, message_id)),
                UpdateAction::set("next_attempt_at", time::fmt(now)),
            ],
            Some(Condition::exists("message_id")),
        )
        .await
        .map_err(|e| {
            if e.is_condition_failure() {
                missing()
            } else {
                e.into()
            }
        })?;
    message_view(&updated)
}
