//! Plan-based rate limits, shared by every instance through the store.
//!
//! Each (tenant, bucket) has one item holding a GCRA time per window (`usage::gcra`), moved by
//! conditional updates that carry the limit (`take_op`), so instances never admit more than
//! the windows allow between them, and concurrent takes on a busy bucket add up rather than
//! race. Two things keep that item from being a hot spot:
//! - **Leases.** An instance takes permits in blocks: `max(1, a tenth of a second's worth of
//!   the tightest window)`, all counted in the stored times at once, and hands them out from
//!   memory for at most [`LEASE_US`]; leftovers are dropped, never returned. A bucket
//!   of 100 a minute leases one at a time (exact); one of 100,000 a minute leases 166, so
//!   an instance writes the item at most about ten times a second however busy it is.
//! - **Remembered refusals.** A refused instance refuses locally until the moment the stored
//!   times said a permit would be free; times only grow, so that refusal is never wrong.
//!
//! The bound, per window: over any stretch `L`, admitted ≤ `limit + floor((L + LEASE) /
//! interval)` where `interval = period / limit` and `LEASE` is [`LEASE_US`] when
//! blocks are larger than one (permits leased just before the stretch may be used in it),
//! and 0 when the bucket leases one at a time. Never more; at most one block per instance
//! per second may go unused (fewer admitted, never more).
//!
//! Within an instance one request at a time goes to the store per bucket (the others wait for
//! its lease or refusal).

use std::sync::Arc;

use crate::error::ApiError;
use crate::plans::rates::{RateLimit, RatePeriod};
use crate::store::{Condition, Item, Store, StoreError, TenantId, UpdateAction, WriteOp};
use crate::AppContext;

use super::gcra::{self, Decision, Window};

/// How long a leased permit may wait in memory before it is dropped (µs).
pub const LEASE_US: i64 = 1_000_000;
/// A lease block is this much of the tightest window's rate (µs of it).
const BLOCK_OF_US: i64 = 100_000;
/// Conditional writes tried before answering 503 (only under heavy cross-instance races).
const ATTEMPTS: usize = 8;

/// One window's state as an answer reports it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct WindowNow {
    pub limit: u64,
    pub per: RatePeriod,
    /// Requests the window would admit at once now (from this instance's view).
    pub remaining: u64,
    /// Seconds until the window is full again.
    pub reset_seconds: u64,
}

/// What a take (or a look) found.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub bucket: String,
    pub allowed: bool,
    /// Tightest window first.
    pub windows: Vec<WindowNow>,
    /// When refused: seconds until the same request would be admitted (`None`: never, it
    /// asks for more than a window's limit).
    pub retry_after_seconds: Option<u64>,
}

/// An instance's memory of one bucket (in `HotCache`).
#[derive(Debug, Default)]
pub struct LocalBucket {
    config: Vec<RateLimit>,
    /// The stored item as last seen (the next conditional write is built on it).
    item: Option<Item>,
    leased: u64,
    lease_until: i64,
    /// Before this, a block that does not fit is not followed by a single-permit write.
    single_after: i64,
}

fn attr(per: RatePeriod) -> String {
    format!("tat_{}", per.as_str())
}

fn windows_of(limits: &[&RateLimit]) -> Vec<Window> {
    limits
        .iter()
        .map(|r| Window::new(r.limit, r.per.seconds() * 1_000_000))
        .collect()
}

fn tats_of(item: Option<&Item>, limits: &[&RateLimit]) -> Vec<i64> {
    limits
        .iter()
        .map(|r| item.and_then(|i| i.i64(&attr(r.per))).unwrap_or(0))
        .collect()
}

/// Permits one store write takes: a tenth of a second of the tightest window's rate.
fn block(windows: &[Window]) -> u64 {
    windows
        .iter()
        .map(|w| {
            let per_block = i128::from(w.limit) * i128::from(BLOCK_OF_US) / i128::from(w.period_us);
            u64::try_from(per_block).unwrap_or(u64::MAX).min(w.limit)
        })
        .min()
        .unwrap_or(1)
        .max(1)
}

fn ceil_secs(us: i64) -> u64 {
    (us.max(0) as u64).div_ceil(1_000_000)
}

fn now_us(ctx: &AppContext) -> i64 {
    ctx.clock.now().timestamp_micros()
}

