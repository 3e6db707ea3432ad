//! A tenant admin applies a coupon to the live subscription: redeemed on the platform's side
//! (`billing::coupons`), then written on the subscription in the tenant's transaction with
//! its event; when that write fails, the redemption is given back.

use serde::Deserialize;
use serde_json::json;

use super::super::coupons;
use super::record::{commit, found, reload, SubscriptionView, DISCOUNT};
use crate::access;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::store::UpdateAction;
use crate::time;
use crate::AppContext;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyCouponRequest {
    #[schema(pattern = "^[A-Za-z0-9_-]{3,32}$", example = "SAVE20")]
    pub code: String,
}

pub async fn apply_coupon(
    ctx: &AppContext,
    caller: &Caller,
    id: &str,
    req: ApplyCouponRequest,
) -> Result<SubscriptionView, ApiError> {
    let tenant = access::own_admin_tenant(caller)?;
    let sub = found(ctx, &tenant, id).await?;
    if !sub.status.is_live() {
        return Err(ApiError::conflict(format!(
            "a {} subscription takes no coupon",
            sub.status.as_str()
        )));
    }
    if let Some(current) = &sub.discount {
        return Err(ApiError::conflict(format!(
            "coupon {} is applied already; one coupon at a time",
            current.code
        ))
        .field("code"));
    }
    let now = ctx.clock.now();
    let discount =
        coupons::redeem(ctx, &tenant, &req.code, &sub.plan_id, sub.currency, now).await?;
    let t = ctx.stores.tenant(&tenant);
    let write = sub.write(vec![
        UpdateAction::set(DISCOUNT, discount.text()),
        UpdateAction::set("updated_at", time::fmt(now)),
    ]);
    let event = json!({"subscription_id": sub.id, "coupon": discount.code});
    let written = commit(
        ctx,
        &t,
        write,
        ("customer.discount.created", event),
        Vec::new(),
        now,
    )
    .await;
    if let Err(e) = written {
        coupons::release(ctx, &tenant, &discount.code).await?;
        return Err(e);
    }
    reload(ctx, &tenant, id).await?.view()
}
