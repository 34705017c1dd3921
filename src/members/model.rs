//! Rows and queries for memberships.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::auth::model::UserRow;
use crate::db::page::Page;
use crate::roles::Role;
use crate::schema::{memberships, users};

/// A member with their user row, as listed.
#[derive(Clone, Debug)]
pub struct MemberRow {
    pub user: UserRow,
    pub role: Role,
    pub joined_at: DateTime<Utc>,
}

pub async fn role_of(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    user_id: Uuid,
) -> QueryResult<Option<Role>> {
    let role: Option<String> = memberships::table
        .find((workspace_id, user_id))
        .select(memberships::role)
        .first(conn)
        .await
        .optional()?;
    Ok(role.as_deref().and_then(Role::from_db))
}

/// One page of members in `(joined_at, user_id)` order, with one extra row when more follow;
/// each row carries the number of members (see [`split_total`](crate::db::page::split_total)).
pub async fn page(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    page: &Page,
) -> QueryResult<Vec<(MemberRow, Option<i64>)>> {
    let query = page_query(workspace_id, page);
    let rows: Vec<(UserRow, String, DateTime<Utc>, Option<i64>)> = query.load(conn).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(user, role, joined_at, total)| {
            let member = MemberRow {
                user,
                role: Role::from_db(&role)?,
                joined_at,
            };
            Some((member, total))
        })
        .collect())
}

/// The query behind [`page`] (public so tests can look at its plan).
pub fn page_query(
    workspace_id: Uuid,
    page: &Page,
) -> impl diesel_async::methods::LoadQuery<
    'static,
    AsyncPgConnection,
    (UserRow, String, DateTime<Utc>, Option<i64>),
> + diesel::query_builder::QueryFragment<diesel::pg::Pg>
       + diesel::query_builder::QueryId
       + Send
       + 'static {
    let mut query = memberships::table
        .inner_join(users::table)
        .filter(memberships::workspace_id.eq(workspace_id))
        .select((
            UserRow::as_select(),
            memberships::role,
            memberships::joined_at,
            members_of(workspace_id).count().single_value(),
        ))
        .order((memberships::joined_at.asc(), memberships::user_id.asc()))
        .limit(page.limit())
        .into_boxed();
    if let Some(after) = page.after {
        query = query.filter(
            memberships::joined_at
                .gt(after.at)
                .or(memberships::joined_at
                    .eq(after.at)
                    .and(memberships::user_id.gt(after.id))),
        );
    }
    query
}

fn members_of(workspace_id: Uuid) -> memberships::BoxedQuery<'static, diesel::pg::Pg> {
    memberships::table
        .filter(memberships::workspace_id.eq(workspace_id))
        .into_boxed()
}

pub async fn count(conn: &mut AsyncPgConnection, workspace_id: Uuid) -> QueryResult<i64> {
    members_of(workspace_id).count().get_result(conn).await
}

pub async fn set_role(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    user_id: Uuid,
    role: Role,
) -> QueryResult<()> {
    diesel::update(memberships::table.find((workspace_id, user_id)))
        .set(memberships::role.eq(role.as_db()))
        .execute(conn)
        .await
        .map(drop)
}

pub async fn remove(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    user_id: Uuid,
) -> QueryResult<bool> {
    diesel::delete(memberships::table.find((workspace_id, user_id)))
        .execute(conn)
        .await
        .map(|n| n == 1)
}

/// Makes `new_owner` the Owner and the current Owner an Admin (through
/// [`crate::members::hand_over`], which also re-bills). The demotion goes first: the one-owner
/// index is checked statement by statement.
pub async fn transfer_ownership(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    current_owner: Uuid,
    new_owner: Uuid,
) -> QueryResult<()> {
    set_role(conn, workspace_id, current_owner, Role::Admin).await?;
    set_role(conn, workspace_id, new_owner, Role::Owner).await
}

pub async fn find(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    user_id: Uuid,
) -> QueryResult<Option<MemberRow>> {
    let row: Option<(UserRow, String, DateTime<Utc>)> = memberships::table
        .inner_join(users::table)
        .filter(memberships::workspace_id.eq(workspace_id))
        .filter(memberships::user_id.eq(user_id))
        .select((
            UserRow::as_select(),
            memberships::role,
            memberships::joined_at,
        ))
        .first(conn)
        .await
        .optional()?;
    Ok(row.and_then(|(user, role, joined_at)| {
        Some(MemberRow {
            user,
            role: Role::from_db(&role)?,
            joined_at,
        })
    }))
}

pub async fn add(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    user_id: Uuid,
    role: Role,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(memberships::table)
        .values((
            memberships::workspace_id.eq(workspace_id),
            memberships::user_id.eq(user_id),
            memberships::role.eq(role.as_db()),
            memberships::joined_at.eq(now),
        ))
        .execute(conn)
        .await
        .map(drop)
}

pub async fn owner_of(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
) -> QueryResult<Option<Uuid>> {
    memberships::table
        .filter(memberships::workspace_id.eq(workspace_id))
        .filter(memberships::role.eq(Role::Owner.as_db()))
        .select(memberships::user_id)
        .first(conn)
        .await
        .optional()
}

/// The users holding one of `roles` in the workspace (e.g. who pays: Owner and Admins).
pub async fn with_roles(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    roles: &[Role],
) -> QueryResult<Vec<UserRow>> {
    let roles: Vec<&str> = roles.iter().map(|role| role.as_db()).collect();
    memberships::table
        .inner_join(users::table)
        .filter(memberships::workspace_id.eq(workspace_id))
        .filter(memberships::role.eq_any(roles))
        .select(UserRow::as_select())
        .order(memberships::joined_at.asc())
        .load(conn)
        .await
}
