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
    /// `ESHTAREK_TABLE` (default `eshtarek`), signing keys from `ESHTAREK_JWT_KEYS`, the wall
    /// clock.
    #[cfg(feature = "dynamodb")]
    pub async fn from_lambda_env() -> Result<Self, String> {
        let table = std::env::var("ESHTAREK_TABLE").unwrap_or_else(|_| "eshtarek".into());
        // One set of AWS settings, so the platform client, STS and every tenant client share
        // one HTTP client.
        let aws = crate::store::dynamodb::aws_settings().await;
        let store =
            crate::store::dynamodb::DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), &table);
        let keys = KeySet::from_env()?.ok_or("ESHTAREK_JWT_KEYS is not set")?;
        let mut ctx = Self::new(Arc::new(store), Arc::new(SystemClock), keys);
        if let Some(vendor) = crate::store::vending::TenantCredentialVendor::from_env(&aws, &table)?
        {
            let state = ctx.state_mut();
            state.stores = state.stores.clone().with_tenant_stores(Arc::new(vendor));
        }
        Ok(ctx)
    }
}
