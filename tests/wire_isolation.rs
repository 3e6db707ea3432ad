//! Issue 18's wire-level isolation test: a tenant's whole life on DynamoDB (moto) with token
//! vending on, every DynamoDB request checked as it leaves the SDK (`support/wire.rs`): each one
//! naming a `TENANT#<a>#` key is signed with credentials vended for `a`, none names two tenants,
//! and the function's own key names no tenant key at all.

use chrono::Duration;
use eshtarek_core::jobs::{self, JobName, RunLimits};
use eshtarek_core::store::Key;

use eshtarek_tests::fixtures::{email, Metered};
use eshtarek_tests::{stores, wire};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenant_request_is_signed_by_its_tenant() {
    // Plans and policies (platform), signup, card, subscription, API key (Metered's setup).
    let m = Metered::on(stores::dynamodb().await, "2026-03-01T00:00:00Z").await;
    let app = &m.app;
    let tenant = m.owner.tenant_id.clone().unwrap();
    // Usage by key: the first read of the key, then the cached key's guard in the event's
    // transaction; a report.
    for i in 0..3 {
        app.post(
            "/v1/usage/events",
            Some(&m.key),
            json!({"metric": "api_calls", "quantity": 1, "idempotency_key": format!("w{i}")}),
        )
        .await
        .expect(200);
    }
    app.get("/v1/usage", Some(&m.key)).await.expect(200);
    // A member invited and joining by the mailed link; promoted; removed.
    let member_email = email("wire-member");
    let member = app
        .add_member(&m.owner, &tenant, &member_email, "tenant_user")
        .await;
    app.get("/v1/auth/me", Some(&member.access))
        .await
        .expect(200);
    let members = format!("/v1/tenants/{tenant}/members/{}", member.user_id);
    app.patch(
        &members,
        Some(&m.owner.access),
        json!({"role": "tenant_admin"}),
    )
    .await
    .expect(200);
    app.delete(&members, Some(&m.owner.access))
        .await
        .expect(204);
    // A plan change, invoices, events, the audit log.
    let current = app
        .get("/v1/subscriptions/current", Some(&m.owner.access))
        .await
        .expect(200);
    let sub_id = current.body["id"]
        .as_str()
        .expect("a subscription")
        .to_owned();
    app.post(
        &format!("/v1/subscriptions/{sub_id}/change"),
        Some(&m.owner.access),
        json!({"plan_id": m.large, "effective": "now"}),
    )
    .await
    .expect(200);
    app.get("/v1/invoices", Some(&m.owner.access))
        .await
        .expect(200);
    app.get("/v1/events", Some(&m.owner.access))
        .await
        .expect(200);
    // The platform admin acting on the tenant: suspension (key marks), reactivation, listings.
    let admin = app.platform_admin().await;
    let tenant_path = format!("/v1/tenants/{tenant}");
    for status in ["suspended", "active"] {
        app.patch(&tenant_path, Some(&admin.access), json!({"status": status}))
            .await
            .expect(200);
    }
    app.get("/v1/tenants", Some(&admin.access))
        .await
        .expect(200);
    app.get("/v1/admin/overview", Some(&admin.access))
        .await
        .expect(200);
    // The scheduled jobs, a month on: renewals, expiry, warnings.
    let now = app.clock.advance(Duration::days(32));
    for job in JobName::ALL {
        jobs::run(&app.ctx, job, now, RunLimits::default())
            .await
            .expect("job runs");
    }
    // The key revoked (signed in again: the clock moved past the tokens).
    let owner = app.login(&m.owner_email, Some(&tenant)).await;
    let keys = app
        .get("/v1/api-keys", Some(&owner.access))
        .await
        .expect(200);
    let key_id = keys.body["data"][0]["id"]
        .as_str()
        .expect("a key")
        .to_owned();
    app.delete(&format!("/v1/api-keys/{key_id}"), Some(&owner.access))
        .await
        .expect(204);

    assert_eq!(wire::violations(), Vec::<String>::new());
    let seen = wire::seen();
    let by_tenant = seen.iter().filter(|s| s.tenants.contains(&tenant)).count();
    let vended = seen
        .iter()
        .filter(|s| s.signer.as_deref() == Some(tenant.as_str()))
        .count();
    let transactions = seen
        .iter()
        .filter(|s| s.operation == "TransactWriteItems" && s.signer.as_deref() == Some(&tenant))
        .count();
    assert!(
        by_tenant > 50,
        "the scenario reached the tenant's items ({by_tenant} requests)"
    );
    assert_eq!(
        vended, by_tenant,
        "every one signed by the tenant's vended key"
    );
    assert!(transactions > 5, "transactions too ({transactions})");
    eprintln!(
        "{} DynamoDB requests, {by_tenant} naming the tenant's keys (all vended), {transactions} \
         of them transactions",
        seen.len()
    );
}

/// The check itself refuses what the rule forbids: the function's own client reading a
/// tenant's item.
#[tokio::test]
async fn the_check_refuses_a_tenant_key_under_the_function_key() {
    let raw = stores::dynamodb().await;
    let read = raw.get(&Key::new("TENANT#acme#META", "TENANT")).await;
    assert!(read.is_err(), "refused on the wire");
    let violations = wire::violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(
        violations[0].contains("another principal"),
        "{violations:?}"
    );
}
