//! After a workspace is deleted: its Owner may restore it for `WORKSPACE_RESTORE_DAYS` (30
//! by default); after that a scheduled round purges it.
//!
//! Deleting ([`super::delete`]) hides the workspace at once and ends its subscription at the
//! period's end, so restoring keeps the plan (`billing::sync::follow_lifecycle`). The purge deletes its Stripe customer, then every
//! row of it in batches of [`PURGE_BATCH`] (the tables come from the catalog:
//! `purge_workspace_batch`, migration 000041), then the workspace itself, leaving one
//! record outside it (`purged_workspaces`).

use std::sync::OnceLock;

use chrono::{DateTime, Duration, Utc};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use uuid::Uuid;

use super::model::{self, WorkspaceRow};
use crate::audit::{self, Event, Target, Trail};
use crate::billing::stripe::{StripeApi, StripeCallError};
use crate::db::Db;
use crate::error::ApiError;
use crate::roles::Role;

/// Rows deleted per statement of a purge.
pub const PURGE_BATCH: i32 = 1000;
/// Workspaces purged per round; the rest wait for the next.
const PURGES_PER_ROUND: i32 = 20;
/// No new workspace's purge begins in a round after this long.
const ROUND_TIME: std::time::Duration = std::time::Duration::from_secs(300);

static WINDOW: OnceLock<Duration> = OnceLock::new();

/// Sets how long deleted workspaces can be restored, for this process (from
/// `WORKSPACE_RESTORE_DAYS`, at start); the first setting stands.
pub fn configure(window: Duration) {
    let _ = WINDOW.set(window);
}

/// How long a deleted workspace can be restored.
pub fn restore_window() -> Duration {
    WINDOW.get().copied().unwrap_or(Duration::days(
        crate::config::DEFAULT_WORKSPACE_RESTORE_DAYS as i64,
    ))
}

/// Brings back a workspace its Owner deleted within the window; writes
/// `workspace.restored` and resumes its subscription. Anyone else, and a workspace past
/// the window, get `NOT_FOUND`.
pub async fn restore(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    workspace_id: Uuid,
    now: DateTime<Utc>,
) -> Result<WorkspaceRow, ApiError> {
    let actor = trail.person()?;
    conn.transaction(async |conn| {
        crate::db::enter_workspace(conn, workspace_id).await?;
        let role = crate::members::model::role_of(conn, workspace_id, actor).await?;
        if role != Some(Role::Owner) {
            return Err(ApiError::not_found("Workspace"));
        }
        super::ensure_may_own_another(conn).await?;
        let Some(row) = model::restore_deleted(conn, workspace_id, restore_window()).await? else {
            return Err(ApiError::not_found("Workspace"));
        };
        let event = Event {
            action: audit::Action::WorkspaceRestored,
            target: Target::workspace(workspace_id),
            changes: serde_json::json!({ "name": row.name }),
        };
        audit::record(conn, workspace_id, trail, event, now).await?;
        let resume = crate::billing::sync::ResumeBilling { workspace_id };
        crate::outbox::enqueue(conn, &resume).await?;
        Ok(row)
    })
    .await
}

/// Purges the workspaces deleted longer ago than the window, up to a round's worth and
/// for at most [`ROUND_TIME`]; answers how many. One that fails (Stripe down, say) is left
/// for the next round, which takes up where it stopped.
pub async fn purge_due(db: &Db, stripe: Option<&StripeApi>) -> anyhow::Result<usize> {
    let started = std::time::Instant::now();
    let mut conn = db.conn_outside_tenancy().await?;
    let due = model::due_for_purge(&mut conn, restore_window(), PURGES_PER_ROUND).await?;
    drop(conn);
    let mut purged = 0;
    for workspace in due {
        if started.elapsed() > ROUND_TIME {
            break;
        }
        let key = format!("purge:{}", workspace.id);
        match crate::db::one_at_a_time(db, &key, purge(db, stripe, &workspace)).await {
            Ok(true) => purged += 1,
            Ok(false) => {}
            Err(err) => tracing::warn!(
                workspace = %workspace.id,
                "purging a deleted workspace failed, will retry: {err:#}"
            ),
        }
    }
    Ok(purged)
}

/// Begins the purge (no restore can follow), deletes the Stripe customer (which ends its
/// subscriptions and forgets its cards), scrubs its Stripe events, deletes its rows in
/// batches, then the workspace. Each step can run again after a crash; one round at a time
/// runs it (`purge_due`). False when it was not due after all (restored meanwhile, or
/// purged by another round).
async fn purge(
    db: &Db,
    stripe: Option<&StripeApi>,
    workspace: &model::DueForPurge,
) -> anyhow::Result<bool> {
    let mut conn = db.conn_outside_tenancy().await?;
    if !model::purge_start(&mut conn, workspace.id, restore_window()).await? {
        return Ok(false);
    }
    drop(conn);
    if let Some(customer) = &workspace.stripe_customer_id {
        // Without Stripe the customer could not be deleted, and after the purge nothing
        // would name it: the workspace waits for a worker that has Stripe.
        let stripe = stripe.ok_or_else(|| {
            anyhow::anyhow!("its Stripe customer needs STRIPE_SECRET_KEY to be deleted")
        })?;
        match stripe.delete_customer(customer).await {
            Ok(()) | Err(StripeCallError::Refused { status: 404, .. }) => {}
            Err(err) => return Err(err.into()),
        }
    }
    let mut conn = db.conn_outside_tenancy().await?;
    crate::billing::webhook::scrub_workspace(&mut conn, workspace.id).await?;
    let mut rows = 0;
    loop {
        let deleted = model::purge_batch(&mut conn, workspace.id, PURGE_BATCH).await?;
        if deleted == 0 {
            break;
        }
        rows += deleted;
    }
    let customer = workspace.stripe_customer_id.as_deref();
    let finished = model::purge_finish(&mut conn, workspace.id, rows, customer).await?;
    if finished {
        tracing::info!(workspace = %workspace.id, rows, "purged a deleted workspace");
    }
    Ok(finished)
}
