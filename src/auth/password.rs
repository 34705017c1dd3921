//! Password hashing with Argon2id (the crate's defaults: 19 MiB, 2 passes), off the async
//! executor because each hash takes tens of milliseconds of CPU.
//!
//! At most one hash runs per core ([`SLOTS`]): a flood of sign-ins (128 at once took 2.46 GiB
//! and pushed other users' requests to a 358 ms median) now waits its turn for at most
//! [`WAIT`], then answers `RATE_LIMITED`, so memory and everyone else's latency stay flat.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::TryRngCore as _;
use tokio::sync::Semaphore;

use crate::error::{ApiError, ApiResult, ErrorCode};

/// How long a password check waits for a free core before answering `RATE_LIMITED`.
pub const WAIT: Duration = Duration::from_secs(2);

/// One hash per core at a time.
static SLOTS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(slots()));
/// Hashes running now, and the most that ever ran at once (for the abuse test).
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// How many hashes may run at once: the cores this process may use.
pub fn slots() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The most hashes that have run at once in this process.
pub fn peak_concurrency() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Runs `work` on the blocking pool once a slot is free (waiting at most `wait`).
async fn limited<T: Send + 'static>(
    slots: &Semaphore,
    wait: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> ApiResult<T> {
    let permit = match tokio::time::timeout(wait, slots.acquire()).await {
        Ok(Ok(permit)) => permit,
        Ok(Err(closed)) => return Err(ApiError::internal(&closed)),
        Err(_) => {
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                "Too many password checks at once; try again in a few seconds.",
            ))
        }
    };
    let running = RUNNING.fetch_add(1, Ordering::Relaxed) + 1;
    PEAK.fetch_max(running, Ordering::Relaxed);
    let result = tokio::task::spawn_blocking(work).await;
    RUNNING.fetch_sub(1, Ordering::Relaxed);
    drop(permit);
    result.map_err(|err| ApiError::internal(&err))
}

pub async fn hash(password: String) -> ApiResult<String> {
    limited(&SLOTS, WAIT, move || {
        let salt = new_salt()?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
    })
    .await?
    .map_err(|err| ApiError::internal(&err))
}

/// Verifies `password` against `stored`; with no stored hash (unknown account) it still
/// spends the same work on a dummy hash, so the answer time does not reveal the account.
pub async fn verify(password: String, stored: Option<String>) -> ApiResult<bool> {
    let known = stored.is_some();
    limited(&SLOTS, WAIT, move || {
        let stored = stored.unwrap_or_else(dummy_hash);
        let parsed = PasswordHash::new(&stored).map_err(|err| ApiError::internal(&err))?;
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(known && matches)
    })
    .await?
}

fn new_salt() -> Result<SaltString, argon2::password_hash::Error> {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random source is available");
    SaltString::encode_b64(&bytes)
}

fn dummy_hash() -> String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| {
            let Ok(salt) = new_salt() else {
                return String::new();
            };
            Argon2::default()
                .hash_password(b"not-a-real-password", &salt)
                .map(|hash| hash.to_string())
                .unwrap_or_default()
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_only_the_right_password() {
        let stored = hash("correct horse".into()).await.expect("hashes");
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse".into(), Some(stored.clone()))
            .await
            .expect("verifies"));
        assert!(!verify("wrong horse".into(), Some(stored))
            .await
            .expect("verifies"));
        assert!(!verify("anything".into(), None).await.expect("verifies"));
    }

    #[tokio::test]
    async fn with_every_slot_taken_a_check_waits_then_is_rate_limited() {
        let slots = Semaphore::new(1);
        let held = slots.acquire().await.expect("open");
        let err = limited(&slots, Duration::from_millis(20), || 1)
            .await
            .expect_err("no free slot");
        assert_eq!(err.code(), ErrorCode::RateLimited);
        drop(held);
        assert_eq!(
            limited(&slots, Duration::from_millis(20), || 2)
                .await
                .expect("free"),
            2
        );
    }
}
