//! Billing settings, read once from the environment when the context is built: dunning's
//! retry days and what its last failure does, and the past-due grace period.

use super::state::Event;

#[derive(Debug, Clone)]
pub struct BillingSettings {
    /// Retry a failed renewal after these many days (from the failed period's start):
    /// `ESHTAREK_DUNNING_DAYS`, default `1,3,5`.
    pub dunning_days: Vec<i64>,
    /// What the last failed retry does: `ESHTAREK_DUNNING_FINAL` = `cancel` (default) or
    /// `expire`.
    pub dunning_final: Event,
    /// Days a subscription may stay past due (from the failed renewal's period start) before
    /// it expires, whatever dunning did: `ESHTAREK_GRACE_DAYS`, default 7 (after the last
    /// retry).
    pub grace_days: i64,
}

impl Default for BillingSettings {
    fn default() -> Self {
        Self {
            dunning_days: vec![1, 3, 5],
            dunning_final: Event::Cancel,
            grace_days: 7,
        }
    }
}

impl BillingSettings {
    /// The settings the environment gives; each unset or invalid one keeps its default.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok();
        let default = Self::default();
        Self {
            dunning_days: var("ESHTAREK_DUNNING_DAYS")
                .and_then(|v| parse_dunning_days(&v))
                .unwrap_or(default.dunning_days),
            dunning_final: match var("ESHTAREK_DUNNING_FINAL").as_deref() {
                Some("expire") => Event::Expire,
                _ => Event::Cancel,
            },
            grace_days: var("ESHTAREK_GRACE_DAYS")
                .and_then(|d| d.parse().ok())
                .filter(|d| *d > 0)
                .unwrap_or(default.grace_days),
        }
    }
}

/// `1,3,5`: strictly increasing whole days, at least one.
pub fn parse_dunning_days(text: &str) -> Option<Vec<i64>> {
    let days = text
        .split(',')
        .map(|d| d.trim().parse::<i64>().ok().filter(|d| *d > 0))
        .collect::<Option<Vec<_>>>()?;
    (!days.is_empty() && days.windows(2).all(|w| w[0] < w[1])).then_some(days)
}

#[cfg(test)]
mod tests {
    use super::parse_dunning_days;

    #[test]
    fn dunning_days_are_increasing_whole_days() {
        assert_eq!(parse_dunning_days("1,3,5"), Some(vec![1, 3, 5]));
        assert_eq!(parse_dunning_days(" 2 , 4 "), Some(vec![2, 4]));
        assert_eq!(parse_dunning_days("3,1"), None);
        assert_eq!(parse_dunning_days("1,1"), None);
        assert_eq!(parse_dunning_days("0,2"), None);
        assert_eq!(parse_dunning_days("one"), None);
        assert_eq!(parse_dunning_days(""), None);
    }
}
