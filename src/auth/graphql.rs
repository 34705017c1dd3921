//! Account types and mutations: `me`, sign-up/in/out and personal access tokens.

use async_graphql::{Context, Enum, Object, SimpleObject, ID};
use chrono::Utc;

use super::model::{self, UserRow};
use super::token::MintedToken;
use super::{credentials, security, sessions, sign_up, Requester};
use crate::db::page::{Cursor, Page};
use crate::error::{ApiError, ApiResult};
use crate::graphql::context::{parse_id, request, RequestContext};
use crate::graphql::pagination::PageOf;
use crate::graphql::scalars::Timestamp;
use crate::text::{EmailAddress, Name, NewPassword};
use crate::workspaces::graphql::Workspace;
use crate::workspaces::model as workspaces;
use uuid::Uuid;

/// A person with an account, as seen by the caller.
pub struct User {
    row: UserRow,
    /// Whether this is the caller (or the user just signed in), who alone sees their
    /// `activeWorkspace`.
    is_self: bool,
}

impl User {
    /// Another user, e.g. a fellow member.
    pub fn new(row: UserRow) -> Self {
        Self {
            row,
            is_self: false,
        }
    }

    pub fn user_id(&self) -> Uuid {
        self.row.id
    }

    /// The signed-in user themself.
    fn me(row: UserRow) -> Self {
        Self { row, is_self: true }
    }

    // `activeWorkspace` and `securityLog` do their work in a box of its own: async-graphql
    // boxes each selected field's future at the size of the type's largest, so unboxed,
    // each `id`, `name` and `email` of a members page was as large as these and copied
    // (BENCHMARKS.md, twenty-eighth round: 5 % of that page's server CPU).

    async fn find_active_workspace(
        &self,
        request: &RequestContext,
    ) -> ApiResult<Option<Workspace>> {
        let Some(workspace_id) = self.row.active_workspace_id.filter(|_| self.is_self) else {
            return Ok(None);
        };
        if request
            .caller
            .as_ref()
            .is_some_and(|c| c.user_id == self.row.id)
        {
            return Ok(request.membership(workspace_id).await?.map(Workspace::from));
        }
        // Just signed in: the request had no caller to batch memberships for.
        let mut conn = request
            .db
            .acting_as(Some(self.row.id))
            .conn_for_caller()
            .await?;
        let found = workspaces::memberships_of_caller(&mut conn, Some(&[workspace_id])).await?;
        Ok(found
            .into_iter()
            .next()
            .map(|(row, role)| Workspace::new(row, role)))
    }

    async fn security_page(
        &self,
        request: &RequestContext,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<Option<PageOf<SecurityEvent>>> {
        let caller = request.caller()?;
        if !self.is_self || caller.user_id != self.row.id {
            return Err(ApiError::forbidden(
                "Only the account itself reads its security log.",
            ));
        }
        // Client addresses and devices: for the person signed in, not for their scripts.
        caller.ensure_session()?;
        let page = Page::parse(first, after.as_deref())?;
        let mut conn = request.db.conn().await?;
        let after = page.after.map(|cursor| (cursor.at, cursor.id));
        let rows = security::page(&mut conn, caller.user_id, page.limit(), after).await?;
        let total = security::count(&mut conn, caller.user_id).await?;
        let events = rows.into_iter().map(SecurityEvent::new).collect();
        Ok(Some(PageOf::from_rows(events, &page, total, |event| {
            event.cursor.encode()
        })))
    }
}

/// A person with an account.
#[Object(serial)]
impl User {
    /// Stable identifier.
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    /// Sign-in email, as typed at sign-up.
    async fn email(&self) -> &str {
        &self.row.email
    }

    /// Display name.
    async fn name(&self) -> &str {
        &self.row.name
    }

    /// Whether the email address has been proven.
    async fn email_verified(&self) -> bool {
        self.row.email_verified_at.is_some()
    }

