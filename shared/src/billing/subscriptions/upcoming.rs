//! The upcoming invoice: what the tenant's next invoice would be if its period ended now —
//! base and seats for the next period, the usage counted so far at this version's prices,
//! the credit balance applied — computed by the renewal's own code (`metered`), so the
//! preview and the bill cannot drift apart.

use serde::Serialize;

use super::super::invoices::{credit_balance, totals, LineView, Totals};
use super::metered::{next_invoice, usage_lines};
use super::record::{live_sub, load_version};
use crate::access;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::store::TenantId;
use crate::time;
use crate::AppContext;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UpcomingInvoiceView {
    pub subscription_id: String,
    #[schema(example = "USD")]
    pub currency: String,
    /// When it is due to be issued: the end of the current period.
    pub issue_at: String,
    /// The period it bills in advance (the current one for a final invoice).
    pub period_start: String,
    pub period_end: String,
    /// The last invoice of a subscription ending at period end (cancelled, or a fixed-duration
    /// plan's last cycle): its usage only.
    pub is_final: bool,
    pub lines: Vec<LineView>,
    #[schema(example = "109.00")]
    pub subtotal: String,
    pub credit_applied: String,
    pub total: String,
    pub amount_due: String,
}

/// The caller's tenant's upcoming invoice (tenant admins).
pub async fn upcoming(ctx: &AppContext, caller: &Caller) -> Result<UpcomingInvoiceView, ApiError> {
    upcoming_of(ctx, &access::own_admin_tenant(caller)?).await
}

/// A tenant's upcoming invoice, for a platform admin.
pub async fn admin_upcoming(
    ctx: &AppContext,
    caller: &Caller,
    tenant_id: &str,
) -> Result<UpcomingInvoiceView, ApiError> {
    let tenant = access::admin_named_tenant(ctx, caller, tenant_id).await?;
    upcoming_of(ctx, &tenant).await
}

async fn upcoming_of(ctx: &AppContext, tenant: &TenantId) -> Result<UpcomingInvoiceView, ApiError> {
    let sub = live_sub(ctx, tenant).await?;
    let t = ctx.stores.tenant(tenant);
    // Its last period: cancelled at its end, or a fixed-duration plan's last cycle.
    let last = sub.cancel_at_period_end
        || (!sub.trialing
            && sub
                .duration_cycles
                .is_some_and(|cycles| i64::from(sub.period_index) + 1 >= cycles));
    let (lines, period) = if last {
        let terms = load_version(ctx, &sub.plan_id, sub.plan_version).await?;
        let lines = usage_lines(&t, &sub, &terms).await?;
        (lines, (sub.period_start, sub.period_end))
    } else {
        let next = next_invoice(ctx, &t, &sub).await?;
        (next.lines, (next.start, next.end))
    };
    let Totals {
        lines,
        subtotal,
        applied,
        total,
        amount_due,
        ..
    } = totals(lines, credit_balance(ctx, tenant).await?);
    let money = |amount| sub.currency.format(amount);
    Ok(UpcomingInvoiceView {
        subscription_id: sub.id.clone(),
        currency: sub.currency.code().to_owned(),
        issue_at: time::fmt(sub.period_end),
        period_start: time::fmt(period.0),
        period_end: time::fmt(period.1),
        is_final: last,
        lines: lines.iter().map(|l| l.view(sub.currency)).collect(),
        subtotal: money(subtotal),
        credit_applied: money(applied),
        total: money(total),
        amount_due: money(amount_due),
    })
}
