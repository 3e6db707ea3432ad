//! The OpenAPI document served by the local binary describes every endpoint.

use eshtarek_tests::http::TestApp;

#[tokio::test]
async fn openapi_document_lists_every_endpoint_with_problem_responses() {
    let app = TestApp::new().await;
    let doc = app.get("/openapi.json", None).await.expect(200).body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let expected = [
        ("/healthz", "get"),
        ("/openapi.json", "get"),
        ("/v1/admin/clock/advance", "post"),
        ("/v1/auth/register", "post"),
        ("/v1/auth/login", "post"),
        ("/v1/auth/refresh", "post"),
        ("/v1/auth/logout", "post"),
        ("/v1/auth/logout-all", "post"),
        ("/v1/auth/switch-tenant", "post"),
        ("/v1/auth/me", "get"),
        ("/v1/auth/verify-email", "post"),
        ("/v1/auth/verify-email/resend", "post"),
        ("/v1/auth/invitations/accept", "post"),
        ("/v1/auth/invitations/{invitation_id}/accept", "post"),
        ("/v1/auth/invitations/{invitation_id}/decline", "post"),
        ("/v1/tenants/{id}/invitations", "get"),
        ("/v1/admin/tenants/{id}/trial", "post"),
        ("/v1/tenants/{id}/invitations/{invitation_id}", "delete"),
        ("/.well-known/jwks.json", "get"),
        ("/v1/tenants", "post"),
        ("/v1/tenants", "get"),
        ("/v1/tenants/{id}", "get"),
        ("/v1/tenants/{id}", "patch"),
        ("/v1/tenants/{id}/members", "get"),
        ("/v1/tenants/{id}/members", "post"),
        ("/v1/tenants/{id}/members/{user_id}", "patch"),
        ("/v1/tenants/{id}/members/{user_id}", "delete"),
        ("/v1/plans", "post"),
        ("/v1/plans", "get"),
        ("/v1/plans/{id}", "get"),
        ("/v1/plans/{id}", "patch"),
        ("/v1/plans/{id}", "delete"),
        ("/v1/plans/{id}/versions", "get"),
        ("/v1/plans/{id}/versions/{version}", "get"),
        ("/v1/plans/{id}/activate", "post"),
        ("/v1/plans/{id}/deactivate", "post"),
        ("/v1/plans/{id}/migrate", "post"),
        ("/v1/limit-policies", "post"),
        ("/v1/limit-policies", "get"),
        ("/v1/limit-policies/{id}", "get"),
        ("/v1/limit-policies/{id}", "patch"),
        ("/v1/audit-log", "get"),
        ("/v1/subscriptions", "post"),
        ("/v1/subscriptions", "get"),
        ("/v1/subscriptions/current", "get"),
        ("/v1/subscriptions/{id}", "get"),
        ("/v1/subscriptions/{id}/change-preview", "get"),
        ("/v1/subscriptions/{id}/change", "post"),
        ("/v1/subscriptions/{id}/scheduled-change", "delete"),
        ("/v1/subscriptions/{id}/cancel", "post"),
        ("/v1/subscriptions/{id}/resume", "post"),
        ("/v1/payment-methods", "post"),
        ("/v1/payment-methods", "get"),
        ("/v1/payment-methods/{id}", "delete"),
        ("/v1/invoices", "get"),
        ("/v1/invoices/{id}", "get"),
        ("/v1/invoices/{id}/pay", "post"),
        ("/v1/billing/history", "get"),
        ("/v1/events", "get"),
        ("/v1/usage/events", "post"),
        ("/v1/usage", "get"),
        ("/v1/usage/check", "post"),
        ("/v1/admin/usage", "get"),
        ("/v1/usage/events:batch", "post"),
        ("/v1/usage/history", "get"),
        ("/v1/usage/gauges/{metric}", "put"),
        ("/v1/notifications", "get"),
        ("/v1/notifications/{id}/read", "post"),
        ("/v1/api-keys", "post"),
        ("/v1/api-keys", "get"),
        ("/v1/api-keys/{id}", "delete"),
        ("/v1/admin/tenants/{id}/subscription", "get"),
        ("/v1/admin/tenants/{id}/subscription", "patch"),
    ];
    for (path, method) in expected {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        assert!(operation["responses"].is_object());
    }
    // Any call with a tenant's credentials counts against its plan's API rate: a 429 with
    // its headers is documented everywhere, public operations included.
    let health = &doc["paths"]["/healthz"]["get"]["responses"]["429"];
    assert!(health["headers"]["RateLimit"].is_object(), "{health}");
    assert!(health["headers"]["Retry-After"].is_object());
    let me = &doc["paths"]["/v1/auth/me"]["get"];
    assert_eq!(me["security"][0]["bearer"], serde_json::json!([]));
    assert_eq!(
        me["responses"]["401"]["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/Problem"
    );
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["components"]["schemas"]["AuthResponse"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}
