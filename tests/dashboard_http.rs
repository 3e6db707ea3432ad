//! What the web dashboards read beyond the tenant APIs: the platform overview (counts by status,
//! MRR), tenant search, a platform admin's view of one tenant's usage and invoices, and the
//! built dashboard served at `/` with its security headers.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use eshtarek_core::auth::keys::KeySet;
use eshtarek_core::clock::TestClock;
use eshtarek_core::service::HttpApp;
use eshtarek_core::AppContext;
use eshtarek_tests::http::{Session, TestApp};
use serde_json::json;
use std::sync::Arc;
use tower::ServiceExt;

async fn plan(
    app: &TestApp,
    admin: &Session,
    name: &str,
    price: &str,
    cycle: &str,
    trial: u32,
) -> String {
    let body = json!({"name": name, "price": price, "currency": "USD", "billing_cycle": cycle, "trial_days": trial});
    let reply = app
        .post("/v1/plans", Some(&admin.access), body)
        .await
        .expect(201);
    reply.body["id"].as_str().unwrap().to_owned()
}

async fn subscribed(app: &TestApp, name: &str, plan_id: Option<&str>) -> Session {
    let owner = app
        .signup(
            &format!("{}@example.com", uuid::Uuid::new_v4().simple()),
            name,
        )
        .await;
    if let Some(plan_id) = plan_id {
        app.subscribe_with_card(&owner, plan_id).await;
    }
    owner
}

#[tokio::test]
async fn overview_counts_tenants_by_status_and_sums_mrr_exactly() {
    let app = TestApp::new().await;
    let admin = app.platform_admin().await;
    let monthly = plan(&app, &admin, "Monthly", "30.00", "monthly", 0).await;
    // 100.00 a year is 8.333… a month: summed exactly, rounded once (see below).
    let yearly = plan(&app, &admin, "Yearly", "100.00", "yearly", 0).await;
    let trial = plan(&app, &admin, "Trial", "50.00", "monthly", 14).await;
    // A seat price recurs too: 10.00 + 5.00 for the owner's seat.
    let seats = app
        .post(
            "/v1/plans",
            Some(&admin.access),
            json!({"name": "Seats", "price": "10.00", "currency": "USD", "billing_cycle": "monthly", "seats": {"unit_price": "5.00"}}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    subscribed(&app, "Seated", Some(&seats)).await;
    subscribed(&app, "Monthly One", Some(&monthly)).await;
    subscribed(&app, "Yearly One", Some(&yearly)).await;
    subscribed(&app, "Yearly Two", Some(&yearly)).await;
    subscribed(&app, "Trialing", Some(&trial)).await;
    let user = subscribed(&app, "Unsubscribed", None).await;

    let overview = app
        .get("/v1/admin/overview", Some(&admin.access))
        .await
        .expect(200)
        .body;
    assert_eq!(overview["tenants"], 6);
    assert_eq!(
        overview["subscriptions"],
        json!({"trialing": 1, "active": 4, "past_due": 0, "none": 1})
    );
    // 30 + 2 × 100/12 + 15 = 61.666… → 61.67; rounding each yearly one first would give 61.66.
    assert_eq!(
        overview["mrr"],
        json!([{"amount": "61.67", "currency": "USD"}])
    );
    assert_eq!(
        overview["plans"][0],
        json!({"plan_id": yearly, "subscriptions": 2})
    );
    assert_eq!(overview["plans"].as_array().unwrap().len(), 4);

    app.get("/v1/admin/overview", Some(&user.access))
        .await
        .problem(403);
    app.get("/v1/admin/overview", None).await.problem(401);
}

#[tokio::test]
async fn tenant_search_pages_through_matches_only() {
    let app = TestApp::new().await;
    let admin = app.platform_admin().await;
    for name in [
        "Blue Widgets",
        "Red Widgets",
        "Green Gadgets",
        "Navy WIDGETS",
        "Yellow Things",
    ] {
        subscribed(&app, name, None).await;
    }
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/v1/tenants?q=widgets&limit=2&cursor={c}"),
            None => "/v1/tenants?q=widgets&limit=2".to_owned(),
        };
        let page = app.get(&path, Some(&admin.access)).await.expect(200).body;
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 2, "a page never exceeds its limit: {page}");
        names.extend(data.iter().map(|t| t["name"].as_str().unwrap().to_owned()));
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert!(cursor.is_none(), "search pages end");
    // Newest first, case-insensitive.
    assert_eq!(names, ["Navy WIDGETS", "Red Widgets", "Blue Widgets"]);

    let long = "x".repeat(101);
    let reply = app
        .get(&format!("/v1/tenants?q={long}"), Some(&admin.access))
        .await
        .problem(422);
    assert_eq!(reply.body["field"], "q");
}

