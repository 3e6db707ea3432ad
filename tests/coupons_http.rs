//! Coupons (issue 20), over HTTP: platform admins create and switch them off, tenants redeem
//! them at subscribe or later, invoices show the discount line, and a limited coupon is never
//! redeemed past its limit, racing or not.

use eshtarek_core::clock::Clock;
use eshtarek_tests::fixtures::email;
use eshtarek_tests::http::{Session, TestApp};
use serde_json::{json, Value};

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8].to_uppercase()
    )
}

async fn plan(app: &TestApp, admin: &Session, body: Value) -> String {
    let mut body = body;
    body["name"] = json!(unique(body["name"].as_str().unwrap()));
    app.post("/v1/plans", Some(&admin.access), body)
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn coupon(app: &TestApp, admin: &Session, body: Value) -> String {
    app.post("/v1/coupons", Some(&admin.access), body)
        .await
        .expect(201)
        .body["code"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Runs the renewal job at the clock's time.
async fn renew(app: &TestApp) {
    eshtarek_core::jobs::renew_billing(&app.ctx, app.clock.now(), Default::default())
        .await
        .unwrap();
}

/// The tenant's invoices, newest first, as its owner (signed in again: the clock moved).
async fn invoices(app: &TestApp, owner_email: &str) -> Vec<Value> {
    let owner = app.login(owner_email, None).await;
    app.get("/v1/invoices?limit=100", Some(&owner.access))
        .await
        .expect(200)
        .body["data"]
        .as_array()
        .unwrap()
        .clone()
}

fn discount_of(invoice: &Value) -> Option<String> {
    invoice["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == "discount")
        .map(|l| l["amount"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn coupons_are_checked_audited_and_platform_only() {
    let app = TestApp::new().await;
    let admin = app.platform_admin().await;
    let code = unique("SAVE");
    let created = app
        .post(
            "/v1/coupons",
            Some(&admin.access),
            json!({"code": code.to_lowercase(), "name": "Launch", "percent_off": "20", "duration": "repeating", "duration_cycles": 3, "max_redemptions": 10}),
        )
        .await
        .expect(201);
    assert_eq!(created.body["code"], code.as_str());
    assert_eq!(created.body["percent_off"], "20");
    assert_eq!(created.body["redemptions"], 0);
    assert_eq!(created.body["active"], true);
    app.post(
        "/v1/coupons",
        Some(&admin.access),
        json!({"code": code, "percent_off": "5", "duration": "once"}),
    )
    .await
    .problem(409);
    let bad = [
        (
            json!({"code": "x", "percent_off": "5", "duration": "once"}),
            "code",
        ),
        (
            json!({"code": unique("C"), "percent_off": "0", "duration": "once"}),
            "percent_off",
        ),
        (
            json!({"code": unique("C"), "percent_off": "100.5", "duration": "once"}),
            "percent_off",
        ),
        (
            json!({"code": unique("C"), "duration": "once"}),
            "percent_off",
        ),
        (
            json!({"code": unique("C"), "amount_off": "10.00", "duration": "once"}),
            "currency",
        ),
        (
            json!({"code": unique("C"), "amount_off": "10.001", "currency": "USD", "duration": "once"}),
            "amount_off",
        ),
        (
            json!({"code": unique("C"), "percent_off": "5", "amount_off": "1", "currency": "USD", "duration": "once"}),
            "percent_off",
        ),
        (
            json!({"code": unique("C"), "percent_off": "5", "duration": "repeating"}),
            "duration_cycles",
        ),
        (
            json!({"code": unique("C"), "percent_off": "5", "duration": "once", "duration_cycles": 2}),
            "duration_cycles",
        ),
        (
            json!({"code": unique("C"), "percent_off": "5", "duration": "once", "max_redemptions": 0}),
            "max_redemptions",
        ),
        (
            json!({"code": unique("C"), "percent_off": "5", "duration": "once", "expires_at": "2000-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"code": unique("C"), "percent_off": "5", "duration": "once", "plan_ids": ["plan_nope"]}),
            "plan_ids",
        ),
    ];
    for (body, field) in bad {
        let reply = app
            .post("/v1/coupons", Some(&admin.access), body.clone())
            .await
            .problem(422);
        assert_eq!(reply.body["field"], field, "{body}: {}", reply.body);
    }
    let off = app
        .patch(
            &format!("/v1/coupons/{code}"),
            Some(&admin.access),
            json!({"active": false}),
        )
        .await
        .expect(200);
    assert_eq!(off.body["active"], false);
    let audit = app
        .get(
            &format!("/v1/audit-log?resource_type=coupon&resource_id={code}"),
            Some(&admin.access),
        )
        .await
        .expect(200);
    let actions: Vec<&str> = audit.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource_id"] == code.as_str())
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"coupon.created") && actions.contains(&"coupon.deactivated"),
        "{actions:?}"
    );
    // Tenants neither create nor read coupons.
    let owner = app.signup(&email("owner"), "Acme").await;
    app.post(
        "/v1/coupons",
        Some(&owner.access),
        json!({"code": unique("C"), "percent_off": "5", "duration": "once"}),
    )
    .await
    .problem(403);
    app.get("/v1/coupons", Some(&owner.access))
        .await
        .problem(403);
}

#[tokio::test]
async fn a_percent_coupon_discounts_its_invoices_and_then_stops() {
    let app = TestApp::frozen_at("2027-04-01T00:00:00Z").await;
    let admin = app.platform_admin().await;
    let teams = plan(
        &app,
        &admin,
        json!({"name": "Teams", "price": "49.00", "currency": "USD", "billing_cycle": "monthly", "seats": {"unit_price": "12.00"}}),
    )
    .await;
    // 20% off for 3 invoices.
    let code = coupon(
        &app,
        &admin,
        json!({"code": unique("TWENTY"), "percent_off": "20", "duration": "repeating", "duration_cycles": 3}),
    )
    .await;
    let owner_email = email("owner");
    let owner = app.signup(&owner_email, "Acme").await;
    let tenant = owner.tenant_id.clone().unwrap();
    for _ in 0..2 {
        app.add_member(&owner, &tenant, &email("member"), "tenant_user")
            .await;
    }
    app.post(
        "/v1/payment-methods",
        Some(&owner.access),
        json!({"token": "pm_card_visa"}),
    )
    .await
    .expect(201);
    let subscribed = app
        .post(
            "/v1/subscriptions",
            Some(&owner.access),
            json!({"plan_id": teams, "coupon": code.to_lowercase()}),
        )
        .await
        .expect(201)
        .body;
    // Teams with three seats, 85.00, less 20%: 68.00.
    assert_eq!(
        discount_of(&subscribed["invoice"]).as_deref(),
        Some("-17.00")
    );
    assert_eq!(subscribed["invoice"]["total"], "68.00");
    assert_eq!(subscribed["subscription"]["discount"]["invoices_left"], 2);
    let upcoming = app
        .get("/v1/invoices/upcoming", Some(&owner.access))
        .await
        .expect(200)
        .body;
    assert_eq!(upcoming["total"], "68.00");
    let redeemed = app
        .get(&format!("/v1/coupons/{code}"), Some(&admin.access))
        .await
        .expect(200);
    assert_eq!(redeemed.body["redemptions"], 1);
    let mut totals = Vec::new();
    for _ in 0..3 {
        app.clock.advance(chrono::Duration::days(31));
        renew(&app).await;
        totals.push(invoices(&app, &owner_email).await[0]["total"].clone());
    }
    assert_eq!(totals, [json!("68.00"), json!("68.00"), json!("85.00")]);
    let owner = app.login(&owner_email, None).await;
    let sub = app
        .get("/v1/subscriptions/current", Some(&owner.access))
        .await
        .expect(200);
    assert_eq!(sub.body["discount"], Value::Null);
}

#[tokio::test]
async fn a_coupon_applied_later_takes_an_amount_off_once_never_below_zero() {
    let app = TestApp::frozen_at("2027-04-01T00:00:00Z").await;
    let admin = app.platform_admin().await;
    let cheap = plan(
        &app,
        &admin,
        json!({"name": "Cheap", "price": "4.00", "currency": "USD", "billing_cycle": "monthly"}),
    )
    .await;
    let other = plan(
        &app,
        &admin,
        json!({"name": "Other", "price": "4.00", "currency": "USD", "billing_cycle": "monthly"}),
    )
    .await;
    let ten = coupon(
        &app,
        &admin,
        json!({"code": unique("TEN"), "amount_off": "10.00", "currency": "USD", "duration": "once"}),
    )
    .await;
    let euros = coupon(
        &app,
        &admin,
        json!({"code": unique("EUR"), "amount_off": "1.00", "currency": "EUR", "duration": "once"}),
    )
    .await;
    let for_other = coupon(
        &app,
        &admin,
        json!({"code": unique("OTHER"), "percent_off": "10", "duration": "once", "plan_ids": [other]}),
    )
    .await;
    let soon = coupon(
        &app,
        &admin,
        json!({"code": unique("SOON"), "percent_off": "10", "duration": "once", "expires_at": "2027-04-02T00:00:00Z"}),
    )
    .await;
    let owner_email = email("owner");
    let owner = app.signup(&owner_email, "Acme").await;
    let sub = app.subscribe_with_card(&owner, &cheap).await["subscription"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.clock.advance(chrono::Duration::days(2));
    let owner = app.login(&owner_email, None).await;
    let apply = |code: String| {
        let (app, token, sub) = (&app, owner.access.clone(), sub.clone());
        async move {
            app.post(
                &format!("/v1/subscriptions/{sub}/coupon"),
                Some(&token),
                json!({ "code": code }),
            )
            .await
        }
    };
    for code in [euros, for_other, soon, "NOSUCH".to_owned()] {
        let reply = apply(code).await.problem(422);
        assert_eq!(reply.body["field"], "code", "{}", reply.body);
    }
    let applied = apply(ten.clone()).await.expect(200);
    assert_eq!(applied.body["discount"]["amount_off"], "10.00");
    apply(ten.clone()).await.problem(409);
    // $10 off a $4.00 invoice: it is free, not negative; the next one is full price.
    app.clock.advance(chrono::Duration::days(29));
    renew(&app).await;
    let first = invoices(&app, &owner_email).await[0].clone();
    assert_eq!(discount_of(&first).as_deref(), Some("-4.00"));
    assert_eq!(first["total"], "0.00");
    assert_eq!(first["status"], "paid");
    app.clock.advance(chrono::Duration::days(31));
    renew(&app).await;
    let second = invoices(&app, &owner_email).await[0].clone();
    assert_eq!(discount_of(&second), None);
    assert_eq!(second["total"], "4.00");
    // Used up is used up: asking again does not bring it back.
    let owner = app.login(&owner_email, None).await;
    let again = app
        .post(
            &format!("/v1/subscriptions/{sub}/coupon"),
            Some(&owner.access),
            json!({ "code": ten }),
        )
        .await
        .problem(409);
    assert_eq!(again.body["code"], "coupon_redeemed");
}

#[tokio::test]
async fn twenty_racing_redemptions_of_a_ten_use_coupon_count_exactly_ten() {
    let app = std::sync::Arc::new(TestApp::new().await);
    let admin = app.platform_admin().await;
    let cheap = plan(
        &app,
        &admin,
        json!({"name": "Cheap", "price": "1.00", "currency": "USD", "billing_cycle": "monthly"}),
    )
    .await;
    let code = coupon(
        &app,
        &admin,
        json!({"code": unique("TEN"), "percent_off": "50", "duration": "once", "max_redemptions": 10}),
    )
    .await;
    let mut tenants = Vec::new();
    for _ in 0..20 {
        let owner = app.signup(&email("owner"), "Racer").await;
        let sub = app.subscribe_with_card(&owner, &cheap).await["subscription"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        tenants.push((owner, sub));
    }
    let attempts: Vec<_> = tenants
        .into_iter()
        .map(|(owner, sub)| {
            let (app, code) = (app.clone(), code.clone());
            tokio::spawn(async move {
                app.post(
                    &format!("/v1/subscriptions/{sub}/coupon"),
                    Some(&owner.access),
                    json!({ "code": code }),
                )
                .await
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for attempt in attempts {
        let reply = attempt.await.unwrap();
        if reply.status.as_u16() == 409 {
            assert_eq!(reply.body["code"], "coupon_exhausted", "{}", reply.body);
        }
        statuses.push(reply.status.as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        10,
        "{statuses:?}"
    );
    let coupon = app
        .get(&format!("/v1/coupons/{code}"), Some(&admin.access))
        .await
        .expect(200);
    assert_eq!(coupon.body["redemptions"], 10);
}
