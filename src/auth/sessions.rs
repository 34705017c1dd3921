//! Signing in and out, sessions and personal access tokens.
//!
//! Rules: sign-in attempts are throttled, each counted before any hashing, by client
//! address; from the fifth in a row without a success, by the address typed *from that
//! network* (a stranger elsewhere never blocks the owner); and past an hourly ceiling of
//! attempts from networks the account has not signed in from, by taking turns at the
//! account, so guesses spread over many networks are paced while the owner at home is not
//! (and is told). An unknown address behaves exactly like a known one, and a wrong password
//! and an unknown address get the same answer. Every new or ended session or token is on the account's security log, written in
//! the transaction that makes or ends it. A personal access token needs a signed-in session
//! (no token makes another) and a verified address; it may carry an expiry within a year,
//! `readOnly`, and the workspaces it may reach.

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use serde_json::json;
use uuid::Uuid;

use super::model::{self, NewToken, UserRow};
use super::security::{self, Origin};
use super::token::{self, MintedToken, TokenKind};
use super::{AccountError, Requester};
use crate::error::{ApiError, ApiResult};
use crate::text::{EmailAddress, Name};

/// Stores `session` as a new signed-in session of `user_id`, with the request's user agent,
/// and appends `action` (what began it) to the account's security log; call inside the
/// transaction that signs in.
pub async fn start_session(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    session: &MintedToken,
    origin: &Origin,
    action: security::Action,
    now: DateTime<Utc>,
) -> diesel::QueryResult<Uuid> {
    let new = NewToken {
        user_agent: origin.user_agent.as_deref(),
        ..NewToken::default()
    };
    let id = model::insert_token(conn, user_id, "session", "Session", &session.hash, new).await?;
    let event = security::Event::new(action).token(id);
    security::record(conn, user_id, origin, event, now).await?;
    // The owner's own network from now on: strangers' guesses never pace it.
    let network = crate::throttle::network_subject(origin.client);
    model::remember_network(conn, user_id, &network, now).await?;
    Ok(id)
}

/// The sign-in backoff's subject: the address as typed, trimmed and lower-cased (so
/// `Ada@x` and `ada@x` share one count), cut to the longest valid address.
pub fn throttle_subject_of_email(email: &str) -> String {
    email.trim().to_lowercase().chars().take(320).collect()
}

/// Signs in with email and password: a new session (its secret, once) and the account.
pub async fn sign_in(
    req: &Requester<'_>,
    email: &str,
    password: String,
) -> ApiResult<(MintedToken, UserRow)> {
    let invalid = || ApiError::from(AccountError::InvalidCredentials);
    let now = Utc::now();
    let account = throttle_subject_of_email(email);
    let network = req.network();
    let from_here = format!("{account}|{network}");
    let mut conn = req.db.conn().await?;
    super::SIGN_INS_PER_ADDRESS
        .hit(&mut conn, &req.address_subject(), now)
        .await??;
    super::SIGN_IN_FAILURES
        .attempt(&mut conn, &from_here, now)
        .await??;
    let stranger = stranger_turn(&mut conn, &account, &network, now).await?;
    let credentials = match EmailAddress::parse(email) {
        Ok(email) => model::find_credentials(&mut conn, email.as_str()).await?,
        Err(_) => None,
    };
    // No connection is held while the password is hashed (19 MiB and a core), nor while
    // an attempt waits its turn.
    drop(conn);
    if let Some(Turn { wait, .. }) = stranger {
        tokio::time::sleep(wait).await;
    }
    let (user_id, stored) = match credentials {
        Some((id, hash)) => (Some(id), Some(hash)),
        None => (None, None),
    };
    let verified = req.passwords.verify(password, stored).await?;
    let mut conn = req.db.conn().await?;
    let Some(user_id) = user_id.filter(|_| verified) else {
        if stranger.is_some_and(|turn| turn.over_ceiling) {
            tell_of_guessing(&mut conn, &account, Utc::now()).await?;
        }
        return Err(invalid());
    };
    super::SIGN_IN_FAILURES
        .succeeded(&mut conn, &from_here)
        .await?;
    let session = token::mint(TokenKind::Session);
    let origin = &req.origin;
    conn.transaction(async |conn| {
        let signed_in = security::Action::SignedIn;
        start_session(conn, user_id, &session, origin, signed_in, Utc::now()).await
    })
    .await?;
    let user = model::find_user(&mut conn, user_id)
        .await?
        .ok_or_else(invalid)?;
    Ok((session, user))
}

/// An attempt from a network the account has not begun a session from: how long it waits
/// for its turn, and whether the account is over its hourly ceiling.
#[derive(Clone, Copy)]
struct Turn {
    wait: std::time::Duration,
    over_ceiling: bool,
}

/// Counts an attempt at `account` (an address as typed) from `network` against the
/// account's ceiling, before any hashing, unless the account began a session from that
/// network lately (`None`: the owner at home is never paced). Past the ceiling the attempt
/// takes its turn ([`super::STRANGER_PACE`]), or is refused while the queue is full. The
/// same statements whether or not an account has the address.
async fn stranger_turn(
    conn: &mut AsyncPgConnection,
    account: &str,
    network: &str,
    now: DateTime<Utc>,
) -> ApiResult<Option<Turn>> {
    let since = now - super::SIGN_IN_NETWORK_MEMORY;
    if model::signed_in_from(conn, account, network, since).await? {
        return Ok(None);
    }
    if super::SIGN_IN_CEILING
        .hit(conn, account, now)
        .await?
        .is_ok()
    {
        let wait = std::time::Duration::ZERO;
        return Ok(Some(Turn {
            wait,
            over_ceiling: false,
        }));
    }
    let wait = super::STRANGER_PACE.claim(conn, account, now).await??;
    Ok(Some(Turn {
        wait,
        over_ceiling: true,
    }))
}

