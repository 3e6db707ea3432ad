//! The scheduled Lambdas' entry code, fed the sample EventBridge payloads in `events/`.

use chrono::Duration;
use eshtarek_core::clock::Clock;
use eshtarek_core::jobs::JobName;
use eshtarek_core::lambda::scheduled;
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
    app.subscribe_with_card(&owner, plan.body["id"].as_str().unwrap())
        .await;

    let payload: serde_json::Value =
        serde_json::from_str(include_str!("../events/renew-billing-schedule.json"))
            .expect("sample event");
    app.clock.advance(Duration::days(15));
    let event = || LambdaEvent::new(payload.clone(), Context::default());
    // At-least-once delivery: the same event twice, and two copies at once.
    let first = scheduled(&app.ctx, JobName::RenewBilling, event())
        .await
        .unwrap();
    assert_eq!(first.outcomes.get("renewed"), Some(&1), "{first:?}");
    let (a, b) = tokio::join!(
        scheduled(&app.ctx, JobName::RenewBilling, event()),
        scheduled(&app.ctx, JobName::RenewBilling, event())
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

fn scheduled_event(payload: &str) -> LambdaEvent<serde_json::Value> {
    LambdaEvent::new(
        serde_json::from_str(payload).expect("sample event"),
        Context::default(),
    )
}

/// A platform admin, a plan made from `plan`, and a tenant owner (with a card if `card`).
async fn tenant_on(app: &TestApp, plan: serde_json::Value, card: Option<&str>) -> Owner {
    let admin = app.platform_admin().await;
    let plan = app
        .post("/v1/plans", Some(&admin.access), plan)
        .await
        .expect(201);
    let email = format!("o-{}@example.com", uuid::Uuid::new_v4().simple());
    let owner = app.signup(&email, "Acme").await;
    if let Some(card) = card {
        app.post(
            "/v1/payment-methods",
            Some(&owner.access),
            json!({ "token": card }),
        )
        .await
        .expect(201);
    }
    app.post(
        "/v1/subscriptions",
        Some(&owner.access),
        json!({"plan_id": plan.body["id"]}),
    )
    .await
    .expect(201);
    Owner {
        email,
        tenant_id: owner.tenant_id.clone().unwrap(),
        access: owner.access,
    }
}

struct Owner {
    email: String,
    tenant_id: String,
    access: String,
}

impl Owner {
    /// A fresh token (the clock may have moved past the old one's expiry).
    async fn token(&self, app: &TestApp) -> String {
        app.login(&self.email, Some(&self.tenant_id)).await.access
    }
}

/// The owner's subscription, read with a fresh token (the clock moved past the old one).
async fn subscription_of(app: &TestApp, owner: &Owner) -> serde_json::Value {
    app.get("/v1/subscriptions", Some(&owner.token(app).await))
        .await
        .expect(200)
        .body["data"][0]
        .clone()
}

#[tokio::test]
async fn expire_handler_ends_a_trial_without_a_payment_method_once() {
    let app = TestApp::frozen_at("2027-04-01T00:00:00Z").await;
    let owner = tenant_on(
        &app,
        json!({"name": "Pro", "price": "29.00", "currency": "USD", "billing_cycle": "monthly", "trial_days": 14}),
        None,
    )
    .await;
    let event = || scheduled_event(include_str!("../events/expire-subscriptions-schedule.json"));
    let early = scheduled(&app.ctx, JobName::ExpireSubscriptions, event())
        .await
        .unwrap();
    assert!(early.outcomes.is_empty(), "nothing due yet: {early:?}");
    app.clock.advance(Duration::days(15));
    let (a, b) = tokio::join!(
        scheduled(&app.ctx, JobName::ExpireSubscriptions, event()),
        scheduled(&app.ctx, JobName::ExpireSubscriptions, event())
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let ended = |r: &eshtarek_core::jobs::JobReport| {
        r.outcomes
            .get("trial_ended_without_payment_method")
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(ended(&a) + ended(&b), 1, "{a:?} {b:?}");
    let again = scheduled(&app.ctx, JobName::ExpireSubscriptions, event())
        .await
        .unwrap();
    assert_eq!(ended(&again), 0, "{again:?}");
    let sub = subscription_of(&app, &owner).await;
    assert_eq!(sub["status"], "expired");
    // Limits drop to none: usage is refused for want of a subscription, and nothing was billed.
    let token = owner.token(&app).await;
    app.get("/v1/usage", Some(&token)).await.problem(402);
    let invoices = app.get("/v1/invoices", Some(&token)).await.expect(200);
    assert_eq!(invoices.body["data"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn expire_handler_ends_a_fixed_duration_plan_and_a_lapsed_past_due_one() {
    let app = TestApp::frozen_at("2027-04-01T00:00:00Z").await;
    let fixed = tenant_on(
        &app,
        json!({"name": "Two months", "price": "10.00", "currency": "USD", "billing_cycle": "monthly", "duration_cycles": 2}),
        Some("pm_card_visa"),
    )
    .await;
    let declined = tenant_on(
        &app,
        json!({"name": "Monthly", "price": "10.00", "currency": "USD", "billing_cycle": "monthly"}),
        Some("pm_card_visa"),
    )
    .await;
    // The second tenant's card starts declining: its renewal fails into past_due.
    app.post(
        "/v1/payment-methods",
        Some(&declined.access),
        json!({"token": "pm_card_chargeDeclined", "set_default": true}),
    )
    .await
    .expect(201);
    let jobs = || async {
        let now = app.clock.now();
        let limits = eshtarek_core::jobs::RunLimits::default();
        let expired = eshtarek_core::jobs::expire_subscriptions(&app.ctx, now, limits)
            .await
            .unwrap();
        let renewed = eshtarek_core::jobs::renew_billing(&app.ctx, now, limits)
            .await
            .unwrap();
        (expired.outcomes, renewed.outcomes)
    };
    app.clock.advance(Duration::days(30)); // 2027-05-01: both renew (one fails)
    let (_, renewed) = jobs().await;
    assert_eq!(renewed.get("renewed"), Some(&1), "{renewed:?}");
    assert_eq!(renewed.get("payment_failed"), Some(&1), "{renewed:?}");
    assert_eq!(subscription_of(&app, &declined).await["status"], "past_due");
    // Dunning retries run on days 1, 3 and 5; the grace period (7 days) ends on 2027-05-08.
    app.clock.advance(Duration::days(7));
    let (expired, _) = jobs().await;
    let cancelled_or_expired = subscription_of(&app, &declined).await["status"].clone();
    assert!(
        expired.get("grace_ended") == Some(&1) || cancelled_or_expired == "cancelled",
        "{expired:?} {cancelled_or_expired}"
    );
    app.clock.advance(Duration::days(30)); // 2027-06-07: the fixed plan's two cycles are done
    let (expired, renewed) = jobs().await;
    assert_eq!(expired.get("duration_ended"), Some(&1), "{expired:?}");
    assert!(!renewed.contains_key("renewed"), "{renewed:?}");
    assert_eq!(subscription_of(&app, &fixed).await["status"], "expired");
}

#[tokio::test]
async fn a_lapsed_past_due_subscription_expires_after_the_grace_period() {
    let app = TestApp::frozen_at("2027-04-01T00:00:00Z").await;
    let owner = tenant_on(
        &app,
        json!({"name": "Monthly", "price": "10.00", "currency": "USD", "billing_cycle": "monthly"}),
        Some("pm_card_visa"),
    )
    .await;
    app.post(
        "/v1/payment-methods",
        Some(&owner.access),
        json!({"token": "pm_card_chargeDeclined", "set_default": true}),
    )
    .await
    .expect(201);
    let limits = eshtarek_core::jobs::RunLimits::default();
    app.clock.advance(Duration::days(30));
    eshtarek_core::jobs::renew_billing(&app.ctx, app.clock.now(), limits)
        .await
        .unwrap();
    assert_eq!(subscription_of(&app, &owner).await["status"], "past_due");
    // No dunning runs (the renewal job is down); the expiry job alone ends it after 7 days.
    app.clock.advance(Duration::days(6));
    let early = eshtarek_core::jobs::expire_subscriptions(&app.ctx, app.clock.now(), limits)
        .await
        .unwrap();
    assert!(!early.outcomes.contains_key("grace_ended"), "{early:?}");
    app.clock.advance(Duration::days(1));
    let lapsed = eshtarek_core::jobs::expire_subscriptions(&app.ctx, app.clock.now(), limits)
        .await
        .unwrap();
    assert_eq!(lapsed.outcomes.get("grace_ended"), Some(&1), "{lapsed:?}");
    assert_eq!(subscription_of(&app, &owner).await["status"], "expired");
    // As when dunning gives up: the unpaid invoice is written off and the members are told,
    // once, naming it.
    let token = owner.token(&app).await;
    let invoices = app
        .get("/v1/invoices?limit=1", Some(&token))
        .await
        .expect(200);
    let unpaid = &invoices.body["data"][0];
    assert_eq!(unpaid["status"], "uncollectible");
    let notes = app.get("/v1/notifications", Some(&token)).await.expect(200);
    let ended =
        eshtarek_tests::fixtures::notifications_of(&notes.body, "subscription.ended_unpaid");
    assert_eq!(ended.len(), 1, "{:#}", notes.body);
    assert_eq!(ended[0]["data"]["status"], "expired");
    assert_eq!(ended[0]["data"]["invoice_id"], unpaid["id"]);
    assert_eq!(ended[0]["data"]["notification_id"], ended[0]["id"]);
    assert!(ended[0]["message"]
        .as_str()
        .unwrap()
        .starts_with("The subscription expired after its payment kept failing"));
}

#[tokio::test]
async fn a_run_stops_at_its_deadline_and_the_next_one_continues() {
    let app = TestApp::frozen_at("2027-04-01T00:00:00Z").await;
    tenant_on(
        &app,
        json!({"name": "Monthly", "price": "10.00", "currency": "USD", "billing_cycle": "monthly"}),
        Some("pm_card_visa"),
    )
    .await;
    app.clock.advance(Duration::days(31));
    let out_of_time = eshtarek_core::jobs::RunLimits {
        concurrency: 4,
        deadline: Some(std::time::Instant::now()),
    };
    let cut = eshtarek_core::jobs::renew_billing(&app.ctx, app.clock.now(), out_of_time)
        .await
        .unwrap();
    assert!(!cut.complete);
    assert!(cut.outcomes.is_empty(), "{cut:?}");
    let next = eshtarek_core::jobs::renew_billing(
        &app.ctx,
        app.clock.now(),
        eshtarek_core::jobs::RunLimits::default(),
    )
    .await
    .unwrap();
    assert!(next.complete);
    assert_eq!(next.outcomes.get("renewed"), Some(&1), "{next:?}");
}

#[tokio::test]
async fn limit_warnings_handler_sends_a_missed_warning_exactly_once() {
    let app = TestApp::frozen_at("2027-04-01T00:00:00Z").await;
    let admin = app.platform_admin().await;
    let policy = app
        .post("/v1/limit-policies", Some(&admin.access), json!({"metric": "api_calls", "limit": 100, "reset_period": "month", "enforcement": "hard"}))
        .await
        .expect(201);
    let owner = tenant_on(
        &app,
        json!({"name": "Metered", "price": "0", "currency": "USD", "billing_cycle": "monthly", "limit_policy_ids": [policy.body["id"]]}),
        None,
    )
    .await;
    app.post(
        "/v1/usage/events",
        Some(&owner.access),
        json!({"metric": "api_calls", "quantity": 79, "idempotency_key": "a"}),
    )
    .await
    .expect(200);
    // As if a process stopped between an event's commit and its warning: the counter is at
    // 90% and no warning went out.
    let tenant = &owner.tenant_id;
    eshtarek_core::store::StoreExt::update(
        &*app.store,
        eshtarek_core::store::Key::new(
            format!("TENANT#{tenant}#USAGE#api_calls"),
            "P#2027-04-01T00:00:00.000Z",
        ),
        vec![eshtarek_core::store::UpdateAction::add(
            "used",
            rust_decimal::Decimal::from(11),
        )],
        Some(eshtarek_core::store::Condition::ItemExists),
    )
    .await
    .unwrap();
    let notifications = || async {
        app.get("/v1/notifications", Some(&owner.access))
            .await
            .expect(200)
            .body["data"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(notifications().await, 0);
    let event = || scheduled_event(include_str!("../events/limit-warnings-schedule.json"));
    let (a, b) = tokio::join!(
        scheduled(&app.ctx, JobName::LimitWarnings, event()),
        scheduled(&app.ctx, JobName::LimitWarnings, event())
    );
    let sent = |r: &eshtarek_core::jobs::JobReport| r.outcomes.get("sent").copied().unwrap_or(0);
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(sent(&a) + sent(&b), 1, "{a:?} {b:?}");
    let again = scheduled(&app.ctx, JobName::LimitWarnings, event())
        .await
        .unwrap();
    assert_eq!(sent(&again), 0, "{again:?}");
    assert_eq!(notifications().await, 1, "the 80% warning, once");
}

/// A tenant paying monthly with a card, on a plan metering `api_calls` per billing period
/// (hard limit 100), and its API key.
async fn metered_with_key(app: &TestApp) -> (Owner, String) {
    let admin = app.platform_admin().await;
    let policy = app
        .post("/v1/limit-policies", Some(&admin.access), json!({"metric": "api_calls", "limit": 100, "reset_period": "billing_period", "enforcement": "hard"}))
        .await
        .expect(201);
    let owner = tenant_on(
        app,
        json!({"name": "Metered", "price": "5.00", "currency": "USD", "billing_cycle": "monthly", "limit_policy_ids": [policy.body["id"]]}),
        Some("pm_card_visa"),
    )
    .await;
    let key = app.api_key(&owner.access, json!({"name": "backend"})).await;
    (owner, key)
}

/// Regression (found by scripts/soak): an instance that cached a subscription's period must not
/// refuse events after a renewal moved the period on; it looks again and counts them.
#[tokio::test]
async fn usage_after_a_renewal_counts_in_the_new_billing_period() {
    let app = TestApp::frozen_at("2027-04-01T00:00:00Z").await;
    let (_, key) = metered_with_key(&app).await;
    let event = |id: &str| json!({"metric": "api_calls", "quantity": 7, "idempotency_key": id});
    let first = app
        .post("/v1/usage/events", Some(&key), event("before"))
        .await
        .expect(200);
    assert_eq!(first.body["period_start"], "2027-04-01T00:00:00.000Z");
    app.clock.advance(Duration::days(31));
    let renewed = eshtarek_core::jobs::renew_billing(
        &app.ctx,
        app.clock.now(),
        eshtarek_core::jobs::RunLimits::default(),
    )
    .await
    .unwrap();
    assert_eq!(renewed.outcomes.get("renewed"), Some(&1), "{renewed:?}");
    let after = app
        .post("/v1/usage/events", Some(&key), event("after"))
        .await
        .expect(200);
    assert_eq!(after.body["period_start"], "2027-05-01T00:00:00.000Z");
    assert_eq!(after.body["used"], 7, "a new period starts from zero");
}

/// The test clock's advances are kept in the store: a restarted server resumes at the same
/// time (demos and the soak's kill -9 would otherwise jump back to the wall clock).
#[tokio::test]
async fn a_restarted_server_resumes_the_test_clock() {
    let plain = TestApp::new().await;
    // As `eshtarek serve --test-clock` runs: the advance endpoint moves this clock.
    let ctx = plain.ctx.clone().with_test_clock(plain.clock.clone());
    let app = TestApp {
        router: eshtarek::app(ctx.clone()),
        ctx,
        clock: plain.clock.clone(),
        store: plain.store.clone(),
        mailbox: plain.mailbox.clone(),
    };
    for duration in ["3d", "90m"] {
        // Tokens expire as the clock moves: a fresh admin each time.
        let admin = app.platform_admin().await;
        app.post(
            "/v1/admin/clock/advance",
            Some(&admin.access),
            json!({ "duration": duration }),
        )
        .await
        .expect(200);
    }
    let moved = app.clock.now();
    let restarted = eshtarek_core::clock::TestClock::new();
    eshtarek::restore_test_clock(&app.ctx, &restarted)
        .await
        .unwrap();
    assert_eq!(
        restarted.offset(),
        Duration::days(3) + Duration::minutes(90)
    );
    let drift = restarted.now() - moved;
    assert!(
        drift >= Duration::zero() && drift < Duration::seconds(5),
        "{drift}"
    );
}

/// Found by scripts/soak: an event after the billing period ended but before the renewal job
/// reached the subscription was refused (422), so a tenant's backend lost it. The event now
/// renews the subscription itself (as the job would) and counts in the new period.
#[tokio::test]
async fn usage_after_an_unrenewed_period_end_renews_and_counts() {
    let app = TestApp::frozen_at("2027-04-01T00:00:00Z").await;
    let (owner, key) = metered_with_key(&app).await;
    let event = |id: &str| json!({"metric": "api_calls", "quantity": 7, "idempotency_key": id});
    app.post("/v1/usage/events", Some(&key), event("before"))
        .await
        .expect(200);
    // The period ends; no job runs.
    app.clock.advance(Duration::days(31));
    let after = app
        .post("/v1/usage/events", Some(&key), event("after"))
        .await
        .expect(200);
    assert_eq!(after.body["period_start"], "2027-05-01T00:00:00.000Z");
    assert_eq!(after.body["used"], 7, "a new period starts from zero");
    let tenant = eshtarek_core::store::TenantId::parse(&owner.tenant_id).unwrap();
    let sub = eshtarek_core::billing::subscriptions::live(&app.ctx, &tenant)
        .await
        .unwrap()
        .expect("still subscribed");
    assert_eq!(
        eshtarek_core::time::fmt(sub.period_start),
        "2027-05-01T00:00:00.000Z",
        "renewed, with its invoice"
    );
    // The job then finds nothing left to do for it.
    let job = eshtarek_core::jobs::renew_billing(
        &app.ctx,
        app.clock.now(),
        eshtarek_core::jobs::RunLimits::default(),
    )
    .await
    .unwrap();
    assert_eq!(job.outcomes.get("renewed"), None, "{job:?}");
}
