//! Passwords: argon2id with OWASP's recommended parameters (m = 19 MiB, t = 2, p = 1), the
//! policy users see, and a dummy hash verified for unknown emails so timing does not reveal
//! which emails exist.
//!
//! Passwords are NFKC-normalised before hashing (the same password typed on two keyboards is
//! one password, as NIST SP 800-63B asks). Hashing runs behind one gate per process: at most
//! one argon2 run per core (19 MiB each), a bounded queue of waiters and a wait limit, past
//! which the answer is a 503 with `Retry-After` — so a burst of logins or registrations costs
//! a few tens of MiB, never gigabytes and hundreds of threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::Semaphore;
use unicode_normalization::UnicodeNormalization;

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

/// The password as it is hashed and compared: NFKC.
pub fn normalize(password: &str) -> String {
    password.nfkc().collect()
}

/// Checks the password policy (on the normalised password); `field` names the request field
/// in the problem document.
pub fn check_policy(password: &str, email: &str, field: &str) -> Result<(), ApiError> {
    let password = &normalize(password);
    if password.chars().any(char::is_control) {
        return Err(ApiError::validation(
            field,
            "the password may not contain control characters",
        ));
    }
    if crate::text::is_blank(password) {
        return Err(ApiError::validation(
            field,
            "the password may not be only spaces or invisible characters",
        ));
    }
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

/// The hashing gate's settings: `ESHTAREK_HASH_CONCURRENCY` (default: the cores),
/// `ESHTAREK_HASH_QUEUE` (waiters, default 16 per slot), `ESHTAREK_HASH_WAIT_MS` (default 5000).
struct Gate {
    slots: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
    max_wait: Duration,
}

impl Gate {
    fn new(slots: usize, max_waiting: usize, max_wait: Duration) -> Self {
        Gate {
            slots: Semaphore::new(slots),
            waiting: AtomicUsize::new(0),
            max_waiting,
            max_wait,
        }
    }

    /// Runs `job` on a blocking thread once a slot is free; a 503 when the queue is full or
    /// the wait runs out.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(busy());
        }
        let permit = tokio::time::timeout(self.max_wait, self.slots.acquire()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        let Ok(Ok(_permit)) = permit else {
            return Err(busy());
        };
        tokio::task::spawn_blocking(job)
            .await
            .map_err(ApiError::internal)?
    }
}

fn gate() -> &'static Gate {
    static GATE: OnceLock<Gate> = OnceLock::new();
    GATE.get_or_init(|| {
        let env = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|v| *v > 0)
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let slots = env("ESHTAREK_HASH_CONCURRENCY").unwrap_or(cores);
        Gate::new(
            slots,
            env("ESHTAREK_HASH_QUEUE").unwrap_or(16 * slots),
            Duration::from_millis(env("ESHTAREK_HASH_WAIT_MS").unwrap_or(5_000) as u64),
        )
    })
}

fn busy() -> ApiError {
    ApiError::unavailable("too many sign-ins at once; retry in a moment").with("code", "busy")
}

/// Runs one argon2 job behind the process's gate.
async fn gated<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    gate().run(job).await
}

/// Hashes (normalised) on a blocking thread: argon2 is deliberately slow and must not stall
/// the runtime.
pub async fn hash(password: String) -> Result<String, ApiError> {
    gated(move || {
        let salt = SaltString::generate(&mut OsRng);
        hasher()
            .hash_password(normalize(&password).as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(ApiError::internal)
    })
    .await
}

/// Verifies against a stored hash, or against the dummy hash when there is none (unknown
/// email, invited user without a password), so both paths cost the same. The comparison inside
/// argon2 is constant-time. A hash made before normalisation is still matched by the password
/// as typed.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, ApiError> {
    gated(move || {
        let known = stored.is_some();
        let encoded = stored.unwrap_or_else(|| dummy_hash().to_owned());
        let parsed = PasswordHash::new(&encoded).map_err(ApiError::internal)?;
        let normalized = normalize(&password);
        let ok = hasher()
            .verify_password(normalized.as_bytes(), &parsed)
            .is_ok()
            || (normalized != password
                && hasher()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok());
        Ok(ok && known)
    })
    .await
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
        assert!(check_policy("            ", "a@example.com", "password").is_err());
        assert!(check_policy("long enough\u{0}password", "a@example.com", "password").is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_gate_runs_one_per_slot_queues_a_few_and_refuses_the_rest() {
        let gate = std::sync::Arc::new(Gate::new(1, 1, Duration::from_millis(100)));
        let job = || {
            std::thread::sleep(Duration::from_millis(300));
            Ok(())
        };
        let running = tokio::spawn({
            let gate = gate.clone();
            async move { gate.run(job).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        // One waits (and gives up after 100 ms); a third finds the queue full at once.
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.run(job).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = std::time::Instant::now();
        let full = gate.run(job).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(50));
        assert_eq!(full.status, 503);
        assert_eq!(full.more.retry_after, Some(1));
        assert_eq!(waiting.await.unwrap().unwrap_err().status, 503);
        assert!(running.await.unwrap().is_ok());
        // Free again: the next one runs.
        assert!(gate.run(|| Ok(())).await.is_ok());
    }

    #[tokio::test]
    async fn the_same_password_in_another_unicode_form_matches() {
        // "Å" as one code point and as A + combining ring; full-width digits.
        let hashed = hash("p\u{00C5}ssword 12345".into()).await.unwrap();
        assert!(
            verify("pA\u{030A}ssword 12345".into(), Some(hashed.clone()))
                .await
                .unwrap()
        );
        let wide = hash("secret \u{FF11}\u{FF12}\u{FF13}\u{FF14}".into())
            .await
            .unwrap();
        assert!(verify("secret 1234".into(), Some(wide)).await.unwrap());
    }
}
