//! An in-process instance of the composed local server (every function's router, a test
//! clock), driven through HTTP requests and responses, on the store `ESHTAREK_TEST_STORE`
//! selects (`stores::selected`): SQLite, or DynamoDB on moto with token vending as deployed.

use eshtarek_core::service::HttpApp;
use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use eshtarek_core::auth::keys::KeySet;
use eshtarek_core::auth::ClientIp;
use eshtarek_core::clock::TestClock;
use eshtarek_core::mail::MemoryMailbox;
use eshtarek_core::store::Store;
use eshtarek_core::AppContext;
use serde_json::{json, Value};
use tower::ServiceExt;

pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub router: HttpApp,
    pub ctx: AppContext,
    pub clock: Arc<TestClock>,
    /// The test's own view of the app's data, for assertions on stored state and for staging
    /// a crash: the app's store on SQLite; on DynamoDB the same table through a client the
    /// wire check does not watch (the check judges the app's requests, not the test's).
    pub store: Arc<dyn Store>,
    /// What the app mailed (verification and invitation links).
    pub mailbox: Arc<MemoryMailbox>,
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// A reply from its parts; the body as JSON, or as a string when it is not JSON.
    pub fn of(status: StatusCode, headers: HeaderMap, bytes: &[u8]) -> Self {
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }

    /// Asserts a problem document with this status.
    #[track_caller]
    pub fn problem(self, status: u16) -> Self {
        let reply = self.expect(status);
        assert_eq!(
            reply
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "not a problem document: {}",
            reply.body
        );
        assert_eq!(reply.body["status"], status);
        for member in ["type", "title", "detail"] {
            assert!(
                reply.body[member].is_string(),
                "problem lacks {member}: {}",
                reply.body
            );
        }
        reply
    }
}

/// A signed-in user as the tests use them.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: String,
    pub tenant_id: Option<String>,
    pub access: String,
    pub refresh: String,
}

impl TestApp {
    pub async fn new() -> Self {
        Self::on(crate::stores::selected().await).await
    }

    pub async fn on(store: Arc<dyn Store>) -> Self {
        Self::with_clock(store, Arc::new(TestClock::new())).await
    }

    /// An app whose clock stands at `at` until advanced: exact times for billing tests.
    pub async fn frozen_at(at: &str) -> Self {
        Self::frozen_on(crate::stores::selected().await, at).await
    }

    /// The same on `store`.
    pub async fn frozen_on(store: Arc<dyn Store>, at: &str) -> Self {
        let at = eshtarek_core::time::parse(at).expect("RFC 3339");
        Self::with_clock(store, Arc::new(TestClock::frozen_at(at))).await
    }

    pub async fn with_clock(store: Arc<dyn Store>, clock: Arc<TestClock>) -> Self {
        // `RUST_LOG=warn cargo nextest run …` shows what the app logged (a 500's cause).
        if std::env::var_os("RUST_LOG").is_some() {
            eshtarek_core::telemetry::init();
        }
        let mailbox = Arc::new(MemoryMailbox::default());
        let mut ctx = AppContext::new(store.clone(), clock.clone(), KeySet::ephemeral())
            .with_mailer(mailbox.clone());
        // On DynamoDB, as deployed: tenant requests on credentials vended per tenant, every
        // request checked on the wire (`wire`).
        if store.kind() == "dynamodb" {
            let table = crate::stores::table_of(&store).expect("a DynamoDB store from stores.rs");
            let state = ctx.state_mut();
            // moto serves one request at a time: a burst of 200 racing requests queues behind
            // it for longer than the deployed 15 s (what the timeout does is tested on its own,
            // in hardening_http.rs).
            state.http.request_timeout = std::time::Duration::from_secs(120);
            let vended: Arc<dyn eshtarek_core::store::TenantStoreProvider> =
                crate::wire::vendor(&table).await;
            // A stalling store's door stands in front of the vended stores too.
            let vended = match crate::stall::Stalls::of(&store) {
                Some(stalls) => stalls.provider(vended),
                None => vended,
            };
            state.stores = state.stores.clone().with_tenant_stores(vended);
        }
        Self {
            router: eshtarek::app(ctx.clone()),
            ctx,
            clock,
            store: crate::stores::inspector(&store).await,
            mailbox,
        }
    }

    /// A login from client address `ip` (the limits count per address).
    pub async fn login_from(&self, email: &str, password: &str, ip: &str) -> Reply {
        let ip: std::net::IpAddr = ip.parse().expect("an IP address");
        self.call_from(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": email, "password": password})),
            Some(ip),
        )
        .await
    }

    /// The same app with these webhook settings (tests that deliver to a receiver on loopback
    /// allow private targets; the deployed default refuses them).
    pub fn with_webhooks(mut self, settings: eshtarek_core::webhooks::WebhookSettings) -> Self {
        self.ctx.state_mut().webhooks = settings;
        self.router = eshtarek::app(self.ctx.clone());
        self
    }

    /// Another instance of the same deployment (as a second Lambda instance would be): same
    /// store, clock and signing keys, its own in-process caches.
    pub fn sibling(&self) -> Self {
        let mut ctx = self.ctx.clone();
        ctx.state_mut().hot = Arc::default();
        Self {
            router: eshtarek::app(ctx.clone()),
            ctx,
            clock: self.clock.clone(),
            store: self.store.clone(),
            mailbox: self.mailbox.clone(),
        }
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible router");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024)
            .await
            .expect("body");
        Reply::of(status, headers, &bytes)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.call_from(method, path, token, body, None).await
    }

