//! Entitlements as a tenant's backend asks for them: everything its plan grants now (features
//! and metric limits with what is used), and one check of one or many features and metrics,
//! optionally consuming a metric in the same call (recorded exactly as a usage event is:
//! atomically under a hard limit, once per idempotency key).
//!
//! A `rate_bucket` check takes `cost` requests (default 1) from one of the plan's rate-limit
//! buckets when they fit (`rate_limits`: shared by every instance), whatever the other checks
//! answer; a refused one takes nothing and says when to retry.
//!
//! The answer says how long it may be cached: features change only when the plan does (a
//! change, a migration, a renewal onto a scheduled plan), so 60 seconds; a metric's room
//! changes with every event and a rate with every request, so not at all.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::api_keys::KeyGuard;
use super::meter::{Meter, RecordingMeter};
use super::model::UsageEvent;
use super::rate_limits::{self, WindowNow};
use super::record::record;
use super::reports::{metric_usage, summary, usage_key, usage_of, MetricUsage};
use crate::entitlements::{live_limits, Limits};
use crate::error::ApiError;
use crate::plans::features::{self, FeatureType};
use crate::plans::policies::{Enforcement, LimitSpec};
use crate::plans::rates::{self, RateLimit};
use crate::store::{Store, TenantStore};
use crate::AppContext;
use std::sync::Arc;

