//! The security log: what happened to an account's access, for its owner to review
//! (`me.securityLog`), like GitHub's or Google's.
//!
//! Rules:
//! - The change that signs in, out, or changes a password, an address, a session or a token
//!   appends its event with [`record`] in its own transaction: the event exists exactly
//!   when the change does, and a refused attempt writes nothing (failed sign-ins are
//!   throttled, not logged: a stranger typing an address must not fill its owner's log).
//! - An event carries where it came from ([`Origin`]: request id, client address, user
//!   agent), the session or token it made or ended, and details that matter (a token's
//!   name, the address moved from and to). Never a secret.
//! - Only the account reads it, newest first. The account's deletion takes it along;
//!   events past the audit retention (`AUDIT_RETENTION_DAYS`) are pruned with the audit
//!   log's.
//! - What cannot depend on whether an account exists writes nothing: `requestPasswordReset`
//!   and `signUp` without an invitation answer the same either way, so the reset itself
//!   (`PASSWORD_RESET`) and the account's making (`SIGNED_UP`) are what is logged.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use uuid::Uuid;

use crate::schema::security_events;

/// What happened to the account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// The account was made (`completeSignUp`, or `signUp` with an invitation).
    SignedUp,
    /// A session began (`signIn`).
    SignedIn,
    /// A session ended itself (`signOut`).
    SignedOut,
    /// One session was ended from another (`revokeSession`).
    SessionRevoked,
    /// Every other session was ended (`details.count`).
    OtherSessionsRevoked,
    /// A personal access token was made (`details`: `name`, `readOnly`, `expiresAt`,
    /// `workspaceIds`).
    AccessTokenCreated,
    /// A session or token was revoked by id (`revokeAccessToken`).
    AccessTokenRevoked,
    /// The password was changed; every session and token ended but the new session.
    PasswordChanged,
    /// The password was reset through the emailed link; every session and token ended.
    PasswordReset,
    /// The address was proven through the emailed link; sessions and tokens made before
    /// ended (`details.revoked`).
    EmailVerified,
    /// A verification link was emailed (`resendVerificationEmail`).
    VerificationEmailSent,
    /// Moving to another address was asked (`details.to`).
    EmailChangeRequested,
    /// The address was moved (`details`: `from`, `to`).
    EmailChanged,
}

impl Action {
    pub const ALL: [Action; 13] = [
        Action::SignedUp,
        Action::SignedIn,
        Action::SignedOut,
        Action::SessionRevoked,
        Action::OtherSessionsRevoked,
        Action::AccessTokenCreated,
        Action::AccessTokenRevoked,
        Action::PasswordChanged,
        Action::PasswordReset,
        Action::EmailVerified,
        Action::VerificationEmailSent,
        Action::EmailChangeRequested,
        Action::EmailChanged,
    ];

    pub fn as_db(self) -> &'static str {
        match self {
            Action::SignedUp => "signed_up",
            Action::SignedIn => "signed_in",
            Action::SignedOut => "signed_out",
            Action::SessionRevoked => "session_revoked",
            Action::OtherSessionsRevoked => "other_sessions_revoked",
            Action::AccessTokenCreated => "access_token_created",
            Action::AccessTokenRevoked => "access_token_revoked",
            Action::PasswordChanged => "password_changed",
            Action::PasswordReset => "password_reset",
            Action::EmailVerified => "email_verified",
            Action::VerificationEmailSent => "verification_email_sent",
            Action::EmailChangeRequested => "email_change_requested",
            Action::EmailChanged => "email_changed",
        }
    }

    pub fn from_db(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|action| action.as_db() == text)
    }
}

/// Where a change came from.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    pub request_id: Option<Uuid>,
    pub client: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// One change to the account's access.
#[derive(Clone, Debug)]
pub struct Event {
    pub action: Action,
    /// The session or token it made or ended.
    pub token_id: Option<Uuid>,
    pub details: Value,
}

impl Event {
    pub fn new(action: Action) -> Self {
        Event {
            action,
            token_id: None,
            details: Value::Object(serde_json::Map::new()),
        }
    }

    pub fn token(mut self, token_id: Uuid) -> Self {
        self.token_id = Some(token_id);
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = security_events)]
pub struct SecurityRow {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub action: String,
    pub token_id: Option<Uuid>,
    pub details: Value,
    pub request_id: Option<Uuid>,
    pub client: Option<String>,
    pub user_agent: Option<String>,
}

/// Appends `event` to `user_id`'s log; call inside the transaction that makes the change.
pub async fn record(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    origin: &Origin,
    event: Event,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(security_events::table)
        .values((
            security_events::user_id.eq(user_id),
            security_events::at.eq(now),
            security_events::action.eq(event.action.as_db()),
            security_events::token_id.eq(event.token_id),
            security_events::details.eq(&event.details),
            security_events::request_id.eq(origin.request_id),
            security_events::client.eq(origin.client.map(|ip| ip.to_string())),
            security_events::user_agent.eq(origin.user_agent.as_deref()),
        ))
        .execute(conn)
        .await
        .map(drop)
}

/// Up to `limit` of the account's events, newest first, after the event at `after`.
pub async fn page(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    limit: i64,
    after: Option<(DateTime<Utc>, Uuid)>,
) -> QueryResult<Vec<SecurityRow>> {
    let mut query = security_events::table
        .filter(security_events::user_id.eq(user_id))
        .select(SecurityRow::as_select())
        .order((security_events::at.desc(), security_events::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some((at, id)) = after {
        query = query.filter(
            security_events::at
                .lt(at)
                .or(security_events::at.eq(at).and(security_events::id.lt(id))),
        );
    }
    query.load(conn).await
}

pub async fn count(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<i64> {
    security_events::table
        .filter(security_events::user_id.eq(user_id))
        .count()
        .get_result(conn)
        .await
}

/// Deletes events from before `before` in every account (an owner-run function).
pub async fn prune(conn: &mut AsyncPgConnection, before: DateTime<Utc>) -> QueryResult<usize> {
    crate::audit::model::prune_with(conn, "SELECT prune_security_events($1) AS pruned", before)
        .await
}
