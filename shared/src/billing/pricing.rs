//! Price components of a plan version as pure rules: what a quantity of a metric costs under
//! a usage charge — per unit, per package, graduated tiers or volume tiers — after an included
//! allowance, and what seats cost past the included ones. Pure rules, the only place each lives. Amounts are exact `Decimal`s, never
//! rounded here: an invoice line rounds its amount once, to the currency's minor unit, half to
//! even (`money::Currency::round`), so a line's amount is the rounded exact price.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::money::Currency;

/// One tier: units up to `up_to` (inclusive, counted from the first billable unit; `None` on
/// the last, open tier) cost `unit_price` each, plus `flat_price` once when the tier is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000u64)]
    pub up_to: Option<u64>,
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, pattern = r"^\d{1,7}(\.\d{1,10})?$", example = "0.008")]
    pub unit_price: Decimal,
    #[serde(default, with = "rust_decimal::serde::str")]
    #[schema(value_type = String, pattern = r"^\d{1,7}(\.\d{1,10})?$", example = "0")]
    pub flat_price: Decimal,
}

/// How billable units are priced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "model", rename_all = "snake_case", deny_unknown_fields)]
pub enum UsagePrice {
    /// Every unit at one price.
    PerUnit {
        #[serde(with = "rust_decimal::serde::str")]
        #[schema(value_type = String, pattern = r"^\d{1,7}(\.\d{1,10})?$", example = "0.002")]
        unit_price: Decimal,
    },
    /// Every started package of `package_size` units at `package_price` ($5 per 1,000
    /// started: 1,001 units are two packages).
    Package {
        #[schema(minimum = 1, maximum = 1_000_000_000_000u64)]
        package_size: u64,
        #[serde(with = "rust_decimal::serde::str")]
        #[schema(value_type = String, pattern = r"^\d{1,7}(\.\d{1,10})?$", example = "5.00")]
        package_price: Decimal,
    },
    /// Each unit at the price of the tier it falls in (the first 10k at one price, the next
    /// 90k at another, …).
    Graduated {
        #[schema(min_items = 1, max_items = 20)]
        tiers: Vec<Tier>,
    },
    /// Every unit at the price of the tier the whole quantity reaches.
    Volume {
        #[schema(min_items = 1, max_items = 20)]
        tiers: Vec<Tier>,
    },
}

/// A plan version's charge for one metric: `included` units free each period, the rest priced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageCharge {
    /// The metered metric, like `api_calls`.
    #[schema(pattern = "^[a-z][a-z0-9_]{0,63}$", example = "api_calls")]
    pub metric: String,
    /// Units free each billing period before any is billed.
    #[serde(default)]
    #[schema(maximum = 1_000_000_000_000_000u64)]
    pub included: u64,
    pub price: UsagePrice,
}

impl UsageCharge {
    /// Units past the allowance.
    pub fn billable(&self, used: u64) -> u64 {
        used.saturating_sub(self.included)
    }

    /// The exact (unrounded) charge for `used` units in a period.
    pub fn amount(&self, used: u64) -> Decimal {
        self.price.amount(self.billable(used))
    }

    /// Checks the charge as a plan author wrote it; `field` is where it sits in the request
    /// (`usage_charges[0]`), so a 422 names the exact field.
    pub fn check(&self, field: &str) -> Result<(), ApiError> {
        crate::plans::policies::check_metric(&self.metric)
            .map_err(|e| ApiError::validation(format!("{field}.metric"), e.detail))?;
        if self.included > MAX_UNITS {
            return Err(ApiError::validation(
                format!("{field}.included"),
                "at most 10^15 units",
            ));
        }
        self.price.check(&format!("{field}.price"))
    }
}

/// What a plan's seat count is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeatQuantity {
    /// The tenant's member count: a member who joins is a seat.
    #[default]
    Members,
    /// A number of seats the tenant admin buys; members fill them, and joining past them is
    /// refused until more are bought.
    Licensed,
}

