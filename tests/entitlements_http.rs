//! Entitlements (issue 21), over HTTP: features defined once and valued per plan version,
//! allowed plan changes, the one check (features and metrics, consuming atomically), and a
//! trial's end blocking metered use.

use eshtarek_core::clock::Clock;
use eshtarek_tests::fixtures::{email, usage_event};
use eshtarek_tests::http::{Session, TestApp};
use serde_json::{json, Value};

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Defines the three demo-like features under fresh keys: (boolean, number, string).
async fn features(app: &TestApp, admin: &Session) -> (String, String, String) {
    let mut keys = Vec::new();
    for (name, kind) in [
        ("priority", "boolean"),
        ("projects", "number"),
        ("tier", "string"),
    ] {
        let key = unique(&format!("{name}_"));
        app.post(
            "/v1/features",
            Some(&admin.access),
            json!({"key": key, "name": name, "type": kind}),
        )
        .await
        .expect(201);
        keys.push(key);
    }
    (keys[0].clone(), keys[1].clone(), keys[2].clone())
}

async fn plan(app: &TestApp, admin: &Session, body: Value) -> Value {
    let mut body = body;
    body["name"] = json!(unique(body["name"].as_str().unwrap()));
    app.post("/v1/plans", Some(&admin.access), body)
        .await
        .expect(201)
        .body
}

async fn hard_limit(app: &TestApp, admin: &Session, metric: &str, limit: u64) -> Value {
    app.post(
        "/v1/limit-policies",
        Some(&admin.access),
        json!({"metric": metric, "limit": limit, "reset_period": "billing_period", "enforcement": "hard"}),
    )
    .await
    .expect(201)
    .body["id"]
        .clone()
}

#[tokio::test]
async fn features_are_defined_once_and_valued_per_plan_version() {
    let app = TestApp::new().await;
    let admin = app.platform_admin().await;
    let (priority, projects, tier) = features(&app, &admin).await;
    // The catalog: keys checked, one definition per key, platform admins only.
    for (bad, field) in [
        (
            json!({"key": "Bad Key", "name": "x", "type": "boolean"}),
            "key",
        ),
        (
            json!({"key": "ok_key", "name": " ", "type": "boolean"}),
            "name",
        ),
    ] {
        let reply = app
            .post("/v1/features", Some(&admin.access), bad)
            .await
            .problem(422);
        assert_eq!(reply.body["field"], field);
    }
    app.post(
        "/v1/features",
        Some(&admin.access),
        json!({"key": priority, "name": "again", "type": "number"}),
    )
    .await
    .problem(409);
    let owner = app.signup(&email("owner"), "Features").await;
    app.post(
        "/v1/features",
        Some(&owner.access),
        json!({"key": unique("mine_"), "name": "x", "type": "boolean"}),
    )
    .await
    .problem(403);
    let listed = app
        .get("/v1/features?limit=100", Some(&owner.access))
        .await
        .expect(200);
    assert!(listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["key"] == priority.as_str() && f["type"] == "boolean"));

    // A plan's values: known features, of their type; a 422 names the field.
    let base =
        json!({"name": "Featured", "price": "5.00", "currency": "USD", "billing_cycle": "monthly"});
    for (values, field) in [
        (
            json!({"nope_feature": true}),
            "features.nope_feature".to_owned(),
        ),
        (json!({&projects: "ten"}), format!("features.{projects}")),
        (json!({&priority: 1}), format!("features.{priority}")),
        (json!({&tier: "x".repeat(201)}), format!("features.{tier}")),
    ] {
        let mut body = base.clone();
        body["name"] = json!(unique("Bad"));
        body["features"] = values;
        let reply = app
            .post("/v1/plans", Some(&admin.access), body)
            .await
            .problem(422);
        assert_eq!(reply.body["field"], field.as_str(), "{}", reply.body);
    }
    let mut body = base.clone();
    body["features"] = json!({&priority: true, &projects: 10, &tier: "gold"});
    let made = plan(&app, &admin, body).await;
    assert_eq!(made["features"][&projects], 10);
    // New values make a new version; the old one keeps its own.
    let id = made["id"].as_str().unwrap();
    let patched = app
        .patch(
            &format!("/v1/plans/{id}"),
            Some(&admin.access),
            json!({"features": {&priority: false, &projects: 20}}),
        )
        .await
        .expect(200);
    assert_eq!(patched.body["current_version"], 2);
    let v1 = app
        .get(&format!("/v1/plans/{id}/versions/1"), Some(&admin.access))
        .await
        .expect(200);
    assert_eq!(v1.body["features"][&tier], "gold");
    assert_eq!(patched.body["features"].get(&tier), None);
}

