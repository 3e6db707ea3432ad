//! A tenant admin buys a top-up: packs of units of a metric that the plan version sells, on
//! top of the plan for the rest of the billing period. The invoice is charged at once (credit
//! balance first, then the card); only a paid invoice becomes units, written on the live
//! subscription as a grant (`billing::grants`) with its event and audit entry. A decline or
//! no card voids the invoice and grants nothing.
//!
//! A retry is the same purchase: with an `Idempotency-Key`, the invoice's key comes from it,
//! so a request cut off after the charge finds the paid invoice on its retry and writes the
//! units (the grant's id is the invoice's, so never twice); one cut off before, an open
//! invoice it charges again under the gateway's idempotency.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::super::grants::{in_force_after, Grant};
use super::super::invoices::{
    self, Draft, InvoiceView, Line, LineDetail, LineKind, CREDIT_CURRENCY,
};
use super::super::payment_methods;
use super::super::payment_methods::billing_key;
use super::super::state::Status;
use super::record::{found, try_commit, GRANTS};
use crate::access;
use crate::audit::{self, Change};
use crate::auth::tokens::sha256_hex;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::ids::new_id;
use crate::store::{Item, TenantId, UpdateAction, WriteOp};
use crate::time;
use crate::AppContext;

/// Grants and top-ups a subscription holds at once (the stored list stays small).
const MAX_GRANTS: usize = 50;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUpRequest {
    /// A metric the plan sells top-ups of (`top_ups` on its version).
    #[schema(pattern = "^[a-z][a-z0-9_]{0,63}$", example = "api_calls")]
    pub metric: String,
    /// How many packs; 1 by default.
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 100, default = 1)]
    pub packs: u32,
    /// The card to charge; the default one if absent.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub payment_method_id: Option<String>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TopUpResult {
    /// The units bought, in force until `expires_at` (the period's end).
    pub grant: Grant,
    /// The paid invoice.
    pub invoice: InvoiceView,
}

pub async fn buy_top_up(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
    req: TopUpRequest,
    idempotency_key: Option<&str>,
) -> Result<TopUpResult, ApiError> {
    let tenant = access::own_admin_tenant(caller)?;
    crate::plans::policies::check_metric(&req.metric)?;
    if !(1..=100).contains(&req.packs) {
        return Err(ApiError::validation("packs", "1 to 100 packs"));
    }
    let sub = found(ctx, &tenant, id).await?;
    if sub.status != Status::Active || sub.trialing {
        return Err(ApiError::conflict(
            "top-ups are bought on an active, paid subscription (not in a trial or past due)",
        ));
    }
    let now = ctx.clock.now();
    if sub.period_end <= now {
        return Err(ApiError::conflict(
            "this period has ended and is being renewed; buy in the new period",
        ));
    }
    let terms = super::record::load_version(ctx, &sub.plan_id, sub.plan_version).await?;
    let pack = terms
        .top_up(&req.metric)
        .ok_or_else(|| ApiError::validation("metric", "the plan sells no top-up of this metric"))?;
    let units = pack.units * u64::from(req.packs);
    let line = Line {
        kind: LineKind::TopUp,
        description: format!(
            "Top-up: {units} {} ({} × {} for {})",
            req.metric,
            req.packs,
            pack.units,
            sub.currency.format(pack.price)
        ),
        amount: sub
            .currency
            .round(pack.price * rust_decimal::Decimal::from(req.packs)),
        period: Some((now, sub.period_end)),
        detail: Some(LineDetail {
            metric: req.metric.clone(),
            quantity: units,
            included: 0,
            billable: units,
            granted: 0,
            unit_price: Some(sub.currency.format(pack.price)),
            price: None,
        }),
    };
    if in_force_after(&sub.grants, now).len() >= MAX_GRANTS {
        return Err(ApiError::conflict(
            "the subscription holds 50 grants and top-ups in force; buy more after the period ends",
        ));
    }
    let draft = |dedupe: String| Draft {
        subscription_id: sub.id.clone(),
        currency: sub.currency,
        lines: vec![line.clone()],
        period: (now, sub.period_end),
        dedupe,
    };
    let invoice = match idempotency_key {
        // The key's purchase: its first attempt not voided by a decline (a retry after a
        // decline is a new attempt, numbered, so retrying that retry is the same attempt).
        Some(key) => {
            let base = &sha256_hex(&format!("{}\n{key}", sub.id))[..24];
            let mut found = None;
            for attempt in 1..=20 {
                let dedupe = format!("{}#topup#{base}#{attempt}", sub.id);
                let invoice = invoices::issue(ctx, &tenant, draft(dedupe)).await?;
                if invoice.str("status") != Some("void") {
                    found = Some(invoice);
                    break;
                }
            }
            found.ok_or_else(|| {
                ApiError::conflict("this Idempotency-Key was declined 20 times; use a new one")
            })?
        }
        None => {
            let dedupe = format!("{}#topup#{}", sub.id, new_id("topup"));
            invoices::issue(ctx, &tenant, draft(dedupe)).await?
        }
    };
    // What the invoice bought decides the units, never the request: a reused key asking for
    // something else is refused before anything is charged.
    let view = InvoiceView::from_item(&invoice)?;
    let bought = view
        .lines
        .first()
        .and_then(|l| Some((l.detail.as_ref()?, l.period_end.as_deref()?)));
    let Some((detail, until)) = bought else {
        return Err(ApiError::internal("top-up invoice without its line"));
    };
    if detail.metric != req.metric || detail.quantity != units {
        return Err(ApiError::validation(
            "packs",
            "this Idempotency-Key bought another top-up; use a new key",
        ));
    }
    let expires_at = time::parse(until).ok_or_else(|| ApiError::internal("bad line period"))?;
    if expires_at <= now {
        return Err(ApiError::conflict(
            "this Idempotency-Key's purchase belongs to an earlier period; use a new key",
        ));
    }
    let invoice = match invoice.str("status") {
        Some("open") => charge_now(ctx, &tenant, invoice, req.payment_method_id.as_deref()).await?,
        _ => invoice,
    };
    let invoice_id = invoice.required_str("invoice_id")?.to_owned();
    let grant = Grant {
        id: format!("grant_{invoice_id}"),
        metric: detail.metric.clone(),
        units: detail.quantity,
        granted_at: time::fmt(now),
        expires_at: time::fmt(expires_at),
        reason: format!(
            "Top-up bought: {} × {} {}",
            req.packs, pack.units, req.metric
        ),
        invoice_id: Some(invoice_id),
    };
    let refund = invoice.decimal("subtotal").unwrap_or_default();
    let grant = add_grant(ctx, caller, &tenant, id, grant, refund).await?;
    Ok(TopUpResult {
        grant,
        invoice: InvoiceView::from_item(&invoice)?,
    })
}

