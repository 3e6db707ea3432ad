//! Money: `rust_decimal` amounts in an ISO 4217 currency, never floats.
//!
//! Rounding rule (docs/billing.md has the full story): amounts are rounded to the currency's
//! minor unit with banker's rounding (half to even) once, where an amount is computed; sums of
//! rounded amounts are exact. On the wire an amount is a decimal string with exactly the
//! currency's minor digits (`"30.00"` USD, `"500"` JPY) and `currency` beside it.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// ISO 4217 codes in current use with their minor units.
const CURRENCIES: &[(&str, u32)] = &[
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("ANG", 2),
    ("AOA", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AWG", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BBD", 2),
    ("BDT", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BMD", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BRL", 2),
    ("BSD", 2),
    ("BTN", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("BZD", 2),
    ("CAD", 2),
    ("CDF", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("CRC", 2),
    ("CUP", 2),
    ("CVE", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ERN", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("FJD", 2),
    ("FKP", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GIP", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("GYD", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HTG", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("IRR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KPW", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("KYD", 2),
    ("KZT", 2),
    ("LAK", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("LRD", 2),
    ("LSL", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MGA", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MOP", 2),
    ("MRU", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PAB", 2),
    ("PEN", 2),
    ("PGK", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SBD", 2),
    ("SCR", 2),
    ("SDG", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("SHP", 2),
    ("SLE", 2),
    ("SOS", 2),
    ("SRD", 2),
    ("SSP", 2),
    ("STN", 2),
    ("SVC", 2),
    ("SYP", 2),
    ("SZL", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TMT", 2),
    ("TND", 3),
    ("TOP", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("UYU", 2),
    ("UZS", 2),
    ("VES", 2),
    ("VND", 0),
    ("VUV", 0),
    ("WST", 2),
    ("XAF", 0),
    ("XCD", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("YER", 2),
    ("ZAR", 2),
    ("ZMW", 2),
    ("ZWG", 2),
];

/// A known ISO 4217 currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    minor_units: u32,
}

impl Currency {
    /// Looks a code up (case-insensitive); `field` names the request field for the 422.
    pub fn parse(code: &str, field: &str) -> Result<Self, ApiError> {
        let upper = code.trim().to_ascii_uppercase();
        CURRENCIES
            .iter()
            .find(|(c, _)| *c == upper)
            .map(|(code, minor_units)| Currency {
                code,
                minor_units: *minor_units,
            })
            .ok_or_else(|| {
                ApiError::validation(field, format!("{code:?} is not an ISO 4217 currency code"))
            })
    }

    pub fn code(self) -> &'static str {
        self.code
    }

    pub fn minor_units(self) -> u32 {
        self.minor_units
    }

    /// Rounds to the minor unit, half to even.
    pub fn round(self, amount: Decimal) -> Decimal {
        amount.round_dp_with_strategy(self.minor_units, RoundingStrategy::MidpointNearestEven)
    }

    /// The wire form: exactly the minor digits (`"30.00"`).
    pub fn format(self, amount: Decimal) -> String {
        let mut rounded = self.round(amount);
        rounded.rescale(self.minor_units);
        rounded.to_string()
    }

    /// Parses a price: a decimal string, not negative, with no more digits than the minor unit.
    pub fn parse_amount(self, text: &str, field: &str) -> Result<Decimal, ApiError> {
        let bad = |why: &str| ApiError::validation(field, why.to_owned());
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.len() > 32 || trimmed.contains(['e', 'E']) {
            return Err(bad("give the amount as a decimal string, like \"30.00\""));
        }
        let amount: Decimal = trimmed
            .parse()
            .map_err(|_| bad("give the amount as a decimal string, like \"30.00\""))?;
        if amount.is_sign_negative() && !amount.is_zero() {
            return Err(bad("the amount may not be negative"));
        }
        if amount.normalize().scale() > self.minor_units {
            return Err(ApiError::validation(
                field,
                format!(
                    "{} has {} decimal places at most",
                    self.code, self.minor_units
                ),
            ));
        }
        if amount > Decimal::from(1_000_000_000_000i64) {
            return Err(bad("the amount is too large"));
        }
        Ok(self.round(amount.abs()))
    }
}

/// An amount with its currency, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MoneyView {
    #[schema(example = "30.00")]
    pub amount: String,
    #[schema(example = "USD")]
    pub currency: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> Currency {
        Currency::parse("usd", "currency").unwrap()
    }

    #[test]
    fn formats_with_exact_minor_digits() {
        assert_eq!(usd().format(Decimal::from(30)), "30.00");
        assert_eq!(
            Currency::parse("JPY", "c")
                .unwrap()
                .format(Decimal::from(500)),
            "500"
        );
        assert_eq!(
            Currency::parse("KWD", "c")
                .unwrap()
                .format("1.5".parse().unwrap()),
            "1.500"
        );
    }

    #[test]
    fn rounds_half_to_even() {
        assert_eq!(
            usd().round("0.125".parse().unwrap()),
            "0.12".parse::<Decimal>().unwrap()
        );
        assert_eq!(
            usd().round("0.135".parse().unwrap()),
            "0.14".parse::<Decimal>().unwrap()
        );
    }

    #[test]
    fn parses_prices_strictly() {
        assert_eq!(
            usd().parse_amount("30", "price").unwrap(),
            Decimal::from(30)
        );
        assert_eq!(
            usd().parse_amount("30.10", "price").unwrap(),
            "30.1".parse::<Decimal>().unwrap()
        );
        for bad in ["-1", "30.001", "abc", "", "1e3", "NaN"] {
            let e = usd().parse_amount(bad, "price").unwrap_err();
            assert_eq!(e.more.field.as_deref(), Some("price"), "{bad}");
        }
        assert!(Currency::parse("XYZ", "currency").is_err());
    }
}