    /// The last workspace switched to, to restore the frontend's view. Only visible to the
    /// user themself; null once they leave it or it is deleted.
    async fn active_workspace(&self, ctx: &Context<'_>) -> ApiResult<Option<Workspace>> {
        Box::pin(self.find_active_workspace(request(ctx))).await
    }

    /// The account's security log, newest first: sign-ins, sign-outs, password and address
    /// changes, sessions and access tokens made and ended, each with its request's address
    /// and user agent. Only the account itself reads it (`me`), from a signed-in session;
    /// anyone else's, or with an access token, is FORBIDDEN.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn security_log(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor after which the page starts.")] after: Option<String>,
    ) -> ApiResult<Option<PageOf<SecurityEvent>>> {
        Box::pin(self.security_page(request(ctx), first, after)).await
    }
}

/// What happened to the account's access (docs/security.md's security log table says which
/// mutation writes which).
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "security::Action", rename_items = "SCREAMING_SNAKE_CASE")]
pub enum SecurityAction {
    /// The account was made.
    SignedUp,
    /// A session began: `signIn` (`tokenId` is the session).
    SignedIn,
    /// A session signed out (`tokenId`).
    SignedOut,
    /// A session was ended from another (`tokenId`).
    SessionRevoked,
    /// Every other session was ended: `details.count`.
    OtherSessionsRevoked,
    /// A personal access token was made (`tokenId`): `details.name`, `.readOnly`,
    /// `.expiresAt`, `.workspaceIds`.
    AccessTokenCreated,
    /// A session or token was revoked by id (`tokenId`).
    AccessTokenRevoked,
    /// The password was changed; every other session and token ended (`tokenId` is the new
    /// session).
    PasswordChanged,
    /// The password was reset through the emailed link; every session and token ended.
    PasswordReset,
    /// The address was proven; sessions and tokens made before ended: `details.revoked`.
    EmailVerified,
    /// A verification link was emailed.
    VerificationEmailSent,
    /// Moving to another address was asked: `details.to`.
    EmailChangeRequested,
    /// The address moved: `details.from` and `.to`.
    EmailChanged,
}

/// One change to the account's access.
#[derive(SimpleObject)]
pub struct SecurityEvent {
    /// The event's id.
    id: ID,
    /// When it happened.
    at: Timestamp,
    /// What happened.
    action: SecurityAction,
    /// The session or access token it made or ended, if one (see `accessTokens`).
    token_id: Option<ID>,
    /// The values that matter, e.g. `{"name": "CI"}` for a new token. Never a secret.
    details: async_graphql::Json<serde_json::Value>,
    /// The request that made it.
    request_id: Option<ID>,
    /// The client's address.
    client_address: Option<String>,
    /// The client's `User-Agent`.
    user_agent: Option<String>,
    #[graphql(skip)]
    cursor: Cursor,
}

impl SecurityEvent {
    fn new(row: security::SecurityRow) -> Self {
        SecurityEvent {
            cursor: Cursor {
                at: row.at,
                id: row.id,
            },
            id: ID(row.id.to_string()),
            at: row.at.into(),
            // Written from the enum; an unknown one would be a newer server's.
            action: security::Action::from_db(&row.action)
                .unwrap_or(security::Action::SignedIn)
                .into(),
            token_id: row.token_id.map(|id| ID(id.to_string())),
            details: async_graphql::Json(row.details),
            request_id: row.request_id.map(|id| ID(id.to_string())),
            client_address: row.client,
            user_agent: row.user_agent,
        }
    }
}

/// A signed-in session.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// Bearer token for `Authorization: Bearer <token>`. Shown once.
    token: String,
    /// The signed-in user.
    user: User,
}

/// What `signUp` did.
#[derive(SimpleObject)]
pub struct SignUpPayload {
    /// The address signed up, as it will be stored (trimmed). Without an invitation, the
    /// link that finishes the sign-up was emailed there (or, if it has an account, a note to
    /// its owner: the answer does not say which).
    email: String,
    /// The new account's session: only when an invitation's token proved the address.
    session: Option<AuthPayload>,
}

