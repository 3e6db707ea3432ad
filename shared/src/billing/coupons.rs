//! Coupons: what platform admins create (percent or an amount off; once, for N invoices or
//! forever; a redemption limit, an expiry, the plans it is for), list, read and switch off,
//! each audited; and redeeming one for a tenant. A coupon lives on the platform's side
//! (`COUPON#<CODE>`), so a redemption is counted there, by a conditional increment beside a
//! marker for the tenant in one platform transaction: racing redemptions never pass the limit,
//! and a tenant redeems a coupon once. The subscription's side is written by
//! `subscriptions::coupon` in the tenant's own transaction; when that fails the redemption is
//! released.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::discount::{Discount, Off};
use crate::audit::{self, Change};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{ListParams, ListResponse};
use crate::money::Currency;
use crate::store::{
    AttrValue, Condition, Item, Key, Query, Store, TenantId, UpdateAction, WriteOp,
};
use crate::time;
use crate::AppContext;

const COUPON_INDEX: &str = "IDX#COUPONS";

fn coupon_key(code: &str) -> Key {
    Key::new(format!("COUPON#{code}"), "META")
}

fn redeemed_key(code: &str, tenant: &TenantId) -> Key {
    Key::new(format!("COUPON#{code}"), format!("REDEEMED#{tenant}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CouponDuration {
    /// The next invoice only.
    Once,
    /// `duration_cycles` invoices.
    Repeating,
    /// Every invoice.
    Forever,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCouponRequest {
    /// What tenants type: 3 to 32 of A-Z, 0-9, `-` and `_` (case-insensitive, kept upper-case).
    #[schema(pattern = "^[A-Za-z0-9_-]{3,32}$", example = "SAVE20")]
    pub code: String,
    #[serde(default)]
    #[schema(max_length = 80)]
    pub name: Option<String>,
    /// Percent off, more than 0 and at most 100, as a decimal string; or give `amount_off`.
    #[serde(default)]
    #[schema(pattern = r"^\d{1,3}(\.\d{1,2})?$", example = "20")]
    pub percent_off: Option<String>,
    /// An amount off in `currency`, as a decimal string; or give `percent_off`.
    #[serde(default)]
    #[schema(pattern = r"^\d{1,9}(\.\d{1,3})?$", example = "10.00")]
    pub amount_off: Option<String>,
    /// With `amount_off`: ISO 4217.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z]{3}$", example = "USD")]
    pub currency: Option<String>,
    pub duration: CouponDuration,
    /// With `repeating`: how many invoices, 1 to 120.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 120)]
    pub duration_cycles: Option<u32>,
    /// How many tenants may redeem it; absent: no limit.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub max_redemptions: Option<u64>,
    /// After this time (RFC 3339) it can no longer be redeemed.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// The plans it is for; empty or absent: any plan.
    #[serde(default)]
    #[schema(max_items = 50)]
    pub plan_ids: Vec<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchCouponRequest {
    /// `false` stops new redemptions (applied ones keep running).
    pub active: Option<bool>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CouponView {
    pub code: String,
    pub name: String,
    pub percent_off: Option<String>,
    pub amount_off: Option<String>,
    pub currency: Option<String>,
    pub duration: CouponDuration,
    pub duration_cycles: Option<u32>,
    pub max_redemptions: Option<u64>,
    pub redemptions: u64,
    pub expires_at: Option<String>,
    pub plan_ids: Vec<String>,
    pub active: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl CouponView {
    fn from_item(item: &Item) -> Result<Self, ApiError> {
        let currency = item.str("currency").map(str::to_owned);
        let amount_off = match (item.decimal("amount_off"), &currency) {
            (Some(amount), Some(code)) => Some(
                Currency::parse(code, "currency")
                    .map_err(|e| ApiError::internal(e.detail))?
                    .format(amount),
            ),
            _ => None,
        };
        let plan_ids = match item.get("plan_ids") {
            Some(AttrValue::L(ids)) => ids
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        Ok(Self {
            code: item.required_str("code")?.to_owned(),
            name: item.str("name").unwrap_or_default().to_owned(),
            percent_off: item
                .decimal("percent_off")
                .map(|p| p.normalize().to_string()),
            amount_off,
            currency,
            duration: serde_json::from_value(serde_json::json!(item.required_str("duration")?))
                .map_err(ApiError::internal)?,
            duration_cycles: item.i64("duration_cycles").map(|n| n as u32),
            max_redemptions: item.i64("max_redemptions").map(|n| n as u64),
            redemptions: item.i64("redemptions").unwrap_or(0).max(0) as u64,
            // Not `expires_at`: the store keeps that name for items that expire (TTL).
            expires_at: item.str("redeem_by").map(str::to_owned),
            plan_ids,
            active: item.bool("active").unwrap_or(false),
            created_at: item.required_str("created_at")?.to_owned(),
            updated_at: item.required_str("updated_at")?.to_owned(),
        })
    }
}

fn check_code(raw: &str) -> Result<String, ApiError> {
    let code = raw.trim().to_ascii_uppercase();
    let ok = (3..=32).contains(&code.len())
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(code)
    } else {
        Err(ApiError::validation(
            "code",
            "3 to 32 of letters, digits, - and _",
        ))
    }
}

fn json_of(view: &CouponView) -> serde_json::Value {
    serde_json::to_value(view).unwrap_or_default()
}

pub async fn create(
    ctx: &AppContext,
    caller: &Caller,
    req: CreateCouponRequest,
) -> Result<CouponView, ApiError> {
    caller.require_platform_admin()?;
    let code = check_code(&req.code)?;
    let name = req.name.as_deref().unwrap_or_default().trim().to_owned();
    if name.chars().count() > 80 || name.chars().any(char::is_control) {
        return Err(ApiError::validation("name", "up to 80 characters"));
    }
    let now = ctx.clock.now();
    let at = time::fmt(now);
    let mut item = Item::new(coupon_key(&code))
        .with("code", code.as_str())
        .with("name", name.as_str())
        .with("redemptions", 0)
        .with("active", true)
        .with("created_at", at.as_str())
        .with("updated_at", at.as_str())
        .with_gsi1(COUPON_INDEX, code.as_str());
    match (&req.percent_off, &req.amount_off) {
        (Some(percent), None) => {
            if req.currency.is_some() {
                return Err(ApiError::validation(
                    "currency",
                    "a percent-off coupon has no currency",
                ));
            }
            let p: Decimal = percent
                .trim()
                .parse()
                .ok()
                .filter(|p: &Decimal| {
                    *p > Decimal::ZERO && *p <= Decimal::from(100) && p.normalize().scale() <= 2
                })
                .ok_or_else(|| {
                    ApiError::validation("percent_off", "more than 0 and at most 100, like \"20\"")
                })?;
            item = item.with("percent_off", p);
        }
        (None, Some(amount)) => {
            let currency = Currency::parse(
                req.currency.as_deref().ok_or_else(|| {
                    ApiError::validation("currency", "an amount-off coupon needs its currency")
                })?,
                "currency",
            )?;
            let amount = currency.parse_amount(amount, "amount_off")?;
            if amount.is_zero() {
                return Err(ApiError::validation("amount_off", "more than zero"));
            }
            item = item
                .with("amount_off", amount)
                .with("currency", currency.code());
        }
        _ => {
            return Err(ApiError::validation(
                "percent_off",
                "give percent_off or amount_off, one of them",
            ))
        }
    }
    item = item.with(
        "duration",
        match req.duration {
            CouponDuration::Once => "once",
            CouponDuration::Repeating => "repeating",
            CouponDuration::Forever => "forever",
        },
    );
    match (req.duration, req.duration_cycles) {
        (CouponDuration::Repeating, Some(n)) if (1..=120).contains(&n) => {
            item = item.with("duration_cycles", i64::from(n));
        }
        (CouponDuration::Repeating, _) => {
            return Err(ApiError::validation(
                "duration_cycles",
                "a repeating coupon runs 1 to 120 invoices",
            ))
        }
        (_, Some(_)) => {
            return Err(ApiError::validation(
                "duration_cycles",
                "only a repeating coupon has cycles",
            ))
        }
        _ => {}
    }
    if let Some(max) = req.max_redemptions {
        if max == 0 || max > 1_000_000_000 {
            return Err(ApiError::validation(
                "max_redemptions",
                "1 to 1000000000, or absent for no limit",
            ));
        }
        item = item.with("max_redemptions", max as i64);
    }
    if let Some(expires) = &req.expires_at {
        let at = time::parse(expires)
            .ok_or_else(|| ApiError::validation("expires_at", "an RFC 3339 time"))?;
        if at <= now {
            return Err(ApiError::validation("expires_at", "a time in the future"));
        }
        item = item.with("redeem_by", time::fmt(at));
    }
    if req.plan_ids.len() > 50 {
        return Err(ApiError::validation("plan_ids", "at most 50 plans"));
    }
    for id in &req.plan_ids {
        if crate::plans::get(ctx, Some(caller), id).await.is_err() {
            return Err(ApiError::validation("plan_ids", format!("no plan {id:?}")));
        }
    }
    if !req.plan_ids.is_empty() {
        item = item.with(
            "plan_ids",
            AttrValue::L(
                req.plan_ids
                    .iter()
                    .map(|id| AttrValue::S(id.clone()))
                    .collect(),
            ),
        );
    }
    let view = CouponView::from_item(&item)?;
    let change = Change {
        action: "coupon.created",
        resource_type: "coupon",
        resource_id: &code,
        before: None,
        after: Some(json_of(&view)),
        reason: None,
    };
    ctx.stores
        .transaction()
        .platform(WriteOp::Put {
            item,
            condition: Some(Condition::ItemNotExists),
        })
        .platform(audit::platform_op(caller, change, now))
        .commit()
        .await
        .map_err(|e| match e.failed_condition_index() {
            Some(0) => ApiError::conflict("a coupon with this code exists").field("code"),
            _ => e.into(),
        })?;
    Ok(view)
}

async fn load(ctx: &AppContext, code: &str) -> Result<Option<Item>, ApiError> {
    let Ok(code) = check_code(code) else {
        return Ok(None);
    };
    Ok(ctx.stores.platform().get(&coupon_key(&code)).await?)
}

pub async fn get(ctx: &AppContext, caller: &Caller, code: &str) -> Result<CouponView, ApiError> {
    caller.require_platform_admin()?;
    let item = load(ctx, code)
        .await?
        .ok_or_else(|| ApiError::not_found("no such coupon"))?;
    CouponView::from_item(&item)
}

pub async fn list(
    ctx: &AppContext,
    caller: &Caller,
    params: ListParams,
) -> Result<ListResponse<CouponView>, ApiError> {
    caller.require_platform_admin()?;
    let page = ctx
        .stores
        .platform()
        .query(
            &Query::gsi1(COUPON_INDEX)
                .limit(params.limit()?)
                .after(params.cursor),
        )
        .await?;
    ListResponse::from_page(page, CouponView::from_item)
}

/// Switches a coupon on or off for new redemptions; audited.
pub async fn patch(
    ctx: &AppContext,
    caller: &Caller,
    code: &str,
    req: PatchCouponRequest,
) -> Result<CouponView, ApiError> {
    let before = get(ctx, caller, code).await?;
    let Some(active) = req.active.filter(|a| *a != before.active) else {
        return Ok(before);
    };
    let now = ctx.clock.now();
    let mut after = before.clone();
    after.active = active;
    after.updated_at = time::fmt(now);
    let change = Change {
        action: if active {
            "coupon.activated"
        } else {
            "coupon.deactivated"
        },
        resource_type: "coupon",
        resource_id: &before.code,
        before: Some(json_of(&before)),
        after: Some(json_of(&after)),
        reason: None,
    };
    ctx.stores
        .transaction()
        .platform(WriteOp::Update {
            key: coupon_key(&before.code),
            actions: vec![
                UpdateAction::set("active", active),
                UpdateAction::set("updated_at", after.updated_at.as_str()),
            ],
            condition: Some(Condition::eq("active", before.active)),
        })
        .platform(audit::platform_op(caller, change, now))
        .commit()
        .await
        .map_err(|e| {
            if e.is_condition_failure() {
                ApiError::conflict("the coupon changed meanwhile; retry")
            } else {
                e.into()
            }
        })?;
    Ok(after)
}

fn already_redeemed() -> ApiError {
    ApiError::conflict("this tenant has redeemed this coupon already")
        .field("code")
        .with("code", "coupon_redeemed")
}

fn invalid(why: &str) -> ApiError {
    ApiError::validation("code", why.to_owned())
}

/// Redeems `code` for `tenant`'s subscription on `plan_id` in `currency`: checks it, counts
/// the redemption (once per tenant, ever: a second attempt, racing or later, is a 409; a
/// redemption whose subscription write failed is given back by [`release`]) and returns the
/// discount to write on the subscription.
pub async fn redeem(
    ctx: &AppContext,
    tenant: &TenantId,
    code: &str,
    plan_id: &str,
    currency: Currency,
    now: DateTime<Utc>,
) -> Result<Discount, ApiError> {
    let item = load(ctx, code)
        .await?
        .ok_or_else(|| invalid("no such coupon"))?;
    let view = CouponView::from_item(&item)?;
    let code = view.code.clone();
    let platform = ctx.stores.platform();
    let discount = Discount {
        code: code.clone(),
        off: match (item.decimal("percent_off"), item.decimal("amount_off")) {
            (Some(p), _) => Off::Percent(p),
            (None, Some(a)) => Off::Amount(a),
            _ => return Err(ApiError::internal("coupon without its discount")),
        },
        cycles_left: match view.duration {
            CouponDuration::Once => Some(1),
            CouponDuration::Repeating => Some(view.duration_cycles.unwrap_or(1)),
            CouponDuration::Forever => None,
        },
    };
    // Once per tenant, for good: a coupon used up (or switched off, or expired) is not
    // applied again by asking twice.
    if platform.get(&redeemed_key(&code, tenant)).await?.is_some() {
        return Err(already_redeemed());
    }
    if !view.active {
        return Err(invalid("this coupon is no longer offered"));
    }
    if view
        .expires_at
        .as_deref()
        .and_then(time::parse)
        .is_some_and(|at| at <= now)
    {
        return Err(invalid("this coupon has expired"));
    }
    if !view.plan_ids.is_empty() && !view.plan_ids.iter().any(|p| p == plan_id) {
        return Err(invalid("this coupon is not for this plan"));
    }
    if view
        .currency
        .as_deref()
        .is_some_and(|c| c != currency.code())
    {
        return Err(invalid("this coupon is in another currency"));
    }
    let mut conditions = vec![Condition::eq("active", true)];
    if let Some(max) = view.max_redemptions {
        conditions.push(Condition::lt("redemptions", max as i64));
    }
    let counted = ctx
        .stores
        .transaction()
        .platform(WriteOp::Update {
            key: coupon_key(&code),
            actions: vec![UpdateAction::add("redemptions", 1)],
            condition: Some(Condition::And(conditions)),
        })
        .platform(WriteOp::Put {
            item: Item::new(redeemed_key(&code, tenant)).with("redeemed_at", time::fmt(now)),
            condition: Some(Condition::ItemNotExists),
        })
        .commit()
        .await;
    match counted {
        Ok(()) => Ok(discount),
        // Redeemed by this tenant meanwhile (a racing request of its own): that one has it.
        Err(e) if e.failed_condition_index() == Some(1) => Err(already_redeemed()),
        Err(e) if e.failed_condition_index() == Some(0) => Err(ApiError::conflict(
            "this coupon has been redeemed as often as it may be",
        )
        .field("code")
        .with("code", "coupon_exhausted")),
        Err(e) => Err(e.into()),
    }
}

/// Gives a redemption back (its subscription write failed), so it counts against nobody.
pub async fn release(ctx: &AppContext, tenant: &TenantId, code: &str) -> Result<(), ApiError> {
    let released = ctx
        .stores
        .transaction()
        .platform(WriteOp::Delete {
            key: redeemed_key(code, tenant),
            condition: Some(Condition::ItemExists),
        })
        .platform(WriteOp::Update {
            key: coupon_key(code),
            actions: vec![UpdateAction::add("redemptions", -1)],
            condition: Some(Condition::ItemExists),
        })
        .commit()
        .await;
    match released {
        Ok(()) => Ok(()),
        Err(e) if e.is_condition_failure() => Ok(()),
        Err(e) => Err(e.into()),
    }
}