fn outcome(
    bucket: &str,
    limits: &[&RateLimit],
    item: Option<&Item>,
    extra: u64,
    now: i64,
    refusal: Option<Option<i64>>,
) -> Outcome {
    let windows = windows_of(limits);
    let tats = tats_of(item, limits);
    Outcome {
        bucket: bucket.to_owned(),
        allowed: refusal.is_none(),
        windows: limits
            .iter()
            .zip(windows.iter().zip(&tats))
            .map(|(r, (w, tat))| WindowNow {
                limit: r.limit,
                per: r.per,
                remaining: (w.remaining(*tat, now) + extra).min(r.limit),
                reset_seconds: ceil_secs(w.reset_after(*tat, now)),
            })
            .collect(),
        retry_after_seconds: refusal.flatten().map(|us| ceil_secs(us).max(1)),
    }
}

/// Takes `cost` requests from `tenant`'s `bucket` (its windows `limits`, tightest first), all
/// or nothing. A refusal is an `Outcome` with `allowed: false`, not an error.
pub async fn take(
    ctx: &AppContext,
    tenant: &TenantId,
    bucket: &str,
    limits: &[&RateLimit],
    cost: u64,
) -> Result<Outcome, ApiError> {
    if limits.is_empty() {
        return Err(ApiError::internal("a rate take without windows"));
    }
    let cost = cost.max(1);
    let local = ctx.hot.rate_bucket(tenant.as_str(), bucket);
    let mut local = local.lock().await;
    let config: Vec<RateLimit> = limits.iter().map(|r| (*r).clone()).collect();
    if local.config != config {
        *local = LocalBucket {
            config,
            ..LocalBucket::default()
        };
    }
    let now = now_us(ctx);
    // Admitted: what is left counts the permits this instance still holds.
    let admitted =
        |local: &LocalBucket| outcome(bucket, limits, local.item.as_ref(), local.leased, now, None);
    if cost <= local.leased && now < local.lease_until {
        local.leased -= cost;
        return Ok(admitted(&local));
    }
    local.leased = 0;
    let windows = windows_of(limits);
    let block = block(&windows);
    let mut want = block.max(cost);
    let t = ctx.stores.tenant(tenant);
    let key = t.key("RATES", format!("BUCKET#{bucket}"));
    // Past every window's times an item says nothing an absent one would not; a successful
    // take leaves no time beyond now + the window's tolerance.
    let furthest = windows.iter().map(Window::tolerance).max().unwrap_or(0);
    let expires = (now + furthest) / 1_000_000 + 60;
    let refused = |local: &LocalBucket, wait: Option<i64>| {
        outcome(bucket, limits, local.item.as_ref(), 0, now, Some(wait))
    };
    for _ in 0..ATTEMPTS {
        // Refusals need no I/O: decided on the times last seen, which only ever grow, so a
        // refusal from them is one the store would give too.
        let tats = tats_of(local.item.as_ref(), limits);
        match gcra::take(&windows, &tats, now, want) {
            Decision::Admitted(_) => {
                let op = take_op(
                    key.clone(),
                    bucket,
                    limits,
                    &windows,
                    &tats,
                    now,
                    want,
                    expires,
                );
                match t.write(op).await {
                    Ok(after) => {
                        local.item = after;
                        local.leased = want - cost;
                        local.lease_until = now + LEASE_US;
                        if want < block {
                            local.single_after = now + BLOCK_OF_US;
                        }
                        return Ok(admitted(&local));
                    }
                    // The times were not what this instance last saw: go on from what they are.
                    Err(StoreError::ConditionFailed { current }) => {
                        local.item = current.map(|boxed| *boxed);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            // A whole block does not fit. A single request may, but a nearly empty bucket
            // taken one permit per write would make its item hot: an instance does that at
            // most once per block's time, and otherwise refuses until a block fits.
            Decision::Refused { retry_after_us } if want > cost => {
                if now >= local.single_after {
                    want = cost;
                } else {
                    let wait = retry_after_us.min(local.single_after - now);
                    return Ok(refused(&local, Some(wait)));
                }
            }
            Decision::Refused { retry_after_us } => {
                return Ok(refused(&local, Some(retry_after_us)))
            }
            // More than a window's limit at once (a block never is).
            Decision::TooLarge => return Ok(refused(&local, None)),
        }
    }
    Err(ApiError::unavailable(
        "the rate limit's state is busy; retry shortly",
    ))
}

/// The write that takes `n` from every window, as GCRA's arithmetic in the store's own terms,
/// so writers on several instances commute instead of racing on a revision:
/// - a window whose time is in the past (idle) restarts from now: `SET tat = now + n·interval`
///   if it is still in the past;
/// - a busy one moves on: `ADD n·interval` if it is at or after now and stays within the
///   burst tolerance (`tat ≤ now + tolerance − n·interval`): the store enforces the limit, so
///   two instances adding at once are both right, or one is refused and told the times.
#[allow(clippy::too_many_arguments)]
fn take_op(
    key: crate::store::Key,
    bucket: &str,
    limits: &[&RateLimit],
    windows: &[Window],
    seen: &[i64],
    now: i64,
    n: u64,
    expires: i64,
) -> WriteOp {
    let mut actions = vec![
        UpdateAction::set("bucket", bucket),
        UpdateAction::set(crate::store::TTL, expires),
    ];
    let mut conditions = Vec::with_capacity(limits.len());
    for ((rate, window), tat) in limits.iter().zip(windows).zip(seen) {
        let name = attr(rate.per);
        let cost = window
            .interval()
            .saturating_mul(i64::try_from(n).unwrap_or(i64::MAX));
        if *tat < now {
            actions.push(UpdateAction::set(&name, now + cost));
            conditions.push(Condition::Or(vec![
                Condition::not_exists(&name),
                Condition::lt(&name, now),
            ]));
        } else {
            actions.push(UpdateAction::add(&name, cost));
            conditions.push(Condition::And(vec![
                Condition::ge(&name, now),
                Condition::le(&name, now + window.tolerance() - cost),
            ]));
        }
    }
    WriteOp::Update {
        key,
        actions,
        condition: Some(Condition::And(conditions)),
    }
}

/// Buckets' state now, taking nothing: one batch read for all of them.
pub async fn look(
    ctx: &AppContext,
    tenant: &TenantId,
    buckets: &[(String, Vec<&RateLimit>)],
) -> Result<Vec<Outcome>, ApiError> {
    if buckets.is_empty() {
        return Ok(Vec::new());
    }
    let t = ctx.stores.tenant(tenant);
    let keys: Vec<_> = buckets
        .iter()
        .map(|(bucket, _)| t.key("RATES", format!("BUCKET#{bucket}")))
        .collect();
    let items = t.get_many(&keys).await?;
    let now = now_us(ctx);
    Ok(buckets
        .iter()
        .zip(&items)
        .map(|((bucket, limits), item)| outcome(bucket, limits, item.as_ref(), 0, now, None))
        .collect())
}

/// The `RateLimit-Policy` and `RateLimit` header values (IETF httpapi rate-limit headers
/// draft) of an outcome: one policy per window, named `<bucket>_<period>`.
pub fn header_values(outcome: &Outcome) -> (String, String) {
    let name = |w: &WindowNow| format!("\"{}_{}\"", outcome.bucket, w.per.as_str());
    let policy = outcome
        .windows
        .iter()
        .map(|w| format!("{};q={};w={}", name(w), w.limit, w.per.seconds()))
        .collect::<Vec<_>>()
        .join(", ");
    let state = outcome
        .windows
        .iter()
        .map(|w| format!("{};r={};t={}", name(w), w.remaining, w.reset_seconds))
        .collect::<Vec<_>>()
        .join(", ");
    (policy, state)
}

/// Shared handle type of the per-bucket memory.
pub type LocalHandle = Arc<tokio::sync::Mutex<LocalBucket>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_a_tenth_of_a_second_of_the_tightest_window() {
        let w = |limit, secs: i64| Window::new(limit, secs * 1_000_000);
        assert_eq!(block(&[w(100, 60)]), 1);
        assert_eq!(block(&[w(100_000, 60)]), 166);
        assert_eq!(block(&[w(100_000, 60), w(1_000, 3_600)]), 1);
        assert_eq!(block(&[w(50, 1)]), 5);
    }

    #[test]
    fn headers_name_each_window() {
        let o = Outcome {
            bucket: "eshtarek_api".into(),
            allowed: true,
            windows: vec![WindowNow {
                limit: 60,
                per: RatePeriod::Minute,
                remaining: 59,
                reset_seconds: 1,
            }],
            retry_after_seconds: None,
        };
        let (policy, state) = header_values(&o);
        assert_eq!(policy, "\"eshtarek_api_minute\";q=60;w=60");
        assert_eq!(state, "\"eshtarek_api_minute\";r=59;t=1");
    }
}
