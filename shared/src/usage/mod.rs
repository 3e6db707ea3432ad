//! Usage metering with real-time enforcement.
//!
//! A counter lives at `TENANT#<id>#USAGE#<metric>` / `P#<period start>`: the period is part of
//! its key, so counters reset at each boundary without any job, and an event exactly at the
//! boundary counts in the new period. Under a hard limit the increment carries the condition
//! `used <= limit - quantity`, so the check and the increment are one atomic step and concurrent
//! callers can never push usage past the limit. The idempotency record, the counter and the
//! hour/day/month rollups are written in one transaction.

pub mod api_keys;

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::billing::subscriptions::{self, Sub};
use crate::error::ApiError;
use crate::plans::policies::{Enforcement, LimitSpec, ResetPeriod};
use crate::plans::{self};
use crate::store::{
    AttrValue, Condition, Item, Key, Store, StoreExt, TenantId, TenantStore, UpdateAction, WriteOp,
};
use crate::time;
use crate::AppContext;

const IDEMPOTENCY_SECS: i64 = 24 * 3600;

/// Who is metering: a tenant (from a token or an API key) and whether it may write/read.
#[derive(Debug, Clone)]
pub struct Meter {
    pub tenant: TenantId,
    pub can_write: bool,
    pub can_read: bool,
}

/// The plan limits in force for a tenant now: its live subscription's plan version.
pub struct Limits {
    pub sub: Sub,
    pub limits: Vec<LimitSpec>,
}

pub async fn limits_in_force(ctx: &AppContext, tenant: &TenantId) -> Result<Limits, ApiError> {
    let t = ctx.stores.tenant(tenant);
    let live = t.get(&t.key("SUBS", "LIVE")).await?.ok_or_else(|| {
        ApiError::limit_exceeded("subscription", "the tenant has no active subscription")
            .with("code", "no_subscription")
    })?;
    let sub = subscriptions::load(ctx, tenant, live.required_str("subscription_id")?)
        .await?
        .ok_or_else(|| ApiError::internal("live pointer without subscription"))?;
    let version = ctx
        .stores
        .platform()
        .get(&plans::version_key(&sub.plan_id, sub.plan_version))
        .await?
        .ok_or_else(|| ApiError::internal("subscription on a missing plan version"))?;
    Ok(Limits {
        limits: plans::terms_of(&version)?.limits,
        sub,
    })
}

/// The hard `max_users` limit in force, if the tenant has a live subscription with one.
pub async fn seat_limit(ctx: &AppContext, tenant: &TenantId) -> Result<Option<u64>, ApiError> {
    match limits_in_force(ctx, tenant).await {
        Ok(limits) => Ok(spec_for(&limits, "max_users")
            .filter(|s| s.enforcement == Enforcement::Hard)
            .and_then(|s| s.limit)),
        Err(e) if e.status == axum::http::StatusCode::PAYMENT_REQUIRED => Ok(None),
        Err(e) => Err(e),
    }
}

/// `[start, end)` of the counting period that contains `at` (end `None`: never resets).
pub fn counting_period(
    reset: ResetPeriod,
    sub: &Sub,
    at: DateTime<Utc>,
) -> (DateTime<Utc>, Option<DateTime<Utc>>) {
    match reset {
        ResetPeriod::None => (Utc.timestamp_opt(0, 0).single().expect("epoch"), None),
        ResetPeriod::Day => {
            let start = Utc
                .with_ymd_and_hms(at.year(), at.month(), at.day(), 0, 0, 0)
                .single()
                .expect("valid day");
            (start, Some(start + Duration::days(1)))
        }
        ResetPeriod::Month => {
            let start = Utc
                .with_ymd_and_hms(at.year(), at.month(), 1, 0, 0, 0)
                .single()
                .expect("valid month");
            (start, start.checked_add_months(chrono::Months::new(1)))
        }
        ResetPeriod::BillingPeriod => (sub.period_start, Some(sub.period_end)),
    }
}

