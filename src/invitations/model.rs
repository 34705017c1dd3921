//! Rows and queries for invitations and their send log.

use chrono::{DateTime, Utc};
use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::InvitationStatus;
use crate::auth::model::UserRow;
use crate::db::page::Page;
use crate::roles::Role;
use crate::schema::{invitation_sends, invitations, memberships, users, workspaces};

diesel::define_sql_function!(fn lower(x: Text) -> Text);

pub const ONE_PENDING_PER_EMAIL: &str = "invitations_one_pending_per_email";

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = invitations)]
pub struct InvitationRow {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub email: String,
    pub role: String,
    pub invited_by: Option<Uuid>,
    pub status: String,
    pub delivery: i32,
    pub delivered: i32,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl InvitationRow {
    pub fn role(&self) -> Role {
        Role::from_db(&self.role).unwrap_or(Role::Viewer)
    }

    /// The status as users see it: a pending invitation past its expiry is EXPIRED.
    pub fn status(&self, now: DateTime<Utc>) -> InvitationStatus {
        match self.status.as_str() {
            "pending" if self.expires_at <= now => InvitationStatus::Expired,
            "pending" => InvitationStatus::Pending,
            "accepted" => InvitationStatus::Accepted,
            "declined" => InvitationStatus::Declined,
            "revoked" => InvitationStatus::Revoked,
            _ => InvitationStatus::Expired,
        }
    }
}

pub async fn insert(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    email: &str,
    role: Role,
    invited_by: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<InvitationRow> {
    diesel::insert_into(invitations::table)
        .values((
            invitations::id.eq(Uuid::now_v7()),
            invitations::workspace_id.eq(workspace_id),
            invitations::email.eq(email),
            invitations::role.eq(role.as_db()),
            invitations::invited_by.eq(invited_by),
            invitations::created_at.eq(now),
            invitations::expires_at.eq(now + super::VALIDITY),
        ))
        .returning(InvitationRow::as_returning())
        .get_result(conn)
        .await
}

/// Marks pending invitations to `email` that have run out as expired, so a new one can be made.
pub async fn expire_lapsed(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    email: &str,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(
        invitations::table
            .filter(invitations::workspace_id.eq(workspace_id))
            .filter(lower(invitations::email).eq(lower(email)))
            .filter(invitations::status.eq("pending"))
            .filter(invitations::expires_at.le(now)),
    )
    .set(invitations::status.eq("expired"))
    .execute(conn)
    .await
    .map(drop)
}

pub async fn is_member_email(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    email: &str,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        memberships::table
            .inner_join(users::table)
            .filter(memberships::workspace_id.eq(workspace_id))
            .filter(lower(users::email).eq(lower(email))),
    ))
    .get_result(conn)
    .await
}

