//! Proration by the second. Changing plan at instant `at` inside period `[start, end)`:
//! a credit for the unused part of the old price, `-round(old × remaining / length)`, and a
//! charge for the remaining part of the new one, `round(new × remaining / length)`, each rounded
//! once to the currency's minor unit, half to even. When the change also switches between
//! monthly and yearly the period restarts at `at`: the charge is the new price in full.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::money::Currency;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proration {
    /// Zero or negative.
    pub credit: Decimal,
    /// Zero or positive.
    pub charge: Decimal,
}

impl Proration {
    pub fn net(&self) -> Decimal {
        self.credit + self.charge
    }
}

/// The unused fraction of `[start, end)` at `at`, in seconds: `(remaining, length)`.
fn remaining(start: DateTime<Utc>, end: DateTime<Utc>, at: DateTime<Utc>) -> (i64, i64) {
    let length = (end - start).num_seconds().max(1);
    let remaining = (end - at).num_seconds().clamp(0, length);
    (remaining, length)
}

pub fn prorate(
    currency: Currency,
    old_price: Decimal,
    new_price: Decimal,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    at: DateTime<Utc>,
    restart_period: bool,
) -> Proration {
    let (remaining, length) = remaining(start, end, at);
    let fraction = |price: Decimal| price * Decimal::from(remaining) / Decimal::from(length);
    let credit = -currency.round(fraction(old_price));
    let charge = if restart_period {
        currency.round(new_price)
    } else {
        currency.round(fraction(new_price))
    };
    Proration { credit, charge }
}

/// Whether moving from `old` to `new` is an upgrade: a higher price per day. Compared per year
/// (a monthly price times 12) so monthly and yearly plans compare fairly.
pub fn is_upgrade(
    old_price: Decimal,
    old_yearly: bool,
    new_price: Decimal,
    new_yearly: bool,
) -> bool {
    let per_year = |price: Decimal, yearly: bool| {
        if yearly {
            price
        } else {
            price * Decimal::from(12)
        }
    };
    per_year(new_price, new_yearly) > per_year(old_price, old_yearly)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::period::period;
    use crate::plans::BillingCycle;
    use proptest::prelude::*;

    fn usd() -> Currency {
        Currency::parse("USD", "currency").unwrap()
    }

    fn exact(price: Decimal, remaining: i64, length: i64) -> Decimal {
        price * Decimal::from(remaining) / Decimal::from(length)
    }

    proptest! {
        /// Each line is within half a minor unit of the exact pro-rata amount (so within one),
        /// and the lines sum to the net exactly.
        #[test]
        fn lines_are_within_a_minor_unit_and_sum_exactly(
            old_cents in 0i64..10_000_000,
            new_cents in 0i64..10_000_000,
            anchor_secs in 1_700_000_000i64..2_000_000_000,
            index in 0u32..36,
            offset_permille in 0i64..=1000,
            yearly in any::<bool>(),
        ) {
            let cycle = if yearly { BillingCycle::Yearly } else { BillingCycle::Monthly };
            let anchor = DateTime::from_timestamp(anchor_secs, 0).unwrap();
            let (start, end) = period(anchor, cycle, index);
            let length = (end - start).num_seconds();
            let at = start + chrono::Duration::seconds(length * offset_permille / 1000);
            let old = Decimal::new(old_cents, 2);
            let new = Decimal::new(new_cents, 2);
            let p = prorate(usd(), old, new, start, end, at, false);
            let remaining = (end - at).num_seconds();
            let half_cent = Decimal::new(5, 3);
            prop_assert!((p.credit + exact(old, remaining, length)).abs() <= half_cent);
            prop_assert!((p.charge - exact(new, remaining, length)).abs() <= half_cent);
            prop_assert_eq!(p.credit.scale() <= 2 && p.charge.scale() <= 2, true);
            prop_assert_eq!(p.net(), p.credit + p.charge);
            prop_assert!(p.credit <= Decimal::ZERO && p.charge >= Decimal::ZERO);
        }

        /// At the period start the full difference is charged; at its end nothing.
        #[test]
        fn start_charges_the_full_difference_end_nothing(
            old_cents in 0i64..10_000_000,
            new_cents in 0i64..10_000_000,
            anchor_secs in 1_700_000_000i64..2_000_000_000,
        ) {
            let anchor = DateTime::from_timestamp(anchor_secs, 0).unwrap();
            let (start, end) = period(anchor, BillingCycle::Monthly, 0);
            let old = Decimal::new(old_cents, 2);
            let new = Decimal::new(new_cents, 2);
            let at_start = prorate(usd(), old, new, start, end, start, false);
            prop_assert_eq!(at_start.net(), new - old);
            let at_end = prorate(usd(), old, new, start, end, end, false);
            prop_assert_eq!(at_end.credit, Decimal::ZERO);
            prop_assert_eq!(at_end.charge, Decimal::ZERO);
        }
    }

    #[test]
    fn a_worked_example() {
        // $30 → $90 halfway through a 30-day period: credit $15, charge $45.
        let start = crate::time::parse("2027-04-01T00:00:00Z").unwrap();
        let end = crate::time::parse("2027-05-01T00:00:00Z").unwrap();
        let at = crate::time::parse("2027-04-16T00:00:00Z").unwrap();
        let p = prorate(
            usd(),
            Decimal::from(30),
            Decimal::from(90),
            start,
            end,
            at,
            false,
        );
        assert_eq!(p.credit, Decimal::from(-15));
        assert_eq!(p.charge, Decimal::from(45));
        assert!(is_upgrade(
            Decimal::from(30),
            false,
            Decimal::from(90),
            false
        ));
        assert!(!is_upgrade(
            Decimal::from(30),
            false,
            Decimal::from(300),
            true
        ));
    }
}