    /// A request as if from `ip` (the Lambda entry point sets this from API Gateway).
    pub async fn call_from(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        ip: Option<IpAddr>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(serde_json::to_vec(&json).unwrap())
            }
            None => Body::empty(),
        };
        let mut request = builder.body(body).unwrap();
        if let Some(ip) = ip {
            request.extensions_mut().insert(ClientIp(Some(ip)));
        }
        self.send(request).await
    }

    /// A POST with an `Idempotency-Key`.
    pub async fn post_keyed(
        &self,
        path: &str,
        token: Option<&str>,
        key: &str,
        body: Value,
    ) -> Reply {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", key);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(
            builder
                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap(),
        )
        .await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::PATCH, path, token, Some(body)).await
    }

    pub async fn put_json(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::PUT, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(Method::DELETE, path, token, None).await
    }

    /// Self-service signup of a user with their own tenant, the address then verified.
    pub async fn signup(&self, email: &str, tenant_name: &str) -> Session {
        let reply = self
            .post(
                "/v1/auth/register",
                None,
                json!({"email": email, "password": PASSWORD, "name": "Test User", "tenant_name": tenant_name}),
            )
            .await
            .expect(201);
        let session = session_of(&reply.body);
        // A business owner confirms their address, as inviting people needs.
        let token = self
            .mailbox
            .last_token(&email.to_lowercase(), "verify_email")
            .expect("a verification mail");
        self.post(
            "/v1/auth/verify-email",
            Some(&session.access),
            json!({ "token": token }),
        )
        .await
        .expect(200);
        session
    }

    pub async fn login(&self, email: &str, tenant_id: Option<&str>) -> Session {
        let mut body = json!({"email": email, "password": PASSWORD});
        if let Some(t) = tenant_id {
            body["tenant_id"] = json!(t);
        }
        let reply = self.post("/v1/auth/login", None, body).await.expect(200);
        session_of(&reply.body)
    }

    /// A platform admin, made the way the CLI makes one, then logged in.
    pub async fn platform_admin(&self) -> Session {
        let email = format!("admin-{}@example.com", uuid::Uuid::new_v4().simple());
        eshtarek_core::auth::service::create_platform_admin(&self.ctx, &email, PASSWORD)
            .await
            .expect("create platform admin");
        self.login(&email, None).await
    }

    /// Creates an API key as `token` (a tenant admin's) and returns its secret.
    pub async fn api_key(&self, token: &str, body: Value) -> String {
        self.post("/v1/api-keys", Some(token), body)
            .await
            .expect(201)
            .body["secret"]
            .as_str()
            .expect("the key's secret")
            .to_owned()
    }

    /// Gives the tenant a working test card and subscribes it to `plan_id`; returns the answer.
    pub async fn subscribe_with_card(&self, owner: &Session, plan_id: &str) -> Value {
        self.post(
            "/v1/payment-methods",
            Some(&owner.access),
            json!({"token": "pm_card_visa"}),
        )
        .await
        .expect(201);
        self.post(
            "/v1/subscriptions",
            Some(&owner.access),
            json!({ "plan_id": plan_id }),
        )
        .await
        .expect(201)
        .body
    }

    /// Follows the newest verification link mailed to `email`, signed in as its account (with
    /// the tests' password).
    pub async fn verify_email(&self, email: &str) {
        let token = self
            .mailbox
            .last_token(email, "verify_email")
            .expect("a verification mail");
        let own = self.login(email, None).await;
        self.post(
            "/v1/auth/verify-email",
            Some(&own.access),
            json!({ "token": token }),
        )
        .await
        .expect(200);
    }

    /// The token of the newest invitation mailed to `email`.
    pub fn invitation_token(&self, email: &str) -> String {
        self.mailbox
            .last_token(&email.to_lowercase(), "invitation")
            .expect("an invitation mail")
    }

    /// Invites `email` into the tenant and has its owner accept: through the mailed link for a
    /// new address (the account is created with [`PASSWORD`]), or signed in to their verified
    /// account. Returns a session in the tenant.
    pub async fn add_member(
        &self,
        admin: &Session,
        tenant_id: &str,
        email: &str,
        role: &str,
    ) -> Session {
        let invited = self
            .post(
                &format!("/v1/tenants/{tenant_id}/members"),
                Some(&admin.access),
                json!({"email": email, "role": role}),
            )
            .await
            .expect(201);
        let token = self.invitation_token(email);
        let reply = self
            .post(
                "/v1/auth/invitations/accept",
                None,
                json!({"token": token, "password": PASSWORD}),
            )
            .await;
        if reply.status == StatusCode::CREATED {
            return session_of(&reply.body);
        }
        let reply = reply.expect(409);
        assert_eq!(reply.body["code"], "account_exists", "{}", reply.body);
        let own = self.login(email, None).await;
        let id = invited.body["invitation"]["id"].as_str().expect("id");
        self.post(
            &format!("/v1/auth/invitations/{id}/accept"),
            Some(&own.access),
            json!({}),
        )
        .await
        .expect(200);
        self.login(email, Some(tenant_id)).await
    }
}

pub fn session_of(body: &Value) -> Session {
    let tokens = if body["tokens"].is_object() {
        &body["tokens"]
    } else {
        body
    };
    Session {
        user_id: body["user"]["id"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_default(),
        tenant_id: tokens["tenant_id"].as_str().map(str::to_owned),
        access: tokens["access_token"]
            .as_str()
            .expect("access token")
            .to_owned(),
        refresh: tokens["refresh_token"]
            .as_str()
            .expect("refresh token")
            .to_owned(),
    }
}
