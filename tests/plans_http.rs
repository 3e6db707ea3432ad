//! Plans, immutable versions, limit policies and the audit log, over HTTP.

use eshtarek_tests::http::{Session, TestApp};
use serde_json::{json, Value};

fn email(tag: &str) -> String {
    format!("{tag}-{}@example.com", uuid::Uuid::new_v4().simple())
}

async fn policy(
    app: &TestApp,
    admin: &Session,
    metric: &str,
    limit: Value,
    reset: &str,
    enforcement: &str,
) -> String {
    app.post(
        "/v1/limit-policies",
        Some(&admin.access),
        json!({"metric": metric, "limit": limit, "reset_period": reset, "enforcement": enforcement}),
    )
    .await
    .expect(201)
    .body["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn plan(app: &TestApp, admin: &Session, name: &str, price: &str, policies: &[&str]) -> Value {
    app.post(
        "/v1/plans",
        Some(&admin.access),
        json!({"name": name, "description": "d", "price": price, "currency": "usd", "billing_cycle": "monthly",
               "trial_days": 14, "limit_policy_ids": policies}),
    )
    .await
    .expect(201)
    .body
}

#[tokio::test]
async fn limit_policies_are_validated_and_platform_only() {
    let app = TestApp::new().await;
    let admin = app.platform_admin().await;
    let created = app
        .post(
            "/v1/limit-policies",
            Some(&admin.access),
            json!({"metric": "api_calls", "limit": 1000, "reset_period": "month", "enforcement": "hard", "description": "API calls"}),
        )
        .await
        .expect(201);
    assert_eq!(created.body["metric"], "api_calls");
    assert_eq!(created.body["limit"], 1000);
    assert_eq!(created.body["warning_thresholds"], json!([80, 100]));
    let id = created.body["id"].as_str().unwrap();
    let unlimited = app
        .post(
            "/v1/limit-policies",
            Some(&admin.access),
            json!({"metric": "storage_mb", "limit": null, "reset_period": "none", "enforcement": "soft", "warning_thresholds": [100, 50]}),
        )
        .await
        .expect(201);
    assert_eq!(unlimited.body["limit"], Value::Null);
    assert_eq!(unlimited.body["warning_thresholds"], json!([50, 100]));

    let bad = [
        (
            json!({"metric": "API calls", "limit": 1, "reset_period": "month", "enforcement": "hard"}),
            "metric",
        ),
        (
            json!({"metric": "x", "limit": -1, "reset_period": "month", "enforcement": "hard"}),
            "limit",
        ),
        (
            json!({"metric": "x", "limit": 1, "reset_period": "week", "enforcement": "hard"}),
            "reset_period",
        ),
        (
            json!({"metric": "x", "limit": 1, "reset_period": "day", "enforcement": "strict"}),
            "enforcement",
        ),
        (
            json!({"metric": "x", "limit": 1, "reset_period": "day", "enforcement": "hard", "warning_thresholds": [0]}),
            "warning_thresholds",
        ),
    ];
    for (body, field) in bad {
        let reply = app
            .post("/v1/limit-policies", Some(&admin.access), body.clone())
            .await
            .problem(422);
        assert_eq!(reply.body["field"], field, "{body}");
    }
    let patched = app
        .patch(
            &format!("/v1/limit-policies/{id}"),
            Some(&admin.access),
            json!({"limit": 2000}),
        )
        .await
        .expect(200);
    assert_eq!(patched.body["limit"], 2000);
    assert_eq!(patched.body["metric"], "api_calls");
    let listed = app
        .get("/v1/limit-policies", Some(&admin.access))
        .await
        .expect(200);
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 2);

    let owner = app.signup(&email("o"), "Acme").await;
    let tenant = owner.tenant_id.clone().unwrap();
    let user = app
        .add_member(&owner, &tenant, &email("u"), "tenant_user")
        .await;
    for who in [&owner, &user] {
        app.post(
            "/v1/limit-policies",
            Some(&who.access),
            json!({"metric": "x", "limit": 1, "reset_period": "day", "enforcement": "hard"}),
        )
        .await
        .problem(403);
        app.patch(
            &format!("/v1/limit-policies/{id}"),
            Some(&who.access),
            json!({"limit": 1}),
        )
        .await
        .problem(403);
        app.get("/v1/limit-policies", Some(&who.access))
            .await
            .problem(403);
    }
}