/// A wrong password from a stranger past the ceiling: the account's owner is told, at most
/// once a day (the day's notice is claimed in the transaction that records it). An address
/// without an account does the same work: its job finds no notice.
async fn tell_of_guessing(
    conn: &mut AsyncPgConnection,
    account: &str,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    conn.transaction(async |conn| {
        let today = super::FAILED_SIGN_IN_NOTICES
            .hit(conn, account, now)
            .await?;
        if today.is_err() {
            return Ok(());
        }
        let notice = model::insert_notice_for_address(conn, account, "sign_in_failures").await?;
        let notice_id = notice.unwrap_or_else(Uuid::now_v7);
        crate::outbox::enqueue(conn, &super::SendAccountNotice { notice_id }).await
    })
    .await?;
    Ok(())
}

/// Ends the token the request was made with.
pub async fn sign_out(conn: &mut AsyncPgConnection, req: &Requester<'_>) -> ApiResult<()> {
    let caller = req.caller()?;
    conn.transaction(async |conn| {
        model::revoke_token(conn, caller.user_id, caller.token_id, None).await?;
        let event = security::Event::new(security::Action::SignedOut).token(caller.token_id);
        req.log(conn, caller.user_id, event).await
    })
    .await?;
    Ok(())
}

/// What [`revoke`] ends: a session, from a session; or a personal access token, from a
/// session or from that token itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revocable {
    Session,
    PersonalToken,
}

/// Ends one of the caller's sessions or personal tokens; NOT_FOUND if it is not theirs or
/// not of that kind. Sessions are ended only by sessions, and a personal token ends only
/// itself, so a leaked token cannot sign its owner out or end their other tokens.
pub async fn revoke(
    conn: &mut AsyncPgConnection,
    req: &Requester<'_>,
    token_id: Uuid,
    what: Revocable,
) -> ApiResult<()> {
    let caller = req.caller()?;
    if what == Revocable::Session || token_id != caller.token_id {
        caller.ensure_session()?;
    }
    let (kind, not_found, action) = match what {
        Revocable::Session => ("session", "Session", security::Action::SessionRevoked),
        Revocable::PersonalToken => (
            "personal",
            "Access token",
            security::Action::AccessTokenRevoked,
        ),
    };
    conn.transaction(async |conn| {
        if !model::revoke_token(conn, caller.user_id, token_id, Some(kind)).await? {
            return Err(AccountError::NotFound(not_found).into());
        }
        let event = security::Event::new(action).token(token_id);
        req.log(conn, caller.user_id, event).await?;
        Ok(())
    })
    .await
}

/// Ends every session of the caller but this one; answers how many ended.
pub async fn revoke_other_sessions(
    conn: &mut AsyncPgConnection,
    req: &Requester<'_>,
) -> ApiResult<u64> {
    let caller = req.caller()?;
    caller.ensure_session()?;
    let ended = conn
        .transaction(async |conn| {
            let ended = model::revoke_other_sessions(conn, caller.user_id, caller.token_id).await?;
            let event = security::Event::new(security::Action::OtherSessionsRevoked)
                .details(json!({ "count": ended }));
            req.log(conn, caller.user_id, event).await?;
            diesel::QueryResult::Ok(ended)
        })
        .await?;
    Ok(ended as u64)
}

/// What a new personal access token may do.
pub struct TokenGrant {
    pub name: Name,
    pub expires_at: Option<DateTime<Utc>>,
    pub read_only: bool,
    /// The only workspaces it reaches (the caller's, checked by the guard); `None`: all.
    pub workspace_ids: Option<Vec<Uuid>>,
}

/// Makes a personal access token: its id and its secret, shown once.
pub async fn create_access_token(
    conn: &mut AsyncPgConnection,
    req: &Requester<'_>,
    grant: TokenGrant,
    now: DateTime<Utc>,
) -> ApiResult<(Uuid, MintedToken)> {
    let caller = req.caller()?;
    caller.ensure_session()?;
    if let Some(at) = grant.expires_at {
        if at <= now || at > now + super::MAX_TOKEN_LIFETIME {
            return Err(AccountError::TokenExpiry.into());
        }
    }
    let verified = model::find_user(conn, caller.user_id)
        .await?
        .is_some_and(|user| user.email_verified_at.is_some());
    if !verified {
        return Err(AccountError::Unverified.into());
    }
    super::TOKENS_PER_ACCOUNT_PER_HOUR
        .hit(conn, &caller.user_id.to_string(), now)
        .await??;
    let minted = token::mint(TokenKind::PersonalAccess);
    let id = conn
        .transaction(async |conn| {
            let new = NewToken {
                expires_at: grant.expires_at,
                read_only: grant.read_only,
                workspace_ids: grant.workspace_ids.as_deref(),
                user_agent: None,
            };
            let name = grant.name.as_str();
            let id = model::insert_token(conn, caller.user_id, "personal", name, &minted.hash, new)
                .await?;
            let event = security::Event::new(security::Action::AccessTokenCreated)
                .token(id)
                .details(json!({
                    "name": name,
                    "readOnly": grant.read_only,
                    "expiresAt": grant.expires_at.map(|at| at.to_rfc3339()),
                    "workspaceIds": grant.workspace_ids,
                }));
            req.log(conn, caller.user_id, event).await?;
            diesel::QueryResult::Ok(id)
        })
        .await?;
    Ok((id, minted))
}
