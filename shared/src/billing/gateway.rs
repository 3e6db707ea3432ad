//! Payment methods and the payment gateway port. The mock gateway behaves like Stripe's test
//! mode: `pm_card_visa` / 4242 4242 4242 4242 succeed, `pm_card_chargeDeclined` /
//! 4000 0000 0000 0002 decline with `card_declined`, `pm_card_chargeDeclinedInsufficientFunds` /
//! 4000 0000 0000 9995 decline with `insufficient_funds`. Card numbers are never stored: only
//! brand, last four digits and expiry.

use async_trait::async_trait;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::money::Currency;

/// What the gateway needs to know about a stored payment method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodRef {
    pub id: String,
    /// The gateway's token for the method (the mock keeps the test outcome here).
    pub gateway_token: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    Succeeded { charge_id: String },
    Declined { code: String, message: String },
}

#[async_trait]
pub trait PaymentGateway: Send + Sync + 'static {
    /// Charges `amount`. The idempotency key makes a retried call charge at most once.
    async fn charge(
        &self,
        method: &MethodRef,
        amount: Decimal,
        currency: Currency,
        idempotency_key: &str,
    ) -> Result<ChargeOutcome, ApiError>;
}

/// Stripe's test cards, as the mock knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestCard {
    pub brand: &'static str,
    pub last4: &'static str,
    /// `None` succeeds; otherwise the decline code.
    pub decline: Option<&'static str>,
}

const CARDS: &[(&str, &str, TestCard)] = &[
    (
        "pm_card_visa",
        "4242424242424242",
        TestCard {
            brand: "visa",
            last4: "4242",
            decline: None,
        },
    ),
    (
        "pm_card_mastercard",
        "5555555555554444",
        TestCard {
            brand: "mastercard",
            last4: "4444",
            decline: None,
        },
    ),
    (
        "pm_card_chargeDeclined",
        "4000000000000002",
        TestCard {
            brand: "visa",
            last4: "0002",
            decline: Some("card_declined"),
        },
    ),
    (
        "pm_card_chargeDeclinedInsufficientFunds",
        "4000000000009995",
        TestCard {
            brand: "visa",
            last4: "9995",
            decline: Some("insufficient_funds"),
        },
    ),
];

pub fn card_for_token(token: &str) -> Option<TestCard> {
    CARDS
        .iter()
        .find(|(t, _, _)| *t == token)
        .map(|(_, _, c)| *c)
}

/// A card number: a known test card, or any Luhn-valid number (which succeeds).
pub fn card_for_number(number: &str) -> Option<(String, String, Option<&'static str>)> {
    let digits: String = number
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if digits.len() < 12
        || digits.len() > 19
        || !digits.chars().all(|c| c.is_ascii_digit())
        || !luhn(&digits)
    {
        return None;
    }
    if let Some((_, _, card)) = CARDS.iter().find(|(_, n, _)| *n == digits) {
        return Some((card.brand.into(), card.last4.into(), card.decline));
    }
    let brand = match digits.as_bytes()[0] {
        b'4' => "visa",
        b'5' => "mastercard",
        b'3' => "amex",
        _ => "unknown",
    };
    Some((brand.into(), digits[digits.len() - 4..].to_owned(), None))
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                if d * 2 > 9 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The mock gateway: the outcome is fixed by the card (kept in `gateway_token` as
/// `mock:<outcome>`).
#[derive(Debug, Default)]
pub struct MockGateway;

impl MockGateway {
    pub fn token_for(decline: Option<&str>) -> String {
        format!("mock:{}", decline.unwrap_or("ok"))
    }
}

#[async_trait]
impl PaymentGateway for MockGateway {
    async fn charge(
        &self,
        method: &MethodRef,
        amount: Decimal,
        _: Currency,
        idempotency_key: &str,
    ) -> Result<ChargeOutcome, ApiError> {
        if amount <= Decimal::ZERO {
            return Err(ApiError::internal("charging a non-positive amount"));
        }
        Ok(match method.gateway_token.strip_prefix("mock:") {
            Some("ok") => ChargeOutcome::Succeeded {
                charge_id: format!(
                    "ch_{}",
                    crate::auth::tokens::sha256_hex(idempotency_key)
                        .get(..24)
                        .unwrap_or_default()
                ),
            },
            Some("insufficient_funds") => ChargeOutcome::Declined {
                code: "insufficient_funds".into(),
                message: "Your card has insufficient funds.".into(),
            },
            _ => ChargeOutcome::Declined {
                code: "card_declined".into(),
                message: "Your card was declined.".into(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cards_are_known_and_numbers_checked() {
        assert_eq!(card_for_token("pm_card_visa").unwrap().decline, None);
        assert_eq!(
            card_for_token("pm_card_chargeDeclined").unwrap().decline,
            Some("card_declined")
        );
        assert_eq!(
            card_for_number("4000 0000 0000 9995").unwrap().2,
            Some("insufficient_funds")
        );
        assert_eq!(card_for_number("4242424242424242").unwrap().1, "4242");
        assert!(card_for_number("4242424242424241").is_none(), "fails Luhn");
        assert!(card_for_number("abc").is_none());
    }
}