fn counter_key(t: &TenantStore, metric: &str, start: DateTime<Utc>) -> Key {
    t.key(
        &format!("USAGE#{metric}"),
        format!("P#{}", time::fmt(start)),
    )
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsageResult {
    pub metric: String,
    /// Usage in the period right after this event (it includes concurrent events).
    pub used: u64,
    /// `null`: unlimited.
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    pub period_start: String,
    pub period_end: Option<String>,
    pub allowed: bool,
    /// A soft limit was passed: counted and flagged.
    pub overage: bool,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageEvent {
    pub metric: String,
    /// A whole number above zero.
    pub quantity: i64,
    /// The same key within 24 hours returns the first result and counts nothing.
    pub idempotency_key: String,
    /// When it happened (RFC 3339); defaults to now. Decides the period it counts in.
    #[serde(default)]
    pub timestamp: Option<String>,
}

fn check_event(event: &UsageEvent) -> Result<(), ApiError> {
    crate::plans::policies::check_metric(&event.metric)?;
    if event.quantity <= 0 || event.quantity > 1_000_000_000 {
        return Err(ApiError::validation(
            "quantity",
            "a whole number from 1 to 1000000000",
        ));
    }
    if event.idempotency_key.is_empty() || event.idempotency_key.len() > 255 {
        return Err(ApiError::validation(
            "idempotency_key",
            "1 to 255 characters",
        ));
    }
    Ok(())
}

fn spec_for<'a>(limits: &'a Limits, metric: &str) -> Option<&'a LimitSpec> {
    limits.limits.iter().find(|l| l.metric == metric)
}

