//! The scheduled Lambdas' entry code, fed the sample EventBridge payloads in `events/`.

use chrono::Duration;
use eshtarek_tests::http::TestApp;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;

#[tokio::test]
async fn renew_billing_handler_renews_once_even_when_delivered_twice() {
    let app = TestApp::frozen_at("2027-04-01T00:00:00Z").await;
    let admin = app.platform_admin().await;
    let plan = app
        .post("/v1/plans", Some(&admin.access), json!({"name": "Pro", "price": "29.00", "currency": "USD", "billing_cycle": "monthly", "trial_days": 14}))
        .await
        .expect(201);
    let owner = app
        .signup(
            &format!("o-{}@example.com", uuid::Uuid::new_v4().simple()),
            "Acme",
        )
        .await;
    app.post(
        "/v1/payment-methods",
        Some(&owner.access),
        json!({"token": "pm_card_visa"}),
    )
    .await
    .expect(201);
    app.post(
        "/v1/subscriptions",
        Some(&owner.access),
        json!({"plan_id": plan.body["id"]}),
    )
    .await
    .expect(201);

    let payload: serde_json::Value =
        serde_json::from_str(include_str!("../events/renew-billing-schedule.json"))
            .expect("sample event");
    app.clock.advance(Duration::days(15));
    let event = || LambdaEvent::new(payload.clone(), Context::default());
    // At-least-once delivery: the same event twice, and two copies at once.
    let first = eshtarek_renew_billing::handle(&app.ctx, event())
        .await
        .unwrap();
    assert_eq!(first.outcomes.get("renewed"), Some(&1), "{first:?}");
    let (a, b) = tokio::join!(
        eshtarek_renew_billing::handle(&app.ctx, event()),
        eshtarek_renew_billing::handle(&app.ctx, event())
    );
    assert!(!a.unwrap().outcomes.contains_key("renewed"));
    assert!(!b.unwrap().outcomes.contains_key("renewed"));

    let invoices = eshtarek_core::store::Store::query(
        &*app.store,
        &eshtarek_core::store::Query::table(format!(
            "TENANT#{}#INVOICES",
            owner.tenant_id.as_deref().unwrap()
        ))
        .begins_with("INV#"),
    )
    .await
    .unwrap();
    assert_eq!(
        invoices.items.len(),
        1,
        "one invoice for the period, however often the job ran"
    );
}
