//! The subscription state machine: the only place a status changes. docs/subscriptions.md
//! draws it. An event that is not allowed from the current status is an error (a 409), never a
//! silent change.

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The first charge failed: nothing is granted until it is paid.
    Incomplete,
    Trialing,
    Active,
    /// A renewal charge failed; retries follow the dunning schedule.
    PastDue,
    Cancelled,
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A first invoice was paid (new subscription, or an incomplete one paid later).
    FirstPaymentSucceeded,
    FirstPaymentFailed,
    /// A trial ended with its first paid period charged.
    TrialConverted,
    /// A trial ended and its first charge failed.
    TrialPaymentFailed,
    RenewalSucceeded,
    RenewalFailed,
    /// A past-due invoice was paid (retry or new payment method).
    Recovered,
    /// Cancelled now, or at the end of the period it was set to end.
    Cancel,
    /// A fixed-duration plan ended, a trial ended without a way to pay, dunning gave up with
    /// expiry configured, or an incomplete subscription was never paid.
    Expire,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Incomplete => "incomplete",
            Status::Trialing => "trialing",
            Status::Active => "active",
            Status::PastDue => "past_due",
            Status::Cancelled => "cancelled",
            Status::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(text.into())).ok()
    }

    /// Live subscriptions: at most one per tenant.
    pub fn is_live(self) -> bool {
        matches!(self, Status::Trialing | Status::Active | Status::PastDue)
    }

    /// Whether usage limits of the plan apply (an incomplete or ended subscription grants none).
    pub fn grants_access(self) -> bool {
        self.is_live()
    }

    pub fn apply(self, event: Event) -> Result<Status, ApiError> {
        use Event::*;
        use Status::*;
        let next = match (self, event) {
            (Incomplete, FirstPaymentSucceeded) => Active,
            (Incomplete, Expire) => Expired,
            (Incomplete, Cancel) => Cancelled,
            (Trialing, TrialConverted) => Active,
            (Trialing, TrialPaymentFailed) => PastDue,
            (Active, RenewalSucceeded) => Active,
            (Active, RenewalFailed) => PastDue,
            (PastDue, Recovered) => Active,
            (PastDue, RenewalFailed) => PastDue,
            (Trialing | Active | PastDue, Cancel) => Cancelled,
            (Trialing | Active | PastDue, Expire) => Expired,
            (from, event) => {
                return Err(ApiError::conflict(format!(
                    "a {} subscription cannot take {event:?}",
                    from.as_str()
                ))
                .with("code", "illegal_transition"))
            }
        };
        Ok(next)
    }
}

/// The initial status of a new subscription.
pub fn initial(event: Event) -> Result<Status, ApiError> {
    match event {
        Event::FirstPaymentSucceeded => Ok(Status::Active),
        Event::FirstPaymentFailed => Ok(Status::Incomplete),
        _ => Err(ApiError::internal("not a creation event")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_subscriptions_take_no_event() {
        for from in [Status::Cancelled, Status::Expired] {
            for event in [
                Event::Recovered,
                Event::RenewalSucceeded,
                Event::Cancel,
                Event::Expire,
                Event::TrialConverted,
            ] {
                let e = from.apply(event).unwrap_err();
                assert_eq!(e.status, 409);
            }
        }
    }

    #[test]
    fn dunning_and_recovery() {
        let past_due = Status::Active.apply(Event::RenewalFailed).unwrap();
        assert_eq!(past_due, Status::PastDue);
        assert_eq!(
            past_due.apply(Event::RenewalFailed).unwrap(),
            Status::PastDue
        );
        assert_eq!(past_due.apply(Event::Recovered).unwrap(), Status::Active);
        assert!(Status::Active.apply(Event::Recovered).is_err());
        assert!(Status::Trialing.apply(Event::RenewalSucceeded).is_err());
    }
}
