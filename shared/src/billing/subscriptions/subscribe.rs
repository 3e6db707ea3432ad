//! Subscribing: a trial when the plan has trial days, else the first invoice charged at once
//! (settled here, or later when the tenant pays it); and a tenant's subscriptions as read.

use chrono::Duration;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::super::charges::{plan_line, seat_line};
use super::super::coupons;
use super::super::events;
use super::super::gateway::MethodRef;
use super::super::invoices::{self, Draft, InvoiceView};
use super::super::payment_methods;
use super::super::period::period;
use super::super::state::{Event, Status};
use super::metered::member_count;
use super::record::{
    changed_meanwhile, current_version, found, live_item, live_key, live_sub, reload,
    renewal_index, sub_key, Sub, SubscriptionView, DISCOUNT, SEATS_BILLED, SEATS_LICENSED,
};
use crate::access;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{ListParams, ListResponse};
use crate::ids::new_id;
use crate::store::{Condition, Item, Query, Store, TenantId, UpdateAction, WriteOp};
use crate::time;
use crate::AppContext;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscriptionRequest {
    pub plan_id: String,
    #[serde(default)]
    pub payment_method_id: Option<String>,
    /// Platform admins only: the tenant to subscribe.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// A coupon code to apply from the first invoice on.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_-]{3,32}$", example = "SAVE20")]
    pub coupon: Option<String>,
    /// On a plan whose seats are licensed: how many to buy (at least the member count, which
    /// is the default).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100000)]
    pub seats: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubscriptionResult {
    pub subscription: SubscriptionView,
    pub invoice: Option<InvoiceView>,
}

/// Subscribes a tenant: a trial when the plan has trial days, else the first invoice charged
/// at once; a failed first charge leaves the subscription `incomplete`, granting nothing.
pub async fn create(
    ctx: &AppContext,
    caller: &Caller,
    req: CreateSubscriptionRequest,
) -> Result<SubscriptionResult, ApiError> {
    let done = create_unannounced(ctx, caller, req).await?;
    // The tenant's API rate comes from its plan: this instance reads it again at once (others
    // within `hot::API_RATE_TTL`).
    ctx.hot.forget_api_rate(&done.subscription.tenant_id);
    Ok(done)
}

async fn create_unannounced(
    ctx: &AppContext,
    caller: &Caller,
    req: CreateSubscriptionRequest,
) -> Result<SubscriptionResult, ApiError> {
    let tenant = access::target_tenant(ctx, caller, req.tenant_id.as_deref()).await?;
    let plan = current_version(ctx, &req.plan_id).await?;
    let (version, terms) = (plan.version, &plan.terms);
    let method = payment_methods::resolve(ctx, &tenant, req.payment_method_id.as_deref()).await?;
    // One trial per tenant: once used, a plan's trial days no longer apply to it.
    let trial = terms.trial_days > 0 && super::super::trials::available(ctx, &tenant).await?;
    if !trial && terms.price > Decimal::ZERO && method.is_none() {
        return Err(ApiError::validation(
            "payment_method_id",
            "add a payment method first",
        ));
    }
    let t = ctx.stores.tenant(&tenant);
    let licensed = match &terms.seats {
        Some(seats) if seats.licensed() => {
            let members = member_count(&t).await?;
            let bought = req.seats.unwrap_or(members.max(1));
            Some(super::seats::check_seats(terms, bought, members, "seats")?)
        }
        _ if req.seats.is_some() => {
            return Err(ApiError::validation(
                "seats",
                "this plan counts seats by members (or has no seat price); leave `seats` out",
            ))
        }
        _ => None,
    };
    // A credit balance is in one currency: a subscription in another would misread it.
    if let Some(billing) = t
        .get(&super::super::payment_methods::billing_key(&t))
        .await?
    {
        let held = billing.decimal("credit_balance").unwrap_or_default();
        match billing.str(super::super::invoices::CREDIT_CURRENCY) {
            Some(code) if held > Decimal::ZERO && code != terms.currency.code() => {
                return Err(ApiError::conflict(format!(
                    "the tenant holds a credit balance in {code}; subscribe to a plan in {code}"
                ))
                .field("plan_id"))
            }
            _ => {}
        }
    }
    if let Some(live) = t.get(&live_key(&t)).await? {
        return Err(ApiError::conflict(
            "the tenant already has a live subscription; change its plan instead",
        )
        .with(
            "subscription_id",
            live.str("subscription_id").unwrap_or_default(),
        ));
    }
    let now = ctx.clock.now();
    let id = new_id("sub");
    let (anchor, period_start, period_end, status) = if trial {
        let trial_end = now + Duration::days(i64::from(terms.trial_days));
        (trial_end, now, trial_end, Status::Trialing)
    } else {
        let (start, end) = period(now, terms.billing_cycle, 0);
        (now, start, end, Status::Incomplete)
    };
    let at = time::fmt(now);
    let mut item = Item::new(sub_key(&t, &id))
        .with("subscription_id", id.as_str())
        .with("tenant_id", tenant.as_str())
        .with("status", status.as_str())
        .with("plan_id", req.plan_id.as_str())
        .with("plan_version", i64::from(version))
        .with("price", terms.price)
        .with("currency", terms.currency.code())
        .with("billing_cycle", terms.billing_cycle.as_str())
        .with("anchor", time::fmt(anchor))
        .with("period_index", 0)
        .with("period_start", time::fmt(period_start))
        .with("period_end", time::fmt(period_end))
        .with("cancel_at_period_end", false)
        .with("rev", 1)
        .with("created_at", at.as_str())
        .with("updated_at", at.as_str());
    if trial {
        item = item.with("trial_end", time::fmt(period_end));
        for action in renewal_index(&tenant, &id, period_end) {
            if let UpdateAction::Set(name, value) = action {
                item = item.with(name, value);
            }
        }
    }
    if let Some(cycles) = terms.duration_cycles {
        item = item.with("duration_cycles", i64::from(cycles));
    }
    // A coupon is redeemed before the subscription exists, and given back if it is not made.
    let discount = match &req.coupon {
        Some(code) => Some(
            coupons::redeem(ctx, &tenant, code, &req.plan_id, terms.currency, now)
                .await
                .map_err(|e| e.field("coupon"))?,
        ),
        None => None,
    };
    // The first invoice (now, or at the trial's end) uses one of its invoices.
    let stored_discount = match (&discount, trial) {
        (Some(d), true) => Some(d.clone()),
        (Some(d), false) => d.used_once(),
        (None, _) => None,
    };
    if let Some(d) = &stored_discount {
        item = item.with(DISCOUNT, d.text());
    }
    // Seats are paid from the first invoice on (the trial's are free until it converts).
    if let Some(bought) = licensed {
        item = item.with(SEATS_LICENSED, bought as i64);
    }
    let seats = match (&terms.seats, trial) {
        (Some(_), false) => Some(match licensed {
            Some(bought) => bought,
            None => member_count(&t).await?,
        }),
        _ => None,
    };
    if let Some(count) = seats {
        item = item.with(SEATS_BILLED, count as i64);
    }
    let created = json!({"subscription_id": id, "plan_id": req.plan_id, "plan_name": plan.name, "status": status.as_str()});
    let tx = ctx
        .stores
        .transaction()
        .tenant(
            &t,
            WriteOp::Put {
                item: live_item(&t, &id, &req.plan_id, version),
                condition: Some(Condition::ItemNotExists),
            },
        )
        .tenant(
            &t,
            WriteOp::Put {
                item,
                condition: Some(Condition::ItemNotExists),
            },
        )
        .tenant(
            &t,
            events::op(&t, "customer.subscription.created", created, now),
        );
    let tx = if trial {
        tx.tenant(&t, super::super::trials::use_op(&t))
    } else {
        tx
    };
    let committed = tx.commit().await;
    if committed.is_err() {
        if let Some(d) = &discount {
            coupons::release(ctx, &tenant, &d.code).await?;
        }
    }
    committed.map_err(|e| match e.failed_condition_index() {
        Some(0) => ApiError::conflict("the tenant already has a live subscription"),
        Some(3) => ApiError::conflict("the tenant's trial was used meanwhile; retry"),
        _ => e.into(),
    })?;
    if trial {
        return Ok(SubscriptionResult {
            subscription: reload(ctx, &tenant, &id).await?.view()?,
            invoice: None,
        });
    }
    // First period: invoice and charge now, the seats at today's member count.
    let period = (period_start, period_end);
    let mut lines = vec![plan_line(
        &plan.name,
        terms.billing_cycle,
        terms.price,
        terms.currency,
        period,
    )];
    if let (Some(price), Some(count)) = (&terms.seats, seats) {
        lines.push(seat_line(price, count, terms.currency, period));
    }
    if let Some(d) = &discount {
        lines.extend(d.line(&lines, terms.currency));
    }
    let draft = Draft {
        subscription_id: id.clone(),
        currency: terms.currency,
        lines,
        period,
        dedupe: format!("{id}#P0"),
    };
    let invoice = invoices::issue(ctx, &tenant, draft).await?;
    let sub = reload(ctx, &tenant, &id).await?;
    let invoice = settle_first_invoice(ctx, &tenant, sub, invoice, method.as_ref()).await?;
    if seats.is_some() {
        // Members who joined while this invoice was written are billed like later joins.
        super::seats::seats_added(ctx, &tenant).await?;
    }
    Ok(SubscriptionResult {
        subscription: reload(ctx, &tenant, &id).await?.view()?,
        invoice: Some(InvoiceView::from_item(&invoice)?),
    })
}

/// Pays (or finds paid) the first invoice of an incomplete subscription and moves it on:
/// active when paid; otherwise it stays incomplete and frees the tenant's live slot.
pub(super) async fn settle_first_invoice(
    ctx: &AppContext,
    tenant: &TenantId,
    sub: Sub,
    invoice: Item,
    method: Option<&MethodRef>,
) -> Result<Item, ApiError> {
    let mut invoice = invoice;
    let mut paid = invoice.str("status") == Some("paid");
    if !paid {
        if let Some(method) = method {
            let (after, decline) = invoices::attempt_payment(ctx, tenant, &invoice, method).await?;
            invoice = after;
            paid = decline.is_none();
        }
    }
    let t = ctx.stores.tenant(tenant);
    let now = ctx.clock.now();
    let invoice_id = invoice.str("invoice_id").unwrap_or_default().to_owned();
    if paid {
        let next = sub.status.apply(Event::FirstPaymentSucceeded)?;
        let mut actions = vec![
            UpdateAction::set("status", next.as_str()),
            UpdateAction::set("latest_invoice_id", invoice_id.as_str()),
            UpdateAction::set("updated_at", time::fmt(now)),
        ];
        actions.extend(renewal_index(tenant, &sub.id, sub.period_end));
        ctx.stores
            .transaction()
            .tenant(&t, sub.write(actions))
            .tenant(
                &t,
                WriteOp::Put {
                    item: live_item(&t, &sub.id, &sub.plan_id, sub.plan_version),
                    condition: Some(Condition::Or(vec![
                        Condition::ItemNotExists,
                        Condition::eq("subscription_id", sub.id.as_str()),
                    ])),
                },
            )
            .tenant(
                &t,
                events::op(
                    &t,
                    "customer.subscription.updated",
                    json!({"subscription_id": sub.id, "status": next.as_str()}),
                    now,
                ),
            )
            .commit()
            .await
            .map_err(|e| match e.failed_condition_index() {
                Some(1) => ApiError::conflict("the tenant already has another live subscription"),
                Some(_) => ApiError::conflict("the subscription changed meanwhile; retry"),
                None => e.into(),
            })?;
    } else {
        ctx.stores
            .transaction()
            .tenant(
                &t,
                sub.write(vec![UpdateAction::set(
                    "latest_invoice_id",
                    invoice_id.as_str(),
                )]),
            )
            .tenant(
                &t,
                WriteOp::Delete {
                    key: live_key(&t),
                    condition: Some(Condition::eq("subscription_id", sub.id.as_str())),
                },
            )
            .commit()
            .await
            .map_err(changed_meanwhile)?;
    }
    Ok(invoice)
}

pub async fn current(ctx: &AppContext, caller: &Caller) -> Result<SubscriptionView, ApiError> {
    let tenant = caller.own_tenant()?.clone();
    live_sub(ctx, &tenant).await?.view()
}

pub async fn list(
    ctx: &AppContext,
    caller: &Caller,
    params: ListParams,
) -> Result<ListResponse<SubscriptionView>, ApiError> {
    let tenant = caller.own_tenant()?.clone();
    let t = ctx.stores.tenant(&tenant);
    let page = t
        .query(
            &Query::table(t.pk("SUBS"))
                .begins_with("SUB#")
                .descending()
                .limit(params.limit()?)
                .after(params.cursor),
        )
        .await?;
    ListResponse::from_page(page, |i| Sub::parse(i.clone())?.view())
}

pub async fn get(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
) -> Result<SubscriptionView, ApiError> {
    let tenant = caller.own_tenant()?.clone();
    found(ctx, &tenant, id).await?.view()
}
