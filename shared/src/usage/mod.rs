//! Usage metering with real-time enforcement.
//!
//! A counter lives at `TENANT#<id>#USAGE#<metric>` / `P#<period start>`: the period is part of
//! its key, so counters reset at each boundary without any job, and an event exactly at the
//! boundary counts in the new period. Under a hard limit the increment carries the condition
//! `used <= limit - quantity`, so the check and the increment are one atomic step and concurrent
//! callers can never push usage past the limit. The idempotency record, the counter and the
//! hour/day/month rollups are written in one transaction.

pub mod api_keys;
pub mod hot;

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::billing::subscriptions::{self, Sub};
use crate::error::ApiError;
use crate::plans::policies::{Enforcement, LimitSpec, ResetPeriod};
use crate::plans::{self};
use crate::store::{
    AttrValue, Condition, Item, Key, Stamp, Store, StoreExt, TenantId, TenantStore, UpdateAction,
    WriteOp,
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
    live_limits(ctx, tenant).await?.ok_or_else(|| {
        ApiError::limit_exceeded("subscription", "the tenant has no active subscription")
            .with("code", "no_subscription")
    })
}

/// The limits of the tenant's live subscription, if it has one.
async fn live_limits(ctx: &AppContext, tenant: &TenantId) -> Result<Option<Limits>, ApiError> {
    let Some(sub) = subscriptions::live(ctx, tenant).await? else {
        return Ok(None);
    };
    let version = ctx
        .stores
        .platform()
        .get(&plans::version_key(&sub.plan_id, sub.plan_version))
        .await?
        .ok_or_else(|| ApiError::internal("subscription on a missing plan version"))?;
    Ok(Some(Limits {
        limits: plans::terms_of(&version)?.limits,
        sub,
    }))
}

