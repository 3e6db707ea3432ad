//! Tenants, members, role rules and tenant isolation over HTTP.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use eshtarek_core::auth::keys::KeySet;
use eshtarek_core::auth::tokens::{AccessGrant, TokenSettings, Tokens};
use eshtarek_core::auth::Role;
use eshtarek_tests::http::{Session, TestApp};
use serde_json::{json, Value};

fn email(tag: &str) -> String {
    format!("{tag}-{}@example.com", uuid::Uuid::new_v4().simple())
}

/// Two tenants, each with an admin and a user.
struct World {
    app: TestApp,
    a_admin: Session,
    a_user: Session,
    b_admin: Session,
    b_user: Session,
    a: String,
    b: String,
}

async fn world() -> World {
    let app = TestApp::new().await;
    let a_admin = app.signup(&email("a-admin"), "Alpha").await;
    let b_admin = app.signup(&email("b-admin"), "Beta").await;
    let a = a_admin.tenant_id.clone().unwrap();
    let b = b_admin.tenant_id.clone().unwrap();
    let a_user = app
        .add_member(&a_admin, &a, &email("a-user"), "tenant_user")
        .await;
    let b_user = app
        .add_member(&b_admin, &b, &email("b-user"), "tenant_user")
        .await;
    World {
        app,
        a_admin,
        a_user,
        b_admin,
        b_user,
        a,
        b,
    }
}

async fn members_of(app: &TestApp, admin: &Session, tenant: &str) -> Value {
    app.get(
        &format!("/v1/tenants/{tenant}/members?limit=100"),
        Some(&admin.access),
    )
    .await
    .expect(200)
    .body
}

#[tokio::test]
async fn platform_admin_manages_tenants_and_others_cannot() {
    let w = world().await;
    let admin = w.app.platform_admin().await;
    let created = w
        .app
        .post("/v1/tenants", Some(&admin.access), json!({"name": "Gamma"}))
        .await
        .expect(201);
    assert_eq!(created.body["status"], "active");
    assert_eq!(created.body["member_count"], 0);

    // Paginated list, newest first, every tenant exactly once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/tenants?limit=1&cursor={c}"),
            None => "/v1/tenants?limit=1".to_owned(),
        };
        let page = w.app.get(&path, Some(&admin.access)).await.expect(200);
        assert_eq!(page.body["data"].as_array().unwrap().len(), 1);
        seen.push(page.body["data"][0]["id"].as_str().unwrap().to_owned());
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0], created.body["id"].as_str().unwrap());
    assert!(seen.contains(&w.a) && seen.contains(&w.b));

    for bad in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "cursor=garbage",
        "color=red",
    ] {
        w.app
            .get(&format!("/v1/tenants?{bad}"), Some(&admin.access))
            .await
            .problem(422);
    }
    // Tenant roles cannot create or list tenants.
    for who in [&w.a_admin, &w.a_user] {
        w.app
            .post("/v1/tenants", Some(&who.access), json!({"name": "Nope"}))
            .await
            .problem(403);
        w.app
            .get("/v1/tenants", Some(&who.access))
            .await
            .problem(403);
    }
    w.app.get("/v1/tenants", None).await.problem(401);
}

