//! Rows and queries for users and access tokens.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::{
    access_tokens, account_notices, account_tokens, password_reset_requests, sign_in_networks,
    sign_up_requests, users,
};

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub active_workspace_id: Option<Uuid>,
}

pub const EMAIL_UNIQUE_INDEX: &str = "users_email_key";

pub async fn insert_user(
    conn: &mut AsyncPgConnection,
    email: &str,
    name: &str,
    password_hash: &str,
    verified_at: Option<DateTime<Utc>>,
) -> QueryResult<UserRow> {
    diesel::insert_into(users::table)
        .values((
            users::id.eq(Uuid::now_v7()),
            users::email.eq(email),
            users::name.eq(name),
            users::password_hash.eq(password_hash),
            users::email_verified_at.eq(verified_at),
        ))
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn find_user(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<UserRow>> {
    users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The user id and password hash for an email, compared case-insensitively.
pub async fn find_credentials(
    conn: &mut AsyncPgConnection,
    email: &str,
) -> QueryResult<Option<(Uuid, String)>> {
    diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);
    users::table
        .filter(lower(users::email).eq(lower(email)))
        .select((users::id, users::password_hash))
        .first(conn)
        .await
        .optional()
}

pub async fn set_active_workspace(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    workspace_id: Option<Uuid>,
) -> QueryResult<()> {
    diesel::update(users::table.find(user_id))
        .set(users::active_workspace_id.eq(workspace_id))
        .execute(conn)
        .await
        .map(drop)
}

/// Forgets `workspace_id` as the active workspace of `user_id` (after leaving or removal).
pub async fn clear_active_workspace(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    workspace_id: Uuid,
) -> QueryResult<()> {
    diesel::update(
        users::table
            .find(user_id)
            .filter(users::active_workspace_id.eq(workspace_id)),
    )
    .set(users::active_workspace_id.eq(None::<Uuid>))
    .execute(conn)
    .await
    .map(drop)
}

/// What a new bearer token may do and where it came from.
#[derive(Clone, Debug, Default)]
pub struct NewToken<'a> {
    pub expires_at: Option<DateTime<Utc>>,
    pub read_only: bool,
    pub workspace_ids: Option<&'a [Uuid]>,
    pub user_agent: Option<&'a str>,
}

pub async fn insert_token(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    kind: &str,
    name: &str,
    token_hash: &[u8],
    new: NewToken<'_>,
) -> QueryResult<Uuid> {
    diesel::insert_into(access_tokens::table)
        .values((
            access_tokens::id.eq(Uuid::now_v7()),
            access_tokens::user_id.eq(user_id),
            access_tokens::kind.eq(kind),
            access_tokens::name.eq(name),
            access_tokens::token_hash.eq(token_hash),
            // Signing in is a use of the session; a personal token is unused until it is.
            access_tokens::last_used_at.eq((kind == "session").then(Utc::now)),
            access_tokens::expires_at.eq(new.expires_at),
            access_tokens::read_only.eq(new.read_only),
            access_tokens::workspace_ids.eq(new.workspace_ids.map(<[Uuid]>::to_vec)),
            access_tokens::user_agent.eq(new.user_agent),
        ))
        .returning(access_tokens::id)
        .get_result(conn)
        .await
}

/// A live (unrevoked) token found by its hash, with what authentication checks.
#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = access_tokens)]
pub struct BearerRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub read_only: bool,
    pub workspace_ids: Option<Vec<Uuid>>,
}

