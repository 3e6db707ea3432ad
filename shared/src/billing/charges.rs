//! The lines a plan version's price components bill, as pure rules: the base price and the
//! seats for the period ahead (in advance), each metric's usage for the period that closed (in
//! arrears). Each line's amount is rounded once, to the currency's minor unit, half to even;
//! an invoice's total is the exact sum of its lines (`invoices`).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::invoices::{Line, LineDetail, LineKind};
use super::pricing::{SeatPrice, UsageCharge};
use crate::money::Currency;
use crate::plans::BillingCycle;

type Period = (DateTime<Utc>, DateTime<Utc>);

/// The base price for one period.
pub fn plan_line(
    name: &str,
    cycle: BillingCycle,
    price: Decimal,
    currency: Currency,
    period: Period,
) -> Line {
    Line {
        kind: LineKind::PlanCharge,
        description: format!("{name} ({})", cycle.as_str()),
        amount: currency.round(price),
        period: Some(period),
        detail: None,
    }
}

/// `seats` members for one period at the seat price: the line is there (at zero) even when
/// every seat is included, so the invoice shows the count it billed.
pub fn seat_line(seats: &SeatPrice, count: u64, currency: Currency, period: Period) -> Line {
    let billable = seats.billable(count);
    Line {
        kind: LineKind::SeatCharge,
        description: format!(
            "Seats: {count} ({} included, {billable} × {})",
            seats.included,
            currency.format(seats.unit_price)
        ),
        amount: currency.round(seats.amount(count)),
        period: Some(period),
        detail: Some(LineDetail {
            metric: "max_users".into(),
            quantity: count,
            included: u64::from(seats.included),
            billable,
            granted: 0,
            unit_price: Some(currency.format(seats.unit_price)),
            price: None,
        }),
    }
}

