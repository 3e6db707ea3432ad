//! Attempt limits kept in the store, so every Lambda instance shares them: sliding-window
//! counters (one item per subject and fixed window; the previous window's count weighs in by
//! how much of it is still within the last window's length). Each attempt is one batch read
//! and one conditional increment: the limit holds under concurrency. Bounds, tested below: no
//! aligned window admits more than the limit, no stretch of a window's length reaches twice
//! it, and the first attempts after a full window are refused (fixed windows alone would let
//! 2·limit through within seconds either side of a boundary).

use chrono::{DateTime, Utc};

use crate::error::ApiError;
use crate::store::{Condition, Key, Store, StoreError, StoreExt, UpdateAction};
use crate::AppContext;

#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub attempts: i64,
    pub window_secs: i64,
}

/// The attempt limits of sign-in and sign-up, read once from the environment when the
/// context is built (each unset or invalid one keeps its default).
#[derive(Debug, Clone, Copy)]
pub struct AuthLimits {
    /// Login attempts per (email, client address) (`ESHTAREK_LOGIN_LIMIT_PER_EMAIL`, default
    /// 10 per 15 minutes): the lockout falls on the guesser's address, not on the account, so
    /// a stranger cannot lock the owner out.
    pub login_per_email: Limit,
    /// Failed logins per email from all addresses together
    /// (`ESHTAREK_LOGIN_CEILING_PER_EMAIL`, default 1,000 per 15 minutes), against guessing
    /// spread over many addresses. Past [`SLOW_AFTER`] failures each attempt is answered more
    /// slowly; only the ceiling refuses.
    pub login_ceiling_per_email: Limit,
    /// Login attempts per client address (`ESHTAREK_LOGIN_LIMIT_PER_IP`, default 100 per 15
    /// minutes).
    pub login_per_ip: Limit,
    /// Registrations per client address (`ESHTAREK_REGISTER_LIMIT_PER_IP`, default 20 an
    /// hour).
    pub register_per_ip: Limit,
    /// Registrations platform-wide (`ESHTAREK_REGISTER_LIMIT_GLOBAL`, default 1,000 an hour).
    pub register_global: Limit,
}

impl AuthLimits {
    pub fn from_env() -> Self {
        let limit = |name: &str, default: i64, window_secs: i64| Limit {
            attempts: env_or(name, default),
            window_secs,
        };
        Self {
            login_per_email: limit("ESHTAREK_LOGIN_LIMIT_PER_EMAIL", 10, 900),
            login_ceiling_per_email: limit("ESHTAREK_LOGIN_CEILING_PER_EMAIL", 1_000, 900),
            login_per_ip: limit("ESHTAREK_LOGIN_LIMIT_PER_IP", 100, 900),
            register_per_ip: limit("ESHTAREK_REGISTER_LIMIT_PER_IP", 20, 3600),
            register_global: limit("ESHTAREK_REGISTER_LIMIT_GLOBAL", 1_000, 3600),
        }
    }
}

/// Failures per email after which answers slow down.
pub const SLOW_AFTER: i64 = 10;

/// The delay before answering a login for an email with `failures` recent failures: 50 ms
/// more per failure past [`SLOW_AFTER`], at most 3 s (far below the request timeout).
pub fn login_delay(failures: i64) -> std::time::Duration {
    let over = (failures - SLOW_AFTER).max(0) as u64;
    std::time::Duration::from_millis((over * 50).min(3_000))
}

/// The client address as a rate-limit subject: an IPv4 address whole, an IPv6 address by its
/// /64 (one host is routinely given a whole /64, so per-address limits on full IPv6 addresses
/// would limit nothing).
pub fn address_subject(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

fn env_or(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v: &i64| *v > 0)
        .unwrap_or(default)
}

/// The counts of the current window and the one before it, and how far into the current
/// one `now` is: the inputs of the sliding-window estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub previous: i64,
    pub current: i64,
    /// Seconds since the current window began, `0..window_secs`.
    pub elapsed: i64,
}

impl Counts {
    /// The attempts of the last `window_secs`, estimated the sliding-window way: the current
    /// window's count plus the previous window's, weighted by how much of it still lies within
    /// the last `window_secs`, rounded up so the estimate never lets an attempt through early.
    /// Fixed windows alone let twice the limit through across a boundary (all of one window's
    /// attempts in its last second and all of the next one's in its first).
    pub fn weighted(&self, limit: Limit) -> i64 {
        let w = limit.window_secs;
        self.current + ceil_div(self.previous * (w - self.elapsed), w)
    }