#[tokio::test]
async fn members_see_their_tenant_and_only_admins_change_it() {
    let w = world().await;
    let own = w
        .app
        .get(&format!("/v1/tenants/{}", w.a), Some(&w.a_user.access))
        .await
        .expect(200);
    assert_eq!(own.body["name"], "Alpha");
    assert_eq!(own.body["member_count"], 2);
    w.app
        .patch(
            &format!("/v1/tenants/{}", w.a),
            Some(&w.a_user.access),
            json!({"name": "X"}),
        )
        .await
        .problem(403);
    let renamed = w
        .app
        .patch(
            &format!("/v1/tenants/{}", w.a),
            Some(&w.a_admin.access),
            json!({"name": "Alpha Inc"}),
        )
        .await
        .expect(200);
    assert_eq!(renamed.body["name"], "Alpha Inc");
    // Status is the platform's call.
    w.app
        .patch(
            &format!("/v1/tenants/{}", w.a),
            Some(&w.a_admin.access),
            json!({"status": "suspended"}),
        )
        .await
        .problem(403);
    w.app
        .patch(
            &format!("/v1/tenants/{}", w.a),
            Some(&w.a_admin.access),
            json!({"status": "gone"}),
        )
        .await
        .problem(422);
    w.app
        .patch(
            &format!("/v1/tenants/{}", w.a),
            Some(&w.a_admin.access),
            json!({}),
        )
        .await
        .problem(422);
    // Members: tenant users may not manage them.
    w.app
        .get(
            &format!("/v1/tenants/{}/members", w.a),
            Some(&w.a_user.access),
        )
        .await
        .problem(403);
    w.app
        .post(
            &format!("/v1/tenants/{}/members", w.a),
            Some(&w.a_user.access),
            json!({"email": email("x"), "role": "tenant_user"}),
        )
        .await
        .problem(403);
}

