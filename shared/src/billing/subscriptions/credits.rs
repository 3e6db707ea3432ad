//! A tenant's credits: its monetary credit balance (applied to invoices before any charge,
//! `invoices::totals`) and the units it holds on top of its plan (grants and bought top-ups in
//! force). Tenant admins read their own; a platform admin reads any tenant's and adjusts its
//! balance (a goodwill credit, or taking back one given by mistake), with a reason, audited.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::super::grants::{in_force_after, Grant};
use super::super::invoices::{credit_balance, CREDIT_CURRENCY};
use super::super::payment_methods::billing_key;
use super::record::{live, try_commit};
use crate::access;
use crate::audit::{self, Change};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::money::Currency;
use crate::store::{Condition, Store, TenantId, UpdateAction, WriteOp};
use crate::AppContext;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreditsView {
    /// Money the next invoices take first, before the card.
    #[schema(example = "25.00")]
    pub balance: String,
    /// The live subscription's currency (USD without one).
    #[schema(example = "USD")]
    pub currency: String,
    /// Units of metrics held on top of the plan now or later this period: goodwill grants
    /// and bought top-ups (those with an `invoice_id`).
    pub grants: Vec<Grant>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustCreditRequest {
    /// Added to the balance; negative takes credit back (never below zero). A decimal string
    /// in the tenant's currency, non-zero, at most 1,000,000 either way.
    #[schema(pattern = r"^-?\d{1,7}(\.\d{1,3})?$", example = "25.00")]
    pub amount: String,
    /// Why (kept in the audit log), 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

/// The caller's tenant's credits (tenant admins).
pub async fn credits(ctx: &AppContext, caller: &Caller) -> Result<CreditsView, ApiError> {
    credits_of(ctx, &access::own_admin_tenant(caller)?).await
}

/// A tenant's credits, for a platform admin.
pub async fn admin_credits(
    ctx: &AppContext,
    caller: &Caller,
    tenant_id: &str,
) -> Result<CreditsView, ApiError> {
    let tenant = access::admin_named_tenant(ctx, caller, tenant_id).await?;
    credits_of(ctx, &tenant).await
}

async fn credits_of(ctx: &AppContext, tenant: &TenantId) -> Result<CreditsView, ApiError> {
    let balance = credit_balance(ctx, tenant).await?;
    let sub = live(ctx, tenant).await?;
    let currency = currency_of(sub.as_ref());
    let grants = sub
        .map(|s| in_force_after(&s.grants, ctx.clock.now()))
        .unwrap_or_default();
    Ok(CreditsView {
        balance: currency.format(balance),
        currency: currency.code().to_owned(),
        grants,
    })
}

/// A platform admin adds to (or takes back from) a tenant's credit balance.
pub async fn adjust_credit(
    ctx: &AppContext,
    caller: &Caller,
    tenant_id: &str,
    req: AdjustCreditRequest,
) -> Result<CreditsView, ApiError> {
    let tenant = access::admin_named_tenant(ctx, caller, tenant_id).await?;
    let reason = crate::text::check_reason(&req.reason, "reason")?;
    // The balance is in the subscription's currency: with none, there is no currency to give
    // credit in.
    let currency = live(ctx, &tenant)
        .await?
        .map(|s| s.currency)
        .ok_or_else(|| {
            ApiError::conflict(
                "the tenant has no live subscription; credit is given in its currency",
            )
        })?;
    let text = req.amount.trim();
    let (negative, magnitude) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if magnitude.starts_with(['+', '-']) {
        return Err(ApiError::validation(
            "amount",
            "a decimal string, like \"25.00\"",
        ));
    }
    let magnitude = currency.parse_amount(magnitude, "amount")?;
    if magnitude.is_zero() || magnitude > Decimal::from(1_000_000) {
        return Err(ApiError::validation(
            "amount",
            "a non-zero amount, at most 1000000 either way",
        ));
    }
    let delta = if negative { -magnitude } else { magnitude };
    let t = ctx.stores.tenant(&tenant);
    let now = ctx.clock.now();
    // Conditional on the balance read, so an invoice applying credit meanwhile is never
    // overwritten and the balance never goes below zero.
    for _ in 0..10 {
        let stored = t
            .get(&billing_key(&t))
            .await?
            .and_then(|b| b.decimal("credit_balance"));
        let old = stored.unwrap_or_default();
        let new = old + delta;
        if new < Decimal::ZERO {
            return Err(ApiError::validation(
                "amount",
                format!(
                    "the balance is {}; it cannot go below zero",
                    currency.format(old)
                ),
            ));
        }
        let condition = match stored {
            Some(old) => Condition::eq("credit_balance", old),
            None => Condition::not_exists("credit_balance"),
        };
        let write = WriteOp::Update {
            key: billing_key(&t),
            actions: vec![
                UpdateAction::set("credit_balance", new),
                UpdateAction::set(CREDIT_CURRENCY, currency.code()),
            ],
            condition: Some(condition),
        };
        let change = Change {
            action: "tenant.credit_adjusted",
            resource_type: "tenant",
            resource_id: tenant.as_str(),
            before: Some(json!({"balance": currency.format(old)})),
            after: Some(json!({"balance": currency.format(new), "amount": currency.format(delta)})),
            reason: Some(reason.as_str()),
        };
        let event = json!({"amount": currency.format(delta), "balance": currency.format(new), "currency": currency.code()});
        let audited = audit::tenant_op(&t, caller, change, now);
        match try_commit(
            ctx,
            &t,
            write,
            ("customer.balance.adjusted", event),
            vec![audited],
            now,
        )
        .await
        {
            Ok(()) => return credits_of(ctx, &tenant).await,
            Err(e) if e.is_condition_failure() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict("the balance is busy; retry"))
}

/// The currency a tenant's balance is in: its live subscription's (USD without one).
fn currency_of(sub: Option<&super::record::Sub>) -> Currency {
    sub.map(|s| s.currency)
        .unwrap_or_else(|| Currency::parse("USD", "currency").expect("a known currency"))
}
