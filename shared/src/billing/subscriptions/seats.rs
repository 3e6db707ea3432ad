//! Seats added mid-period: on a plan with a per-seat price, each member past the seats already
//! paid for this period is charged at once for the rest of the period, prorated by the second
//! as plan changes are. Removing a member refunds nothing; the renewal bills the member count
//! of its day. A subscription keeps `seats_billed`, the most seats paid for this period:
//! racing joins each try to move it from what they read to the member count they see, on
//! condition, so a seat is decided once; the decision (`seats_pending`) is written with that
//! move and billed after it under a key unique to it, so a crash between the two bills it on the
//! next attempt and never twice.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::super::invoices::{self, Draft, Line, LineDetail, LineKind};
use super::super::proration::prorate;
use super::super::state::Status;
use super::cancel::period_not_over;
use super::metered::{charge_open, member_count, seat_quantity};
use super::record::{
    commit, found, live, load_version, reload, PendingSeats, Sub, SubscriptionView, SEATS_BILLED,
    SEATS_LICENSED, SEATS_PENDING,
};
use crate::access;
use crate::audit::{self, Change};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::plans::policies::Enforcement;
use crate::plans::VersionTerms;
use crate::store::{Condition, StoreError, StoreExt, TenantId, UpdateAction, WriteOp};
use crate::time;
use crate::AppContext;