/// A charged metric's usage over `period`: the period's count so far is `used`, of which
/// `before` was billed already (a plan change's settlement). The allowance and `granted` units
/// are free once per period, against the period's count as a whole, so billing it in pieces
/// bills exactly what one bill would: `max(used − free, 0) − max(before − free, 0)`.
pub fn usage_line(
    charge: &UsageCharge,
    used: u64,
    before: u64,
    granted: u64,
    currency: Currency,
    period: Period,
) -> Line {
    let free = charge.included.saturating_add(granted);
    let billable = used
        .saturating_sub(free)
        .saturating_sub(before.saturating_sub(free));
    let quantity = used.saturating_sub(before);
    let granted_text = if granted > 0 {
        format!(", {granted} granted")
    } else {
        String::new()
    };
    Line {
        kind: LineKind::UsageCharge,
        description: format!(
            "Usage: {} {quantity} ({} included{granted_text}, {billable} billable)",
            charge.metric, charge.included
        ),
        amount: currency.round(charge.price.amount(billable)),
        period: Some(period),
        detail: Some(LineDetail {
            metric: charge.metric.clone(),
            quantity,
            included: charge.included,
            billable,
            granted,
            unit_price: None,
            price: Some(charge.price.clone()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::pricing::{Tier, UsagePrice};

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    fn period() -> Period {
        let start = crate::time::parse("2026-12-01T00:00:00Z").unwrap();
        (start, start + chrono::Duration::days(31))
    }

    #[test]
    fn the_teams_plan_bills_base_and_seats() {
        let usd = Currency::parse("USD", "currency").unwrap();
        let seats = SeatPrice {
            unit_price: d("12.00"),
            included: 0,
            quantity: Default::default(),
        };
        let base = plan_line("Teams", BillingCycle::Monthly, d("49"), usd, period());
        let line = seat_line(&seats, 5, usd, period());
        assert_eq!(base.amount + line.amount, d("109.00"));
        let detail = line.detail.unwrap();
        assert_eq!((detail.quantity, detail.billable), (5, 5));
        assert_eq!(detail.unit_price.as_deref(), Some("12.00"));
    }

    #[test]
    fn the_allowance_is_free_once_per_period_however_it_is_billed() {
        let usd = Currency::parse("USD", "currency").unwrap();
        let charge = UsageCharge {
            metric: "api_calls".into(),
            included: 1000,
            price: UsagePrice::PerUnit { unit_price: d("1") },
        };
        let billable = |used, before, granted| {
            usage_line(&charge, used, before, granted, usd, period())
                .detail
                .unwrap()
                .billable
        };
        // 1,500 in one bill, or in pieces at 600 and 1,200: 500 billable either way.
        assert_eq!(billable(1500, 0, 0), 500);
        assert_eq!(billable(600, 0, 0) + billable(1500, 600, 0), 500);
        assert_eq!(billable(1200, 0, 0) + billable(1500, 1200, 0), 500);
        // 50 granted on top: 450.
        assert_eq!(billable(1200, 0, 50) + billable(1500, 1200, 50), 450);
    }

    #[test]
    fn a_usage_line_is_rounded_once_half_to_even() {
        let usd = Currency::parse("USD", "currency").unwrap();
        // 1,500 calls, 1,000 included, 0.00125 each: 0.625 exact, 0.62 rounded half to even.
        let charge = UsageCharge {
            metric: "api_calls".into(),
            included: 1000,
            price: UsagePrice::PerUnit {
                unit_price: d("0.00125"),
            },
        };
        let line = usage_line(&charge, 1500, 0, 0, usd, period());
        assert_eq!(line.amount, d("0.62"));
        assert_eq!(line.detail.as_ref().unwrap().billable, 500);
        // The graduated example of docs/billing.md: 123,456 calls cost 937.28.
        let graduated = UsageCharge {
            metric: "api_calls".into(),
            included: 0,
            price: UsagePrice::Graduated {
                tiers: vec![
                    Tier {
                        up_to: Some(10_000),
                        unit_price: d("0.01"),
                        flat_price: Decimal::ZERO,
                    },
                    Tier {
                        up_to: Some(100_000),
                        unit_price: d("0.008"),
                        flat_price: Decimal::ZERO,
                    },
                    Tier {
                        up_to: None,
                        unit_price: d("0.005"),
                        flat_price: Decimal::ZERO,
                    },
                ],
            },
        };
        assert_eq!(
            usage_line(&graduated, 123_456, 0, 0, usd, period()).amount,
            d("937.28")
        );
    }

    proptest::proptest! {
        /// Any invoice the engine builds — a plan change's proration, seats, tiered usage, a
        /// coupon and the credit balance together — has lines in whole cents that sum exactly
        /// to its total; the amount due is never negative and the balance only keeps what the
        /// invoice did not take or what a net credit gave back.
        #[test]
        fn an_invoice_of_every_component_sums_exactly(
            old_cents in 0i64..100_000,
            new_cents in 0i64..100_000,
            elapsed_secs in 0i64..2_678_400,
            seat_cents in 0i64..10_000,
            seats in 0u64..500,
            included_seats in 0u32..10,
            used in 0u64..2_000_000,
            before in 0u64..2_000_000,
            granted in 0u64..50_000,
            included in 0u64..100_000,
            percent in 1i64..=100,
            off_cents in 0i64..50_000,
            use_percent in proptest::prelude::any::<bool>(),
            with_coupon in proptest::prelude::any::<bool>(),
            balance_cents in 0i64..100_000,
        ) {
            use crate::billing::discount::{Discount, Off};
            use crate::billing::invoices::totals;
            use crate::billing::proration::prorate;
            let usd = Currency::parse("USD", "currency").unwrap();
            let (start, end) = period();
            let at = start + chrono::Duration::seconds(elapsed_secs);
            let cents = |c: i64| Decimal::new(c, 2);
            let p = prorate(usd, cents(old_cents), cents(new_cents), start, end, at, false);
            let seat_price = SeatPrice { unit_price: cents(seat_cents), included: included_seats, quantity: Default::default() };
            let tiers = vec![
                Tier { up_to: Some(10_000), unit_price: d("0.01"), flat_price: d("1.5") },
                Tier { up_to: Some(100_000), unit_price: d("0.008"), flat_price: Decimal::ZERO },
                Tier { up_to: None, unit_price: d("0.005"), flat_price: Decimal::ZERO },
            ];
            let charge = UsageCharge {
                metric: "api_calls".into(),
                included,
                price: UsagePrice::Graduated { tiers },
            };
            let mut lines = vec![
                Line { kind: LineKind::ProrationCredit, description: String::new(), amount: p.credit, period: None, detail: None },
                Line { kind: LineKind::ProrationCharge, description: String::new(), amount: p.charge, period: None, detail: None },
                seat_line(&seat_price, seats, usd, (start, end)),
                usage_line(&charge, used.max(before), before.min(used), granted, usd, (start, end)),
            ];
            if with_coupon {
                let discount = Discount {
                    code: "X".into(),
                    off: if use_percent { Off::Percent(Decimal::from(percent)) } else { Off::Amount(cents(off_cents)) },
                    cycles_left: None,
                };
                lines.extend(discount.line(&lines, usd));
            }
            let balance = cents(balance_cents);
            let t = totals(lines, balance);
            let sum: Decimal = t.lines.iter().map(|l| l.amount).sum();
            proptest::prop_assert_eq!(sum, t.total);
            proptest::prop_assert!(t.lines.iter().all(|l| l.amount.normalize().scale() <= 2));
            proptest::prop_assert!(t.amount_due >= Decimal::ZERO);
            proptest::prop_assert!(t.applied >= Decimal::ZERO && t.applied <= balance);
            // What the balance lost is what the invoice took; a net credit adds to it.
            proptest::prop_assert_eq!(t.new_balance, balance - t.applied + (-t.total).max(Decimal::ZERO));
            proptest::prop_assert_eq!(t.amount_due - (-t.total).max(Decimal::ZERO), t.total);
        }
    }
}