#[tokio::test]
async fn plans_are_validated_field_by_field() {
    let app = TestApp::new().await;
    let admin = app.platform_admin().await;
    let calls = policy(&app, &admin, "api_calls", json!(1000), "month", "hard").await;
    let calls_again = policy(&app, &admin, "api_calls", json!(5000), "month", "soft").await;
    let created = plan(&app, &admin, "Pro", "30", &[&calls]).await;
    assert_eq!(created["price"], "30.00");
    assert_eq!(created["currency"], "USD");
    assert_eq!(created["current_version"], 1);
    assert_eq!(created["active"], true);
    assert_eq!(created["limits"][0]["metric"], "api_calls");
    assert_eq!(created["limits"][0]["limit"], 1000);

    let base =
        json!({"name": "X", "price": "10.00", "currency": "USD", "billing_cycle": "monthly"});
    let with = |key: &str, value: Value| {
        let mut body = base.clone();
        body[key] = value;
        body
    };
    let cases = [
        (with("price", json!("-1.00")), "price"),
        (with("price", json!("10.001")), "price"),
        (with("price", json!(10.5)), "price"),
        (with("currency", json!("XYZ")), "currency"),
        (with("billing_cycle", json!("weekly")), "billing_cycle"),
        (with("trial_days", json!(400)), "trial_days"),
        (with("duration_cycles", json!(0)), "duration_cycles"),
        (
            with("limit_policy_ids", json!([calls, calls_again])),
            "limit_policy_ids",
        ),
        (
            with("limit_policy_ids", json!(["pol_nope"])),
            "limit_policy_ids",
        ),
        (with("name", json!("")), "name"),
    ];
    for (body, field) in cases {
        let reply = app
            .post("/v1/plans", Some(&admin.access), body.clone())
            .await
            .problem(422);
        assert_eq!(reply.body["field"], field, "{body}: {}", reply.body);
    }
    let dup = app
        .post("/v1/plans", Some(&admin.access), with("name", json!("pro")))
        .await
        .problem(409);
    assert_eq!(dup.body["field"], "name");
    // Zero-decimal currencies take whole amounts only.
    let yen = app
        .post(
            "/v1/plans",
            Some(&admin.access),
            json!({"name": "Yen", "price": "500", "currency": "JPY", "billing_cycle": "yearly"}),
        )
        .await
        .expect(201);
    assert_eq!(yen.body["price"], "500");
    app.post(
        "/v1/plans",
        Some(&admin.access),
        json!({"name": "Yen2", "price": "500.5", "currency": "JPY", "billing_cycle": "yearly"}),
    )
    .await
    .problem(422);
}

