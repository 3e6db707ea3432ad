//! Recording usage: one transaction per event of the idempotency claim, the counter increment
//! (conditional under a hard limit, so check and increment are one atomic step and concurrent
//! callers never pass the limit), three history rollups, and checks that the cached
//! subscription and API key still hold; replays of a key; the 402 with its upgrade hint; and
//! batches of events, each on its own.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::alerts::notify_thresholds;
use super::counters::{admin_index, counter_key, counting_period, rollup_buckets};
use super::meter::RecordingMeter;
use super::model::{check_event, unknown_metric, UsageEvent, UsageResult};
use crate::billing::grants::granted_at;
use crate::entitlements::{cheapest_plan_allowing, limits_in_force, spec_for, Limits};
use crate::error::ApiError;
use crate::plans::policies::{Enforcement, ResetPeriod};
use crate::store::{
    Condition, Item, Key, Stamp, Store, TenantId, TenantStore, UpdateAction, WriteOp,
};
use crate::time;
use crate::AppContext;

const IDEMPOTENCY_SECS: i64 = 24 * 3600;

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

/// How late an event from before its period's start may still be reported: it counts in the
/// period it happened in, under that period's limit, while that period is the counter's; a
/// billing period that closed for its invoice takes no more events, so a late report from it
/// counts in the period after.
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
    // A stale cached subscription costs one retry, an unrenewed period one more, a renewal
    // that another request or the job is finishing a few short waits; beyond that the
    // subscription keeps changing under us.
    let mut waits = 0u32;
    for attempt in 0..10 {
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
                let renewal =
                    crate::billing::subscriptions::renew(ctx, tenant, &limits.sub.id, now).await?;
                ctx.hot.forget_limits(tenant.as_str());
                if renewal == crate::billing::subscriptions::Renewal::NotDue {
                    // Somebody else is renewing it: give them a moment (20 ms, doubling).
                    waits += 1;
                    if waits > 6 {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(10 << waits)).await;
                }
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
    if !limits.meters(&event.metric) && !ctx.free_metrics.contains(&event.metric) {
        // The plan may have gained the metric since the limits were cached: look again.
        if cached {
            return Err(Attempt::StaleSubscription);
        }
        return Err(unknown_metric().into());
    }
    let reset = spec.map_or(ResetPeriod::BillingPeriod, |s| s.reset_period);
    if reset == ResetPeriod::BillingPeriod && limits.sub.usage_closed() {
        // The renewal is billing this period's usage: the event counts in the next one.
        if cached {
            return Err(Attempt::StaleSubscription);
        }
        return Err(Attempt::PeriodEnded);
    }
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
        // A late report from just before a billing period began: that period is billed (or
        // being billed) already, so the event counts in this one (bounded below).
        if !(reset == ResetPeriod::BillingPeriod && at < start && at >= start - LATENESS) {
            return Err(
                ApiError::validation("timestamp", "outside the current billing period").into(),
            );
        }
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
    // The limit in force: the plan's, plus what is granted at the event's time.
    let granted = granted_at(&limits.sub.grants, &event.metric, at);
    let limit = spec.and_then(|s| s.limit).map(|l| l + granted);
    let hard_limit = spec
        .filter(|s| s.enforcement == Enforcement::Hard)
        .and_then(|s| s.limit)
        .map(|l| l + granted);
    let refusal = Refusal {
        metric: &event.metric,
        quantity,
        limit: hard_limit.unwrap_or(0),
        granted,
    };
    if let Some(limit) = hard_limit {
        if quantity > limit {
            return Err(refused(ctx, &refusal, 0).await.into());
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
                    Attempt::Failed(refused(ctx, &refusal, used).await)
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
/// What a refusal says: the metric, the quantity asked for, the limit in force and how much of
/// it is granted on top of the plan.
struct Refusal<'a> {
    metric: &'a str,
    quantity: u64,
    limit: u64,
    granted: u64,
}

async fn refused(ctx: &AppContext, refusal: &Refusal<'_>, used: u64) -> ApiError {
    let Refusal {
        metric,
        quantity,
        limit,
        granted,
    } = *refusal;
    let mut problem = ApiError::limit_exceeded(
        metric,
        format!("{quantity} would exceed the limit of {limit} {metric} (used {used})"),
    )
    .with("used", used)
    .with("limit", limit)
    .with("plan_limit", limit - granted)
    .with("granted", granted)
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
