//! The event types a webhook endpoint can subscribe to, and which entry of the event log each
//! one is (the log keeps Stripe-like names; webhooks use the documented ones).

use serde_json::Value;

/// Every type an endpoint may name in `event_types` (none named: all of them).
pub const EVENT_TYPES: &[&str] = &[
    "subscription.created",
    "subscription.updated",
    "subscription.cancelled",
    "subscription.expired",
    "invoice.created",
    "invoice.paid",
    "invoice.payment_failed",
    "usage.threshold_reached",
];

/// The test message's type (sent only by a test send, to one endpoint).
pub const TEST_TYPE: &str = "webhook.test";

/// The webhook type of an event-log entry, if webhooks carry it.
pub fn webhook_type(kind: &str, data: &Value) -> Option<&'static str> {
    Some(match kind {
        "customer.subscription.created" => "subscription.created",
        "customer.subscription.updated" => "subscription.updated",
        "customer.subscription.deleted" => match data.get("status").and_then(Value::as_str) {
            Some("expired") => "subscription.expired",
            _ => "subscription.cancelled",
        },
        "invoice.created" => "invoice.created",
        "invoice.paid" => "invoice.paid",
        "invoice.payment_failed" => "invoice.payment_failed",
        "usage.threshold_reached" => "usage.threshold_reached",
        _ => return None,
    })
}

/// Whether an endpoint subscribed to `types` (none: all) takes `kind`.
pub fn wants(types: &[String], kind: &str) -> bool {
    types.is_empty() || types.iter().any(|t| t == kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_mapped_type_is_documented_and_endings_say_how() {
        for (kind, data) in [
            ("customer.subscription.created", json!({})),
            ("customer.subscription.updated", json!({})),
            (
                "customer.subscription.deleted",
                json!({"status": "cancelled"}),
            ),
            (
                "customer.subscription.deleted",
                json!({"status": "expired"}),
            ),
            ("invoice.created", json!({})),
            ("invoice.paid", json!({})),
            ("invoice.payment_failed", json!({})),
            ("usage.threshold_reached", json!({})),
        ] {
            let t = webhook_type(kind, &data).unwrap();
            assert!(EVENT_TYPES.contains(&t), "{t}");
        }
        assert_eq!(
            webhook_type(
                "customer.subscription.deleted",
                &json!({"status": "expired"})
            ),
            Some("subscription.expired")
        );
        assert_eq!(webhook_type("customer.balance.adjusted", &json!({})), None);
        let types = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(wants(&[], "invoice.paid"));
        assert!(wants(
            &types(&["invoice.paid", "invoice.created"]),
            "invoice.paid"
        ));
        assert!(!wants(&types(&["invoice.created"]), "invoice.paid"));
    }
}