/// A per-seat price: each seat past the `included` ones costs `unit_price` per billing
/// cycle (a team plan's "$49/month + $12 per user"). The seat count is the tenant's member
/// count, or (`quantity: licensed`) the seats the tenant admin bought.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeatPrice {
    /// Per seat and cycle, in the plan's currency (its minor unit at most).
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, pattern = r"^\d{1,7}(\.\d{1,3})?$", example = "12.00")]
    pub unit_price: Decimal,
    /// Seats the base price already pays for.
    #[serde(default)]
    #[schema(maximum = 100000)]
    pub included: u32,
    /// `members` (default) or `licensed`.
    #[serde(default)]
    pub quantity: SeatQuantity,
}

impl SeatPrice {
    /// Whether the tenant admin sets the seat count.
    pub fn licensed(&self) -> bool {
        self.quantity == SeatQuantity::Licensed
    }

    /// Seats past the included ones.
    pub fn billable(&self, seats: u64) -> u64 {
        seats.saturating_sub(u64::from(self.included))
    }

    /// The exact price of `seats` seats for one whole cycle.
    pub fn amount(&self, seats: u64) -> Decimal {
        self.unit_price * Decimal::from(self.billable(seats))
    }

    /// Checks the seat price as a plan author wrote it, in the plan's currency.
    pub fn check(&self, currency: Currency) -> Result<Self, ApiError> {
        check_price(&self.unit_price, "seats.unit_price".into())?;
        if self.included > 100_000 {
            return Err(ApiError::validation("seats.included", "0 to 100000 seats"));
        }
        let unit_price = currency.parse_amount(&self.unit_price.to_string(), "seats.unit_price")?;
        Ok(Self {
            unit_price,
            included: self.included,
            quantity: self.quantity,
        })
    }
}

/// A pack of units of a metric that a tenant admin may buy on top of the plan (a top-up),
/// charged at once: `units` for `price`, added to the hard limit and free on the bill for the
/// rest of the billing period it is bought in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUp {
    /// A metric the plan limits or charges, counted per billing period.
    #[schema(pattern = "^[a-z][a-z0-9_]{0,63}$", example = "api_calls")]
    pub metric: String,
    /// Units in one pack.
    #[schema(minimum = 1, maximum = 1_000_000_000_000u64, example = 10000)]
    pub units: u64,
    /// One pack's price, in the plan's currency (its minor unit at most).
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, pattern = r"^\d{1,7}(\.\d{1,3})?$", example = "15.00")]
    pub price: Decimal,
}

impl TopUp {
    /// Checks the pack as a plan author wrote it, in the plan's currency; `field` is where it
    /// sits in the request (`top_ups[0]`).
    pub fn check(&self, field: &str, currency: Currency) -> Result<Self, ApiError> {
        crate::plans::policies::check_metric(&self.metric)
            .map_err(|e| ApiError::validation(format!("{field}.metric"), e.detail))?;
        if self.units == 0 || self.units > 1_000_000_000_000 {
            return Err(ApiError::validation(
                format!("{field}.units"),
                "1 to 10^12 units a pack",
            ));
        }
        let price_field = format!("{field}.price");
        check_price(&self.price, price_field.clone())?;
        let price = currency.parse_amount(&self.price.to_string(), &price_field)?;
        Ok(Self {
            metric: self.metric.clone(),
            units: self.units,
            price,
        })
    }
}

/// Bounds that keep every amount exact in a `Decimal` (28 digits): at most 10^6 per unit,
/// package or tier, 10 decimal places, 20 tiers, tier bounds within 10^15 units.
const MAX_PRICE: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);
const MAX_SCALE: u32 = 10;
const MAX_TIERS: usize = 20;
const MAX_UNITS: u64 = 1_000_000_000_000_000;