/// What kind of bearer token it is.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessTokenKind {
    /// Made by signing up or in (`signUp`, `completeSignUp`, `signIn`).
    Session,
    /// Made by `createAccessToken`, for scripts and partners.
    Personal,
}

/// One of the caller's live bearer tokens. The secret itself is never shown again.
#[derive(SimpleObject)]
pub struct AccessToken {
    /// Identifier, for `revokeAccessToken`.
    id: ID,
    /// What it is.
    kind: AccessTokenKind,
    /// "Session", or the name given to `createAccessToken`.
    name: String,
    /// When it was made.
    created_at: Timestamp,
    /// The last request made with it, to within a few minutes; null if never used.
    last_used_at: Option<Timestamp>,
    /// When it stops working, if it has a fixed expiry (personal tokens). Sessions end after
    /// the idle and absolute lifetimes instead (docs/security.md).
    expires_at: Option<Timestamp>,
    /// It may run queries only.
    read_only: bool,
    /// The only workspaces it reaches; null: every workspace of its user.
    workspace_ids: Option<Vec<ID>>,
    /// For sessions: the `User-Agent` that signed in.
    user_agent: Option<String>,
    /// Whether this request was made with it.
    current: bool,
    #[graphql(skip)]
    cursor: Cursor,
}

impl AccessToken {
    fn new(row: model::AccessTokenRow, caller: &super::Caller) -> Self {
        AccessToken {
            id: ID(row.id.to_string()),
            kind: match row.kind.as_str() {
                "personal" => AccessTokenKind::Personal,
                _ => AccessTokenKind::Session,
            },
            name: row.name,
            created_at: row.created_at.into(),
            last_used_at: row.last_used_at.map(Timestamp),
            expires_at: row.expires_at.map(Timestamp),
            read_only: row.read_only,
            workspace_ids: row
                .workspace_ids
                .map(|ids| ids.iter().map(|id| ID(id.to_string())).collect()),
            user_agent: row.user_agent,
            current: row.id == caller.token_id,
            cursor: Cursor {
                at: row.created_at,
                id: row.id,
            },
        }
    }
}

/// A page of the caller's live tokens of `kind` (all kinds: `None`).
async fn tokens(
    ctx: &Context<'_>,
    kind: Option<&str>,
    first: Option<i32>,
    after: Option<String>,
) -> ApiResult<Option<PageOf<AccessToken>>> {
    let request = request(ctx);
    let caller = request.caller()?;
    caller.ensure_session()?;
    let page = Page::parse(first, after.as_deref())?;
    let mut conn = request.db.conn().await?;
    let rows = model::tokens_page(&mut conn, caller.user_id, kind, &page).await?;
    let total = model::tokens_count(&mut conn, caller.user_id, kind).await?;
    let tokens = rows
        .into_iter()
        .map(|row| AccessToken::new(row, caller))
        .collect();
    Ok(Some(PageOf::from_rows(tokens, &page, total, |token| {
        token.cursor.encode()
    })))
}

/// A personal access token, for scripts and partners.
#[derive(SimpleObject)]
pub struct NewAccessToken {
    /// The secret. Shown once: store it now.
    token: String,
    /// Identifier, for `revokeAccessToken`.
    id: ID,
    /// The name given at creation.
    name: String,
}

#[derive(Default)]
pub struct AuthQuery;

#[Object]
impl AuthQuery {
    /// The signed-in user.
    async fn me(&self, ctx: &Context<'_>) -> ApiResult<Option<User>> {
        let request = request(ctx);
        let caller = request.caller()?;
        let mut conn = request.db.conn().await?;
        let row = model::find_user(&mut conn, caller.user_id)
            .await?
            .ok_or_else(ApiError::unauthenticated)?;
        Ok(Some(User::me(row)))
    }