/// How long features may be cached by the caller, in seconds.
const FEATURES_TTL: u32 = 60;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FeatureEntitlement {
    #[schema(example = "priority_support")]
    pub key: String,
    /// The catalog's name (the key if the feature was removed from it).
    pub name: String,
    #[serde(rename = "type")]
    pub kind: Option<FeatureType>,
    /// The plan's value: `true`/`false`, a number or a string.
    #[schema(value_type = crate::plans::features::FeatureValue)]
    pub value: Value,
    /// `true` for a boolean that is on, a number above zero or a non-empty string.
    pub enabled: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RateEntitlement {
    #[schema(example = "requests")]
    pub bucket: String,
    /// Tightest window first.
    pub windows: Vec<WindowNow>,
}

/// The plan's buckets, by name, each with its windows tightest first.
fn buckets(limits: &[RateLimit]) -> Vec<(String, Vec<&RateLimit>)> {
    let mut names: Vec<&str> = limits.iter().map(|r| r.bucket.as_str()).collect();
    names.dedup();
    names
        .into_iter()
        .map(|name| (name.to_owned(), rates::of_bucket(limits, name)))
        .collect()
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EntitlementsView {
    pub plan_id: String,
    pub plan_version: u32,
    pub features: Vec<FeatureEntitlement>,
    /// Every metric the plan limits or charges, with what is used.
    pub metrics: Vec<MetricUsage>,
    /// Every rate-limit bucket of the plan, each window with what is left now.
    pub rate_limits: Vec<RateEntitlement>,
    /// Seconds this answer may be cached (the metrics' figures move with every event).
    pub cache_for_seconds: u32,
}

fn enabled(value: &Value) -> bool {
    match value {
        Value::Bool(on) => *on,
        Value::Number(n) => n.as_f64().is_some_and(|x| x > 0.0),
        Value::String(s) => !s.is_empty(),
        _ => false,
    }
}

async fn feature_entitlements(
    ctx: &AppContext,
    values: &std::collections::BTreeMap<String, Value>,
) -> Result<Vec<FeatureEntitlement>, ApiError> {
    let mut out = Vec::with_capacity(values.len());
    for (key, value) in values {
        let described = features::describe(ctx, key).await?;
        out.push(FeatureEntitlement {
            key: key.clone(),
            name: described
                .as_ref()
                .map_or_else(|| key.clone(), |f| f.name.clone()),
            kind: described.map(|f| f.kind),
            value: value.clone(),
            enabled: enabled(value),
        });
    }
    Ok(out)
}

/// All of a tenant's entitlements now.
pub async fn entitlements(ctx: &AppContext, meter: &Meter) -> Result<EntitlementsView, ApiError> {
    let usage = summary(ctx, meter).await?;
    let terms =
        crate::billing::subscriptions::terms_of_version(ctx, &usage.plan_id, usage.plan_version)
            .await?;
    let rate_limits = rate_limits::look(ctx, &meter.tenant, &buckets(&terms.rate_limits))
        .await?
        .into_iter()
        .map(|now| RateEntitlement {
            bucket: now.bucket,
            windows: now.windows,
        })
        .collect();
    Ok(EntitlementsView {
        rate_limits,
        features: feature_entitlements(ctx, &terms.features).await?,
        plan_id: usage.plan_id,
        plan_version: usage.plan_version,
        metrics: usage.data,
        cache_for_seconds: 0,
    })
}

/// One thing to check: a `feature`, a `metric` with a `quantity` (default 1), or a
/// `rate_bucket` with a `cost` (default 1).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckItem {
    #[serde(default)]
    #[schema(pattern = "^[a-z][a-z0-9_]{0,63}$", example = "priority_support")]
    pub feature: Option<String>,
    #[serde(default)]
    #[schema(pattern = "^[a-z][a-z0-9_]{0,63}$", example = "api_calls")]
    pub metric: Option<String>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000000000)]
    pub quantity: Option<i64>,
    /// One of the plan's rate-limit buckets: the check takes `cost` requests from it when
    /// they fit.
    #[serde(default)]
    #[schema(pattern = "^[a-z][a-z0-9_]{0,63}$", example = "requests")]
    pub rate_bucket: Option<String>,
    /// With `rate_bucket`: how many requests this counts as.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100000000)]
    pub cost: Option<i64>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntitlementCheckRequest {
    /// 1 to 20 checks.
    #[schema(min_items = 1, max_items = 20)]
    pub checks: Vec<CheckItem>,
    /// Also record the one metric check's quantity, if allowed, as a usage event would.
    #[serde(default)]
    pub consume: bool,
    /// With `consume`: the usage event's idempotency key (a retry counts nothing again).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    Feature,
    Metric,
    Rate,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckAnswer {
    pub kind: CheckKind,
    /// The feature's key or the metric.
    pub key: String,
    pub allowed: bool,
    /// `enabled`, `disabled`, `not_in_plan`, `within_limit`, `unlimited`, `over_soft_limit`,
    /// `limit_reached`, `within_rate`, `rate_limited`, `no_subscription`.
    pub reason: String,
    /// A feature's value.
    #[schema(value_type = Option<crate::plans::features::FeatureValue>)]
    pub value: Option<Value>,
    /// A metric's use so far (after this call's own, when it consumed).
    pub used: Option<u64>,
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    /// When the metric's count starts again (`null`: never, a gauge).
    pub resets_at: Option<String>,
    /// Whether this call recorded the quantity (a metric) or took the cost (a rate bucket).
    pub consumed: bool,
    /// A rate bucket's windows after this call, tightest first.
    pub windows: Option<Vec<WindowNow>>,
    /// A refused rate: seconds until the same cost would fit.
    pub retry_after_seconds: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EntitlementCheckResult {
    /// Every check allowed.
    pub allowed: bool,
    pub results: Vec<CheckAnswer>,
    /// Seconds this answer may be cached: 60 for features alone, 0 once a metric or rate is
    /// asked.
    pub cache_for_seconds: u32,
}

fn answer(kind: CheckKind, key: &str, allowed: bool, reason: &str) -> CheckAnswer {
    CheckAnswer {
        kind,
        key: key.to_owned(),
        allowed,
        reason: reason.to_owned(),
        value: None,
        used: None,
        limit: None,
        remaining: None,
        resets_at: None,
        consumed: false,
        windows: None,
        retry_after_seconds: None,
    }
}

/// The facts a check needs, in one batch read, when this instance has the tenant's limits
/// cached: the subscription (its `rev` moves with every change, so an equal one proves the
/// cached limits current), the key's record when it must be verified, and the counters asked.
/// `None` when nothing is cached or the subscription moved (the caller reads the slow way).
async fn fast_facts(
    ctx: &AppContext,
    t: &TenantStore,
    guard: Option<&KeyGuard>,
    metrics: &[&str],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<(Arc<Limits>, Vec<MetricUsage>)>, ApiError> {
    let Some(limits) = ctx.hot.limits(t.tenant().as_str()) else {
        return Ok(None);
    };
    let specs: Vec<LimitSpec> = metrics
        .iter()
        .filter_map(|m| limits.spec_or_charged(m))
        .collect();
    let mut keys = vec![limits.sub.key.clone()];
    if let Some(guard) = guard {
        keys.push(guard.record_key(t));
    }
    let at: Vec<usize> = specs
        .iter()
        .map(|spec| {
            let key = usage_key(t, &limits, spec, now);
            keys.iter().position(|k| *k == key).unwrap_or_else(|| {
                keys.push(key);
                keys.len() - 1
            })
        })
        .collect();
    let items = t.get_many(&keys).await?;
    if items[0].as_ref().and_then(|sub| sub.i64("rev")) != Some(limits.sub.rev) {
        ctx.hot.forget_limits(t.tenant().as_str());
        return Ok(None);
    }
    if let Some(guard) = guard {
        guard.judge(ctx, items[1].as_ref())?;
    }
    let usage = specs
        .iter()
        .zip(at)
        .map(|(spec, i)| usage_of(items[i].as_ref(), &limits, spec, now))
        .collect();
    Ok(Some((limits, usage)))
}

/// Checks features and metrics; with `consume`, records the one metric's quantity when allowed.
pub async fn check(
    ctx: &AppContext,
    meter: &RecordingMeter,
    req: EntitlementCheckRequest,
) -> Result<EntitlementCheckResult, ApiError> {
    if !meter.meter.can_read {
        return Err(ApiError::forbidden("this key lacks the usage:read scope"));
    }
    if req.checks.is_empty() || req.checks.len() > 20 {
        return Err(ApiError::validation("checks", "1 to 20 checks"));
    }
    for (i, item) in req.checks.iter().enumerate() {
        let field = |name: &str| format!("checks[{i}].{name}");
        if item.cost.is_some() && item.rate_bucket.is_none() {
            return Err(ApiError::validation(
                field("cost"),
                "a cost goes with a rate_bucket",
            ));
        }
        match (&item.feature, &item.metric, &item.rate_bucket) {
            (None, None, Some(bucket)) => {
                crate::plans::policies::check_metric(bucket)
                    .map_err(|e| e.field(field("rate_bucket")))?;
                if item.quantity.is_some() {
                    return Err(ApiError::validation(
                        field("quantity"),
                        "a rate bucket takes a cost, not a quantity",
                    ));
                }
                if item
                    .cost
                    .is_some_and(|c| !(1..=rates::MAX_LIMIT as i64).contains(&c))
                {
                    return Err(ApiError::validation(
                        field("cost"),
                        "a whole number from 1 to 100000000",
                    ));
                }
            }
            (Some(key), None, None) => {
                crate::plans::policies::check_metric(key).map_err(|e| e.field(field("feature")))?;
                if item.quantity.is_some() {
                    return Err(ApiError::validation(
                        field("quantity"),
                        "a feature has no quantity",
                    ));
                }
            }
            (None, Some(metric), None) => {
                crate::plans::policies::check_metric(metric)
                    .map_err(|e| e.field(field("metric")))?;
                if item
                    .quantity
                    .is_some_and(|q| !(1..=1_000_000_000).contains(&q))
                {
                    return Err(ApiError::validation(
                        field("quantity"),
                        "a whole number from 1 to 1000000000",
                    ));
                }
            }
            _ => {
                return Err(ApiError::validation(
                    format!("checks[{i}]"),
                    "give one of `feature`, `metric` or `rate_bucket`",
                ))
            }
        }
    }
    if req
        .idempotency_key
        .as_deref()
        .is_some_and(|k| k.is_empty() || k.len() > 255)
    {
        return Err(ApiError::validation(
            "idempotency_key",
            "1 to 255 characters",
        ));
    }
    let metrics: Vec<usize> = (0..req.checks.len())
        .filter(|i| req.checks[*i].metric.is_some())
        .collect();
    if req.consume {
        if metrics.len() != 1 {
            return Err(ApiError::validation(
                "consume",
                "consume records one metric: ask exactly one metric check",
            ));
        }
        if req
            .idempotency_key
            .as_deref()
            .is_none_or(|k| k.is_empty() || k.len() > 255)
        {
            return Err(ApiError::validation(
                "idempotency_key",
                "consume needs an idempotency key of 1 to 255 characters",
            ));
        }
    }
    let guard = meter.guard.clone();
    let tenant = &meter.meter.tenant;
    let t = ctx.stores.tenant(tenant);
    let features_only = req.checks.iter().all(|c| c.feature.is_some());
    let cache_for_seconds = if features_only { FEATURES_TTL } else { 0 };
    let asked: Vec<&str> = metrics
        .iter()
        .map(|i| req.checks[*i].metric.as_deref().expect("a metric check"))
        .collect();
    // A key from the in-process cache is checked by the write that consumes; an answer that
    // writes nothing reads the key's record (revoked or suspended: refused), in the same batch
    // as the rest.
    // A rate check takes from the bucket before any consuming write: the key is read first
    // then too, so a revoked key takes nothing.
    let takes_rate = req.checks.iter().any(|c| c.rate_bucket.is_some());
    let unverified = guard.as_ref().filter(|_| !req.consume || takes_rate);
    let now = ctx.clock.now();
    let facts = match fast_facts(ctx, &t, unverified, &asked, now).await? {
        Some(facts) => Some(facts),
        None => {
            if let Some(guard) = unverified {
                guard.verify(ctx, &t).await?;
            }
            match live_limits(ctx, tenant).await? {
                Some(limits) => {
                    let limits = Arc::new(limits);
                    // The next check takes the fast path.
                    ctx.hot.remember_limits(tenant.as_str(), limits.clone());
                    let mut usage = Vec::new();
                    for metric in &asked {
                        if let Some(spec) = limits.spec_or_charged(metric) {
                            usage.push(metric_usage(&t, &limits, &spec, now).await?);
                        }
                    }
                    Some((limits, usage))
                }
                None => None,
            }
        }
    };
    let Some((limits, usage)) = facts else {
        if let (Some(guard), true) = (&guard, req.consume) {
            guard.verify(ctx, &t).await?;
        }
        let results = req
            .checks
            .iter()
            .map(
                |item| match (&item.feature, &item.metric, &item.rate_bucket) {
                    (Some(key), _, _) => answer(CheckKind::Feature, key, false, "no_subscription"),
                    (_, Some(metric), _) => {
                        answer(CheckKind::Metric, metric, false, "no_subscription")
                    }
                    (_, _, Some(bucket)) => {
                        answer(CheckKind::Rate, bucket, false, "no_subscription")
                    }
                    _ => unreachable!("checked above"),
                },
            )
            .collect();
        return Ok(EntitlementCheckResult {
            allowed: false,
            results,
            cache_for_seconds: 0,
        });
    };
    let terms = crate::billing::subscriptions::terms_of_version(
        ctx,
        &limits.sub.plan_id,
        limits.sub.plan_version,
    )
    .await?;
    let mut results = Vec::with_capacity(req.checks.len());
    for item in &req.checks {
        if let Some(key) = &item.feature {
            results.push(match terms.features.get(key) {
                Some(value) => {
                    let on = enabled(value);
                    CheckAnswer {
                        value: Some(value.clone()),
                        ..answer(
                            CheckKind::Feature,
                            key,
                            on,
                            if on { "enabled" } else { "disabled" },
                        )
                    }
                }
                None => answer(CheckKind::Feature, key, false, "not_in_plan"),
            });
            continue;
        }
        if let Some(bucket) = &item.rate_bucket {
            let windows = rates::of_bucket(&limits.rate_limits, bucket);
            if windows.is_empty() {
                results.push(answer(CheckKind::Rate, bucket, false, "not_in_plan"));
                continue;
            }
            let cost = item.cost.unwrap_or(1) as u64;
            let taken = rate_limits::take(ctx, &meter.meter.tenant, bucket, &windows, cost).await?;
            let tightest = taken.windows.first();
            let reason = if taken.allowed {
                "within_rate"
            } else {
                "rate_limited"
            };
            results.push(CheckAnswer {
                limit: tightest.map(|w| w.limit),
                remaining: taken.windows.iter().map(|w| w.remaining).min(),
                consumed: taken.allowed,
                retry_after_seconds: taken.retry_after_seconds,
                windows: Some(taken.windows),
                ..answer(CheckKind::Rate, bucket, taken.allowed, reason)
            });
            continue;
        }
        let metric = item.metric.as_deref().expect("checked above");
        let quantity = item.quantity.unwrap_or(1) as u64;
        let Some(m) = usage.iter().find(|m| m.metric == metric) else {
            // Not limited or charged: recorded only if the platform records it freely.
            let free = ctx.free_metrics.contains(metric);
            results.push(answer(
                CheckKind::Metric,
                metric,
                free,
                if free { "unlimited" } else { "not_in_plan" },
            ));
            continue;
        };
        let hard = m.enforcement == Enforcement::Hard;
        let fits = m.limit.is_none_or(|l| m.used + quantity <= l);
        let (allowed, reason) = match (m.limit, fits, hard) {
            (None, _, _) => (true, "unlimited"),
            (Some(_), true, _) => (true, "within_limit"),
            (Some(_), false, true) => (false, "limit_reached"),
            (Some(_), false, false) => (true, "over_soft_limit"),
        };
        results.push(CheckAnswer {
            used: Some(m.used),
            limit: m.limit,
            remaining: m.limit.map(|l| l.saturating_sub(m.used)),
            resets_at: m.period_end.clone(),
            ..answer(CheckKind::Metric, metric, allowed, reason)
        });
    }
    if req.consume {
        let i = metrics[0];
        if !results[i].allowed {
            if let Some(guard) = &guard {
                guard.verify(ctx, &t).await?;
            }
        } else {
            let item = &req.checks[i];
            let event = UsageEvent {
                metric: item.metric.clone().expect("a metric check"),
                quantity: item.quantity.unwrap_or(1),
                idempotency_key: req.idempotency_key.clone().expect("checked above"),
                timestamp: None,
            };
            // The check above was advice; the record decides, atomically under the limit.
            match record(ctx, meter, event).await {
                Ok(done) => {
                    let r = &mut results[i];
                    r.used = Some(done.used);
                    r.limit = done.limit;
                    r.remaining = done.remaining;
                    r.consumed = true;
                    if done.overage {
                        r.reason = "over_soft_limit".into();
                    }
                }
                Err(e) if e.status == axum::http::StatusCode::PAYMENT_REQUIRED => {
                    let r = &mut results[i];
                    r.allowed = false;
                    r.reason = "limit_reached".into();
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(EntitlementCheckResult {
        allowed: results.iter().all(|r| r.allowed),
        results,
        cache_for_seconds,
    })
}
