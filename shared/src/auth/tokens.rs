//! Access tokens (short-lived JWTs, EdDSA, with a `kid`) and refresh tokens (opaque, rotated,
//! stored only as a hash).
//!
//! Expiry and not-before are checked against the injectable clock, not the system time, so a
//! test clock moved forward expires tokens as it should.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use std::sync::{Arc, RwLock};

use super::keys::KeySet;
use super::Role;
use crate::error::ApiError;

pub const ISSUER: &str = "eshtarek";
const ACCESS_TYPE: &str = "access";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The user id.
    pub sub: String,
    /// The tenant this token acts in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// The session (refresh-token family) the token belongs to.
    pub sid: String,
    pub jti: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub typ: String,
}

#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            access_ttl: Duration::minutes(15),
            refresh_ttl: Duration::days(30),
        }
    }
}

impl TokenSettings {
    /// `ESHTAREK_ACCESS_TTL_SECS` and `ESHTAREK_REFRESH_TTL_SECS` override the defaults.
    pub fn from_env() -> Self {
        let secs = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse::<i64>().ok())
                .filter(|v| *v > 0)
                .map(Duration::seconds)
        };
        let defaults = Self::default();
        Self {
            access_ttl: secs("ESHTAREK_ACCESS_TTL_SECS").unwrap_or(defaults.access_ttl),
            refresh_ttl: secs("ESHTAREK_REFRESH_TTL_SECS").unwrap_or(defaults.refresh_ttl),
        }
    }
}

/// Where a deployed function reloads its keys from when a token names a key it does not hold
/// (a key added by rotation): auth from its secret, the others from the published public set.
#[async_trait::async_trait]
pub trait KeySource: Send + Sync {
    async fn load(&self) -> Result<KeySet, String>;
}

/// Reloads for an unknown key id happen at most this often, whatever ids arrive (made-up ones
/// cost one read a second per instance). Any reload fetches the whole current set, so once auth
/// has published a rotated key an instance learns it within this long, whoever triggered it.
const RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Every instance also reloads when its keys are this old, so a warm auth instance starts
/// signing with a rotated key, and a removed key stops verifying, within this long.
pub const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

#[derive(Default)]
struct Loads {
    /// The last load of any kind (the keys' age).
    any: Option<std::time::Instant>,
    /// The last load for an unknown key id.
    unknown: Option<std::time::Instant>,
}

pub struct Tokens {
    keys: RwLock<Arc<KeySet>>,
    source: Option<Arc<dyn KeySource>>,
    /// Until when (ms on [`Tokens::clock_ms`]) the keys count as fresh: checked without the lock
    /// on every verification, so only a stale instance's next request takes it.
    fresh_until_ms: std::sync::atomic::AtomicU64,
    born: std::time::Instant,
    /// When the source was last read; held across a reload so concurrent requests wait for
    /// one.
    loads: tokio::sync::Mutex<Loads>,
    /// Access tokens already verified, by the SHA-256 of the token, with the key id that
    /// signed them: a dashboard's repeated reads pay the EdDSA check once per token. Bounded
    /// (cleared when full). A signing key no longer in the set ends its cached tokens at once,
    /// and expiry and not-before are checked on every use against the clock; the session is
    /// still read on every request (`Caller`), so revocation takes effect at once.
    verified: std::sync::Mutex<std::collections::HashMap<[u8; 32], (String, AccessClaims)>>,
    pub settings: TokenSettings,
}

/// Verified tokens kept per instance (one entry is ~300 bytes).
const VERIFIED_MAX: usize = 20_000;

/// What a caller asks a new access token to say.
pub struct AccessGrant<'a> {
    pub user_id: &'a str,
    pub tenant_id: Option<&'a str>,
    pub role: Option<Role>,
    pub session_id: &'a str,
}

impl Tokens {
    pub fn new(keys: KeySet, settings: TokenSettings) -> Self {
        Self {
            keys: RwLock::new(Arc::new(keys)),
            source: None,
            fresh_until_ms: std::sync::atomic::AtomicU64::new(0),
            born: std::time::Instant::now(),
            loads: tokio::sync::Mutex::new(Loads::default()),
            verified: std::sync::Mutex::new(std::collections::HashMap::new()),
            settings,
        }
    }

    /// The same, reloading from `source` (the keys given were just loaded from it) every
    /// [`REFRESH_EVERY`] and when a token names an unknown key id.
    pub fn reloading_from(mut self, source: Arc<dyn KeySource>) -> Self {
        self.source = Some(source);
        self.loads.get_mut().any = Some(std::time::Instant::now());
        self.mark_fresh();
        self
    }

    fn clock_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn mark_fresh(&self) {
        let until = self.clock_ms() + REFRESH_EVERY.as_millis() as u64;
        self.fresh_until_ms
            .store(until, std::sync::atomic::Ordering::Relaxed);
    }