/// A subscription keeps the version it bought: editing the plan makes a new version and
/// leaves the old one exactly as it was; editing a policy changes no existing version.
#[tokio::test]
async fn editing_a_plan_never_changes_an_existing_version() {
    let app = TestApp::new().await;
    let admin = app.platform_admin().await;
    let calls = policy(&app, &admin, "api_calls", json!(1000), "month", "hard").await;
    let seats = policy(&app, &admin, "max_users", json!(5), "none", "hard").await;
    let created = plan(&app, &admin, "Pro", "30.00", &[&calls, &seats]).await;
    let id = created["id"].as_str().unwrap();
    let v1_path = format!("/v1/plans/{id}/versions/1");
    let v1 = app
        .get(&v1_path, Some(&admin.access))
        .await
        .expect(200)
        .body;

    // Cosmetic edit: no new version.
    let cosmetic = app
        .patch(
            &format!("/v1/plans/{id}"),
            Some(&admin.access),
            json!({"description": "Best value"}),
        )
        .await
        .expect(200);
    assert_eq!(cosmetic.body["current_version"], 1);
    assert_eq!(cosmetic.body["description"], "Best value");

    // Price edit: version 2 becomes current.
    let edited = app
        .patch(
            &format!("/v1/plans/{id}"),
            Some(&admin.access),
            json!({"price": "45.00"}),
        )
        .await
        .expect(200);
    assert_eq!(edited.body["current_version"], 2);
    assert_eq!(edited.body["price"], "45.00");
    assert_eq!(
        app.get(&v1_path, Some(&admin.access))
            .await
            .expect(200)
            .body,
        v1,
        "version 1 unchanged"
    );

    // A policy edit changes no version…
    app.patch(
        &format!("/v1/limit-policies/{calls}"),
        Some(&admin.access),
        json!({"limit": 9999}),
    )
    .await
    .expect(200);
    assert_eq!(
        app.get(&v1_path, Some(&admin.access))
            .await
            .expect(200)
            .body,
        v1
    );
    let v2 = app
        .get(&format!("/v1/plans/{id}/versions/2"), Some(&admin.access))
        .await
        .expect(200)
        .body;
    assert_eq!(
        v2["limits"][0]["limit"], 1000,
        "version 2 snapshotted the old limit"
    );
    // …until the plan takes the policies again, which snapshots them into version 3.
    let retaken = app
        .patch(
            &format!("/v1/plans/{id}"),
            Some(&admin.access),
            json!({"limit_policy_ids": [calls, seats]}),
        )
        .await
        .expect(200);
    assert_eq!(retaken.body["current_version"], 3);
    assert_eq!(retaken.body["limits"][0]["limit"], 9999);
    // Changing nothing versioned with the same values makes no version.
    let same = app
        .patch(
            &format!("/v1/plans/{id}"),
            Some(&admin.access),
            json!({"price": "45", "billing_cycle": "monthly"}),
        )
        .await
        .expect(200);
    assert_eq!(same.body["current_version"], 3);
    let versions = app
        .get(&format!("/v1/plans/{id}/versions"), Some(&admin.access))
        .await
        .expect(200);
    let numbers: Vec<i64> = versions.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert_eq!(versions.body["data"][0]["price"], "30.00");
}

