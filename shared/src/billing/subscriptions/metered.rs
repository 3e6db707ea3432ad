//! What a subscription's next invoice bills, read from the store: the base price and seats
//! for the period ahead (on the scheduled version if a change waits for it), and the closing
//! period's usage at the closing version's prices (`billing::charges` has the rules). The
//! renewal bills it; the upcoming invoice shows it before then. Also closing a period's usage
//! for billing, so no event counts in a period after its usage was read for an invoice.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::super::charges::{plan_line, seat_line, usage_line};
use super::super::discount::Discount;
use super::super::grants::granted_in;
use super::super::invoices::{self, Draft, Line};
use super::super::payment_methods;
use super::super::period::period;
use super::record::{
    load_version, reload, PendingUsage, Sub, SEATS_LICENSED, USAGE_BILLED, USAGE_CLOSED,
    USAGE_PENDING,
};
use crate::error::ApiError;
use crate::plans::policies::Enforcement;
use crate::plans::{self, BillingCycle, VersionTerms};
use crate::store::{Condition, Store, StoreError, StoreExt, TenantId, TenantStore, UpdateAction};
use crate::time;
use crate::usage::keys;
use crate::AppContext;

/// The renewal at the end of a subscription's period: the period it starts, on which plan
/// version, and the lines it bills.
pub(super) struct NextInvoice {
    pub plan_id: String,
    pub version: u32,
    pub price: Decimal,
    pub cycle: BillingCycle,
    pub anchor: DateTime<Utc>,
    pub index: u32,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub lines: Vec<Line>,
    /// The seats billed for the period ahead, on a plan with a seat price.
    pub seats: Option<u64>,
    /// The seats bought from the period ahead on (licensed seats), or its removal.
    pub licensed: UpdateAction,
    /// The member count the seats were priced at (plans with a seat price).
    pub members: Option<u64>,
    /// The subscription's coupon after this invoice (`None`: used up, or there was none).
    pub discount_after: Option<Discount>,
}

/// The tenant's member count: what seats bill.
pub(super) async fn member_count(t: &TenantStore) -> Result<u64, ApiError> {
    let meta = t.get(&t.key("META", "TENANT")).await?;
    Ok(meta.and_then(|m| m.i64("member_count")).unwrap_or(0).max(0) as u64)
}

/// The seats bought under `terms`, on licensed seats: what the tenant admin bought, never
/// fewer than the members, nor past the plan's hard `max_users` (unless members already are).
/// `None`: the version counts members, or has no seat price.
pub(super) fn licensed_seats(terms: &VersionTerms, sub: &Sub, members: u64) -> Option<u64> {
    terms.seats.as_ref().filter(|s| s.licensed())?;
    let bought = sub.seats_licensed.unwrap_or(members).max(members);
    let cap = terms
        .limits
        .iter()
        .find(|l| l.metric == "max_users" && l.enforcement == Enforcement::Hard)
        .and_then(|l| l.limit);
    Some(cap.map_or(bought, |cap| bought.min(cap.max(members))))
}

/// The write of [`licensed_seats`] onto a subscription moving to `terms` (removed when the
/// version counts members).
pub(super) fn licensed_action(terms: &VersionTerms, sub: &Sub, members: u64) -> UpdateAction {
    match licensed_seats(terms, sub, members) {
        Some(bought) => UpdateAction::set(SEATS_LICENSED, bought as i64),
        None => UpdateAction::remove(SEATS_LICENSED),
    }
}

/// The seats `sub` pays for under `terms`: its member count, or on licensed seats the seats
/// bought ([`licensed_seats`]; a join racing a lowered seat count is billed).
pub(super) async fn seat_quantity(
    t: &TenantStore,
    sub: &Sub,
    terms: &VersionTerms,
) -> Result<u64, ApiError> {
    let members = member_count(t).await?;
    Ok(licensed_seats(terms, sub, members).unwrap_or(members))
}

