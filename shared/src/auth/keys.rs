//! Token signing keys: Ed25519 (JWT `EdDSA`), each with a `kid`. The newest key signs; older
//! keys stay in the set, verification-only, until their tokens have expired, which is how keys
//! rotate. `GET /.well-known/jwks.json` publishes the public halves.
//!
//! Where the keys come from: locally, `<data dir>/jwt-keys.json` (mode 0600, generated on first
//! start) or `ESHTAREK_JWT_KEYS`; on AWS only the auth function holds the private set, read
//! from Secrets Manager at start (`key_sources`), and publishes the public halves for the other
//! functions, which verify with those alone (a set without signing keys, [`KeySet::public`]).

use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The stored form of a key set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KeySetFile {
    pub keys: Vec<StoredKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredKey {
    pub kid: String,
    /// PKCS#8 DER, base64. Absent for a retired key kept only to verify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_pkcs8: Option<String>,
    /// The raw 32-byte public key, base64url (the JWK `x`).
    pub public_x: String,
}

pub struct VerifyingKey {
    pub kid: String,
    pub x: String,
    pub decoding: DecodingKey,
}

pub struct KeySet {
    /// `None` in a verify-only set (every function but auth, on AWS).
    signing: Option<(String, EncodingKey)>,
    verifying: Vec<VerifyingKey>,
}

impl KeySet {
    /// Builds a key set; the last key with a private half signs.
    pub fn from_file(file: &KeySetFile) -> Result<Self, String> {
        let set = Self::read(file)?;
        if set.signing.is_none() {
            return Err("the key set has no signing key".into());
        }
        Ok(set)
    }

    /// A verify-only set from public halves (any private half is refused: a published set
    /// must never carry one).
    pub fn public(file: &KeySetFile) -> Result<Self, String> {
        if let Some(key) = file.keys.iter().find(|k| k.private_pkcs8.is_some()) {
            return Err(format!(
                "key {}: a public key set holds a private key",
                key.kid
            ));
        }
        Self::read(file)
    }

    /// The public halves, as a set to publish.
    pub fn public_file(&self) -> KeySetFile {
        KeySetFile {
            keys: self
                .verifying
                .iter()
                .map(|k| StoredKey {
                    kid: k.kid.clone(),
                    private_pkcs8: None,
                    public_x: k.x.clone(),
                })
                .collect(),
        }
    }

    fn read(file: &KeySetFile) -> Result<Self, String> {
        let mut verifying = Vec::new();
        let mut signing = None;
        for key in &file.keys {
            let decoding = DecodingKey::from_ed_components(&key.public_x)
                .map_err(|e| format!("key {}: bad public key: {e}", key.kid))?;
            if let Some(private) = &key.private_pkcs8 {
                let der = STANDARD
                    .decode(private)
                    .map_err(|e| format!("key {}: bad base64: {e}", key.kid))?;
                let pair = Ed25519KeyPair::from_pkcs8(&der)
                    .map_err(|e| format!("key {}: bad PKCS#8: {e}", key.kid))?;
                if URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()) != key.public_x {
                    return Err(format!("key {}: public key does not match", key.kid));
                }
                signing = Some((key.kid.clone(), EncodingKey::from_ed_der(&der)));
            }
            verifying.push(VerifyingKey {
                kid: key.kid.clone(),
                x: key.public_x.clone(),
                decoding,
            });
        }
        Ok(Self { signing, verifying })
    }

    /// A new key set of one key: the value of the deployed key secret
    /// (`eshtarek keys generate`).
    pub fn generate_file() -> KeySetFile {
        KeySetFile {
            keys: vec![Self::generate_key()],
        }
    }

    /// `file` with a new key appended, which signs from now on; the older keys keep verifying
    /// until they are removed (`eshtarek keys rotate`).
    pub fn rotate_file(file: &KeySetFile) -> Result<KeySetFile, String> {
        Self::from_file(file)?;
        let mut rotated = file.clone();
        rotated.keys.push(Self::generate_key());
        Ok(rotated)
    }

    /// A new key for a new key set (or to append to one, rotating).
    pub fn generate_key() -> StoredKey {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("system randomness");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("a fresh key parses");
        StoredKey {
            kid: format!("k{}", uuid::Uuid::now_v7().simple()),
            private_pkcs8: Some(STANDARD.encode(pkcs8.as_ref())),
            public_x: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
        }
    }

    /// A fresh in-memory key set (tests).
    pub fn ephemeral() -> Self {
        Self::from_file(&KeySetFile {
            keys: vec![Self::generate_key()],
        })
        .expect("a generated key set is valid")
    }

    /// The key set from `ESHTAREK_JWT_KEYS`, if set.
    pub fn from_env() -> Result<Option<Self>, String> {
        match std::env::var("ESHTAREK_JWT_KEYS") {
            Ok(json) => {
                let file: KeySetFile = serde_json::from_str(&json)
                    .map_err(|e| format!("ESHTAREK_JWT_KEYS is not a key set: {e}"))?;
                Self::from_file(&file).map(Some)
            }
            Err(_) => Ok(None),
        }
    }

    /// Loads the key set kept at `path`, generating and persisting one on first start.
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        if let Ok(text) = std::fs::read_to_string(path) {
            let file: KeySetFile = serde_json::from_str(&text)
                .map_err(|e| format!("{}: not a key set: {e}", path.display()))?;
            return Self::from_file(&file);
        }
        let file = KeySetFile {
            keys: vec![Self::generate_key()],
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(&file).expect("serializable");
        write_private(path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::from_file(&file)
    }

    /// The key that signs, if this set holds one.
    pub fn signing(&self) -> Option<(&str, &EncodingKey)> {
        self.signing.as_ref().map(|(kid, key)| (kid.as_str(), key))
    }

    pub fn verifying(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verifying.iter().find(|k| k.kid == kid)
    }

    /// The public keys as a JWK Set.
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .verifying
            .iter()
            .map(|k| {
                json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "alg": "EdDSA",
                    "use": "sig",
                    "kid": k.kid,
                    "x": k.x,
                })
            })
            .collect();
        json!({ "keys": keys })
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
