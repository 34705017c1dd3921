//! Rows and queries for workspaces, composable inside a caller's transaction.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::{bind, static_sql};
use crate::roles::Role;
use crate::schema::{memberships, workspaces};

/// How long a new workspace's trial lasts.
pub const TRIAL_LENGTH: chrono::Duration = chrono::Duration::days(14);

#[derive(Queryable, QueryableByName, Selectable, Clone, Debug)]
#[diesel(table_name = workspaces)]
pub struct WorkspaceRow {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub trial_ends_at: DateTime<Utc>,
    pub plan: Option<String>,
    pub subscription_status: Option<String>,
    /// When the subscription entered a failed-payment status ([`crate::billing::grace`]).
    pub payment_failed_at: Option<DateTime<Utc>>,
    /// Whose days analytics count in (IANA name).
    pub time_zone: String,
    /// How long conversations are kept after their last activity (`None`: forever).
    pub conversation_retention_days: Option<i32>,
}

/// [`WorkspaceRow`]'s columns of `w`, for hand-written SQL: named, not `w.*`, so a column
/// added while the service runs neither changes a prepared statement's result nor shadows
/// another column of the same name.
macro_rules! workspace_columns {
    () => {
        "w.id, w.name, w.created_at, w.trial_ends_at, w.plan, w.subscription_status, \
         w.payment_failed_at, w.time_zone, w.conversation_retention_days"
    };
}

/// Creates a workspace on a fresh trial with `owner_id` as its Owner.
pub async fn create_with_owner(
    conn: &mut AsyncPgConnection,
    name: &str,
    owner_id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<WorkspaceRow> {
    let workspace = diesel::insert_into(workspaces::table)
        .values((
            workspaces::id.eq(Uuid::now_v7()),
            workspaces::name.eq(name),
            workspaces::created_at.eq(now),
            workspaces::trial_ends_at.eq(now + TRIAL_LENGTH),
        ))
        .returning(WorkspaceRow::as_returning())
        .get_result(conn)
        .await?;
    crate::db::enter_workspace(conn, workspace.id).await?;
    diesel::insert_into(memberships::table)
        .values((
            memberships::workspace_id.eq(workspace.id),
            memberships::user_id.eq(owner_id),
            memberships::role.eq(Role::Owner.as_db()),
            memberships::joined_at.eq(now),
        ))
        .execute(conn)
        .await?;
    Ok(workspace)
}

/// The live workspaces the connection's user belongs to, among `ids` (all of them when `ids`
/// is None), with the user's role, oldest membership first. Works in any workspace context:
/// the memberships come from `caller_memberships(among)`, which reads the caller's own only.
pub async fn memberships_of_caller(
    conn: &mut AsyncPgConnection,
    ids: Option<&[Uuid]>,
) -> QueryResult<Vec<(WorkspaceRow, Role)>> {
    #[derive(QueryableByName)]
    struct Membership {
        #[diesel(embed)]
        workspace: WorkspaceRow,
        #[diesel(sql_type = diesel::sql_types::Text)]
        role: String,
    }

    // Two texts, so each is prepared with the plan its case needs: naming the workspaces on
    // `w` too lets the join start from their primary keys instead of reading every workspace.
    macro_rules! caller_workspaces {
        ($among:literal, $also:literal) => {
            concat!(
                "SELECT ",
                workspace_columns!(),
                ", m.role ",
                "FROM caller_memberships(",
                $among,
                ") m JOIN workspaces w ON w.id = m.workspace_id WHERE ",
                $also,
                "w.deleted_at IS NULL ORDER BY m.joined_at, w.id"
            )
        };
    }
    let rows: Vec<Membership> = match ids {
        Some(ids) => {
            let among = (bind::<Array<SqlUuid>, _>(ids),);
            static_sql(caller_workspaces!("$1", "w.id = ANY ($1) AND "), among)
                .load(conn)
                .await?
        }
        None => {
            static_sql(caller_workspaces!("NULL", ""), ())
                .load(conn)
                .await?
        }
    };
    Ok(rows
        .into_iter()
        .filter_map(|row| Some((row.workspace, Role::from_db(&row.role)?)))
        .collect())
}

/// Enters and locks a live workspace for a membership change and returns the caller's
/// current role;
/// `None` when the workspace is gone or the caller is no longer a member.
///
/// Every change to a workspace's memberships takes this lock first, so concurrent role
/// changes, transfers and departures run one after another and see each other's result.
pub async fn lock_for_membership_change(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    caller_id: Uuid,
) -> QueryResult<Option<Role>> {
    crate::db::enter_workspace(conn, workspace_id).await?;
    let live: Option<Uuid> = workspaces::table
        .find(workspace_id)
        .filter(workspaces::deleted_at.is_null())
        .select(workspaces::id)
        .for_update()
        .first(conn)
        .await
        .optional()?;
    if live.is_none() {
        return Ok(None);
    }
    crate::members::model::role_of(conn, workspace_id, caller_id).await
}

/// Renames a live workspace; answers its name before and the row after, in one statement
/// (the old name is read under the row lock the update takes).
pub async fn rename(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    name: &str,
) -> QueryResult<Option<(String, WorkspaceRow)>> {
    #[derive(QueryableByName)]
    struct Renamed {
        #[diesel(embed)]
        workspace: WorkspaceRow,
        #[diesel(sql_type = diesel::sql_types::Text)]
        old_name: String,
    }
    let renamed: Option<Renamed> = static_sql(
        concat!(
            "UPDATE workspaces w SET name = $2 \
             FROM (SELECT id, name FROM workspaces WHERE id = $1 AND deleted_at IS NULL \
                   FOR NO KEY UPDATE) old \
             WHERE w.id = old.id \
             RETURNING ",
            workspace_columns!(),
            ", old.name AS old_name"
        ),
        (
            bind::<diesel::sql_types::Uuid, _>(workspace_id),
            bind::<diesel::sql_types::Text, _>(name),
        ),
    )
    .get_result(conn)
    .await
    .optional()?;
    Ok(renamed.map(|r| (r.old_name, r.workspace)))
}

/// The settings an update changes: `None` leaves one as it is.
pub struct SettingsChange<'a> {
    pub time_zone: Option<&'a str>,
    /// `Some(None)`: keep conversations forever.
    pub conversation_retention_days: Option<Option<i32>>,
}