/// Bills the seats the tenant's members went past since they were last paid for (after a
/// member joined). Nothing on a plan without a seat price, in a trial (free), or on a
/// subscription that is not active.
pub async fn seats_added(ctx: &AppContext, tenant: &TenantId) -> Result<(), ApiError> {
    let t = ctx.stores.tenant(tenant);
    // Each round either decides a seat change, bills one, or finds nothing to do; a lost race
    // goes round again with what the winner wrote.
    for _ in 0..20 {
        let Some(sub) = live(ctx, tenant).await? else {
            return Ok(());
        };
        if let Some(pending) = &sub.seats_pending {
            bill_pending(ctx, tenant, &sub, pending).await?;
            continue;
        }
        if sub.status != Status::Active || sub.trialing {
            return Ok(());
        }
        // A plan change in flight prices seats itself and calls this when it is done; an
        // ended period's seats are the renewal's, which calls this once it renewed.
        if sub.locked || sub.period_end <= ctx.clock.now() {
            return Ok(());
        }
        let terms = load_version(ctx, &sub.plan_id, sub.plan_version).await?;
        if terms.seats.is_none() {
            return Ok(());
        }
        let count = seat_quantity(&t, &sub, &terms).await?;
        let billed_condition = match sub.seats_billed {
            Some(billed) => Condition::eq(SEATS_BILLED, billed as i64),
            None => Condition::not_exists(SEATS_BILLED),
        };
        let actions = match sub.seats_billed {
            Some(billed) if count <= billed => return Ok(()),
            Some(billed) => {
                let pending = PendingSeats {
                    from: billed,
                    to: count,
                    at: time::fmt(ctx.clock.now()),
                    start: time::fmt(sub.period_start),
                    end: time::fmt(sub.period_end),
                };
                vec![
                    UpdateAction::set(SEATS_BILLED, count as i64),
                    UpdateAction::set(SEATS_PENDING, pending.text()),
                ]
            }
            // Paid before seats were tracked (a plan change onto seats): today's count is
            // the baseline, and the renewal bills it in full.
            None => vec![UpdateAction::set(SEATS_BILLED, count as i64)],
        };
        // A revision bump, so a renewal or plan change that read the seats before fails its
        // check and reads them again (joins are rare: usage recording retries once at most);
        // the condition on the seat fields serialises racing joins.
        let mut actions = actions;
        actions.push(UpdateAction::set("rev", sub.rev + 1));
        let decided = t
            .update(
                sub.key.clone(),
                actions,
                Some(Condition::And(vec![
                    sub.unchanged(),
                    billed_condition,
                    Condition::not_exists(SEATS_PENDING),
                    Condition::eq("period_start", time::fmt(sub.period_start).as_str()),
                ])),
            )
            .await;
        match decided {
            Ok(_) => {}
            Err(StoreError::ConditionFailed { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
        if sub.seats_billed.is_none() {
            return Ok(());
        }
    }
    Err(ApiError::conflict(
        "seat billing is busy for this tenant; it continues on the next change",
    ))
}

/// Invoices (once, under a key unique to the decision) and charges a decided seat change,
/// then clears it.
pub(super) async fn bill_pending(
    ctx: &AppContext,
    tenant: &TenantId,
    sub: &Sub,
    pending: &PendingSeats,
) -> Result<(), ApiError> {
    let t = ctx.stores.tenant(tenant);
    let parse = |text: &str| {
        time::parse(text).ok_or_else(|| ApiError::internal("bad time in seats_pending"))
    };
    let (at, start, end): (DateTime<Utc>, _, _) = (
        parse(&pending.at)?,
        parse(&pending.start)?,
        parse(&pending.end)?,
    );
    let terms = load_version(ctx, &sub.plan_id, sub.plan_version).await?;
    if let Some(seats) = &terms.seats {
        let added = seats.billable(pending.to) - seats.billable(pending.from);
        let full = seats.unit_price * rust_decimal::Decimal::from(added);
        let amount = prorate(
            sub.currency,
            rust_decimal::Decimal::ZERO,
            full,
            start,
            end,
            at,
            false,
        )
        .charge;
        if added > 0 {
            let line = Line {
                kind: LineKind::SeatCharge,
                description: format!(
                    "Seats added: {} → {} ({added} × {} for the rest of the period)",
                    pending.from,
                    pending.to,
                    sub.currency.format(seats.unit_price)
                ),
                amount,
                period: Some((at, end)),
                detail: Some(LineDetail {
                    metric: "max_users".into(),
                    quantity: pending.to,
                    included: u64::from(seats.included),
                    billable: added,
                    granted: 0,
                    unit_price: Some(sub.currency.format(seats.unit_price)),
                    price: None,
                }),
            };
            let draft = Draft {
                subscription_id: sub.id.clone(),
                currency: sub.currency,
                lines: vec![line],
                period: (at, end),
                // Unique to the decision (its time too: after a plan change lowered the
                // seats paid for, the same from → to can be decided again in a period).
                dedupe: format!(
                    "{}#seats#{}#{}-{}#{}",
                    sub.id, pending.start, pending.from, pending.to, pending.at
                ),
            };
            let invoice = invoices::issue(ctx, tenant, draft).await?;
            charge_open(ctx, tenant, &invoice).await?;
        }
    }
    let cleared = t
        .update(
            sub.key.clone(),
            vec![UpdateAction::remove(SEATS_PENDING)],
            Some(Condition::eq(SEATS_PENDING, pending.text().as_str())),
        )
        .await;
    match cleared {
        Ok(_) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Checks a number of seats to buy on a plan whose seats are licensed: 1 to 100,000, no fewer
/// than the members using them, no more than the plan's hard `max_users`.
pub(super) fn check_seats(
    terms: &VersionTerms,
    bought: u64,
    members: u64,
    field: &str,
) -> Result<u64, ApiError> {
    if !(1..=100_000).contains(&bought) {
        return Err(ApiError::validation(field, "1 to 100000 seats"));
    }
    if bought < members {
        return Err(ApiError::validation(
            field,
            format!("{members} members use seats; remove members first"),
        ));
    }
    let cap = terms
        .limits
        .iter()
        .find(|l| l.metric == "max_users" && l.enforcement == Enforcement::Hard)
        .and_then(|l| l.limit);
    if let Some(cap) = cap.filter(|cap| bought > *cap) {
        return Err(ApiError::validation(
            field,
            format!("the plan allows {cap} members at most"),
        ));
    }
    Ok(bought)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSeatsRequest {
    /// The seats to pay for from now: more are charged at once for the rest of the period;
    /// fewer take effect at the next renewal (nothing is refunded).
    #[schema(minimum = 1, maximum = 100000, example = 5)]
    pub quantity: u64,
}

/// A tenant admin sets the seats bought, on a plan whose seats are licensed. The write is
/// conditional on the member count (a join racing it cannot leave members without seats)
/// and on the subscription's revision; added seats are billed at once by [`seats_added`].
pub async fn set_seats(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
    req: SetSeatsRequest,
) -> Result<SubscriptionView, ApiError> {
    let tenant = access::own_admin_tenant(caller)?;
    let sub = found(ctx, &tenant, id).await?;
    if !matches!(sub.status, Status::Active | Status::Trialing) {
        return Err(ApiError::conflict(format!(
            "a {} subscription's seats cannot change",
            sub.status.as_str()
        )));
    }
    let now = ctx.clock.now();
    period_not_over(&sub, now)?;
    let terms = load_version(ctx, &sub.plan_id, sub.plan_version).await?;
    if !terms.seats.as_ref().is_some_and(|s| s.licensed()) {
        return Err(ApiError::conflict(
            "this plan counts seats by members (or has no seat price): add or remove members instead",
        )
        .field("quantity"));
    }
    let t = ctx.stores.tenant(&tenant);
    let members = member_count(&t).await?;
    let bought = check_seats(&terms, req.quantity, members, "quantity")?;
    // Seats added to a paid period are charged at once: no card, no seats (a decline leaves
    // the seat invoice open, payable by hand, like a member's seat).
    let adds = bought > sub.seats_billed.unwrap_or(0);
    if adds
        && sub.status == Status::Active
        && !sub.trialing
        && super::super::payment_methods::resolve(ctx, &tenant, None)
            .await?
            .is_none()
    {
        return Err(ApiError::validation(
            "payment_method_id",
            "add a payment method first: added seats are charged at once",
        ));
    }
    let write = sub.write(vec![
        UpdateAction::set(SEATS_LICENSED, bought as i64),
        UpdateAction::set("updated_at", time::fmt(now)),
    ]);
    let members_fit = WriteOp::Check {
        key: t.key("META", "TENANT"),
        condition: Condition::le("member_count", bought as i64),
    };
    let change = Change {
        action: "subscription.seats_set",
        resource_type: "subscription",
        resource_id: &sub.id,
        before: sub.seats_licensed.map(|n| json!({"seats": n})),
        after: Some(json!({"seats": bought})),
        reason: None,
    };
    let event = json!({"subscription_id": sub.id, "seats": bought});
    commit(
        ctx,
        &t,
        write,
        ("customer.subscription.updated", event),
        vec![members_fit, audit::tenant_op(&t, caller, change, now)],
        now,
    )
    .await?;
    // The join limit read by the hot path follows the seats bought.
    ctx.hot.forget_limits(tenant.as_str());
    seats_added(ctx, &tenant).await?;
    reload(ctx, &tenant, id).await?.view()
}
