//! HTTP hygiene on every function: body cap, timeout, security headers, CORS for the
//! dashboard's origin only — all answered with problem documents where they refuse.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use eshtarek_core::hardening::MAX_BODY_BYTES;
use eshtarek_tests::http::TestApp;
use serde_json::json;
use tower::ServiceExt;

#[tokio::test]
async fn an_oversized_body_is_a_413_problem_with_or_without_an_idempotency_key() {
    let app = TestApp::new().await;
    let padding = "x".repeat(MAX_BODY_BYTES + 1);
    let body = json!({"email": "a@example.com", "password": padding}).to_string();
    for key in [None, Some("big-1")] {
        let mut request =
            Request::post("/v1/auth/register").header(header::CONTENT_TYPE, "application/json");
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let reply = app
            .send(request.body(Body::from(body.clone())).unwrap())
            .await;
        assert_eq!(
            reply.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{:?}",
            reply.body
        );
        assert_eq!(
            reply.headers[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert_eq!(reply.body["status"], 413);
    }
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = TestApp::new().await;
    for path in ["/healthz", "/v1/auth/me", "/nowhere"] {
        let reply = app.get(path, None).await;
        assert_eq!(reply.headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(reply.headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(reply.headers["referrer-policy"], "no-referrer", "{path}");
        assert!(
            reply.headers.contains_key("strict-transport-security"),
            "{path}"
        );
    }
}

fn preflight(origin: &str) -> Request<Body> {
    Request::builder()
        .method(Method::OPTIONS)
        .uri("/v1/auth/me")
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn cors_answers_the_dashboard_origin_only() {
    let app = TestApp::new().await;
    // Default: same-origin only, no CORS headers for anyone.
    let none = app.send(preflight("https://dash.example.com")).await;
    assert!(!none.headers.contains_key("access-control-allow-origin"));

    let mut ctx = app.ctx.clone();
    ctx.state_mut().http.cors_origins = vec![HeaderValue::from_static("https://dash.example.com")];
    let router = eshtarek::app(ctx);
    let allowed = router
        .clone()
        .oneshot(preflight("https://dash.example.com"))
        .await
        .unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://dash.example.com"
    );
    let other = router
        .oneshot(preflight("https://evil.example.com"))
        .await
        .unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn a_request_past_the_timeout_is_a_503_problem() {
    let app = TestApp::new().await;
    let mut ctx = app.ctx.clone();
    ctx.state_mut().http.request_timeout = Duration::from_millis(50);
    let slow = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "done"
        }),
    );
    let router = eshtarek_core::service::finish(slow, &ctx);
    let response = router
        .oneshot(Request::get("/slow").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
}
