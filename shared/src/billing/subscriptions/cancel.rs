//! Cancelling (at period end, or now with an optional prorated credit), undoing a pending
//! cancellation, and the end of a subscription that cancellation, expiry, dunning and admin
//! overrides share.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;

use super::super::payment_methods;
use super::super::proration::prorate;
use super::super::state::{Event, Status};
use super::metered::{bill_final_usage, closed_for_billing};
use super::record::{commit, found, live_key, reload, Sub, SubscriptionView};
use crate::access;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::store::{TenantStore, UpdateAction, WriteOp, GSI1PK, GSI1SK};
use crate::time;
use crate::AppContext;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    #[serde(default = "yes")]
    pub at_period_end: bool,
    /// With an immediate cancel: credit the unused part of the paid period to the balance.
    #[serde(default)]
    pub prorate: bool,
}

fn yes() -> bool {
    true
}

pub async fn cancel(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
    req: CancelRequest,
) -> Result<SubscriptionView, ApiError> {
    let done = cancel_unannounced(ctx, caller, id, req).await?;
    // The tenant's API rate comes from its plan: this instance reads it again at once (others
    // within `hot::API_RATE_TTL`).
    ctx.hot.forget_api_rate(&done.tenant_id);
    Ok(done)
}

async fn cancel_unannounced(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
    req: CancelRequest,
) -> Result<SubscriptionView, ApiError> {
    let tenant = access::own_admin_tenant(caller)?;
    let sub = found(ctx, &tenant, id).await?;
    let t = ctx.stores.tenant(&tenant);
    let now = ctx.clock.now();
    if req.at_period_end {
        if !sub.status.is_live() {
            return Err(ApiError::conflict(format!(
                "a {} subscription cannot be cancelled",
                sub.status.as_str()
            ))
            .with("code", "illegal_transition"));
        }
        period_not_over(&sub, now)?;
        set_cancel_at_period_end(ctx, &t, &sub, true, now).await?;
    } else {
        let credit = if req.prorate && !sub.trialing && sub.status == Status::Active {
            prorate(
                sub.currency,
                sub.price,
                Decimal::ZERO,
                sub.period_start,
                sub.period_end,
                now,
                false,
            )
            .credit
        } else {
            Decimal::ZERO
        };
        // Usage to date is billed before the subscription ends: closed first, so nothing
        // counts after it is read.
        let sub = closed_for_billing(ctx, &tenant, sub)
            .await?
            .ok_or_else(|| ApiError::conflict("the subscription changed meanwhile; retry"))?;
        bill_final_usage(ctx, &tenant, &sub, now).await?;
        end(ctx, &t, &sub, Event::Cancel, now, -credit, Vec::new()).await?;
    }
    reload(ctx, &tenant, id).await?.view()
}

pub async fn resume(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
) -> Result<SubscriptionView, ApiError> {
    let done = resume_unannounced(ctx, caller, id).await?;
    // The tenant's API rate comes from its plan: this instance reads it again at once (others
    // within `hot::API_RATE_TTL`).
    ctx.hot.forget_api_rate(&done.tenant_id);
    Ok(done)
}

async fn resume_unannounced(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
) -> Result<SubscriptionView, ApiError> {
    let tenant = access::own_admin_tenant(caller)?;
    let sub = found(ctx, &tenant, id).await?;
    if !sub.status.is_live() || !sub.cancel_at_period_end {
        return Err(ApiError::conflict(
            "there is no pending cancellation to undo",
        ));
    }
    let t = ctx.stores.tenant(&tenant);
    period_not_over(&sub, ctx.clock.now())?;
    set_cancel_at_period_end(ctx, &t, &sub, false, ctx.clock.now()).await?;
    reload(ctx, &tenant, id).await?.view()
}

