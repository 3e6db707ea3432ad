//! Auth over HTTP: registration, login, tokens, refresh rotation and reuse, logout, tenant
//! switching, JWKS, password setup, rate limits.

use axum::body::Body;
use axum::http::{header, Request};
use base64::Engine as _;
use chrono::Duration;
use eshtarek_tests::http::{session_of, TestApp, PASSWORD};
use serde_json::json;

fn email(tag: &str) -> String {
    format!("{tag}-{}@example.com", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn register_with_a_tenant_makes_its_admin() {
    let app = TestApp::new().await;
    let address = email("Owner");
    let reply = app
        .post(
            "/v1/auth/register",
            None,
            json!({"email": address.to_uppercase(), "password": PASSWORD, "name": "Owner", "tenant_name": "Acme"}),
        )
        .await
        .expect(201);
    assert_eq!(reply.body["user"]["email"], address.to_lowercase());
    assert_eq!(reply.body["user"]["platform_admin"], false);
    assert_eq!(reply.body["tenant"]["name"], "Acme");
    assert_eq!(reply.body["tenant"]["member_count"], 1);
    assert_eq!(reply.body["tokens"]["role"], "tenant_admin");
    assert_eq!(reply.body["tokens"]["token_type"], "Bearer");
    assert_eq!(reply.body["tokens"]["expires_in"], 900);
    let session = session_of(&reply.body);

    let me = app
        .get("/v1/auth/me", Some(&session.access))
        .await
        .expect(200);
    assert_eq!(me.body["user"]["email"], address.to_lowercase());
    assert_eq!(me.body["role"], "tenant_admin");
    assert_eq!(me.body["current_tenant_id"], reply.body["tenant"]["id"]);
    assert_eq!(me.body["memberships"][0]["tenant_name"], "Acme");
    assert_eq!(me.body["memberships"][0]["role"], "tenant_admin");
    // The password is never echoed, nor its hash.
    assert!(!reply.body.to_string().contains("argon2"));
    assert!(!me.body.to_string().contains("argon2"));
}

#[tokio::test]
async fn registration_input_is_validated_field_by_field() {
    let app = TestApp::new().await;
    let ok = |e: &str| json!({"email": e, "password": PASSWORD, "name": "N"});
    let cases = [
        (
            json!({"email": "not-an-email", "password": PASSWORD, "name": "N"}),
            "email",
        ),
        (
            json!({"email": "a@b", "password": PASSWORD, "name": "N"}),
            "email",
        ),
        (
            json!({"email": email("x"), "password": "short", "name": "N"}),
            "password",
        ),
        (
            json!({"email": "same@example.com", "password": "same@example.com", "name": "N"}),
            "password",
        ),
        (
            json!({"email": email("x"), "password": PASSWORD, "name": "   "}),
            "name",
        ),
        (
            json!({"email": email("x"), "password": PASSWORD, "name": "N", "tenant_name": ""}),
            "tenant_name",
        ),
        (json!({"password": PASSWORD, "name": "N"}), "email"),
        (
            json!({"email": email("x"), "password": PASSWORD, "name": "N", "role": "platform_admin"}),
            "role",
        ),
        (
            json!({"email": 5, "password": PASSWORD, "name": "N"}),
            "email",
        ),
    ];
    for (body, field) in cases {
        let reply = app
            .post("/v1/auth/register", None, body.clone())
            .await
            .problem(422);
        assert_eq!(reply.body["field"], field, "for {body}: {}", reply.body);
    }
    // Emails are unique, case-insensitively.
    let taken = email("taken");
    app.post("/v1/auth/register", None, ok(&taken))
        .await
        .expect(201);
    let dup = app
        .post("/v1/auth/register", None, ok(&taken.to_uppercase()))
        .await
        .problem(409);
    assert_eq!(dup.body["field"], "email");
    // Malformed JSON and a wrong content type are problems too, never 500s.
    let malformed = Request::post("/v1/auth/register")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"email\": "))
        .unwrap();
    app.send(malformed).await.problem(400);
    let text = Request::post("/v1/auth/register")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("hello"))
        .unwrap();
    app.send(text).await.problem(415);
}

