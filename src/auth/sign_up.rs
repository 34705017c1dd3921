//! Signing up: without an invitation, a recorded request the worker answers by email (a
//! link that finishes it, or a note to the address's owner), so the answer tells nobody who
//! has an account; with an invitation's token, which proves the address, the account at
//! once (see the module doc of `auth`).

use chrono::Utc;
use diesel_async::AsyncConnection as _;

use super::credentials::invalid_link;
use super::model::{self, UserRow};
use super::sessions::start_session;
use super::token::{self, MintedToken, TokenKind};
use super::{security, Requester};
use crate::audit::Trail;
use crate::error::{ApiError, ApiResult};
use crate::outbox;
use crate::text::{EmailAddress, Name, NewPassword};

/// What a sign-up made: with an invitation, the account and its session.
pub struct SignedUp {
    pub email: String,
    pub session: Option<(MintedToken, UserRow)>,
}

/// Signs up (throttled per client address; the password is hashed with no connection held).
/// `trail` is the link holder's: with an invitation, the new account accepts it.
pub async fn sign_up(
    req: &Requester<'_>,
    trail: &Trail,
    email: &EmailAddress,
    name: &Name,
    password: &NewPassword,
    invitation_token: Option<&str>,
) -> ApiResult<SignedUp> {
    let mut conn = req.db.conn().await?;
    super::SIGN_UPS_PER_ADDRESS
        .hit(&mut conn, &req.address_subject(), Utc::now())
        .await??;
    drop(conn);
    let password_hash = req.passwords.hash(password.expose().to_owned()).await?;
    let mut conn = req.db.conn().await?;
    let Some(invitation_token) = invitation_token else {
        // The same statements whether or not an account has the address: the worker
        // looks (statement counts are compared in account_emails.rs).
        conn.transaction(async |conn| {
            let expires = Utc::now() + super::SIGN_UP_VALIDITY;
            let request_id = model::insert_sign_up_request(
                conn,
                email.as_str(),
                name.as_str(),
                &password_hash,
                expires,
            )
            .await?;
            outbox::enqueue(conn, &super::ProcessSignUp { request_id }).await?;
            Ok::<_, ApiError>(())
        })
        .await?;
        return Ok(SignedUp {
            email: email.as_str().to_owned(),
            session: None,
        });
    };
    let session = token::mint(TokenKind::Session);
    let user = conn
        .transaction(async |conn| {
            let now = Utc::now();
            let user = super::open_account(
                conn,
                trail,
                email.as_str(),
                name.as_str(),
                &password_hash,
                Some(invitation_token),
                now,
            )
            .await?;
            let signed_up = security::Action::SignedUp;
            start_session(conn, user.id, &session, &req.origin, signed_up, now).await?;
            Ok::<_, ApiError>(user)
        })
        .await?;
    Ok(SignedUp {
        email: user.email.clone(),
        session: Some((session, user)),
    })
}

/// Finishes a sign-up with the token from its email: the account (its address proven), its
/// first workspace, and a session.
pub async fn complete_sign_up(
    req: &Requester<'_>,
    trail: &Trail,
    token: &str,
) -> ApiResult<(MintedToken, UserRow)> {
    let session = token::mint(TokenKind::Session);
    let mut conn = req.db.conn().await?;
    let user = conn
        .transaction(async |conn| {
            let now = Utc::now();
            let pending = model::take_sign_up(conn, &token::hash(token), now)
                .await?
                .ok_or_else(invalid_link)?;
            let user = super::open_account(
                conn,
                trail,
                &pending.email,
                &pending.name,
                &pending.password_hash,
                None,
                now,
            )
            .await?;
            let signed_up = security::Action::SignedUp;
            start_session(conn, user.id, &session, &req.origin, signed_up, now).await?;
            Ok::<_, ApiError>(user)
        })
        .await?;
    Ok((session, user))
}
