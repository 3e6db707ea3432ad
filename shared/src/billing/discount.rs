//! A coupon's discount on an invoice, as pure rules: percent off or an amount off the invoice's
//! charges, rounded once to the minor unit (half to even), never more than the charges (a
//! total never goes below zero), for one invoice, N invoices or every one.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::invoices::{Line, LineKind};
use crate::money::Currency;

/// What a coupon takes off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Off {
    /// Percent of the charges, 0 < p ≤ 100.
    Percent(Decimal),
    /// An amount in the subscription's currency.
    Amount(Decimal),
}

/// A coupon as applied to a subscription: what it takes off and for how many more invoices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discount {
    pub code: String,
    pub off: Off,
    /// Invoices it still applies to; `None`: every one.
    pub cycles_left: Option<u32>,
}

impl Discount {
    /// The discount line for an invoice of `lines` (before credit), if it takes anything off.
    pub fn line(&self, lines: &[Line], currency: Currency) -> Option<Line> {
        let charges: Decimal = lines
            .iter()
            .map(|l| l.amount)
            .filter(|a| *a > Decimal::ZERO)
            .sum();
        let amount = match &self.off {
            Off::Percent(p) => currency.round(charges * *p / Decimal::from(100)),
            Off::Amount(a) => currency.round(*a),
        }
        .min(charges);
        if amount <= Decimal::ZERO {
            return None;
        }
        let what = match &self.off {
            Off::Percent(p) => format!("{}% off", p.normalize()),
            Off::Amount(a) => format!("{} off", currency.format(*a)),
        };
        Some(Line {
            kind: LineKind::Discount,
            description: format!("Coupon {}: {what}", self.code),
            amount: -amount,
            period: None,
            detail: None,
        })
    }

    /// As stored on the subscription.
    pub fn text(&self) -> String {
        serde_json::to_string(self).expect("serializable")
    }

    /// The discount after it applied to one invoice; `None` once used up.
    pub fn used_once(&self) -> Option<Discount> {
        match self.cycles_left {
            None => Some(self.clone()),
            Some(n) if n > 1 => Some(Discount {
                cycles_left: Some(n - 1),
                ..self.clone()
            }),
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn usd() -> Currency {
        Currency::parse("USD", "currency").unwrap()
    }

    fn charge(amount: Decimal) -> Line {
        Line {
            kind: LineKind::PlanCharge,
            description: "x".into(),
            amount,
            period: None,
            detail: None,
        }
    }

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    #[test]
    fn percent_and_amount_off_never_pass_the_charges() {
        let twenty = Discount {
            code: "SAVE20".into(),
            off: Off::Percent(d("20")),
            cycles_left: Some(3),
        };
        // Teams with three seats: 85.00 - 17.00.
        let line = twenty
            .line(&[charge(d("49.00")), charge(d("36.00"))], usd())
            .unwrap();
        assert_eq!(line.amount, d("-17.00"));
        let ten = Discount {
            code: "TENOFF".into(),
            off: Off::Amount(d("10")),
            cycles_left: Some(1),
        };
        assert_eq!(
            ten.line(&[charge(d("4.00"))], usd()).unwrap().amount,
            d("-4.00")
        );
        assert!(ten.line(&[charge(Decimal::ZERO)], usd()).is_none());
        assert_eq!(ten.used_once(), None);
        assert_eq!(twenty.used_once().unwrap().cycles_left, Some(2));
    }

    proptest! {
        #[test]
        fn an_invoice_with_a_discount_sums_exactly_and_never_below_zero(
            cents in proptest::collection::vec(0i64..10_000_000, 1..6),
            percent in 1i64..=100,
            off_cents in 0i64..20_000_000,
            use_percent in any::<bool>(),
        ) {
            let lines: Vec<Line> = cents.iter().map(|c| charge(Decimal::new(*c, 2))).collect();
            let discount = Discount {
                code: "X".into(),
                off: if use_percent { Off::Percent(Decimal::from(percent)) } else { Off::Amount(Decimal::new(off_cents, 2)) },
                cycles_left: None,
            };
            let subtotal: Decimal = lines.iter().map(|l| l.amount).sum();
            let mut all = lines.clone();
            all.extend(discount.line(&lines, usd()));
            let total: Decimal = all.iter().map(|l| l.amount).sum();
            prop_assert!(total >= Decimal::ZERO);
            prop_assert!(total <= subtotal);
            // Every line in whole cents: the total is their exact sum, in whole cents too.
            prop_assert!(all.iter().all(|l| l.amount.normalize().scale() <= 2));
        }
    }
}