    /// Reloads the keys when they are older than [`REFRESH_EVERY`] (before signing, and on
    /// every verification). A failed reload keeps the keys in use.
    pub async fn keep_fresh(&self) {
        let Some(source) = &self.source else { return };
        if self.clock_ms()
            < self
                .fresh_until_ms
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        let stale = |loads: &Loads| loads.any.is_none_or(|at| at.elapsed() >= REFRESH_EVERY);
        let mut loads = self.loads.lock().await;
        if stale(&loads) {
            self.load(source, &mut loads).await;
        }
    }

    async fn load(&self, source: &Arc<dyn KeySource>, loads: &mut Loads) {
        loads.any = Some(std::time::Instant::now());
        // Fresh for another interval even when the load fails: the keys in use stay, and the
        // source is not asked again on every request.
        self.mark_fresh();
        match source.load().await {
            Ok(keys) => *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys),
            Err(e) => tracing::warn!(error = %e, "could not reload the token keys"),
        }
    }

    /// The keys in use now.
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn issue_access(
        &self,
        grant: AccessGrant<'_>,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), ApiError> {
        let expires = now + self.settings.access_ttl;
        let claims = AccessClaims {
            iss: ISSUER.into(),
            sub: grant.user_id.into(),
            tid: grant.tenant_id.map(str::to_owned),
            role: grant.role,
            sid: grant.session_id.into(),
            jti: uuid::Uuid::now_v7().simple().to_string(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: expires.timestamp(),
            typ: ACCESS_TYPE.into(),
        };
        let keys = self.keys();
        let (kid, key) = keys.signing().ok_or_else(|| {
            ApiError::internal("this function holds no signing key: only auth issues tokens")
        })?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        let token = jsonwebtoken::encode(&header, &claims, key).expect("signing with a valid key");
        Ok((token, expires))
    }

    /// [`Tokens::verify_access`], after reloading the keys once when the token names a key id
    /// this function does not hold (a key added by rotation since it started).
    pub async fn verify_access_reloading(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<AccessClaims, ApiError> {
        self.keep_fresh().await;
        let unknown = jsonwebtoken::decode_header(token)
            .ok()
            .and_then(|h| h.kid)
            .filter(|kid| self.keys().verifying(kid).is_none());
        if let (Some(kid), Some(source)) = (unknown, &self.source) {
            let mut loads = self.loads.lock().await;
            let due = loads.unknown.is_none_or(|at| at.elapsed() >= RELOAD_EVERY);
            if due && self.keys().verifying(&kid).is_none() {
                loads.unknown = Some(std::time::Instant::now());
                self.load(source, &mut loads).await;
            }
        }
        self.verify_access(token, now)
    }

    /// Verifies signature (EdDSA only, by `kid`), issuer, type, and time against `now`.
    pub fn verify_access(&self, token: &str, now: DateTime<Utc>) -> Result<AccessClaims, ApiError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let cached = self
            .verified
            .lock()
            .ok()
            .and_then(|map| map.get(&digest).cloned());
        let claims = match cached {
            Some((kid, claims)) if self.keys().verifying(&kid).is_some() => claims,
            _ => {
                let (kid, claims) = self.verify_signature(token)?;
                if let Ok(mut map) = self.verified.lock() {
                    if map.len() >= VERIFIED_MAX {
                        map.clear();
                    }
                    map.insert(digest, (kid, claims.clone()));
                }
                claims
            }
        };
        let now = now.timestamp();
        if now >= claims.exp {
            return Err(
                ApiError::unauthenticated("the access token has expired; refresh it")
                    .with("code", "token_expired"),
            );
        }
        if now < claims.nbf {
            return Err(ApiError::unauthenticated(
                "invalid access token: not valid yet",
            ));
        }
        Ok(claims)
    }

    /// The signature, algorithm, issuer and type checks of an access token: its key id and
    /// claims.
    fn verify_signature(&self, token: &str) -> Result<(String, AccessClaims), ApiError> {
        let invalid = |why: &str| ApiError::unauthenticated(format!("invalid access token: {why}"));
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(invalid("unexpected algorithm"));
        }
        let kid = header.kid.ok_or_else(|| invalid("no key id"))?;
        let keys = self.keys();
        let key = keys
            .verifying(&kid)
            .ok_or_else(|| invalid("unknown key id"))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "sub", "iss"]);
        // Time is checked below against the injectable clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation)
            .map_err(|_| invalid("bad signature or claims"))?;
        let claims = data.claims;
        if claims.typ != ACCESS_TYPE {
            return Err(invalid("not an access token"));
        }
        Ok((kid, claims))
    }
}

/// A refresh token: `rt.<session id>.<generation>.<secret>`. Only the secret's SHA-256 is
/// stored; the generation makes a replayed (already rotated) token recognisable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub session_id: String,
    pub generation: u64,
    pub secret: String,
}

impl RefreshToken {
    pub fn new(session_id: &str, generation: u64) -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self {
            session_id: session_id.to_owned(),
            generation,
            secret: URL_SAFE_NO_PAD.encode(bytes),
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('.');
        let (tag, sid, generation, secret) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if tag != "rt" || parts.next().is_some() || sid.is_empty() || secret.len() != 43 {
            return None;
        }
        Some(Self {
            session_id: sid.to_owned(),
            generation: generation.parse().ok()?,
            secret: secret.to_owned(),
        })
    }

