//! Billing periods. Period k of a subscription runs from `anchor + k cycles` to
//! `anchor + (k+1) cycles`, always computed from the anchor (never chained), so a monthly
//! subscription anchored on Jan 31 renews Feb 28 (or 29), then Mar 31, Apr 30: the anchor day
//! is kept and clamped at month end. Yearly is 12 months, so Feb 29 renews Feb 28 and comes back
//! to Feb 29 in leap years.

use chrono::{DateTime, Months, Utc};

use crate::plans::BillingCycle;

fn months(cycle: BillingCycle) -> u32 {
    match cycle {
        BillingCycle::Monthly => 1,
        BillingCycle::Yearly => 12,
    }
}

/// The start of period `index` (0 is the first).
pub fn period_start(anchor: DateTime<Utc>, cycle: BillingCycle, index: u32) -> DateTime<Utc> {
    anchor
        .checked_add_months(Months::new(months(cycle) * index))
        .expect("billing dates stay within chrono's range")
}

/// `[start, end)` of period `index`.
pub fn period(
    anchor: DateTime<Utc>,
    cycle: BillingCycle,
    index: u32,
) -> (DateTime<Utc>, DateTime<Utc>) {
    (
        period_start(anchor, cycle, index),
        period_start(anchor, cycle, index + 1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        crate::time::parse(s).unwrap()
    }

    #[test]
    fn monthly_keeps_the_anchor_day_and_clamps_at_month_end() {
        let anchor = t("2027-01-31T10:00:00Z");
        let ends: Vec<String> = (0..4)
            .map(|k| crate::time::fmt(period(anchor, BillingCycle::Monthly, k).1))
            .collect();
        assert_eq!(
            ends,
            [
                "2027-02-28T10:00:00.000Z",
                "2027-03-31T10:00:00.000Z",
                "2027-04-30T10:00:00.000Z",
                "2027-05-31T10:00:00.000Z"
            ]
        );
        let leap = t("2028-01-31T00:00:00Z");
        assert_eq!(
            period(leap, BillingCycle::Monthly, 0).1,
            t("2028-02-29T00:00:00Z")
        );
    }

    #[test]
    fn yearly_handles_february_29() {
        let anchor = t("2028-02-29T12:00:00Z");
        assert_eq!(
            period(anchor, BillingCycle::Yearly, 0).1,
            t("2029-02-28T12:00:00Z")
        );
        assert_eq!(
            period(anchor, BillingCycle::Yearly, 3),
            (t("2031-02-28T12:00:00Z"), t("2032-02-29T12:00:00Z"))
        );
    }
}