#[tokio::test]
async fn pricing_page_shows_active_plans_without_sign_in() {
    let app = TestApp::new().await;
    let admin = app.platform_admin().await;
    let free = plan(&app, &admin, "Free", "0", &[]).await;
    let pro = plan(&app, &admin, "Pro", "29.00", &[]).await;
    let pro_id = pro["id"].as_str().unwrap();
    app.post(
        &format!("/v1/plans/{pro_id}/deactivate"),
        Some(&admin.access),
        json!({}),
    )
    .await
    .expect(200);

    let public = app.get("/v1/plans", None).await.expect(200);
    let names: Vec<&str> = public.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Free"]);
    assert_eq!(public.body["data"][0]["price"], "0.00");
    app.get(&format!("/v1/plans/{pro_id}"), None)
        .await
        .problem(404);
    let owner = app.signup(&email("o"), "Acme").await;
    let as_tenant = app.get("/v1/plans", Some(&owner.access)).await.expect(200);
    assert_eq!(as_tenant.body["data"].as_array().unwrap().len(), 1);
    let as_admin = app.get("/v1/plans", Some(&admin.access)).await.expect(200);
    assert_eq!(as_admin.body["data"].as_array().unwrap().len(), 2);
    // A bad token on a public endpoint is still a 401, not an anonymous view.
    app.get("/v1/plans", Some("garbage")).await.problem(401);

    app.post(
        &format!("/v1/plans/{pro_id}/activate"),
        Some(&admin.access),
        json!({}),
    )
    .await
    .expect(200);
    assert_eq!(
        app.get("/v1/plans", None).await.expect(200).body["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(free["active"], true);
}

#[tokio::test]
async fn tenants_cannot_write_plans() {
    let app = TestApp::new().await;
    let admin = app.platform_admin().await;
    let created = plan(&app, &admin, "Pro", "29.00", &[]).await;
    let id = created["id"].as_str().unwrap();
    let owner = app.signup(&email("o"), "Acme").await;
    let tenant = owner.tenant_id.clone().unwrap();
    let user = app
        .add_member(&owner, &tenant, &email("u"), "tenant_user")
        .await;
    for who in [&owner, &user] {
        let t = Some(who.access.as_str());
        app.post(
            "/v1/plans",
            t,
            json!({"name": "Mine", "price": "1", "currency": "USD", "billing_cycle": "monthly"}),
        )
        .await
        .problem(403);
        app.patch(&format!("/v1/plans/{id}"), t, json!({"price": "0"}))
            .await
            .problem(403);
        app.post(&format!("/v1/plans/{id}/deactivate"), t, json!({}))
            .await
            .problem(403);
        app.post(&format!("/v1/plans/{id}/activate"), t, json!({}))
            .await
            .problem(403);
        app.delete(&format!("/v1/plans/{id}"), t).await.problem(403);
        app.get(&format!("/v1/plans/{id}/versions"), t)
            .await
            .problem(403);
    }
    app.post(
        "/v1/plans",
        None,
        json!({"name": "Anon", "price": "1", "currency": "USD", "billing_cycle": "monthly"}),
    )
    .await
    .problem(401);
    let after = app.get(&format!("/v1/plans/{id}"), None).await.expect(200);
    assert_eq!(after.body["price"], "29.00");
    assert_eq!(after.body["current_version"], 1);
}

#[tokio::test]
async fn deleting_a_plan_in_use_is_refused() {
    let app = TestApp::new().await;
    let admin = app.platform_admin().await;
    let used = plan(&app, &admin, "Used", "10.00", &[]).await;
    let used_id = used["id"].as_str().unwrap();
    // A tenant's live subscription (indexed under the plan from the tenant's own side) keeps
    // the plan from being deleted; once it has ended, the plan can go.
    let owner = app.signup(&email("deluser"), "Delete Co").await;
    let sub = app.subscribe_with_card(&owner, used_id).await;
    app.delete(&format!("/v1/plans/{used_id}"), Some(&admin.access))
        .await
        .problem(409);
    app.get(&format!("/v1/plans/{used_id}"), None)
        .await
        .expect(200);
    let sub_id = sub["subscription"]["id"].as_str().unwrap();
    app.post(
        &format!("/v1/subscriptions/{sub_id}/cancel"),
        Some(&owner.access),
        json!({"at_period_end": false}),
    )
    .await
    .expect(200);
    app.delete(&format!("/v1/plans/{used_id}"), Some(&admin.access))
        .await
        .expect(204);

    let unused = plan(&app, &admin, "Unused", "10.00", &[]).await;
    let unused_id = unused["id"].as_str().unwrap();
    app.delete(&format!("/v1/plans/{unused_id}"), Some(&admin.access))
        .await
        .expect(204);
    app.get(&format!("/v1/plans/{unused_id}"), Some(&admin.access))
        .await
        .problem(404);
    // Its name is free again.
    plan(&app, &admin, "Unused", "12.00", &[]).await;
}

#[tokio::test]
async fn concurrent_edits_of_one_plan_let_exactly_one_win() {
    let app = std::sync::Arc::new(TestApp::new().await);
    let admin = app.platform_admin().await;
    let created = plan(&app, &admin, "Pro", "29.00", &[]).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let edits = (0..6).map(|i| {
        let app = app.clone();
        let token = admin.access.clone();
        let id = id.clone();
        tokio::spawn(async move {
            app.patch(
                &format!("/v1/plans/{id}"),
                Some(&token),
                json!({"price": format!("{}.00", 30 + i)}),
            )
            .await
            .status
            .as_u16()
        })
    });
    let statuses: Vec<u16> = futures::future::join_all(edits)
        .await
        .into_iter()
        .map(|s| s.unwrap())
        .collect();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 409),
        "{statuses:?}"
    );
    let wins = statuses.iter().filter(|s| **s == 200).count();
    let current = app
        .get(&format!("/v1/plans/{id}"), None)
        .await
        .expect(200)
        .body["current_version"]
        .as_i64()
        .unwrap();
    assert_eq!(
        current as usize,
        1 + wins,
        "every win made exactly one version: {statuses:?}"
    );
    assert!(wins >= 1);
}

