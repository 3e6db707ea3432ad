//! What every function's router is built from.

use std::sync::Arc;

use crate::auth::keys::KeySet;
use crate::auth::tokens::{TokenSettings, Tokens};
use crate::billing::gateway::{MockGateway, PaymentGateway};
use crate::clock::{SharedClock, SystemClock, TestClock};
use crate::store::{Store, Stores};

/// The application's shared state, behind one `Arc`: handlers, extractors and middleware clone
/// the context several times per request, and one reference count is far cheaper than one per
/// field (each clone was an atomic increment on a cache line both cores fight over).
#[derive(Clone)]
pub struct AppContext(Arc<AppState>);

/// Where a deployed function's token keys come from.
#[cfg(feature = "dynamodb")]
pub enum DeployedKeys {
    /// The private key set in this Secrets Manager secret (the auth function).
    Secret(String),
    /// The public halves auth published to the table (every other function).
    Published,
}

impl std::ops::Deref for AppContext {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.0
    }
}

#[derive(Clone)]
pub struct AppState {
    pub stores: Stores,
    pub clock: SharedClock,
    pub tokens: Arc<Tokens>,
    pub gateway: Arc<dyn PaymentGateway>,
    /// Set only when the local server runs with `--test-clock` (demos and tests): the clock
    /// that `POST /v1/admin/clock/advance` moves.
    pub test_clock: Option<Arc<TestClock>>,
    /// Caches of the usage hot path (each fact re-checked in the write that relies on it).
    pub hot: Arc<crate::usage::hot::HotCache>,
    /// Timeout and CORS origins of the HTTP layer.
    pub http: crate::hardening::HttpSettings,
    /// Where verification and invitation links go (the local mailbox in local mode only).
    pub mail: Arc<dyn crate::mail::Mailer>,
    /// Metrics any tenant may record without a plan limit (`ESHTAREK_FREE_METRICS`, comma
    /// separated; default none): every other metric needs a limit policy in the plan.
    pub free_metrics: Arc<std::collections::HashSet<String>>,
    /// The address people reach the dashboard at, for links in mail (`ESHTAREK_PUBLIC_URL`).
    pub public_url: String,
    /// Dunning and grace periods (`ESHTAREK_DUNNING_DAYS`, `_DUNNING_FINAL`, `_GRACE_DAYS`).
    pub billing: crate::billing::settings::BillingSettings,
    /// Sign-in and sign-up attempt limits (`ESHTAREK_LOGIN_…`, `ESHTAREK_REGISTER_…`).
    pub auth_limits: crate::auth::ratelimit::AuthLimits,
    /// Outbound webhooks: the guarded HTTP client (`ESHTAREK_WEBHOOKS_ALLOW_PRIVATE`).
    pub webhooks: crate::webhooks::WebhookSettings,
}

impl AppContext {
    pub fn new(store: Arc<dyn Store>, clock: SharedClock, keys: KeySet) -> Self {
        Self(Arc::new(AppState {
            stores: Stores::new(store),
            clock,
            tokens: Arc::new(Tokens::new(keys, TokenSettings::from_env())),
            gateway: Arc::new(MockGateway),
            test_clock: None,
            hot: Arc::default(),
            http: crate::hardening::HttpSettings::from_env(),
            mail: Arc::new(crate::mail::Undelivered),
            free_metrics: Arc::new(
                std::env::var("ESHTAREK_FREE_METRICS")
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            public_url: std::env::var("ESHTAREK_PUBLIC_URL")
                .unwrap_or_else(|_| "http://127.0.0.1:8080".into()),
            billing: crate::billing::settings::BillingSettings::from_env(),
            auth_limits: crate::auth::ratelimit::AuthLimits::from_env(),
            webhooks: crate::webhooks::WebhookSettings::from_env(),
        }))
    }

    /// The state to change while composing (copied if another handle shares it).
    pub fn state_mut(&mut self) -> &mut AppState {
        Arc::make_mut(&mut self.0)
    }

    /// Sends mail through `mail` (the local mailbox, or the tests' memory).
    pub fn with_mailer(mut self, mail: Arc<dyn crate::mail::Mailer>) -> Self {
        self.state_mut().mail = mail;
        self
    }

    /// Runs on a test clock that the admin clock endpoint can move.
    pub fn with_test_clock(mut self, clock: Arc<TestClock>) -> Self {
        let state = self.state_mut();
        state.clock = clock.clone();
        state.test_clock = Some(clock);
        self
    }

    /// The Lambda composition: DynamoDB from the standard AWS settings, the table named by
    /// `ESHTAREK_TABLE` (default `eshtarek`), token vending when `ESHTAREK_TENANT_ROLE_ARN`
    /// names the tenant data role, the wall clock, and the token keys: the private set from
    /// the secret `ESHTAREK_JWT_SECRET_ID` names (auth only), else the published public set.
    /// No key material is read from the environment.
    #[cfg(feature = "dynamodb")]
    pub async fn from_lambda_env() -> Result<Self, String> {
        let table = std::env::var("ESHTAREK_TABLE").unwrap_or_else(|_| "eshtarek".into());
        let keys = match std::env::var("ESHTAREK_JWT_SECRET_ID") {
            Ok(secret) => DeployedKeys::Secret(secret),
            Err(_) => DeployedKeys::Published,
        };
        // One set of AWS settings, so the platform client, STS, Secrets Manager and every
        // tenant client share one HTTP client.
        let aws = crate::store::dynamodb::aws_settings().await;
        let mut ctx = Self::deployed(&aws, &table, keys).await?;
        if let Some(vendor) = crate::store::vending::TenantCredentialVendor::from_env(&aws, &table)?
        {
            let state = ctx.state_mut();
            state.stores = state.stores.clone().with_tenant_stores(Arc::new(vendor));
        }
        Ok(ctx)
    }

    /// A deployed function's context on `table`, with its keys from `keys` (loaded now, and
    /// again when a token names a key id it does not hold).
    #[cfg(feature = "dynamodb")]
    pub async fn deployed(
        aws: &aws_config::SdkConfig,
        table: &str,
        keys: DeployedKeys,
    ) -> Result<Self, String> {
        use crate::auth::key_sources::{PublishedKeys, SecretKeys};
        use crate::auth::tokens::KeySource;
        let store: Arc<dyn Store> = Arc::new(crate::store::dynamodb::DynamoStore::new(
            aws_sdk_dynamodb::Client::new(aws),
            table,
        ));
        let source: Arc<dyn KeySource> = match keys {
            DeployedKeys::Secret(id) => Arc::new(SecretKeys::new(
                aws_sdk_secretsmanager::Client::new(aws),
                id,
                store.clone(),
            )),
            DeployedKeys::Published => Arc::new(PublishedKeys::new(store.clone())),
        };
        let keys = source.load().await?;
        let none = KeySet::public(&Default::default()).expect("an empty set is valid");
        let mut ctx = Self::new(store, Arc::new(SystemClock), none);
        ctx.state_mut().tokens =
            Arc::new(Tokens::new(keys, TokenSettings::from_env()).reloading_from(source));
        Ok(ctx)
    }
}