/// The hard `max_users` limit in force, if the tenant has a live subscription with one.
pub async fn seat_limit(ctx: &AppContext, tenant: &TenantId) -> Result<Option<u64>, ApiError> {
    Ok(live_limits(ctx, tenant).await?.and_then(|limits| {
        spec_for(&limits, "max_users")
            .filter(|s| s.enforcement == Enforcement::Hard)
            .and_then(|s| s.limit)
    }))
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

/// A metric's counter for the period starting at `start`. The counter item holds only `used`
/// and its place in the platform index: the tenant, metric and period are read back from the
/// key ([`counter_of`]), so an event writes three attributes, not seven.
fn counter_key(t: &TenantStore, metric: &str, start: DateTime<Utc>) -> Key {
    let mut sk = String::with_capacity(26);
    sk.push_str("P#");
    time::push(&mut sk, start);
    Key::new(t.pk_of(&["USAGE#", metric]), sk)
}

/// The tenant, metric and period start a counter's key names.
fn counter_of(counter: &Item) -> Option<(TenantId, &str, &str)> {
    let (tenant, partition) = TenantId::of_pk(&counter.key.pk)?;
    let metric = partition.strip_prefix("USAGE#")?;
    let start = counter.key.sk.strip_prefix("P#")?;
    Some((tenant, metric, start))
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

impl UsageResult {
    /// The answer for a counted event: `used` after it, against `limit` (soft limits flag
    /// overage).
    fn accepted(
        metric: &str,
        used: u64,
        limit: Option<u64>,
        period_start: String,
        period_end: Option<String>,
    ) -> Self {
        Self {
            metric: metric.to_owned(),
            used,
            limit,
            remaining: limit.map(|l| l.saturating_sub(used)),
            period_start,
            period_end,
            allowed: true,
            overage: limit.is_some_and(|l| used > l),
        }
    }
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
    if event.metric == "max_users" {
        return Err(ApiError::validation(
            "metric",
            "seats follow the tenant's members; they are not recorded",
        ));
    }
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

/// A metric the plan does not limit and the platform has not marked free to record
/// (`ESHTAREK_FREE_METRICS`): refused rather than counted without a limit.
fn unknown_metric() -> ApiError {
    ApiError::validation(
        "metric",
        "the plan has no limit on this metric, and it is not one the platform records freely",
    )
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

/// A meter for recording. An API key may come from the in-process cache; then its guard
/// rides in the write transaction, so a revoked key is refused without a read of its own.
#[derive(Debug, Clone)]
pub struct RecordingMeter {
    pub meter: Meter,
    guard: Option<api_keys::KeyGuard>,
}

impl From<Meter> for RecordingMeter {
    /// A meter that was authenticated against the store (nothing left to check).
    fn from(meter: Meter) -> Self {
        Self { meter, guard: None }
    }
}

impl axum::extract::FromRequestParts<AppContext> for RecordingMeter {
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        ctx: &AppContext,
    ) -> Result<Self, Self::Rejection> {
        let token = crate::auth::caller::bearer(parts).map_err(crate::auth::caller::reject)?;
        if let Some(key) = api_keys::authenticate_for_write(ctx, token).await {
            let (key, guard) = key.map_err(crate::auth::caller::reject)?;
            return Ok(Self {
                meter: Meter::for_key(&key),
                guard,
            });
        }
        Meter::from_request_parts(parts, ctx).await.map(Self::from)
    }
}

/// The limits in force from the cache, else read (and cached). Whoever relies on them checks
/// `sub.rev` in its write.
async fn cached_limits(
    ctx: &AppContext,
    tenant: &TenantId,
) -> Result<std::sync::Arc<Limits>, ApiError> {
    if let Some(limits) = ctx.hot.limits(tenant.as_str()) {
        return Ok(limits);
    }
    let limits = std::sync::Arc::new(limits_in_force(ctx, tenant).await?);
    ctx.hot.remember_limits(tenant.as_str(), limits.clone());
    Ok(limits)
}

/// How late an event from before its period's start may still be reported (it then counts in
/// the period it happened in, under that period's limit).
pub const LATENESS: Duration = Duration::minutes(5);

/// Positions of the operations in the recording transaction (to read a cancellation).
const OP_CLAIM: usize = 0;
const OP_COUNTER: usize = 1;
const OP_SUBSCRIPTION: usize = 5;
const OP_KEY: usize = 6;

/// Records one usage event: one transaction of the idempotency claim, the counter increment
/// (conditional under a hard limit), three history rollups, and checks that the subscription
/// and the API key are still what the cached copies say.
pub async fn record(
    ctx: &AppContext,
    meter: &RecordingMeter,
    event: UsageEvent,
) -> Result<UsageResult, ApiError> {
    if !meter.meter.can_write {
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
    let tenant = &meter.meter.tenant;
    let t = ctx.stores.tenant(tenant);
    let idem_key = t.key(
        "UIDEM",
        format!(
            "K#{}",
            crate::auth::tokens::sha256_hex(&event.idempotency_key)
        ),
    );
    // A stale cached subscription costs one retry, an unrenewed period one more; beyond that
    // the subscription keeps changing under us.
    for attempt in 0..4 {
        let limits = match cached_limits(ctx, tenant).await {
            Ok(limits) => limits,
            Err(e) => {
                // No subscription any more: a repeated event still gets its first answer.
                return match replay(&t, &idem_key, &event, now).await? {
                    Some(done) => Ok(done),
                    None => Err(e),
                };
            }
        };
        let cached = attempt == 0;
        match record_once(ctx, meter, &t, &idem_key, &event, &limits, at, now, cached).await {
            Err(Attempt::StaleSubscription) => ctx.hot.forget_limits(tenant.as_str()),
            Err(Attempt::PeriodEnded) => {
                // The period ended and the renewal job has not run for it yet: renew now
                // (safe beside the job: renewals are conditional and idempotent), then count
                // the event in whatever follows (the next period, or no subscription).
                crate::billing::subscriptions::renew(ctx, tenant, &limits.sub.id, now).await?;
                ctx.hot.forget_limits(tenant.as_str());
            }
            Err(Attempt::Failed(e)) => return Err(e),
            Ok(result) => return Ok(result),
        }
    }
    Err(ApiError::conflict(
        "the subscription changed while recording; retry",
    ))
}

enum Attempt {
    StaleSubscription,
    /// The billing period the event falls after has ended, unrenewed.
    PeriodEnded,
    Failed(ApiError),
}

impl From<ApiError> for Attempt {
    fn from(e: ApiError) -> Self {
        Attempt::Failed(e)
    }
}

#[allow(clippy::too_many_arguments)]
async fn record_once(
    ctx: &AppContext,
    meter: &RecordingMeter,
    t: &TenantStore,
    idem_key: &Key,
    event: &UsageEvent,
    limits: &Limits,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
    cached: bool,
) -> Result<UsageResult, Attempt> {
    let spec = spec_for(limits, &event.metric);
    if spec.is_none() && !ctx.free_metrics.contains(&event.metric) {
        // The plan may have gained the metric since the limits were cached: look again.
        if cached {
            return Err(Attempt::StaleSubscription);
        }
        return Err(unknown_metric().into());
    }
    let reset = spec.map_or(ResetPeriod::BillingPeriod, |s| s.reset_period);
    let (start, end) = counting_period(reset, &limits.sub, at);
    if end.is_some_and(|end| at < start || at >= end)
        || (reset == ResetPeriod::BillingPeriod && at < start)
    {
        // A cached subscription may be a period behind (renewed since): look again first.
        if cached {
            return Err(Attempt::StaleSubscription);
        }
        if reset == ResetPeriod::BillingPeriod && end.is_some_and(|end| at >= end) {
            return Err(Attempt::PeriodEnded);
        }
        return Err(ApiError::validation("timestamp", "outside the current billing period").into());
    }
    // Backdating never reaches a past period's empty counter: an event counts in the metric's
    // current counting period, at most LATENESS before it began (a late report across the
    // boundary), and never before the subscription existed.
    let (current_start, _) = counting_period(reset, &limits.sub, now);
    let created = time::parse(&limits.sub.created_at).unwrap_or(limits.sub.anchor);
    if at < (current_start - LATENESS).max(created) {
        return Err(ApiError::validation(
            "timestamp",
            "an event counts in the current period: at most 5 minutes before it began, and never before the subscription",
        )
        .into());
    }
    let quantity = event.quantity as u64;
    let limit = spec.and_then(|s| s.limit);
    let hard_limit = spec
        .filter(|s| s.enforcement == Enforcement::Hard)
        .and_then(|s| s.limit);
    if let Some(limit) = hard_limit {
        if quantity > limit {
            return Err(refused(ctx, &event.metric, quantity, 0, limit).await.into());
        }
    }
    let counter = counter_key(t, &event.metric, start);
    let (start_text, end_text) = (time::fmt(start), end.map(time::fmt));
    // Everything the first answer holds but `used`, which the transaction stamps on.
    let claim = Item::new(idem_key.clone())
        .with("request", request_fingerprint(event))
        .with("metric", event.metric.as_str())
        .with("period_start", start_text.as_str())
        .with_ttl(now.timestamp() + IDEMPOTENCY_SECS);
    let claim = match &end_text {
        Some(end) => claim.with("period_end", end.as_str()),
        None => claim,
    };
    let claim = match limit {
        Some(limit) => claim.with("limit", limit as i64),
        None => claim,
    };
    let at_text = time::fmt(at);
    let [index_pk, index_sk] = admin_index(t.tenant(), &event.metric, &at_text);
    let actions = vec![
        UpdateAction::add("used", Decimal::from(quantity)),
        index_pk,
        index_sk,
    ];
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
            t,
            WriteOp::Claim {
                item: claim,
                now: now.timestamp(),
                stamp: Some(Stamp {
                    from: OP_COUNTER,
                    attr: "used".into(),
                }),
            },
        )
        .tenant(
            t,
            WriteOp::Update {
                key: counter.clone(),
                actions,
                condition,
            },
        );
    let history = t.pk_of(&["USAGEHIST#", &event.metric]);
    for bucket in rollup_buckets(&at_text) {
        tx = tx.tenant(
            t,
            WriteOp::Update {
                key: Key::new(history.clone(), bucket),
                actions: vec![UpdateAction::add("total", Decimal::from(quantity))],
                condition: None,
            },
        );
    }
    debug_assert_eq!(tx.len(), OP_SUBSCRIPTION);
    tx = tx.tenant(
        t,
        WriteOp::Check {
            key: limits.sub.key.clone(),
            condition: Condition::eq("rev", limits.sub.rev),
        },
    );
    if let Some(guard) = &meter.guard {
        debug_assert_eq!(tx.len(), OP_KEY);
        tx = tx.tenant(t, guard.check(t));
    }
    let after = match tx.commit_returning(OP_COUNTER).await {
        Ok(after) => after,
        Err(e) => {
            // Stale cached facts first: under an old limit the counter check may fail too.
            let first_failed = if failed_at(&e, OP_SUBSCRIPTION) {
                Some(OP_SUBSCRIPTION)
            } else if failed_at(&e, OP_KEY) {
                Some(OP_KEY)
            } else {
                e.failed_condition_index()
            };
            return Err(match first_failed {
                Some(OP_CLAIM) => match replay(t, idem_key, event, now).await {
                    Ok(Some(done)) => return Ok(done),
                    Ok(None) => Attempt::Failed(ApiError::conflict(
                        "an event with this idempotency_key is being recorded; retry",
                    )),
                    Err(e) => Attempt::Failed(e),
                },
                Some(OP_COUNTER) => {
                    let used = match cancelled_item(&e, OP_COUNTER) {
                        Some(item) => item.i64("used"),
                        None => t
                            .get(&counter)
                            .await
                            .map_err(ApiError::from)?
                            .and_then(|c| c.i64("used")),
                    }
                    .unwrap_or(0)
                    .max(0) as u64;
                    Attempt::Failed(
                        refused(ctx, &event.metric, quantity, used, hard_limit.unwrap_or(0)).await,
                    )
                }
                Some(OP_SUBSCRIPTION) => Attempt::StaleSubscription,
                Some(OP_KEY) => Attempt::Failed(match &meter.guard {
                    Some(guard) => guard.refusal(ctx, cancelled_item(&e, OP_KEY)),
                    None => ApiError::unauthenticated("invalid or revoked API key"),
                }),
                _ => Attempt::Failed(e.into()),
            });
        }
    };
    let used = after.and_then(|c| c.i64("used")).unwrap_or(0).max(0) as u64;
    let result = UsageResult::accepted(&event.metric, used, limit, start_text, end_text);
    if let Some(spec) = spec {
        notify_thresholds(ctx, t, spec, &result, now).await?;
    }
    Ok(result)
}

/// Whether operation `index` of a cancelled transaction failed its condition.
fn failed_at(e: &crate::store::StoreError, index: usize) -> bool {
    matches!(e, crate::store::StoreError::TransactionCancelled { reasons }
        if matches!(reasons.get(index), Some(crate::store::CancelReason::ConditionFailed { .. })))
}

/// The item a cancelled transaction's operation saw, when the adapter reports it.
fn cancelled_item(e: &crate::store::StoreError, index: usize) -> Option<&Item> {
    match e {
        crate::store::StoreError::TransactionCancelled { reasons } => match reasons.get(index) {
            Some(crate::store::CancelReason::ConditionFailed { current }) => current.as_deref(),
            _ => None,
        },
        _ => None,
    }
}

/// The 402 for an event that would cross a hard limit, with the cheapest plan that allows it.
async fn refused(ctx: &AppContext, metric: &str, quantity: u64, used: u64, limit: u64) -> ApiError {
    let mut problem = ApiError::limit_exceeded(
        metric,
        format!("{quantity} would exceed the plan's limit of {limit} {metric} (used {used})"),
    )
    .with("used", used)
    .with("limit", limit)
    .with("requested", quantity);
    let needed = used + quantity;
    let hint = match ctx.hot.hint(metric, needed) {
        Some(hint) => hint,
        None => {
            let hint = cheapest_plan_allowing(ctx, metric, needed).await;
            ctx.hot.remember_hint(metric, needed, hint.clone());
            hint
        }
    };
    if let Some(plan) = hint {
        problem = problem.with("upgrade_to", plan);
    }
    problem
}

/// Every field of the event but its key: a repeat that differs in any of them is a 422. The
/// time is taken as the instant it names (so equal times written differently match).
fn request_fingerprint(event: &UsageEvent) -> String {
    let mut fingerprint = event.metric.clone();
    fingerprint.push(':');
    fingerprint.push_str(itoa::Buffer::new().format(event.quantity));
    fingerprint.push(':');
    match event.timestamp.as_deref().and_then(time::parse) {
        Some(at) => fingerprint.push_str(itoa::Buffer::new().format(at.timestamp_millis())),
        None => fingerprint.push('-'),
    }
    fingerprint
}

/// The first answer for an idempotency key still within its 24 hours.
async fn replay(
    t: &TenantStore,
    key: &Key,
    event: &UsageEvent,
    now: DateTime<Utc>,
) -> Result<Option<UsageResult>, ApiError> {
    let Some(item) = t.get_claim(key, now.timestamp()).await? else {
        return Ok(None);
    };
    if item.str("request") != Some(request_fingerprint(event).as_str()) {
        return Err(ApiError::validation(
            "idempotency_key",
            "this key was used for a different event",
        ));
    }
    let (Some(metric), Some(start)) = (item.str("metric"), item.str("period_start")) else {
        return Err(ApiError::internal(
            "a usage claim without its metric or period",
        ));
    };
    let start = time::parse(start).ok_or_else(|| ApiError::internal("bad claim period"))?;
    let used = match item.i64("used") {
        Some(used) => used,
        // Counted, but the stamp was not written (DynamoDB writes it after the transaction,
        // and the process stopped in between): answer with the counter as it is now.
        None => t
            .get(&counter_key(t, metric, start))
            .await?
            .and_then(|c| c.i64("used"))
            .unwrap_or(0),
    }
    .max(0) as u64;
    let limit = item.i64("limit").map(|l| l.max(0) as u64);
    let end = item.str("period_end").map(str::to_owned);
    Ok(Some(UsageResult::accepted(
        metric,
        used,
        limit,
        time::fmt(start),
        end,
    )))
}

/// Hour, day and month buckets of the history rollups, cut from the event's time as
/// [`time::fmt`] writes it (`2026-11-26T03:…`: `H#2026-11-26T03`, `D#2026-11-26`,
/// `M#2026-11`). Event times are within four-digit years: parsed RFC 3339, or the clock.
fn rollup_buckets(at_text: &str) -> [String; 3] {
    [("H#", 13), ("D#", 10), ("M#", 7)].map(|(tag, len)| {
        let mut bucket = String::with_capacity(2 + len);
        bucket.push_str(tag);
        bucket.push_str(&at_text[..len]);
        bucket
    })
}

/// One notification per (metric, period, threshold), ever: the marker is claimed with
/// `attribute_not_exists` in the transaction that writes the notification.
async fn notify_thresholds(
    ctx: &AppContext,
    t: &TenantStore,
    spec: &LimitSpec,
    result: &UsageResult,
    now: DateTime<Utc>,
) -> Result<u32, ApiError> {
    let Some(limit) = spec.limit.filter(|l| *l > 0) else {
        return Ok(0);
    };
    let mut sent = 0;
    for threshold in &spec.warning_thresholds {
        // used / limit >= threshold%, in integers.
        if result.used * 100 < u64::from(*threshold) * limit {
            continue;
        }
        let marker = t.key(
            "NOTIFICATIONS",
            format!("SENT#{}#{}#{threshold}", result.metric, result.period_start),
        );
        let marker_id = format!("{}|{}", marker.pk, marker.sk);
        if ctx.hot.was_sent(&marker_id) {
            continue;
        }
        let id = crate::ids::new_id("ntf");
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
                    item: Item::new(t.key("NOTIFICATIONS", format!("ID#{id}")))
                        .with("sk", format!("N#{at}#{id}")),
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
            Ok(()) => {
                sent += 1;
                ctx.hot.mark_sent(marker_id);
            }
            Err(e) if e.failed_condition_index() == Some(0) => ctx.hot.mark_sent(marker_id),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(sent)
}

/// The platform usage index's partitions for `metric` in the month of `at`.
pub fn usage_index_partitions(metric: &str, at: DateTime<Utc>) -> Vec<String> {
    let month = &time::fmt(at)[..7];
    (0..USAGE_INDEX_SHARDS)
        .map(|shard| usage_index_partition(metric, month, shard))
        .collect()
}

/// `IDX#USAGE#<metric>#<yyyy-mm>#<shard, two digits>`: one shard of the platform usage index
/// for a month.
fn usage_index_partition(metric: &str, month: &str, shard: u32) -> String {
    debug_assert!(shard < 100, "two digits");
    let mut pk = String::with_capacity(24 + metric.len());
    pk.push_str("IDX#USAGE#");
    pk.push_str(metric);
    pk.push('#');
    pk.push_str(month);
    pk.push('#');
    pk.push(char::from(b'0' + (shard / 10) as u8));
    pk.push(char::from(b'0' + (shard % 10) as u8));
    pk
}

/// What the `limit-warnings` sweep did with one counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// Warnings the real-time path had not sent were sent now.
    Sent,
    /// Nothing to send (below every threshold, or already sent).
    NothingDue,
    /// The counter is not for the tenant's current period or plan (nothing applies).
    NotCurrent,
}

/// Sends the warnings a counter (an item of the platform usage index) is due and has not had:
/// the real-time path sends them with the event, but a process that stopped between the
/// event's commit and the warning's would leave them unsent. Markers keep it exactly once.
pub async fn sweep_counter(
    ctx: &AppContext,
    counter: &Item,
    now: DateTime<Utc>,
) -> Result<Sweep, ApiError> {
    let Some((tenant, metric, period_start)) = counter_of(counter) else {
        return Ok(Sweep::NotCurrent);
    };
    let limits = match limits_in_force(ctx, &tenant).await {
        Ok(limits) => limits,
        Err(e) if e.status == axum::http::StatusCode::PAYMENT_REQUIRED => {
            return Ok(Sweep::NotCurrent)
        }
        Err(e) => return Err(e),
    };
    let Some(spec) = spec_for(&limits, metric) else {
        return Ok(Sweep::NotCurrent);
    };
    let (start, end) = counting_period(spec.reset_period, &limits.sub, now);
    if time::fmt(start) != period_start {
        return Ok(Sweep::NotCurrent);
    }
    let used = counter.i64("used").unwrap_or(0).max(0) as u64;
    let result = UsageResult::accepted(
        metric,
        used,
        spec.limit,
        time::fmt(start),
        end.map(time::fmt),
    );
    let t = ctx.stores.tenant(&tenant);
    Ok(
        match notify_thresholds(ctx, &t, spec, &result, now).await? {
            0 => Sweep::NothingDue,
            _ => Sweep::Sent,
        },
    )
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

/// A tenant's usage summary, for a platform admin looking at that tenant.
pub async fn admin_summary(
    ctx: &AppContext,
    caller: &crate::auth::Caller,
    tenant_id: &str,
) -> Result<UsageSummary, ApiError> {
    let meter = Meter {
        tenant: crate::access::admin_named_tenant(ctx, caller, tenant_id).await?,
        can_write: false,
        can_read: true,
    };
    summary(ctx, &meter).await
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

impl Meter {
    fn for_key(key: &api_keys::KeyPrincipal) -> Self {
        Meter {
            tenant: key.tenant.clone(),
            can_write: key.scopes.iter().any(|s| s == "usage:write"),
            can_read: key.scopes.iter().any(|s| s == "usage:read"),
        }
    }
}

impl axum::extract::FromRequestParts<AppContext> for Meter {
    type Rejection = axum::response::Response;

    /// An API key (`esk_…`, scoped) or a tenant access token (admins write, members read).
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        ctx: &AppContext,
    ) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        let token = crate::auth::caller::bearer(parts).map_err(crate::auth::caller::reject)?;
        if let Some(key) = api_keys::authenticate(ctx, token).await {
            let key = key.map_err(crate::auth::caller::reject)?;
            return Ok(Meter::for_key(&key));
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

// ---- platform view --------------------------------------------------------------------------

/// Shards of the platform usage index, so one popular metric does not make one hot partition.
const USAGE_INDEX_SHARDS: u32 = 16;

/// Counters sit in the platform index `IDX#USAGE#<metric>#<yyyy-mm>#<shard>` (by the month the
/// event falls in, cut from its time as [`time::fmt`] writes it), sort key the tenant, so
/// platform admins see usage across tenants without a scan.
fn admin_index(tenant: &TenantId, metric: &str, at_text: &str) -> [UpdateAction; 2] {
    let shard = crate::store::shard::of(tenant, USAGE_INDEX_SHARDS);
    [
        UpdateAction::set(
            crate::store::GSI1PK,
            usage_index_partition(metric, &at_text[..7], shard),
        ),
        UpdateAction::set(crate::store::GSI1SK, tenant.as_str()),
    ]
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AdminUsageQuery {
    pub metric: String,
    /// `yyyy-mm`; default the current month.
    pub month: Option<String>,
    /// How many top tenants (1 to 100, default 10).
    pub top: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantUsage {
    pub tenant_id: String,
    pub used: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdminUsage {
    pub metric: String,
    pub month: String,
    pub total: u64,
    pub tenants: u64,
    pub top: Vec<TenantUsage>,
}

/// Usage of one metric across tenants in a month: total and top tenants (platform admins).
pub async fn admin_usage(
    ctx: &AppContext,
    caller: &crate::auth::Caller,
    q: AdminUsageQuery,
) -> Result<AdminUsage, ApiError> {
    caller.require_platform_admin()?;
    crate::plans::policies::check_metric(&q.metric)?;
    let now = ctx.clock.now();
    let month = q
        .month
        .clone()
        .unwrap_or_else(|| format!("{:04}-{:02}", now.year(), now.month()));
    let valid = month.len() == 7
        && month.as_bytes()[4] == b'-'
        && month[..4].parse::<u32>().is_ok()
        && month[5..]
            .parse::<u32>()
            .is_ok_and(|m| (1..=12).contains(&m));
    if !valid {
        return Err(ApiError::validation("month", "use yyyy-mm"));
    }
    let top = q.top.unwrap_or(10);
    if !(1..=100).contains(&top) {
        return Err(ApiError::validation("top", "1 to 100"));
    }
    let mut per_tenant: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let platform = ctx.stores.platform();
    for shard in 0..USAGE_INDEX_SHARDS {
        let mut cursor = None;
        loop {
            let page = platform
                .query(
                    &crate::store::Query::gsi1(usage_index_partition(&q.metric, &month, shard))
                        .limit(1000)
                        .after(cursor),
                )
                .await?;
            for item in &page.items {
                let tenant = item
                    .str(crate::store::GSI1SK)
                    .unwrap_or_default()
                    .to_owned();
                *per_tenant.entry(tenant).or_default() +=
                    item.i64("used").unwrap_or(0).max(0) as u64;
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    let total = per_tenant.values().sum();
    let tenants = per_tenant.len() as u64;
    let mut ranked: Vec<TenantUsage> = per_tenant
        .into_iter()
        .map(|(tenant_id, used)| TenantUsage { tenant_id, used })
        .collect();
    ranked.sort_by(|a, b| {
        b.used
            .cmp(&a.used)
            .then_with(|| a.tenant_id.cmp(&b.tenant_id))
    });
    ranked.truncate(top as usize);
    Ok(AdminUsage {
        metric: q.metric,
        month,
        total,
        tenants,
        top: ranked,
    })
}

// ---- reads: check, history ------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    pub metric: String,
    pub quantity: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckResult {
    pub metric: String,
    /// Whether recording `quantity` now would be accepted.
    pub allowed: bool,
    pub used: u64,
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
}

/// Would this much usage be allowed now? Records nothing.
pub async fn check(
    ctx: &AppContext,
    meter: &Meter,
    req: CheckRequest,
) -> Result<CheckResult, ApiError> {
    if !meter.can_read {
        return Err(ApiError::forbidden("this key lacks the usage:read scope"));
    }
    crate::plans::policies::check_metric(&req.metric)?;
    if req.metric == "max_users" {
        // Seats are the member count (GET /v1/usage shows it), not a counter to check.
        return Err(ApiError::validation(
            "metric",
            "seats follow the tenant's members; see GET /v1/usage",
        ));
    }
    if req.quantity <= 0 || req.quantity > 1_000_000_000 {
        return Err(ApiError::validation(
            "quantity",
            "a whole number from 1 to 1000000000",
        ));
    }
    let limits = limits_in_force(ctx, &meter.tenant).await?;
    let spec = spec_for(&limits, &req.metric);
    if spec.is_none() && !ctx.free_metrics.contains(&req.metric) {
        return Err(unknown_metric());
    }
    let reset = spec.map_or(ResetPeriod::BillingPeriod, |s| s.reset_period);
    let (start, _) = counting_period(reset, &limits.sub, ctx.clock.now());
    let t = ctx.stores.tenant(&meter.tenant);
    let used = t
        .get(&counter_key(&t, &req.metric, start))
        .await?
        .and_then(|c| c.i64("used"))
        .unwrap_or(0)
        .max(0) as u64;
    let limit = spec.and_then(|s| s.limit);
    let hard = spec.is_some_and(|s| s.enforcement == Enforcement::Hard);
    Ok(CheckResult {
        metric: req.metric,
        allowed: !hard || limit.is_none_or(|l| used + req.quantity as u64 <= l),
        used,
        limit,
        remaining: limit.map(|l| l.saturating_sub(used)),
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    pub metric: String,
    /// RFC 3339, inclusive.
    pub from: String,
    /// RFC 3339, inclusive.
    pub to: String,
    /// `hour`, `day` or `month`.
    pub granularity: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryBucket {
    /// The bucket's start: `2027-04-01T13`, `2027-04-01` or `2027-04`.
    pub bucket: String,
    pub total: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct History {
    pub metric: String,
    pub granularity: String,
    pub data: Vec<HistoryBucket>,
}

/// Totals per bucket from the rollups written with each event (no scan of raw events).
pub async fn history(
    ctx: &AppContext,
    meter: &Meter,
    q: HistoryQuery,
) -> Result<History, ApiError> {
    if !meter.can_read {
        return Err(ApiError::forbidden("this key lacks the usage:read scope"));
    }
    crate::plans::policies::check_metric(&q.metric)?;
    let from =
        time::parse(&q.from).ok_or_else(|| ApiError::validation("from", "use an RFC 3339 time"))?;
    let to =
        time::parse(&q.to).ok_or_else(|| ApiError::validation("to", "use an RFC 3339 time"))?;
    if to < from {
        return Err(ApiError::validation("to", "`to` is before `from`"));
    }
    let index = match q.granularity.as_str() {
        "hour" => 0,
        "day" => 1,
        "month" => 2,
        _ => return Err(ApiError::validation("granularity", "hour, day or month")),
    };
    let lower = rollup_buckets(&time::fmt(from))[index].clone();
    let upper = rollup_buckets(&time::fmt(to))[index].clone();
    let t = ctx.stores.tenant(&meter.tenant);
    let mut data = Vec::new();
    let mut cursor = None;
    loop {
        let page = t
            .query(
                &crate::store::Query::table(t.pk(&format!("USAGEHIST#{}", q.metric)))
                    .sk(crate::store::SortKeyCondition::Between(
                        lower.clone(),
                        upper.clone(),
                    ))
                    .limit(1000)
                    .after(cursor),
            )
            .await?;
        for item in &page.items {
            data.push(HistoryBucket {
                bucket: item.key.sk[2..].to_owned(),
                total: item.i64("total").unwrap_or(0).max(0) as u64,
            });
        }
        match page.next_cursor {
            Some(next) if data.len() < 10_000 => cursor = Some(next),
            _ => break,
        }
    }
    Ok(History {
        metric: q.metric,
        granularity: q.granularity,
        data,
    })
}

// ---- gauges ---------------------------------------------------------------------------------

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
        percent: spec.limit.filter(|l| *l > 0).map(|l| value * 100 / l),
        enforcement: spec.enforcement,
        reset_period: spec.reset_period,
        period_start: time::fmt(start),
        period_end: None,
    })
}

// ---- notifications --------------------------------------------------------------------------

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationView {
    pub id: String,
    pub kind: String,
    pub message: String,
    pub data: serde_json::Value,
    pub read: bool,
    pub created_at: String,
}

fn notification_view(item: &Item) -> Result<NotificationView, ApiError> {
    Ok(NotificationView {
        id: item.required_str("notification_id")?.to_owned(),
        kind: item.required_str("kind")?.to_owned(),
        message: item.required_str("message")?.to_owned(),
        data: item.get("data").map(AttrValue::to_json).unwrap_or_default(),
        read: item.bool("read").unwrap_or(false),
        created_at: item.required_str("created_at")?.to_owned(),
    })
}

/// The tenant's notifications, newest first (any member).
pub async fn notifications(
    ctx: &AppContext,
    caller: &crate::auth::Caller,
    params: crate::http::ListParams,
) -> Result<crate::http::ListResponse<NotificationView>, ApiError> {
    let tenant = caller.own_tenant()?.clone();
    let t = ctx.stores.tenant(&tenant);
    let page = t
        .query(
            &crate::store::Query::table(t.pk("NOTIFICATIONS"))
                .begins_with("N#")
                .descending()
                .limit(params.limit()?)
                .after(params.cursor),
        )
        .await?;
    crate::http::ListResponse::from_page(page, notification_view)
}

pub async fn mark_read(
    ctx: &AppContext,
    caller: &crate::auth::Caller,
    id: &str,
) -> Result<NotificationView, ApiError> {
    let tenant = caller.own_tenant()?.clone();
    let t = ctx.stores.tenant(&tenant);
    if !crate::ids::is_key_safe(id) {
        return Err(ApiError::not_found("no such notification"));
    }
    let pointer = t
        .get(&t.key("NOTIFICATIONS", format!("ID#{id}")))
        .await?
        .ok_or_else(|| ApiError::not_found("no such notification"))?;
    let item = t
        .update(
            t.key("NOTIFICATIONS", pointer.required_str("sk")?),
            vec![UpdateAction::set("read", true)],
            Some(Condition::ItemExists),
        )
        .await
        .map_err(|e| {
            if e.is_condition_failure() {
                ApiError::not_found("no such notification")
            } else {
                e.into()
            }
        })?;
    notification_view(&item)
}

// ---- batch ----------------------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Up to 100 events; each gets its own result.
    pub events: Vec<UsageEvent>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchItemResult {
    /// The HTTP status this event alone would have had.
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<UsageResult>,
    /// The problem document, when refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchResponse {
    pub results: Vec<BatchItemResult>,
}

/// Records up to 100 events in order, each on its own (one refused event does not stop the
/// others).
pub async fn record_batch(
    ctx: &AppContext,
    meter: &RecordingMeter,
    req: BatchRequest,
) -> Result<BatchResponse, ApiError> {
    if req.events.is_empty() || req.events.len() > 100 {
        return Err(ApiError::validation("events", "1 to 100 events"));
    }
    let mut results = Vec::with_capacity(req.events.len());
    for event in req.events {
        results.push(match record(ctx, meter, event).await {
            Ok(result) => BatchItemResult {
                status: 200,
                result: Some(result),
                problem: None,
            },
            Err(e) => BatchItemResult {
                status: e.status.as_u16(),
                result: None,
                problem: Some(e.body()),
            },
        });
    }
    Ok(BatchResponse { results })
}
