//! Renewal at period end (what the `renew-billing` job calls): the next period invoiced and
//! charged, scheduled changes and cancellations applied; dunning retries of a failed charge;
//! and recovery when a past-due invoice gets paid.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde_json::json;

use super::super::grants::in_force_after;
use super::super::invoices::{self, Draft};
use super::super::payment_methods;
use super::super::state::{Event, Status};
use super::cancel::{end, unpaid_end_ops};
use super::expiry::{end_expired, expiry_due};
use super::metered::{
    bill_final_usage, bill_pending_usage, closed_for_billing, member_count, next_invoice,
    NextInvoice,
};
use super::record::{
    commit, live_moved, load, reload, renewal_index, try_commit, Sub, DISCOUNT, GRANTS,
    SEATS_BILLED, USAGE_BILLED, USAGE_CLOSED,
};
use super::seats::{bill_pending, seats_added};
use crate::error::ApiError;
use crate::store::{TenantId, UpdateAction};
use crate::time;
use crate::AppContext;

/// What one renewal did, for the job's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    NotDue,
    Renewed,
    PaymentFailed,
    Cancelled,
    Expired,
    DunningRetryFailed,
}

/// Processes one subscription whose period (or dunning retry) is due at `now`. Safe to run
/// twice or concurrently: invoices are unique per period and every write is conditional on the
/// revision read here.
pub async fn renew(
    ctx: &AppContext,
    tenant: &TenantId,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Renewal, ApiError> {
    let Some(sub) = load(ctx, tenant, id).await? else {
        return Ok(Renewal::NotDue);
    };
    let t = ctx.stores.tenant(tenant);
    if let Some(expiry) = expiry_due(ctx, tenant, &sub, now).await? {
        return Ok(if end_expired(ctx, &t, &sub, expiry, now).await? {
            Renewal::Expired
        } else {
            Renewal::NotDue
        });
    }
    if sub.status == Status::PastDue {
        return retry_dunning(ctx, tenant, sub, now).await;
    }
    if !sub.status.is_live() || sub.period_end > now {
        return Ok(Renewal::NotDue);
    }
    // A seat charge or a plan change's usage decided and not billed (a crash in between) is
    // billed first.
    let sub = match &sub.seats_pending {
        Some(pending) => {
            bill_pending(ctx, tenant, &sub, pending).await?;
            reload(ctx, tenant, id).await?
        }
        None => sub,
    };
    let sub = match &sub.usage_pending {
        Some(pending) => {
            bill_pending_usage(ctx, tenant, &sub, pending).await?;
            reload(ctx, tenant, id).await?
        }
        None => sub,
    };
    // A period that bills usage is closed first, so nothing counts in it after it is read.
    let Some(sub) = closed_for_billing(ctx, tenant, sub).await? else {
        return Ok(Renewal::NotDue);
    };
    if sub.cancel_at_period_end {
        bill_final_usage(ctx, tenant, &sub, sub.period_end).await?;
        end(
            ctx,
            &t,
            &sub,
            Event::Cancel,
            sub.period_end,
            Decimal::ZERO,
            Vec::new(),
        )
        .await?;
        return Ok(Renewal::Cancelled);
    }
    // The next period, on the scheduled plan if a downgrade waits for it.
    let NextInvoice {
        plan_id,
        version,
        price,
        cycle,
        anchor,
        index,
        start,
        end: end_at,
        lines,
        seats,
        licensed,
        members,
        discount_after,
    } = next_invoice(ctx, &t, &sub).await?;
    let draft = Draft {
        subscription_id: sub.id.clone(),
        currency: sub.currency,
        lines,
        period: (start, end_at),
        dedupe: format!("{}#{}", sub.id, time::fmt(start)),
    };
    let invoice = invoices::issue(ctx, tenant, draft).await?;
    let mut paid = invoice.str("status") == Some("paid");
    let mut invoice_after = invoice.clone();
    if !paid {
        if let Some(method) = payment_methods::resolve(ctx, tenant, None).await? {
            let (after, decline) =
                match invoices::attempt_payment(ctx, tenant, &invoice, &method).await {
                    Ok(attempt) => attempt,
                    // Another run of this renewal is paying the same invoice (the gateway's
                    // idempotency key makes it one charge); that run finishes the renewal.
                    Err(e) if e.status == axum::http::StatusCode::CONFLICT => {
                        return Ok(Renewal::NotDue)
                    }
                    Err(e) => return Err(e),
                };
            paid = decline.is_none();
            invoice_after = after;
        }
    }
    let event = match (sub.trialing, paid) {
        (true, true) => Event::TrialConverted,
        (true, false) => Event::TrialPaymentFailed,
        (false, true) => Event::RenewalSucceeded,
        (false, false) => Event::RenewalFailed,
    };
    let next = sub.status.apply(event)?;
    let mut actions = vec![
        UpdateAction::set("status", next.as_str()),
        UpdateAction::set("plan_id", plan_id.as_str()),
        UpdateAction::set("plan_version", i64::from(version)),
        UpdateAction::set("price", price),
        UpdateAction::set("billing_cycle", cycle.as_str()),
        UpdateAction::set("anchor", time::fmt(anchor)),
        UpdateAction::set("period_index", i64::from(index)),
        UpdateAction::set("period_start", time::fmt(start)),
        UpdateAction::set("period_end", time::fmt(end_at)),
        UpdateAction::remove("scheduled_plan_id"),
        UpdateAction::remove("scheduled_plan_version"),
        UpdateAction::remove(USAGE_CLOSED),
        UpdateAction::remove(USAGE_BILLED),
        // Grants that expired with the closing period are history now.
        UpdateAction::set(
            GRANTS,
            serde_json::to_string(&in_force_after(&sub.grants, start))
                .map_err(ApiError::internal)?,
        ),
        match seats {
            Some(count) => UpdateAction::set(SEATS_BILLED, count as i64),
            None => UpdateAction::remove(SEATS_BILLED),
        },
        // On a scheduled change, seats bought follow the new version like a change now.
        licensed,
        match &discount_after {
            Some(discount) => UpdateAction::set(DISCOUNT, discount.text()),
            None => UpdateAction::remove(DISCOUNT),
        },
        UpdateAction::set(
            "latest_invoice_id",
            invoice_after.str("invoice_id").unwrap_or_default(),
        ),
        UpdateAction::set("updated_at", time::fmt(now)),
    ];
    let due = if paid {
        actions.push(UpdateAction::set("dunning_attempts", 0));
        end_at
    } else {
        let retry = start + Duration::days(ctx.billing.dunning_days[0]);
        actions.push(UpdateAction::set("dunning_attempts", 1));
        actions.push(UpdateAction::set("next_attempt_at", time::fmt(retry)));
        retry
    };
    actions.extend(renewal_index(tenant, &sub.id, due));
    let mut also = Vec::new();
    if plan_id != sub.plan_id || version != sub.plan_version {
        also.push(live_moved(&t, &sub.id, &plan_id, version));
    }
    let renewed = json!({"subscription_id": sub.id, "status": next.as_str(), "period_start": time::fmt(start), "period_end": time::fmt(end_at)});
    let write = sub.write(actions);
    match try_commit(
        ctx,
        &t,
        write,
        ("customer.subscription.updated", renewed),
        also,
        now,
    )
    .await
    {
        Ok(()) => {
            // A member who joined while this renewal counted seats is billed now (a join
            // leaves an ended period's seats to the renewal): one read to see whether any did.
            if let Some(counted) = members {
                if member_count(&t).await? > counted {
                    if let Err(e) = seats_added(ctx, tenant).await {
                        tracing::warn!(subscription = %sub.id, error = %e.detail, "seats not billed yet");
                    }
                }
            }
            Ok(if paid {
                Renewal::Renewed
            } else {
                Renewal::PaymentFailed
            })
        }
        // Another run renewed it first; the invoice was shared through its period key.
        Err(e) if e.is_condition_failure() => Ok(Renewal::NotDue),
        Err(e) => Err(e.into()),
    }
}

/// A past-due subscription at its next retry: charge the open invoice again; after the last
/// retry, give up (cancel; the invoice becomes uncollectible).
async fn retry_dunning(
    ctx: &AppContext,
    tenant: &TenantId,
    sub: Sub,
    now: DateTime<Utc>,
) -> Result<Renewal, ApiError> {
    if sub.next_attempt_at.is_none_or(|at| at > now) {
        return Ok(Renewal::NotDue);
    }
    let t = ctx.stores.tenant(tenant);
    let invoice_id = sub.latest_invoice_id.clone().unwrap_or_default();
    let invoice = invoices::load_by_id(ctx, tenant, &invoice_id).await?;
    let attempts = sub.dunning_attempts.unwrap_or(1);
    let days = &ctx.billing.dunning_days;
    if let Some(invoice) = invoice.clone().filter(|i| i.str("status") == Some("open")) {
        if let Some(method) = payment_methods::resolve(ctx, tenant, None).await? {
            let (_, decline) = invoices::attempt_payment(ctx, tenant, &invoice, &method).await?;
            if decline.is_none() {
                recover(ctx, tenant, &sub).await?;
                return Ok(Renewal::Renewed);
            }
        }
        if attempts as usize >= days.len() {
            return give_up(ctx, tenant, sub, Some(&invoice), now).await;
        }
        let retry = sub.period_start + Duration::days(days[attempts as usize]);
        let mut actions = vec![
            UpdateAction::set("dunning_attempts", attempts + 1),
            UpdateAction::set("next_attempt_at", time::fmt(retry)),
        ];
        actions.extend(renewal_index(tenant, &sub.id, retry));
        return match sub.update(&t, actions).await {
            Ok(()) => Ok(Renewal::DunningRetryFailed),
            Err(e) if e.is_condition_failure() => Ok(Renewal::NotDue),
            Err(e) => Err(e.into()),
        };
    }
    match invoice.as_ref().and_then(|i| i.str("status")) {
        // Written off (or voided) by an earlier run that did not get to end the subscription:
        // finish giving up, never recover unpaid.
        Some("uncollectible" | "void") => give_up(ctx, tenant, sub, None, now).await,
        // Settled elsewhere (paid by hand): the subscription recovers.
        _ => {
            recover(ctx, tenant, &sub).await?;
            Ok(Renewal::Renewed)
        }
    }
}

/// Dunning gives up: the period's usage so far is billed (it is still owed), then in one
/// transaction the subscription ends, the open invoice is written off and the members are
/// told. An invoice paid meanwhile fails that transaction: nothing ends, and the next run
/// recovers the subscription.
async fn give_up(
    ctx: &AppContext,
    tenant: &TenantId,
    sub: Sub,
    open: Option<&crate::store::Item>,
    now: DateTime<Utc>,
) -> Result<Renewal, ApiError> {
    let t = ctx.stores.tenant(tenant);
    let last = ctx.billing.dunning_final;
    let Some(sub) = closed_for_billing(ctx, tenant, sub).await? else {
        return Ok(Renewal::NotDue);
    };
    bill_final_usage(ctx, tenant, &sub, now).await?;
    let also = unpaid_end_ops(&t, &sub, last, open, now);
    match end(ctx, &t, &sub, last, now, Decimal::ZERO, also).await {
        Ok(_) => {}
        Err(e) if e.status == axum::http::StatusCode::CONFLICT => return Ok(Renewal::NotDue),
        Err(e) => return Err(e),
    }
    Ok(if last == Event::Expire {
        Renewal::Expired
    } else {
        Renewal::Cancelled
    })
}

/// A past-due subscription whose invoice got paid: active again, next renewal at period end.
pub(super) async fn recover(
    ctx: &AppContext,
    tenant: &TenantId,
    sub: &Sub,
) -> Result<(), ApiError> {
    let t = ctx.stores.tenant(tenant);
    let next = sub.status.apply(Event::Recovered)?;
    let mut actions = vec![
        UpdateAction::set("status", next.as_str()),
        UpdateAction::set("dunning_attempts", 0),
        UpdateAction::remove("next_attempt_at"),
    ];
    actions.extend(renewal_index(tenant, &sub.id, sub.period_end));
    let recovered = json!({"subscription_id": sub.id, "status": next.as_str()});
    commit(
        ctx,
        &t,
        sub.write(actions),
        ("customer.subscription.updated", recovered),
        Vec::new(),
        ctx.clock.now(),
    )
    .await
}