    /// The caller's live tokens (sessions and personal access tokens), oldest first, to
    /// review and revoke. Needs a signed-in session.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn access_tokens(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor after which the page starts.")] after: Option<String>,
    ) -> ApiResult<Option<PageOf<AccessToken>>> {
        tokens(ctx, None, first, after).await
    }

    /// The caller's signed-in sessions (created, last used, user agent), oldest first; end
    /// them with `revokeSession` or `revokeOtherSessions`. Needs a signed-in session.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn sessions(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor after which the page starts.")] after: Option<String>,
    ) -> ApiResult<Option<PageOf<AccessToken>>> {
        tokens(ctx, Some("session"), first, after).await
    }
}

async fn revoke(ctx: &Context<'_>, id: &ID, what: sessions::Revocable) -> ApiResult<bool> {
    let request = request(ctx);
    request.caller()?;
    let token_id = parse_id(id)?;
    let mut conn = request.db.conn().await?;
    sessions::revoke(&mut conn, &requester(request), token_id, what).await?;
    Ok(true)
}

/// The account's view of this request.
fn requester<'a>(request: &'a RequestContext) -> Requester<'a> {
    Requester {
        db: &request.db,
        passwords: &request.passwords,
        origin: request.origin(),
        caller: request.caller.as_ref(),
    }
}

fn signed_in((session, user): (MintedToken, UserRow)) -> AuthPayload {
    AuthPayload {
        token: session.plaintext,
        user: User::me(user),
    }
}

#[derive(Default)]
pub struct AuthMutation;

#[Object]
impl AuthMutation {
    /// Signs up. Without an invitation, a link to finish signing up (`completeSignUp`) is
    /// emailed to the address, valid 24 hours; the account and its first workspace
    /// ("{name}'s Workspace", 14-day trial) are made when it is followed. If an account has
    /// the address already, its owner is emailed instead ("sign in or reset your password"):
    /// the answer is the same, so it tells nobody who has an account. With an invitation's
    /// token, which proves the address, the account is made at once, joins the workspace and
    /// signs in (`session`); CONFLICT if the address has an account. At most 20 sign-ups an
    /// hour per client address, 3 emails an hour per address.
    async fn sign_up(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
        name: String,
        #[graphql(desc = "Token from an invitation email; it proves the email address.")]
        invitation_token: Option<String>,
    ) -> ApiResult<SignUpPayload> {
        let email = EmailAddress::parse(&email)?;
        let name = Name::parse(&name, "name")?;
        let password = NewPassword::parse(&password)?;
        let request = request(ctx);
        let trail = request.link_holder_trail();
        let token = invitation_token.as_deref();
        let signed_up =
            sign_up::sign_up(&requester(request), &trail, &email, &name, &password, token).await?;
        Ok(SignUpPayload {
            email: signed_up.email,
            session: signed_up.session.map(signed_in),
        })
    }

    /// Finishes a sign-up with the token from its email: makes the account (its address
    /// proven) and its first workspace, and signs in. The same NOT_FOUND for an invalid,
    /// used or expired link; CONFLICT if an account took the address meanwhile.
    async fn complete_sign_up(&self, ctx: &Context<'_>, token: String) -> ApiResult<AuthPayload> {
        let request = request(ctx);
        let trail = request.link_holder_trail();
        let done = sign_up::complete_sign_up(&requester(request), &trail, &token).await?;
        Ok(signed_in(done))
    }

    /// Signs in with email and password. A wrong password and an unknown email get the same
    /// answer.
    async fn sign_in(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
    ) -> ApiResult<AuthPayload> {
        let request = request(ctx);
        let done = sessions::sign_in(&requester(request), &email, password).await?;
        Ok(signed_in(done))
    }

