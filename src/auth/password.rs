//! Password hashing with Argon2id (the crate's defaults: 19 MiB, 2 passes), off the async
//! executor because each hash takes tens of milliseconds of CPU.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::TryRngCore as _;

use crate::error::{ApiError, ApiResult};

pub async fn hash(password: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || {
        let salt = new_salt()?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
    })
    .await
    .map_err(|err| ApiError::internal(&err))?
    .map_err(|err| ApiError::internal(&err))
}

/// Verifies `password` against `stored`; with no stored hash (unknown account) it still
/// spends the same work on a dummy hash, so the answer time does not reveal the account.
pub async fn verify(password: String, stored: Option<String>) -> ApiResult<bool> {
    let known = stored.is_some();
    tokio::task::spawn_blocking(move || {
        let stored = stored.unwrap_or_else(dummy_hash);
        let parsed = PasswordHash::new(&stored).map_err(|err| ApiError::internal(&err))?;
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(known && matches)
    })
    .await
    .map_err(|err| ApiError::internal(&err))?
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
}
