//! Gauges: metrics whose policy never resets (`storage_mb`-style), set to a value rather than
//! counted up; refused above a hard limit.

use serde::Deserialize;

use super::alerts::notify_thresholds;
use super::counters::{counter_key, counting_period};
use super::meter::Meter;
use super::model::UsageResult;
use super::reports::MetricUsage;
use crate::entitlements::{limits_in_force, spec_for};
use crate::error::ApiError;
use crate::plans::policies::{Enforcement, ResetPeriod};
use crate::store::{StoreExt, UpdateAction};
use crate::time;
use crate::AppContext;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GaugeRequest {
    pub value: i64,
}

/// Sets a gauge (`storage_mb`-style metrics whose policy never resets); refused above a hard
/// limit. Seats (`max_users`) follow membership and cannot be set.
pub async fn set_gauge(
    ctx: &AppContext,
    meter: &Meter,
    metric: &str,
    req: GaugeRequest,
) -> Result<MetricUsage, ApiError> {
    if !meter.can_write {
        return Err(ApiError::forbidden("this key lacks the usage:write scope"));
    }
    crate::plans::policies::check_metric(metric)?;
    if metric == "max_users" {
        return Err(ApiError::validation(
            "metric",
            "seats follow the tenant's members",
        ));
    }
    if req.value < 0 || req.value > 1_000_000_000_000 {
        return Err(ApiError::validation("value", "a whole number from 0"));
    }
    let limits = limits_in_force(ctx, &meter.tenant).await?;
    let spec = spec_for(&limits, metric)
        .cloned()
        .ok_or_else(|| ApiError::validation("metric", "the plan has no limit on this metric"))?;
    if spec.reset_period != ResetPeriod::None {
        return Err(ApiError::validation(
            "metric",
            "only gauges (reset period `none`) are set; record events instead",
        ));
    }
    let value = req.value as u64;
    if spec.enforcement == Enforcement::Hard {
        if let Some(limit) = spec.limit.filter(|l| value > *l) {
            return Err(ApiError::limit_exceeded(
                metric,
                format!("{value} is above the plan's limit of {limit}"),
            )
            .with("used", value)
            .with("limit", limit));
        }
    }
    let now = ctx.clock.now();
    let (start, _) = counting_period(ResetPeriod::None, &limits.sub, now);
    let t = ctx.stores.tenant(&meter.tenant);
    t.update(
        counter_key(&t, metric, start),
        vec![
            UpdateAction::set("used", value as i64),
            UpdateAction::set("metric", metric),
            UpdateAction::set("period_start", time::fmt(start)),
        ],
        None,
    )
    .await?;
    let result = UsageResult::accepted(metric, value, spec.limit, time::fmt(start), None);
    notify_thresholds(ctx, &t, &spec, &result, now).await?;
    Ok(MetricUsage {
        metric: metric.to_owned(),
        used: value,
        limit: spec.limit,
        // Gauges take no grants (they count a level, not units used).
        plan_limit: spec.limit,
        granted: 0,
        percent: spec.limit.filter(|l| *l > 0).map(|l| value * 100 / l),
        enforcement: spec.enforcement,
        reset_period: spec.reset_period,
        period_start: time::fmt(start),
        period_end: None,
    })
}
