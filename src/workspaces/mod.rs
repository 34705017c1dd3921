//! Workspaces: creating (each with its own 14-day trial), listing the caller's, switching,
//! renaming and deleting.
//!
//! Rules: a user sees exactly the workspaces they belong to; any other id is `NOT_FOUND`.
//! Delete is Owner-only and soft: `deleted_at` hides the workspace from every query at once
//! and keeps its rows for a later purge job.
//!
//! Caps, so one account cannot mint free capacity: an account owns at most
//! [`OWNED_PER_ACCOUNT`] live workspaces and starts at most [`TRIALS_PER_ACCOUNT_PER_DAY`]
//! new ones (each a fresh trial) a day; each aliased `createWorkspace` in one operation
//! counts, as separate requests would.

pub mod graphql;
pub mod loader;
pub mod model;

use chrono::{DateTime, Duration, Utc};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use crate::error::{ApiError, ErrorCode};
use crate::roles::Role;
use crate::throttle::Window;
use model::WorkspaceRow;

pub const TRIAL_LENGTH: Duration = Duration::days(14);
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

/// Creates a workspace owned by `actor`, on its own trial, within the account's caps. Call
/// inside a transaction.
pub async fn create(
    conn: &mut AsyncPgConnection,
    actor: Uuid,
    name: &str,
    now: DateTime<Utc>,
) -> Result<WorkspaceRow, WorkspaceError> {
    let owned = model::memberships_of_caller(conn, None)
        .await?
        .iter()
        .filter(|(_, role)| *role == Role::Owner)
        .count();
    if owned >= OWNED_PER_ACCOUNT {
        return Err(WorkspaceError::TooManyOwned);
    }
    TRIALS_PER_ACCOUNT_PER_DAY
        .hit(conn, &actor.to_string(), now)
        .await??;
    Ok(model::create_with_owner(conn, name, actor, now).await?)
}
