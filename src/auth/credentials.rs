//! The proofs an account rests on: its address (verification, change) and its password
//! (reset, change), and deleting it.
//!
//! Rules: an emailed link is single use; every invalid, used, expired or other-purpose link
//! gets the same NOT_FOUND. Proving the address (verification, reset) signs out whatever was
//! made before it, so whoever registered an address before its owner keeps nothing. Acting
//! with the password (change it, change the address, delete the account) needs a signed-in
//! session, and its checks are throttled per session (nobody else's guesses block the
//! owner). A new password (reset or change)
//! ends every session, token and pending link made under the old one; a confirmed address
//! change ends every other session and token, and the pending links. A reset request does the same
//! work whether or not an account has the address: the worker looks.

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use serde_json::json;

use super::model::{self, LinkPurpose, UserRow};
use super::sessions::{start_session, throttle_subject_of_email};
use super::token::{self, MintedToken, TokenKind};
use super::{security, AccountError, Requester};
use crate::db::is_unique_violation;
use crate::error::{ApiError, ApiResult};
use crate::outbox;
use crate::text::{EmailAddress, NewPassword};

pub fn invalid_link() -> ApiError {
    AccountError::InvalidLink.into()
}

/// Opens the emailed one-time link `token` for `purpose` and marks it used, inside the
/// transaction that acts on it: its row, or the same NOT_FOUND for every invalid, used,
/// expired or other-purpose link.
pub async fn use_link(
    conn: &mut AsyncPgConnection,
    token: &str,
    purpose: LinkPurpose,
    now: DateTime<Utc>,
) -> ApiResult<model::AccountTokenRow> {
    let hash = token::hash(token);
    model::lock_link_owner(conn, &hash).await?;
    let link = model::open_account_token(conn, &hash, purpose, now)
        .await?
        .ok_or_else(invalid_link)?;
    model::use_account_token(conn, link.id, now).await?;
    Ok(link)
}

/// The caller's account once `password` is proven to be theirs: a session only. Checks
/// are throttled per session ([`super::PASSWORD_CHECK_FAILURES`], counted before the hash),
/// so nobody else's guesses block the signed-in owner.
async fn confirm_password(req: &Requester<'_>, password: String) -> ApiResult<UserRow> {
    let caller = req.caller()?;
    caller.ensure_session()?;
    let session = caller.token_id.to_string();
    let mut conn = req.db.conn().await?;
    super::PASSWORD_CHECK_FAILURES
        .attempt(&mut conn, &session, Utc::now())
        .await??;
    let user = model::find_user(&mut conn, caller.user_id)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    let stored = model::find_credentials(&mut conn, &user.email)
        .await?
        .map(|(_, hash)| hash);
    drop(conn);
    if !req.passwords.verify(password, stored).await? {
        return Err(AccountError::WrongPassword.into());
    }
    let mut conn = req.db.conn().await?;
    super::PASSWORD_CHECK_FAILURES
        .succeeded(&mut conn, &session)
        .await?;
    Ok(user)
}

/// Proves the address with a verification link and signs out every session and token made
/// before, but the one the request is made with (if it is the account's).
pub async fn verify_email(
    conn: &mut AsyncPgConnection,
    req: &Requester<'_>,
    token: &str,
    now: DateTime<Utc>,
) -> ApiResult<UserRow> {
    conn.transaction(async |conn| {
        let link = use_link(conn, token, LinkPurpose::VerifyEmail, now).await?;
        let keep = req.own_token(link.user_id);
        let revoked = model::revoke_tokens_before(conn, link.user_id, now, keep).await?;
        model::mark_email_verified(conn, link.user_id, now).await?;
        let event = security::Event::new(security::Action::EmailVerified)
            .details(json!({ "revoked": revoked }));
        req.log(conn, link.user_id, event).await?;
        model::find_user(conn, link.user_id)
            .await?
            .ok_or_else(invalid_link)
    })
    .await
}

