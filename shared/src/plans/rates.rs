//! Request-rate limits a plan version sets: per named bucket, one or more windows
//! (`requests`: 60 a minute and 1,000 an hour). A tenant's backend asks about its own buckets
//! with the entitlement check; the bucket [`API_BUCKET`] is the rate of the tenant's calls to
//! Eshtarek's own API. How they are enforced: `usage::rate_limits` (GCRA, `usage::gcra`).

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The bucket that limits a tenant's calls to Eshtarek's own endpoints.
pub const API_BUCKET: &str = "eshtarek_api";

/// Rate limits one version may set.
pub const MAX_PER_VERSION: usize = 20;

/// The largest `limit` of one window.
pub const MAX_LIMIT: u64 = 100_000_000;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RatePeriod {
    Second,
    Minute,
    Hour,
    Day,
}

impl RatePeriod {
    pub fn seconds(self) -> i64 {
        match self {
            RatePeriod::Second => 1,
            RatePeriod::Minute => 60,
            RatePeriod::Hour => 3_600,
            RatePeriod::Day => 86_400,
        }
    }

    /// The most one window of this period may allow: 10,000 a second, so requests are at
    /// least 100 µs apart and rounding the interval to the microsecond costs under 1%.
    pub fn max_limit(self) -> u64 {
        (self.seconds() as u64 * 10_000).min(MAX_LIMIT)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RatePeriod::Second => "second",
            RatePeriod::Minute => "minute",
            RatePeriod::Hour => "hour",
            RatePeriod::Day => "day",
        }
    }
}

/// `limit` requests per `per` in `bucket`, enforced as a GCRA: a burst of up to `limit`, then
/// one every `per / limit`. At most 10,000 a second (600,000 a minute, 36,000,000 an hour).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// The bucket's name; `eshtarek_api` is the tenant's calls to Eshtarek's own API.
    #[schema(pattern = "^[a-z][a-z0-9_]{0,63}$", example = "requests")]
    pub bucket: String,
    #[schema(minimum = 1, maximum = 100000000, example = 60)]
    pub limit: u64,
    pub per: RatePeriod,
}

/// Checks a version's rate limits: valid bucket names, limits in range, at most one window
/// per bucket and period, at most [`MAX_PER_VERSION`]. A 422 names the field
/// (`rate_limits[1].limit`). Sorted by bucket, then period, so equal sets compare equal.
pub fn check(mut limits: Vec<RateLimit>) -> Result<Vec<RateLimit>, ApiError> {
    if limits.len() > MAX_PER_VERSION {
        return Err(ApiError::validation(
            "rate_limits",
            "at most 20 rate limits per plan",
        ));
    }
    for (i, rate) in limits.iter().enumerate() {
        crate::plans::policies::check_metric(&rate.bucket).map_err(|_| {
            ApiError::validation(
                format!("rate_limits[{i}].bucket"),
                "a bucket is 1 to 64 of a-z, 0-9 and _, starting with a letter",
            )
        })?;
        if !(1..=MAX_LIMIT).contains(&rate.limit) {
            return Err(ApiError::validation(
                format!("rate_limits[{i}].limit"),
                "a whole number from 1 to 100000000",
            ));
        }
        if rate.limit > rate.per.max_limit() {
            return Err(ApiError::validation(
                format!("rate_limits[{i}].limit"),
                format!(
                    "at most {} a {} (10,000 a second): use a longer period for more",
                    rate.per.max_limit(),
                    rate.per.as_str()
                ),
            ));
        }
        if limits[..i]
            .iter()
            .any(|r| r.bucket == rate.bucket && r.per == rate.per)
        {
            return Err(ApiError::validation(
                format!("rate_limits[{i}].per"),
                "one limit per bucket and period",
            ));
        }
    }
    limits.sort_by(|a, b| (&a.bucket, a.per).cmp(&(&b.bucket, b.per)));
    Ok(limits)
}

/// The windows of `bucket`, tightest first (shortest period).
pub fn of_bucket<'a>(limits: &'a [RateLimit], bucket: &str) -> Vec<&'a RateLimit> {
    let mut found: Vec<&RateLimit> = limits.iter().filter(|r| r.bucket == bucket).collect();
    found.sort_by_key(|r| r.per);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(bucket: &str, limit: u64, per: RatePeriod) -> RateLimit {
        RateLimit {
            bucket: bucket.into(),
            limit,
            per,
        }
    }

    #[test]
    fn rate_limits_are_checked_field_by_field() {
        let ok = check(vec![
            rate("requests", 1000, RatePeriod::Hour),
            rate("requests", 60, RatePeriod::Minute),
        ])
        .unwrap();
        assert_eq!(ok[0].per, RatePeriod::Minute, "sorted by period");
        let e = check(vec![rate("Requests", 1, RatePeriod::Second)]).unwrap_err();
        assert_eq!(e.more.field.as_deref(), Some("rate_limits[0].bucket"));
        let e = check(vec![rate("r", 0, RatePeriod::Second)]).unwrap_err();
        assert_eq!(e.more.field.as_deref(), Some("rate_limits[0].limit"));
        // Past 10,000 a second the microsecond interval would round the rate down by > 1%.
        assert!(check(vec![rate("r", 10_000, RatePeriod::Second)]).is_ok());
        assert!(check(vec![rate("r", 10_001, RatePeriod::Second)]).is_err());
        assert!(check(vec![rate("r", 100_000_000, RatePeriod::Day)]).is_ok());
        let e = check(vec![
            rate("r", 5, RatePeriod::Second),
            rate("r", 9, RatePeriod::Second),
        ])
        .unwrap_err();
        assert_eq!(e.more.field.as_deref(), Some("rate_limits[1].per"));
        let many = (0..21)
            .map(|i| rate(&format!("b{i}"), 1, RatePeriod::Day))
            .collect();
        assert_eq!(
            check(many).unwrap_err().more.field.as_deref(),
            Some("rate_limits")
        );
    }
}