#[tokio::test]
async fn every_change_is_audited_and_the_log_is_append_only() {
    let app = TestApp::new().await;
    let admin = app.platform_admin().await;
    let calls = policy(&app, &admin, "api_calls", json!(10), "day", "hard").await;
    let created = plan(&app, &admin, "Pro", "29.00", &[&calls]).await;
    let id = created["id"].as_str().unwrap();
    app.patch(
        &format!("/v1/plans/{id}"),
        Some(&admin.access),
        json!({"price": "39.00"}),
    )
    .await
    .expect(200);
    app.post(
        &format!("/v1/plans/{id}/deactivate"),
        Some(&admin.access),
        json!({}),
    )
    .await
    .expect(200);
    app.patch(
        &format!("/v1/limit-policies/{calls}"),
        Some(&admin.access),
        json!({"limit": 20}),
    )
    .await
    .expect(200);

    let plan_log = app
        .get(
            &format!("/v1/audit-log?resource_type=plan&resource_id={id}"),
            Some(&admin.access),
        )
        .await
        .expect(200);
    let actions: Vec<&str> = plan_log.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["plan.deactivated", "plan.version_created", "plan.created"],
        "newest first"
    );
    let version_event = &plan_log.body["data"][1];
    assert_eq!(version_event["before"]["price"], "29.00");
    assert_eq!(version_event["after"]["price"], "39.00");
    assert_eq!(version_event["actor_id"], admin.user_id.as_str());
    assert_eq!(version_event["actor_role"], "platform_admin");

    // Filters are short ids: a long one is a 422 naming it, not an empty page.
    let long = "a".repeat(65);
    for (query, field) in [
        (
            format!("resource_type=plan&resource_id={long}"),
            "resource_id",
        ),
        (format!("tenant_id={long}"), "tenant_id"),
    ] {
        let reply = app
            .get(&format!("/v1/audit-log?{query}"), Some(&admin.access))
            .await
            .problem(422);
        assert_eq!(reply.body["field"], field);
    }

    let all = app
        .get("/v1/audit-log?limit=100", Some(&admin.access))
        .await
        .expect(200);
    let all_actions: Vec<&str> = all.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "limit_policy.created",
        "limit_policy.updated",
        "plan.created",
        "plan.version_created",
        "plan.deactivated",
    ] {
        assert!(
            all_actions.contains(&action),
            "{action} missing from {all_actions:?}"
        );
    }
    // Time filter: nothing before the first event, everything from it on.
    let first_at = all.body["data"].as_array().unwrap().last().unwrap()["at"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = app
        .get(&format!("/v1/audit-log?to={first_at}"), Some(&admin.access))
        .await
        .expect(200);
    assert_eq!(before.body["data"].as_array().unwrap().len(), 0);
    app.get("/v1/audit-log?from=yesterday", Some(&admin.access))
        .await
        .problem(422);

    // No endpoint changes or deletes an event.
    let event_id = version_event["id"].as_str().unwrap();
    for path in [
        "/v1/audit-log".to_owned(),
        format!("/v1/audit-log/{event_id}"),
    ] {
        for reply in [
            app.post(&path, Some(&admin.access), json!({})).await,
            app.patch(&path, Some(&admin.access), json!({"action": "forged"}))
                .await,
            app.delete(&path, Some(&admin.access)).await,
        ] {
            assert!(
                reply.status == 404 || reply.status == 405,
                "{path}: {}",
                reply.status
            );
        }
    }
    let again = app
        .get(
            &format!("/v1/audit-log?resource_type=plan&resource_id={id}"),
            Some(&admin.access),
        )
        .await
        .expect(200);
    assert_eq!(again.body, plan_log.body);

    // Tenant admins see their own tenant's events only; tenant users none.
    let owner = app.signup(&email("o"), "Acme").await;
    let tenant = owner.tenant_id.clone().unwrap();
    let user = app
        .add_member(&owner, &tenant, &email("u"), "tenant_user")
        .await;
    let own = app
        .get("/v1/audit-log", Some(&owner.access))
        .await
        .expect(200);
    let own_events = own.body["data"].as_array().unwrap();
    assert_eq!(own_events.len(), 2, "{}", own.body);
    let mut actions: Vec<_> = own_events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    actions.sort();
    assert_eq!(actions, ["member.invited", "member.joined"]);
    for event in own_events {
        assert_eq!(event["tenant_id"], tenant.as_str());
        assert_eq!(event["after"]["role"], "tenant_user");
    }
    app.get("/v1/audit-log", Some(&user.access))
        .await
        .problem(403);
    let other = app.signup(&email("x"), "Other").await.tenant_id.unwrap();
    app.get(
        &format!("/v1/audit-log?tenant_id={other}"),
        Some(&owner.access),
    )
    .await
    .problem(404);
}