#[tokio::test]
async fn suspending_a_tenant_ends_its_sessions_and_blocks_logins_to_it() {
    let w = world().await;
    let admin = w.app.platform_admin().await;
    w.app
        .patch(
            &format!("/v1/tenants/{}", w.a),
            Some(&admin.access),
            json!({"status": "suspended"}),
        )
        .await
        .expect(200);
    w.app
        .get("/v1/auth/me", Some(&w.a_user.access))
        .await
        .problem(401);
    w.app
        .get("/v1/auth/me", Some(&w.a_admin.access))
        .await
        .problem(401);
    let me = w
        .app
        .get("/v1/auth/me", Some(&w.b_user.access))
        .await
        .expect(200);
    assert_eq!(me.body["role"], "tenant_user");
    let a_user_email = members_of(&w.app, &admin, &w.a).await["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tenant_user")
        .unwrap()["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = w
        .app
        .post("/v1/auth/login", None, json!({"email": a_user_email, "password": eshtarek_tests::http::PASSWORD, "tenant_id": w.a}))
        .await
        .problem(403);
    assert_eq!(refused.body["code"], "tenant_suspended");
    w.app
        .patch(
            &format!("/v1/tenants/{}", w.a),
            Some(&admin.access),
            json!({"status": "active"}),
        )
        .await
        .expect(200);
    w.app.login(&a_user_email, Some(&w.a)).await;
}

#[tokio::test]
async fn a_tenant_keeps_one_admin_and_role_changes_end_sessions() {
    let w = world().await;
    let members = format!("/v1/tenants/{}/members", w.a);
    let a_admin_id = w.a_admin.user_id.clone();
    w.app
        .patch(
            &format!("{members}/{a_admin_id}"),
            Some(&w.a_admin.access),
            json!({"role": "tenant_user"}),
        )
        .await
        .problem(409);
    w.app
        .delete(&format!("{members}/{a_admin_id}"), Some(&w.a_admin.access))
        .await
        .problem(409);
    w.app
        .patch(
            &format!("{members}/{}", w.a_user.user_id),
            Some(&w.a_admin.access),
            json!({"role": "owner"}),
        )
        .await
        .problem(422);

    // Promote the user: their old token (tenant_user) ends; a new login carries the new role.
    let promoted = w
        .app
        .patch(
            &format!("{members}/{}", w.a_user.user_id),
            Some(&w.a_admin.access),
            json!({"role": "tenant_admin"}),
        )
        .await
        .expect(200);
    assert_eq!(promoted.body["role"], "tenant_admin");
    w.app
        .get("/v1/auth/me", Some(&w.a_user.access))
        .await
        .problem(401);
    // Now the first admin may step down.
    w.app
        .patch(
            &format!("{members}/{a_admin_id}"),
            Some(&w.a_admin.access),
            json!({"role": "tenant_user"}),
        )
        .await
        .expect(200);
}

#[tokio::test]
async fn removing_a_member_ends_their_access_and_frees_the_seat() {
    let w = world().await;
    let path = format!("/v1/tenants/{}/members/{}", w.a, w.a_user.user_id);
    w.app
        .delete(&path, Some(&w.a_admin.access))
        .await
        .expect(204);
    // The token of a deleted membership stops working, and cannot be refreshed back.
    w.app
        .get("/v1/auth/me", Some(&w.a_user.access))
        .await
        .problem(401);
    w.app
        .post(
            "/v1/auth/refresh",
            None,
            json!({"refresh_token": w.a_user.refresh}),
        )
        .await
        .problem(401);
    let tenant = w
        .app
        .get(&format!("/v1/tenants/{}", w.a), Some(&w.a_admin.access))
        .await
        .expect(200);
    assert_eq!(tenant.body["member_count"], 1);
    w.app
        .delete(&path, Some(&w.a_admin.access))
        .await
        .problem(404);
    // Adding an existing member twice is a conflict.
    let members = members_of(&w.app, &w.a_admin, &w.a).await;
    let admin_email = members["data"][0]["email"].as_str().unwrap().to_owned();
    w.app
        .post(
            &format!("/v1/tenants/{}/members", w.a),
            Some(&w.a_admin.access),
            json!({"email": admin_email, "role": "tenant_user"}),
        )
        .await
        .problem(409);
}

/// Every tenant-scoped endpoint, tried by tenant A's admin and user against tenant B: 404 for
/// B's resources (never confirming they exist), and B unchanged afterwards.
#[tokio::test]
async fn tenant_a_cannot_see_or_touch_tenant_b() {
    let w = world().await;
    let before_tenant = w
        .app
        .get(&format!("/v1/tenants/{}", w.b), Some(&w.b_admin.access))
        .await
        .expect(200)
        .body;
    let before_members = members_of(&w.app, &w.b_admin, &w.b).await;
    let b_user_id = w.b_user.user_id.clone();
    for attacker in [&w.a_admin, &w.a_user] {
        let t = Some(attacker.access.as_str());
        w.app
            .get(&format!("/v1/tenants/{}", w.b), t)
            .await
            .problem(404);
        w.app
            .patch(&format!("/v1/tenants/{}", w.b), t, json!({"name": "pwned"}))
            .await
            .problem(404);
        w.app
            .get(&format!("/v1/tenants/{}/members", w.b), t)
            .await
            .problem(404);
        w.app
            .post(
                &format!("/v1/tenants/{}/members", w.b),
                t,
                json!({"email": email("evil"), "role": "tenant_admin"}),
            )
            .await
            .problem(404);
        w.app
            .patch(
                &format!("/v1/tenants/{}/members/{b_user_id}", w.b),
                t,
                json!({"role": "tenant_admin"}),
            )
            .await
            .problem(404);
        w.app
            .delete(&format!("/v1/tenants/{}/members/{b_user_id}", w.b), t)
            .await
            .problem(404);
        // A tenant id in the body does not switch tenants either.
        w.app
            .post("/v1/auth/switch-tenant", t, json!({"tenant_id": w.b}))
            .await
            .problem(422);
        // Nor does a made-up id with path tricks.
        w.app.get("/v1/tenants/..%2F..%2Fetc", t).await.problem(404);
    }
    // A's admin acting on a B member through A's path finds no such member.
    w.app
        .delete(
            &format!("/v1/tenants/{}/members/{b_user_id}", w.a),
            Some(&w.a_admin.access),
        )
        .await
        .problem(404);

    assert_eq!(
        w.app
            .get(&format!("/v1/tenants/{}", w.b), Some(&w.b_admin.access))
            .await
            .expect(200)
            .body,
        before_tenant
    );
    assert_eq!(members_of(&w.app, &w.b_admin, &w.b).await, before_members);
    w.app
        .get("/v1/auth/me", Some(&w.b_user.access))
        .await
        .expect(200);
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// Forged and stale tokens: all 401, and B's data unchanged.
#[tokio::test]
async fn forged_and_stale_tokens_are_refused() {
    let w = world().await;
    let target = format!("/v1/tenants/{}/members", w.b);
    let parts: Vec<&str> = w.a_admin.access.split('.').collect();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();

    // Tampered tenant claim, original signature.
    claims["tid"] = json!(w.b);
    let tampered = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    // alg none, no signature.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": header["kid"]})),
        b64(&claims)
    );
    // HS256 with the public key as the HMAC secret.
    let jwks = w
        .app
        .get("/.well-known/jwks.json", None)
        .await
        .expect(200)
        .body;
    let public_x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: header["kid"].as_str().map(str::to_owned),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(public_x.as_bytes()),
    )
    .unwrap();
    // A well-formed token signed by another key (same kid, and an unknown kid).
    let foreign = Tokens::new(KeySet::ephemeral(), TokenSettings::default());
    let grant = AccessGrant {
        user_id: &w.a_admin.user_id,
        tenant_id: Some(&w.b),
        role: Some(Role::TenantAdmin),
        session_id: claims["sid"].as_str().unwrap(),
    };
    let (wrong_key, _) = foreign.issue_access(grant, w.app.clock.now()).unwrap();
    let fp: Vec<&str> = wrong_key.split('.').collect();
    let same_kid = format!("{}.{}.{}", parts[0], fp[1], fp[2]);

    for token in [
        tampered,
        none,
        hs,
        wrong_key,
        same_kid,
        "garbage".to_owned(),
        String::new(),
    ] {
        w.app.get(&target, Some(&token)).await.problem(401);
        w.app
            .post(
                &target,
                Some(&token),
                json!({"email": email("evil"), "role": "tenant_admin"}),
            )
            .await
            .problem(401);
    }
    // Expired.
    use eshtarek_core::clock::Clock;
    let stale = w
        .app
        .ctx
        .tokens
        .issue_access(
            AccessGrant {
                user_id: &w.b_admin.user_id,
                tenant_id: Some(&w.b),
                role: Some(Role::TenantAdmin),
                session_id: "ses_x",
            },
            w.app.clock.now() - chrono::Duration::hours(1),
        )
        .unwrap();
    w.app.get(&target, Some(&stale.0)).await.problem(401);
    // After logout.
    w.app
        .post("/v1/auth/logout", Some(&w.b_admin.access), json!({}))
        .await
        .expect(204);
    w.app
        .get(&target, Some(&w.b_admin.access))
        .await
        .problem(401);

    let fresh = w.app.platform_admin().await;
    let members = members_of(&w.app, &fresh, &w.b).await;
    assert_eq!(
        members["data"].as_array().unwrap().len(),
        2,
        "B's members unchanged: {members}"
    );
}

