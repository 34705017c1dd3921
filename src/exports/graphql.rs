//! `exportWorkspace`.

use async_graphql::{Context, Object, ID};
use chrono::Utc;

use crate::error::ApiResult;
use crate::graphql::context::{parse_id, request};
use crate::graphql::guard::{least, require_role, RoleGuard};
use crate::roles::Action;

#[derive(Default)]
pub struct ExportMutation;

#[Object]
impl ExportMutation {
    /// Asks for an export of the workspace's data as one JSON file: members, invitations,
    /// resources, billing history, usage, the audit log, and conversations with their
    /// messages. It is built in the background and its link emailed to you; the link
    /// works for 24 hours, and only with your own session (a `GET` with
    /// `Authorization: Bearer <session>`). Three a day per workspace, then `RATE_LIMITED`.
    ///
    /// Needs the OWNER role.
    #[graphql(
        guard = "RoleGuard::new(Action::ExportWorkspace, &workspace_id)",
        directive = require_role::apply(least(Action::ExportWorkspace))
    )]
    async fn export_workspace(&self, ctx: &Context<'_>, workspace_id: ID) -> ApiResult<bool> {
        let request = request(ctx);
        let trail = request.trail()?;
        let workspace_id = parse_id(&workspace_id)?;
        let mut conn = request.db.conn().await?;
        super::request(&mut conn, &trail, workspace_id, Utc::now()).await?;
        Ok(true)
    }
}