    /// How many more attempts fit now (0 if none).
    pub fn room(&self, limit: Limit) -> i64 {
        (limit.attempts - self.weighted(limit)).max(0)
    }

    /// Whole seconds until one more attempt fits (at least 1): for Retry-After.
    pub fn wait_secs(&self, limit: Limit) -> u64 {
        let (a, w, e) = (limit.attempts, limit.window_secs, self.elapsed);
        let to_next = w - e;
        let wait = if self.current >= a {
            // Only after this window ends, once its count, then the previous one, has
            // weighed down to a - 1: c·(w - t)/w ≤ a - 1 at t ≥ w - (a - 1)·w/c.
            to_next + (w - (a - 1) * w / self.current).max(0)
        } else if self.previous == 0 {
            0
        } else {
            // Within this window, once p·(w - e - t)/w ≤ a - 1 - c.
            (to_next - (a - 1 - self.current) * w / self.previous).max(0)
        };
        wait.max(1) as u64
    }
}

fn ceil_div(n: i64, d: i64) -> i64 {
    (n + d - 1).div_euclid(d)
}

/// Counts one attempt for `subject` in `scope`; a 429 with Retry-After once the last window's
/// attempts are used up. One consistent batch read of both windows, then (when admitted) one
/// conditional increment bounded by the room that read left, so concurrent attempts on other
/// instances cannot pass the limit either: the previous window no longer changes.
pub async fn hit(
    ctx: &AppContext,
    scope: &str,
    subject: &str,
    limit: Limit,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let counts = read(ctx, scope, subject, limit, now).await?;
    let room = counts.room(limit);
    let refused = |counts: Counts| {
        ApiError::rate_limited(counts.wait_secs(limit))
            .detail("too many attempts; wait before trying again")
    };
    if room == 0 {
        return Err(refused(counts));
    }
    let allowed = counts.current + room;
    let condition = Condition::Or(vec![
        Condition::not_exists("count"),
        Condition::lt("count", allowed),
    ]);
    match count_one(ctx, scope, subject, limit, now, Some(condition)).await {
        Ok(_) => Ok(()),
        // Others took the room between the read and the write.
        Err(StoreError::ConditionFailed { .. }) => Err(refused(Counts {
            current: allowed,
            ..counts
        })),
        Err(e) => Err(e.into()),
    }
}

/// The current window's start and key for `subject`, and the previous window's key.
fn window_keys(scope: &str, subject: &str, limit: Limit, now: DateTime<Utc>) -> (i64, Key, Key) {
    let start = now.timestamp() - now.timestamp().rem_euclid(limit.window_secs);
    let key = |start: i64| Key::new(format!("RATE#{scope}#{subject}"), format!("W#{start}"));
    (start, key(start), key(start - limit.window_secs))
}

/// The counts of `subject`'s current and previous windows.
pub async fn read(
    ctx: &AppContext,
    scope: &str,
    subject: &str,
    limit: Limit,
    now: DateTime<Utc>,
) -> Result<Counts, ApiError> {
    let (start, current, previous) = window_keys(scope, subject, limit, now);
    let items = ctx.stores.platform().get_many(&[current, previous]).await?;
    let count = |i: usize| {
        items
            .get(i)
            .and_then(Option::as_ref)
            .and_then(|item| item.i64("count"))
            .unwrap_or(0)
    };
    Ok(Counts {
        current: count(0),
        previous: count(1),
        elapsed: now.timestamp() - start,
    })
}

/// Counts one for `subject` in the current window, without a limit (failures are counted
/// after the fact; [`read`] decides).
pub async fn add(ctx: &AppContext, scope: &str, subject: &str, limit: Limit, now: DateTime<Utc>) {
    if let Err(e) = count_one(ctx, scope, subject, limit, now, None).await {
        tracing::warn!(error = %e, "could not count a failed attempt");
    }
}

/// One more in the current window of `subject` (under `condition`). The item outlives its
/// window by one more, while it weighs on the next.
async fn count_one(
    ctx: &AppContext,
    scope: &str,
    subject: &str,
    limit: Limit,
    now: DateTime<Utc>,
    condition: Option<Condition>,
) -> Result<crate::store::Item, StoreError> {
    let (start, key, _) = window_keys(scope, subject, limit, now);
    ctx.stores
        .platform()
        .update(
            key,
            vec![
                UpdateAction::add("count", 1),
                UpdateAction::set(crate::store::TTL, start + 2 * limit.window_secs + 60),
            ],
            condition,
        )
        .await
}

