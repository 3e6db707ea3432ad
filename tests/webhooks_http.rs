//! Webhooks through HTTP, on the store `ESHTAREK_TEST_STORE` selects: endpoints and their
//! secrets, the outbound guard, and delivery to a receiver on loopback that verifies every
//! message with the `standardwebhooks` package from PyPI (`tests/support/webhook_receiver.py`).

use std::io::BufRead;
use std::process::{Child, Command, Stdio};

use chrono::Duration;
use eshtarek_core::clock::Clock;
use eshtarek_core::jobs::{deliver_webhooks, RunLimits};
use eshtarek_core::webhooks::WebhookSettings;
use eshtarek_tests::fixtures::email;
use eshtarek_tests::http::{Session, TestApp};
use serde_json::{json, Value};

/// The receiver, killed when dropped.
struct Receiver {
    child: Child,
    base: String,
    log: std::path::PathBuf,
}

impl Receiver {
    fn start() -> Self {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let python = format!("{root}/.venv/bin/python");
        assert!(
            std::path::Path::new(&python).exists(),
            "no {python}: run the tests through scripts/test, which installs the receiver's \
             verifier (standardwebhooks) into .venv"
        );
        let log = tempfile::NamedTempFile::new()
            .unwrap()
            .into_temp_path()
            .keep()
            .unwrap();
        let mut child = Command::new(python)
            .arg(format!("{root}/tests/support/webhook_receiver.py"))
            .arg(&log)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the receiver starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().expect("the receiver prints its port");
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// Verify deliveries to `path` with `secret` (besides those given before for it).
    async fn trust(&self, path: &str, secret: &str) {
        let status = reqwest::Client::new()
            .post(format!("{}/__secret{path}", self.base))
            .body(secret.to_owned())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 204);
    }