#[tokio::test]
async fn a_token_from_the_future_or_of_a_removed_member_is_refused() {
    use eshtarek_core::clock::Clock;
    let w = world().await;
    // Not yet valid: issued an hour from now (a clock-skewed or forged issuer).
    let early = w
        .app
        .ctx
        .tokens
        .issue_access(
            AccessGrant {
                user_id: &w.a_admin.user_id,
                tenant_id: Some(&w.a),
                role: Some(Role::TenantAdmin),
                session_id: "ses_future",
            },
            w.app.clock.now() + chrono::Duration::hours(1),
        )
        .unwrap();
    w.app.get("/v1/auth/me", Some(&early.0)).await.problem(401);

    // A member removed by their admin: their still-unexpired token no longer acts in the tenant.
    let tenant = format!("/v1/tenants/{}", w.a);
    w.app.get(&tenant, Some(&w.a_user.access)).await.expect(200);
    w.app
        .delete(
            &format!("{tenant}/members/{}", w.a_user.user_id),
            Some(&w.a_admin.access),
        )
        .await
        .expect(204);
    let after = w.app.get(&tenant, Some(&w.a_user.access)).await;
    assert!(
        [401, 403].contains(&after.status.as_u16()),
        "a removed member's token still works: {} {}",
        after.status,
        after.body
    );
    let usage = w.app.get("/v1/usage", Some(&w.a_user.access)).await;
    assert!(
        [401, 403].contains(&usage.status.as_u16()),
        "{}",
        usage.body
    );
}
