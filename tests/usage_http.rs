//! Usage metering over HTTP: exact enforcement under races, idempotent replays, soft limits,
//! period rollover, limits following upgrades, threshold events once, API keys, max_users.

use std::sync::Arc;

use chrono::Duration;
use eshtarek_tests::fixtures::{email, metric_in, usage_event as event, Metered};
use eshtarek_tests::http::PASSWORD;
use serde_json::{json, Value};

/// A day-aligned start: the `day` period boundary is at midnight UTC.
const START: &str = "2027-04-01T00:00:00Z";

/// The metered tenant of these tests, on the selected store.
async fn metered() -> Metered {
    Metered::on_fresh(eshtarek_tests::stores::selected().await, START).await
}

#[tokio::test]
async fn concurrent_events_never_pass_a_hard_limit() {
    let m = Arc::new(metered().await);
    let tasks = (0..200).map(|i| {
        let m = m.clone();
        tokio::spawn(async move { m.record("api_calls", 1, &format!("e{i}")).await })
    });
    let replies: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let accepted = replies.iter().filter(|r| r.status == 200).count();
    let refused: Vec<_> = replies.iter().filter(|r| r.status == 402).collect();
    assert_eq!(accepted, 100, "exactly the limit is accepted");
    assert_eq!(refused.len(), 100);
    let problem = &refused[0].body;
    assert_eq!(problem["metric"], "api_calls");
    assert_eq!(problem["limit"], 100);
    assert_eq!(
        problem["upgrade_to"]["name"], "Large",
        "the cheapest plan that allows it"
    );
    let usage = m.app.get("/v1/usage", Some(&m.key)).await.expect(200);
    let calls = metric_in(&usage.body, "api_calls");
    assert_eq!(calls["used"], 100);
    assert_eq!(calls["percent"], 100);
    // A refused event counted nothing.
    let one_more = m.record("api_calls", 1, "late").await.problem(402);
    assert_eq!(one_more.body["used"], 100);
}

#[tokio::test]
async fn the_same_idempotency_key_counts_once_even_when_racing() {
    let m = Arc::new(metered().await);
    let tasks = (0..20).map(|_| {
        let m = m.clone();
        tokio::spawn(async move { m.record("api_calls", 7, "same").await })
    });
    let replies: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert!(
        replies.iter().all(|r| r.status == 200 || r.status == 409),
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let done: Vec<&Value> = replies
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| &r.body)
        .collect();
    assert!(!done.is_empty());
    assert!(
        done.iter().all(|b| b["used"] == 7),
        "every answer is the first result"
    );
    let replay = m.record("api_calls", 7, "same").await.expect(200);
    assert_eq!(replay.body["used"], 7);
    let next = m.record("api_calls", 1, "other").await.expect(200);
    assert_eq!(next.body["used"], 8, "the replays counted nothing");
    // The same key for a different event is refused.
    let mismatch = m.record("api_calls", 2, "same").await.problem(422);
    assert_eq!(mismatch.body["field"], "idempotency_key");
}

#[tokio::test]
async fn soft_limits_count_and_flag_overage_and_periods_roll_over() {
    let m = metered().await;
    for i in 0..6 {
        let reply = m.record("exports", 1, &format!("x{i}")).await.expect(200);
        assert_eq!(reply.body["overage"], i >= 5, "{}", reply.body);
    }
    let last = m.record("exports", 1, "x6").await.expect(200);
    assert_eq!(last.body["used"], 7);
    assert_eq!(last.body["remaining"], 0);
    assert_eq!(last.body["period_end"], "2027-04-02T00:00:00.000Z");
    // An event exactly at the boundary counts in the new day.
    let boundary = json!({"metric": "exports", "quantity": 1, "idempotency_key": "b", "timestamp": "2027-04-02T00:00:00Z"});
    m.app.clock.advance(Duration::days(1));
    let fresh = m
        .app
        .post("/v1/usage/events", Some(&m.key), boundary)
        .await
        .expect(200);
    assert_eq!(fresh.body["used"], 1);
    assert_eq!(fresh.body["period_start"], "2027-04-02T00:00:00.000Z");
}