/// Queues a new verification link for the caller: at most 5 an hour, none once verified.
pub async fn resend_verification_email(
    conn: &mut AsyncPgConnection,
    req: &Requester<'_>,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let caller = req.caller()?.user_id;
    super::VERIFICATION_REQUESTS_PER_ADDRESS
        .hit(conn, &req.address_subject(), now)
        .await??;
    conn.transaction(async |conn| {
        let user = model::find_user(conn, caller)
            .await?
            .ok_or_else(ApiError::unauthenticated)?;
        if user.email_verified_at.is_some() {
            return Err(AccountError::AlreadyVerified.into());
        }
        let hour_ago = now - chrono::Duration::hours(1);
        let recent =
            model::account_tokens_since(conn, caller, LinkPurpose::VerifyEmail, hour_ago).await?;
        if recent >= super::VERIFICATIONS_PER_HOUR {
            return Err(AccountError::TooManyVerifications.into());
        }
        let expires = now + super::VERIFY_EMAIL_VALIDITY;
        let token_id =
            model::insert_account_token(conn, caller, LinkPurpose::VerifyEmail, expires, None)
                .await?;
        outbox::enqueue(conn, &super::SendEmailVerification { token_id }).await?;
        let event = security::Event::new(security::Action::VerificationEmailSent);
        req.log(conn, caller, event).await?;
        Ok(())
    })
    .await
}

/// Records a reset request for the address typed and queues it: the same statements
/// whether or not an account has the address (the worker finds the account, applies its
/// hourly cap and makes the link; statement counts are compared in account_emails.rs).
pub async fn request_password_reset(
    conn: &mut AsyncPgConnection,
    req: &Requester<'_>,
    email: &str,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    // Per requester, whichever addresses they name: nobody can spend another person's
    // reset emails from one place (the per-account cap, applied by the worker, holds too).
    super::RESET_REQUESTS_PER_ADDRESS
        .hit(conn, &req.address_subject(), now)
        .await??;
    let typed = throttle_subject_of_email(email);
    conn.transaction(async |conn| {
        let request_id = model::insert_reset_request(conn, &typed).await?;
        outbox::enqueue(conn, &super::ProcessPasswordReset { request_id }).await?;
        Ok(())
    })
    .await
}

/// Sets a new password with a reset link and signs the account out everywhere.
pub async fn reset_password(
    req: &Requester<'_>,
    token: &str,
    password: &NewPassword,
) -> ApiResult<()> {
    let password_hash = req.passwords.hash(password.expose().to_owned()).await?;
    let mut conn = req.db.conn().await?;
    conn.transaction(async |conn| {
        let now = Utc::now();
        let link = use_link(conn, token, LinkPurpose::ResetPassword, now).await?;
        model::set_password(conn, link.user_id, &password_hash).await?;
        // Sessions and personal tokens alike: whoever held the account before the
        // address was proven (a pre-registration) keeps nothing.
        model::revoke_all_tokens(conn, link.user_id).await?;
        // Nor any link they asked for with the old password (an address change above all).
        let voided = model::void_links(conn, link.user_id, now).await?;
        // The reset email reached this address: that proves it too.
        model::mark_email_verified(conn, link.user_id, now).await?;
        let event = security::Event::new(security::Action::PasswordReset)
            .details(json!({ "linksVoided": voided }));
        req.log(conn, link.user_id, event).await?;
        Ok(())
    })
    .await
}

