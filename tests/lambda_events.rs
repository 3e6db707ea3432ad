//! The HTTP functions' Lambda entry path, fed the sample API Gateway HTTP API (v2) events in
//! `events/`: the event is decoded as `lambda_http` decodes it, served by the function's app
//! exactly as its `main.rs` serves it, and the Lambda response is checked.

use eshtarek_core::lambda::http_app;
use eshtarek_core::service::HttpApp;
use eshtarek_tests::http::TestApp;
use lambda_http::request::LambdaRequest;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};
use tower::{Service, ServiceExt};

struct Answer {
    status: u16,
    content_type: String,
    body: Value,
}

/// Invokes `router` (as its Lambda would) with the sample event `event`, after filling in the
/// placeholders (`<token>`, `<plan_id>`).
async fn invoke(router: HttpApp, event: &str, fill: &[(&str, &str)]) -> Answer {
    let mut text = event.to_owned();
    for (placeholder, value) in fill {
        text = text.replace(placeholder, value);
    }
    let request: LambdaRequest = serde_json::from_str(&text).expect("an API Gateway v2 event");
    let mut adapter = lambda_http::Adapter::from(router);
    let response = adapter
        .ready()
        .await
        .unwrap()
        .call(LambdaEvent::new(request, Context::default()))
        .await
        .unwrap();
    let response = serde_json::to_value(&response).unwrap();
    let body = response["body"].as_str().unwrap_or_default();
    Answer {
        status: response["statusCode"].as_u64().unwrap() as u16,
        content_type: response["headers"]["content-type"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body: if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(body).expect("a JSON body")
        },
    }
}

#[tokio::test]
async fn sample_api_gateway_events_through_each_functions_lambda_app() {
    let app = TestApp::new().await;
    let ctx = &app.ctx;
    let auth = || http_app(ctx, eshtarek_auth::router(ctx.clone()));

    let health = invoke(auth(), include_str!("../events/auth-health.json"), &[]).await;
    assert_eq!(health.status, 200, "{:?}", health.body);

    let registered = invoke(auth(), include_str!("../events/auth-register.json"), &[]).await;
    assert_eq!(registered.status, 201, "{:?}", registered.body);
    let token = registered.body["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The same event again: the email is taken.
    let again = invoke(auth(), include_str!("../events/auth-register.json"), &[]).await;
    assert_eq!(again.status, 409);
    assert_eq!(again.content_type, "application/problem+json");

    // A plan with a usage limit, made by a platform admin.
    let admin = app.platform_admin().await;
    let policy = app
        .post("/v1/limit-policies", Some(&admin.access), json!({"metric": "api_calls", "limit": 1000, "reset_period": "month", "enforcement": "hard"}))
        .await
        .expect(201);
    let plan = app
        .post("/v1/plans", Some(&admin.access), json!({"name": "Free", "price": "0", "currency": "USD", "billing_cycle": "monthly", "limit_policy_ids": [policy.body["id"]]}))
        .await
        .expect(201);
    let plan_id = plan.body["id"].as_str().unwrap();

    let plans = invoke(
        http_app(ctx, eshtarek_plans::router(ctx.clone())),
        include_str!("../events/plans-list.json"),
        &[("<token>", &token)],
    )
    .await;
    assert_eq!(plans.status, 200, "{:?}", plans.body);
    assert!(plans.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["id"] == plan_id));

    let subscribed = invoke(
        http_app(ctx, eshtarek_subscriptions::router(ctx.clone())),
        include_str!("../events/subscriptions-create.json"),
        &[("<token>", &token), ("<plan_id>", plan_id)],
    )
    .await;
    assert_eq!(subscribed.status, 201, "{:?}", subscribed.body);

    let usage = || http_app(ctx, eshtarek_usage::router(ctx.clone()));
    let event = include_str!("../events/usage-event.json");
    let counted = invoke(usage(), event, &[("<token>", &token)]).await;
    assert_eq!(counted.status, 200, "{:?}", counted.body);
    assert_eq!(counted.body["used"], 1);
    // Redelivered: the idempotency key answers with the first result and counts nothing.
    let replayed = invoke(usage(), event, &[("<token>", &token)]).await;
    assert_eq!(replayed.body, counted.body);

    let invoices = invoke(
        http_app(ctx, eshtarek_billing::router(ctx.clone())),
        include_str!("../events/billing-invoices.json"),
        &[("<token>", &token)],
    )
    .await;
    assert_eq!(invoices.status, 200, "{:?}", invoices.body);
    let listed = invoices.body["data"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "the first period's invoice");
    assert_eq!(listed[0]["total"], "0.00");
    assert_eq!(listed[0]["status"], "paid");

    // Without a token, and on a route the function does not serve: problems, not 500s.
    let anonymous = invoke(usage(), event, &[("Bearer <token>", "")]).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.content_type, "application/problem+json");
    let elsewhere = invoke(
        usage(),
        &event.replace("/v1/usage/events", "/v1/usage/nowhere"),
        &[("<token>", &token)],
    )
    .await;
    assert_eq!(elsewhere.status, 404);
    assert_eq!(elsewhere.content_type, "application/problem+json");
}