#[tokio::test]
async fn the_check_answers_features_and_metrics_and_consumes_atomically() {
    let app = TestApp::new().await;
    let admin = app.platform_admin().await;
    let (priority, projects, tier) = features(&app, &admin).await;
    let policy = hard_limit(&app, &admin, "api_calls", 10).await;
    let made = plan(
        &app,
        &admin,
        json!({"name": "Checked", "price": "5.00", "currency": "USD", "billing_cycle": "monthly",
               "limit_policy_ids": [policy],
               "features": {&priority: true, &projects: 0, &tier: "gold"}}),
    )
    .await;
    let owner = app.signup(&email("owner"), "Checked").await;
    // No subscription yet: every check says so (a check answers, it does not fail).
    let key = app.api_key(&owner.access, json!({"name": "backend"})).await;
    let before = app
        .post(
            "/v1/entitlements/check",
            Some(&key),
            json!({"checks": [{"feature": &priority}]}),
        )
        .await
        .expect(200);
    assert_eq!(before.body["allowed"], false);
    assert_eq!(before.body["results"][0]["reason"], "no_subscription");
    app.subscribe_with_card(&owner, made["id"].as_str().unwrap())
        .await;

    let check = |body: Value| {
        let (app, key) = (&app, key.clone());
        async move { app.post("/v1/entitlements/check", Some(&key), body).await }
    };
    let features_only = check(json!({"checks": [
        {"feature": &priority}, {"feature": &projects}, {"feature": &tier}, {"feature": "not_granted"}
    ]}))
    .await
    .expect(200);
    let r = &features_only.body["results"];
    assert_eq!(
        (r[0]["allowed"].clone(), r[0]["reason"].clone()),
        (json!(true), json!("enabled"))
    );
    assert_eq!(
        (r[1]["allowed"].clone(), r[1]["value"].clone()),
        (json!(false), json!(0))
    );
    assert_eq!(r[2]["value"], "gold");
    assert_eq!(r[3]["reason"], "not_in_plan");
    assert_eq!(features_only.body["cache_for_seconds"], 60);
    assert_eq!(
        features_only.headers["cache-control"],
        "private, max-age=60"
    );

    // A metric: room now; consumed with a key, counted once however often it is retried.
    let consume = json!({"checks": [{"feature": &priority}, {"metric": "api_calls", "quantity": 4}],
                         "consume": true, "idempotency_key": "req-1"});
    let first = check(consume.clone()).await.expect(200);
    let m = &first.body["results"][1];
    assert_eq!(
        (
            m["allowed"].clone(),
            m["consumed"].clone(),
            m["used"].clone()
        ),
        (json!(true), json!(true), json!(4))
    );
    assert_eq!(m["limit"], 10);
    assert!(m["resets_at"].is_string());
    assert_eq!(first.headers["cache-control"], "private, no-store");
    let again = check(consume).await.expect(200);
    assert_eq!(again.body["results"][1]["used"], 4);
    let usage = app
        .get("/v1/usage", Some(&owner.access))
        .await
        .expect(200)
        .body;
    assert_eq!(
        eshtarek_tests::fixtures::metric_in(&usage, "api_calls")["used"],
        4
    );
    // Past the hard limit: refused, nothing counted.
    let over = check(json!({"checks": [{"metric": "api_calls", "quantity": 7}], "consume": true, "idempotency_key": "req-2"}))
        .await
        .expect(200);
    assert_eq!(over.body["allowed"], false);
    assert_eq!(over.body["results"][0]["reason"], "limit_reached");
    assert_eq!(over.body["results"][0]["consumed"], false);
    let fits = check(json!({"checks": [{"metric": "api_calls", "quantity": 6}]}))
        .await
        .expect(200);
    assert_eq!(fits.body["results"][0]["remaining"], 6);
    assert_eq!(fits.body["results"][0]["allowed"], true);

    // Bad requests are named.
    for (bad, field) in [
        (json!({"checks": []}), "checks"),
        (
            json!({"checks": [{"feature": "a", "metric": "b"}]}),
            "checks[0]",
        ),
        (
            json!({"checks": [{"metric": "api_calls", "quantity": 0}]}),
            "checks[0].quantity",
        ),
        (
            json!({"checks": [{"metric": "api_calls"}], "consume": true}),
            "idempotency_key",
        ),
        (
            json!({"checks": [{"feature": "a"}], "idempotency_key": ""}),
            "idempotency_key",
        ),
        (
            json!({"checks": [{"metric": "api_calls"}, {"metric": "exports"}], "consume": true, "idempotency_key": "k"}),
            "consume",
        ),
    ] {
        let reply = check(bad.clone()).await.problem(422);
        assert_eq!(reply.body["field"], field, "{bad}: {}", reply.body);
    }

    // Everything at once, for a dashboard or a backend's start-up.
    let all = app
        .get("/v1/entitlements", Some(&key))
        .await
        .expect(200)
        .body;
    let _ = &all;

    // A key revoked on one instance is refused by another that had it cached, for a check
    // that writes nothing as for one that consumes.
    let other = app.sibling();
    let warm =
        json!({"checks": [{"metric": "api_calls"}], "consume": true, "idempotency_key": "warm"});
    other
        .post("/v1/entitlements/check", Some(&key), warm)
        .await
        .expect(200);
    let keys = app
        .get("/v1/api-keys", Some(&owner.access))
        .await
        .expect(200)
        .body;
    let id = keys["data"][0]["id"].as_str().unwrap().to_owned();
    app.delete(&format!("/v1/api-keys/{id}"), Some(&owner.access))
        .await
        .expect(204);
    other
        .post(
            "/v1/entitlements/check",
            Some(&key),
            json!({"checks": [{"feature": &priority}]}),
        )
        .await
        .problem(401);
    assert_eq!(all["plan_id"], made["id"]);
    assert!(all["features"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["key"] == priority.as_str() && f["enabled"] == true && f["name"] == "priority"));
    assert!(all["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["metric"] == "api_calls" && m["used"] == 4));
}

#[tokio::test]
async fn plans_change_only_where_they_are_allowed_to() {
    let app = TestApp::new().await;
    let admin = app.platform_admin().await;
    let priced = |name: &str, price: &str| json!({"name": name, "price": price, "currency": "USD", "billing_cycle": "monthly"});
    let teams = plan(&app, &admin, {
        let mut b = priced("Teams", "49.00");
        b["allowed_changes"] = json!([]);
        b
    })
    .await;
    let plus = plan(&app, &admin, {
        let mut b = priced("Plus", "19.00");
        b["allowed_changes"] = json!([teams["id"]]);
        b
    })
    .await;
    let business = plan(&app, &admin, priced("Business", "99.00")).await;
    let pro = plan(&app, &admin, {
        let mut b = priced("Pro", "10.00");
        b["allowed_changes"] = json!([plus["id"], teams["id"]]);
        b
    })
    .await;
    assert_eq!(pro["allowed_changes"], json!([plus["id"], teams["id"]]));
    // The list is checked: known plans, once each, never the plan itself.
    let mut bad = priced(&unique("Bad"), "1.00");
    bad["allowed_changes"] = json!(["plan_nosuch"]);
    let reply = app
        .post("/v1/plans", Some(&admin.access), bad)
        .await
        .problem(422);
    assert_eq!(reply.body["field"], "allowed_changes[0]");
    let own = app
        .patch(
            &format!("/v1/plans/{}", pro["id"].as_str().unwrap()),
            Some(&admin.access),
            json!({"allowed_changes": [pro["id"]]}),
        )
        .await
        .problem(422);
    assert_eq!(own.body["field"], "allowed_changes[0]");

    let owner = app.signup(&email("owner"), "Mover").await;
    let subscribed = app
        .subscribe_with_card(&owner, pro["id"].as_str().unwrap())
        .await;
    let sub = subscribed["subscription"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Pro → Business: not on Pro's list, refused by the preview and the change alike.
    let preview = app
        .get(
            &format!(
                "/v1/subscriptions/{sub}/change-preview?plan_id={}",
                business["id"].as_str().unwrap()
            ),
            Some(&owner.access),
        )
        .await
        .problem(422);
    assert_eq!(preview.body["field"], "plan_id");
    assert_eq!(
        preview.body["allowed_changes"],
        json!([plus["id"], teams["id"]])
    );
    app.post(
        &format!("/v1/subscriptions/{sub}/change"),
        Some(&owner.access),
        json!({"plan_id": business["id"], "effective": "now"}),
    )
    .await
    .problem(422);
    // Pro → Plus is allowed; Plus → Pro is not (Plus goes to Teams only).
    app.post(
        &format!("/v1/subscriptions/{sub}/change"),
        Some(&owner.access),
        json!({"plan_id": plus["id"], "effective": "now"}),
    )
    .await
    .expect(200);
    app.post(
        &format!("/v1/subscriptions/{sub}/change"),
        Some(&owner.access),
        json!({"plan_id": pro["id"], "effective": "now"}),
    )
    .await
    .problem(422);
    // A platform admin's override is not a tenant's choice: it may move anywhere.
    let tenant = owner.tenant_id.clone().unwrap();
    app.patch(
        &format!("/v1/admin/tenants/{tenant}/subscription"),
        Some(&admin.access),
        json!({"plan_id": business["id"], "reason": "Enterprise deal"}),
    )
    .await
    .expect(200);
}

#[tokio::test]
async fn a_downgrade_changes_features_exactly_when_it_applies() {
    let app = TestApp::frozen_at("2026-05-01T00:00:00Z").await;
    let admin = app.platform_admin().await;
    let (priority, projects, _) = features(&app, &admin).await;
    let gold = plan(
        &app,
        &admin,
        json!({"name": "Gold", "price": "50.00", "currency": "USD", "billing_cycle": "monthly",
               "features": {&priority: true, &projects: 100}}),
    )
    .await;
    let basic = plan(
        &app,
        &admin,
        json!({"name": "Basic", "price": "5.00", "currency": "USD", "billing_cycle": "monthly",
               "features": {&priority: false, &projects: 3}}),
    )
    .await;
    let owner = app.signup(&email("owner"), "Downgrader").await;
    let subscribed = app
        .subscribe_with_card(&owner, gold["id"].as_str().unwrap())
        .await;
    let key = app.api_key(&owner.access, json!({"name": "backend"})).await;
    let sub = subscribed["subscription"]["id"].as_str().unwrap();
    // A downgrade waits for the period's end.
    app.post(
        &format!("/v1/subscriptions/{sub}/change"),
        Some(&owner.access),
        json!({"plan_id": basic["id"]}),
    )
    .await
    .expect(200);
    let value = |body: &Value| body["results"][0]["value"].clone();
    let ask = || {
        app.post(
            "/v1/entitlements/check",
            Some(&key),
            json!({"checks": [{"feature": &projects}]}),
        )
    };
    assert_eq!(value(&ask().await.expect(200).body), 100);
    // One second before the period ends: still Gold's.
    app.clock
        .advance(chrono::Duration::days(31) - chrono::Duration::seconds(1));
    eshtarek_core::jobs::renew_billing(&app.ctx, app.clock.now(), Default::default())
        .await
        .unwrap();
    assert_eq!(value(&ask().await.expect(200).body), 100);
    // At the period's end the renewal applies Basic, and its values with it.
    app.clock.advance(chrono::Duration::seconds(1));
    eshtarek_core::jobs::renew_billing(&app.ctx, app.clock.now(), Default::default())
        .await
        .unwrap();
    assert_eq!(value(&ask().await.expect(200).body), 3);
}

#[tokio::test]
async fn a_trial_that_ended_blocks_metered_use_until_the_tenant_subscribes() {
    let app = TestApp::frozen_at("2026-05-01T00:00:00Z").await;
    let admin = app.platform_admin().await;
    let policy = hard_limit(&app, &admin, "requests", 120).await;
    let trial = plan(
        &app,
        &admin,
        json!({"name": "Trial", "price": "0.00", "currency": "USD", "billing_cycle": "monthly",
               "trial_days": 7, "limit_policy_ids": [policy]}),
    )
    .await;
    let paid = plan(
        &app,
        &admin,
        json!({"name": "Paid", "price": "1.00", "currency": "USD", "billing_cycle": "monthly",
               "limit_policy_ids": [policy]}),
    )
    .await;
    let owner = app.signup(&email("owner"), "Trialist").await;
    app.post(
        "/v1/subscriptions",
        Some(&owner.access),
        json!({"plan_id": trial["id"]}),
    )
    .await
    .expect(201);
    let key = app.api_key(&owner.access, json!({"name": "backend"})).await;
    app.post(
        "/v1/usage/events",
        Some(&key),
        usage_event("requests", 1, "in-trial"),
    )
    .await
    .expect(200);
    // Eight days on, with no card: the trial ended and metered use is refused, saying so.
    app.clock.advance(chrono::Duration::days(8));
    eshtarek_core::jobs::expire_subscriptions(&app.ctx, app.clock.now(), Default::default())
        .await
        .unwrap();
    let refused = app
        .post(
            "/v1/usage/events",
            Some(&key),
            usage_event("requests", 1, "after-trial"),
        )
        .await
        .problem(402);
    assert_eq!(refused.body["type"], "/problems/trial-ended");
    assert_eq!(refused.body["code"], "trial_ended");
    assert!(
        refused.body["upgrade_to"]["id"].is_string(),
        "{}",
        refused.body
    );
    let _ = paid;
}

/// One request from the `requests` bucket: the check's answer for it.
async fn take_one(instance: &TestApp, key: &str) -> Value {
    instance
        .post(
            "/v1/entitlements/check",
            Some(key),
            json!({"checks": [{"rate_bucket": "requests"}]}),
        )
        .await
        .expect(200)
        .body["results"][0]
        .clone()
}

/// A tenant on a fresh plan with `rate_limits`, its API key (read scope), and the plan.
async fn rated_tenant(app: &TestApp, admin: &Session, rates: Value) -> (Session, String, Value) {
    let made = plan(
        app,
        admin,
        json!({"name": "Rated", "price": "5.00", "currency": "USD", "billing_cycle": "monthly",
               "rate_limits": rates}),
    )
    .await;
    let owner = app.signup(&email("owner"), "Rated").await;
    let key = app.api_key(&owner.access, json!({"name": "backend"})).await;
    app.subscribe_with_card(&owner, made["id"].as_str().unwrap())
        .await;
    (owner, key, made)
}

#[tokio::test]
async fn a_rate_bucket_is_shared_by_instances_and_never_exceeded() {
    // The issue's measure: 1,000 requests from 16 clients through 2 instances against
    // 100 a minute. The clock stands still, so GCRA's bound is exactly the burst: 100.
    let app = TestApp::frozen_at("2026-03-01T12:00:00Z").await;
    let admin = app.platform_admin().await;
    let (_, key, made) = rated_tenant(
        &app,
        &admin,
        json!([{"bucket": "requests", "limit": 100, "per": "minute"},
               {"bucket": "requests", "limit": 1000, "per": "hour"}]),
    )
    .await;
    assert_eq!(
        made["rate_limits"][0]["per"], "minute",
        "sorted, tightest first"
    );
    let sibling = app.sibling();
    let clients: Vec<_> = (0..16)
        .map(|client| {
            let instance = if client % 2 == 0 { &app } else { &sibling };
            let key = key.clone();
            async move {
                let mut admitted = 0u32;
                let mut retry_after = Vec::new();
                for _ in 0..(1000 / 16 + usize::from(client < 1000 % 16)) {
                    let result = &take_one(instance, &key).await;
                    if result["allowed"] == true {
                        assert_eq!(result["reason"], "within_rate");
                        assert_eq!(result["consumed"], true);
                        admitted += 1;
                    } else {
                        assert_eq!(result["reason"], "rate_limited");
                        assert_eq!(result["consumed"], false);
                        retry_after.push(result["retry_after_seconds"].as_u64().unwrap());
                    }
                }
                (admitted, retry_after)
            }
        })
        .collect();
    let outcomes = futures::future::join_all(clients).await;
    let admitted: u32 = outcomes.iter().map(|(a, _)| a).sum();
    assert_eq!(admitted, 100, "the burst, never more, never fewer");
    // The next permit is 0.6 s away (60 s / 100): "retry after 1 second", to the second.
    assert!(outcomes.iter().flat_map(|(_, r)| r).all(|&secs| secs == 1));
    app.clock.advance(chrono::Duration::seconds(1));
    // One second refills one permit (and 0.4 s toward the next), whichever instance asks.
    let first = take_one(&sibling, &key).await;
    assert_eq!(first["allowed"], true);
    let second = take_one(&app, &key).await;
    assert_eq!(second["allowed"], false);
    assert_eq!(second["retry_after_seconds"], 1);
    // The hour window counts too: 101 of its 1,000 taken.
    let listed = app.get("/v1/entitlements", Some(&key)).await.expect(200);
    let windows = &listed.body["rate_limits"][0]["windows"];
    assert_eq!(listed.body["rate_limits"][0]["bucket"], "requests");
    assert_eq!(windows[0]["remaining"], 0);
    assert_eq!(windows[1]["per"], "hour");
    assert_eq!(windows[1]["remaining"], 1000 - 101);
}

#[tokio::test]
async fn a_rate_check_tells_when_to_retry_to_the_second() {
    let app = TestApp::frozen_at("2026-03-01T12:00:00Z").await;
    let admin = app.platform_admin().await;
    // Three a minute: one every 20 s after a burst of three.
    let (_, key, _) = rated_tenant(
        &app,
        &admin,
        json!([{"bucket": "exports", "limit": 3, "per": "minute"}]),
    )
    .await;
    let check = |body: Value| {
        let (app, key) = (&app, key.clone());
        async move {
            app.post("/v1/entitlements/check", Some(&key), body)
                .await
                .expect(200)
                .body
        }
    };
    let two = check(json!({"checks": [{"rate_bucket": "exports", "cost": 2}]})).await;
    assert_eq!(two["results"][0]["remaining"], 1);
    assert_eq!(two["cache_for_seconds"], 0);
    let refused = check(json!({"checks": [{"rate_bucket": "exports", "cost": 2}]})).await;
    assert_eq!(refused["allowed"], false);
    assert_eq!(refused["results"][0]["retry_after_seconds"], 20);
    app.clock.advance(chrono::Duration::seconds(19));
    let early = check(json!({"checks": [{"rate_bucket": "exports", "cost": 2}]})).await;
    assert_eq!(early["results"][0]["retry_after_seconds"], 1);
    app.clock.advance(chrono::Duration::seconds(1));
    let on_time = check(json!({"checks": [{"rate_bucket": "exports", "cost": 2}]})).await;
    assert_eq!(on_time["allowed"], true);
    // More than the window holds is never admitted; a bucket the plan lacks is not in it.
    let never = check(json!({"checks": [{"rate_bucket": "exports", "cost": 4},
                                        {"rate_bucket": "uploads"}]}))
    .await;
    assert_eq!(never["results"][0]["reason"], "rate_limited");
    assert_eq!(never["results"][0]["retry_after_seconds"], Value::Null);
    assert_eq!(never["results"][1]["reason"], "not_in_plan");
    // A refusal is for its cost: with one permit free, two are refused and one is admitted.
    app.clock.advance(chrono::Duration::seconds(20));
    let two = check(json!({"checks": [{"rate_bucket": "exports", "cost": 2}]})).await;
    assert_eq!(two["results"][0]["retry_after_seconds"], 20);
    let one = check(json!({"checks": [{"rate_bucket": "exports"}]})).await;
    assert_eq!(one["results"][0]["allowed"], true, "{one}");
    // Bad shapes are 422s naming the field.
    for (body, field) in [
        (
            json!({"checks": [{"rate_bucket": "Exports"}]}),
            "checks[0].rate_bucket",
        ),
        (
            json!({"checks": [{"rate_bucket": "exports", "cost": 0}]}),
            "checks[0].cost",
        ),
        (
            json!({"checks": [{"metric": "api_calls", "cost": 2}]}),
            "checks[0].cost",
        ),
        (
            json!({"checks": [{"rate_bucket": "exports", "quantity": 2}]}),
            "checks[0].quantity",
        ),
        (
            json!({"checks": [{"rate_bucket": "exports", "feature": "x"}]}),
            "checks[0]",
        ),
    ] {
        let refused = app
            .post("/v1/entitlements/check", Some(&key), body)
            .await
            .problem(422);
        assert_eq!(refused.body["field"], field);
    }
    let bad_plan = app
        .post(
            "/v1/plans",
            Some(&admin.access),
            json!({"name": unique("Bad rates"), "price": "1.00", "currency": "USD",
                   "billing_cycle": "monthly",
                   "rate_limits": [{"bucket": "r", "limit": 1, "per": "minute"},
                                   {"bucket": "r", "limit": 2, "per": "minute"}]}),
        )
        .await
        .problem(422);
    assert_eq!(bad_plan.body["field"], "rate_limits[1].per");
}

#[tokio::test]
async fn the_plan_rate_for_our_own_api_answers_429_with_rate_limit_headers() {
    let app = TestApp::frozen_at("2026-03-01T12:00:00Z").await;
    let admin = app.platform_admin().await;
    let (owner, key, made) = rated_tenant(
        &app,
        &admin,
        json!([{"bucket": "eshtarek_api", "limit": 5, "per": "minute"}]),
    )
    .await;
    // Five calls, by key or token alike, each told what is left.
    for left in (0..5).rev() {
        let reply = if left % 2 == 0 {
            app.get("/v1/usage", Some(&key)).await
        } else {
            app.get("/v1/subscriptions/current", Some(&owner.access))
                .await
        };
        assert_eq!(
            reply.headers["ratelimit-policy"],
            "\"eshtarek_api_minute\";q=5;w=60"
        );
        let state = reply.headers["ratelimit"].to_str().unwrap();
        assert!(
            state.starts_with(&format!("\"eshtarek_api_minute\";r={left};t=")),
            "{state}"
        );
    }
    let refused = app.get("/v1/usage", Some(&key)).await.problem(429);
    assert_eq!(refused.body["code"], "plan_rate_limit");
    // One every 12 s after the burst.
    assert_eq!(refused.headers["retry-after"], "12");
    assert!(refused.headers["ratelimit"]
        .to_str()
        .unwrap()
        .contains(";r=0;"));
    // Shared by the instances; a call with no credentials, or a platform admin's, is not the
    // tenant's.
    app.sibling()
        .get("/v1/usage", Some(&owner.access))
        .await
        .problem(429);
    app.get("/healthz", None).await.expect(200);
    app.get(
        &format!("/v1/plans/{}", made["id"].as_str().unwrap()),
        Some(&admin.access),
    )
    .await
    .expect(200);
    app.clock.advance(chrono::Duration::seconds(12));
    app.get("/v1/usage", Some(&key)).await.expect(200);
}

#[tokio::test]
async fn a_revoked_key_takes_nothing_from_the_tenants_rates() {
    let app = TestApp::frozen_at("2026-03-01T12:00:00Z").await;
    let admin = app.platform_admin().await;
    let (owner, key, _) = rated_tenant(
        &app,
        &admin,
        json!([{"bucket": "eshtarek_api", "limit": 6, "per": "minute"},
               {"bucket": "requests", "limit": 5, "per": "minute"}]),
    )
    .await;
    // This instance knows the key (one API call), then it is revoked on another.
    app.get("/v1/usage", Some(&key)).await.expect(200);
    let other = app.sibling();
    let keys = other
        .get("/v1/api-keys", Some(&owner.access))
        .await
        .expect(200)
        .body;
    let id = keys["data"][0]["id"].as_str().unwrap().to_owned();
    other
        .delete(&format!("/v1/api-keys/{id}"), Some(&owner.access))
        .await
        .expect(204);
    // Refused here; the refusal drops the key from this instance's cache, so retrying it
    // does not keep eating the tenant's API rate (it has 6 a minute; 3 are used so far).
    for _ in 0..5 {
        app.get("/v1/usage", Some(&key)).await.problem(401);
    }
    // A consuming check with a rate bucket reads the key first: it takes nothing.
    app.post(
        "/v1/entitlements/check",
        Some(&key),
        json!({"checks": [{"metric": "api_calls"}, {"rate_bucket": "requests"}],
               "consume": true, "idempotency_key": "after-revocation"}),
    )
    .await
    .problem(401);
    // The owner still has the rest of the minute: 2 calls (the 4th was the refused key's
    // first, answered before the cache knew), then 429.
    app.get("/v1/subscriptions/current", Some(&owner.access))
        .await
        .expect(200);
    let listed = app
        .get("/v1/entitlements", Some(&owner.access))
        .await
        .expect(200);
    let requests = listed.body["rate_limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["bucket"] == "requests")
        .unwrap()
        .clone();
    assert_eq!(requests["windows"][0]["remaining"], 5, "{requests}");
    app.get("/v1/subscriptions/current", Some(&owner.access))
        .await
        .problem(429);
}
