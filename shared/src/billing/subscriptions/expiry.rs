//! Expiry (the `expire-subscriptions` job, and the renewal, which checks the same first): a
//! fixed-duration plan that ran its cycles, a trial ending with nothing to charge, a past-due
//! subscription past its grace period.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

use super::super::payment_methods;
use super::super::state::{Event, Status};
use super::cancel::{end, unpaid_end_ops};
use super::metered::{bill_final_usage, closed_for_billing};
use super::record::{load, Sub};
use crate::error::ApiError;
use crate::store::{TenantId, TenantStore};
use crate::AppContext;

/// Why a subscription ends without being renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// A fixed-duration plan ran all its cycles.
    DurationEnded,
    /// A trial ended and the tenant has no payment method to charge.
    TrialEndedWithoutPaymentMethod,
    /// Past due for longer than the grace period.
    GraceEnded,
}

impl Expiry {
    pub fn as_str(self) -> &'static str {
        match self {
            Expiry::DurationEnded => "duration_ended",
            Expiry::TrialEndedWithoutPaymentMethod => "trial_ended_without_payment_method",
            Expiry::GraceEnded => "grace_ended",
        }
    }

    /// When the subscription ended: at its period's end, or now for a lapsed grace period.
    fn ended_at(self, sub: &Sub, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Expiry::GraceEnded => now,
            _ => sub.period_end,
        }
    }
}

/// Whether `sub` should expire at `now`, and why.
pub async fn expiry_due(
    ctx: &AppContext,
    tenant: &TenantId,
    sub: &Sub,
    now: DateTime<Utc>,
) -> Result<Option<Expiry>, ApiError> {
    if sub.status == Status::PastDue {
        let lapsed = sub.period_start + Duration::days(ctx.billing.grace_days) <= now;
        return Ok(lapsed.then_some(Expiry::GraceEnded));
    }
    if !matches!(sub.status, Status::Trialing | Status::Active)
        || sub.period_end > now
        || sub.cancel_at_period_end
    {
        return Ok(None);
    }
    let completed = sub.period_index + u32::from(!sub.trialing);
    if let Some(cycles) = sub.duration_cycles {
        if i64::from(completed) >= cycles {
            return Ok(Some(Expiry::DurationEnded));
        }
    }
    if sub.trialing && payment_methods::resolve(ctx, tenant, None).await?.is_none() {
        return Ok(Some(Expiry::TrialEndedWithoutPaymentMethod));
    }
    Ok(None)
}

/// Ends `sub` if it is due to expire; `None` when it is not (or another run got there first).
pub async fn expire(
    ctx: &AppContext,
    tenant: &TenantId,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<Expiry>, ApiError> {
    let Some(sub) = load(ctx, tenant, id).await? else {
        return Ok(None);
    };
    let Some(expiry) = expiry_due(ctx, tenant, &sub, now).await? else {
        return Ok(None);
    };
    let t = ctx.stores.tenant(tenant);
    Ok(end_expired(ctx, &t, &sub, expiry, now)
        .await?
        .then_some(expiry))
}

/// Ends `sub` as expired; `false` when another run changed it first (it has that one's end).
pub(super) async fn end_expired(
    ctx: &AppContext,
    t: &TenantStore,
    sub: &Sub,
    expiry: Expiry,
    now: DateTime<Utc>,
) -> Result<bool, ApiError> {
    let ended_at = expiry.ended_at(sub, now);
    // Whatever ends it, the usage of its last period is billed (a trial's is free).
    let Some(sub) = closed_for_billing(ctx, t.tenant(), sub.clone()).await? else {
        return Ok(false);
    };
    bill_final_usage(ctx, t.tenant(), &sub, ended_at).await?;
    let sub = &sub;
    // A grace period that ran out ends an unpaid subscription as dunning does: its open
    // invoice written off and the members told, in the end's transaction.
    let also = if expiry == Expiry::GraceEnded {
        let open = match &sub.latest_invoice_id {
            Some(id) => super::super::invoices::load_by_id(ctx, t.tenant(), id)
                .await?
                .filter(|i| i.str("status") == Some("open")),
            None => None,
        };
        unpaid_end_ops(t, sub, Event::Expire, open.as_ref(), ended_at)
    } else {
        Vec::new()
    };
    match end(ctx, t, sub, Event::Expire, ended_at, Decimal::ZERO, also).await {
        Ok(_) => Ok(true),
        Err(e) if e.status == axum::http::StatusCode::CONFLICT => Ok(false),
        Err(e) => Err(e),
    }
}