pub async fn find_in_workspace(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<InvitationRow>> {
    invitations::table
        .find((workspace_id, id))
        .select(InvitationRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

diesel::define_sql_function!(fn invitation_workspace_by_token(hash: diesel::sql_types::Bytea) -> diesel::sql_types::Nullable<diesel::sql_types::Uuid>);
diesel::define_sql_function!(fn invitation_workspace_by_id(id: diesel::sql_types::Uuid) -> diesel::sql_types::Nullable<diesel::sql_types::Uuid>);

/// The workspace of the invitation a link token belongs to: row-level security hides
/// invitations until a connection is in it. Runs in any context.
pub async fn workspace_of_token(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
) -> QueryResult<Option<Uuid>> {
    diesel::select(invitation_workspace_by_token(token_hash))
        .get_result(conn)
        .await
}

/// The workspace of an invitation. Runs in any context.
pub async fn workspace_of(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Uuid>> {
    diesel::select(invitation_workspace_by_id(id))
        .get_result(conn)
        .await
}

/// Enters, for the current transaction, the workspace of the invitation a link token belongs
/// to; false when there is none.
async fn enter_by_token(conn: &mut AsyncPgConnection, token_hash: &[u8]) -> QueryResult<bool> {
    match workspace_of_token(conn, token_hash).await? {
        Some(workspace) => crate::db::enter_workspace(conn, workspace)
            .await
            .map(|()| true),
        None => Ok(false),
    }
}

/// Enters, for the current transaction, the workspace of an invitation; `None` when there
/// is none.
async fn enter_by_id(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Uuid>> {
    let Some(workspace) = workspace_of(conn, id).await? else {
        return Ok(None);
    };
    crate::db::enter_workspace(conn, workspace).await?;
    Ok(Some(workspace))
}

/// The invitation a link token belongs to, locked, if its workspace is live.
pub async fn find_by_token_for_update(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
) -> QueryResult<Option<InvitationRow>> {
    if !enter_by_token(conn, token_hash).await? {
        return Ok(None);
    }
    let row = invitations::table
        .filter(invitations::link_hashes.contains(vec![token_hash]))
        .select(InvitationRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?;
    match row {
        Some(row) if workspace_is_live(conn, row.workspace_id).await? => Ok(Some(row)),
        _ => Ok(None),
    }
}

async fn workspace_is_live(conn: &mut AsyncPgConnection, workspace_id: Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        workspaces::table
            .find(workspace_id)
            .filter(workspaces::deleted_at.is_null()),
    ))
    .get_result(conn)
    .await
}

/// What the accept page shows for a link token.
pub struct Preview {
    pub invitation: InvitationRow,
    pub workspace_name: String,
    pub inviter_name: Option<String>,
}

/// What the accept page shows for a link token; `conn` is in the invitation's workspace
/// ([`workspace_of_token`]).
pub async fn preview(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
) -> QueryResult<Option<Preview>> {
    let key: Option<(Uuid, Uuid)> = invitations::table
        .filter(invitations::link_hashes.contains(vec![token_hash]))
        .select((invitations::workspace_id, invitations::id))
        .first(conn)
        .await
        .optional()?;
    match key {
        Some((workspace_id, id)) => details(conn, workspace_id, id).await,
        None => Ok(None),
    }
}

/// An invitation with its workspace's and inviter's names, if its workspace is live.
async fn details(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<Preview>> {
    let row: Option<(InvitationRow, String, Option<String>)> = invitations::table
        .inner_join(workspaces::table)
        .left_join(users::table.on(invitations::invited_by.eq(users::id.nullable())))
        .filter(invitations::id.eq(id))
        .filter(invitations::workspace_id.eq(workspace_id))
        .filter(workspaces::deleted_at.is_null())
        .select((
            InvitationRow::as_select(),
            workspaces::name,
            users::name.nullable(),
        ))
        .first(conn)
        .await
        .optional()?;
    Ok(
        row.map(|(invitation, workspace_name, inviter_name)| Preview {
            invitation,
            workspace_name,
            inviter_name,
        }),
    )
}

pub async fn set_status(
    conn: &mut AsyncPgConnection,
    invitation: &InvitationRow,
    status: &str,
    now: DateTime<Utc>,
) -> QueryResult<InvitationRow> {
    diesel::update(invitations::table.find((invitation.workspace_id, invitation.id)))
        .set((
            invitations::status.eq(status),
            invitations::responded_at.eq(now),
        ))
        .returning(InvitationRow::as_returning())
        .get_result(conn)
        .await
}

/// A new delivery: the old link stops working at once and the expiry starts again.
pub async fn rotate_for_resend(
    conn: &mut AsyncPgConnection,
    invitation: &InvitationRow,
    now: DateTime<Utc>,
) -> QueryResult<InvitationRow> {
    diesel::update(invitations::table.find((invitation.workspace_id, invitation.id)))
        .set((
            invitations::token_hash.eq(None::<Vec<u8>>),
            invitations::delivery.eq(invitations::delivery + 1),
            invitations::expires_at.eq(now + super::VALIDITY),
        ))
        .returning(InvitationRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn record_send(
    conn: &mut AsyncPgConnection,
    invitation: &InvitationRow,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(invitation_sends::table)
        .values((
            invitation_sends::invitation_id.eq(invitation.id),
            invitation_sends::workspace_id.eq(invitation.workspace_id),
            invitation_sends::email_lower.eq(invitation.email.to_lowercase()),
            invitation_sends::sent_at.eq(now),
        ))
        .execute(conn)
        .await
        .map(drop)
}

/// Deletes the sends from before `before`, in every workspace (an owner-run function).
pub async fn forget_sends_before(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
) -> QueryResult<usize> {
    let sql = "SELECT forget_old_invitation_sends($1) AS pruned";
    crate::audit::model::prune_with(conn, sql, before).await
}

/// Sends since `since`: by the workspace, to the address (any workspace), of the invitation.
pub async fn sends_since(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    email: &str,
    invitation_id: Option<Uuid>,
    since: DateTime<Utc>,
) -> QueryResult<(i64, i64, i64)> {
    let recent = || invitation_sends::table.filter(invitation_sends::sent_at.gt(since));
    let by_workspace = recent()
        .filter(invitation_sends::workspace_id.eq(workspace_id))
        .select(count_star())
        .get_result(conn)
        .await?;
    // Within this workspace only: a cap across workspaces would let one tenant spend it
    // and lock the address out of everyone else's invitations.
    let to_address = recent()
        .filter(invitation_sends::workspace_id.eq(workspace_id))
        .filter(invitation_sends::email_lower.eq(email.to_lowercase()))
        .select(count_star())
        .get_result(conn)
        .await?;
    let of_invitation = match invitation_id {
        Some(id) => {
            recent()
                .filter(invitation_sends::invitation_id.eq(id))
                .select(count_star())
                .get_result(conn)
                .await?
        }
        None => 0,
    };
    Ok((by_workspace, to_address, of_invitation))
}

/// One page in `(created_at, id)` order, with one extra row when more follow; each row
/// carries the size of the whole list (see [`split_total`](crate::db::page::split_total)).
pub async fn page(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    page: &Page,
) -> QueryResult<Vec<((InvitationRow, Option<UserRow>), Option<i64>)>> {
    let mut query = invitations::table
        .left_join(users::table.on(invitations::invited_by.eq(users::id.nullable())))
        .filter(invitations::workspace_id.eq(workspace_id))
        .select((
            InvitationRow::as_select(),
            Option::<UserRow>::as_select(),
            invitations_of(workspace_id).count().single_value(),
        ))
        .order((invitations::created_at.asc(), invitations::id.asc()))
        .limit(page.limit())
        .into_boxed();
    if let Some(after) = page.after {
        query = query.filter(
            invitations::created_at
                .gt(after.at)
                .or(invitations::created_at
                    .eq(after.at)
                    .and(invitations::id.gt(after.id))),
        );
    }
    let rows: Vec<(InvitationRow, Option<UserRow>, Option<i64>)> = query.load(conn).await?;
    Ok(rows
        .into_iter()
        .map(|(row, user, total)| ((row, user), total))
        .collect())
}

fn invitations_of(workspace_id: Uuid) -> invitations::BoxedQuery<'static, diesel::pg::Pg> {
    invitations::table
        .filter(invitations::workspace_id.eq(workspace_id))
        .into_boxed()
}

pub async fn count(conn: &mut AsyncPgConnection, workspace_id: Uuid) -> QueryResult<i64> {
    invitations_of(workspace_id).count().get_result(conn).await
}

/// One invitation with who sent it, as a page has it.
pub async fn find_with_inviter(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<(InvitationRow, Option<UserRow>)>> {
    invitations::table
        .left_join(users::table.on(invitations::invited_by.eq(users::id.nullable())))
        .filter(invitations::workspace_id.eq(workspace_id))
        .filter(invitations::id.eq(id))
        .select((InvitationRow::as_select(), Option::<UserRow>::as_select()))
        .first(conn)
        .await
        .optional()
}

/// For the send job: the invitation with what its email needs, locked.
pub async fn lock_for_delivery(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<Preview>> {
    let Some(workspace_id) = enter_by_id(conn, id).await? else {
        return Ok(None);
    };
    let locked: Option<Uuid> = invitations::table
        .find((workspace_id, id))
        .select(invitations::id)
        .for_update()
        .first(conn)
        .await
        .optional()?;
    match locked {
        Some(id) => details(conn, workspace_id, id).await,
        None => Ok(None),
    }
}

pub async fn set_token(
    conn: &mut AsyncPgConnection,
    invitation: &InvitationRow,
    hash: &[u8],
) -> QueryResult<()> {
    diesel::update(invitations::table.find((invitation.workspace_id, invitation.id)))
        .set(invitations::token_hash.eq(hash))
        .execute(conn)
        .await
        .map(drop)
}

/// Records that delivery `delivery` went out; `conn` is in the invitation's workspace
/// ([`workspace_of`]).
pub async fn mark_delivered(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    id: Uuid,
    delivery: i32,
) -> QueryResult<()> {
    diesel::update(
        invitations::table
            .find((workspace_id, id))
            .filter(invitations::delivered.lt(delivery)),
    )
    .set(invitations::delivered.eq(delivery))
    .execute(conn)
    .await
    .map(drop)
}
