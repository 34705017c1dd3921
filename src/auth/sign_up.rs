//! Signing up: without an invitation, a recorded request the worker answers by email (a
//! link that finishes it, or a note to the address's owner), so the answer tells nobody who
//! has an account; with an invitation's token, which proves the address, the account at
//! once (see the module doc of `auth`).

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};

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
    let account = Account {
        email: email.as_str(),
        name: name.as_str(),
        password_hash: &password_hash,
    };
    let (session, user) = conn
        .transaction(async |conn| {
            let now = Utc::now();
            open_and_sign_in(conn, req, trail, account, Some(invitation_token), now).await
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
    let mut conn = req.db.conn().await?;
    conn.transaction(async |conn| {
        let now = Utc::now();
        let pending = model::take_sign_up(conn, &token::hash(token), now)
            .await?
            .ok_or_else(invalid_link)?;
        let account = Account {
            email: &pending.email,
            name: &pending.name,
            password_hash: &pending.password_hash,
        };
        open_and_sign_in(conn, req, trail, account, None, now).await
    })
    .await
}

/// The account a proven address opens.
#[derive(Clone, Copy)]
struct Account<'a> {
    email: &'a str,
    name: &'a str,
    password_hash: &'a str,
}

/// Opens the account (see [`super::open_account`]) and its first session, in the caller's
/// transaction.
async fn open_and_sign_in(
    conn: &mut AsyncPgConnection,
    req: &Requester<'_>,
    trail: &Trail,
    account: Account<'_>,
    invitation_token: Option<&str>,
    now: DateTime<Utc>,
) -> ApiResult<(MintedToken, UserRow)> {
    let user = super::open_account(
        conn,
        trail,
        account.email,
        account.name,
        account.password_hash,
        invitation_token,
        now,
    )
    .await?;
    let session = token::mint(TokenKind::Session);
    let signed_up = security::Action::SignedUp;
    start_session(conn, user.id, &session, &req.origin, signed_up, now).await?;
    Ok((session, user))
}