    /// Confirms the email address with the token from the verification email (accounts
    /// made before sign-ups were confirmed by email have unproven addresses). Proving the
    /// address signs out every session and access token made before (except the one this
    /// request is made with): whoever registered the address before its owner keeps nothing.
    async fn verify_email(&self, ctx: &Context<'_>, token: String) -> ApiResult<User> {
        let request = request(ctx);
        let mut conn = request.db.conn().await?;
        let user =
            credentials::verify_email(&mut conn, &requester(request), &token, Utc::now()).await?;
        Ok(User::new(user))
    }

    /// Emails the caller an address-verification link, valid 24 hours, for accounts made
    /// before sign-ups were confirmed by email. At most 5 an hour; past that, RATE_LIMITED.
    /// An address already verified answers CONFLICT.
    async fn resend_verification_email(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        let request = request(ctx);
        request.caller()?;
        let mut conn = request.db.conn().await?;
        let req = requester(request);
        credentials::resend_verification_email(&mut conn, &req, Utc::now()).await?;
        Ok(true)
    }

    /// Emails a password-reset link if an account has this address. Answers `true` either
    /// way, with the same work, so it cannot be used to find out who has an account. At most
    /// 5 links an hour per account and 10 requests an hour per client address
    /// (RATE_LIMITED).
    async fn request_password_reset(&self, ctx: &Context<'_>, email: String) -> ApiResult<bool> {
        let request = request(ctx);
        let mut conn = request.db.conn().await?;
        let req = requester(request);
        credentials::request_password_reset(&mut conn, &req, &email, Utc::now()).await?;
        Ok(true)
    }

