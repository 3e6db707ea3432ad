//! Top-ups (issue 20), over HTTP: a plan version sells packs of a metric's units; a tenant
//! admin buys some, charged at once; paid units raise the hard limit for the rest of the
//! period and are free on the bill; a decline adds nothing; a retry never charges twice.

use eshtarek_core::clock::Clock;
use eshtarek_tests::fixtures::{email, metric_in, usage_event};
use eshtarek_tests::http::{Session, TestApp};
use serde_json::{json, Value};

fn named(name: &str) -> String {
    format!("{name} {}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// A plan capping `api_calls` at 1,000 a period (hard), selling packs of 500 for 3.00 and
/// charging 0.01 a call past the allowance; and a tenant on it with a card and an API key.
struct Buyer {
    app: TestApp,
    owner: Session,
    owner_email: String,
    key: String,
    sub_id: String,
}

async fn buyer() -> Buyer {
    let app = TestApp::frozen_at("2026-03-01T00:00:00Z").await;
    let admin = app.platform_admin().await;
    let policy = app
        .post(
            "/v1/limit-policies",
            Some(&admin.access),
            json!({"metric": "api_calls", "limit": 1000, "reset_period": "billing_period", "enforcement": "hard"}),
        )
        .await
        .expect(201)
        .body["id"]
        .clone();
    let plan = app
        .post(
            "/v1/plans",
            Some(&admin.access),
            json!({"name": named("Boostable"), "price": "10.00", "currency": "USD", "billing_cycle": "monthly",
                   "limit_policy_ids": [policy],
                   "usage_charges": [{"metric": "api_calls", "included": 1000, "price": {"model": "per_unit", "unit_price": "0.01"}}],
                   "top_ups": [{"metric": "api_calls", "units": 500, "price": "3.00"}]}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(
        plan["top_ups"],
        json!([{"metric": "api_calls", "units": 500, "price": "3.00"}])
    );
    let owner_email = email("owner");
    let owner = app.signup(&owner_email, "Buyer").await;
    let subscribed = app
        .subscribe_with_card(&owner, plan["id"].as_str().unwrap())
        .await;
    let key = app.api_key(&owner.access, json!({"name": "meter"})).await;
    Buyer {
        sub_id: subscribed["subscription"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        app,
        owner,
        owner_email,
        key,
    }
}

impl Buyer {
    /// Moves the clock (no job runs) and signs the owner in again.
    async fn wait_days(&mut self, days: i64) {
        self.app.clock.advance(chrono::Duration::days(days));
        self.owner = self.app.login(&self.owner_email, None).await;
    }

    async fn record(&self, quantity: i64, id: &str) -> eshtarek_tests::http::Reply {
        self.app
            .post(
                "/v1/usage/events",
                Some(&self.key),
                usage_event("api_calls", quantity, id),
            )
            .await
    }

    async fn buy(&self, key: &str, body: Value) -> eshtarek_tests::http::Reply {
        self.app
            .post_keyed(
                &format!("/v1/subscriptions/{}/top-ups", self.sub_id),
                Some(&self.owner.access),
                key,
                body,
            )
            .await
    }

    /// Makes test card `token` the default.
    async fn card(&self, token: &str) {
        self.app
            .post(
                "/v1/payment-methods",
                Some(&self.owner.access),
                json!({"token": token, "set_default": true}),
            )
            .await
            .expect(201);
    }

    async fn invoices(&self) -> Vec<Value> {
        self.app
            .get("/v1/invoices?limit=100", Some(&self.owner.access))
            .await
            .expect(200)
            .body["data"]
            .as_array()
            .unwrap()
            .clone()
    }
}

#[tokio::test]
async fn a_bought_top_up_raises_the_hard_limit_for_the_period_and_is_charged_once() {
    let mut b = buyer().await;
    b.record(1000, "first").await.expect(200);
    let refused = b.record(1, "over").await.problem(402);
    assert_eq!(refused.body["limit"], 1000);

    b.wait_days(10).await;
    let bought = b
        .buy("buy-1", json!({"metric": "api_calls", "packs": 2}))
        .await
        .expect(201);
    assert_eq!(bought.body["grant"]["units"], 1000);
    assert_eq!(
        bought.body["grant"]["expires_at"],
        "2026-04-01T00:00:00.000Z"
    );
    let invoice = &bought.body["invoice"];
    assert_eq!(invoice["status"], "paid");
    assert_eq!(invoice["total"], "6.00");
    assert_eq!(invoice["lines"][0]["kind"], "top_up");
    assert_eq!(invoice["lines"][0]["detail"]["quantity"], 1000);
    // The same request again is the same purchase: no second charge.
    let again = b
        .buy("buy-1", json!({"metric": "api_calls", "packs": 2}))
        .await
        .expect(201);
    assert_eq!(again.body["invoice"]["id"], invoice["id"]);
    let top_ups = |invoices: &[Value]| {
        invoices
            .iter()
            .filter(|i| i["lines"][0]["kind"] == "top_up")
            .count()
    };
    assert_eq!(top_ups(&b.invoices().await), 1);

    // 1,000 more calls fit, then the hard limit (plan + bought) holds again.
    b.record(1000, "second").await.expect(200);
    let refused = b.record(1, "over-again").await.problem(402);
    assert_eq!(refused.body["limit"], 2000);
    assert_eq!(refused.body["plan_limit"], 1000);
    assert_eq!(refused.body["granted"], 1000);
    let usage = b
        .app
        .get("/v1/usage", Some(&b.owner.access))
        .await
        .expect(200)
        .body;
    assert_eq!(metric_in(&usage, "api_calls")["granted"], 1000);
    let audit = b
        .app
        .get("/v1/audit-log", Some(&b.owner.access))
        .await
        .expect(200);
    assert!(audit.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "subscription.top_up_bought"));

    // The renewal: 2,000 calls, 1,000 included and 1,000 bought, so nothing billable; and
    // the bought units end with the period.
    b.app.clock.advance(chrono::Duration::days(21));
    eshtarek_core::jobs::renew_billing(&b.app.ctx, b.app.clock.now(), Default::default())
        .await
        .unwrap();
    let owner = b.app.login(&b.owner_email, None).await;
    let renewal = b
        .app
        .get("/v1/invoices?limit=1", Some(&owner.access))
        .await
        .expect(200)
        .body["data"][0]
        .clone();
    let usage_line = renewal["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == "usage_charge")
        .unwrap()
        .clone();
    assert_eq!(usage_line["detail"]["granted"], 1000);
    assert_eq!(usage_line["detail"]["billable"], 0);
    assert_eq!(renewal["total"], "10.00");
    let usage = b
        .app
        .get("/v1/usage", Some(&owner.access))
        .await
        .expect(200)
        .body;
    assert_eq!(metric_in(&usage, "api_calls")["limit"], 1000);
    assert_eq!(metric_in(&usage, "api_calls")["granted"], 0);
    // The key of last period's purchase buys nothing now: no units for free from an old bill.
    let stale = b
        .app
        .post_keyed(
            &format!("/v1/subscriptions/{}/top-ups", b.sub_id),
            Some(&owner.access),
            "buy-1",
            json!({"metric": "api_calls", "packs": 2}),
        )
        .await
        .problem(409);
    assert!(stale.body["detail"]
        .as_str()
        .unwrap()
        .contains("earlier period"));
    let usage = b
        .app
        .get("/v1/usage", Some(&owner.access))
        .await
        .expect(200)
        .body;
    assert_eq!(metric_in(&usage, "api_calls")["granted"], 0);
}

#[tokio::test]
async fn a_declined_top_up_adds_nothing_and_bad_requests_are_named() {
    let b = buyer().await;
    for (bad, status, field) in [
        (json!({"metric": "exports"}), 422, "metric"),
        (json!({"metric": "api_calls", "packs": 0}), 422, "packs"),
        (json!({"metric": "api_calls", "packs": 101}), 422, "packs"),
        (json!({"metric": "Bad Metric"}), 422, "metric"),
    ] {
        let reply = b
            .buy(&uuid::Uuid::new_v4().to_string(), bad.clone())
            .await
            .problem(status);
        assert_eq!(reply.body["field"], field, "{bad}: {}", reply.body);
    }
    // A member may not buy.
    let tenant = b.owner.tenant_id.clone().unwrap();
    let member = b
        .app
        .add_member(&b.owner, &tenant, &email("member"), "tenant_user")
        .await;
    b.app
        .post(
            &format!("/v1/subscriptions/{}/top-ups", b.sub_id),
            Some(&member.access),
            json!({"metric": "api_calls"}),
        )
        .await
        .problem(403);

    b.card("pm_card_chargeDeclined").await;
    let declined = b
        .buy("declined", json!({"metric": "api_calls"}))
        .await
        .problem(402);
    let voided = declined.body["invoice_id"].as_str().unwrap().to_owned();
    let invoices = b.invoices().await;
    let invoice = invoices
        .iter()
        .find(|i| i["id"] == voided.as_str())
        .unwrap();
    assert_eq!(invoice["status"], "void");
    b.record(1000, "all").await.expect(200);
    assert_eq!(b.record(1, "over").await.problem(402).body["limit"], 1000);

    // The same key after a working card is added: a new attempt, charged once.
    b.card("pm_card_visa").await;
    let bought = b
        .buy("declined", json!({"metric": "api_calls"}))
        .await
        .expect(201);
    assert_ne!(bought.body["invoice"]["id"], voided.as_str());
    assert_eq!(bought.body["invoice"]["status"], "paid");
    b.record(500, "bought").await.expect(200);
}

#[tokio::test]
async fn top_ups_on_a_plan_are_checked_field_by_field() {
    let app = TestApp::new().await;
    let admin = app.platform_admin().await;
    for (top_ups, field) in [
        (
            json!([{"metric": "api_calls", "units": 500, "price": "3.00"}]),
            "top_ups[0].metric",
        ),
        (
            json!([{"metric": "tokens", "units": 0, "price": "3.00"}]),
            "top_ups[0].units",
        ),
        (
            json!([{"metric": "tokens", "units": 5, "price": "3.001"}]),
            "top_ups[0].price",
        ),
        (
            json!([{"metric": "tokens", "units": 5, "price": "1"}, {"metric": "tokens", "units": 9, "price": "2"}]),
            "top_ups[1].metric",
        ),
    ] {
        let reply = app
            .post(
                "/v1/plans",
                Some(&admin.access),
                json!({"name": named("Bad top-up"), "price": "1.00", "currency": "USD", "billing_cycle": "monthly",
                       "usage_charges": [{"metric": "tokens", "price": {"model": "per_unit", "unit_price": "0.001"}}],
                       "top_ups": top_ups}),
            )
            .await
            .problem(422);
        assert_eq!(reply.body["field"], field, "{}", reply.body);
    }
}

#[tokio::test]
async fn a_platform_admin_credits_a_tenant_and_invoices_take_the_balance_first() {
    let b = buyer().await;
    let admin = b.app.platform_admin().await;
    let tenant = b.owner.tenant_id.clone().unwrap();
    let path = format!("/v1/admin/tenants/{tenant}/credits");
    let adjust = |body: Value| {
        let (app, path, token) = (&b.app, path.clone(), admin.access.clone());
        async move { app.post(&path, Some(&token), body).await }
    };
    b.app
        .post(
            &path,
            Some(&b.owner.access),
            json!({"amount": "5.00", "reason": "x"}),
        )
        .await
        .problem(403);
    for bad in [
        json!({"amount": "0", "reason": "x"}),
        json!({"amount": "5.001", "reason": "x"}),
        json!({"amount": "+5", "reason": "x"}),
        json!({"amount": "--5", "reason": "x"}),
        json!({"amount": "-1.00", "reason": "x"}),
        json!({"amount": "1000001", "reason": "x"}),
    ] {
        let reply = b
            .app
            .post(&path, Some(&admin.access), bad.clone())
            .await
            .problem(422);
        assert_eq!(reply.body["field"], "amount", "{bad}: {}", reply.body);
    }
    let reply = adjust(json!({"amount": "5.00", "reason": " "}))
        .await
        .problem(422);
    assert_eq!(reply.body["field"], "reason");
    let credited = adjust(json!({"amount": "5.00", "reason": "Sorry for the outage"}))
        .await
        .expect(200);
    assert_eq!(credited.body["balance"], "5.00");
    assert_eq!(credited.body["currency"], "USD");

    // A declined purchase gives back the credit its voided invoice took.
    b.card("pm_card_chargeDeclined").await;
    let declined = b
        .buy("too-dear", json!({"metric": "api_calls", "packs": 2}))
        .await
        .problem(402);
    assert!(declined.body["invoice_id"].is_string());
    let credits = b
        .app
        .get("/v1/billing/credits", Some(&b.owner.access))
        .await
        .expect(200)
        .body;
    assert_eq!(credits["balance"], "5.00");
    b.card("pm_card_visa").await;

    // A top-up of 3.00 is paid from the balance, not the card.
    let bought = b
        .buy("from-credit", json!({"metric": "api_calls"}))
        .await
        .expect(201);
    let invoice = &bought.body["invoice"];
    assert_eq!(invoice["subtotal"], "3.00");
    assert_eq!(invoice["credit_applied"], "3.00");
    assert_eq!(invoice["total"], "0.00");
    assert_eq!(invoice["status"], "paid");
    let credits = b
        .app
        .get("/v1/billing/credits", Some(&b.owner.access))
        .await
        .expect(200)
        .body;
    assert_eq!(credits["balance"], "2.00");
    assert_eq!(credits["grants"][0]["units"], 500);
    assert_eq!(credits["grants"][0]["invoice_id"], invoice["id"]);
    let seen = b.app.get(&path, Some(&admin.access)).await.expect(200).body;
    assert_eq!(seen["balance"], "2.00");

    // Taking back more than is left is refused; taking back the rest empties it.
    let refused = adjust(json!({"amount": "-5.00", "reason": "mistake"}))
        .await
        .problem(422);
    assert_eq!(refused.body["field"], "amount");
    let emptied = adjust(json!({"amount": "-2.00", "reason": "Given by mistake"}))
        .await
        .expect(200);
    assert_eq!(emptied.body["balance"], "0.00");
    let audit = b
        .app
        .get(
            &format!("/v1/audit-log?tenant_id={tenant}"),
            Some(&admin.access),
        )
        .await
        .expect(200);
    let adjusted: Vec<_> = audit.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "tenant.credit_adjusted")
        .collect();
    assert_eq!(adjusted.len(), 2);
    assert!(adjusted
        .iter()
        .any(|e| e["reason"] == "Sorry for the outage"));
}