#[tokio::test]
async fn login_does_not_reveal_which_emails_exist() {
    let app = TestApp::new().await;
    let address = email("login");
    app.signup(&address, "Acme").await;
    let wrong = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": address, "password": "wrong password!!"}),
        )
        .await
        .problem(401);
    let unknown = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": email("nobody"), "password": "wrong password!!"}),
        )
        .await
        .problem(401);
    assert_eq!(
        wrong.body, unknown.body,
        "same answer for a wrong password and an unknown email"
    );
    let session = app.login(&address.to_uppercase(), None).await;
    assert!(
        session.tenant_id.is_some(),
        "the only membership is the default"
    );
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_the_session() {
    let app = TestApp::new().await;
    let first = app.signup(&email("rot"), "Acme").await;
    let rotated = app
        .post(
            "/v1/auth/refresh",
            None,
            json!({"refresh_token": first.refresh}),
        )
        .await
        .expect(200);
    let second = session_of(&rotated.body);
    assert_ne!(second.refresh, first.refresh);
    assert_eq!(rotated.body["role"], "tenant_admin");
    app.get("/v1/auth/me", Some(&second.access))
        .await
        .expect(200);

    // Within the reuse window the first token answers with the same new one (a retry after a
    // lost answer, two tabs)...
    let retried = app
        .post(
            "/v1/auth/refresh",
            None,
            json!({"refresh_token": first.refresh}),
        )
        .await
        .expect(200);
    assert_eq!(session_of(&retried.body).refresh, second.refresh);
    // ...and after it, presenting the first (already used) refresh token again is reuse.
    app.clock.advance(Duration::seconds(
        eshtarek_core::auth::refresh::REUSE_WINDOW_SECS + 1,
    ));
    let reuse = app
        .post(
            "/v1/auth/refresh",
            None,
            json!({"refresh_token": first.refresh}),
        )
        .await
        .problem(401);
    assert_eq!(reuse.body["code"], "refresh_token_reused");
    // The whole session is gone: the rotated tokens stop working too.
    app.get("/v1/auth/me", Some(&second.access))
        .await
        .problem(401);
    app.post(
        "/v1/auth/refresh",
        None,
        json!({"refresh_token": second.refresh}),
    )
    .await
    .problem(401);
    // Garbage is a 401, not a 500.
    for bad in [
        "",
        "nonsense",
        "usr_x~rt.ses.0.abc",
        &format!("{}x", second.refresh),
    ] {
        app.post("/v1/auth/refresh", None, json!({"refresh_token": bad}))
            .await
            .problem(401);
    }
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_all_get_the_same_new_pair() {
    let app = std::sync::Arc::new(TestApp::new().await);
    let session = app.signup(&email("race"), "Acme").await;
    let attempts = (0..8).map(|_| {
        let app = app.clone();
        let token = session.refresh.clone();
        tokio::spawn(async move {
            app.post("/v1/auth/refresh", None, json!({"refresh_token": token}))
                .await
        })
    });
    let replies: Vec<_> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    // One rotation happened; every racer got its token (none revoked the session).
    let tokens: std::collections::HashSet<String> = replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, 200, "{}", r.body);
            session_of(&r.body).refresh
        })
        .collect();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    let next = tokens.into_iter().next().unwrap();
    app.post("/v1/auth/refresh", None, json!({"refresh_token": next}))
        .await
        .expect(200);
}

#[tokio::test]
async fn logout_ends_the_session_at_once_and_logout_all_ends_every_one() {
    let app = TestApp::new().await;
    let address = email("out");
    let a = app.signup(&address, "Acme").await;
    let b = app.login(&address, None).await;
    let c = app.login(&address, None).await;

    app.post("/v1/auth/logout", Some(&a.access), json!({}))
        .await
        .expect(204);
    // The access token has not expired, yet it no longer works.
    let after = app.get("/v1/auth/me", Some(&a.access)).await.problem(401);
    assert_eq!(
        after.headers[header::WWW_AUTHENTICATE],
        "Bearer realm=\"eshtarek\""
    );
    app.post(
        "/v1/auth/refresh",
        None,
        json!({"refresh_token": a.refresh}),
    )
    .await
    .problem(401);
    app.get("/v1/auth/me", Some(&b.access)).await.expect(200);

    let all = app
        .post("/v1/auth/logout-all", Some(&b.access), json!({}))
        .await
        .expect(200);
    assert_eq!(all.body["revoked_sessions"], 2);
    app.get("/v1/auth/me", Some(&b.access)).await.problem(401);
    app.get("/v1/auth/me", Some(&c.access)).await.problem(401);
    app.post(
        "/v1/auth/refresh",
        None,
        json!({"refresh_token": c.refresh}),
    )
    .await
    .problem(401);
}

#[tokio::test]
async fn access_tokens_expire_with_the_clock_and_refresh_renews_them() {
    let app = TestApp::new().await;
    let session = app.signup(&email("exp"), "Acme").await;
    app.clock
        .advance(Duration::minutes(15) + Duration::seconds(1));
    let expired = app
        .get("/v1/auth/me", Some(&session.access))
        .await
        .problem(401);
    assert_eq!(expired.body["code"], "token_expired");
    let renewed = app
        .post(
            "/v1/auth/refresh",
            None,
            json!({"refresh_token": session.refresh}),
        )
        .await
        .expect(200);
    app.get("/v1/auth/me", Some(&session_of(&renewed.body).access))
        .await
        .expect(200);
    // Refresh tokens expire too (30 days).
    app.clock.advance(Duration::days(31));
    app.post(
        "/v1/auth/refresh",
        None,
        json!({"refresh_token": session_of(&renewed.body).refresh}),
    )
    .await
    .problem(401);
}

