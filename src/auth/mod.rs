//! Accounts and authentication: sign-up (which creates the first workspace), sign-in,
//! sessions and personal access tokens.
//!
//! Rules: emails are trimmed and unique case-insensitively; passwords are Argon2id hashes;
//! tokens are 256-bit random strings shown once and stored as SHA-256; a wrong password and
//! an unknown email get the same answer; revoked tokens stop working at once on the server
//! that revoked them, and within a second everywhere ([`bearers`]).
//!
//! An account exists only for an address its owner has proven: `signUp` records the sign-up
//! and the worker emails a link (`completeSignUp` opens the account and signs in), or, when
//! an account has the address already, tells its owner instead; the answer is the same
//! either way, so `signUp` tells nobody who has an account, and nobody can hold an address
//! they cannot read mail at. An invitation's token proves the address too, so signing up
//! from an invitation opens the account at once.

pub mod bearers;
pub mod credentials;
pub mod graphql;
pub mod jobs;
pub mod model;
pub mod password;
pub mod revocations;
pub mod security;
pub mod service_tokens;
pub mod sessions;
pub mod sign_up;
pub mod token;

use chrono::{DateTime, Duration, Utc};
use linkai_jobs::Payload;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::SessionPolicy;
use crate::db::Db;
use crate::error::ApiResult;
use crate::throttle::{Backoff, Pace, Window};
use bearers::{Bearers, Lookup};

