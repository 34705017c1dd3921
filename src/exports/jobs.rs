//! The export's job: builds the document once, then emails its link to the Owner who asked,
//! if they still own the workspace. The link is minted right before the email goes and the
//! send recorded after; a retry in between emails a second link, and both work.

use chrono::Utc;
use diesel_async::{AsyncConnection as _, SimpleAsyncConnection as _};
use linkai_jobs::email::{messages, render, when};

use super::{model, BuildExport};
use crate::auth::token::{self, TokenKind};
use crate::jobs::{Handlers, JobContext};
use crate::roles::Role;

pub fn register(handlers: Handlers) -> Handlers {
    handlers.on(build_export)
}

/// How long building one export's document may take: it reads the whole workspace.
const BUILD_TIMEOUT: &str = "SET LOCAL statement_timeout = '300s'";

async fn build_export(job: BuildExport, cx: JobContext) -> anyhow::Result<()> {
    let mut conn = cx.db.conn_in(job.workspace_id).await?;
    if due(&mut conn, &job).await?.is_none() {
        return Ok(());
    }
    conn.transaction(async |conn| {
        conn.batch_execute(BUILD_TIMEOUT).await?;
        let expires = Utc::now() + super::VALIDITY;
        model::build(conn, job.export_id, job.workspace_id, expires).await
    })
    .await?;
    let email = conn
        .transaction(async |conn| {
            let Some((export, workspace)) = due(conn, &job).await? else {
                return anyhow::Ok(None);
            };
            let Some(user) = crate::auth::model::find_user(conn, export.requested_by).await? else {
                return Ok(None);
            };
            let minted = token::mint(TokenKind::Export);
            model::set_token(conn, export.id, &minted.hash).await?;
            let message = messages::WorkspaceExport {
                name: user.name,
                workspace: workspace.name,
                link: cx.token_link("exports/download", &minted.plaintext),
                expires: when(export.expires_at.unwrap_or_else(Utc::now)),
            };
            Ok(Some(render(&user.email, &message)))
        })
        .await?;
    let Some(email) = email else {
        return Ok(());
    };
    drop(conn);
    cx.deliver(&email).await?;
    let mut conn = cx.db.conn_in(job.workspace_id).await?;
    model::mark_sent(&mut conn, job.export_id, Utc::now()).await?;
    Ok(())
}

/// The export, locked, with its workspace, while it is still to be built and sent: not
/// sent yet, the workspace live, and the Owner who asked still its Owner (a deleted
/// workspace or a demoted Owner gets nothing).
async fn due(
    conn: &mut diesel_async::AsyncPgConnection,
    job: &BuildExport,
) -> anyhow::Result<Option<(model::ExportRow, crate::workspaces::model::WorkspaceRow)>> {
    let Some(export) = model::lock(conn, job.export_id).await? else {
        return Ok(None);
    };
    let Some(workspace) = crate::workspaces::model::find_live(conn, job.workspace_id).await? else {
        return Ok(None);
    };
    let role = crate::members::model::role_of(conn, job.workspace_id, export.requested_by).await?;
    Ok((role == Some(Role::Owner) && export.sent_at.is_none()).then_some((export, workspace)))
}
