//! Pricing that businesses sell (issue 20), over HTTP: price components on plan versions
//! (a base price, a per-seat price, usage charges with tiers), their checks, and what the
//! invoices bill from them.

use eshtarek_tests::fixtures::email;
use eshtarek_tests::http::{Session, TestApp};
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
    assert_eq!(plan["seats"], json!({"unit_price": "12.00", "included": 1}));
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