    pub fn encode(&self) -> String {
        format!("rt.{}.{}.{}", self.session_id, self.generation, self.secret)
    }

    pub fn hash(&self) -> String {
        sha256_hex(&self.secret)
    }
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Compares two secrets' hashes in constant time.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A random URL-safe secret of 32 bytes (invitation and password-setup tokens, API keys).
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(KeySet::ephemeral(), TokenSettings::default())
    }

    fn grant() -> AccessGrant<'static> {
        AccessGrant {
            user_id: "usr_1",
            tenant_id: Some("ten_1"),
            role: Some(Role::TenantAdmin),
            session_id: "ses_1",
        }
    }

    #[test]
    fn a_cached_verification_still_ends_with_its_key_and_its_expiry() {
        let tokens = tokens();
        let now = Utc::now();
        let (token, expires) = tokens.issue_access(grant(), now).unwrap();
        // Verified once, then answered from the cache: the same claims.
        let first = tokens.verify_access(&token, now).unwrap();
        assert_eq!(tokens.verify_access(&token, now).unwrap(), first);
        assert_eq!(tokens.verified.lock().unwrap().len(), 1);
        // Expiry is checked on every use, cached or not.
        let expired = tokens.verify_access(&token, expires).unwrap_err();
        assert_eq!(expired.status, 401);
        // A key taken out of the set ends its tokens at once, cache or not.
        *tokens.keys.write().unwrap() = Arc::new(KeySet::ephemeral());
        assert!(tokens.verify_access(&token, now).is_err());
        // A tampered token is never a cache hit (a different hash) and fails its signature.
        let mut forged = token.clone();
        forged.push('x');
        assert!(tokens.verify_access(&forged, now).is_err());
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let tokens = tokens();
        let now = Utc::now();
        let (token, expires) = tokens.issue_access(grant(), now).unwrap();
        let claims = tokens.verify_access(&token, now).unwrap();
        assert_eq!(claims.sub, "usr_1");
        assert_eq!(claims.tid.as_deref(), Some("ten_1"));
        assert_eq!(claims.role, Some(Role::TenantAdmin));
        assert_eq!(expires - now, Duration::minutes(15));
        assert!(
            tokens.verify_access(&token, expires).is_err(),
            "expired at exp"
        );
        assert!(
            tokens
                .verify_access(&token, now - Duration::seconds(5))
                .is_err(),
            "not yet valid"
        );
    }

    #[test]
    fn another_key_set_does_not_verify() {
        let (token, _) = tokens().issue_access(grant(), Utc::now()).unwrap();
        assert!(tokens().verify_access(&token, Utc::now()).is_err());
    }

    #[test]
    fn refresh_tokens_round_trip() {
        let token = RefreshToken::new("ses_abc", 3);
        assert_eq!(RefreshToken::parse(&token.encode()), Some(token.clone()));
        assert_eq!(RefreshToken::parse("rt.ses.1.short"), None);
        assert_eq!(RefreshToken::parse(&format!("{}.x", token.encode())), None);
        assert!(same_secret(&token.hash(), &token.hash()));
        assert!(!same_secret(
            &token.hash(),
            &RefreshToken::new("ses_abc", 3).hash()
        ));
    }

    /// A source that hands out `set` and counts its loads.
    struct Counting {
        set: super::super::keys::KeySetFile,
        loads: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl KeySource for Counting {
        async fn load(&self) -> Result<KeySet, String> {
            self.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            KeySet::public(&self.set)
        }
    }

    #[tokio::test]
    async fn a_verify_only_set_cannot_sign_and_reloads_for_an_unknown_key_at_most_once_a_second() {
        let signer = tokens();
        let (token, _) = signer.issue_access(grant(), Utc::now()).unwrap();
        let source = Arc::new(Counting {
            set: signer.keys().public_file(),
            loads: Default::default(),
        });
        let empty = KeySet::public(&Default::default()).unwrap();
        let verifier = Tokens::new(empty, TokenSettings::default()).reloading_from(source.clone());
        assert!(verifier.issue_access(grant(), Utc::now()).is_err());
        assert!(verifier.verify_access(&token, Utc::now()).is_err());
        // The unknown key id triggers one reload, which finds it.
        verifier
            .verify_access_reloading(&token, Utc::now())
            .await
            .unwrap();
        // A made-up key id within the second reloads nothing.
        let (other, _) = tokens().issue_access(grant(), Utc::now()).unwrap();
        assert!(verifier
            .verify_access_reloading(&other, Utc::now())
            .await
            .is_err());
        assert_eq!(source.loads.load(std::sync::atomic::Ordering::SeqCst), 1);
        // A known key id never reloads.
        verifier
            .verify_access_reloading(&token, Utc::now())
            .await
            .unwrap();
        assert_eq!(source.loads.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