#[tokio::test]
async fn switch_tenant_gives_a_pair_for_another_membership_only() {
    let app = TestApp::new().await;
    let owner_a = app.signup(&email("a"), "Alpha").await;
    let owner_b_email = email("b");
    let owner_b = app.signup(&owner_b_email, "Beta").await;
    let alpha = owner_a.tenant_id.clone().unwrap();
    let beta = owner_b.tenant_id.clone().unwrap();
    // B's owner joins Alpha as a user: invited, then accepting from their verified account.
    app.add_member(&owner_a, &alpha, &owner_b_email, "tenant_user")
        .await;
    let switched = app
        .post(
            "/v1/auth/switch-tenant",
            Some(&owner_b.access),
            json!({"tenant_id": alpha}),
        )
        .await
        .expect(200);
    assert_eq!(switched.body["tokens"]["role"], "tenant_user");
    let in_alpha = session_of(&switched.body);
    let me = app
        .get("/v1/auth/me", Some(&in_alpha.access))
        .await
        .expect(200);
    assert_eq!(me.body["current_tenant_id"], alpha.as_str());
    assert_eq!(me.body["memberships"].as_array().unwrap().len(), 2);
    // Not a member of some other tenant.
    let stranger = app.signup(&email("c"), "Gamma").await;
    let refused = app
        .post(
            "/v1/auth/switch-tenant",
            Some(&stranger.access),
            json!({"tenant_id": beta}),
        )
        .await
        .problem(422);
    assert_eq!(refused.body["field"], "tenant_id");
}

#[tokio::test]
async fn jwks_publishes_the_key_that_signs_tokens() {
    let app = TestApp::new().await;
    let session = app.signup(&email("jwks"), "Acme").await;
    let jwks = app.get("/.well-known/jwks.json", None).await.expect(200);
    let header_b64 = session.access.split('.').next().unwrap();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header_b64)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "EdDSA");
    let key = &jwks.body["keys"][0];
    assert_eq!(key["kid"], header["kid"]);
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert!(key.get("d").is_none(), "no private material");
}

#[tokio::test]
async fn invited_people_join_through_the_mailed_link_once() {
    let app = TestApp::new().await;
    let owner = app.signup(&email("own"), "Acme").await;
    let tenant = owner.tenant_id.clone().unwrap();
    let invitee = email("new");
    let invited = app
        .post(
            &format!("/v1/tenants/{tenant}/members"),
            Some(&owner.access),
            json!({"email": invitee, "role": "tenant_user"}),
        )
        .await
        .expect(201);
    // The answer carries no token: the link went to the invitee's mailbox.
    assert!(
        !invited.body.to_string().contains("token"),
        "{}",
        invited.body
    );
    assert_eq!(invited.body["invitation"]["status"], "pending");
    let token = app.invitation_token(&invitee);
    // No account yet: login fails like any wrong password.
    app.post(
        "/v1/auth/login",
        None,
        json!({"email": invitee, "password": PASSWORD}),
    )
    .await
    .problem(401);
    app.post(
        "/v1/auth/invitations/accept",
        None,
        json!({"token": token, "password": "short"}),
    )
    .await
    .problem(422);
    let joined = app
        .post(
            "/v1/auth/invitations/accept",
            None,
            json!({"token": token, "password": PASSWORD}),
        )
        .await
        .expect(201);
    assert_eq!(joined.body["user"]["email_verified"], true);
    assert_eq!(joined.body["tokens"]["tenant_id"], tenant.as_str());
    let session = app.login(&invitee, None).await;
    assert_eq!(session.tenant_id.as_deref(), Some(tenant.as_str()));
    // The link worked once.
    let again = app
        .post(
            "/v1/auth/invitations/accept",
            None,
            json!({"token": token, "password": "another password 1"}),
        )
        .await
        .problem(422);
    assert_eq!(again.body["field"], "token");
}

#[tokio::test]
async fn login_attempts_are_limited_per_email_and_per_address() {
    // 7 s into a 15-minute window, so the wait is exact.
    let app = TestApp::frozen_at("2027-03-01T10:00:07Z").await;
    let address = email("brute");
    app.signup(&address, "Acme").await;
    let ip = "203.0.113.7";
    for _ in 0..10 {
        app.login_from(&address, "wrong password!!", ip)
            .await
            .problem(401);
    }
    let limited = app.login_from(&address, PASSWORD, ip).await.problem(429);
    let retry: u64 = limited.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // The rest of this 15-minute window (893 s), then until its 10 weigh only 9 in the next
    // one (90 s).
    assert_eq!(retry, 983);
    // Retry-After is exact: a second early is still refused, then it signs in.
    app.clock.advance(Duration::seconds(retry as i64 - 1));
    app.login_from(&address, PASSWORD, ip).await.problem(429);
    app.clock.advance(Duration::seconds(1));
    app.login_from(&address, PASSWORD, ip).await.expect(200);

    // Per address: 100 attempts over many emails, then 429 even for a fresh email.
    let other = "198.51.100.9";
    for i in 0..100 {
        app.login_from(&format!("n{i}@example.com"), "wrong password!!", other)
            .await
            .problem(401);
    }
    app.login_from(&address, PASSWORD, other).await.problem(429);
}