/// How long an email-verification link works.
pub const VERIFY_EMAIL_VALIDITY: Duration = Duration::hours(24);
/// How long a link finishing a sign-up works.
pub const SIGN_UP_VALIDITY: Duration = Duration::hours(24);
/// Sign-up emails (links or "someone tried to sign up" notices) per address per hour;
/// further sign-ups answer the same and send nothing.
pub const SIGN_UP_EMAILS_PER_HOUR: i64 = 3;
/// How long a link confirming a new sign-in address works.
pub const CHANGE_EMAIL_VALIDITY: Duration = Duration::hours(24);
/// How long a password-reset link works.
pub const RESET_PASSWORD_VALIDITY: Duration = Duration::hours(1);
/// Reset emails per account per hour; further requests answer the same and send nothing.
pub const RESETS_PER_HOUR: i64 = 5;
/// Verification emails per account per hour.
pub const VERIFICATIONS_PER_HOUR: i64 = 5;
/// Sign-in attempts per client address (an office behind one address still fits).
pub const SIGN_INS_PER_ADDRESS: Window = Window {
    name: "sign_in:address",
    limit: 100,
    window: std::time::Duration::from_secs(15 * 60),
};
/// Sign-in attempts at one account (the address as typed) from one network (its client's
/// /24, or /64 for IPv6) without a success: from the 5th in a row, each blocks further
/// attempts at that account *from that network* for 1 s, doubling up to 15 minutes; a
/// right password clears the count. A stranger's guesses from elsewhere never block the
/// owner. Unknown addresses behave exactly like known ones.
pub const SIGN_IN_FAILURES: Backoff = Backoff {
    name: "sign_in:account_network",
    free: 5,
    max: std::time::Duration::from_secs(15 * 60),
};
/// Sign-in attempts at one account per hour from networks it has not signed in from
/// ([`SIGN_IN_NETWORK_MEMORY`]). Past it, such attempts take turns ([`STRANGER_PACE`]), and
/// a wrong password tells the account's owner by email, at most once a day
/// ([`FAILED_SIGN_IN_NOTICES`]). Attempts from the owner's own networks never count.
pub const SIGN_IN_CEILING: Window = Window {
    name: "sign_in:account",
    limit: 20,
    window: std::time::Duration::from_secs(3600),
};
/// Past [`SIGN_IN_CEILING`], attempts at the account from unfamiliar networks go one every
/// 5 s, each waiting its turn for at most 20 s (holding no connection and no hashing slot),
/// else `RATE_LIMITED` until a turn frees: at most 720 guesses an hour however many
/// networks send them, and always well within the request timeout.
pub const STRANGER_PACE: Pace = Pace {
    name: "sign_in:pace",
    step: std::time::Duration::from_secs(5),
    max_wait: std::time::Duration::from_secs(20),
};
/// How long a network an account began a session from stays its own.
pub const SIGN_IN_NETWORK_MEMORY: Duration = Duration::days(90);
/// "Someone is trying to sign in" emails: one per address a day.
pub const FAILED_SIGN_IN_NOTICES: Window = Window {
    name: "sign_in:notice",
    limit: 1,
    window: std::time::Duration::from_secs(24 * 3600),
};
/// Password checks in one signed-in session (`changePassword`, `changeEmail`,
/// `deleteAccount`) without a success: from the 5th in a row, that session waits as
/// [`SIGN_IN_FAILURES`] does. Keyed by the session, so nobody else's guesses reach it.
pub const PASSWORD_CHECK_FAILURES: Backoff = Backoff {
    name: "password_check:session",
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
/// Personal access tokens one account may create per hour (each alias in one operation
/// counts).
pub const TOKENS_PER_ACCOUNT_PER_HOUR: Window = Window {
    name: "create_token:user",
    limit: 20,
    window: std::time::Duration::from_secs(3600),
};
/// The longest fixed lifetime a personal access token may be given.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::days(366);
/// A token's `last_used_at` is written again only after this long.
pub const TOKEN_TOUCH_INTERVAL: Duration = Duration::minutes(5);

/// What the account's rules refuse; each is one code (see the `From` below).
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("You own the workspace \u{201c}{0}\u{201d}, which has other members: transfer ownership first.")]
    OwnsSharedWorkspace(String),
    /// Every invalid, used, expired or other-purpose link alike.
    #[error("This link is invalid or has expired.")]
    InvalidLink,
    /// A wrong password and an unknown address alike.
    #[error("The email or password is not correct.")]
    InvalidCredentials,
    /// The caller's own password, asked again before a sensitive change.
    #[error("The password is not correct.")]
    WrongPassword,
    #[error("An account with this email already exists: sign in instead.")]
    EmailTaken,
    #[error("Another account has this address now.")]
    EmailTakenMeanwhile,
    #[error("This email address is verified already.")]
    AlreadyVerified,
    #[error("Too many verification emails this hour; try again later.")]
    TooManyVerifications,
    #[error("expiresAt must be in the future and within a year.")]
    TokenExpiry,
    #[error("Verify your email address before creating access tokens.")]
    Unverified,
    /// One of the caller's sessions or tokens that is not (or no longer) theirs.
    #[error("{0} not found.")]
    NotFound(&'static str),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

impl From<AccountError> for crate::error::ApiError {
    fn from(err: AccountError) -> Self {
        use crate::error::ErrorCode;
        let code = match err {
            AccountError::Db(err) => return err.into(),
            AccountError::InvalidLink | AccountError::NotFound(_) => ErrorCode::NotFound,
            AccountError::InvalidCredentials => ErrorCode::Unauthenticated,
            AccountError::WrongPassword | AccountError::Unverified => ErrorCode::Forbidden,
            AccountError::OwnsSharedWorkspace(_)
            | AccountError::EmailTaken
            | AccountError::EmailTakenMeanwhile
            | AccountError::AlreadyVerified => ErrorCode::Conflict,
            AccountError::TooManyVerifications => ErrorCode::RateLimited,
            AccountError::TokenExpiry => ErrorCode::BadUserInput,
        };
        Self::new(code, err.to_string())
    }
}

/// Opens an account for an address just proven (by a sign-up link or an invitation's
/// token): the user, their first workspace ("{name}'s Workspace", 14-day trial), and with an
/// invitation token the membership it grants, which becomes the active workspace. CONFLICT
/// if an account took the address meanwhile. Accepting the invitation writes its audit
/// event, the new account acting through the request of `trail`. Call inside a transaction.
pub async fn open_account(
    conn: &mut diesel_async::AsyncPgConnection,
    trail: &crate::audit::Trail,
    email: &str,
    name: &str,
    password_hash: &str,
    invitation_token: Option<&str>,
    now: DateTime<Utc>,
) -> ApiResult<model::UserRow> {
    let user = model::insert_user(conn, email, name, password_hash, Some(now))
        .await
        .map_err(|err| {
            if crate::db::is_unique_violation(&err, model::EMAIL_UNIQUE_INDEX) {
                AccountError::EmailTaken.into()
            } else {
                crate::error::ApiError::from(err)
            }
        })?;
    let own =
        crate::workspaces::create_owned(conn, trail, user.id, &first_workspace_name(name), now)
            .await?;
    let active = match invitation_token {
        Some(token) => {
            crate::invitations::accept(conn, trail, token, user.id, &user.email, now).await?
        }
        None => own.id,
    };
    model::set_active_workspace(conn, user.id, Some(active)).await?;
    Ok(model::UserRow {
        active_workspace_id: Some(active),
        ..user
    })
}

/// `"{name}'s Workspace"`, shortening long names so the whole stays within 100 characters.
fn first_workspace_name(name: &str) -> String {
    const SUFFIX: &str = "'s Workspace";
    let room = crate::text::MAX_NAME_CHARS - SUFFIX.chars().count();
    let short: String = name.chars().take(room).collect();
    format!("{}{SUFFIX}", short.trim_end())
}

/// Deletes `user`'s account (the connection acts for them). Refused while they own a
/// workspace that has other members; the workspaces only they belong to are soft-deleted
/// as `deleteWorkspace` does (billing cancelled); their memberships elsewhere end; the
/// address is told. Call inside a transaction.
pub async fn delete_account(
    conn: &mut diesel_async::AsyncPgConnection,
    trail: &crate::audit::Trail,
    user: &model::UserRow,
    now: DateTime<Utc>,
) -> Result<(), AccountError> {
    let memberships = crate::workspaces::model::memberships_of_caller(conn, None).await?;
    let (owned, joined): (Vec<_>, Vec<_>) = memberships
        .into_iter()
        .partition(|(_, role)| *role == crate::roles::Role::Owner);
    for (workspace, _) in owned {
        // The membership lock: nobody joins while the workspace is weighed and deleted.
        crate::workspaces::model::lock_for_membership_change(conn, workspace.id, user.id).await?;
        if crate::members::model::count(conn, workspace.id).await? > 1 {
            return Err(AccountError::OwnsSharedWorkspace(workspace.name));
        }
        // Nobody else is in it, so nobody is left to read its log: no event.
        crate::workspaces::end(conn, workspace.id, now).await?;
    }
    // The memberships elsewhere go with the account: each workspace's log says they left
    // (last, as entering a workspace holds for the rest of the transaction). In workspace
    // order: each event holds its workspace's stream counter to the commit, and two
    // deletions taking them in different orders would deadlock.
    let mut joined = joined;
    joined.sort_by_key(|(workspace, _)| workspace.id);
    for (workspace, role) in joined {
        crate::db::enter_workspace(conn, workspace.id).await?;
        let event = crate::audit::Event {
            action: crate::audit::Action::MemberLeft,
            target: crate::audit::Target::user(user.id),
            changes: serde_json::json!({ "role": role.as_db() }),
        };
        crate::audit::record(conn, workspace.id, trail, event, now).await?;
    }
    let notice_id = model::insert_notice(conn, user, "account_deleted", None).await?;
    crate::outbox::enqueue(conn, &SendAccountNotice { notice_id }).await?;
    model::delete_user(conn, user.id).await?;
    Ok(())
}

/// Who asks, as the account's rules see a request: where it comes from (for the security
/// log, new sessions and the throttles), the caller if signed in, and the services the
/// rules use (the database, the password hasher).
pub struct Requester<'a> {
    pub db: &'a Db,
    pub passwords: &'a password::Passwords,
    pub origin: security::Origin,
    pub caller: Option<&'a Caller>,
}

