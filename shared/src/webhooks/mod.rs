//! Webhooks: tenants' endpoints, messages in the Standard Webhooks format (standardwebhooks.com,
//! v1), and at-least-once delivery.
//!
//! The outbox is the event log itself: every event (`billing::events::op`, written in the
//! transaction of the change it reports) is also indexed under `IDX#OUTBOX#<shard>` in GSI1, so
//! a crash between a change and its delivery loses nothing. The `deliver-webhooks` job
//! (`jobs.rs`: the local timer, the test clock, EventBridge on AWS) fans each indexed event out
//! into one message per matching endpoint (`MSG#…`, indexed under `IDX#WEBHOOK#<shard>` by its
//! next attempt) in one transaction that also takes the event off the outbox index, then sends
//! every due message, signed, retrying on a schedule of about three days.
//!
//! Files by use case: `types` (the event types and their mapping from the event log),
//! `address` (which URLs may be called: the outbound-request guard), `endpoints` (registering,
//! changing, rotating secrets), `outbox` (the index and the fan-out), `deliver` (signing,
//! sending, retries, the attempt log), `messages` (test sends, resends, the attempt list).

pub mod address;
pub mod deliver;
pub mod endpoints;
pub mod messages;
pub mod outbox;
pub mod types;

/// How webhooks leave: whether private addresses may be called (local development and tests
/// only), and the HTTP client that calls them, built on first use (building one loads the
/// system's TLS roots: functions that never send a webhook, and every test, skip that).
#[derive(Clone)]
pub struct WebhookSettings {
    /// `ESHTAREK_WEBHOOKS_ALLOW_PRIVATE=1`: loopback, private and link-local targets and plain
    /// `http` are allowed. Never on a deployed function.
    pub allow_private: bool,
    client: std::sync::Arc<std::sync::OnceLock<reqwest::Client>>,
}

impl WebhookSettings {
    pub fn from_env() -> Self {
        Self::new(std::env::var("ESHTAREK_WEBHOOKS_ALLOW_PRIVATE").as_deref() == Ok("1"))
    }

    pub fn new(allow_private: bool) -> Self {
        Self {
            allow_private,
            client: Default::default(),
        }
    }

    /// The client: no redirects followed (a 3xx is an answer, not a new target), 15 s for the
    /// whole exchange, and every hostname resolved through [`address::Guarded`], which drops
    /// addresses that may not be called, at connect time (so a name that resolved to a public
    /// address at registration cannot be rebound to an internal one later).
    pub fn client(&self) -> &reqwest::Client {
        self.client.get_or_init(|| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(15))
                .connect_timeout(std::time::Duration::from_secs(5))
                .user_agent("Eshtarek-Webhooks/1")
                // Never through a proxy from the environment: the proxy would resolve the
                // target itself, past the guarded resolver.
                .no_proxy()
                .dns_resolver(std::sync::Arc::new(address::Guarded {
                    allow_private: self.allow_private,
                }))
                .build()
                .expect("the webhook HTTP client builds")
        })
    }
}
