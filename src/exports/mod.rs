//! `exportWorkspace`: the Owner asks; a job builds the workspace's data as one JSON
//! document (`workspace_export_document`, migration 000042: members, invitations,
//! resources, billing history, usage, audit log, conversations with their messages) and
//! emails the Owner a link; the link, with that Owner's session, downloads it
//! (`GET /exports/download?token=…`, [`http`]) for [`VALIDITY`].
//!
//! Rules: only the Owner asks, [`PER_DAY`] times a day per workspace and
//! [`PER_OWNER_PER_DAY`] across an Owner's workspaces; only the Owner who
//! asked, still its Owner, downloads; the link expires. Asking is audited.

pub mod graphql;
pub mod http;
pub mod jobs;
pub mod model;

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use linkai_jobs::Payload;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::audit::{self, Event, Target, Trail};
use crate::error::ApiError;
use crate::throttle::Window;

/// How long an export's link works once the export is ready.
pub const VALIDITY: chrono::Duration = chrono::Duration::hours(24);

/// Exports one workspace may ask for a day: each reads all of its data.
pub const PER_DAY: Window = Window {
    name: "export_workspace:workspace",
    limit: 3,
    window: std::time::Duration::from_secs(24 * 3600),
};

/// Exports one person may ask for a day, across the workspaces they own (up to 20).
pub const PER_OWNER_PER_DAY: Window = Window {
    name: "export_workspace:user",
    limit: 10,
    window: std::time::Duration::from_secs(24 * 3600),
};

/// Job: build the export and email its link ([`jobs`]).
#[derive(Debug, Serialize, Deserialize)]
pub struct BuildExport {
    pub workspace_id: Uuid,
    pub export_id: Uuid,
}

impl Payload for BuildExport {
    const KIND: &'static str = "build_workspace_export";
}

/// Records the Owner's request, its audit event and its job, in one transaction (the guard
/// checked the role).
pub async fn request(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    workspace_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Uuid, ApiError> {
    let owner = trail.person()?;
    conn.transaction(async |conn| {
        crate::db::enter_workspace(conn, workspace_id).await?;
        PER_DAY.hit(conn, &workspace_id.to_string(), now).await??;
        PER_OWNER_PER_DAY
            .hit(conn, &owner.to_string(), now)
            .await??;
        let export_id = model::insert(conn, workspace_id, owner, now).await?;
        let event = Event {
            action: audit::Action::WorkspaceExportRequested,
            target: Target::workspace(workspace_id),
            changes: serde_json::json!({ "export": export_id }),
        };
        audit::record(conn, workspace_id, trail, event, now).await?;
        crate::outbox::enqueue(
            conn,
            &BuildExport {
                workspace_id,
                export_id,
            },
        )
        .await?;
        Ok(export_id)
    })
    .await
}
