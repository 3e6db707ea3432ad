//! Where deployed functions get their token keys. Only auth can read the private set: it reads
//! the secret named by `ESHTAREK_JWT_SECRET_ID` from Secrets Manager at start (GetSecretValue)
//! and publishes the public halves to the table's `JWKS` item; every other function verifies
//! with that published set alone. Each reloads when a token names a key it does not hold: after
//! a rotation (`eshtarek keys rotate`, a new secret version) auth instances that started before
//! it re-read the secret, and verifiers re-read the published set.
//!
//! Every instance also reloads every five minutes (`tokens::REFRESH_EVERY`): auth re-reads the
//! secret and publishes what it holds, verifiers re-read the published set. So a warm auth
//! instance signs with a rotated key, and a removed key stops verifying everywhere, within five
//! minutes; a rollback (AWSCURRENT moved back) is published like any other version. Each auth
//! instance publishes the version it just read, so a publication from a read that raced a
//! rotation is replaced at that instance's next reload.

use std::sync::Arc;

use aws_sdk_secretsmanager::Client as SecretsClient;

use super::keys::{KeySet, KeySetFile};
use super::tokens::KeySource;
use crate::store::{Item, Key, Store, StoreExt};

fn published_key() -> Key {
    Key::new("JWKS", "PUBLISHED")
}

/// Auth's keys: the secret's key set, private halves included.
pub struct SecretKeys {
    secrets: SecretsClient,
    secret_id: String,
    store: Arc<dyn Store>,
}

impl SecretKeys {
    /// `store` is the platform store (the `JWKS` item is a platform item).
    pub fn new(
        secrets: SecretsClient,
        secret_id: impl Into<String>,
        store: Arc<dyn Store>,
    ) -> Self {
        Self {
            secrets,
            secret_id: secret_id.into(),
            store,
        }
    }
}

#[async_trait::async_trait]
impl KeySource for SecretKeys {
    async fn load(&self) -> Result<KeySet, String> {
        let secret = self
            .secrets
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "reading the key secret {}: {}",
                    self.secret_id,
                    aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
                )
            })?;
        let text = secret.secret_string().unwrap_or_default();
        let file: KeySetFile = serde_json::from_str(text).map_err(|_| {
            format!(
                "the secret {} is not a key set: put one with `eshtarek keys generate | aws \
                 secretsmanager put-secret-value --secret-id {} --secret-string file:///dev/stdin`",
                self.secret_id, self.secret_id
            )
        })?;
        let keys = KeySet::from_file(&file)?;
        publish(&*self.store, &keys, secret.version_id().unwrap_or_default()).await?;
        Ok(keys)
    }
}

/// Writes the public halves of `keys` (from the secret version `version`).
async fn publish(store: &dyn Store, keys: &KeySet, version: &str) -> Result<(), String> {
    let public = serde_json::to_string(&keys.public_file()).expect("serializable");
    let item = Item::new(published_key())
        .with("keys", public.as_str())
        .with("secret_version", version);
    store
        .put(item, None)
        .await
        .map_err(|e| format!("publishing the public keys: {e}"))
}

/// Every other function's keys: the published public set.
pub struct PublishedKeys {
    store: Arc<dyn Store>,
}

impl PublishedKeys {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

#[async_trait::async_trait]
impl KeySource for PublishedKeys {
    async fn load(&self) -> Result<KeySet, String> {
        let item = self
            .store
            .get(&published_key())
            .await
            .map_err(|e| format!("reading the published keys: {e}"))?;
        // Before auth first starts nothing is published: verify nothing until it is.
        let Some(item) = item else {
            return KeySet::public(&KeySetFile { keys: vec![] });
        };
        let file: KeySetFile = serde_json::from_str(item.str("keys").unwrap_or_default())
            .map_err(|e| format!("the published keys are not a key set: {e}"))?;
        KeySet::public(&file)
    }
}