#[tokio::test]
async fn platform_admin_reads_one_tenants_usage_and_invoices() {
    let app = TestApp::new().await;
    let admin = app.platform_admin().await;
    let paid = plan(&app, &admin, "Paid", "30.00", "monthly", 0).await;
    let owner = subscribed(&app, "Acme", Some(&paid)).await;
    let other = subscribed(&app, "Other", Some(&paid)).await;
    let tenant = owner.tenant_id.clone().unwrap();

    let invoices = app
        .get(
            &format!("/v1/admin/tenants/{tenant}/invoices"),
            Some(&admin.access),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(invoices["data"].as_array().unwrap().len(), 1);
    assert_eq!(invoices["data"][0]["total"], "30.00");
    let own = app
        .get("/v1/invoices", Some(&owner.access))
        .await
        .expect(200)
        .body;
    assert_eq!(invoices["data"][0]["id"], own["data"][0]["id"]);
    let usage = app
        .get(
            &format!("/v1/admin/tenants/{tenant}/usage"),
            Some(&admin.access),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(usage["plan_id"], paid.as_str());

    // Tenant admins keep to their own endpoints, even for their own tenant.
    for path in [
        format!("/v1/admin/tenants/{tenant}/invoices"),
        format!("/v1/admin/tenants/{tenant}/usage"),
    ] {
        app.get(&path, Some(&owner.access)).await.problem(403);
        app.get(&path, Some(&other.access)).await.problem(403);
    }
    app.get("/v1/admin/tenants/ten_nope/invoices", Some(&admin.access))
        .await
        .problem(404);
}

async fn dashboard_app(dir: Option<&std::path::Path>) -> HttpApp {
    demo_app(dir, None).await
}

async fn demo_app(dir: Option<&std::path::Path>, demo: Option<&std::path::Path>) -> HttpApp {
    let ctx = AppContext::new(
        eshtarek_tests::stores::sqlite().await,
        Arc::new(TestClock::new()),
        KeySet::ephemeral(),
    );
    eshtarek::app_with_dashboard(ctx, dir, demo)
}

async fn fetch(app: &HttpApp, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

#[tokio::test]
async fn the_built_dashboard_is_served_at_the_root_with_a_strict_policy() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        "<!doctype html><div id=root></div>",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("assets/app-1234.js"), "console.log(1)").unwrap();
    let app = dashboard_app(Some(dir.path())).await;

    let (status, headers, body) = fetch(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("id=root"));
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    let (status, headers, _) = fetch(&app, "/assets/app-1234.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .contains("javascript"));
    // The API keeps its own answers: unknown paths are problem documents, not the app.
    let (status, headers, _) = fetch(&app, "/v1/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    let (status, _, _) = fetch(&app, "/assets/missing.js").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The sign-in page of a seeded run says where the demo accounts are: the file's path while it
/// exists, never its passwords; nothing without a seeded file.
#[tokio::test]
async fn a_seeded_run_says_where_its_demo_accounts_are() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("demo-credentials.txt");
    let app = demo_app(None, Some(&file)).await;
    assert_eq!(fetch(&app, "/demo.json").await.0, StatusCode::NOT_FOUND);
    std::fs::write(&file, "platform_admin admin@eshtarek.local s3cret-pass\n").unwrap();
    let (status, headers, body) = fetch(&app, "/demo.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let said: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(said["credentials_file"], file.display().to_string());
    assert!(!body.contains("s3cret"));
    let plain = dashboard_app(None).await;
    assert_eq!(fetch(&plain, "/demo.json").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_a_build_the_root_says_how_to_build_it() {
    let (status, _, body) = fetch(&dashboard_app(None).await, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("not built"), "{body}");
}

/// Found by schemathesis: a platform admin could subscribe a tenant id that names no tenant,
/// and a later override of that subscription failed with a 500.
#[tokio::test]
async fn admin_paths_naming_no_tenant_are_404() {
    let app = TestApp::new().await;
    let admin = app.platform_admin().await;
    let plan_id = plan(&app, &admin, "Paid", "30.00", "monthly", 0).await;
    let ghost = "ten_0123456789abcdef0123456789abcdef";
    app.post(
        "/v1/subscriptions",
        Some(&admin.access),
        json!({"plan_id": plan_id, "tenant_id": ghost}),
    )
    .await
    .problem(404);
    app.patch(
        &format!("/v1/admin/tenants/{ghost}/subscription"),
        Some(&admin.access),
        json!({"plan_id": plan_id, "reason": "test"}),
    )
    .await
    .problem(404);
    for path in [
        format!("/v1/admin/tenants/{ghost}/subscription"),
        format!("/v1/admin/tenants/{ghost}/usage"),
        format!("/v1/admin/tenants/{ghost}/invoices"),
        format!("/v1/tenants/{ghost}/members"),
    ] {
        app.get(&path, Some(&admin.access)).await.problem(404);
    }
    // Nothing was written for the ghost.
    let overview = app
        .get("/v1/admin/overview", Some(&admin.access))
        .await
        .expect(200)
        .body;
    assert_eq!(overview["tenants"], 0);
    assert_eq!(overview["plans"], json!([]));
}