#[tokio::test]
async fn an_upgrade_raises_the_limit_at_once_without_resetting_usage() {
    let m = metered().await;
    m.record("api_calls", 100, "all").await.expect(200);
    m.record("api_calls", 1, "over").await.problem(402);
    let sub = m.subscription().await;
    let id = sub["id"].as_str().unwrap();
    // Same price, so choose "now" explicitly.
    m.app
        .post(
            &format!("/v1/subscriptions/{id}/change"),
            Some(&m.owner.access),
            json!({"plan_id": m.large, "effective": "now"}),
        )
        .await
        .expect(200);
    let after = m.record("api_calls", 1, "over-again").await.expect(200);
    assert_eq!(after.body["used"], 101, "usage is not reset by the change");
    assert_eq!(after.body["limit"], 1000);
    assert_ne!(m.small, m.large);
}

#[tokio::test]
async fn threshold_warnings_are_sent_once() {
    let m = Arc::new(metered().await);
    m.record("api_calls", 79, "a").await.expect(200);
    let tasks = (0..10).map(|i| {
        let m = m.clone();
        tokio::spawn(async move {
            m.record("api_calls", 2, &format!("t{i}"))
                .await
                .status
                .as_u16()
        })
    });
    futures::future::join_all(tasks).await;
    m.record("api_calls", 1, "z").await.expect(200);
    let events = m
        .app
        .get("/v1/events?limit=100", Some(&m.owner.access))
        .await
        .expect(200);
    let thresholds: Vec<i64> = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "usage.threshold_reached")
        .map(|e| e["data"]["threshold"].as_i64().unwrap())
        .collect();
    let mut sorted = thresholds.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [80, 100],
        "one warning per threshold: {thresholds:?}"
    );
}

