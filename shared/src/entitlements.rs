//! The entitlements in force for a tenant: its live subscription's plan version and that
//! version's limits, the seat limit members are checked against, and the cheapest plan that
//! would allow more (the hint of a 402). Asked by usage metering and by tenants' member
//! changes.

use rust_decimal::Decimal;
use serde_json::json;

use crate::billing::pricing::{SeatPrice, UsageCharge};
use crate::billing::state::Status;
use crate::billing::subscriptions::{self, Sub};
use crate::error::ApiError;
use crate::plans::policies::{Enforcement, LimitSpec};
use crate::plans::{self};
use crate::store::{Query, Store, TenantId};
use crate::AppContext;

/// The plan limits in force for a tenant now: its live subscription's plan version.
pub struct Limits {
    pub sub: Sub,
    pub limits: Vec<LimitSpec>,
    /// The version's usage charges: a charged metric is metered even without a limit.
    pub usage_charges: Vec<UsageCharge>,
    /// The version's seat price, if it charges per seat.
    pub seats: Option<SeatPrice>,
    /// The version's request-rate limits (`plans::rates`).
    pub rate_limits: Vec<crate::plans::rates::RateLimit>,
}

impl Limits {
    /// Whether the plan meters `metric`: it limits or charges it.
    pub fn meters(&self, metric: &str) -> bool {
        spec_for(self, metric).is_some() || self.usage_charges.iter().any(|c| c.metric == metric)
    }

    /// The limit in force on `metric`; a metric the plan charges without a limit counts per
    /// billing period and is never refused (a soft spec without a limit). `None`: the plan
    /// neither limits nor charges it.
    pub fn spec_or_charged(&self, metric: &str) -> Option<LimitSpec> {
        if let Some(spec) = spec_for(self, metric) {
            return Some(spec.clone());
        }
        self.usage_charges
            .iter()
            .any(|c| c.metric == metric)
            .then(|| LimitSpec {
                metric: metric.to_owned(),
                limit: None,
                reset_period: crate::plans::policies::ResetPeriod::BillingPeriod,
                enforcement: Enforcement::Soft,
                warning_thresholds: Vec::new(),
            })
    }

    /// Metrics the plan charges for but does not limit (counted per billing period).
    pub fn charged_only(&self) -> impl Iterator<Item = &str> {
        self.usage_charges
            .iter()
            .map(|c| c.metric.as_str())
            .filter(|m| spec_for(self, m).is_none())
    }
}

pub async fn limits_in_force(ctx: &AppContext, tenant: &TenantId) -> Result<Limits, ApiError> {
    match live_limits(ctx, tenant).await? {
        Some(limits) => Ok(limits),
        None => Err(no_subscription(ctx, tenant).await?),
    }
}

/// The 402 of a tenant without a live subscription: its trial ended without it subscribing
/// (`trial-ended`, with the cheapest paid plan as `upgrade_to`), or it has none.
async fn no_subscription(ctx: &AppContext, tenant: &TenantId) -> Result<ApiError, ApiError> {
    let t = ctx.stores.tenant(tenant);
    // Only on the refusal path: a few of the tenant's latest subscriptions.
    let page = t
        .query(
            &Query::table(t.pk("SUBS"))
                .begins_with("SUB#")
                .descending()
                .limit(5),
        )
        .await?;
    let latest = page
        .items
        .into_iter()
        .filter_map(|item| Sub::parse(item).ok())
        .max_by(|a, b| a.created_at.cmp(&b.created_at));
    let trial_ended = latest.is_some_and(|s| {
        s.status == Status::Expired && s.trial_end.is_some() && s.ended_at == s.trial_end
    });
    if !trial_ended {
        return Ok(ApiError::limit_exceeded(
            "subscription",
            "the tenant has no active subscription",
        )
        .with("code", "no_subscription"));
    }
    let mut refused = ApiError::new(
        axum::http::StatusCode::PAYMENT_REQUIRED,
        "trial-ended",
        "Trial ended",
    )
    .detail("the trial has ended: subscribe to a plan to go on")
    .metric("subscription")
    .with("code", "trial_ended");
    if let Some(plan) = cheapest_paid_plan(ctx).await {
        refused = refused.with("upgrade_to", plan);
    }
    Ok(refused)
}

/// The cheapest active plan with a price, for a trial's end.
async fn cheapest_paid_plan(ctx: &AppContext) -> Option<serde_json::Value> {
    let page = plans::list(
        ctx,
        None,
        crate::http::ListParams {
            limit: Some("100".into()),
            cursor: None,
        },
    )
    .await
    .ok()?;
    let price = |p: &plans::PlanView| p.price.parse::<Decimal>().unwrap_or(Decimal::MAX);
    page.data
        .into_iter()
        .filter(|p| price(p) > Decimal::ZERO)
        .min_by(|a, b| price(a).cmp(&price(b)))
        .map(|p| json!({"id": p.id, "name": p.name, "price": p.price, "currency": p.currency}))
}

/// The limits of the tenant's live subscription, if it has one.
pub async fn live_limits(ctx: &AppContext, tenant: &TenantId) -> Result<Option<Limits>, ApiError> {
    let Some(sub) = subscriptions::live(ctx, tenant).await? else {
        return Ok(None);
    };
    // Versions never change once written: the cached copy is always right.
    let terms = subscriptions::terms_of_version(ctx, &sub.plan_id, sub.plan_version).await?;
    Ok(Some(Limits {
        limits: terms.limits,
        usage_charges: terms.usage_charges,
        seats: terms.seats,
        rate_limits: terms.rate_limits,
        sub,
    }))
}

/// The most members the tenant may have now, if anything caps them: the plan's hard
/// `max_users`, and on licensed seats the seats bought, whichever is lower.
pub async fn seat_limit(ctx: &AppContext, tenant: &TenantId) -> Result<Option<u64>, ApiError> {
    Ok(live_limits(ctx, tenant).await?.and_then(|limits| {
        let plan = spec_for(&limits, "max_users")
            .filter(|s| s.enforcement == Enforcement::Hard)
            .and_then(|s| s.limit);
        let bought = limits
            .seats
            .as_ref()
            .filter(|s| s.licensed())
            .and(limits.sub.seats_licensed);
        match (plan, bought) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }))
}

/// The limit the plan sets on `metric`, if any.
pub fn spec_for<'a>(limits: &'a Limits, metric: &str) -> Option<&'a LimitSpec> {
    limits.limits.iter().find(|l| l.metric == metric)
}

/// The cheapest active plan whose limit for `metric` allows `needed`, for the 402's hint.
pub async fn cheapest_plan_allowing(
    ctx: &AppContext,
    metric: &str,
    needed: u64,
) -> Option<serde_json::Value> {
    let page = plans::list(
        ctx,
        None,
        crate::http::ListParams {
            limit: Some("100".into()),
            cursor: None,
        },
    )
    .await
    .ok()?;
    page.data
        .into_iter()
        .filter(|p| {
            p.limits
                .iter()
                .any(|l| l.metric == metric && l.limit.is_none_or(|max| max >= needed))
        })
        .min_by(|a, b| {
            let price = |p: &plans::PlanView| p.price.parse::<Decimal>().unwrap_or(Decimal::MAX);
            price(a).cmp(&price(b))
        })
        .map(|p| json!({"id": p.id, "name": p.name, "price": p.price, "currency": p.currency}))
}