/// The usage lines of `sub`'s current period under `terms` (its own version): none in a
/// trial, which is free.
pub(super) async fn usage_lines(
    t: &TenantStore,
    sub: &Sub,
    terms: &VersionTerms,
) -> Result<Vec<Line>, ApiError> {
    let mut lines = Vec::new();
    if sub.trialing {
        return Ok(lines);
    }
    for charge in &terms.usage_charges {
        let used = keys::used(t, &charge.metric, sub.period_start).await?;
        // What a plan change billed already (at the version it was used under) is not
        // billed again, and the allowance and grants are free once in the period.
        let billed = sub.usage_billed.get(&charge.metric).copied().unwrap_or(0);
        let granted = granted_in(
            &sub.grants,
            &charge.metric,
            sub.period_start,
            sub.period_end,
        );
        lines.push(usage_line(
            charge,
            used,
            billed,
            granted,
            sub.currency,
            (sub.period_start, sub.period_end),
        ));
    }
    Ok(lines)
}

/// Each charged metric's count so far this period, for a settlement of usage to date.
pub(super) async fn usage_to_date(
    t: &TenantStore,
    sub: &Sub,
    terms: &VersionTerms,
) -> Result<BTreeMap<String, u64>, ApiError> {
    let mut counts = BTreeMap::new();
    for charge in &terms.usage_charges {
        let used = keys::used(t, &charge.metric, sub.period_start).await?;
        counts.insert(charge.metric.clone(), used);
    }
    Ok(counts)
}

/// The writes that settle `sub`'s usage to date when it leaves its version now: what is
/// billed from here on (`USAGE_BILLED`, empty when the period restarts) and the settlement to
/// invoice (`USAGE_PENDING`), to be written with the move itself. Nothing in a trial or on a
/// version without usage charges.
pub(super) async fn settle_usage_ops(
    ctx: &AppContext,
    t: &TenantStore,
    sub: &Sub,
    restarts: bool,
    now: DateTime<Utc>,
) -> Result<Vec<UpdateAction>, ApiError> {
    let terms = load_version(ctx, &sub.plan_id, sub.plan_version).await?;
    // A closed period is the renewal's (or a final invoice's) to bill.
    if sub.trialing
        || terms.usage_charges.is_empty()
        || sub.usage_pending.is_some()
        || sub.usage_closed()
    {
        return Ok(Vec::new());
    }
    let to = usage_to_date(t, sub, &terms).await?;
    let pending = PendingUsage {
        plan_id: sub.plan_id.clone(),
        version: sub.plan_version,
        from: sub.usage_billed.clone(),
        to: to.clone(),
        start: time::fmt(sub.period_start),
        at: time::fmt(now),
    };
    let billed = if restarts {
        UpdateAction::remove(USAGE_BILLED)
    } else {
        UpdateAction::set(
            USAGE_BILLED,
            serde_json::to_string(&to).expect("serializable"),
        )
    };
    Ok(vec![
        billed,
        UpdateAction::set(USAGE_PENDING, pending.text()),
    ])
}

/// The lines of a settlement of usage to date under `terms`: from the counts billed before
/// (`from`) to those counted at its end (`to`), over `[start, at)`.
fn settlement_lines(
    sub: &Sub,
    terms: &VersionTerms,
    from: &BTreeMap<String, u64>,
    to: &BTreeMap<String, u64>,
    (start, at): (DateTime<Utc>, DateTime<Utc>),
) -> Vec<Line> {
    terms
        .usage_charges
        .iter()
        .map(|charge| {
            let used = to.get(&charge.metric).copied().unwrap_or(0);
            let before = from.get(&charge.metric).copied().unwrap_or(0);
            let granted = granted_in(&sub.grants, &charge.metric, start, at);
            usage_line(charge, used, before, granted, sub.currency, (start, at))
        })
        .collect()
}