/// Once a period has ended, its renewal (or its end) is under way and bills what was decided
/// before: a cancellation at period end can no longer be set or withdrawn for it.
pub(super) fn period_not_over(sub: &Sub, now: DateTime<Utc>) -> Result<(), ApiError> {
    if sub.period_end <= now {
        return Err(ApiError::conflict(
            "the period has ended and its renewal is under way; retry in a moment",
        ));
    }
    Ok(())
}

/// Schedules (or withdraws) the cancellation at the period's end.
async fn set_cancel_at_period_end(
    ctx: &AppContext,
    t: &TenantStore,
    sub: &Sub,
    cancel: bool,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let write = sub.write(vec![
        UpdateAction::set("cancel_at_period_end", cancel),
        UpdateAction::set("updated_at", time::fmt(now)),
    ]);
    let event = json!({"subscription_id": sub.id, "cancel_at_period_end": cancel});
    let updated = ("customer.subscription.updated", event);
    commit(ctx, t, write, updated, Vec::new(), now).await
}

/// Ends a subscription (cancelled or expired): frees the live slot, leaves the renewal index,
/// credits `credit` to the balance.
pub(super) async fn end(
    ctx: &AppContext,
    t: &TenantStore,
    sub: &Sub,
    event: Event,
    now: DateTime<Utc>,
    credit: Decimal,
    notify: Vec<WriteOp>,
) -> Result<Status, ApiError> {
    let next = sub.status.apply(event)?;
    let write = sub.write(vec![
        UpdateAction::set("status", next.as_str()),
        UpdateAction::set("ended_at", time::fmt(now)),
        UpdateAction::remove(GSI1PK),
        UpdateAction::remove(GSI1SK),
    ]);
    let mut also = vec![WriteOp::Delete {
        key: live_key(t),
        condition: None,
    }];
    also.extend(notify);
    if credit > Decimal::ZERO {
        also.push(WriteOp::Update {
            key: payment_methods::billing_key(t),
            actions: vec![
                UpdateAction::add("credit_balance", credit),
                UpdateAction::set(super::super::invoices::CREDIT_CURRENCY, sub.currency.code()),
            ],
            condition: None,
        });
    }
    let ended = json!({"subscription_id": sub.id, "status": next.as_str()});
    commit(
        ctx,
        t,
        write,
        ("customer.subscription.deleted", ended),
        also,
        now,
    )
    .await?;
    Ok(next)
}

/// What ending an unpaid subscription writes beside the end (dunning giving up, or a grace
/// period running out): the open invoice written off and the members' notification naming it.
/// Nothing without an open invoice (an earlier run wrote it off; it was told then).
pub(super) fn unpaid_end_ops(
    t: &TenantStore,
    sub: &Sub,
    event: Event,
    open: Option<&crate::store::Item>,
    now: DateTime<Utc>,
) -> Vec<WriteOp> {
    let Some(item) = open else {
        return Vec::new();
    };
    let status = if event == Event::Expire {
        "expired"
    } else {
        "cancelled"
    };
    let ended = if event == Event::Expire {
        "expired"
    } else {
        "was cancelled"
    };
    let invoice = super::super::invoices::InvoiceView::from_item(item).ok();
    let message = match &invoice {
        Some(i) => format!(
            "The subscription {ended} after its payment kept failing: invoice #{} ({} {}) is unpaid.",
            i.number, i.amount_due, i.currency
        ),
        None => format!("The subscription {ended} after its payment kept failing."),
    };
    let data = json!({
        "subscription_id": sub.id,
        "status": status,
        "invoice_id": invoice.as_ref().map(|i| &i.id),
        "invoice_number": invoice.as_ref().map(|i| i.number),
        "amount_due": invoice.as_ref().map(|i| &i.amount_due),
        "currency": sub.currency.code(),
    });
    let (_, [index, record]) =
        crate::notifications::ops(t, "subscription.ended_unpaid", &message, &data, now);
    vec![
        super::super::invoices::close_op(item, "uncollectible"),
        index,
        record,
    ]
}