/// Charges the open top-up invoice; no card or a decline voids it (402 / 422), so nothing is
/// left to pay for units never given.
async fn charge_now(
    ctx: &AppContext,
    tenant: &TenantId,
    invoice: Item,
    method_id: Option<&str>,
) -> Result<Item, ApiError> {
    let method = match payment_methods::resolve(ctx, tenant, method_id).await {
        Ok(Some(method)) => method,
        Ok(None) => {
            invoices::close(ctx, tenant, &invoice, "void").await?;
            return Err(ApiError::validation(
                "payment_method_id",
                "add a payment method first",
            ));
        }
        Err(e) => {
            invoices::close(ctx, tenant, &invoice, "void").await?;
            return Err(e);
        }
    };
    let (after, decline) = invoices::attempt_payment(ctx, tenant, &invoice, &method).await?;
    if let Some((code, message)) = decline {
        invoices::close(ctx, tenant, &after, "void").await?;
        return Err(ApiError::new(
            axum::http::StatusCode::PAYMENT_REQUIRED,
            "payment-declined",
            "Payment declined",
        )
        .detail(format!("{message} No units were added."))
        .with("code", code)
        .with("invoice_id", invoice.str("invoice_id").unwrap_or_default()));
    }
    Ok(after)
}

/// Writes a paid top-up's grant on the live subscription (once: its id is the invoice's),
/// going round again, with a pause, when another change wins the race (a plan change holds
/// the subscription for a few seconds at most). If the period ended while it was paid, the
/// units can no longer be used: the grant is written expired, as a marker, and what was paid
/// goes to the credit balance in the same transaction.
async fn add_grant(
    ctx: &AppContext,
    caller: &Caller,
    tenant: &TenantId,
    id: &str,
    grant: Grant,
    paid: rust_decimal::Decimal,
) -> Result<Grant, ApiError> {
    let t = ctx.stores.tenant(tenant);
    for attempt in 0..40u64 {
        if attempt > 0 {
            let pause = 50 + rand::random::<u64>() % (50 * attempt.min(8));
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        }
        let now = ctx.clock.now();
        let sub = found(ctx, tenant, id).await?;
        if let Some(done) = sub.grants.iter().find(|g| g.id == grant.id) {
            return Ok(done.clone());
        }
        let lapsed = time::parse(&grant.expires_at).is_some_and(|end| end <= now);
        let mut grants = in_force_after(&sub.grants, now);
        grants.push(grant.clone());
        let write = sub.write(vec![
            UpdateAction::set(
                GRANTS,
                serde_json::to_string(&grants).expect("serializable"),
            ),
            UpdateAction::set("updated_at", time::fmt(now)),
        ]);
        let change = Change {
            action: "subscription.top_up_bought",
            resource_type: "subscription",
            resource_id: &sub.id,
            before: None,
            after: Some(json!(grant)),
            reason: None,
        };
        let mut also = vec![audit::tenant_op(&t, caller, change, now)];
        if lapsed && paid > rust_decimal::Decimal::ZERO {
            also.push(WriteOp::Update {
                key: billing_key(&t),
                actions: vec![
                    UpdateAction::add("credit_balance", paid),
                    UpdateAction::set(CREDIT_CURRENCY, sub.currency.code()),
                ],
                condition: None,
            });
        }
        let event =
            json!({"subscription_id": sub.id, "grant": grant, "refunded_to_balance": lapsed});
        match try_commit(
            ctx,
            &t,
            write,
            ("customer.top_up.created", event),
            also,
            now,
        )
        .await
        {
            Ok(()) if lapsed => {
                return Err(ApiError::conflict(
                    "the period ended while the top-up was paid; what was paid is in the credit balance",
                ))
            }
            Ok(()) => {
                // The hot path's cached limits are a revision behind now.
                ctx.hot.forget_limits(tenant.as_str());
                return Ok(grant);
            }
            Err(e) if e.is_condition_failure() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict(
        "the subscription is busy; the top-up is paid: retry with the same Idempotency-Key to add its units",
    ))
}
