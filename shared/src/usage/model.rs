//! A usage event as a client sends it (checked before anything is read) and the answer it
//! gets.

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

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
    pub(super) fn accepted(
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

pub(super) fn check_event(event: &UsageEvent) -> Result<(), ApiError> {
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
pub(super) fn unknown_metric() -> ApiError {
    ApiError::validation(
        "metric",
        "the plan neither limits nor charges this metric, and it is not one the platform records freely",
    )
}
