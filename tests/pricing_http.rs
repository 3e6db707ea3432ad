//! Pricing that businesses sell (issue 20), over HTTP: price components on plan versions
//! (a base price, a per-seat price, usage charges with tiers), their checks, and what the
//! invoices bill from them.

use eshtarek_core::clock::Clock;
use eshtarek_tests::fixtures::email;
use eshtarek_tests::http::{Session, TestApp};
use eshtarek_tests::stall::Stalls;
use serde_json::{json, Value};

/// A unique plan name (the DynamoDB suite shares one table).
fn named(name: &str) -> String {
    format!("{name} {}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// The graduated tiers of issue 20: the first 10k at $0.01, the next 90k at $0.008, the rest at
/// $0.005.
fn graduated_calls() -> Value {
    json!({"metric": "api_calls", "included": 0, "price": {"model": "graduated", "tiers": [
        {"up_to": 10000, "unit_price": "0.01"},
        {"up_to": 100000, "unit_price": "0.008"},
        {"up_to": null, "unit_price": "0.005"}
    ]}})
}

async fn create_plan(app: &TestApp, admin: &Session, body: Value) -> Value {
    app.post("/v1/plans", Some(&admin.access), body)
        .await
        .expect(201)
        .body
}

#[tokio::test]
async fn price_components_live_on_immutable_versions() {
    let app = TestApp::new().await;
    let admin = app.platform_admin().await;
    let plan = create_plan(
        &app,
        &admin,
        json!({"name": named("Teams"), "price": "49.00", "currency": "USD", "billing_cycle": "monthly",
               "seats": {"unit_price": "12.00", "included": 1},
               "usage_charges": [graduated_calls(),
                   {"metric": "exports", "included": 1000, "price": {"model": "package", "package_size": 1000, "package_price": "5.00"}}]}),
    )
    .await;
    assert_eq!(
        plan["seats"],
        json!({"unit_price": "12.00", "included": 1, "quantity": "members"})
    );
    // As written, every field shown (a tier's flat price defaults to 0).
    let mut shown = graduated_calls();
    for tier in shown["price"]["tiers"].as_array_mut().unwrap() {
        tier["flat_price"] = json!("0");
    }
    assert_eq!(plan["usage_charges"][0], shown);
    assert_eq!(
        plan["usage_charges"][1]["price"],
        json!({"model": "package", "package_size": 1000, "package_price": "5.00"})
    );
    let id = plan["id"].as_str().unwrap();
    // The public pricing page shows the components as written.
    let public = app.get(&format!("/v1/plans/{id}"), None).await.expect(200);
    assert_eq!(public.body["usage_charges"], plan["usage_charges"]);
    assert_eq!(public.body["seats"], plan["seats"]);

    // Changing a component writes version 2; version 1 keeps what it had.
    let patched = app
        .patch(
            &format!("/v1/plans/{id}"),
            Some(&admin.access),
            json!({"seats": null, "usage_charges": [{"metric": "api_calls", "included": 1000,
                   "price": {"model": "per_unit", "unit_price": "0.002"}}]}),
        )
        .await
        .expect(200);
    assert_eq!(patched.body["current_version"], 2);
    assert_eq!(patched.body["seats"], Value::Null);
    assert_eq!(
        patched.body["usage_charges"],
        json!([{"metric": "api_calls", "included": 1000, "price": {"model": "per_unit", "unit_price": "0.002"}}])
    );
    let v1 = app
        .get(&format!("/v1/plans/{id}/versions/1"), Some(&admin.access))
        .await
        .expect(200);
    assert_eq!(v1.body["seats"], plan["seats"]);
    assert_eq!(v1.body["usage_charges"], plan["usage_charges"]);
    // The same components again are no change: no version 3.
    let same = app
        .patch(
            &format!("/v1/plans/{id}"),
            Some(&admin.access),
            json!({"usage_charges": patched.body["usage_charges"]}),
        )
        .await
        .expect(200);
    assert_eq!(same.body["current_version"], 2);
}

#[tokio::test]
async fn price_components_are_checked_field_by_field() {
    let app = TestApp::new().await;
    let admin = app.platform_admin().await;
    let daily = app
        .post(
            "/v1/limit-policies",
            Some(&admin.access),
            json!({"metric": "api_calls", "limit": 100, "reset_period": "day", "enforcement": "hard"}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = |extra: Value| {
        let mut body = json!({"name": named("Bad"), "price": "10.00", "currency": "USD", "billing_cycle": "monthly"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let per_unit = |metric: &str, price: &str| json!({"metric": metric, "price": {"model": "per_unit", "unit_price": price}});
    let cases = [
        (
            json!({"seats": {"unit_price": "12.001"}}),
            "seats.unit_price",
        ),
        (
            json!({"seats": {"unit_price": "-1.00"}}),
            "seats.unit_price",
        ),
        (
            json!({"usage_charges": [{"metric": "api_calls", "price": {"model": "graduated", "tiers": [
                {"up_to": 100, "unit_price": "0.01"}, {"up_to": 50, "unit_price": "0.01"}, {"up_to": null, "unit_price": "0.01"}]}}]}),
            "usage_charges[0].price.tiers[1].up_to",
        ),
        (
            json!({"usage_charges": [{"metric": "api_calls", "price": {"model": "volume", "tiers": [
                {"up_to": 100, "unit_price": "0.01"}]}}]}),
            "usage_charges[0].price.tiers[0].up_to",
        ),
        (
            json!({"usage_charges": [{"metric": "api_calls", "price": {"model": "volume", "tiers": []}}]}),
            "usage_charges[0].price.tiers",
        ),
        (
            json!({"usage_charges": [per_unit("api_calls", "-0.5")]}),
            "usage_charges[0].price.unit_price",
        ),
        (
            json!({"usage_charges": [per_unit("api_calls", "0.00000000001")]}),
            "usage_charges[0].price.unit_price",
        ),
        (
            json!({"usage_charges": [per_unit("api_calls", "1"), per_unit("api_calls", "2")]}),
            "usage_charges[1].metric",
        ),
        (
            json!({"usage_charges": [per_unit("max_users", "1")]}),
            "usage_charges[0].metric",
        ),
        (
            json!({"usage_charges": [per_unit("API calls", "1")]}),
            "usage_charges[0].metric",
        ),
        (
            json!({"usage_charges": [{"metric": "api_calls", "price": {"model": "package", "package_size": 0, "package_price": "5"}}]}),
            "usage_charges[0].price.package_size",
        ),
        // A charged metric is counted per billing period; a daily limit on it cannot be.
        (
            json!({"usage_charges": [per_unit("api_calls", "1")], "limit_policy_ids": [daily]}),
            "usage_charges[0].metric",
        ),
    ];
    for (extra, field) in cases {
        let reply = app
            .post("/v1/plans", Some(&admin.access), base(extra.clone()))
            .await
            .problem(422);
        assert_eq!(reply.body["field"], field, "{extra}: {}", reply.body);
    }
    // Shapes a parser refuses are 422s too, never a 500: a number where a decimal string
    // belongs, a model nobody knows.
    for extra in [
        json!({"usage_charges": [{"metric": "api_calls", "price": {"model": "per_unit", "unit_price": 0.002}}]}),
        json!({"usage_charges": [{"metric": "api_calls", "price": {"model": "stairs", "unit_price": "1"}}]}),
        json!({"seats": {"unit_price": "12.00", "per": "user"}}),
    ] {
        let reply = app
            .post("/v1/plans", Some(&admin.access), base(extra.clone()))
            .await
            .problem(422);
        let field = reply.body["field"].as_str().unwrap_or_default().to_owned();
        assert!(
            field.starts_with("usage_charges") || field.starts_with("seats"),
            "{extra}: {}",
            reply.body
        );
    }
    // Yen has no minor unit: a seat price in cents is refused when the currency changes.
    let plan = create_plan(
        &app,
        &admin,
        base(json!({"seats": {"unit_price": "12.50"}})),
    )
    .await;
    let reply = app
        .patch(
            &format!("/v1/plans/{}", plan["id"].as_str().unwrap()),
            Some(&admin.access),
            json!({"currency": "JPY", "price": "1000"}),
        )
        .await
        .problem(422);
    assert_eq!(reply.body["field"], "seats.unit_price");
}

#[tokio::test]
async fn a_charged_metric_is_metered_without_a_limit() {
    let app = TestApp::new().await;
    let admin = app.platform_admin().await;
    let plan = create_plan(
        &app,
        &admin,
        json!({"name": named("Metered"), "price": "0", "currency": "USD", "billing_cycle": "monthly",
               "usage_charges": [graduated_calls()]}),
    )
    .await;
    let owner = app.signup(&email("owner"), "Metered Co").await;
    app.post(
        "/v1/subscriptions",
        Some(&owner.access),
        json!({"plan_id": plan["id"]}),
    )
    .await
    .expect(201);
    let key = app.api_key(&owner.access, json!({"name": "meter"})).await;
    app.post(
        "/v1/usage/events",
        Some(&key),
        eshtarek_tests::fixtures::usage_event("api_calls", 1234, "e1"),
    )
    .await
    .expect(200);
    // Not charged, not limited: still unknown.
    app.post(
        "/v1/usage/events",
        Some(&key),
        eshtarek_tests::fixtures::usage_event("exports", 1, "e2"),
    )
    .await
    .problem(422);
    let usage = app
        .get("/v1/usage", Some(&owner.access))
        .await
        .expect(200)
        .body;
    let calls = eshtarek_tests::fixtures::metric_in(&usage, "api_calls");
    assert_eq!(calls["used"], 1234);
    assert_eq!(calls["limit"], Value::Null);
    assert_eq!(calls["reset_period"], "billing_period");
}

/// A tenant on a plan, with a card and an API key, on a frozen clock.
struct Shop {
    app: TestApp,
    owner_email: String,
    owner: std::sync::Mutex<Session>,
    key: String,
}

impl Shop {
    /// Opens at 2026-01-01 with `plan` (a create-plan body, named uniquely here); the tenant
    /// gets `members` members besides its owner before it subscribes with a card.
    async fn open(plan: Value, members: usize) -> (Shop, Value) {
        Self::open_on(eshtarek_tests::stores::selected().await, plan, members).await
    }

    /// The same on `store`.
    async fn open_on(
        store: std::sync::Arc<dyn eshtarek_core::store::Store>,
        plan: Value,
        members: usize,
    ) -> (Shop, Value) {
        Self::open_at(store, "2026-01-01T00:00:00Z", plan, members).await
    }

    /// The same on `store`, opening at `start`.
    async fn open_at(
        store: std::sync::Arc<dyn eshtarek_core::store::Store>,
        start: &str,
        plan: Value,
        members: usize,
    ) -> (Shop, Value) {
        let app = TestApp::frozen_on(store, start).await;
        let admin = app.platform_admin().await;
        let mut plan = plan;
        plan["name"] = json!(named(plan["name"].as_str().unwrap()));
        let plan = create_plan(&app, &admin, plan).await;
        let owner_email = email("owner");
        let owner = app.signup(&owner_email, "Shop").await;
        let tenant = owner.tenant_id.clone().unwrap();
        for _ in 0..members {
            app.add_member(&owner, &tenant, &email("member"), "tenant_user")
                .await;
        }
        let subscribed = app
            .subscribe_with_card(&owner, plan["id"].as_str().unwrap())
            .await;
        let key = app.api_key(&owner.access, json!({"name": "meter"})).await;
        let shop = Shop {
            app,
            owner_email,
            owner: std::sync::Mutex::new(owner),
            key,
        };
        (shop, subscribed)
    }

    fn token(&self) -> String {
        self.owner.lock().unwrap().access.clone()
    }

    async fn get(&self, path: &str) -> Value {
        self.app
            .get(path, Some(&self.token()))
            .await
            .expect(200)
            .body
    }

    async fn record(&self, metric: &str, quantity: i64, key: &str) {
        self.app
            .post(
                "/v1/usage/events",
                Some(&self.key),
                eshtarek_tests::fixtures::usage_event(metric, quantity, key),
            )
            .await
            .expect(200);
    }

    /// Moves the clock (no job runs) and signs the owner in again.
    async fn wait_days(&self, days: i64) {
        self.app.clock.advance(chrono::Duration::days(days));
        *self.owner.lock().unwrap() = self.app.login(&self.owner_email, None).await;
    }

    /// Changes subscription `sub` to `plan` now, as the owner.
    async fn change_now(&self, sub: &str, plan: &Value) -> eshtarek_tests::http::Reply {
        self.app
            .post(
                &format!("/v1/subscriptions/{sub}/change"),
                Some(&self.token()),
                json!({"plan_id": plan["id"], "effective": "now"}),
            )
            .await
    }

    /// Moves the clock, runs the renewal job, signs the owner in again.
    async fn advance_days(&self, days: i64) {
        self.app.clock.advance(chrono::Duration::days(days));
        eshtarek_core::jobs::renew_billing(
            &self.app.ctx,
            self.app.clock.now(),
            eshtarek_core::jobs::RunLimits::default(),
        )
        .await
        .unwrap();
        *self.owner.lock().unwrap() = self.app.login(&self.owner_email, None).await;
    }

    /// The tenant's invoices, newest first (up to 100).
    async fn invoices(&self) -> Vec<Value> {
        self.get("/v1/invoices?limit=100").await["data"]
            .as_array()
            .unwrap()
            .clone()
    }
}

fn line<'a>(invoice: &'a Value, kind: &str) -> &'a Value {
    invoice["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} line in {invoice}"))
}

#[tokio::test]
async fn usage_is_billed_in_arrears_and_the_upcoming_invoice_shows_it_first() {
    let (shop, subscribed) = Shop::open(
        json!({"name": "Metered", "price": "10.00", "currency": "USD", "billing_cycle": "monthly",
               "usage_charges": [graduated_calls()]}),
        0,
    )
    .await;
    assert_eq!(subscribed["invoice"]["total"], "10.00");
    shop.record("api_calls", 100_000, "a").await;
    shop.record("api_calls", 23_456, "b").await;

    // Before the period ends: next period's base price, this period's usage so far.
    let upcoming = shop.get("/v1/invoices/upcoming").await;
    assert_eq!(upcoming["issue_at"], "2026-02-01T00:00:00.000Z");
    assert_eq!(upcoming["period_start"], "2026-02-01T00:00:00.000Z");
    assert_eq!(line(&upcoming, "plan_charge")["amount"], "10.00");
    let usage = line(&upcoming, "usage_charge");
    // docs/billing.md: 10,000 × 0.01 + 90,000 × 0.008 + 23,456 × 0.005 = 937.28.
    assert_eq!(usage["amount"], "937.28");
    assert_eq!(usage["period_start"], "2026-01-01T00:00:00.000Z");
    assert_eq!(usage["period_end"], "2026-02-01T00:00:00.000Z");
    assert_eq!(usage["detail"]["metric"], "api_calls");
    assert_eq!(usage["detail"]["quantity"], 123_456);
    assert_eq!(usage["detail"]["billable"], 123_456);
    assert_eq!(usage["detail"]["price"]["model"], "graduated");
    assert_eq!(upcoming["total"], "947.28");
    assert_eq!(upcoming["amount_due"], "947.28");

    // The renewal bills exactly that, and the new period counts from zero.
    shop.advance_days(31).await;
    let renewal = shop.invoices().await[0].clone();
    assert_eq!(renewal["status"], "paid");
    assert_eq!(renewal["lines"], upcoming["lines"]);
    assert_eq!(renewal["total"], "947.28");
    let usage_now = shop.get("/v1/usage").await;
    let calls = eshtarek_tests::fixtures::metric_in(&usage_now, "api_calls");
    assert_eq!(calls["used"], 0);
    assert_eq!(calls["period_start"], "2026-02-01T00:00:00.000Z");
    let next = shop.get("/v1/invoices/upcoming").await;
    assert_eq!(line(&next, "usage_charge")["amount"], "0.00");
    assert_eq!(next["total"], "10.00");
    // A second run of the job bills nothing twice.
    shop.advance_days(0).await;
    assert_eq!(shop.invoices().await.len(), 2);
}

#[tokio::test]
async fn seats_bill_the_member_count_with_the_base_price() {
    // Teams: $49/month + $12 per user; the owner and two members are three seats.
    let (shop, subscribed) = Shop::open(
        json!({"name": "Teams", "price": "49.00", "currency": "USD", "billing_cycle": "monthly",
               "seats": {"unit_price": "12.00"}}),
        2,
    )
    .await;
    let invoice = &subscribed["invoice"];
    assert_eq!(line(invoice, "plan_charge")["amount"], "49.00");
    let seats = line(invoice, "seat_charge");
    assert_eq!(seats["amount"], "36.00");
    assert_eq!(seats["detail"]["quantity"], 3);
    assert_eq!(seats["detail"]["unit_price"], "12.00");
    assert_eq!(invoice["total"], "85.00");
    let upcoming = shop.get("/v1/invoices/upcoming").await;
    assert_eq!(upcoming["total"], "85.00");
    shop.advance_days(31).await;
    assert_eq!(shop.invoices().await[0]["total"], "85.00");
}

#[tokio::test]
async fn a_cancelled_subscription_bills_its_last_periods_usage() {
    let (shop, _) = Shop::open(
        json!({"name": "Per call", "price": "0.00", "currency": "USD", "billing_cycle": "monthly",
               "usage_charges": [{"metric": "api_calls", "included": 1000, "price": {"model": "per_unit", "unit_price": "0.002"}}]}),
        0,
    )
    .await;
    shop.record("api_calls", 1_500, "a").await;
    let sub = shop.get("/v1/subscriptions/current").await;
    shop.app
        .post(
            &format!("/v1/subscriptions/{}/cancel", sub["id"].as_str().unwrap()),
            Some(&shop.token()),
            json!({"at_period_end": true}),
        )
        .await
        .expect(200);
    let upcoming = shop.get("/v1/invoices/upcoming").await;
    assert_eq!(upcoming["is_final"], true);
    // 1,500 calls, 1,000 included, 500 × 0.002 = 1.00 (docs/billing.md).
    assert_eq!(upcoming["total"], "1.00");
    shop.advance_days(31).await;
    let last = shop.invoices().await[0].clone();
    assert_eq!(last["total"], "1.00");
    assert_eq!(last["status"], "paid");
    assert_eq!(line(&last, "usage_charge")["detail"]["billable"], 500);
    let sub = shop
        .get(&format!(
            "/v1/subscriptions/{}",
            sub["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(sub["status"], "cancelled");
}

#[tokio::test]
async fn an_event_arriving_while_the_renewal_bills_counts_in_the_next_period() {
    let stall = Stalls::new(eshtarek_tests::stores::selected().await);
    let (shop, _) = Shop::open_on(
        stall.store(),
        json!({"name": "Racing", "price": "0.00", "currency": "USD", "billing_cycle": "monthly",
               "usage_charges": [{"metric": "api_calls", "price": {"model": "per_unit", "unit_price": "1"}}]}),
        0,
    )
    .await;
    shop.record("api_calls", 5, "before").await;
    shop.app.clock.advance(chrono::Duration::days(31));
    let shop = std::sync::Arc::new(shop);
    // The renewal has read the counters and waits to write its invoice when an event comes.
    stall.arm();
    let renewal = tokio::spawn({
        let shop = shop.clone();
        async move {
            let now = shop.app.clock.now();
            eshtarek_core::jobs::renew_billing(&shop.app.ctx, now, Default::default())
                .await
                .unwrap()
        }
    });
    stall.reached().await;
    // A late report of a call made just before the period ended.
    let late = tokio::spawn({
        let shop = shop.clone();
        async move {
            let mut event = eshtarek_tests::fixtures::usage_event("api_calls", 1, "late");
            event["timestamp"] = json!("2026-01-31T23:59:00Z");
            shop.app
                .post("/v1/usage/events", Some(&shop.key), event)
                .await
                .expect(200)
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stall.release();
    renewal.await.unwrap();
    late.await.unwrap();
    // Billed once for the closed period (5), counted in the new one (1): never in a period
    // after its usage was read for an invoice (where nothing would bill it).
    *shop.owner.lock().unwrap() = shop.app.login(&shop.owner_email, None).await;
    let invoices = shop.invoices().await;
    let billed: Vec<u64> = invoices
        .iter()
        .filter_map(|i| {
            i["lines"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["kind"] == "usage_charge")
        })
        .map(|l| l["detail"]["quantity"].as_u64().unwrap())
        .collect();
    assert_eq!(billed, [5]);
    let usage = shop.get("/v1/usage").await;
    let calls = eshtarek_tests::fixtures::metric_in(&usage, "api_calls");
    assert_eq!(calls["used"], 1);
    assert_eq!(calls["period_start"], "2026-02-01T00:00:00.000Z");
}

/// Teams: $49/month + $12 per user, no trial, from 2027-04-01 (April has 30 days).
async fn teams_shop() -> Shop {
    let (shop, subscribed) = Shop::open_at(
        eshtarek_tests::stores::selected().await,
        "2027-04-01T00:00:00Z",
        json!({"name": "Teams", "price": "49.00", "currency": "USD", "billing_cycle": "monthly",
               "seats": {"unit_price": "12.00"}}),
        0,
    )
    .await;
    // The owner is the first seat.
    assert_eq!(subscribed["invoice"]["total"], "61.00");
    shop
}

/// The seat lines of the invoices that bill seats alone (those added mid-period).
async fn seat_charges(shop: &Shop) -> Vec<Value> {
    shop.invoices()
        .await
        .iter()
        .map(|i| i["lines"].as_array().unwrap().clone())
        .filter(|lines| lines.iter().all(|l| l["kind"] == "seat_charge"))
        .flatten()
        .collect()
}

#[tokio::test]
async fn seats_added_mid_period_are_charged_at_once_prorated() {
    let shop = teams_shop().await;
    let tenant = shop.owner.lock().unwrap().tenant_id.clone().unwrap();
    // docs/billing.md: three users added 10 days into April, 20 of 30 days left: each seat
    // 12.00 × 20/30 = 8.00, at once.
    shop.wait_days(10).await;
    let owner = shop.owner.lock().unwrap().clone();
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(
            shop.app
                .add_member(&owner, &tenant, &email("member"), "tenant_user")
                .await,
        );
    }
    let charges = seat_charges(&shop).await;
    assert_eq!(charges.len(), 3, "{charges:?}");
    for line in &charges {
        assert_eq!(line["amount"], "8.00");
        assert_eq!(line["detail"]["billable"], 1);
        assert_eq!(line["period_start"], "2027-04-11T00:00:00.000Z");
        assert_eq!(line["period_end"], "2027-05-01T00:00:00.000Z");
    }
    assert!(shop.invoices().await.iter().all(|i| i["status"] == "paid"));
    // Removing a member refunds nothing, and re-adding within the period bills nothing again:
    // the period's seats are paid.
    let user_id = members[0].user_id.clone();
    shop.app
        .delete(
            &format!("/v1/tenants/{tenant}/members/{user_id}"),
            Some(&owner.access),
        )
        .await
        .expect(204);
    shop.app
        .add_member(&owner, &tenant, &email("again"), "tenant_user")
        .await;
    assert_eq!(seat_charges(&shop).await.len(), 3);
    // The renewal bills the member count of its day in full: 49 + 4 × 12.
    shop.advance_days(20).await;
    let renewal = shop.invoices().await[0].clone();
    assert_eq!(line(&renewal, "seat_charge")["detail"]["quantity"], 4);
    assert_eq!(renewal["total"], "97.00");
}

#[tokio::test]
async fn a_member_joining_after_the_period_ended_is_billed_by_the_renewal_in_full() {
    let shop = teams_shop().await;
    let tenant = shop.owner.lock().unwrap().tenant_id.clone().unwrap();
    // April is over and the renewal has not run yet: the join bills nothing on its own (a
    // prorated charge for no time left), and the renewal counts the member in full.
    shop.wait_days(30).await;
    let owner = shop.owner.lock().unwrap().clone();
    shop.app
        .add_member(&owner, &tenant, &email("late"), "tenant_user")
        .await;
    assert!(seat_charges(&shop).await.is_empty());
    shop.advance_days(0).await;
    let renewal = shop.invoices().await[0].clone();
    assert_eq!(line(&renewal, "seat_charge")["detail"]["quantity"], 2);
    assert_eq!(renewal["total"], "73.00");
    // A third member in May is charged for the rest of May: the renewal's count is the baseline.
    shop.wait_days(1).await;
    let owner = shop.owner.lock().unwrap().clone();
    shop.app
        .add_member(&owner, &tenant, &email("may"), "tenant_user")
        .await;
    let charges = seat_charges(&shop).await;
    assert_eq!(charges.len(), 1, "{charges:?}");
    // 12.00 × 30/31 days of May left = 11.61.
    assert_eq!(charges[0]["amount"], "11.61");
}

#[tokio::test]
async fn licensed_seats_are_bought_by_the_tenant_admin_and_cap_its_members() {
    let app = TestApp::frozen_at("2027-04-01T00:00:00Z").await;
    let admin = app.platform_admin().await;
    let licensed = create_plan(
        &app,
        &admin,
        json!({"name": named("Seats bought"), "price": "49.00", "currency": "USD", "billing_cycle": "monthly",
               "seats": {"unit_price": "12.00", "quantity": "licensed"}}),
    )
    .await;
    assert_eq!(licensed["seats"]["quantity"], "licensed");
    let by_members = create_plan(
        &app,
        &admin,
        json!({"name": named("Seats counted"), "price": "49.00", "currency": "USD", "billing_cycle": "monthly",
               "seats": {"unit_price": "12.00"}}),
    )
    .await;
    assert_eq!(by_members["seats"]["quantity"], "members");
    let owner_email = email("owner");
    let owner = app.signup(&owner_email, "Licensed").await;
    let tenant = owner.tenant_id.clone().unwrap();
    app.post(
        "/v1/payment-methods",
        Some(&owner.access),
        json!({"token": "pm_card_visa", "set_default": true}),
    )
    .await
    .expect(201);
    // `seats` only on licensed seats, and never fewer than the members.
    let refused = app
        .post(
            "/v1/subscriptions",
            Some(&owner.access),
            json!({"plan_id": by_members["id"], "seats": 3}),
        )
        .await
        .problem(422);
    assert_eq!(refused.body["field"], "seats");
    let refused = app
        .post(
            "/v1/subscriptions",
            Some(&owner.access),
            json!({"plan_id": licensed["id"], "seats": 0}),
        )
        .await
        .problem(422);
    assert_eq!(refused.body["field"], "seats");
    let subscribed = app
        .post(
            "/v1/subscriptions",
            Some(&owner.access),
            json!({"plan_id": licensed["id"], "seats": 3}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(subscribed["invoice"]["total"], "85.00");
    let sub_id = subscribed["subscription"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(subscribed["subscription"]["seats_licensed"], 3);
    assert_eq!(subscribed["subscription"]["seats_billed"], 3);

    // Three seats, three members at most: the fourth is refused, whoever invites.
    let member_email = email("member");
    app.add_member(&owner, &tenant, &member_email, "tenant_user")
        .await;
    app.add_member(&owner, &tenant, &email("member"), "tenant_user")
        .await;
    let full = app
        .post(
            &format!("/v1/tenants/{tenant}/members"),
            Some(&owner.access),
            json!({"email": email("fourth"), "role": "tenant_user"}),
        )
        .await
        .problem(402);
    assert_eq!(full.body["limit"], 3, "{}", full.body);

    // Ten days in, two more seats: 2 × 12.00 × 20/30 = 16.00 at once; now the fourth joins.
    app.clock.advance(chrono::Duration::days(10));
    let owner = app.login(&owner_email, None).await;
    let seats_path = format!("/v1/subscriptions/{sub_id}/seats");
    let set = app
        .post(&seats_path, Some(&owner.access), json!({"quantity": 5}))
        .await
        .expect(200);
    assert_eq!(set.body["seats_licensed"], 5);
    assert_eq!(set.body["seats_billed"], 5);
    let invoices = |token: String| {
        let app = &app;
        async move {
            app.get("/v1/invoices?limit=100", Some(&token))
                .await
                .expect(200)
                .body["data"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    let latest = invoices(owner.access.clone()).await[0].clone();
    assert_eq!(latest["total"], "16.00");
    assert_eq!(latest["lines"][0]["kind"], "seat_charge");
    app.add_member(&owner, &tenant, &email("fourth"), "tenant_user")
        .await;

    // Fewer seats than members: refused; fewer than bought: no refund, the renewal bills them.
    let refused = app
        .post(&seats_path, Some(&owner.access), json!({"quantity": 3}))
        .await
        .problem(422);
    assert_eq!(refused.body["field"], "quantity");
    let count = invoices(owner.access.clone()).await.len();
    let set = app
        .post(&seats_path, Some(&owner.access), json!({"quantity": 4}))
        .await
        .expect(200);
    assert_eq!(set.body["seats_licensed"], 4);
    assert_eq!(set.body["seats_billed"], 5);
    assert_eq!(invoices(owner.access.clone()).await.len(), count);
    let upcoming = app
        .get("/v1/invoices/upcoming", Some(&owner.access))
        .await
        .expect(200)
        .body;
    assert_eq!(upcoming["total"], "97.00");
    app.clock.advance(chrono::Duration::days(20));
    eshtarek_core::jobs::renew_billing(&app.ctx, app.clock.now(), Default::default())
        .await
        .unwrap();
    let owner = app.login(&owner_email, None).await;
    let renewal = invoices(owner.access.clone()).await[0].clone();
    assert_eq!(line(&renewal, "seat_charge")["detail"]["quantity"], 4);
    assert_eq!(renewal["total"], "97.00");

    // Without a card, no seats are added (they would be charged at once).
    let methods = app
        .get("/v1/payment-methods", Some(&owner.access))
        .await
        .expect(200)
        .body;
    for method in methods["data"].as_array().unwrap() {
        app.delete(
            &format!("/v1/payment-methods/{}", method["id"].as_str().unwrap()),
            Some(&owner.access),
        )
        .await
        .expect(204);
    }
    let refused = app
        .post(&seats_path, Some(&owner.access), json!({"quantity": 6}))
        .await
        .problem(422);
    assert_eq!(refused.body["field"], "payment_method_id");

    // Only a tenant admin sets seats, and only on licensed seats.
    let member = app.login(&member_email, None).await;
    app.post(&seats_path, Some(&member.access), json!({"quantity": 5}))
        .await
        .problem(403);
    let counted_email = email("counted");
    let counted_owner = app.signup(&counted_email, "Counted").await;
    let counted = app
        .subscribe_with_card(&counted_owner, by_members["id"].as_str().unwrap())
        .await;
    let refused = app
        .post(
            &format!(
                "/v1/subscriptions/{}/seats",
                counted["subscription"]["id"].as_str().unwrap()
            ),
            Some(&counted_owner.access),
            json!({"quantity": 4}),
        )
        .await
        .problem(409);
    assert_eq!(refused.body["field"], "quantity");
    // A change onto licensed seats at period end buys the members' seats then: joins past
    // them are refused from that renewal on.
    let counted_sub = counted["subscription"]["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/v1/subscriptions/{counted_sub}/change"),
        Some(&counted_owner.access),
        json!({"plan_id": licensed["id"], "effective": "period_end"}),
    )
    .await
    .expect(200);
    app.clock.advance(chrono::Duration::days(31));
    eshtarek_core::jobs::renew_billing(&app.ctx, app.clock.now(), Default::default())
        .await
        .unwrap();
    let counted_owner = app.login(&counted_email, None).await;
    let moved = app
        .get("/v1/subscriptions/current", Some(&counted_owner.access))
        .await
        .expect(200)
        .body;
    assert_eq!(moved["plan_id"], licensed["id"]);
    assert_eq!(moved["seats_licensed"], 1, "{moved}");
    let counted_tenant = counted_owner.tenant_id.clone().unwrap();
    app.post(
        &format!("/v1/tenants/{counted_tenant}/members"),
        Some(&counted_owner.access),
        json!({"email": email("second"), "role": "tenant_user"}),
    )
    .await
    .problem(402);
}

#[tokio::test]
async fn twenty_racing_seat_additions_are_billed_exactly() {
    let shop = teams_shop().await;
    let tenant = shop.owner.lock().unwrap().tenant_id.clone().unwrap();
    shop.wait_days(10).await;
    let owner = shop.owner.lock().unwrap().clone();
    let mut tokens = Vec::new();
    for _ in 0..20 {
        let address = email("racer");
        shop.app
            .post(
                &format!("/v1/tenants/{tenant}/members"),
                Some(&owner.access),
                json!({"email": address, "role": "tenant_user"}),
            )
            .await
            .expect(201);
        tokens.push(shop.app.invitation_token(&address));
    }
    let shop = std::sync::Arc::new(shop);
    let accepts: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            let shop = shop.clone();
            tokio::spawn(async move {
                shop.app
                    .post(
                        "/v1/auth/invitations/accept",
                        None,
                        json!({"token": token, "password": eshtarek_tests::http::PASSWORD}),
                    )
                    .await
                    .expect(201)
            })
        })
        .collect();
    for accept in accepts {
        accept.await.unwrap();
    }
    let charges = seat_charges(&shop).await;
    let seats: u64 = charges
        .iter()
        .map(|l| l["detail"]["billable"].as_u64().unwrap())
        .sum();
    let total: rust_decimal::Decimal = charges
        .iter()
        .map(|l| {
            l["amount"]
                .as_str()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap()
        })
        .sum();
    assert_eq!(seats, 20, "{charges:?}");
    // Each line is its seats × 12.00 × 20/30, rounded once: 8.00 a seat whatever the grouping.
    assert_eq!(total, rust_decimal::Decimal::from(160));
    let members = shop
        .get(&format!("/v1/tenants/{tenant}/members?limit=100"))
        .await;
    assert_eq!(members["data"].as_array().unwrap().len(), 21);
}

#[tokio::test]
async fn an_immediate_cancel_bills_the_usage_to_date() {
    let (shop, _) = Shop::open(
        json!({"name": "Per call", "price": "0.00", "currency": "USD", "billing_cycle": "monthly",
               "usage_charges": [{"metric": "api_calls", "price": {"model": "per_unit", "unit_price": "0.50"}}]}),
        0,
    )
    .await;
    shop.record("api_calls", 65, "a").await;
    let sub = shop.get("/v1/subscriptions/current").await;
    shop.wait_days(3).await;
    shop.app
        .post(
            &format!("/v1/subscriptions/{}/cancel", sub["id"].as_str().unwrap()),
            Some(&shop.token()),
            json!({"at_period_end": false, "prorate": true}),
        )
        .await
        .expect(200);
    // 65 calls at 0.50, billed before the subscription ended (not lost with it).
    let last = shop.invoices().await[0].clone();
    assert_eq!(line(&last, "usage_charge")["amount"], "32.50");
    assert_eq!(
        line(&last, "usage_charge")["period_end"],
        "2026-01-04T00:00:00.000Z"
    );
    assert_eq!(last["total"], "32.50");
    assert_eq!(last["status"], "paid");
}

#[tokio::test]
async fn a_subscription_dunning_gives_up_on_still_bills_its_usage_so_far() {
    let (shop, _) = Shop::open(
        json!({"name": "Per call", "price": "10.00", "currency": "USD", "billing_cycle": "monthly",
               "usage_charges": [{"metric": "api_calls", "price": {"model": "per_unit", "unit_price": "0.50"}}]}),
        0,
    )
    .await;
    shop.record("api_calls", 4, "january").await;
    shop.app
        .post(
            "/v1/payment-methods",
            Some(&shop.token()),
            json!({"token": "pm_card_chargeDeclined", "set_default": true}),
        )
        .await
        .expect(201);
    // The renewal on Feb 1 fails (10.00 + 4 × 0.50 left open); February's calls go on.
    shop.advance_days(31).await;
    let failed = shop.invoices().await[0].clone();
    assert_eq!(failed["total"], "12.00");
    assert_eq!(failed["status"], "open");
    shop.record("api_calls", 6, "february").await;
    // Dunning retries on days 1, 3 and 5, then cancels: February's 6 calls are still billed.
    for days in [1, 2, 2] {
        shop.advance_days(days).await;
    }
    shop.app
        .get("/v1/subscriptions/current", Some(&shop.token()))
        .await
        .expect(404);
    let last = shop.invoices().await[0].clone();
    let usage = line(&last, "usage_charge");
    assert_eq!(usage["detail"]["quantity"], 6);
    assert_eq!(usage["amount"], "3.00");
    assert_eq!(usage["period_start"], "2026-02-01T00:00:00.000Z");
    assert_eq!(usage["period_end"], "2026-02-06T00:00:00.000Z");
    assert_eq!(last["total"], "3.00");
}

#[tokio::test]
async fn a_plan_change_bills_usage_so_far_at_the_old_prices_and_the_rest_at_the_new() {
    let (shop, subscribed) = Shop::open(
        json!({"name": "Cheap calls", "price": "1.00", "currency": "USD", "billing_cycle": "monthly",
               "usage_charges": [{"metric": "api_calls", "price": {"model": "per_unit", "unit_price": "0.01"}}]}),
        0,
    )
    .await;
    let admin = shop.app.platform_admin().await;
    let dear = create_plan(
        &shop.app,
        &admin,
        json!({"name": named("Dear calls"), "price": "2.00", "currency": "USD", "billing_cycle": "monthly",
               "usage_charges": [{"metric": "api_calls", "price": {"model": "per_unit", "unit_price": "1"}}]}),
    )
    .await;
    shop.record("api_calls", 300, "before").await;
    shop.wait_days(10).await;
    let sub_id = subscribed["subscription"]["id"].as_str().unwrap();
    // The preview says what the change will bill for the usage so far, beside the proration.
    let preview = shop
        .get(&format!(
            "/v1/subscriptions/{sub_id}/change-preview?plan_id={}",
            dear["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(preview["usage_total"], "3.00", "{preview}");
    assert_eq!(preview["usage_to_date"][0]["detail"]["quantity"], 300);
    shop.change_now(sub_id, &dear).await.expect(200);
    // The 300 calls before the change: 3.00 at the old price, on their own invoice.
    let settled = shop.invoices().await[0].clone();
    let usage = line(&settled, "usage_charge");
    assert_eq!(usage["amount"], "3.00");
    assert_eq!(usage["detail"]["quantity"], 300);
    assert_eq!(usage["period_end"], "2026-01-11T00:00:00.000Z");
    shop.record("api_calls", 7, "after").await;
    // Upcoming and renewal: the 7 calls after it at the new price, the 300 not again.
    let upcoming = shop.get("/v1/invoices/upcoming").await;
    assert_eq!(line(&upcoming, "usage_charge")["detail"]["quantity"], 7);
    assert_eq!(line(&upcoming, "usage_charge")["amount"], "7.00");
    shop.advance_days(21).await;
    let renewal = shop.invoices().await[0].clone();
    assert_eq!(line(&renewal, "usage_charge")["amount"], "7.00");
    assert_eq!(renewal["total"], "9.00");
}

#[tokio::test]
async fn the_upcoming_invoice_of_a_plans_last_cycle_is_its_final_usage() {
    let (shop, _) = Shop::open(
        json!({"name": "One month", "price": "5.00", "currency": "USD", "billing_cycle": "monthly", "duration_cycles": 1,
               "usage_charges": [{"metric": "api_calls", "price": {"model": "per_unit", "unit_price": "0.10"}}]}),
        0,
    )
    .await;
    shop.record("api_calls", 40, "a").await;
    let upcoming = shop.get("/v1/invoices/upcoming").await;
    assert_eq!(upcoming["is_final"], true);
    assert_eq!(upcoming["total"], "4.00");
    shop.advance_days(31).await;
    let last = shop.invoices().await[0].clone();
    assert_eq!(last["lines"], upcoming["lines"]);
    assert_eq!(last["total"], "4.00");
}

#[tokio::test]
async fn a_plan_change_prorates_seats_with_the_base_price() {
    // Solo at $10 with its owner and two members, then Teams ($49 + $12 a seat) 10 days into
    // April, 20 of 30 days left: credit 10 × 20/30 = 6.67, charge (49 + 3 × 12) × 20/30 = 56.67.
    let (shop, subscribed) = Shop::open_at(
        eshtarek_tests::stores::selected().await,
        "2027-04-01T00:00:00Z",
        json!({"name": "Solo", "price": "10.00", "currency": "USD", "billing_cycle": "monthly"}),
        2,
    )
    .await;
    let admin = shop.app.platform_admin().await;
    let teams = create_plan(
        &shop.app,
        &admin,
        json!({"name": named("Teams"), "price": "49.00", "currency": "USD", "billing_cycle": "monthly",
               "seats": {"unit_price": "12.00"}}),
    )
    .await;
    shop.wait_days(10).await;
    let sub_id = subscribed["subscription"]["id"].as_str().unwrap();
    let preview = shop
        .get(&format!(
            "/v1/subscriptions/{sub_id}/change-preview?plan_id={}",
            teams["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(preview["net"], "50.00", "{preview}");
    let changed = shop.change_now(sub_id, &teams).await.expect(200);
    assert_eq!(changed.body["invoice"]["total"], "50.00");
    // The seats are paid for the period: another member now is charged as an added seat.
    let owner = shop.owner.lock().unwrap().clone();
    let tenant = owner.tenant_id.clone().unwrap();
    shop.app
        .add_member(&owner, &tenant, &email("late"), "tenant_user")
        .await;
    let added = shop.invoices().await[0].clone();
    assert_eq!(line(&added, "seat_charge")["detail"]["billable"], 1);
    assert_eq!(added["total"], "8.00");
    shop.advance_days(20).await;
    assert_eq!(shop.invoices().await[0]["total"], "97.00");
}

#[tokio::test]
async fn granted_units_raise_the_hard_limit_and_are_free_before_billable_usage() {
    let app = TestApp::frozen_at("2026-01-01T00:00:00Z").await;
    let admin = app.platform_admin().await;
    let policy = app
        .post(
            "/v1/limit-policies",
            Some(&admin.access),
            json!({"metric": "api_calls", "limit": 100, "reset_period": "billing_period", "enforcement": "hard"}),
        )
        .await
        .expect(201)
        .body["id"]
        .clone();
    let plan = create_plan(
        &app,
        &admin,
        json!({"name": named("Capped"), "price": "0.00", "currency": "USD", "billing_cycle": "monthly",
               "limit_policy_ids": [policy],
               "usage_charges": [{"metric": "api_calls", "price": {"model": "per_unit", "unit_price": "0.10"}}]}),
    )
    .await;
    let owner_email = email("owner");
    let owner = app.signup(&owner_email, "Granted").await;
    let tenant = owner.tenant_id.clone().unwrap();
    app.subscribe_with_card(&owner, plan["id"].as_str().unwrap())
        .await;
    let key = app.api_key(&owner.access, json!({"name": "meter"})).await;
    let record = |quantity: i64, id: &str| {
        let (app, key) = (&app, key.clone());
        let event = eshtarek_tests::fixtures::usage_event("api_calls", quantity, id);
        async move { app.post("/v1/usage/events", Some(&key), event).await }
    };
    record(100, "a").await.expect(200);
    let refused = record(1, "b").await.problem(402);
    assert_eq!(refused.body["limit"], 100);
    assert_eq!(refused.body["granted"], 0);

    // A goodwill grant of 50 calls for this period: reason required, audited, admin only.
    let path = format!("/v1/admin/tenants/{tenant}/grants");
    let body = json!({"metric": "api_calls", "units": 50, "reason": "Outage on 3 Jan"});
    app.post(&path, Some(&owner.access), body.clone())
        .await
        .problem(403);
    for (bad, field) in [
        (
            json!({"metric": "api_calls", "units": 50, "reason": " "}),
            "reason",
        ),
        (
            json!({"metric": "exports", "units": 50, "reason": "x"}),
            "metric",
        ),
        (
            json!({"metric": "api_calls", "units": 0, "reason": "x"}),
            "units",
        ),
        (
            json!({"metric": "api_calls", "units": 5, "reason": "x", "expires_at": "2025-01-01T00:00:00Z"}),
            "expires_at",
        ),
    ] {
        let reply = app
            .post(&path, Some(&admin.access), bad.clone())
            .await
            .problem(422);
        assert_eq!(reply.body["field"], field, "{bad}: {}", reply.body);
    }
    let grant = app.post(&path, Some(&admin.access), body).await.expect(201);
    assert_eq!(grant.body["expires_at"], "2026-02-01T00:00:00.000Z");
    record(50, "c").await.expect(200);
    let refused = record(1, "d").await.problem(402);
    assert_eq!(refused.body["limit"], 150);
    assert_eq!(refused.body["plan_limit"], 100);
    assert_eq!(refused.body["granted"], 50);
    let usage = app
        .get("/v1/usage", Some(&owner.access))
        .await
        .expect(200)
        .body;
    let calls = eshtarek_tests::fixtures::metric_in(&usage, "api_calls");
    assert_eq!(
        (
            calls["limit"].clone(),
            calls["plan_limit"].clone(),
            calls["granted"].clone()
        ),
        (json!(150), json!(100), json!(50))
    );
    let audit = app
        .get(
            &format!("/v1/audit-log?tenant_id={tenant}"),
            Some(&admin.access),
        )
        .await
        .expect(200);
    assert!(audit.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "tenant.units_granted" && e["reason"] == "Outage on 3 Jan"));

    // 150 calls, 50 granted: 100 billable at 0.10. The grant ends with the period.
    app.clock.advance(chrono::Duration::days(31));
    eshtarek_core::jobs::renew_billing(&app.ctx, app.clock.now(), Default::default())
        .await
        .unwrap();
    let owner = app.login(&owner_email, None).await;
    let renewal = app
        .get("/v1/invoices?limit=1", Some(&owner.access))
        .await
        .expect(200)
        .body["data"][0]
        .clone();
    let usage_line = line(&renewal, "usage_charge");
    assert_eq!(usage_line["detail"]["granted"], 50);
    assert_eq!(usage_line["detail"]["billable"], 100);
    assert_eq!(usage_line["amount"], "10.00");
    let usage = app
        .get("/v1/usage", Some(&owner.access))
        .await
        .expect(200)
        .body;
    let calls = eshtarek_tests::fixtures::metric_in(&usage, "api_calls");
    assert_eq!(
        (calls["limit"].clone(), calls["granted"].clone()),
        (json!(100), json!(0))
    );
}

#[tokio::test]
async fn once_a_period_has_ended_its_renewal_decides_and_nothing_changes_it_first() {
    let (shop, subscribed) = Shop::open(
        json!({"name": "Ended", "price": "5.00", "currency": "USD", "billing_cycle": "monthly",
               "usage_charges": [{"metric": "api_calls", "price": {"model": "per_unit", "unit_price": "1"}}]}),
        0,
    )
    .await;
    let admin = shop.app.platform_admin().await;
    let other = create_plan(
        &shop.app,
        &admin,
        json!({"name": named("Other"), "price": "9.00", "currency": "USD", "billing_cycle": "monthly"}),
    )
    .await;
    shop.record("api_calls", 3, "a").await;
    // The period ended; the renewal job has not run yet.
    shop.wait_days(31).await;
    let sub = subscribed["subscription"]["id"].as_str().unwrap();
    for (path, body) in [
        (
            format!("/v1/subscriptions/{sub}/cancel"),
            json!({"at_period_end": true}),
        ),
        (
            format!("/v1/subscriptions/{sub}/change"),
            json!({"plan_id": other["id"], "effective": "now"}),
        ),
    ] {
        shop.app
            .post(&path, Some(&shop.token()), body)
            .await
            .problem(409);
    }
    // The renewal bills the period's usage once, and the next period in full.
    shop.advance_days(0).await;
    let renewal = shop.invoices().await[0].clone();
    assert_eq!(line(&renewal, "usage_charge")["amount"], "3.00");
    assert_eq!(renewal["total"], "8.00");
    assert_eq!(shop.invoices().await.len(), 2);
}

#[tokio::test]
async fn changing_plans_never_hands_out_the_allowance_twice() {
    // 1,000 calls included at $0.01 past them on both plans; 800 before a change, 700 after:
    // 1,500 in the period, 500 billable (not 0 + 700 − 1,000 → 0 twice).
    let charge = json!([{"metric": "api_calls", "included": 1000, "price": {"model": "per_unit", "unit_price": "0.01"}}]);
    let (shop, subscribed) = Shop::open(
        json!({"name": "A", "price": "1.00", "currency": "USD", "billing_cycle": "monthly", "usage_charges": charge}),
        0,
    )
    .await;
    let admin = shop.app.platform_admin().await;
    let b = create_plan(
        &shop.app,
        &admin,
        json!({"name": named("B"), "price": "2.00", "currency": "USD", "billing_cycle": "monthly", "usage_charges": charge}),
    )
    .await;
    shop.record("api_calls", 800, "before").await;
    shop.wait_days(5).await;
    let sub = subscribed["subscription"]["id"].as_str().unwrap();
    shop.change_now(sub, &b).await.expect(200);
    shop.record("api_calls", 700, "after").await;
    let upcoming = shop.get("/v1/invoices/upcoming").await;
    let usage = line(&upcoming, "usage_charge");
    assert_eq!(usage["detail"]["quantity"], 700);
    assert_eq!(usage["detail"]["billable"], 500);
    assert_eq!(usage["amount"], "5.00");
}