/// The live token with this hash.
pub async fn caller_for_token_hash(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
) -> QueryResult<Option<BearerRow>> {
    access_tokens::table
        .filter(access_tokens::token_hash.eq(token_hash))
        .filter(access_tokens::revoked_at.is_null())
        .select(BearerRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Records that a token was used now.
pub async fn touch_token(
    conn: &mut AsyncPgConnection,
    token_id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(access_tokens::table.find(token_id))
        .set(access_tokens::last_used_at.eq(now))
        .execute(conn)
        .await
        .map(drop)
}

/// One of the caller's live tokens, as their token list shows it.
#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = access_tokens)]
pub struct AccessTokenRow {
    pub id: Uuid,
    pub kind: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub read_only: bool,
    pub workspace_ids: Option<Vec<Uuid>>,
    pub user_agent: Option<String>,
}

/// A page of the user's live tokens (of one kind, when given), oldest first, after `after`.
/// Expired ones may still be listed until revoked; the caller's view marks them.
pub async fn tokens_page(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    kind: Option<&str>,
    page: &crate::db::page::Page,
) -> QueryResult<Vec<AccessTokenRow>> {
    let mut query = access_tokens::table
        .filter(access_tokens::user_id.eq(user_id))
        .filter(access_tokens::revoked_at.is_null())
        .select(AccessTokenRow::as_select())
        .order((access_tokens::created_at, access_tokens::id))
        .limit(page.limit())
        .into_boxed();
    if let Some(after) = page.after {
        query = query.filter(
            access_tokens::created_at
                .gt(after.at)
                .or(access_tokens::created_at
                    .eq(after.at)
                    .and(access_tokens::id.gt(after.id))),
        );
    }
    if let Some(kind) = kind {
        query = query.filter(access_tokens::kind.eq(kind));
    }
    query.load(conn).await
}

/// The ids of the user's live tokens, sessions and personal.
pub async fn live_token_ids(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<Vec<Uuid>> {
    access_tokens::table
        .filter(access_tokens::user_id.eq(user_id))
        .filter(access_tokens::revoked_at.is_null())
        .select(access_tokens::id)
        .load(conn)
        .await
}

/// How many live tokens (of one kind, when given) the user has.
pub async fn tokens_count(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    kind: Option<&str>,
) -> QueryResult<i64> {
    let mut query = access_tokens::table
        .filter(access_tokens::user_id.eq(user_id))
        .filter(access_tokens::revoked_at.is_null())
        .into_boxed();
    if let Some(kind) = kind {
        query = query.filter(access_tokens::kind.eq(kind));
    }
    query.count().get_result(conn).await
}

/// Revokes one of the user's live tokens (of one kind, when given); false when there is no
/// such token.
pub async fn revoke_token(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    token_id: Uuid,
    kind: Option<&str>,
) -> QueryResult<bool> {
    super::revocations::note(user_id);
    let kinds: Vec<&str> = match kind {
        Some(kind) => vec![kind],
        None => vec!["session", "personal"],
    };
    diesel::update(
        access_tokens::table
            .find(token_id)
            .filter(access_tokens::user_id.eq(user_id))
            .filter(access_tokens::kind.eq_any(kinds))
            .filter(access_tokens::revoked_at.is_null()),
    )
    .set(access_tokens::revoked_at.eq(diesel::dsl::now))
    .execute(conn)
    .await
    .map(|n| n == 1)
}

pub async fn mark_email_verified(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(
        users::table
            .find(user_id)
            .filter(users::email_verified_at.is_null()),
    )
    .set(users::email_verified_at.eq(now))
    .execute(conn)
    .await
    .map(drop)
}

/// One-time links sent by email: address verification and password reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkPurpose {
    VerifyEmail,
    ResetPassword,
    /// Moves the account to the address the link was sent to.
    ChangeEmail,
}

impl LinkPurpose {
    pub fn as_db(self) -> &'static str {
        match self {
            LinkPurpose::VerifyEmail => "verify_email",
            LinkPurpose::ResetPassword => "reset_password",
            LinkPurpose::ChangeEmail => "change_email",
        }
    }
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = account_tokens)]
pub struct AccountTokenRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub purpose: String,
    pub expires_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub used_at: Option<DateTime<Utc>>,
    pub new_email: Option<String>,
}

/// Moves the account to `email`, proven by the link that carried it.
pub async fn set_email(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    email: &str,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(users::table.find(user_id))
        .set((users::email.eq(email), users::email_verified_at.eq(now)))
        .execute(conn)
        .await
        .map(drop)
}

/// A one-time link for `user_id`; `new_email` is the address a `ChangeEmail` link moves
/// the account to (and only such links have one).
pub async fn insert_account_token(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    purpose: LinkPurpose,
    expires_at: DateTime<Utc>,
    new_email: Option<&str>,
) -> QueryResult<Uuid> {
    diesel::insert_into(account_tokens::table)
        .values((
            account_tokens::id.eq(Uuid::now_v7()),
            account_tokens::user_id.eq(user_id),
            account_tokens::purpose.eq(purpose.as_db()),
            account_tokens::expires_at.eq(expires_at),
            account_tokens::new_email.eq(new_email),
        ))
        .returning(account_tokens::id)
        .get_result(conn)
        .await
}

/// Locks the account a link (by its token's hash) belongs to, if any. Every change of
/// credentials locks the account first, then its links, so two of them (a reset and an
/// address change, say) run one after the other instead of deadlocking.
pub async fn lock_link_owner(conn: &mut AsyncPgConnection, token_hash: &[u8]) -> QueryResult<()> {
    let owner = account_tokens::table
        .filter(account_tokens::link_hashes.contains(vec![token_hash]))
        .select(account_tokens::user_id);
    users::table
        .filter(users::id.eq_any(owner))
        .select(users::id)
        .for_update()
        .load::<Uuid>(conn)
        .await
        .map(drop)
}

