//! Grants: units of a metric given to a tenant on top of its plan (a goodwill gesture, by a
//! platform admin) until an expiry, as pure rules. A hard limit in force is the plan's limit
//! plus the grants in force at the event's time; billed usage counts granted units as free
//! before anything is billable. Grants are kept on the subscription, so every usage event's
//! check of the subscription's revision also covers them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::time;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Grant {
    pub id: String,
    #[schema(example = "api_calls")]
    pub metric: String,
    pub units: u64,
    /// When it was given; it counts from then.
    pub granted_at: String,
    /// When it stops counting.
    pub expires_at: String,
    pub reason: String,
    /// The invoice that paid for it, when a tenant admin bought it (a top-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_id: Option<String>,
}

impl Grant {
    fn window(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        Some((
            time::parse(&self.granted_at)?,
            time::parse(&self.expires_at)?,
        ))
    }
}

/// Units granted for `metric` in force at `at`.
pub fn granted_at(grants: &[Grant], metric: &str, at: DateTime<Utc>) -> u64 {
    grants
        .iter()
        .filter(|g| g.metric == metric)
        .filter(|g| g.window().is_some_and(|(from, to)| from <= at && at < to))
        .map(|g| g.units)
        .sum()
}

/// Units granted for `metric` that were in force at some time in `[start, end)`: free units
/// of that period's bill.
pub fn granted_in(grants: &[Grant], metric: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> u64 {
    grants
        .iter()
        .filter(|g| g.metric == metric)
        .filter(|g| {
            g.window()
                .is_some_and(|(from, to)| from < end && to > start)
        })
        .map(|g| g.units)
        .sum()
}

/// The grants still to count at or after `at` (the others are history).
pub fn in_force_after(grants: &[Grant], at: DateTime<Utc>) -> Vec<Grant> {
    grants
        .iter()
        .filter(|g| g.window().is_some_and(|(_, to)| to > at))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(units: u64, from: &str, to: &str) -> Grant {
        Grant {
            id: "g".into(),
            metric: "api_calls".into(),
            units,
            granted_at: from.into(),
            expires_at: to.into(),
            reason: "goodwill".into(),
            invoice_id: None,
        }
    }

    #[test]
    fn a_grant_counts_from_its_start_until_its_expiry() {
        let t = |s: &str| time::parse(s).unwrap();
        let grants = [
            grant(5000, "2027-01-10T00:00:00Z", "2027-02-01T00:00:00Z"),
            grant(100, "2027-01-01T00:00:00Z", "2027-01-05T00:00:00Z"),
        ];
        assert_eq!(
            granted_at(&grants, "api_calls", t("2027-01-09T00:00:00Z")),
            0
        );
        assert_eq!(
            granted_at(&grants, "api_calls", t("2027-01-10T00:00:00Z")),
            5000
        );
        assert_eq!(
            granted_at(&grants, "api_calls", t("2027-02-01T00:00:00Z")),
            0
        );
        assert_eq!(granted_at(&grants, "exports", t("2027-01-20T00:00:00Z")), 0);
        let (start, end) = (t("2027-01-01T00:00:00Z"), t("2027-02-01T00:00:00Z"));
        assert_eq!(granted_in(&grants, "api_calls", start, end), 5100);
        assert_eq!(in_force_after(&grants, end).len(), 0);
        assert_eq!(in_force_after(&grants, t("2027-01-06T00:00:00Z")).len(), 1);
    }
}
