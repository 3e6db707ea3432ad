//! Passwords: argon2id with OWASP's recommended parameters (m = 19 MiB, t = 2, p = 1), the
//! policy users see, and a dummy hash verified for unknown emails so timing does not reveal
//! which emails exist.

use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::ApiError;

pub const MIN_LENGTH: usize = 10;
pub const MAX_LENGTH: usize = 256;

fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Checks the password policy; `field` names the request field in the problem document.
pub fn check_policy(password: &str, email: &str, field: &str) -> Result<(), ApiError> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(ApiError::validation(
            field,
            format!("the password needs at least {MIN_LENGTH} characters"),
        ));
    }
    if length > MAX_LENGTH {
        return Err(ApiError::validation(
            field,
            format!("the password may have at most {MAX_LENGTH} characters"),
        ));
    }
    if password.trim().eq_ignore_ascii_case(email.trim()) {
        return Err(ApiError::validation(
            field,
            "the password may not be the email",
        ));
    }
    Ok(())
}

/// Hashes on a blocking thread: argon2 is deliberately slow and must not stall the runtime.
pub async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        hasher()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(ApiError::internal)
    })
    .await
    .map_err(ApiError::internal)?
}

/// Verifies against a stored hash, or against the dummy hash when there is none (unknown
/// email, invited user without a password), so both paths cost the same. The comparison inside
/// argon2 is constant-time.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let encoded = stored.unwrap_or_else(|| dummy_hash().to_owned());
        let parsed = PasswordHash::new(&encoded).map_err(ApiError::internal)?;
        let ok = hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(ok && known)
    })
    .await
    .map_err(ApiError::internal)?
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        hasher()
            .hash_password(b"not a password anyone has", &salt)
            .expect("hashing the dummy password")
            .to_string()
    })
}

/// Computes the dummy hash ahead of the first login (it costs one argon2 run).
pub fn warm_up() {
    let _ = dummy_hash();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_use_argon2id_with_owasp_parameters() {
        let hashed = hash("correct horse battery".into()).await.unwrap();
        assert!(
            hashed.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hashed}"
        );
        assert!(verify("correct horse battery".into(), Some(hashed.clone()))
            .await
            .unwrap());
        assert!(!verify("wrong horse battery".into(), Some(hashed))
            .await
            .unwrap());
        assert!(!verify("anything at all".into(), None).await.unwrap());
    }

    #[test]
    fn policy_names_the_field() {
        let short = check_policy("short", "a@b.co", "password").unwrap_err();
        assert_eq!(short.status, 422);
        assert_eq!(short.more.field.as_deref(), Some("password"));
        assert!(check_policy("A@Example.com", "a@example.com", "password").is_err());
        assert!(check_policy("long enough password", "a@example.com", "password").is_ok());
    }
}
