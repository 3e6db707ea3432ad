//! Plan changes: the preview, a change now (prorated, charged under the change lock) or at
//! period end (scheduled), undoing a scheduled one, and the move to a plan version that a
//! change and an admin override share.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::super::invoices::{self, Draft, Line, LineKind};
use super::super::payment_methods;
use super::super::period::period;
use super::super::proration::{is_upgrade, prorate};
use super::super::state::Status;
use super::cancel::period_not_over;
use super::metered::{
    bill_pending_usage, licensed_action, member_count, seat_quantity, settle_usage_ops,
    settlement_preview,
};
use super::record::{
    changed_meanwhile, commit, current_version, found, live_moved, load_version, reload,
    renewal_index, Sub, SubscriptionView, Target, CHANGE_LOCK, CHANGE_LOCK_SECS, SEATS_BILLED,
    SEATS_LICENSED,
};
use super::seats::seats_added;
use super::subscribe::SubscriptionResult;
use crate::access;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::plans::BillingCycle;
use crate::store::{Item, StoreExt, TenantStore, UpdateAction};
use crate::time;
use crate::AppContext;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Effective {
    Now,
    PeriodEnd,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChangePreview {
    pub subscription_id: String,
    pub plan_id: String,
    pub plan_version: u32,
    pub upgrade: bool,
    /// When the change would apply by default: upgrades now, downgrades at period end.
    pub default_effective: Effective,
    /// The lines an immediate change would bill (credit and charge).
    pub lines: Vec<invoices::LineView>,
    pub net: String,
    pub currency: String,
    pub restarts_period: bool,
    /// A change now also bills the usage so far at the current version's prices, on an
    /// invoice of its own: these lines (empty when nothing is charged for usage).
    pub usage_to_date: Vec<invoices::LineView>,
    /// Their sum.
    pub usage_total: String,
}

/// What a change made now bills, and whether it restarts the period. During a trial nothing
/// was paid: to another plan with a trial, nothing (the trial keeps its end); to a plan
/// without one, the trial ends and the new plan's first period, from now, is billed in full.
/// What seats cost per cycle before and after a change: the seats paid for under the current
/// version (the member count if it never tracked them), and the member count under the new one.
async fn seat_amounts(
    ctx: &AppContext,
    t: &TenantStore,
    sub: &Sub,
    to: &Target,
) -> Result<SeatAmounts, ApiError> {
    let current = load_version(ctx, &sub.plan_id, sub.plan_version).await?;
    if current.seats.is_none() && to.terms.seats.is_none() {
        return Ok(SeatAmounts::default());
    }
    let count = seat_quantity(t, sub, &to.terms).await?;
    Ok(SeatAmounts {
        count: Some(count),
        old: current
            .seats
            .map(|s| s.amount(sub.seats_billed.unwrap_or(count)))
            .unwrap_or_default(),
        new: to
            .terms
            .seats
            .as_ref()
            .map(|s| s.amount(count))
            .unwrap_or_default(),
    })
}

/// Seats' price per cycle on the current and the new version.
#[derive(Default, Clone, Copy)]
struct SeatAmounts {
    /// The member count priced (none when neither version has a seat price).
    count: Option<u64>,
    old: Decimal,
    new: Decimal,
}

fn change_lines(
    sub: &Sub,
    to: &Target,
    at: DateTime<Utc>,
    seats: SeatAmounts,
) -> (Vec<Line>, bool) {
    if !sub.trialing {
        return proration_lines(sub, to, at, seats);
    }
    if to.terms.trial_days > 0 {
        return (Vec::new(), false);
    }
    let (start, end) = period(at, to.terms.billing_cycle, 0);
    let line = Line {
        kind: LineKind::PlanCharge,
        description: format!("{} ({})", to.name, to.terms.billing_cycle.as_str()),
        amount: to.terms.currency.round(to.terms.price + seats.new),
        period: Some((start, end)),
        detail: None,
    };
    (vec![line], true)
}

/// The unused part of the current price (base and seats) credited, the rest of the period on
/// the new one (base and seats at today's member count) charged.
fn proration_lines(
    sub: &Sub,
    to: &Target,
    at: DateTime<Utc>,
    seats: SeatAmounts,
) -> (Vec<Line>, bool) {
    let restart = sub.cycle != to.terms.billing_cycle;
    let p = prorate(
        sub.currency,
        sub.price + seats.old,
        to.terms.price + seats.new,
        sub.period_start,
        sub.period_end,
        at,
        restart,
    );
    let new_end = if restart {
        period(at, to.terms.billing_cycle, 0).1
    } else {
        sub.period_end
    };
    let lines = vec![
        Line {
            kind: LineKind::ProrationCredit,
            description: "Unused time on the previous plan".into(),
            amount: p.credit,
            period: Some((at, sub.period_end)),
            detail: None,
        },
        Line {
            kind: LineKind::ProrationCharge,
            description: format!("Remaining time on {}", to.name),
            amount: p.charge,
            period: Some((at, new_end)),
            detail: None,
        },
    ];
    (lines, restart)
}

/// The plan a live subscription may change to: another plan or version, in its currency.
async fn change_target(ctx: &AppContext, sub: &Sub, plan_id: &str) -> Result<Target, ApiError> {
    if !sub.status.is_live() {
        return Err(ApiError::conflict(format!(
            "a {} subscription cannot change plan",
            sub.status.as_str()
        )));
    }
    // The subscription's version says where it may go (`allowed_changes`; none: anywhere).
    let from = load_version(ctx, &sub.plan_id, sub.plan_version).await?;
    if let Some(allowed) = &from.allowed_changes {
        if plan_id != sub.plan_id && !allowed.iter().any(|p| p == plan_id) {
            return Err(ApiError::validation(
                "plan_id",
                if allowed.is_empty() {
                    format!("this plan cannot change to another; {plan_id} is not allowed")
                } else {
                    format!(
                        "this plan may change to {} only; {plan_id} is not allowed",
                        allowed.join(", ")
                    )
                },
            )
            .with("allowed_changes", allowed.clone()));
        }
    }
    let to = current_version(ctx, plan_id).await?;
    if plan_id == sub.plan_id && to.version == sub.plan_version {
        return Err(ApiError::validation(
            "plan_id",
            "the subscription is on this plan already",
        ));
    }
    if to.terms.currency != sub.currency {
        return Err(ApiError::validation(
            "plan_id",
            "plans in another currency cannot be switched to",
        ));
    }
    Ok(to)
}

fn upgrade(sub: &Sub, to: &Target) -> bool {
    is_upgrade(
        sub.price,
        sub.cycle == BillingCycle::Yearly,
        to.terms.price,
        to.terms.billing_cycle == BillingCycle::Yearly,
    )
}

pub async fn preview(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
    plan_id: &str,
) -> Result<ChangePreview, ApiError> {
    let tenant = access::own_admin_tenant(caller)?;
    let sub = found(ctx, &tenant, id).await?;
    let to = change_target(ctx, &sub, plan_id).await?;
    let now = ctx.clock.now();
    let seats = seat_amounts(ctx, &ctx.stores.tenant(&tenant), &sub, &to).await?;
    let (lines, restarts_period) = change_lines(&sub, &to, now, seats);
    let upgrade = upgrade(&sub, &to);
    let net: Decimal = lines.iter().map(|l| l.amount).sum();
    let usage = settlement_preview(ctx, &ctx.stores.tenant(&tenant), &sub, now).await?;
    let usage_total: Decimal = usage.iter().map(|l| l.amount).sum();
    Ok(ChangePreview {
        subscription_id: sub.id.clone(),
        plan_id: to.id,
        plan_version: to.version,
        upgrade,
        default_effective: if upgrade {
            Effective::Now
        } else {
            Effective::PeriodEnd
        },
        lines: lines.iter().map(|l| l.view(sub.currency)).collect(),
        net: sub.currency.format(net),
        currency: sub.currency.code().to_owned(),
        restarts_period,
        usage_to_date: usage.iter().map(|l| l.view(sub.currency)).collect(),
        usage_total: sub.currency.format(usage_total),
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    pub plan_id: String,
    /// Default: upgrades now, downgrades at period end.
    #[serde(default)]
    pub effective: Option<Effective>,
    #[serde(default)]
    pub payment_method_id: Option<String>,
}

pub async fn change(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
    req: ChangeRequest,
) -> Result<SubscriptionResult, ApiError> {
    let done = change_unannounced(ctx, caller, id, req).await?;
    // The tenant's API rate comes from its plan: this instance reads it again at once (others
    // within `hot::API_RATE_TTL`).
    ctx.hot.forget_api_rate(&done.subscription.tenant_id);
    Ok(done)
}

async fn change_unannounced(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
    req: ChangeRequest,
) -> Result<SubscriptionResult, ApiError> {
    let tenant = access::own_admin_tenant(caller)?;
    let sub = found(ctx, &tenant, id).await?;
    let to = change_target(ctx, &sub, &req.plan_id).await?;
    let effective = req.effective.unwrap_or(if upgrade(&sub, &to) {
        Effective::Now
    } else {
        Effective::PeriodEnd
    });
    // Leaving a trial for a plan without one is never deferred: the trial ends and the new
    // plan is billed now (otherwise a trial would hold the new plan's limits unpaid).
    let effective = if sub.trialing && to.terms.trial_days == 0 {
        Effective::Now
    } else {
        effective
    };
    let t = ctx.stores.tenant(&tenant);
    let now = ctx.clock.now();
    period_not_over(&sub, now)?;
    if effective == Effective::PeriodEnd {
        let write = sub.write(vec![
            UpdateAction::set("scheduled_plan_id", to.id.as_str()),
            UpdateAction::set("scheduled_plan_version", i64::from(to.version)),
            UpdateAction::set("updated_at", time::fmt(now)),
        ]);
        let event = json!({"subscription_id": sub.id, "plan_id": to.id, "plan_version": to.version, "effective": "period_end"});
        commit(ctx, &t, write, ("plan.changed", event), Vec::new(), now).await?;
        return Ok(SubscriptionResult {
            subscription: reload(ctx, &tenant, id).await?.view()?,
            invoice: None,
        });
    }
    if sub.trialing && to.terms.trial_days > 0 {
        // During a trial nothing was paid: switch to another plan with a trial without
        // proration (the trial keeps its end: a change never extends it).
        apply_plan(ctx, &t, &sub, &to, Move::default(), now).await?;
        return Ok(SubscriptionResult {
            subscription: reload(ctx, &tenant, id).await?.view()?,
            invoice: None,
        });
    }
    // Claim the change first (revision bump), so a concurrent change gets its 409 before any
    // invoice is written.
    let claimed = sub.rev + 1;
    t.update(
        sub.key.clone(),
        vec![
            UpdateAction::set("rev", claimed),
            UpdateAction::set(CHANGE_LOCK, now.timestamp() + CHANGE_LOCK_SECS),
        ],
        Some(sub.unchanged()),
    )
    .await
    .map_err(|e| {
        if e.is_condition_failure() {
            ApiError::conflict("the subscription is being changed by another request; retry")
        } else {
            e.into()
        }
    })?;
    let sub = Sub {
        rev: claimed,
        ..sub
    };
    let seats = seat_amounts(ctx, &t, &sub, &to).await?;
    let (lines, restart) = change_lines(&sub, &to, now, seats);
    let period_end = lines
        .last()
        .and_then(|l| l.period)
        .map(|p| p.1)
        .unwrap_or(sub.period_end);
    let draft = Draft {
        subscription_id: sub.id.clone(),
        currency: sub.currency,
        lines,
        period: (now, period_end),
        dedupe: format!("{}#CHANGE#{}", sub.id, claimed),
    };
    let invoice = invoices::issue(ctx, &tenant, draft).await?;
    let mut invoice_after = invoice.clone();
    if invoice.str("status") == Some("open") {
        // Nothing to charge with, or a declined charge: the invoice is voided and the lock
        // released, so nothing is left open to pay for a change that did not happen.
        let undo = |invoice: Item| {
            let (t, sub, tenant) = (&t, &sub, &tenant);
            async move {
                invoices::close(ctx, tenant, &invoice, "void").await?;
                t.update(
                    sub.key.clone(),
                    vec![
                        UpdateAction::remove(CHANGE_LOCK),
                        UpdateAction::set("rev", claimed + 1),
                    ],
                    Some(sub.owned()),
                )
                .await?;
                // Members who joined while the lock was held are billed now.
                seats_added(ctx, tenant).await?;
                Ok::<(), ApiError>(())
            }
        };
        let method =
            match payment_methods::resolve(ctx, &tenant, req.payment_method_id.as_deref()).await {
                Ok(Some(method)) => method,
                Ok(None) => {
                    undo(invoice.clone()).await?;
                    return Err(ApiError::validation(
                        "payment_method_id",
                        "add a payment method first",
                    ));
                }
                Err(e) => {
                    undo(invoice.clone()).await?;
                    return Err(e);
                }
            };
        let (after, decline) = invoices::attempt_payment(ctx, &tenant, &invoice, &method).await?;
        invoice_after = after;
        if let Some((code, message)) = decline {
            undo(invoice_after.clone()).await?;
            return Err(ApiError::new(
                axum::http::StatusCode::PAYMENT_REQUIRED,
                "payment-declined",
                "Payment declined",
            )
            .detail(format!("{message} The plan was not changed."))
            .with("code", code)
            .with("invoice_id", invoice.str("invoice_id").unwrap_or_default()));
        }
    }
    let moved = Move {
        restart_at: restart.then_some(now),
        invoice_id: invoice.str("invoice_id"),
        holds_lock: true,
        seats: seats.count,
    };
    apply_plan(ctx, &t, &sub, &to, moved, now).await?;
    Ok(SubscriptionResult {
        subscription: reload(ctx, &tenant, id).await?.view()?,
        invoice: Some(invoices::InvoiceView::from_item(&invoice_after)?),
    })
}

/// How a subscription moves to another plan version now.
#[derive(Default)]
pub(super) struct Move<'a> {
    /// The billing period restarts here (a monthly/yearly switch).
    pub restart_at: Option<DateTime<Utc>>,
    /// The invoice that paid for the change.
    pub invoice_id: Option<&'a str>,
    /// This request holds the change lock (and so set the revision itself).
    pub holds_lock: bool,
    /// The member count the change priced seats at (else today's).
    pub seats: Option<u64>,
}

/// Moves a subscription to another plan version now.
pub(super) async fn apply_plan(
    ctx: &AppContext,
    t: &TenantStore,
    sub: &Sub,
    to: &Target,
    moved: Move<'_>,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    // An earlier change's usage settlement not billed yet is billed first, so this change
    // settles the usage since then (clearing it does not bump the revision read here).
    // Best effort: this may run after the change was paid, so a failure here must not stop
    // the move; the earlier settlement then stays pending (billed by the renewal) and this
    // change settles nothing of its own, as before.
    let settled;
    let sub = match &sub.usage_pending {
        Some(pending) => match bill_pending_usage(ctx, t.tenant(), sub, pending).await {
            Ok(()) => {
                settled = Sub {
                    usage_pending: None,
                    ..sub.clone()
                };
                &settled
            }
            Err(e) => {
                tracing::warn!(subscription = %sub.id, error = %e.detail, "earlier usage settlement not billed yet");
                sub
            }
        },
        None => sub,
    };
    let mut actions = vec![
        UpdateAction::set("plan_id", to.id.as_str()),
        UpdateAction::set("plan_version", i64::from(to.version)),
        UpdateAction::set("price", to.terms.price),
        UpdateAction::remove(CHANGE_LOCK),
        UpdateAction::set("billing_cycle", to.terms.billing_cycle.as_str()),
        UpdateAction::remove("scheduled_plan_id"),
        UpdateAction::remove("scheduled_plan_version"),
        UpdateAction::set("updated_at", time::fmt(now)),
    ];
    if let Some(at) = moved.restart_at {
        if sub.trialing {
            // Restarting a trial's period ends the trial: the new plan is paid from `at`.
            actions.push(UpdateAction::set("status", Status::Active.as_str()));
            actions.push(UpdateAction::remove("trial_end"));
        }
        let (start, end) = period(at, to.terms.billing_cycle, 0);
        actions.push(UpdateAction::set("anchor", time::fmt(at)));
        actions.push(UpdateAction::set("period_index", 0));
        actions.push(UpdateAction::set("period_start", time::fmt(start)));
        actions.push(UpdateAction::set("period_end", time::fmt(end)));
        actions.extend(renewal_index(t.tenant(), &sub.id, end));
    }
    if let Some(invoice_id) = moved.invoice_id {
        actions.push(UpdateAction::set("latest_invoice_id", invoice_id));
    }
    // Seats paid for from here: today's member count on a plan with a seat price.
    match &to.terms.seats {
        Some(_) => {
            let count = match moved.seats {
                Some(count) => count,
                None => seat_quantity(t, sub, &to.terms).await?,
            };
            actions.push(UpdateAction::set(SEATS_BILLED, count as i64));
        }
        None => actions.push(UpdateAction::remove(SEATS_BILLED)),
    }
    // Seats bought carry over onto licensed seats (within the new plan's cap); onto a plan
    // that counts members, they are gone.
    actions.push(match to.terms.seats.as_ref().filter(|s| s.licensed()) {
        Some(_) => licensed_action(&to.terms, sub, member_count(t).await?),
        None => UpdateAction::remove(SEATS_LICENSED),
    });
    // Usage to date is billed at the version it was used under (after this move commits),
    // not at the new one's prices.
    actions.extend(settle_usage_ops(ctx, t, sub, moved.restart_at.is_some(), now).await?);
    let condition = if moved.holds_lock {
        sub.owned()
    } else {
        sub.unchanged()
    };
    let event = json!({"subscription_id": sub.id, "from_plan_id": sub.plan_id, "plan_id": to.id, "plan_version": to.version, "effective": "now"});
    let pointer = live_moved(t, &sub.id, &to.id, to.version);
    commit(
        ctx,
        t,
        sub.write_if(actions, condition),
        ("plan.changed", event),
        vec![pointer],
        now,
    )
    .await?;
    let moved = reload(ctx, t.tenant(), &sub.id).await?;
    if let Some(pending) = &moved.usage_pending {
        // The move stands; a usage bill that fails here is billed by the renewal.
        if let Err(e) = bill_pending_usage(ctx, t.tenant(), &moved, pending).await {
            tracing::warn!(subscription = %sub.id, error = %e.detail, "usage to date not billed yet");
        }
    }
    // Members past the seats priced here (joined during the change) are billed now.
    if to.terms.seats.is_some() {
        if let Err(e) = seats_added(ctx, t.tenant()).await {
            tracing::warn!(subscription = %sub.id, error = %e.detail, "seats not billed yet");
        }
    }
    Ok(())
}

pub async fn cancel_scheduled_change(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
) -> Result<SubscriptionView, ApiError> {
    let tenant = access::own_admin_tenant(caller)?;
    let sub = found(ctx, &tenant, id).await?;
    if sub.scheduled.is_none() {
        return Err(ApiError::conflict("no plan change is scheduled"));
    }
    let t = ctx.stores.tenant(&tenant);
    sub.update(
        &t,
        vec![
            UpdateAction::remove("scheduled_plan_id"),
            UpdateAction::remove("scheduled_plan_version"),
        ],
    )
    .await
    .map_err(changed_meanwhile)?;
    reload(ctx, &tenant, id).await?.view()
}
