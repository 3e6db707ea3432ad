//! Fixed-window attempt limits kept in the store, so every Lambda instance shares them.
//! Each attempt is one conditional increment: the limit holds under concurrency.

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

/// Counts one attempt for `subject` in `scope`; a 429 with Retry-After once the window's
/// attempts are used up.
pub async fn hit(
    ctx: &AppContext,
    scope: &str,
    subject: &str,
    limit: Limit,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let condition = Condition::Or(vec![
        Condition::not_exists("count"),
        Condition::lt("count", limit.attempts),
    ]);
    let (outcome, window_end) = count_one(ctx, scope, subject, limit, now, Some(condition)).await;
    match outcome {
        Ok(_) => Ok(()),
        Err(StoreError::ConditionFailed { .. }) => Err(ApiError::rate_limited(
            (window_end - now.timestamp()).max(1) as u64,
        )
        .detail("too many attempts; wait before trying again")),
        Err(e) => Err(e.into()),
    }
}

fn window_key(scope: &str, subject: &str, limit: Limit, now: DateTime<Utc>) -> (Key, i64) {
    let window_start = now.timestamp() - now.timestamp().rem_euclid(limit.window_secs);
    (
        Key::new(
            format!("RATE#{scope}#{subject}"),
            format!("W#{window_start}"),
        ),
        window_start + limit.window_secs,
    )
}

/// How many were counted for `subject` in the current window.
pub async fn count(
    ctx: &AppContext,
    scope: &str,
    subject: &str,
    limit: Limit,
    now: DateTime<Utc>,
) -> Result<i64, ApiError> {
    let (key, _) = window_key(scope, subject, limit, now);
    Ok(ctx
        .stores
        .platform()
        .get(&key)
        .await?
        .and_then(|i| i.i64("count"))
        .unwrap_or(0))
}

/// Counts one for `subject` in the current window, without a limit (failures are counted
/// after the fact; [`count`] decides).
pub async fn add(ctx: &AppContext, scope: &str, subject: &str, limit: Limit, now: DateTime<Utc>) {
    if let (Err(e), _) = count_one(ctx, scope, subject, limit, now, None).await {
        tracing::warn!(error = %e, "could not count a failed attempt");
    }
}

/// One more in the current window of `subject` (under `condition`); returns the outcome and
/// when the window ends.
async fn count_one(
    ctx: &AppContext,
    scope: &str,
    subject: &str,
    limit: Limit,
    now: DateTime<Utc>,
    condition: Option<Condition>,
) -> (Result<crate::store::Item, StoreError>, i64) {
    let (key, window_end) = window_key(scope, subject, limit, now);
    let outcome = ctx
        .stores
        .platform()
        .update(
            key,
            vec![
                UpdateAction::add("count", 1),
                UpdateAction::set(crate::store::TTL, window_end + 3600),
            ],
            condition,
        )
        .await;
    (outcome, window_end)
}

/// Forgets the attempts of `subject` in the current window (after a successful login).
pub async fn reset(ctx: &AppContext, scope: &str, subject: &str, limit: Limit, now: DateTime<Utc>) {
    let (key, _) = window_key(scope, subject, limit, now);
    if let Err(e) = ctx.stores.platform().delete(key, None).await {
        tracing::warn!(error = %e, "could not reset a rate-limit window");
    }
}

#[cfg(test)]
mod tests {
    use super::address_subject;

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
