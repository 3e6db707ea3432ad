//! Token keys as deployed, on moto: only auth reads the private key set, from Secrets Manager
//! at start; it publishes the public halves, and every other function verifies with those
//! alone. After a rotation (a new secret version with a key appended), instances that started
//! before it pick the new key up when a token names it. Everything through HTTP, each function
//! composed as its Lambda composes it (`AppContext::deployed`).

use std::sync::Arc;

use eshtarek_core::auth::keys::{KeySet, KeySetFile};
use eshtarek_core::clock::TestClock;
use eshtarek_core::context::DeployedKeys;
use eshtarek_core::lambda::http_app;
use eshtarek_core::mail::MemoryMailbox;
use eshtarek_core::store::{Key, Store};
use eshtarek_core::AppContext;
use eshtarek_tests::http::{session_of, TestApp, PASSWORD};
use eshtarek_tests::stores;
use serde_json::json;

struct Deployment {
    aws: aws_config::SdkConfig,
    table: String,
    secret: String,
    secrets: aws_sdk_secretsmanager::Client,
    /// The test's own view of the table.
    store: Arc<dyn Store>,
}

impl Deployment {
    /// A fresh table, and a key secret holding `eshtarek keys generate`'s output.
    async fn new(keys: &KeySetFile) -> Self {
        let store = stores::fresh_dynamodb().await;
        let table = stores::table_of(&store).unwrap();
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let secrets = aws_sdk_secretsmanager::Client::new(&aws);
        let secret = format!("eshtarek-jwt-{}", uuid::Uuid::new_v4().simple());
        secrets
            .create_secret()
            .name(&secret)
            .secret_string(serde_json::to_string(keys).unwrap())
            .send()
            .await
            .expect("moto's Secrets Manager");
        Self {
            store: stores::inspector(&store).await,
            aws,
            table,
            secret,
            secrets,
        }
    }

    /// Starts a function instance: auth (`signs`) or any other.
    async fn start(&self, signs: bool) -> TestApp {
        let keys = if signs {
            DeployedKeys::Secret(self.secret.clone())
        } else {
            DeployedKeys::Published
        };
        let mut ctx = AppContext::deployed(&self.aws, &self.table, keys)
            .await
            .expect("a deployed context");
        // moto serves one request at a time: no deployed timeout while other tests queue.
        ctx.state_mut().http.request_timeout = std::time::Duration::from_secs(120);
        let router = if signs {
            eshtarek_auth::router(ctx.clone())
        } else {
            eshtarek_billing::router(ctx.clone())
        };
        TestApp {
            router: http_app(&ctx, router),
            ctx,
            clock: Arc::new(TestClock::new()),
            store: self.store.clone(),
            mailbox: Arc::new(MemoryMailbox::default()),
        }
    }

    async fn put_secret(&self, keys: &KeySetFile) {
        self.secrets
            .put_secret_value()
            .secret_id(&self.secret)
            .secret_string(serde_json::to_string(keys).unwrap())
            .send()
            .await
            .unwrap();
    }
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[tokio::test]
async fn only_auth_holds_the_private_keys_and_a_rotation_reaches_running_instances() {
    let first = KeySet::generate_file();
    let deployment = Deployment::new(&first).await;
    let auth = deployment.start(true).await;
    let billing = deployment.start(false).await;

    // What auth published holds public halves only.
    let published = deployment
        .store
        .get(&Key::new("JWKS", "PUBLISHED"))
        .await
        .unwrap()
        .expect("auth published its public keys at start");
    let file: KeySetFile = serde_json::from_str(published.str("keys").unwrap()).unwrap();
    assert_eq!(file.keys.len(), 1);
    assert_eq!(file.keys[0].kid, first.keys[0].kid);
    assert!(file.keys.iter().all(|k| k.private_pkcs8.is_none()));
    assert!(
        billing.ctx.tokens.keys().signing().is_none(),
        "billing cannot sign"
    );
    assert!(auth.ctx.tokens.keys().signing().is_some());

    // A token from auth works on billing.
    let reply = auth
        .post(
            "/v1/auth/register",
            None,
            json!({"email": "keys@example.com", "password": PASSWORD, "name": "K", "tenant_name": "Keys"}),
        )
        .await
        .expect(201);
    let owner = session_of(&reply.body);
    assert_eq!(kid_of(&owner.access), first.keys[0].kid);
    billing
        .get("/v1/invoices", Some(&owner.access))
        .await
        .expect(200);

    // Rotation: a new secret version with a key appended. A new auth instance signs with it.
    let rotated = KeySet::rotate_file(&first).unwrap();
    deployment.put_secret(&rotated).await;
    let new_auth = deployment.start(true).await;
    let reply = new_auth
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "keys@example.com", "password": PASSWORD}),
        )
        .await
        .expect(200);
    let fresh = session_of(&reply.body);
    assert_eq!(kid_of(&fresh.access), rotated.keys[1].kid);
    // Instances that started before the rotation accept it: billing re-reads the published
    // set, the old auth instance its secret.
    billing
        .get("/v1/invoices", Some(&fresh.access))
        .await
        .expect(200);
    auth.get("/v1/auth/me", Some(&fresh.access))
        .await
        .expect(200);
    // Tokens of the older key still verify until it is removed.
    billing
        .get("/v1/invoices", Some(&owner.access))
        .await
        .expect(200);
    // A token signed with a key nobody published is refused.
    let forged = eshtarek_core::auth::tokens::Tokens::new(KeySet::ephemeral(), Default::default());
    let (token, _) = forged
        .issue_access(
            eshtarek_core::auth::tokens::AccessGrant {
                user_id: &owner.user_id,
                tenant_id: owner.tenant_id.as_deref(),
                role: None,
                session_id: "s",
            },
            chrono::Utc::now(),
        )
        .unwrap();
    billing.get("/v1/invoices", Some(&token)).await.problem(401);
}

#[tokio::test]
async fn a_secret_that_is_not_a_key_set_stops_auth_at_start_with_the_fix() {
    let deployment = Deployment::new(&KeySet::generate_file()).await;
    deployment
        .secrets
        .put_secret_value()
        .secret_id(&deployment.secret)
        .secret_string("a generated password, not a key set")
        .send()
        .await
        .unwrap();
    let error = AppContext::deployed(
        &deployment.aws,
        &deployment.table,
        DeployedKeys::Secret(deployment.secret.clone()),
    )
    .await
    .err()
    .expect("auth refuses to start");
    assert!(error.contains("eshtarek keys generate"), "{error}");
    // A public set is never accepted as auth's.
    let public = KeySet::ephemeral().public_file();
    assert!(KeySet::from_file(&public).is_err());
}
