//! Accounts and authentication: sign-up (which creates the first workspace), sign-in,
//! sessions and personal access tokens.
//!
//! Rules: emails are trimmed and unique case-insensitively; passwords are Argon2id hashes;
//! tokens are 256-bit random strings shown once and stored as SHA-256; a wrong password and
//! an unknown email get the same answer; revoked tokens stop working at once.

pub mod graphql;
pub mod model;
pub mod password;
pub mod token;

use chrono::Duration;
use uuid::Uuid;

use crate::db::Db;
use crate::error::ApiResult;
use crate::throttle::{Backoff, Window};

/// How long an email-verification link works.
pub const VERIFY_EMAIL_VALIDITY: Duration = Duration::hours(24);
/// How long a password-reset link works.
pub const RESET_PASSWORD_VALIDITY: Duration = Duration::hours(1);
/// Reset emails per account per hour; further requests answer the same and send nothing.
pub const RESETS_PER_HOUR: i64 = 5;
/// Verification emails per account per hour (the one sent at sign-up counts).
pub const VERIFICATIONS_PER_HOUR: i64 = 5;
/// Sign-in attempts per client address (an office behind one address still fits).
pub const SIGN_INS_PER_ADDRESS: Window = Window {
    name: "sign_in:address",
    limit: 100,
    window: std::time::Duration::from_secs(15 * 60),
};
/// Wrong passwords for one email address: from the 5th in a row, each blocks further
/// attempts for 1 s, doubling up to 15 minutes; a right one clears the count. Keyed by the
/// address typed, so unknown addresses behave exactly like known ones.
pub const SIGN_IN_FAILURES: Backoff = Backoff {
    name: "sign_in:email",
    free: 5,
    max: std::time::Duration::from_secs(15 * 60),
};
/// Sign-ups per client address per hour.
pub const SIGN_UPS_PER_ADDRESS: Window = Window {
    name: "sign_up:address",
    limit: 20,
    window: std::time::Duration::from_secs(3600),
};
/// Password-reset requests per client address per hour, whatever addresses they name.
pub const RESET_REQUESTS_PER_ADDRESS: Window = Window {
    name: "reset:address",
    limit: 10,
    window: std::time::Duration::from_secs(3600),
};
/// Verification-email requests per client address per hour.
pub const VERIFICATION_REQUESTS_PER_ADDRESS: Window = Window {
    name: "verify:address",
    limit: 10,
    window: std::time::Duration::from_secs(3600),
};
/// A token's `last_used_at` is written again only after this long.
pub const TOKEN_TOUCH_INTERVAL: Duration = Duration::minutes(5);

/// Who is calling: the signed-in user and the token they used.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user_id: Uuid,
    pub token_id: Uuid,
}

/// Resolves `Authorization: Bearer <token>` to a caller; unknown or revoked tokens give none.
pub async fn authenticate(db: &Db, bearer: Option<&str>) -> ApiResult<Option<Caller>> {
    let Some(token) = bearer else {
        return Ok(None);
    };
    // `access_tokens` has no row-level security: any context will do.
    let mut conn = db.conn_outside_tenancy().await?;
    let found = model::caller_for_token_hash(&mut conn, &token::hash(token)).await?;
    let Some((token_id, user_id, last_used)) = found else {
        return Ok(None);
    };
    // "Last used" to within a few minutes: a write per token every few minutes, not one
    // per request.
    let now = chrono::Utc::now();
    if last_used.is_none_or(|at| now - at >= TOKEN_TOUCH_INTERVAL) {
        model::touch_token(&mut conn, token_id, now).await?;
    }
    Ok(Some(Caller { user_id, token_id }))
}