/// A usable link token (unused, unexpired, for `purpose`), locked.
pub async fn open_account_token(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
    purpose: LinkPurpose,
    now: DateTime<Utc>,
) -> QueryResult<Option<AccountTokenRow>> {
    account_tokens::table
        .filter(account_tokens::link_hashes.contains(vec![token_hash]))
        .filter(account_tokens::purpose.eq(purpose.as_db()))
        .filter(account_tokens::used_at.is_null())
        .filter(account_tokens::expires_at.gt(now))
        .select(AccountTokenRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

pub async fn use_account_token(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(account_tokens::table.find(id))
        .set(account_tokens::used_at.eq(now))
        .execute(conn)
        .await
        .map(drop)
}

/// Closes every pending link of the user (address change, reset, verification), sent or
/// not: marked used, so it neither opens nor goes out. What a new password does to links
/// asked for under the old one. How many.
pub async fn void_links(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(
        account_tokens::table
            .filter(account_tokens::user_id.eq(user_id))
            .filter(account_tokens::used_at.is_null()),
    )
    .set(account_tokens::used_at.eq(now))
    .execute(conn)
    .await
}

/// For the send job: the token row and its user, locked.
pub async fn lock_account_token(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<(AccountTokenRow, UserRow)>> {
    let locked: Option<Uuid> = account_tokens::table
        .find(id)
        .select(account_tokens::id)
        .for_update()
        .first(conn)
        .await
        .optional()?;
    if locked.is_none() {
        return Ok(None);
    }
    account_tokens::table
        .inner_join(users::table)
        .filter(account_tokens::id.eq(id))
        .select((AccountTokenRow::as_select(), UserRow::as_select()))
        .first(conn)
        .await
        .optional()
}

pub async fn set_account_token_hash(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    hash: &[u8],
) -> QueryResult<()> {
    diesel::update(account_tokens::table.find(id))
        .set(account_tokens::token_hash.eq(hash))
        .execute(conn)
        .await
        .map(drop)
}

pub async fn mark_account_token_sent(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(account_tokens::table.find(id))
        .set(account_tokens::sent_at.eq(now))
        .execute(conn)
        .await
        .map(drop)
}

pub async fn account_tokens_since(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    purpose: LinkPurpose,
    since: DateTime<Utc>,
) -> QueryResult<i64> {
    account_tokens::table
        .filter(account_tokens::user_id.eq(user_id))
        .filter(account_tokens::purpose.eq(purpose.as_db()))
        .filter(account_tokens::created_at.gt(since))
        .count()
        .get_result(conn)
        .await
}

pub async fn set_password(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    password_hash: &str,
) -> QueryResult<()> {
    diesel::update(users::table.find(user_id))
        .set(users::password_hash.eq(password_hash))
        .execute(conn)
        .await
        .map(drop)
}

/// Revokes the user's live sessions other than `keep`; how many.
pub async fn revoke_other_sessions(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    keep: Uuid,
) -> QueryResult<usize> {
    super::revocations::note(user_id);
    diesel::update(
        access_tokens::table
            .filter(access_tokens::user_id.eq(user_id))
            .filter(access_tokens::kind.eq("session"))
            .filter(access_tokens::id.ne(keep))
            .filter(access_tokens::revoked_at.is_null()),
    )
    .set(access_tokens::revoked_at.eq(diesel::dsl::now))
    .execute(conn)
    .await
}

/// Revokes every token of the user made before `before`, except `keep`: what proving the
/// address does to whatever anyone did with the account before the proof.
pub async fn revoke_tokens_before(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    before: DateTime<Utc>,
    keep: Option<Uuid>,
) -> QueryResult<usize> {
    super::revocations::note(user_id);
    diesel::update(
        access_tokens::table
            .filter(access_tokens::user_id.eq(user_id))
            .filter(access_tokens::created_at.lt(before))
            .filter(access_tokens::id.ne(keep.unwrap_or(Uuid::nil())))
            .filter(access_tokens::revoked_at.is_null()),
    )
    .set(access_tokens::revoked_at.eq(diesel::dsl::now))
    .execute(conn)
    .await
}

/// Signs the user out everywhere: every session and personal access token stops working.
pub async fn revoke_all_tokens(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<()> {
    super::revocations::note(user_id);
    diesel::update(
        access_tokens::table
            .filter(access_tokens::user_id.eq(user_id))
            .filter(access_tokens::revoked_at.is_null()),
    )
    .set(access_tokens::revoked_at.eq(diesel::dsl::now))
    .execute(conn)
    .await
    .map(drop)
}

/// Records a notice to `user` about their account, with the address and name to use; the
/// outbox job emails it.
pub async fn insert_notice(
    conn: &mut AsyncPgConnection,
    user: &UserRow,
    kind: &str,
    detail: Option<&str>,
) -> QueryResult<Uuid> {
    diesel::insert_into(account_notices::table)
        .values((
            account_notices::id.eq(Uuid::now_v7()),
            account_notices::user_id.eq(user.id),
            account_notices::email.eq(&user.email),
            account_notices::name.eq(&user.name),
            account_notices::kind.eq(kind),
            account_notices::detail.eq(detail),
        ))
        .returning(account_notices::id)
        .get_result(conn)
        .await
}

/// Records a notice of `kind` to the account having the address `email` (as typed, any
/// case), if one has it: its id. The same one statement whether or not one has it.
pub async fn insert_notice_for_address(
    conn: &mut AsyncPgConnection,
    email: &str,
    kind: &str,
) -> QueryResult<Option<Uuid>> {
    diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);
    let owner = users::table
        .filter(lower(users::email).eq(lower(email)))
        .select((
            Uuid::now_v7().into_sql::<diesel::sql_types::Uuid>(),
            users::id.nullable(),
            users::email,
            users::name,
            kind.into_sql::<diesel::sql_types::Text>(),
        ));
    diesel::insert_into(account_notices::table)
        .values(owner)
        .into_columns((
            account_notices::id,
            account_notices::user_id,
            account_notices::email,
            account_notices::name,
            account_notices::kind,
        ))
        .returning(account_notices::id)
        .get_result(conn)
        .await
        .optional()
}

/// Remembers that `user_id` began a session from `network` at `now`.
pub async fn remember_network(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    network: &str,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(sign_in_networks::table)
        .values((
            sign_in_networks::user_id.eq(user_id),
            sign_in_networks::network.eq(network),
            sign_in_networks::last_signed_in_at.eq(now),
        ))
        .on_conflict((sign_in_networks::user_id, sign_in_networks::network))
        .do_update()
        .set(sign_in_networks::last_signed_in_at.eq(now))
        .execute(conn)
        .await
        .map(drop)
}

/// Whether the account having the address `email` (as typed) began a session from
/// `network` since `since`. The same one statement whether or not an account has it.
pub async fn signed_in_from(
    conn: &mut AsyncPgConnection,
    email: &str,
    network: &str,
    since: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);
    diesel::select(diesel::dsl::exists(
        sign_in_networks::table
            .inner_join(users::table)
            .filter(lower(users::email).eq(lower(email)))
            .filter(sign_in_networks::network.eq(network))
            .filter(sign_in_networks::last_signed_in_at.gt(since)),
    ))
    .get_result(conn)
    .await
}

/// Forgets networks not signed in from since `before`. Run by the workers.
pub async fn forget_old_networks(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::delete(sign_in_networks::table.filter(sign_in_networks::last_signed_in_at.lt(before)))
        .execute(conn)
        .await
}

/// For the send job: an unsent notice's kind, address, name and detail.
pub async fn unsent_notice(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<(String, String, String, Option<String>)>> {
    account_notices::table
        .find(id)
        .select((
            account_notices::kind,
            account_notices::email,
            account_notices::name,
            account_notices::detail,
        ))
        .first(conn)
        .await
        .optional()
}

/// A sent notice is forgotten, address and all.
pub async fn forget_notice(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<()> {
    diesel::delete(account_notices::table.find(id))
        .execute(conn)
        .await
        .map(drop)
}

/// Deletes the account; its memberships, tokens and links go with it (foreign keys), its
/// invitations and resources stay without their author.
pub async fn delete_user(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
    super::revocations::note(id);
    diesel::delete(users::table.find(id))
        .execute(conn)
        .await
        .map(|n| n == 1)
}

/// Records a reset request for an address as typed (lower-cased); the same work whether or
/// not an account has it.
pub async fn insert_reset_request(
    conn: &mut AsyncPgConnection,
    email_lower: &str,
) -> QueryResult<Uuid> {
    diesel::insert_into(password_reset_requests::table)
        .values((
            password_reset_requests::id.eq(Uuid::now_v7()),
            password_reset_requests::email_lower.eq(email_lower),
        ))
        .returning(password_reset_requests::id)
        .get_result(conn)
        .await
}

/// A reset request, locked: its address, whether it was processed, and the link it made.
pub async fn lock_reset_request(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<(String, Option<DateTime<Utc>>, Option<Uuid>)>> {
    password_reset_requests::table
        .find(id)
        .select((
            password_reset_requests::email_lower,
            password_reset_requests::processed_at,
            password_reset_requests::account_token_id,
        ))
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Marks a reset request processed, with the link it made if any.
pub async fn finish_reset_request(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    token_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(password_reset_requests::table.find(id))
        .set((
            password_reset_requests::processed_at.eq(now),
            password_reset_requests::account_token_id.eq(token_id),
        ))
        .execute(conn)
        .await
        .map(drop)
}

/// The link a processed reset request made, if it made one.
pub async fn token_of_reset_request(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<Uuid>> {
    password_reset_requests::table
        .find(id)
        .select(password_reset_requests::account_token_id)
        .first(conn)
        .await
        .optional()
        .map(Option::flatten)
}

/// Deletes reset requests older than a day (run by the workers).
pub async fn forget_old_reset_requests(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::delete(
        password_reset_requests::table
            .filter(password_reset_requests::requested_at.lt(now - chrono::Duration::days(1))),
    )
    .execute(conn)
    .await
}

/// A sign-up waiting for its emailed link.
#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = sign_up_requests)]
pub struct SignUpRequestRow {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub expires_at: DateTime<Utc>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// Records a sign-up as asked; the same work whether or not an account has the address.
pub async fn insert_sign_up_request(
    conn: &mut AsyncPgConnection,
    email: &str,
    name: &str,
    password_hash: &str,
    expires_at: DateTime<Utc>,
) -> QueryResult<Uuid> {
    diesel::insert_into(sign_up_requests::table)
        .values((
            sign_up_requests::id.eq(Uuid::now_v7()),
            sign_up_requests::email.eq(email),
            sign_up_requests::name.eq(name),
            sign_up_requests::password_hash.eq(password_hash),
            sign_up_requests::expires_at.eq(expires_at),
        ))
        .returning(sign_up_requests::id)
        .get_result(conn)
        .await
}

/// A sign-up request, locked, for the worker that emails it.
pub async fn lock_sign_up_request(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<SignUpRequestRow>> {
    sign_up_requests::table
        .find(id)
        .select(SignUpRequestRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Takes request `id`'s email on if `email`'s hourly share allows: under a transaction lock
/// per address (so concurrent workers count one another), counts the requests to it taken
/// on since `since` (links and notices alike) and, below `share`, marks this one. Whether
/// it was taken on.
pub async fn claim_sign_up_email(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    email: &str,
    since: DateTime<Utc>,
    share: i64,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended(lower($1), 17))")
        .bind::<diesel::sql_types::Text, _>(email)
        .execute(conn)
        .await?;
    let taken: i64 = sign_up_requests::table
        .filter(lower(sign_up_requests::email).eq(lower(email)))
        .filter(sign_up_requests::claimed_at.gt(since))
        .count()
        .get_result(conn)
        .await?;
    if taken >= share {
        return Ok(false);
    }
    diesel::update(sign_up_requests::table.find(id))
        .set(sign_up_requests::claimed_at.eq(now))
        .execute(conn)
        .await?;
    Ok(true)
}

pub async fn set_sign_up_token(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    token_hash: &[u8],
) -> QueryResult<()> {
    diesel::update(sign_up_requests::table.find(id))
        .set(sign_up_requests::token_hash.eq(token_hash))
        .execute(conn)
        .await
        .map(drop)
}

pub async fn mark_sign_up_sent(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(sign_up_requests::table.find(id))
        .set(sign_up_requests::sent_at.eq(now))
        .execute(conn)
        .await
        .map(drop)
}

/// Uses the sign-up whose link token hashes to `token_hash`: deletes it (and with it the
/// password hash it held) and answers it, unless it expired. One statement.
pub async fn take_sign_up(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
    now: DateTime<Utc>,
) -> QueryResult<Option<SignUpRequestRow>> {
    diesel::delete(
        sign_up_requests::table
            .filter(sign_up_requests::link_hashes.contains(vec![token_hash]))
            .filter(sign_up_requests::expires_at.gt(now)),
    )
    .returning(SignUpRequestRow::as_returning())
    .get_result(conn)
    .await
    .optional()
}

/// Deletes a sign-up request that will get no email (expired, or its address had its
/// hourly share), password hash and all.
pub async fn forget_sign_up(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<()> {
    diesel::delete(sign_up_requests::table.find(id))
        .execute(conn)
        .await
        .map(drop)
}

/// Deletes sign-up requests older than two days (run by the workers).
pub async fn forget_old_sign_ups(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::delete(
        sign_up_requests::table
            .filter(sign_up_requests::requested_at.lt(now - chrono::Duration::days(2))),
    )
    .execute(conn)
    .await
}
