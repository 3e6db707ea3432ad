//! Limit warnings and notifications: a warning per (metric, period, threshold) sent exactly
//! once (a marker claimed in the notification's own transaction), the `limit-warnings` sweep
//! of what the real-time path missed, and the tenant's notification list.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::counters::{counter_of, counting_period};
use super::model::UsageResult;
use crate::entitlements::{live_limits, spec_for};
use crate::error::ApiError;
use crate::plans::policies::LimitSpec;
use crate::store::{
    AttrValue, Condition, Item, Store, StoreExt, TenantStore, UpdateAction, WriteOp,
};
use crate::time;
use crate::AppContext;

/// One notification per (metric, period, threshold), ever: the marker is claimed with
/// `attribute_not_exists` in the transaction that writes the notification.
pub(super) async fn notify_thresholds(
    ctx: &AppContext,
    t: &TenantStore,
    spec: &LimitSpec,
    result: &UsageResult,
    now: DateTime<Utc>,
) -> Result<u32, ApiError> {
    let Some(limit) = spec.limit.filter(|l| *l > 0) else {
        return Ok(0);
    };
    let mut sent = 0;
    for threshold in &spec.warning_thresholds {
        // used / limit >= threshold%, in integers.
        if result.used * 100 < u64::from(*threshold) * limit {
            continue;
        }
        let marker = t.key(
            "NOTIFICATIONS",
            format!("SENT#{}#{}#{threshold}", result.metric, result.period_start),
        );
        let marker_id = format!("{}|{}", marker.pk, marker.sk);
        if ctx.hot.was_sent(&marker_id) {
            continue;
        }
        let message = format!(
            "{} reached {threshold}% of the plan's limit ({} of {})",
            result.metric,
            crate::text::group_thousands(result.used),
            crate::text::group_thousands(limit),
        );
        let mut data = json!({"metric": result.metric, "threshold": threshold, "used": result.used, "limit": limit, "period_start": result.period_start});
        let (id, [index, record]) =
            crate::notifications::ops(t, "usage.threshold_reached", &message, &data, now);
        data["notification_id"] = json!(id);
        let outcome = ctx
            .stores
            .transaction()
            .tenant(
                t,
                WriteOp::Put {
                    item: Item::new(marker).with("notification_id", id.as_str()),
                    condition: Some(Condition::ItemNotExists),
                },
            )
            .tenant(t, index)
            .tenant(t, record)
            .tenant(
                t,
                crate::billing::events::op(t, "usage.threshold_reached", data, now),
            )
            .commit()
            .await;
        match outcome {
            Ok(()) => {
                sent += 1;
                ctx.hot.mark_sent(marker_id);
            }
            Err(e) if e.failed_condition_index() == Some(0) => ctx.hot.mark_sent(marker_id),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(sent)
}

/// What the `limit-warnings` sweep did with one counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// Warnings the real-time path had not sent were sent now.
    Sent,
    /// Nothing to send (below every threshold, or already sent).
    NothingDue,
    /// The counter is not for the tenant's current period or plan (nothing applies).
    NotCurrent,
}

/// Sends the warnings a counter (an item of the platform usage index) is due and has not had:
/// the real-time path sends them with the event, but a process that stopped between the
/// event's commit and the warning's would leave them unsent. Markers keep it exactly once.
pub async fn sweep_counter(
    ctx: &AppContext,
    counter: &Item,
    now: DateTime<Utc>,
) -> Result<Sweep, ApiError> {
    let Some((tenant, metric, period_start)) = counter_of(counter) else {
        return Ok(Sweep::NotCurrent);
    };
    let Some(limits) = live_limits(ctx, &tenant).await? else {
        return Ok(Sweep::NotCurrent);
    };
    let Some(spec) = spec_for(&limits, metric) else {
        return Ok(Sweep::NotCurrent);
    };
    let (start, end) = counting_period(spec.reset_period, &limits.sub, now);
    if time::fmt(start) != period_start {
        return Ok(Sweep::NotCurrent);
    }
    let used = counter.i64("used").unwrap_or(0).max(0) as u64;
    let result = UsageResult::accepted(
        metric,
        used,
        spec.limit,
        time::fmt(start),
        end.map(time::fmt),
    );
    let t = ctx.stores.tenant(&tenant);
    Ok(
        match notify_thresholds(ctx, &t, spec, &result, now).await? {
            0 => Sweep::NothingDue,
            _ => Sweep::Sent,
        },
    )
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationView {
    pub id: String,
    /// `usage.threshold_reached` (data: metric, threshold, used, limit, period_start) or
    /// `subscription.ended_unpaid` (data: subscription_id, status, invoice_id,
    /// invoice_number, amount_due, currency), so a client can word it its own way.
    pub kind: String,
    pub message: String,
    pub data: serde_json::Value,
    pub read: bool,
    pub created_at: String,
}

fn notification_view(item: &Item) -> Result<NotificationView, ApiError> {
    Ok(NotificationView {
        id: item.required_str("notification_id")?.to_owned(),
        kind: item.required_str("kind")?.to_owned(),
        message: item.required_str("message")?.to_owned(),
        data: item.get("data").map(AttrValue::to_json).unwrap_or_default(),
        read: item.bool("read").unwrap_or(false),
        created_at: item.required_str("created_at")?.to_owned(),
    })
}

/// The tenant's notifications, newest first (any member).
pub async fn notifications(
    ctx: &AppContext,
    caller: &crate::auth::Caller,
    params: crate::http::ListParams,
) -> Result<crate::http::ListResponse<NotificationView>, ApiError> {
    let tenant = caller.own_tenant()?.clone();
    let t = ctx.stores.tenant(&tenant);
    let page = t
        .query(
            &crate::store::Query::table(t.pk("NOTIFICATIONS"))
                .begins_with("N#")
                .descending()
                .limit(params.limit()?)
                .after(params.cursor),
        )
        .await?;
    crate::http::ListResponse::from_page(page, notification_view)
}

pub async fn mark_read(
    ctx: &AppContext,
    caller: &crate::auth::Caller,
    id: &str,
) -> Result<NotificationView, ApiError> {
    let tenant = caller.own_tenant()?.clone();
    let t = ctx.stores.tenant(&tenant);
    if !crate::ids::is_key_safe(id) {
        return Err(ApiError::not_found("no such notification"));
    }
    let pointer = t
        .get(&t.key("NOTIFICATIONS", format!("ID#{id}")))
        .await?
        .ok_or_else(|| ApiError::not_found("no such notification"))?;
    let item = t
        .update(
            t.key("NOTIFICATIONS", pointer.required_str("sk")?),
            vec![UpdateAction::set("read", true)],
            Some(Condition::ItemExists),
        )
        .await
        .map_err(|e| {
            if e.is_condition_failure() {
                ApiError::not_found("no such notification")
            } else {
                e.into()
            }
        })?;
    notification_view(&item)
}