/// A live workspace's settings before an update, and its row after.
pub struct SettingsUpdated {
    pub old_time_zone: String,
    pub old_retention: Option<i32>,
    pub row: WorkspaceRow,
}

/// Whether PostgreSQL knows the time zone `name`.
pub async fn known_time_zone(conn: &mut AsyncPgConnection, name: &str) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Known {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        known: bool,
    }
    let known: Known = static_sql(
        "SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1) AS known",
        (bind::<diesel::sql_types::Text, _>(name),),
    )
    .get_result(conn)
    .await?;
    Ok(known.known)
}

/// Updates a live workspace's settings in one statement (the old values are read under the
/// row lock the update takes).
pub async fn update_settings(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    change: &SettingsChange<'_>,
) -> QueryResult<Option<SettingsUpdated>> {
    use diesel::sql_types::{Bool, Integer, Nullable, Text};
    #[derive(QueryableByName)]
    struct Updated {
        #[diesel(embed)]
        workspace: WorkspaceRow,
        #[diesel(sql_type = Text)]
        old_time_zone: String,
        #[diesel(sql_type = Nullable<Integer>)]
        old_retention: Option<i32>,
    }
    let updated: Option<Updated> = static_sql(
        concat!(
            "UPDATE workspaces w SET time_zone = COALESCE($2, w.time_zone), \
                 conversation_retention_days = CASE WHEN $3 THEN $4 ELSE w.conversation_retention_days END \
             FROM (SELECT id, time_zone, conversation_retention_days FROM workspaces \
                   WHERE id = $1 AND deleted_at IS NULL FOR NO KEY UPDATE) old \
             WHERE w.id = old.id \
             RETURNING ",
            workspace_columns!(),
            ", old.time_zone AS old_time_zone, old.conversation_retention_days AS old_retention"
        ),
        (
            bind::<diesel::sql_types::Uuid, _>(workspace_id),
            bind::<Nullable<Text>, _>(change.time_zone),
            bind::<Bool, _>(change.conversation_retention_days.is_some()),
            bind::<Nullable<Integer>, _>(change.conversation_retention_days.flatten()),
        ),
    )
    .get_result(conn)
    .await
    .optional()?;
    Ok(updated.map(|u| SettingsUpdated {
        old_time_zone: u.old_time_zone,
        old_retention: u.old_retention,
        row: u.workspace,
    }))
}

