//! Workspaces: creating (each with its own 14-day trial), listing the caller's, switching,
//! renaming and deleting.
//!
//! Rules: a user sees exactly the workspaces they belong to; any other id is `NOT_FOUND`.
//! Delete is Owner-only and soft: `deleted_at` hides the workspace from every query at once;
//! its Owner can restore it for a while, then it is purged ([`lifecycle`]).
//!
//! Caps, so one account cannot mint free capacity: an account owns at most
//! [`OWNED_PER_ACCOUNT`] live workspaces and starts at most [`TRIALS_PER_ACCOUNT_PER_DAY`]
//! new ones (each a fresh trial) a day; each aliased `createWorkspace` in one operation
//! counts, as separate requests would.

pub mod graphql;
pub mod lifecycle;
pub mod loader;
pub mod model;

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use uuid::Uuid;

use crate::audit::{self, Event, Target, Trail};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::roles::Role;
use crate::throttle::Window;
use model::WorkspaceRow;

pub use model::TRIAL_LENGTH;
/// Live workspaces one account may own.
pub const OWNED_PER_ACCOUNT: usize = 20;
/// New workspaces (trials) one account may create per day, besides the one of its sign-up.
pub const TRIALS_PER_ACCOUNT_PER_DAY: Window = Window {
    name: "create_workspace:user",
    limit: 5,
    window: std::time::Duration::from_secs(24 * 3600),
};

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("You own {OWNED_PER_ACCOUNT} workspaces, the most one account may own: delete one or hand one over first.")]
    TooManyOwned,
    #[error(transparent)]
    Throttled(#[from] crate::throttle::Limited),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

impl From<WorkspaceError> for ApiError {
    fn from(err: WorkspaceError) -> Self {
        match err {
            WorkspaceError::TooManyOwned => {
                ApiError::new(ErrorCode::UsageLimitReached, err.to_string())
            }
            WorkspaceError::Throttled(limited) => limited.into(),
            WorkspaceError::Db(err) => err.into(),
        }
    }
}

/// `TooManyOwned` when the caller owns [`OWNED_PER_ACCOUNT`] live workspaces already (a new
/// or a restored one would pass the cap).
pub async fn ensure_may_own_another(conn: &mut AsyncPgConnection) -> Result<(), ApiError> {
    let owned = model::memberships_of_caller(conn, None)
        .await?
        .iter()
        .filter(|(_, role)| *role == Role::Owner)
        .count();
    if owned >= OWNED_PER_ACCOUNT {
        return Err(WorkspaceError::TooManyOwned.into());
    }
    Ok(())
}

/// Creates a workspace owned by the actor of `trail`, on its own trial, within the
/// account's caps; writes `workspace.created`. Call inside a transaction.
pub async fn create(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    name: &str,
    now: DateTime<Utc>,
) -> Result<WorkspaceRow, ApiError> {
    let actor = trail.person()?;
    ensure_may_own_another(conn).await?;
    TRIALS_PER_ACCOUNT_PER_DAY
        .hit(conn, &actor.to_string(), now)
        .await?
        .map_err(WorkspaceError::from)?;
    create_owned(conn, trail, actor, name, now).await
}

/// Makes a workspace owned by `owner` (no caps: the sign-up's first workspace comes here
/// directly) and writes `workspace.created`, `owner` acting. Call inside a transaction.
pub async fn create_owned(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    owner: Uuid,
    name: &str,
    now: DateTime<Utc>,
) -> Result<WorkspaceRow, ApiError> {
    let row = model::create_with_owner(conn, name, owner, now).await?;
    let owner_acts = Trail {
        actor_id: Some(owner),
        ..trail.clone()
    };
    let event = Event {
        action: audit::Action::WorkspaceCreated,
        target: Target::workspace(row.id),
        changes: serde_json::json!({ "name": row.name }),
    };
    audit::record(conn, row.id, &owner_acts, event, now).await?;
    Ok(row)
}

/// Renames the workspace (the guard checked the actor may); writes `workspace.renamed`.
/// The connection must be inside the workspace.
pub async fn rename(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    workspace_id: Uuid,
    name: &str,
    now: DateTime<Utc>,
) -> Result<WorkspaceRow, ApiError> {
    // The connection is in the workspace already (`Db::conn_in`): no context to enter.
    conn.transaction(async |conn| {
        let (old, row) = model::rename(conn, workspace_id, name)
            .await?
            .ok_or_else(|| ApiError::not_found("Workspace"))?;
        let event = Event {
            action: audit::Action::WorkspaceRenamed,
            target: Target::workspace(workspace_id),
            changes: audit::changed("name", old, row.name.clone()),
        };
        audit::record(conn, workspace_id, trail, event, now).await?;
        Ok(row)
    })
    .await
}

/// Settings as asked: `None` leaves one as it is.
pub struct Settings {
    pub time_zone: Option<String>,
    /// `Some(None)`: keep conversations forever.
    pub conversation_retention_days: Option<Option<i32>>,
}

/// Updates the workspace's settings (the guard checked the actor may): a time zone is an
/// IANA name known to `chrono-tz`; conversations are kept 1 to 3,650 days, or forever.
/// Writes `workspace.settings_changed` with what changed, nothing when nothing did. The
/// connection must be inside the workspace.
pub async fn update_settings(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    workspace_id: Uuid,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<WorkspaceRow, ApiError> {
    let zone = match settings.time_zone.as_deref() {
        Some(name) => Some(name.trim().parse::<chrono_tz::Tz>().map_err(|_| {
            ApiError::bad_input(
                "`timeZone` must be an IANA time zone such as Europe/Paris, or UTC.",
            )
        })?),
        None => None,
    };
    if let Some(Some(days)) = settings.conversation_retention_days {
        if !(1..=3650).contains(&days) {
            return Err(ApiError::bad_input(
                "`conversationRetentionDays` must be 1 to 3650, or null to keep them forever.",
            ));
        }
    }
    let change = model::SettingsChange {
        time_zone: zone.map(chrono_tz::Tz::name),
        conversation_retention_days: settings.conversation_retention_days,
    };
    if let Some(name) = change.time_zone {
        // Analytics hand the zone to PostgreSQL: it must know it too (its time-zone
        // database may be older than the crate's).
        if !model::known_time_zone(conn, name).await? {
            return Err(ApiError::bad_input(format!(
                "`timeZone` {name} is not known to this server's database yet."
            )));
        }
    }
    conn.transaction(async |conn| {
        let updated = model::update_settings(conn, workspace_id, &change)
            .await?
            .ok_or_else(|| ApiError::not_found("Workspace"))?;
        let row = &updated.row;
        let mut changes = serde_json::Map::new();
        if updated.old_time_zone != row.time_zone {
            changes.extend(as_map(audit::changed(
                "timeZone",
                updated.old_time_zone.clone(),
                row.time_zone.clone(),
            )));
        }
        if updated.old_retention != row.conversation_retention_days {
            let field = "conversationRetentionDays";
            changes.extend(as_map(audit::changed(
                field,
                updated.old_retention,
                row.conversation_retention_days,
            )));
        }
        if !changes.is_empty() {
            let event = Event {
                action: audit::Action::WorkspaceSettingsChanged,
                target: Target::workspace(workspace_id),
                changes: serde_json::Value::Object(changes),
            };
            audit::record(conn, workspace_id, trail, event, now).await?;
        }
        Ok(updated.row)
    })
    .await
}

fn as_map(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// Deletes the workspace (soft: see the module doc); Owner only. Writes
/// `workspace.deleted`.
pub async fn delete(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    workspace_id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, ApiError> {
    let actor = trail.person()?;
    conn.transaction(async |conn| {
        let role = lock_caller_role(conn, workspace_id, actor).await?;
        if !crate::roles::allows(role, crate::roles::Action::DeleteWorkspace) {
            return Err(ApiError::forbidden(
                "Only the Owner can delete the workspace.",
            ));
        }
        let Some(name) = end(conn, workspace_id, now).await? else {
            return Ok(false);
        };
        let event = Event {
            action: audit::Action::WorkspaceDeleted,
            target: Target::workspace(workspace_id),
            changes: serde_json::json!({ "name": name }),
        };
        audit::record(conn, workspace_id, trail, event, now).await?;
        Ok(true)
    })
    .await
}

/// Takes the workspace's membership lock and returns the caller's role as it is now (it
/// may have changed since the guard looked); `NOT_FOUND` when they are no longer in a live
/// workspace. Call inside the change's transaction.
pub async fn lock_caller_role(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    caller_id: Uuid,
) -> ApiResult<Role> {
    model::lock_for_membership_change(conn, workspace_id, caller_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Workspace"))
}

/// Marks the workspace deleted and queues the end of its subscription, in the caller's
/// transaction; returns its name, or `None` if it was deleted already.
pub async fn end(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    now: DateTime<Utc>,
) -> diesel::QueryResult<Option<String>> {
    let deleted = model::soft_delete(conn, workspace_id, now).await?;
    if deleted.is_some() {
        crate::outbox::enqueue(conn, &crate::billing::sync::CancelBilling { workspace_id }).await?;
    }
    Ok(deleted)
}