/// The cheapest active plan whose limit for `metric` allows `needed`, for the 402's hint.
async fn cheapest_plan_allowing(
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

/// Records one usage event.
pub async fn record(
    ctx: &AppContext,
    meter: &Meter,
    event: UsageEvent,
) -> Result<UsageResult, ApiError> {
    if !meter.can_write {
        return Err(ApiError::forbidden("this key lacks the usage:write scope"));
    }
    check_event(&event)?;
    let now = ctx.clock.now();
    let at = match &event.timestamp {
        Some(text) => time::parse(text)
            .ok_or_else(|| ApiError::validation("timestamp", "use an RFC 3339 time"))?,
        None => now,
    };
    if at > now + Duration::minutes(5) {
        return Err(ApiError::validation(
            "timestamp",
            "usage cannot be recorded in the future",
        ));
    }
    let t = ctx.stores.tenant(&meter.tenant);
    let idem_key = t.key(
        "UIDEM",
        format!(
            "K#{}",
            crate::auth::tokens::sha256_hex(&event.idempotency_key)
        ),
    );
    if let Some(done) = replay(&t, &idem_key, &event, now).await? {
        return Ok(done);
    }
    let limits = limits_in_force(ctx, &meter.tenant).await?;
    let spec = spec_for(&limits, &event.metric).cloned();
    let reset = spec
        .as_ref()
        .map_or(ResetPeriod::BillingPeriod, |s| s.reset_period);
    let (start, end) = counting_period(reset, &limits.sub, at);
    if end.is_some_and(|end| at < start || at >= end)
        || (reset == ResetPeriod::BillingPeriod && at < start)
    {
        return Err(ApiError::validation(
            "timestamp",
            "outside the current billing period",
        ));
    }
    let quantity = event.quantity as u64;
    let hard_limit = spec
        .as_ref()
        .filter(|s| s.enforcement == Enforcement::Hard)
        .and_then(|s| s.limit);
    let counter = counter_key(&t, &event.metric, start);
    let metric = event.metric.clone();
    let refused =
        |used: u64, limit: u64| {
            let metric = metric.clone();
            async move {
                let mut problem = ApiError::limit_exceeded(
            metric.clone(),
            format!("{quantity} would exceed the plan's limit of {limit} {metric} (used {used})"),
        )
        .with("used", used)
        .with("limit", limit)
        .with("requested", quantity);
                if let Some(plan) = cheapest_plan_allowing(ctx, &metric, used + quantity).await {
                    problem = problem.with("upgrade_to", plan);
                }
                problem
            }
        };
    if let Some(limit) = hard_limit {
        if quantity > limit {
            return Err(refused(0, limit).await);
        }
    }
    let claim = Item::new(idem_key.clone())
        .with("request", request_fingerprint(&event))
        .with("state", "pending")
        .with("expires_epoch", now.timestamp() + IDEMPOTENCY_SECS)
        .with_ttl(now.timestamp() + IDEMPOTENCY_SECS);
    let mut actions = vec![
        UpdateAction::add("used", Decimal::from(quantity)),
        UpdateAction::set("metric", event.metric.as_str()),
        UpdateAction::set("period_start", time::fmt(start)),
    ];
    if let Some(end) = end {
        actions.push(UpdateAction::set("period_end", time::fmt(end)));
    }
    let condition = hard_limit.map(|limit| {
        Condition::Or(vec![
            Condition::not_exists("used"),
            Condition::le("used", (limit - quantity) as i64),
        ])
    });
    let mut tx = ctx
        .stores
        .transaction()
        .tenant(
            &t,
            WriteOp::Put {
                item: claim,
                condition: Some(Condition::Or(vec![
                    Condition::ItemNotExists,
                    Condition::lt("expires_epoch", now.timestamp()),
                ])),
            },
        )
        .tenant(
            &t,
            WriteOp::Update {
                key: counter.clone(),
                actions,
                condition,
            },
        );
    for bucket in rollup_buckets(at) {
        tx = tx.tenant(
            &t,
            WriteOp::Update {
                key: t.key(&format!("USAGEHIST#{}", event.metric), bucket),
                actions: vec![UpdateAction::add("total", Decimal::from(quantity))],
                condition: None,
            },
        );
    }
    match tx.commit().await {
        Ok(()) => {}
        Err(e) => match e.failed_condition_index() {
            Some(0) => {
                return replay(&t, &idem_key, &event, now).await?.ok_or_else(|| {
                    ApiError::conflict(
                        "an event with this idempotency_key is being recorded; retry",
                    )
                })
            }
            Some(1) => {
                let used = t
                    .get(&counter)
                    .await?
                    .and_then(|c| c.i64("used"))
                    .unwrap_or(0) as u64;
                return Err(refused(used, hard_limit.unwrap_or(0)).await);
            }
            _ => return Err(e.into()),
        },
    }
    let used = t
        .get(&counter)
        .await?
        .and_then(|c| c.i64("used"))
        .unwrap_or(0)
        .max(0) as u64;
    let limit = spec.as_ref().and_then(|s| s.limit);
    let result = UsageResult {
        metric: event.metric.clone(),
        used,
        limit,
        remaining: limit.map(|l| l.saturating_sub(used)),
        period_start: time::fmt(start),
        period_end: end.map(time::fmt),
        allowed: true,
        overage: limit.is_some_and(|l| used > l),
    };
    let stored = AttrValue::from_json(&serde_json::to_value(&result).expect("serializable"))
        .expect("plain JSON");
    t.update(
        idem_key,
        vec![
            UpdateAction::set("state", "done"),
            UpdateAction::set("result", stored),
        ],
        Some(Condition::eq("state", "pending")),
    )
    .await?;
    if let Some(spec) = &spec {
        notify_thresholds(ctx, &t, spec, &result, now).await?;
    }
    Ok(result)
}

fn request_fingerprint(event: &UsageEvent) -> String {
    format!("{}:{}", event.metric, event.quantity)
}

/// The first result for an idempotency key still within its 24 hours.
async fn replay(
    t: &TenantStore,
    key: &Key,
    event: &UsageEvent,
    now: DateTime<Utc>,
) -> Result<Option<UsageResult>, ApiError> {
    let Some(item) = t.get(key).await? else {
        return Ok(None);
    };
    if item.i64("expires_epoch").unwrap_or(0) < now.timestamp() {
        return Ok(None);
    }
    if item.str("request") != Some(request_fingerprint(event).as_str()) {
        return Err(ApiError::validation(
            "idempotency_key",
            "this key was used for a different event",
        ));
    }
    match (item.str("state"), item.get("result")) {
        (Some("done"), Some(result)) => Ok(Some(
            serde_json::from_value(result.to_json()).map_err(ApiError::internal)?,
        )),
        _ => Err(ApiError::conflict(
            "an event with this idempotency_key is being recorded; retry",
        )),
    }
}

/// Hour, day and month buckets of the history rollups.
fn rollup_buckets(at: DateTime<Utc>) -> [String; 3] {
    [
        format!(
            "H#{:04}-{:02}-{:02}T{:02}",
            at.year(),
            at.month(),
            at.day(),
            at.hour()
        ),
        format!("D#{:04}-{:02}-{:02}", at.year(), at.month(), at.day()),
        format!("M#{:04}-{:02}", at.year(), at.month()),
    ]
}

/// One notification per (metric, period, threshold), ever: the marker is claimed with
/// `attribute_not_exists` in the transaction that writes the notification.
async fn notify_thresholds(
    ctx: &AppContext,
    t: &TenantStore,
    spec: &LimitSpec,
    result: &UsageResult,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let Some(limit) = spec.limit.filter(|l| *l > 0) else {
        return Ok(());
    };
    for threshold in &spec.warning_thresholds {
        // used / limit >= threshold%, in integers.
        if result.used * 100 < u64::from(*threshold) * limit {
            continue;
        }
        let marker = t.key(
            "NOTIFICATIONS",
            format!("SENT#{}#{}#{threshold}", result.metric, result.period_start),
        );
        let id = crate::auth::service::new_id("ntf");
        let at = time::fmt(now);
        let message = format!(
            "{} reached {threshold}% of the plan's limit ({} of {limit})",
            result.metric, result.used
        );
        let data = json!({"notification_id": id, "metric": result.metric, "threshold": threshold, "used": result.used, "limit": limit, "period_start": result.period_start});
        let outcome = ctx
            .stores
            .transaction()
            .tenant(
                t,
                WriteOp::Put {
                    item: Item::new(marker).with("notification_id", id.as_str()),
                    condition: Some(Condition::ItemNotExists),
                },
            )
            .tenant(
                t,
                WriteOp::Put {
                    item: Item::new(t.key("NOTIFICATIONS", format!("N#{at}#{id}")))
                        .with("notification_id", id.as_str())
                        .with("kind", "usage.threshold_reached")
                        .with("message", message.as_str())
                        .with(
                            "data",
                            AttrValue::from_json(&data).unwrap_or(AttrValue::Null),
                        )
                        .with("read", false)
                        .with("created_at", at.as_str()),
                    condition: Some(Condition::ItemNotExists),
                },
            )
            .tenant(
                t,
                crate::billing::events::op(t, "usage.threshold_reached", data, now),
            )
            .commit()
            .await;
        match outcome {
            Ok(()) => {}
            Err(e) if e.failed_condition_index() == Some(0) => {} // already sent
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MetricUsage {
    pub metric: String,
    pub used: u64,
    pub limit: Option<u64>,
    /// Percent of the limit used, rounded down; `null` when unlimited.
    pub percent: Option<u64>,
    pub enforcement: Enforcement,
    pub reset_period: ResetPeriod,
    pub period_start: String,
    pub period_end: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UsageSummary {
    pub plan_id: String,
    pub plan_version: u32,
    pub data: Vec<MetricUsage>,
}

/// Every metric of the current plan with used / limit / percent.
pub async fn summary(ctx: &AppContext, meter: &Meter) -> Result<UsageSummary, ApiError> {
    if !meter.can_read {
        return Err(ApiError::forbidden("this key lacks the usage:read scope"));
    }
    let limits = limits_in_force(ctx, &meter.tenant).await?;
    let t = ctx.stores.tenant(&meter.tenant);
    let now = ctx.clock.now();
    let mut data = Vec::new();
    for spec in &limits.limits {
        let (start, end) = counting_period(spec.reset_period, &limits.sub, now);
        let used = if spec.metric == "max_users" {
            let meta = t.get(&t.key("META", "TENANT")).await?;
            meta.and_then(|m| m.i64("member_count")).unwrap_or(0).max(0) as u64
        } else {
            t.get(&counter_key(&t, &spec.metric, start))
                .await?
                .and_then(|c| c.i64("used"))
                .unwrap_or(0)
                .max(0) as u64
        };
        data.push(MetricUsage {
            metric: spec.metric.clone(),
            used,
            limit: spec.limit,
            percent: spec.limit.filter(|l| *l > 0).map(|l| used * 100 / l),
            enforcement: spec.enforcement,
            reset_period: spec.reset_period,
            period_start: time::fmt(start),
            period_end: end.map(time::fmt),
        });
    }
    Ok(UsageSummary {
        plan_id: limits.sub.plan_id.clone(),
        plan_version: limits.sub.plan_version,
        data,
    })
}

impl axum::extract::FromRequestParts<AppContext> for Meter {
    type Rejection = axum::response::Response;

    /// An API key (`esk_…`, scoped) or a tenant access token (admins write, members read).
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        ctx: &AppContext,
    ) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        let token = crate::auth::caller::bearer(parts)
            .map_err(|e| crate::auth::caller::Unauthenticated(e).into_response())?;
        if let Some(key) = api_keys::authenticate(ctx, token).await {
            let key = key.map_err(|e| crate::auth::caller::Unauthenticated(e).into_response())?;
            return Ok(Meter {
                tenant: key.tenant,
                can_write: key.scopes.iter().any(|s| s == "usage:write"),
                can_read: key.scopes.iter().any(|s| s == "usage:read"),
            });
        }
        let caller = crate::auth::Caller::from_request_parts(parts, ctx).await?;
        let tenant = caller
            .own_tenant()
            .map_err(IntoResponse::into_response)?
            .clone();
        Ok(Meter {
            tenant,
            can_write: caller.role == Some(crate::auth::Role::TenantAdmin),
            can_read: true,
        })
    }
}