/// Changes the caller's password after the current one: everything is signed out, and a
/// new session (answered) begins for this device; the address is told.
pub async fn change_password(
    req: &Requester<'_>,
    current_password: String,
    new_password: &NewPassword,
) -> ApiResult<(MintedToken, UserRow)> {
    let user = confirm_password(req, current_password).await?;
    let password_hash = req.passwords.hash(new_password.expose().to_owned()).await?;
    let session = token::mint(TokenKind::Session);
    let mut conn = req.db.conn().await?;
    conn.transaction(async |conn| {
        let now = Utc::now();
        model::set_password(conn, user.id, &password_hash).await?;
        model::revoke_all_tokens(conn, user.id).await?;
        model::void_links(conn, user.id, now).await?;
        let changed = security::Action::PasswordChanged;
        start_session(conn, user.id, &session, &req.origin, changed, now).await?;
        let notice_id = model::insert_notice(conn, &user, "password_changed", None).await?;
        outbox::enqueue(conn, &super::SendAccountNotice { notice_id }).await?;
        Ok::<_, ApiError>(())
    })
    .await?;
    Ok((session, user))
}

/// Asks to move the caller's address to `new_email`, after the password: a link to the new
/// address, a notice to the current one.
pub async fn change_email(
    req: &Requester<'_>,
    new_email: &EmailAddress,
    password: String,
) -> ApiResult<()> {
    let user = confirm_password(req, password).await?;
    let mut conn = req.db.conn().await?;
    conn.transaction(async |conn| {
        let expires = Utc::now() + super::CHANGE_EMAIL_VALIDITY;
        let to = Some(new_email.as_str());
        let token_id =
            model::insert_account_token(conn, user.id, LinkPurpose::ChangeEmail, expires, to)
                .await?;
        outbox::enqueue(conn, &super::SendEmailChange { token_id }).await?;
        let notice_id = model::insert_notice(conn, &user, "email_change_requested", to).await?;
        outbox::enqueue(conn, &super::SendAccountNotice { notice_id }).await?;
        let event = security::Event::new(security::Action::EmailChangeRequested)
            .details(json!({ "to": new_email.as_str() }));
        req.log(conn, user.id, event).await?;
        Ok(())
    })
    .await
}

/// Moves the account to the address the link was sent to, which it proves; CONFLICT if
/// another account took the address meanwhile.
pub async fn confirm_email_change(
    conn: &mut AsyncPgConnection,
    req: &Requester<'_>,
    token: &str,
    now: DateTime<Utc>,
) -> ApiResult<UserRow> {
    conn.transaction(async |conn| {
        let link = use_link(conn, token, LinkPurpose::ChangeEmail, now).await?;
        let new_email = link.new_email.clone().ok_or_else(invalid_link)?;
        let old_email = model::find_user(conn, link.user_id)
            .await?
            .ok_or_else(invalid_link)?
            .email;
        model::set_email(conn, link.user_id, &new_email, now)
            .await
            .map_err(|err| {
                if is_unique_violation(&err, model::EMAIL_UNIQUE_INDEX) {
                    AccountError::EmailTakenMeanwhile.into()
                } else {
                    ApiError::from(err)
                }
            })?;
        // As a reset does: whoever else was signed in, or holds a link sent to the old
        // address, keeps nothing; this request's own session (if it is the account's) stays.
        let keep = req.own_token(link.user_id);
        let revoked = model::revoke_tokens_before(conn, link.user_id, now, keep).await?;
        let voided = model::void_links(conn, link.user_id, now).await?;
        let event = security::Event::new(security::Action::EmailChanged).details(json!({
            "from": old_email,
            "to": new_email,
            "revoked": revoked,
            "linksVoided": voided,
        }));
        req.log(conn, link.user_id, event).await?;
        model::find_user(conn, link.user_id)
            .await?
            .ok_or_else(invalid_link)
    })
    .await
}

/// Deletes the caller's account after the password (see [`super::delete_account`]).
pub async fn delete_account(
    req: &Requester<'_>,
    trail: &crate::audit::Trail,
    password: String,
) -> ApiResult<()> {
    let user = confirm_password(req, password).await?;
    let mut conn = req.db.conn().await?;
    conn.transaction(async |conn| super::delete_account(conn, trail, &user, Utc::now()).await)
        .await?;
    Ok(())
}