    /// Every delivery received, in order.
    fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

async fn app(private: bool) -> TestApp {
    TestApp::on(eshtarek_tests::stores::selected().await)
        .await
        .with_webhooks(WebhookSettings::new(private))
}

async fn deliver(app: &TestApp) -> std::collections::BTreeMap<String, u64> {
    let report = deliver_webhooks(&app.ctx, app.clock.now(), RunLimits::default())
        .await
        .unwrap();
    assert!(report.complete);
    report.outcomes
}

/// A tenant admin's endpoint at `url` (all event types unless `types`), trusted by `receiver`.
async fn endpoint(
    app: &TestApp,
    owner: &Session,
    receiver: &Receiver,
    path: &str,
    types: Value,
) -> Value {
    let created = app
        .post(
            "/v1/webhooks/endpoints",
            Some(&owner.access),
            json!({"url": format!("{}{path}", receiver.base), "description": "orders service", "event_types": types}),
        )
        .await
        .expect(201);
    let secret = created.body["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    receiver.trust(path, secret).await;
    created.body["endpoint"].clone()
}

/// Queues a test message to endpoint `id`.
async fn send_test(app: &TestApp, owner: &Session, id: &str) -> Value {
    app.post(
        &format!("/v1/webhooks/endpoints/{id}/test"),
        Some(&owner.access),
        json!({}),
    )
    .await
    .expect(202)
    .body
}

/// The messages of endpoint `id`, newest first (the page's `data` in `body["data"]`).
async fn messages_of(app: &TestApp, owner: &Session, id: &str) -> eshtarek_tests::http::Reply {
    app.get(
        &format!("/v1/webhooks/endpoints/{id}/messages"),
        Some(&owner.access),
    )
    .await
    .expect(200)
}

#[tokio::test]
async fn endpoints_are_the_tenant_admins_and_private_targets_are_refused() {
    let app = app(false).await;
    let owner = app.signup(&email("own"), "Acme").await;
    for url in [
        "http://127.0.0.1/hook",
        "https://127.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "https://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "https://10.0.0.1/",
        "https://[::1]/",
        "https://localhost:8080/",
        "ftp://example.com/",
    ] {
        let refused = app
            .post(
                "/v1/webhooks/endpoints",
                Some(&owner.access),
                json!({"url": url}),
            )
            .await
            .problem(422);
        assert_eq!(refused.body["field"], "url", "{url}: {}", refused.body);
    }
    let unknown = app
        .post(
            "/v1/webhooks/endpoints",
            Some(&owner.access),
            json!({"url": "https://93.184.215.14/hook", "event_types": ["invoice.exploded"]}),
        )
        .await
        .problem(422);
    assert_eq!(unknown.body["field"], "event_types");
    // A public address literal needs no lookup: registered, its secret shown once.
    let created = app
        .post(
            "/v1/webhooks/endpoints",
            Some(&owner.access),
            json!({"url": "https://93.184.215.14/hook", "event_types": ["invoice.paid"]}),
        )
        .await
        .expect(201);
    let id = created.body["endpoint"]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/webhooks/endpoints/{id}");
    let read = app.get(&path, Some(&owner.access)).await.expect(200);
    assert!(read.body.get("secret").is_none(), "{}", read.body);
    assert_eq!(read.body["event_types"], json!(["invoice.paid"]));
    // Another tenant sees nothing of it; a tenant user may not manage endpoints.
    let stranger = app.signup(&email("str"), "Globex").await;
    app.get(&path, Some(&stranger.access)).await.problem(404);
    let listed = app
        .get("/v1/webhooks/endpoints", Some(&stranger.access))
        .await
        .expect(200);
    assert_eq!(listed.body["data"], json!([]));
    // Changing the URL is checked the same way.
    let bad = app
        .patch(
            &path,
            Some(&owner.access),
            json!({"url": "https://10.1.2.3/"}),
        )
        .await
        .problem(422);
    assert_eq!(bad.body["field"], "url");
    let rotated = app
        .post(
            &format!("{path}/rotate-secret"),
            Some(&owner.access),
            json!({"overlap_hours": 2}),
        )
        .await
        .expect(200);
    assert_ne!(rotated.body["secret"], created.body["secret"]);
    assert!(rotated.body["endpoint"]["previous_secret_until"].is_string());
    app.delete(&path, Some(&owner.access)).await.expect(204);
    app.get(&path, Some(&owner.access)).await.problem(404);
}

#[tokio::test]
async fn changes_are_delivered_once_each_signed_as_standard_webhooks() {
    let app = app(true).await;
    let receiver = Receiver::start();
    let admin = app.platform_admin().await;
    let plan = app
        .post(
            "/v1/plans",
            Some(&admin.access),
            json!({"name": format!("Hooks {}", &uuid::Uuid::new_v4().simple().to_string()[..8]), "price": "30.00", "currency": "USD", "billing_cycle": "monthly"}),
        )
        .await
        .expect(201);
    let owner = app.signup(&email("own"), "Acme").await;
    // A first subscription, cancelled, before any endpoint: its events are not sent later.
    let first = app
        .subscribe_with_card(&owner, plan.body["id"].as_str().unwrap())
        .await;
    let first_id = first["subscription"]["id"].as_str().unwrap();
    app.post(
        &format!("/v1/subscriptions/{first_id}/cancel"),
        Some(&owner.access),
        json!({"at_period_end": false}),
    )
    .await
    .expect(200);
    let before = app
        .get("/v1/events?limit=100", Some(&owner.access))
        .await
        .expect(200);
    let before = before.body["data"].as_array().unwrap().len();
    app.clock.advance(Duration::milliseconds(5));
    let all = endpoint(&app, &owner, &receiver, "/ok/all", json!([])).await;
    let paid_only = endpoint(&app, &owner, &receiver, "/ok/paid", json!(["invoice.paid"])).await;
    let subscribed = app
        .subscribe_with_card(&owner, plan.body["id"].as_str().unwrap())
        .await;
    assert_eq!(subscribed["subscription"]["status"], "active");
    // Another tenant's events never reach this tenant's endpoints.
    let other = app.signup(&email("oth"), "Globex").await;
    app.subscribe_with_card(&other, plan.body["id"].as_str().unwrap())
        .await;

    let outcomes = deliver(&app).await;
    let got = receiver.received();
    let kinds: Vec<(&str, &str)> = got
        .iter()
        .map(|m| (m["path"].as_str().unwrap(), m["type"].as_str().unwrap()))
        .collect();
    // Every event of the tenant to the first endpoint, invoice.paid to the second as well.
    let events = app
        .get("/v1/events?limit=100", Some(&owner.access))
        .await
        .expect(200);
    let mapped = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .take(events.body["data"].as_array().unwrap().len() - before)
        .filter(|e| {
            !["customer.balance.adjusted", "customer.discount.created"]
                .contains(&e["type"].as_str().unwrap())
        })
        .count();
    assert_eq!(got.len(), mapped + 1, "{kinds:?} {:#}", events.body);
    assert_eq!(
        outcomes.get("delivered"),
        Some(&(got.len() as u64)),
        "{outcomes:?}"
    );
    for kind in ["subscription.created", "invoice.created", "invoice.paid"] {
        assert!(kinds.iter().any(|(_, k)| *k == kind), "{kind} in {kinds:?}");
    }
    assert!(got.iter().all(|m| m["verified"] == true), "{got:#?}");
    // The body is {type, timestamp, data}, the webhook-id the event's id.
    for m in &got {
        let body: Value = serde_json::from_str(m["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["type"], m["type"]);
        assert_eq!(body["event_id"], m["id"]);
        assert!(body["data"].is_object() && body["timestamp"].is_string());
    }
    let paid: Vec<_> = got.iter().filter(|m| m["type"] == "invoice.paid").collect();
    assert_eq!(paid.len(), 2, "both endpoints take invoice.paid");
    assert_eq!(paid[0]["id"], paid[1]["id"], "one webhook-id per event");
    // Nothing is sent twice.
    let again = deliver(&app).await;
    assert!(!again.contains_key("delivered"), "{again:?}");
    assert_eq!(receiver.received().len(), got.len());
    // The endpoint's log and messages say so.
    let id = all["id"].as_str().unwrap();
    let messages = messages_of(&app, &owner, id).await;
    let messages = messages.body["data"].as_array().unwrap().clone();
    assert_eq!(messages.len(), mapped);
    assert!(messages
        .iter()
        .all(|m| m["status"] == "delivered" && m["attempts"] == 1));
    let attempts = app
        .get(
            &format!("/v1/webhooks/endpoints/{id}/attempts"),
            Some(&owner.access),
        )
        .await
        .expect(200);
    assert!(attempts.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["status_code"] == 200 && a["delivered"] == true));
    let paid_id = paid_only["id"].as_str().unwrap();
    let only_paid = messages_of(&app, &owner, paid_id).await;
    assert_eq!(only_paid.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(only_paid.body["data"][0]["event_type"], "invoice.paid");
}

#[tokio::test]
async fn a_failing_receiver_gets_the_same_message_again_with_growing_gaps() {
    let app = app(true).await;
    let receiver = Receiver::start();
    let owner = app.signup(&email("own"), "Acme").await;
    let flaky = endpoint(&app, &owner, &receiver, "/flaky/2", json!([])).await;
    let id = flaky["id"].as_str().unwrap();
    let queued = send_test(&app, &owner, id).await;
    assert_eq!(queued["event_type"], "webhook.test");
    assert_eq!(deliver(&app).await.get("retrying"), Some(&1));
    // Not due before the first wait (5 s, a tenth more at most) is over.
    app.clock.advance(Duration::seconds(4));
    assert!(!deliver(&app).await.contains_key("retrying"));
    app.clock.advance(Duration::seconds(2));
    assert_eq!(deliver(&app).await.get("retrying"), Some(&1));
    // The second wait is five minutes.
    app.clock.advance(Duration::seconds(60));
    let early = deliver(&app).await;
    assert!(
        !early.contains_key("delivered") && !early.contains_key("retrying"),
        "{early:?}"
    );
    app.clock.advance(Duration::seconds(300));
    assert_eq!(deliver(&app).await.get("delivered"), Some(&1));
    let got = receiver.received();
    assert_eq!(got.len(), 3, "{got:#?}");
    assert!(got
        .iter()
        .all(|m| m["id"] == got[0]["id"] && m["verified"] == true));
    let statuses: Vec<_> = got.iter().map(|m| m["status"].as_i64().unwrap()).collect();
    assert_eq!(statuses, [500, 500, 200]);
    let messages = messages_of(&app, &owner, id).await;
    assert_eq!(messages.body["data"][0]["status"], "delivered");
    assert_eq!(messages.body["data"][0]["attempts"], 3);
    // A resend goes out again with the same webhook-id.
    let message_id = got[0]["id"].as_str().unwrap();
    app.post(
        &format!("/v1/webhooks/endpoints/{id}/messages/{message_id}/resend"),
        Some(&owner.access),
        json!({}),
    )
    .await
    .expect(202);
    assert_eq!(deliver(&app).await.get("delivered"), Some(&1));
    assert_eq!(receiver.received()[3]["id"], message_id);
    // With a fresh schedule: its attempts counted from none again.
    let messages = messages_of(&app, &owner, id).await;
    assert_eq!(messages.body["data"][0]["attempts"], 1);
}

#[tokio::test]
async fn a_busy_receivers_retry_after_is_waited() {
    let app = app(true).await;
    let receiver = Receiver::start();
    let owner = app.signup(&email("own"), "Acme").await;
    let busy = endpoint(&app, &owner, &receiver, "/busy/120", json!([])).await;
    let id = busy["id"].as_str().unwrap();
    send_test(&app, &owner, id).await;
    assert_eq!(deliver(&app).await.get("retrying"), Some(&1));
    // Not after the schedule's 5 s: after the 120 s the receiver asked for.
    app.clock.advance(Duration::seconds(10));
    assert!(!deliver(&app).await.contains_key("delivered"));
    app.clock.advance(Duration::seconds(125));
    assert_eq!(deliver(&app).await.get("delivered"), Some(&1));
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0]["status"].clone(), got[1]["status"].clone()),
        (json!(503), json!(200))
    );
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_tells_the_admins() {
    let app = app(true).await;
    let receiver = Receiver::start();
    let owner = app.signup(&email("own"), "Acme").await;
    let gone = endpoint(&app, &owner, &receiver, "/gone", json!([])).await;
    let id = gone["id"].as_str().unwrap();
    send_test(&app, &owner, id).await;
    assert_eq!(deliver(&app).await.get("endpoint_gone"), Some(&1));
    let read = app
        .get(&format!("/v1/webhooks/endpoints/{id}"), Some(&owner.access))
        .await
        .expect(200);
    assert_eq!(read.body["enabled"], false);
    assert_eq!(read.body["disabled_reason"], "gone");
    let notes = app
        .get("/v1/notifications", Some(&owner.access))
        .await
        .expect(200);
    assert!(notes.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["kind"] == "webhook.endpoint_disabled" && n["data"]["endpoint_id"] == id));
    // Later messages are not sent while it is off.
    send_test(&app, &owner, id).await;
    assert_eq!(deliver(&app).await.get("endpoint_off"), Some(&1));
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn during_a_rotation_both_secrets_sign() {
    let app = app(true).await;
    let old_only = Receiver::start();
    let owner = app.signup(&email("own"), "Acme").await;
    let ep = endpoint(&app, &owner, &old_only, "/ok", json!([])).await;
    let id = ep["id"].as_str().unwrap();
    let rotated = app
        .post(
            &format!("/v1/webhooks/endpoints/{id}/rotate-secret"),
            Some(&owner.access),
            json!({"overlap_hours": 1}),
        )
        .await
        .expect(200);
    let new_secret = rotated.body["secret"].as_str().unwrap();
    send_test(&app, &owner, id).await;
    deliver(&app).await;
    let got = old_only.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["verified"], true, "the old secret still verifies");
    assert_eq!(got[0]["signatures"].as_str().unwrap().split(' ').count(), 2);
    // Rotated again without an overlap: only the newest secret signs.
    old_only.trust("/ok", new_secret).await;
    let newest = app
        .post(
            &format!("/v1/webhooks/endpoints/{id}/rotate-secret"),
            Some(&owner.access),
            json!({"overlap_hours": 0}),
        )
        .await
        .expect(200);
    old_only
        .trust("/ok", newest.body["secret"].as_str().unwrap())
        .await;
    send_test(&app, &owner, id).await;
    deliver(&app).await;
    let got = old_only.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1]["signatures"].as_str().unwrap().split(' ').count(), 1);
    assert_eq!(got[1]["verified"], true);
}