/// Forgets the attempts of `subject` (after a successful login): both windows, since the
/// previous one still weighs.
pub async fn reset(ctx: &AppContext, scope: &str, subject: &str, limit: Limit, now: DateTime<Utc>) {
    let (_, current, previous) = window_keys(scope, subject, limit, now);
    for key in [current, previous] {
        if let Err(e) = ctx.stores.platform().delete(key, None).await {
            tracing::warn!(error = %e, "could not reset a rate-limit window");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{address_subject, Counts, Limit};

    const HOURLY_20: Limit = Limit {
        attempts: 20,
        window_secs: 3600,
    };

    fn counts(previous: i64, current: i64, elapsed: i64) -> Counts {
        Counts {
            previous,
            current,
            elapsed,
        }
    }

    #[test]
    fn a_full_window_still_weighs_just_after_the_boundary() {
        // 20 in the last seconds of one hour: the first seconds of the next refuse.
        let c = counts(20, 0, 1);
        assert_eq!(c.weighted(HOURLY_20), 20);
        assert_eq!(c.room(HOURLY_20), 0);
        // p·(w − e − t)/w ≤ 19 at t ≥ 3599 − 3420 = 179 s.
        assert_eq!(c.wait_secs(HOURLY_20), 179);
        assert_eq!(counts(20, 0, 1 + 179).room(HOURLY_20), 1);
        assert_eq!(counts(20, 0, 1 + 178).room(HOURLY_20), 0);
    }

    #[test]
    fn the_previous_window_weighs_less_as_the_current_one_goes_on() {
        assert_eq!(counts(20, 0, 1800).weighted(HOURLY_20), 10);
        assert_eq!(counts(20, 5, 1800).room(HOURLY_20), 5);
        assert_eq!(counts(20, 0, 3599).weighted(HOURLY_20), 1);
        assert_eq!(counts(0, 19, 10).room(HOURLY_20), 1);
    }

    #[test]
    fn a_full_current_window_waits_into_the_next() {
        // 20 now, 100 s in: 3,500 s to the boundary, then 180 s of the next.
        let c = counts(0, 20, 100);
        assert_eq!(c.room(HOURLY_20), 0);
        assert_eq!(c.wait_secs(HOURLY_20), 3500 + 180);
        let later = counts(20, 0, 180);
        assert_eq!(later.room(HOURLY_20), 1);
    }

    /// Attempts at random times (a seeded generator, clustered so some land at the windows'
    /// ends), each admitted when there is room: no aligned window admits more than the limit,
    /// and no stretch of one window's length reaches twice the limit (a fixed window alone lets
    /// 2·limit through within seconds either side of a boundary). Over the whole run the rate
    /// stays the limit's.
    #[test]
    fn admissions_stay_within_the_sliding_bounds() {
        let w = HOURLY_20.window_secs;
        for seed in 1..200u64 {
            let mut state = seed;
            let mut next = move |bound: i64| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) % bound as u64) as i64
            };
            let mut times: Vec<i64> = (0..400)
                .map(|_| {
                    let window = next(6);
                    // Half of them in the last or first minute of a window.
                    match next(4) {
                        0 => window * w + w - 1 - next(60),
                        1 => window * w + next(60),
                        _ => window * w + next(w),
                    }
                })
                .collect();
            times.sort_unstable();
            let mut admitted: Vec<i64> = Vec::new();
            for t in times {
                let start = t - t % w;
                let in_window =
                    |s: i64| admitted.iter().filter(|&&a| a >= s && a < s + w).count() as i64;
                let c = counts(in_window(start - w), in_window(start), t - start);
                if c.room(HOURLY_20) > 0 {
                    admitted.push(t);
                }
            }
            for k in 0..6 {
                let aligned = admitted.iter().filter(|&&a| a / w == k).count();
                assert!(aligned <= 20, "seed {seed}: {aligned} in window {k}");
            }
            for &from in &admitted {
                let within = admitted
                    .iter()
                    .filter(|&&a| a >= from && a < from + w)
                    .count();
                assert!(within < 40, "seed {seed}: {within} in the hour from {from}");
            }
            assert!(admitted.len() <= 6 * 20);
        }
    }

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        let a = address_subject("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = address_subject("2001:db8:1:2:bbbb::9".parse().unwrap());
        assert_eq!(a, b);
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_ne!(a, address_subject("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(
            address_subject("::ffff:203.0.113.7".parse().unwrap()),
            "203.0.113.7"
        );
        assert_eq!(
            address_subject("203.0.113.7".parse().unwrap()),
            "203.0.113.7"
        );
    }
}