/// What a plan change made now would bill for the usage so far (its settlement), for the
/// change preview: nothing in a trial, in a closed period, or on a version without charges.
pub(super) async fn settlement_preview(
    ctx: &AppContext,
    t: &TenantStore,
    sub: &Sub,
    now: DateTime<Utc>,
) -> Result<Vec<Line>, ApiError> {
    let terms = load_version(ctx, &sub.plan_id, sub.plan_version).await?;
    if sub.trialing || terms.usage_charges.is_empty() || sub.usage_closed() {
        return Ok(Vec::new());
    }
    let to = usage_to_date(t, sub, &terms).await?;
    // What a change now settles: from what was billed before (`usage_billed`, empty after a
    // period restart), as the change itself computes it.
    Ok(settlement_lines(
        sub,
        &terms,
        &sub.usage_billed,
        &to,
        (sub.period_start, now),
    ))
}

/// Invoices (once, under a key unique to it) and charges a settlement of usage to date at the
/// version it was used under, then clears it.
pub(super) async fn bill_pending_usage(
    ctx: &AppContext,
    tenant: &TenantId,
    sub: &Sub,
    pending: &PendingUsage,
) -> Result<(), ApiError> {
    let t = ctx.stores.tenant(tenant);
    let terms = load_version(ctx, &pending.plan_id, pending.version).await?;
    let parse = |text: &str| {
        time::parse(text).ok_or_else(|| ApiError::internal("bad time in usage_pending"))
    };
    let (start, at) = (parse(&pending.start)?, parse(&pending.at)?);
    let lines = settlement_lines(sub, &terms, &pending.from, &pending.to, (start, at));
    if lines.iter().any(|l| !l.amount.is_zero()) {
        let draft = Draft {
            subscription_id: sub.id.clone(),
            currency: sub.currency,
            lines,
            period: (start, at),
            dedupe: format!("{}#usage#{}", sub.id, pending.at),
        };
        let invoice = invoices::issue(ctx, tenant, draft).await?;
        charge_open(ctx, tenant, &invoice).await?;
    }
    let cleared = t
        .update(
            sub.key.clone(),
            vec![UpdateAction::remove(USAGE_PENDING)],
            Some(Condition::eq(USAGE_PENDING, pending.text().as_str())),
        )
        .await;
    match cleared {
        Ok(_) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Charges an invoice that is still open to the default card; a decline leaves it open,
/// payable by hand (`POST /v1/invoices/{id}/pay`), and a conflict is another run paying it.
pub(super) async fn charge_open(
    ctx: &AppContext,
    tenant: &TenantId,
    invoice: &crate::store::Item,
) -> Result<(), ApiError> {
    if invoice.str("status") == Some("open") {
        if let Some(method) = payment_methods::resolve(ctx, tenant, None).await? {
            match invoices::attempt_payment(ctx, tenant, invoice, &method).await {
                Err(e) if e.status != axum::http::StatusCode::CONFLICT => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}

/// `sub` with its period closed for usage, when the period bills usage and is not closed yet:
/// a write that bumps its revision, so a recording that read the subscription before fails
/// its check, reads it again and finds the period closed (and renews it first). `None`:
/// somebody else changed the subscription first.
pub(super) async fn closed_for_billing(
    ctx: &AppContext,
    tenant: &TenantId,
    sub: Sub,
) -> Result<Option<Sub>, ApiError> {
    let terms = load_version(ctx, &sub.plan_id, sub.plan_version).await?;
    if sub.trialing || terms.usage_charges.is_empty() || sub.usage_closed() {
        return Ok(Some(sub));
    }
    let t = ctx.stores.tenant(tenant);
    let closed = vec![UpdateAction::set(
        USAGE_CLOSED,
        time::fmt(sub.period_end).as_str(),
    )];
    match sub.update(&t, closed).await {
        Ok(()) => Ok(Some(reload(ctx, tenant, &sub.id).await?)),
        Err(StoreError::ConditionFailed { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The usage of a subscription that ends at `until` (its period's end, or now for an
/// immediate cancel), on an invoice of its own, charged like a renewal's; nothing when no
/// usage line has an amount. `sub` is closed for billing ([`closed_for_billing`]).
pub(super) async fn bill_final_usage(
    ctx: &AppContext,
    tenant: &TenantId,
    sub: &Sub,
    until: DateTime<Utc>,
) -> Result<(), ApiError> {
    let t = ctx.stores.tenant(tenant);
    if let Some(pending) = &sub.usage_pending {
        bill_pending_usage(ctx, tenant, sub, pending).await?;
    }
    let terms = load_version(ctx, &sub.plan_id, sub.plan_version).await?;
    let mut lines = usage_lines(&t, sub, &terms).await?;
    for line in &mut lines {
        line.period = Some((sub.period_start, until));
    }
    if lines.iter().all(|l| l.amount.is_zero()) {
        return Ok(());
    }
    let draft = Draft {
        subscription_id: sub.id.clone(),
        currency: sub.currency,
        lines,
        period: (sub.period_start, until),
        // One last usage invoice per period, whenever it is asked for (a retried cancel gets
        // the same one), and never the renewal's key (`sub#<next period start>`).
        dedupe: format!("{}#final#{}", sub.id, time::fmt(sub.period_start)),
    };
    let invoice = invoices::issue(ctx, tenant, draft).await?;
    charge_open(ctx, tenant, &invoice).await
}

/// What the renewal at the end of `sub`'s period bills, with usage as counted so far.
pub(super) async fn next_invoice(
    ctx: &AppContext,
    t: &TenantStore,
    sub: &Sub,
) -> Result<NextInvoice, ApiError> {
    let closing = load_version(ctx, &sub.plan_id, sub.plan_version).await?;
    let (plan_id, version, terms) = match &sub.scheduled {
        Some((plan_id, version)) => (
            plan_id.clone(),
            *version,
            load_version(ctx, plan_id, *version).await?,
        ),
        None => (sub.plan_id.clone(), sub.plan_version, closing.clone()),
    };
    // A subscription keeps the price it bought; a scheduled version brings its own.
    let price = if sub.scheduled.is_some() {
        terms.price
    } else {
        sub.price
    };
    let cycle = terms.billing_cycle;
    let (anchor, index) = if sub.trialing || cycle != sub.cycle {
        (sub.period_end, 0)
    } else {
        (sub.anchor, sub.period_index + 1)
    };
    let (start, end) = period(anchor, cycle, index);
    let name = ctx
        .stores
        .platform()
        .get(&plans::plan_key(&plan_id))
        .await?
        .and_then(|m| m.str("name").map(str::to_owned))
        .unwrap_or_default();
    let mut lines = vec![plan_line(&name, cycle, price, sub.currency, (start, end))];
    let mut seat_count = None;
    let mut members = None;
    // Only seats need the member count (a flat renewal reads nothing more).
    let mut licensed = UpdateAction::remove(SEATS_LICENSED);
    if let Some(seats) = &terms.seats {
        let count = member_count(t).await?;
        let bought = licensed_seats(&terms, sub, count);
        let billed = bought.unwrap_or(count);
        lines.push(seat_line(seats, billed, sub.currency, (start, end)));
        seat_count = Some(billed);
        members = Some(count);
        licensed = licensed_action(&terms, sub, count);
    }
    lines.extend(usage_lines(t, sub, &closing).await?);
    let mut discount_after = None;
    if let Some(discount) = &sub.discount {
        lines.extend(discount.line(&lines, sub.currency));
        discount_after = discount.used_once();
    }
    Ok(NextInvoice {
        plan_id,
        version,
        price,
        cycle,
        anchor,
        index,
        start,
        end,
        lines,
        seats: seat_count,
        licensed,
        members,
        discount_after,
    })
}

/// What `sub` recurs at per cycle: its base price and the seats paid for this period (usage
/// charges vary, so they are not recurring revenue).
pub async fn recurring_price(
    ctx: &AppContext,
    sub: &Sub,
) -> Result<rust_decimal::Decimal, ApiError> {
    let terms = load_version(ctx, &sub.plan_id, sub.plan_version).await?;
    let seats = match (&terms.seats, sub.seats_billed) {
        (Some(price), Some(count)) => price.amount(count),
        _ => rust_decimal::Decimal::ZERO,
    };
    Ok(sub.price + seats)
}
