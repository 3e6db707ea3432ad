//! Paying an open invoice by hand: the first invoice of an incomplete subscription activates
//! it; a past-due one's recovers it.

use serde::Deserialize;

use super::super::invoices::{self, InvoiceView};
use super::super::payment_methods;
use super::super::state::Status;
use super::record::load;
use super::renewal::recover;
use super::subscribe::settle_first_invoice;
use crate::access;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::AppContext;

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayRequest {
    #[serde(default)]
    pub payment_method_id: Option<String>,
}

/// Retries an open invoice with the default or given method. Paying the first invoice of an
/// incomplete subscription activates it; paying a past-due one recovers it.
pub async fn pay_invoice(
    ctx: &AppContext,
    caller: &Caller,
    invoice_id: &str,
    req: PayRequest,
) -> Result<InvoiceView, ApiError> {
    let tenant = access::own_admin_tenant(caller)?;
    let invoice = invoices::load_by_id(ctx, &tenant, invoice_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such invoice"))?;
    if invoice.str("status") != Some("open") {
        return Err(ApiError::conflict(format!(
            "the invoice is {}, not open",
            invoice.str("status").unwrap_or("unknown")
        )));
    }
    let method = payment_methods::resolve(ctx, &tenant, req.payment_method_id.as_deref())
        .await?
        .ok_or_else(|| ApiError::validation("payment_method_id", "add a payment method first"))?;
    let sub_id = invoice.required_str("subscription_id")?.to_owned();
    let sub = load(ctx, &tenant, &sub_id).await?;
    match sub {
        Some(sub) if sub.status == Status::Incomplete => {
            let paid = settle_first_invoice(ctx, &tenant, sub, invoice, Some(&method)).await?;
            return InvoiceView::from_item(&paid);
        }
        _ => {}
    }
    let (after, decline) = invoices::attempt_payment(ctx, &tenant, &invoice, &method).await?;
    if decline.is_none() {
        if let Some(sub) = load(ctx, &tenant, &sub_id).await? {
            if sub.status == Status::PastDue {
                recover(ctx, &tenant, &sub).await?;
            }
        }
    }
    InvoiceView::from_item(&after)
}