/// Hides the workspace from every query at once (its rows stay for a later purge); see
/// [`crate::workspaces::end`], which also ends its subscription.
/// Answers the deleted workspace's name, or `None` if it was gone already.
pub async fn soft_delete(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<Option<String>> {
    let deleted: Option<String> = diesel::update(
        workspaces::table
            .find(workspace_id)
            .filter(workspaces::deleted_at.is_null()),
    )
    .set(workspaces::deleted_at.eq(now))
    .returning(workspaces::name)
    .get_result(conn)
    .await
    .optional()?;
    Ok(deleted)
}

/// A live workspace by id, whoever asks (for service calls; users go through memberships).
pub async fn find_live(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
) -> QueryResult<Option<WorkspaceRow>> {
    workspaces::table
        .find(workspace_id)
        .filter(workspaces::deleted_at.is_null())
        .select(WorkspaceRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Serialises work on a workspace that must not interleave (a limit check and the insert it
/// allows: [`crate::billing::lock_row_with_limits`] takes the same lock) without blocking
/// reads of the row.
pub async fn lock_row(conn: &mut AsyncPgConnection, workspace_id: Uuid) -> QueryResult<()> {
    workspaces::table
        .find(workspace_id)
        .select(workspaces::id)
        .for_no_key_update()
        .first::<Uuid>(conn)
        .await
        .map(drop)
}

/// Brings back a workspace deleted less than `window` ago by the database's clock, whose
/// purge has not begun; the connection must be inside it. `None` otherwise.
pub async fn restore_deleted(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    window: chrono::Duration,
) -> QueryResult<Option<WorkspaceRow>> {
    static_sql(
        concat!(
            "UPDATE workspaces w SET deleted_at = NULL WHERE w.id = $1 ",
            "AND w.deleted_at > now() - $2 * interval '1 second' AND w.purge_started_at IS NULL ",
            "RETURNING ",
            workspace_columns!()
        ),
        (
            bind::<SqlUuid, _>(workspace_id),
            bind::<diesel::sql_types::BigInt, _>(window.num_seconds()),
        ),
    )
    .get_result(conn)
    .await
    .optional()
}

/// A deleted workspace due for its purge.
#[derive(QueryableByName, Clone, Debug)]
pub struct DueForPurge {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub stripe_customer_id: Option<String>,
}

/// Up to `max` workspaces deleted longer than `window` ago, oldest first. Runs in any
/// context.
pub async fn due_for_purge(
    conn: &mut AsyncPgConnection,
    window: chrono::Duration,
    max: i32,
) -> QueryResult<Vec<DueForPurge>> {
    use diesel::sql_types::{BigInt, Integer};
    static_sql(
        "SELECT id, stripe_customer_id FROM workspaces_to_purge($1 * interval '1 second', $2)",
        (
            bind::<BigInt, _>(window.num_seconds()),
            bind::<Integer, _>(max),
        ),
    )
    .load(conn)
    .await
}

/// Begins the purge of a workspace deleted longer than `window` ago, so it can no longer
/// be restored; false when it is not due. Runs in any context.
pub async fn purge_start(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    window: chrono::Duration,
) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Started {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Bool>)]
        started: Option<bool>,
    }
    let started: Started = static_sql(
        "SELECT purge_workspace_start($1, $2 * interval '1 second') AS started",
        (
            bind::<SqlUuid, _>(workspace_id),
            bind::<diesel::sql_types::BigInt, _>(window.num_seconds()),
        ),
    )
    .get_result(conn)
    .await?;
    Ok(started.started == Some(true))
}

#[derive(QueryableByName)]
struct Purged {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    rows: i64,
}

/// Deletes up to `batch` rows of deleted workspace `workspace_id` from one of its tables;
/// answers how many (0: only the workspace row is left). Runs in any context.
pub async fn purge_batch(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    batch: i32,
) -> QueryResult<i64> {
    use diesel::sql_types::Integer;
    let purged: Purged = static_sql(
        "SELECT purge_workspace_batch($1, $2) AS rows",
        (bind::<SqlUuid, _>(workspace_id), bind::<Integer, _>(batch)),
    )
    .get_result(conn)
    .await?;
    Ok(purged.rows)
}

/// Deletes the emptied workspace and records its purge (`purged_workspaces`, with its
/// Stripe customer, whose later events are then recorded scrubbed); false when it was
/// purged already. Runs in any context.
pub async fn purge_finish(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    rows: i64,
    stripe_customer_id: Option<&str>,
) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Finished {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        finished: bool,
    }
    let done: Finished = static_sql(
        "SELECT purge_workspace_finish($1, $2, $3) AS finished",
        (
            bind::<SqlUuid, _>(workspace_id),
            bind::<diesel::sql_types::BigInt, _>(rows),
            bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(stripe_customer_id),
        ),
    )
    .get_result(conn)
    .await?;
    Ok(done.finished)
}