impl Requester<'_> {
    /// The caller, or UNAUTHENTICATED.
    pub fn caller(&self) -> ApiResult<&Caller> {
        self.caller
            .ok_or_else(crate::error::ApiError::unauthenticated)
    }

    /// The session this request is made with, if it is `user_id`'s: what a link that signs
    /// the account out everywhere else keeps (a personal token is not kept).
    pub fn own_token(&self, user_id: Uuid) -> Option<Uuid> {
        self.caller
            .filter(|caller| caller.user_id == user_id && caller.session)
            .map(|caller| caller.token_id)
    }

    /// The client address, as the throttles count it.
    pub fn address_subject(&self) -> String {
        crate::throttle::address_subject(self.origin.client)
    }

    /// The network this request comes from, as per-account rules count it.
    pub fn network(&self) -> String {
        crate::throttle::network_subject(self.origin.client)
    }

    /// Appends `event` to `user_id`'s security log, in the caller's transaction.
    pub async fn log(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        user_id: Uuid,
        event: security::Event,
    ) -> diesel::QueryResult<()> {
        security::record(conn, user_id, &self.origin, event, Utc::now()).await
    }
}

/// Declares the account's jobs, each handled in [`jobs`].
macro_rules! payloads {
    ($($(#[$doc:meta])* $name:ident = $kind:literal { $field:ident: Uuid })*) => {$(
        $(#[$doc])*
        #[derive(Debug, Serialize, Deserialize)]
        pub struct $name {
            pub $field: Uuid,
        }

        impl Payload for $name {
            const KIND: &'static str = $kind;
        }
    )*};
}

payloads! {
    /// Email the address-verification link of an account token.
    SendEmailVerification = "send_email_verification" { token_id: Uuid }
    /// Email the link confirming a new sign-in address, to that address.
    SendEmailChange = "send_email_change" { token_id: Uuid }
    /// A reset was asked for an address: if an account has it (and its hourly cap allows),
    /// make the link and email it. The request itself cannot tell.
    ProcessPasswordReset = "process_password_reset" { request_id: Uuid }
    /// Someone signed up with an address: email the link that finishes the sign-up, or, if
    /// an account has the address, tell its owner (within the address's hourly cap). The
    /// sign-up itself cannot tell.
    ProcessSignUp = "process_sign_up" { request_id: Uuid }
    /// Tell a person something happened to their account (a recorded notice).
    SendAccountNotice = "send_account_notice" { notice_id: Uuid }
}

/// Who is calling: the signed-in user, the token they used and what that token may do.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user_id: Uuid,
    pub token_id: Uuid,
    /// A session (signed in) rather than a personal access token.
    pub session: bool,
    /// The token may run queries only.
    pub read_only: bool,
    /// The only workspaces the token reaches; `None`: all of the user's.
    pub workspaces: Option<Vec<Uuid>>,
}

impl Caller {
    /// Whether the token reaches `workspace_id` (membership is checked apart).
    pub fn reaches(&self, workspace_id: Uuid) -> bool {
        self.workspaces
            .as_ref()
            .is_none_or(|only| only.contains(&workspace_id))
    }

    /// Managing the account and its tokens needs a session: a personal token, however
    /// scoped, cannot mint a broader one or change the account.
    pub fn ensure_session(&self) -> ApiResult<()> {
        if self.session {
            Ok(())
        } else {
            Err(crate::error::ApiError::forbidden(
                "This needs a signed-in session; an access token cannot do it.",
            ))
        }
    }

    /// Workspaces outside the token's scope cannot be created or joined with it.
    pub fn ensure_unscoped(&self) -> ApiResult<()> {
        if self.workspaces.is_none() {
            Ok(())
        } else {
            Err(crate::error::ApiError::forbidden(
                "This access token is limited to listed workspaces.",
            ))
        }
    }
}

/// Whether a token found by its hash still works at `now`: before its own expiry, and, for
/// a session, within the idle and absolute lifetimes of `policy`.
pub fn is_live(row: &model::BearerRow, policy: &SessionPolicy, now: DateTime<Utc>) -> bool {
    if row.expires_at.is_some_and(|at| at <= now) {
        return false;
    }
    if row.kind == "session" {
        let last = row.last_used_at.unwrap_or(row.created_at);
        // `last_used_at` lags by up to TOKEN_TOUCH_INTERVAL: a session is never cut early
        // for that.
        if now - row.created_at > policy.max || now - last > policy.idle + TOKEN_TOUCH_INTERVAL {
            return false;
        }
    }
    true
}

/// Resolves `Authorization: Bearer <token>` to a caller; unknown, revoked and expired
/// tokens give none.
pub async fn authenticate(
    db: &Db,
    bearers: &Bearers,
    lookup: Lookup,
    bearer: Option<&str>,
    policy: &SessionPolicy,
) -> ApiResult<Option<Caller>> {
    let Some(token) = bearer else {
        return Ok(None);
    };
    authenticate_hash(db, bearers, lookup, &token::hash(token), policy).await
}

/// Whether the token with this hash is still live, without counting this as a use (a
/// socket checking its token again: an open socket alone does not keep a session from
/// going idle). Always read from the database: a revocation's notification may be what
/// asks.
pub async fn still_live(db: &Db, token_hash: &[u8], policy: &SessionPolicy) -> ApiResult<bool> {
    let mut conn = db.conn_outside_tenancy().await?;
    let row = model::caller_for_token_hash(&mut conn, token_hash).await?;
    Ok(row.is_some_and(|row| is_live(&row, policy, Utc::now())))
}

/// [`authenticate`] for a token known by its hash (a socket's `connection_init`,
/// src/http/socket.rs). With [`Lookup::Recent`], a token this server looked up less than a
/// second ago is not read again ([`bearers`]).
pub async fn authenticate_hash(
    db: &Db,
    bearers: &Bearers,
    lookup: Lookup,
    token_hash: &[u8],
    policy: &SessionPolicy,
) -> ApiResult<Option<Caller>> {
    let now = Utc::now();
    let (row, miss) = match bearers.find(lookup, token_hash) {
        Ok(row) => (row, None),
        Err(miss) => {
            crate::metrics::token_looked_up("database");
            // `access_tokens` has no row-level security: any context will do.
            let mut conn = db.conn_outside_tenancy().await?;
            let Some(row) = model::caller_for_token_hash(&mut conn, token_hash).await? else {
                return Ok(None);
            };
            (row, Some(miss))
        }
    };
    if !is_live(&row, policy, now) {
        return Ok(None);
    }
    if let Some(miss) = miss {
        bearers.keep(token_hash, &row, miss);
    }
    // "Last used" to within a few minutes: a write per token every few minutes, not one
    // per request.
    if row
        .last_used_at
        .is_none_or(|at| now - at >= TOKEN_TOUCH_INTERVAL)
    {
        let mut conn = db.conn_outside_tenancy().await?;
        model::touch_token(&mut conn, row.id, now).await?;
        bearers.touched(token_hash, now);
    }
    Ok(Some(Caller {
        user_id: row.user_id,
        token_id: row.id,
        session: row.kind == "session",
        read_only: row.read_only,
        workspaces: row.workspace_ids,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str, created_days_ago: i64, used_days_ago: Option<i64>) -> model::BearerRow {
        let now = Utc::now();
        model::BearerRow {
            id: Uuid::nil(),
            user_id: Uuid::nil(),
            kind: kind.to_owned(),
            created_at: now - Duration::days(created_days_ago),
            last_used_at: used_days_ago.map(|d| now - Duration::days(d)),
            expires_at: None,
            read_only: false,
            workspace_ids: None,
        }
    }

    #[test]
    fn sessions_expire_when_idle_or_old_and_tokens_at_their_expiry() {
        let policy = SessionPolicy::default();
        let now = Utc::now();
        assert!(is_live(&row("session", 20, Some(1)), &policy, now));
        assert!(!is_live(&row("session", 20, Some(8)), &policy, now), "idle");
        assert!(
            !is_live(&row("session", 31, Some(0)), &policy, now),
            "too old"
        );
        assert!(
            !is_live(&row("session", 730, None), &policy, now),
            "two years"
        );
        // Personal tokens have no idle or absolute lifetime, only their own expiry.
        assert!(is_live(&row("personal", 730, None), &policy, now));
        let mut expiring = row("personal", 1, None);
        expiring.expires_at = Some(now - Duration::seconds(1));
        assert!(!is_live(&expiring, &policy, now));
        expiring.expires_at = Some(now + Duration::days(1));
        assert!(is_live(&expiring, &policy, now));
    }

    #[test]
    fn first_workspace_is_named_after_the_user_and_fits() {
        assert_eq!(first_workspace_name("Ada"), "Ada's Workspace");
        let workspace = first_workspace_name(&"x".repeat(100));
        assert_eq!(workspace.chars().count(), 100);
        assert!(crate::text::Name::parse(&workspace, "name").is_ok());
    }
}
