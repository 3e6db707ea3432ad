//! Fixed-window attempt limits kept in the store, so every Lambda instance shares them.
//! Each attempt is one conditional increment: the limit holds under concurrency.

use chrono::{DateTime, Utc};

use crate::error::ApiError;
use crate::store::{Condition, Key, StoreError, StoreExt, UpdateAction};
use crate::AppContext;

#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub attempts: i64,
    pub window_secs: i64,
}

/// Login attempts per email (`ESHTAREK_LOGIN_LIMIT_PER_EMAIL`, default 10 per 15 minutes).
pub fn login_per_email() -> Limit {
    Limit {
        attempts: env_or("ESHTAREK_LOGIN_LIMIT_PER_EMAIL", 10),
        window_secs: 900,
    }
}

/// Login attempts per client address (`ESHTAREK_LOGIN_LIMIT_PER_IP`, default 100 per 15 min).
pub fn login_per_ip() -> Limit {
    Limit {
        attempts: env_or("ESHTAREK_LOGIN_LIMIT_PER_IP", 100),
        window_secs: 900,
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
    let window_start = now.timestamp() - now.timestamp().rem_euclid(limit.window_secs);
    let window_end = window_start + limit.window_secs;
    let key = Key::new(
        format!("RATE#{scope}#{subject}"),
        format!("W#{window_start}"),
    );
    let outcome = ctx
        .stores
        .platform()
        .update(
            key,
            vec![
                UpdateAction::add("count", 1),
                UpdateAction::set(crate::store::TTL, window_end + 3600),
            ],
            Some(Condition::Or(vec![
                Condition::not_exists("count"),
                Condition::lt("count", limit.attempts),
            ])),
        )
        .await;
    match outcome {
        Ok(_) => Ok(()),
        Err(StoreError::ConditionFailed { .. }) => Err(ApiError::rate_limited(
            (window_end - now.timestamp()).max(1) as u64,
        )
        .detail("too many attempts; wait before trying again")),
        Err(e) => Err(e.into()),
    }
}

/// Forgets the attempts of `subject` in the current window (after a successful login).
pub async fn reset(ctx: &AppContext, scope: &str, subject: &str, limit: Limit, now: DateTime<Utc>) {
    let window_start = now.timestamp() - now.timestamp().rem_euclid(limit.window_secs);
    let key = Key::new(
        format!("RATE#{scope}#{subject}"),
        format!("W#{window_start}"),
    );
    if let Err(e) = ctx.stores.platform().delete(key, None).await {
        tracing::warn!(error = %e, "could not reset a rate-limit window");
    }
}