#[tokio::test]
async fn api_keys_are_scoped_and_revocation_is_immediate() {
    let m = metered().await;
    let t = Some(m.owner.access.as_str());
    let listed = m.app.get("/v1/api-keys", t).await.expect(200);
    let key = &listed.body["data"][0];
    assert!(m.key.starts_with(key["prefix"].as_str().unwrap()));
    assert!(
        !listed.body.to_string().contains(&m.key),
        "the secret is shown once"
    );
    // Read-only key: reads, cannot write.
    let reader = m
        .app
        .post(
            "/v1/api-keys",
            t,
            json!({"name": "dash", "scopes": ["usage:read"]}),
        )
        .await
        .expect(201)
        .body["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    m.app.get("/v1/usage", Some(&reader)).await.expect(200);
    m.app
        .post(
            "/v1/usage/events",
            Some(&reader),
            event("api_calls", 1, "r"),
        )
        .await
        .problem(403);
    m.app
        .post("/v1/api-keys", t, json!({"name": "x", "scopes": ["admin"]}))
        .await
        .problem(422);
    // A key works only on usage endpoints.
    m.app.get("/v1/auth/me", Some(&m.key)).await.problem(401);
    m.app.get("/v1/invoices", Some(&m.key)).await.problem(401);
    // A tampered secret fails.
    let mut tampered = m.key.clone();
    tampered.pop();
    tampered.push('x');
    m.app
        .post(
            "/v1/usage/events",
            Some(&tampered),
            event("api_calls", 1, "t"),
        )
        .await
        .problem(401);
    // Revoked: refused at once.
    m.record("api_calls", 1, "before").await.expect(200);
    m.app
        .delete(&format!("/v1/api-keys/{}", key["id"].as_str().unwrap()), t)
        .await
        .expect(204);
    m.record("api_calls", 1, "after").await.problem(401);
    // Another tenant's admin cannot revoke or see it.
    let other = m.app.signup(&email("other"), "Other").await;
    assert_eq!(
        m.app
            .get("/v1/api-keys", Some(&other.access))
            .await
            .expect(200)
            .body["data"],
        json!([])
    );
    // A tenant without a subscription is refused with a 402.
    let other_key = m.app.api_key(&other.access, json!({"name": "k"})).await;
    let none = m
        .app
        .post(
            "/v1/usage/events",
            Some(&other_key),
            event("api_calls", 1, "n"),
        )
        .await
        .problem(402);
    assert_eq!(none.body["code"], "no_subscription");
    for (body, field) in [
        (
            json!({"metric": "api_calls", "quantity": 0, "idempotency_key": "q"}),
            "quantity",
        ),
        (
            json!({"metric": "API Calls", "quantity": 1, "idempotency_key": "q"}),
            "metric",
        ),
        (
            json!({"metric": "api_calls", "quantity": 1, "idempotency_key": ""}),
            "idempotency_key",
        ),
        (
            json!({"metric": "api_calls", "quantity": 1, "idempotency_key": "q", "timestamp": "soon"}),
            "timestamp",
        ),
    ] {
        // The read-only key is refused before validation; an admin token gets the field.
        m.app
            .post("/v1/usage/events", Some(&reader), body.clone())
            .await
            .problem(403);
        let reply = m.app.post("/v1/usage/events", t, body).await.problem(422);
        assert_eq!(reply.body["field"], field);
    }
}

#[tokio::test]
async fn concurrent_invitations_never_exceed_max_users() {
    let m = Arc::new(metered().await);
    let tenant = m.owner.tenant_id.clone().unwrap();
    // The owner is one seat of 3. Eight invitations go out; their links are followed at once.
    let invitees: Vec<String> = (0..8).map(|i| email(&format!("seat{i}"))).collect();
    for invitee in &invitees {
        m.app
            .post(
                &format!("/v1/tenants/{tenant}/members"),
                Some(&m.owner.access),
                json!({"email": invitee, "role": "tenant_user"}),
            )
            .await
            .expect(201);
    }
    let tasks = invitees.into_iter().map(|invitee| {
        let m = m.clone();
        tokio::spawn(async move {
            let token = m.app.invitation_token(&invitee);
            m.app
                .post(
                    "/v1/auth/invitations/accept",
                    None,
                    json!({"token": token, "password": PASSWORD}),
                )
                .await
        })
    });
    let replies: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(replies.iter().filter(|r| r.status == 201).count(), 2);
    let refused: Vec<_> = replies.iter().filter(|r| r.status == 402).collect();
    assert_eq!(refused.len(), 6);
    assert_eq!(refused[0].body["metric"], "max_users");
    let usage = m
        .app
        .get("/v1/usage", Some(&m.owner.access))
        .await
        .expect(200);
    let seats = metric_in(&usage.body, "max_users");
    assert_eq!(seats["used"], 3);
    // Removing a member frees a seat.
    let members = m
        .app
        .get(
            &format!("/v1/tenants/{tenant}/members"),
            Some(&m.owner.access),
        )
        .await
        .expect(200);
    let user = members.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["role"] == "tenant_user")
        .unwrap()["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    m.app
        .delete(
            &format!("/v1/tenants/{tenant}/members/{user}"),
            Some(&m.owner.access),
        )
        .await
        .expect(204);
    m.app
        .add_member(&m.owner, &tenant, &email("seat-again"), "tenant_user")
        .await;
}

#[tokio::test]
async fn check_history_gauges_and_notifications() {
    let m = metered().await;
    let check = m
        .app
        .post(
            "/v1/usage/check",
            Some(&m.key),
            json!({"metric": "api_calls", "quantity": 100}),
        )
        .await
        .expect(200);
    assert_eq!(check.body["allowed"], true);
    m.record("api_calls", 60, "a").await.expect(200);
    let check = m
        .app
        .post(
            "/v1/usage/check",
            Some(&m.key),
            json!({"metric": "api_calls", "quantity": 41}),
        )
        .await
        .expect(200);
    assert_eq!(
        (check.body["allowed"].as_bool(), check.body["used"].as_i64()),
        (Some(false), Some(60)),
        "checking records nothing"
    );
    // History from the rollups, by hour and by day.
    m.app.clock.advance(Duration::hours(2));
    m.record("api_calls", 25, "b").await.expect(200);
    let by_hour = m
        .app
        .get("/v1/usage/history?metric=api_calls&from=2027-04-01T00:00:00Z&to=2027-04-01T23:59:59Z&granularity=hour", Some(&m.key))
        .await
        .expect(200);
    assert_eq!(
        by_hour.body["data"],
        json!([{"bucket": "2027-04-01T00", "total": 60}, {"bucket": "2027-04-01T02", "total": 25}])
    );
    let by_day = m
        .app
        .get("/v1/usage/history?metric=api_calls&from=2027-04-01T00:00:00Z&to=2027-04-30T00:00:00Z&granularity=day", Some(&m.key))
        .await
        .expect(200);
    assert_eq!(
        by_day.body["data"],
        json!([{"bucket": "2027-04-01", "total": 85}])
    );
    m.app
        .get(
            "/v1/usage/history?metric=api_calls&from=x&to=y&granularity=hour",
            Some(&m.key),
        )
        .await
        .problem(422);
    m.app
        .get("/v1/usage/history?metric=api_calls&from=2027-04-01T00:00:00Z&to=2027-04-02T00:00:00Z&granularity=week", Some(&m.key))
        .await
        .problem(422);
    // 85 of 100 crossed 80%: one notification, which can be marked read. (The clock moved:
    // the owner signs in again.)
    let fresh = m.app.login(&m.owner_email, None).await;
    let t = Some(fresh.access.as_str());
    let notes = m.app.get("/v1/notifications", t).await.expect(200);
    let list = notes.body["data"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["data"]["threshold"], 80);
    assert_eq!(list[0]["read"], false);
    let id = list[0]["id"].as_str().unwrap();
    assert_eq!(
        m.app
            .post(&format!("/v1/notifications/{id}/read"), t, json!({}))
            .await
            .expect(200)
            .body["read"],
        true
    );
    m.app
        .post("/v1/notifications/ntf_nope/read", t, json!({}))
        .await
        .problem(404);
    // Gauges: only reset-never metrics, refused above a hard limit; seats are not settable.
    for not_a_gauge in ["max_users", "api_calls", "unmetered"] {
        m.gauge(not_a_gauge, 1).await.problem(422);
    }
    let set = m.gauge("storage_mb", 40).await.expect(200);
    assert_eq!(
        (set.body["used"].as_i64(), set.body["percent"].as_i64()),
        (Some(40), Some(80))
    );
    let over = m.gauge("storage_mb", 51).await.problem(402);
    assert_eq!(over.body["metric"], "storage_mb");
    m.gauge("storage_mb", -1).await.problem(422);
    let down = m.gauge("storage_mb", 10).await.expect(200);
    assert_eq!(down.body["used"], 10);
    let summary = m.app.get("/v1/usage", Some(&m.key)).await.expect(200);
    let storage = metric_in(&summary.body, "storage_mb");
    assert_eq!(storage["used"], 10);
    // Crossing 80% of storage warned once too.
    let notes = m.app.get("/v1/notifications", t).await.expect(200);
    assert_eq!(
        notes.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["data"]["metric"] == "storage_mb")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_batch_gives_each_event_its_own_result() {
    let m = metered().await;
    let batch = json!({"events": [event("api_calls", 60, "b1"), event("api_calls", 50, "b2"), event("api_calls", 40, "b3"), event("api_calls", 1, "b1x")]});
    let reply = m
        .app
        .post("/v1/usage/events:batch", Some(&m.key), batch)
        .await
        .expect(200);
    let statuses: Vec<i64> = reply.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [200, 402, 200, 402], "{}", reply.body);
    assert_eq!(reply.body["results"][1]["problem"]["metric"], "api_calls");
    assert_eq!(reply.body["results"][2]["result"]["used"], 100);
    let too_many: Vec<Value> = (0..101)
        .map(|i| event("api_calls", 1, &format!("k{i}")))
        .collect();
    let refused = m
        .app
        .post(
            "/v1/usage/events:batch",
            Some(&m.key),
            json!({"events": too_many}),
        )
        .await
        .problem(422);
    assert_eq!(refused.body["field"], "events");
}

#[tokio::test]
async fn platform_admins_see_usage_across_tenants() {
    let m = metered().await;
    m.record("api_calls", 30, "one").await.expect(200);
    // A second tenant on the same plan uses more.
    let other = m.app.signup(&email("b"), "Beta").await;
    m.app
        .post(
            "/v1/subscriptions",
            Some(&other.access),
            json!({"plan_id": m.large}),
        )
        .await
        .expect(201);
    let key = m.app.api_key(&other.access, json!({"name": "k"})).await;
    m.app
        .post(
            "/v1/usage/events",
            Some(&key),
            event("api_calls", 70, "two"),
        )
        .await
        .expect(200);
    let admin = m.app.platform_admin().await;
    let view = m
        .app
        .get("/v1/admin/usage?metric=api_calls", Some(&admin.access))
        .await
        .expect(200);
    assert_eq!(view.body["month"], "2027-04");
    assert_eq!(view.body["total"], 100);
    assert_eq!(view.body["tenants"], 2);
    assert_eq!(
        view.body["top"][0]["tenant_id"],
        other.tenant_id.clone().unwrap().as_str()
    );
    assert_eq!(view.body["top"][0]["used"], 70);
    m.app
        .get("/v1/admin/usage?metric=api_calls", Some(&m.owner.access))
        .await
        .problem(403);
    m.app
        .get(
            "/v1/admin/usage?metric=api_calls&month=2027-13",
            Some(&admin.access),
        )
        .await
        .problem(422);
    let empty = m
        .app
        .get(
            "/v1/admin/usage?metric=api_calls&month=2027-03",
            Some(&admin.access),
        )
        .await
        .expect(200);
    assert_eq!(empty.body["total"], 0);
}

/// Facts the hot path caches (the key, the plan's limits) are re-checked in its write: a key
/// revoked or a plan changed through another instance takes effect on this one at once.
#[tokio::test]
async fn another_instances_revocation_and_upgrade_apply_at_once() {
    let m = metered().await;
    let other = m.app.sibling();
    m.record("api_calls", 100, "fill").await.expect(200);
    let sub = other
        .get("/v1/subscriptions/current", Some(&m.owner.access))
        .await
        .expect(200)
        .body;
    other
        .post(
            &format!("/v1/subscriptions/{}/change", sub["id"].as_str().unwrap()),
            Some(&m.owner.access),
            json!({"plan_id": m.large, "effective": "now"}),
        )
        .await
        .expect(200);
    let raised = m.record("api_calls", 1, "more").await.expect(200);
    assert_eq!(raised.body["limit"], 1000);
    assert_eq!(raised.body["used"], 101);

    let keys = other
        .get("/v1/api-keys", Some(&m.owner.access))
        .await
        .expect(200)
        .body;
    let id = keys["data"][0]["id"].as_str().unwrap();
    other
        .delete(&format!("/v1/api-keys/{id}"), Some(&m.owner.access))
        .await
        .expect(204);
    m.record("api_calls", 1, "after").await.problem(401);
    let usage = m.usage().await;
    let api_calls = usage["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["metric"] == "api_calls")
        .unwrap();
    assert_eq!(api_calls["used"], 101, "the refused event counted nothing");
}