/// A price as plan authors may write it: zero or more, at most [`MAX_PRICE`], at most
/// [`MAX_SCALE`] decimal places.
fn check_price(value: &Decimal, field: String) -> Result<(), ApiError> {
    if value.is_sign_negative() && !value.is_zero() {
        return Err(ApiError::validation(field, "a price is zero or more"));
    }
    if *value > MAX_PRICE {
        return Err(ApiError::validation(field, "at most 1000000 per unit"));
    }
    if value.normalize().scale() > MAX_SCALE {
        return Err(ApiError::validation(field, "at most 10 decimal places"));
    }
    Ok(())
}

impl UsagePrice {
    /// The exact price of `units` billable units.
    pub fn amount(&self, units: u64) -> Decimal {
        match self {
            UsagePrice::PerUnit { unit_price } => *unit_price * Decimal::from(units),
            UsagePrice::Package {
                package_size,
                package_price,
            } => *package_price * Decimal::from(units.div_ceil((*package_size).max(1))),
            UsagePrice::Graduated { tiers } => graduated(tiers, units),
            UsagePrice::Volume { tiers } => volume(tiers, units),
        }
    }

    fn check(&self, field: &str) -> Result<(), ApiError> {
        let price = |value: &Decimal, name: &str| check_price(value, format!("{field}.{name}"));
        match self {
            UsagePrice::PerUnit { unit_price } => price(unit_price, "unit_price"),
            UsagePrice::Package {
                package_size,
                package_price,
            } => {
                if *package_size == 0 || *package_size > 1_000_000_000_000 {
                    return Err(ApiError::validation(
                        format!("{field}.package_size"),
                        "a package holds 1 to 10^12 units",
                    ));
                }
                price(package_price, "package_price")
            }
            UsagePrice::Graduated { tiers } | UsagePrice::Volume { tiers } => {
                if tiers.is_empty() || tiers.len() > MAX_TIERS {
                    return Err(ApiError::validation(
                        format!("{field}.tiers"),
                        "give 1 to 20 tiers",
                    ));
                }
                let mut floor = 0u64;
                for (i, tier) in tiers.iter().enumerate() {
                    let at = format!("tiers[{i}]");
                    price(&tier.unit_price, &format!("{at}.unit_price"))?;
                    price(&tier.flat_price, &format!("{at}.flat_price"))?;
                    let last = i + 1 == tiers.len();
                    match (tier.up_to, last) {
                        (None, true) => {}
                        (None, false) => {
                            return Err(ApiError::validation(
                                format!("{field}.{at}.up_to"),
                                "only the last tier is open-ended",
                            ))
                        }
                        (Some(_), true) => {
                            return Err(ApiError::validation(
                                format!("{field}.{at}.up_to"),
                                "the last tier is open-ended (up_to null)",
                            ))
                        }
                        (Some(up_to), false) => {
                            if up_to <= floor || up_to > MAX_UNITS {
                                return Err(ApiError::validation(
                                    format!("{field}.{at}.up_to"),
                                    "tiers ascend: each up_to above the one before (and above 0), at most 10^15",
                                ));
                            }
                            floor = up_to;
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

/// Each unit at its tier's price; each tier reached adds its flat price once.
fn graduated(tiers: &[Tier], units: u64) -> Decimal {
    let mut total = Decimal::ZERO;
    let mut below = 0u64;
    for tier in tiers {
        if units <= below {
            break;
        }
        let top = tier.up_to.map_or(units, |up_to| up_to.min(units));
        total += tier.unit_price * Decimal::from(top - below) + tier.flat_price;
        below = top;
        if tier.up_to.is_none() {
            break;
        }
    }
    total
}

/// Every unit at the price of the tier `units` falls in, plus that tier's flat price; nothing
/// for no units.
fn volume(tiers: &[Tier], units: u64) -> Decimal {
    if units == 0 {
        return Decimal::ZERO;
    }
    let tier = tiers
        .iter()
        .find(|t| t.up_to.is_none_or(|up_to| units <= up_to))
        .or(tiers.last());
    tier.map_or(Decimal::ZERO, |t| {
        t.unit_price * Decimal::from(units) + t.flat_price
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    fn tier(up_to: Option<u64>, unit_price: Decimal) -> Tier {
        Tier {
            up_to,
            unit_price,
            flat_price: Decimal::ZERO,
        }
    }

    /// Issue 20's graduated plan: the first 10k at $0.01, the next 90k at $0.008, the rest at
    /// $0.005.
    fn issue_tiers() -> Vec<Tier> {
        vec![
            tier(Some(10_000), d("0.01")),
            tier(Some(100_000), d("0.008")),
            tier(None, d("0.005")),
        ]
    }

    #[test]
    fn the_worked_examples_of_docs_billing() {
        // 123,456 calls, graduated: 10,000 × 0.01 + 90,000 × 0.008 + 23,456 × 0.005.
        let graduated = UsagePrice::Graduated {
            tiers: issue_tiers(),
        };
        assert_eq!(graduated.amount(123_456), d("937.28"));
        // Volume: all 123,456 at the tier reached, 0.005.
        let volume = UsagePrice::Volume {
            tiers: issue_tiers(),
        };
        assert_eq!(volume.amount(123_456), d("617.28"));
        // 1,000 calls included, then $0.002 each: 1,500 calls bill 500.
        let per_unit = UsageCharge {
            metric: "api_calls".into(),
            included: 1_000,
            price: UsagePrice::PerUnit {
                unit_price: d("0.002"),
            },
        };
        assert_eq!(per_unit.amount(1_500), d("1.000"));
        assert_eq!(per_unit.amount(999), Decimal::ZERO);
        // $5 per 1,000 started.
        let package = UsagePrice::Package {
            package_size: 1_000,
            package_price: d("5"),
        };
        assert_eq!(package.amount(0), Decimal::ZERO);
        assert_eq!(package.amount(1), d("5"));
        assert_eq!(package.amount(1_000), d("5"));
        assert_eq!(package.amount(1_001), d("10"));
    }

    #[test]
    fn tier_boundaries_belong_to_the_lower_tier() {
        let graduated = UsagePrice::Graduated {
            tiers: issue_tiers(),
        };
        assert_eq!(graduated.amount(10_000), d("100"));
        assert_eq!(graduated.amount(10_001), d("100.008"));
        let volume = UsagePrice::Volume {
            tiers: issue_tiers(),
        };
        assert_eq!(volume.amount(10_000), d("100"));
        assert_eq!(volume.amount(10_001), d("80.008"));
    }

    #[test]
    fn flat_prices_count_once_per_tier_reached() {
        let tiers = vec![
            Tier {
                up_to: Some(10),
                unit_price: d("1"),
                flat_price: d("20"),
            },
            Tier {
                up_to: None,
                unit_price: d("0.5"),
                flat_price: d("5"),
            },
        ];
        let graduated = UsagePrice::Graduated {
            tiers: tiers.clone(),
        };
        assert_eq!(graduated.amount(0), Decimal::ZERO);
        assert_eq!(graduated.amount(4), d("24"));
        assert_eq!(graduated.amount(12), d("36"));
        let volume = UsagePrice::Volume { tiers };
        assert_eq!(volume.amount(12), d("11"));
    }

    #[test]
    fn checks_name_the_field_at_fault() {
        let field = |price: UsagePrice| {
            let charge = UsageCharge {
                metric: "api_calls".into(),
                included: 0,
                price,
            };
            charge.check("usage_charges[2]").unwrap_err().body()["field"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(
            field(UsagePrice::Graduated { tiers: vec![] }),
            "usage_charges[2].price.tiers"
        );
        assert_eq!(
            field(UsagePrice::Graduated {
                tiers: vec![
                    tier(Some(10), d("1")),
                    tier(Some(5), d("1")),
                    tier(None, d("1"))
                ]
            }),
            "usage_charges[2].price.tiers[1].up_to"
        );
        assert_eq!(
            field(UsagePrice::Volume {
                tiers: vec![tier(Some(10), d("1"))]
            }),
            "usage_charges[2].price.tiers[0].up_to"
        );
        assert_eq!(
            field(UsagePrice::Volume {
                tiers: vec![tier(None, d("1")), tier(None, d("1"))]
            }),
            "usage_charges[2].price.tiers[0].up_to"
        );
        assert_eq!(
            field(UsagePrice::PerUnit {
                unit_price: d("-0.01")
            }),
            "usage_charges[2].price.unit_price"
        );
        assert_eq!(
            field(UsagePrice::Package {
                package_size: 0,
                package_price: d("5")
            }),
            "usage_charges[2].price.package_size"
        );
        let ok = UsageCharge {
            metric: "api_calls".into(),
            included: 1_000,
            price: UsagePrice::Graduated {
                tiers: issue_tiers(),
            },
        };
        assert!(ok.check("usage_charges[0]").is_ok());
    }

    /// Ascending tiers with prices from 0 to 1 in steps of 0.0001, the last open.
    fn tiers_strategy() -> impl Strategy<Value = Vec<Tier>> {
        prop::collection::vec((1u64..5_000, 0i64..10_000, 0i64..10_000), 1..6).prop_map(|raw| {
            let mut up_to = 0u64;
            let count = raw.len();
            raw.into_iter()
                .enumerate()
                .map(|(i, (width, unit, flat))| {
                    up_to += width;
                    Tier {
                        up_to: (i + 1 < count).then_some(up_to),
                        unit_price: Decimal::new(unit, 4),
                        flat_price: Decimal::new(flat, 4),
                    }
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn graduated_never_falls_as_quantity_grows(tiers in tiers_strategy(), a in 0u64..50_000, b in 0u64..50_000) {
            let price = UsagePrice::Graduated { tiers };
            let (low, high) = (a.min(b), a.max(b));
            prop_assert!(price.amount(low) <= price.amount(high));
        }

        #[test]
        fn graduated_is_the_sum_of_its_units(tiers in tiers_strategy(), units in 0u64..3_000) {
            // Unit by unit: the price of unit n is its tier's, plus the flat price of each
            // tier on entering it.
            let mut expected = Decimal::ZERO;
            for n in 1..=units {
                let (i, tier) = tiers
                    .iter()
                    .enumerate()
                    .find(|(_, t)| t.up_to.is_none_or(|up_to| n <= up_to))
                    .unwrap();
                let first_of_tier = n == 1 || i > 0 && tiers[i - 1].up_to == Some(n - 1);
                expected += tier.unit_price + if first_of_tier { tier.flat_price } else { Decimal::ZERO };
            }
            prop_assert_eq!(UsagePrice::Graduated { tiers }.amount(units), expected);
        }

        #[test]
        fn volume_and_graduated_agree_on_one_tier(unit in 0i64..100_000, flat in 0i64..100_000, units in 0u64..1_000_000) {
            let tiers = vec![Tier { up_to: None, unit_price: Decimal::new(unit, 5), flat_price: Decimal::new(flat, 2) }];
            prop_assert_eq!(
                UsagePrice::Volume { tiers: tiers.clone() }.amount(units),
                UsagePrice::Graduated { tiers }.amount(units)
            );
        }

        #[test]
        fn generated_tiers_pass_the_check_and_never_price_below_zero(tiers in tiers_strategy(), units in 0u64..100_000) {
            for price in [UsagePrice::Graduated { tiers: tiers.clone() }, UsagePrice::Volume { tiers: tiers.clone() }] {
                prop_assert!(price.check("p").is_ok());
                prop_assert!(!price.amount(units).is_sign_negative() || price.amount(units).is_zero());
            }
        }

        #[test]
        fn the_allowance_is_free(included in 0u64..10_000, used in 0u64..20_000) {
            let charge = UsageCharge {
                metric: "m".into(),
                included,
                price: UsagePrice::PerUnit { unit_price: Decimal::new(2, 3) },
            };
            prop_assert_eq!(charge.amount(used), Decimal::new(2, 3) * Decimal::from(used.saturating_sub(included)));
        }
    }
}