    /// Sets a new password with the token from the reset email and signs the account out
    /// everywhere: every session and personal access token stops working.
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        token: String,
        password: String,
    ) -> ApiResult<bool> {
        let password = NewPassword::parse(&password)?;
        let request = request(ctx);
        credentials::reset_password(&requester(request), &token, &password).await?;
        Ok(true)
    }

    /// Changes the caller's password: needs the current one (wrong guesses are throttled
    /// like `signIn`'s). Every session and access token is signed out, this one included;
    /// the answer is a new session for this device. The account's address is told by email.
    /// Needs a signed-in session.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        current_password: String,
        new_password: String,
    ) -> ApiResult<AuthPayload> {
        let request = request(ctx);
        let new_password = NewPassword::parse(&new_password)?;
        let req = requester(request);
        let done = credentials::change_password(&req, current_password, &new_password).await?;
        Ok(signed_in(done))
    }

    /// Asks to move the caller's sign-in address to `newEmail`, after the password: a link
    /// valid 24 hours goes to the new address, and the change happens when it is followed
    /// (`confirmEmailChange`); the current address is told at once. The answer is the same
    /// whether or not another account has the new address (confirming then is a CONFLICT).
    /// Needs a signed-in session.
    async fn change_email(
        &self,
        ctx: &Context<'_>,
        new_email: String,
        password: String,
    ) -> ApiResult<bool> {
        let request = request(ctx);
        let new_email = EmailAddress::parse(&new_email)?;
        credentials::change_email(&requester(request), &new_email, password).await?;
        Ok(true)
    }

    /// Moves the account to the new address with the token from the link `changeEmail`
    /// sent there; that address is proven by it. CONFLICT if another account has taken the
    /// address meanwhile.
    async fn confirm_email_change(&self, ctx: &Context<'_>, token: String) -> ApiResult<User> {
        let request = request(ctx);
        let mut conn = request.db.conn().await?;
        let req = requester(request);
        let user = credentials::confirm_email_change(&mut conn, &req, &token, Utc::now()).await?;
        Ok(User::new(user))
    }

    /// Deletes the caller's account, after the password. Refused (CONFLICT) while they own
    /// a workspace that has other members: transfer ownership first. Workspaces only they
    /// belong to are deleted with it (as `deleteWorkspace` does); other workspaces keep
    /// their data. The address is told by email. Needs a signed-in session.
    async fn delete_account(&self, ctx: &Context<'_>, password: String) -> ApiResult<bool> {
        let request = request(ctx);
        let trail = request.trail()?;
        credentials::delete_account(&requester(request), &trail, password).await?;
        Ok(true)
    }

    /// Revokes the token this request was made with.
    async fn sign_out(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        let request = request(ctx);
        request.caller()?;
        let mut conn = request.db.conn().await?;
        sessions::sign_out(&mut conn, &requester(request)).await?;
        Ok(true)
    }

    /// Creates a personal access token for scripts and partners; use it as a bearer token.
    /// Give partners least privilege: an expiry, `readOnly`, and the only workspaces it may
    /// reach. Needs a signed-in session (not another token) and a verified email address.
    async fn create_access_token(
        &self,
        ctx: &Context<'_>,
        name: String,
        #[graphql(desc = "When it stops working, within a year; null: no fixed expiry.")]
        expires_at: Option<Timestamp>,
        #[graphql(
            desc = "Queries only: any mutation made with it is FORBIDDEN.",
            default = false
        )]
        read_only: bool,
        #[graphql(
            desc = "The only workspaces it reaches (1 to 50, the caller's own); null: all of the caller's, now and later."
        )]
        workspace_ids: Option<Vec<ID>>,
    ) -> ApiResult<NewAccessToken> {
        let request = request(ctx);
        request.caller()?.ensure_session()?;
        let name = Name::parse(&name, "name")?;
        // The caller's own workspaces only, each looked up in the request's memberships;
        // the list is bounded before any lookup.
        let workspace_ids = match &workspace_ids {
            None => None,
            Some(ids) if ids.is_empty() || ids.len() > 50 => {
                return Err(ApiError::bad_input(
                    "workspaceIds must list 1 to 50 workspaces, or be null for all.",
                ))
            }
            Some(ids) => {
                let mut parsed = Vec::with_capacity(ids.len());
                for id in ids {
                    let id = parse_id(id)?;
                    if request.membership(id).await?.is_none() {
                        return Err(ApiError::not_found("Workspace"));
                    }
                    if !parsed.contains(&id) {
                        parsed.push(id);
                    }
                }
                Some(parsed)
            }
        };
        let shown = name.as_str().to_owned();
        let grant = sessions::TokenGrant {
            name,
            expires_at: expires_at.map(|Timestamp(at)| at),
            read_only,
            workspace_ids,
        };
        let mut conn = request.db.conn().await?;
        let req = requester(request);
        let (id, minted) =
            sessions::create_access_token(&mut conn, &req, grant, Utc::now()).await?;
        Ok(NewAccessToken {
            token: minted.plaintext,
            id: ID(id.to_string()),
            name: shown,
        })
    }

    /// Revokes one of the caller's personal access tokens; it stops working at once. A
    /// signed-in session revokes any of them; an access token revokes only itself. Sessions
    /// are ended with `revokeSession`.
    async fn revoke_access_token(&self, ctx: &Context<'_>, id: ID) -> ApiResult<bool> {
        revoke(ctx, &id, sessions::Revocable::PersonalToken).await
    }

    /// Ends one of the caller's sessions (see `sessions`); it stops working at once. Needs
    /// a signed-in session.
    async fn revoke_session(&self, ctx: &Context<'_>, id: ID) -> ApiResult<bool> {
        revoke(ctx, &id, sessions::Revocable::Session).await
    }

    /// Ends every session of the caller except this one ("sign out everywhere else");
    /// answers how many ended. Personal access tokens are kept. Needs a signed-in session.
    async fn revoke_other_sessions(&self, ctx: &Context<'_>) -> ApiResult<i32> {
        let request = request(ctx);
        request.caller()?.ensure_session()?;
        let mut conn = request.db.conn().await?;
        let ended = sessions::revoke_other_sessions(&mut conn, &requester(request)).await?;
        Ok(i32::try_from(ended).unwrap_or(i32::MAX))
    }
}
