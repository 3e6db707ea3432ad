//! `Idempotency-Key` records cannot get stuck: an `in_progress` claim is a lease of the request
//! timeout, so a retry after a killed invocation runs once the lease lapses, and an attempt
//! that outlived its lease never touches the record of the retry that took over.

use std::sync::Arc;

use eshtarek_core::idempotency::lease_secs;
use eshtarek_tests::http::{Reply, TestApp};
use eshtarek_tests::stall::Stalls;
use serde_json::{json, Value};

const START: &str = "2027-03-01T09:00:00Z";

fn plan(name: &str) -> Value {
    json!({"name": name, "description": "d", "price": "10.00", "currency": "usd",
           "billing_cycle": "monthly", "trial_days": 0, "limit_policy_ids": []})
}

/// An app whose next transaction can be held at the store's door.
async fn stalling_app() -> (Arc<TestApp>, Arc<Stalls>) {
    let stall = Stalls::new(eshtarek_tests::stores::selected().await);
    let app = TestApp::frozen_on(stall.store(), START).await;
    (Arc::new(app), stall)
}

/// Starts `POST /v1/plans` with `key` and returns once it waits at the store's door (its claim
/// on the key taken, nothing of the plan written).
async fn start_held(
    app: &Arc<TestApp>,
    stall: &Stalls,
    token: &str,
    key: &str,
    body: &Value,
) -> tokio::task::JoinHandle<Reply> {
    stall.arm();
    let attempt = tokio::spawn({
        let (app, token, key, body) = (app.clone(), token.to_owned(), key.to_owned(), body.clone());
        async move { app.post_keyed("/v1/plans", Some(&token), &key, body).await }
    });
    stall.reached().await;
    attempt
}

async fn plans_named(app: &TestApp, token: &str, name: &str) -> usize {
    let plans = app
        .get("/v1/plans?limit=100", Some(token))
        .await
        .expect(200);
    plans.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == name)
        .count()
}

fn past_the_lease(app: &TestApp) -> chrono::Duration {
    chrono::Duration::seconds(lease_secs(&app.ctx) + 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_killed_invocation_runs_once_the_lease_lapses() {
    let (app, stall) = stalling_app().await;
    let admin = app.platform_admin().await;
    let body = plan("Leased");
    let first = start_held(&app, &stall, &admin.access, "lease-1", &body).await;
    // The invocation is killed mid-request (a Lambda timeout, a crash): its future is dropped
    // with its claim still on the key.
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());

    // While the lease lives, a retry is told the first attempt may still be running.
    let early = app
        .post_keyed("/v1/plans", Some(&admin.access), "lease-1", body.clone())
        .await
        .problem(409);
    assert!(
        early.body["detail"]
            .as_str()
            .unwrap()
            .contains("in progress"),
        "{}",
        early.body
    );
    // A second before the lease lapses it still holds.
    app.clock
        .advance(chrono::Duration::seconds(lease_secs(&app.ctx) - 1));
    app.post_keyed("/v1/plans", Some(&admin.access), "lease-1", body.clone())
        .await
        .problem(409);

    // Past the lease the retry runs, once.
    app.clock.advance(chrono::Duration::seconds(2));
    let retried = app
        .post_keyed("/v1/plans", Some(&admin.access), "lease-1", body.clone())
        .await
        .expect(201);
    assert!(!retried.headers.contains_key("idempotent-replayed"));
    let again = app
        .post_keyed("/v1/plans", Some(&admin.access), "lease-1", body)
        .await
        .expect(201);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body["id"], retried.body["id"]);
    assert_eq!(plans_named(&app, &admin.access, "Leased").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_that_outlived_its_lease_leaves_the_retrys_record_alone() {
    let (app, stall) = stalling_app().await;
    let admin = app.platform_admin().await;
    let body = plan("Outlived");
    let stale = start_held(&app, &stall, &admin.access, "lease-2", &body).await;

    // The first attempt hangs past its lease; the client's retry takes the key over and
    // creates the plan.
    app.clock.advance(past_the_lease(&app));
    let retried = app
        .post_keyed("/v1/plans", Some(&admin.access), "lease-2", body.clone())
        .await
        .expect(201);

    // The stale attempt wakes: its plan's name is taken now (409), and its claim no longer
    // holds the key, so releasing it must not delete the retry's record.
    stall.release();
    let late = stale.await.unwrap();
    late.problem(409);

    let replayed = app
        .post_keyed("/v1/plans", Some(&admin.access), "lease-2", body)
        .await
        .expect(201);
    assert_eq!(replayed.headers["idempotent-replayed"], "true");
    assert_eq!(replayed.body["id"], retried.body["id"]);
    assert_eq!(plans_named(&app, &admin.access, "Outlived").await, 1);
}
