//! Role rules declared once per field: `@requireRole(role: ...)` in the SDL, enforced by a
//! guard in the same attribute:
//!
//! ```ignore
//! #[graphql(guard = "RoleGuard::new(Role::Admin, &workspace_id)",
//!           directive = require_role::apply(Role::Admin.into()))]
//! ```
//!
//! The guard answers `UNAUTHENTICATED` without a caller, `NOT_FOUND` outside the workspace
//! (indistinguishable from a missing one) and `FORBIDDEN` when the role is too low;
//! `RoleGuard::writer` also answers `TRIAL_EXPIRED` while the workspace is read-only.

use async_graphql::{Context, Enum, Guard, TypeDirective, ID};
use uuid::Uuid;

use chrono::Utc;

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::graphql::context::{parse_id, request};
use crate::roles::Role;
use crate::workspaces::loader::CallerMembership;
use crate::workspaces::model::WorkspaceRow;

/// A member's role in a workspace, from most to least powerful.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(name = "Role", remote = "Role", rename_items = "SCREAMING_SNAKE_CASE")]
pub enum GqlRole {
    /// Exactly one per workspace: everything, including roles, billing and deletion.
    Owner,
    /// Manages members, invitations, billing and every item; cannot change roles or delete the workspace.
    Admin,
    /// Creates and edits items; deletes only the items they created.
    Member,
    /// Reads agents, conversations, usage and analytics.
    Viewer,
}

/// Needs at least this role in the workspace the field acts on.
#[TypeDirective(location = "FieldDefinition", name = "requireRole")]
pub fn require_role(role: GqlRole) {}

pub struct RoleGuard {
    required: Role,
    workspace_id: Result<Uuid, String>,
    /// The field changes the workspace: refused while it is read-only.
    writes: bool,
}

impl RoleGuard {
    pub fn new(required: Role, workspace_id: &ID) -> Self {
        Self {
            required,
            workspace_id: parse_id(workspace_id).map_err(|_| workspace_id.to_string()),
            writes: false,
        }
    }

    /// For fields that write the workspace's resources: also answers `TRIAL_EXPIRED` while
    /// the workspace is read-only. Read-only means no resource writes and nothing more:
    /// membership, invitations, the name and billing stay open to their roles, so a lapsed
    /// workspace can still be handed over and paid for.
    pub fn writer(required: Role, workspace_id: &ID) -> Self {
        Self {
            writes: true,
            ..Self::new(required, workspace_id)
        }
    }

    /// For fields of an already-resolved workspace.
    pub fn on(required: Role, workspace_id: Uuid) -> Self {
        Self {
            required,
            workspace_id: Ok(workspace_id),
            writes: false,
        }
    }
}

impl Guard for RoleGuard {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let workspace_id = self
            .workspace_id
            .as_ref()
            .map_err(|raw| ApiError::bad_input(format!("`{raw}` is not a valid id.")))?;
        let membership = authorize(ctx, *workspace_id, self.required).await?;
        if self.writes {
            ensure_writable(&membership.workspace)?;
        }
        Ok(())
    }
}

/// The caller's membership in `workspace_id` if their role is at least `required`.
pub async fn authorize(
    ctx: &Context<'_>,
    workspace_id: Uuid,
    required: Role,
) -> ApiResult<CallerMembership> {
    let membership = membership(ctx, workspace_id).await?;
    if !membership.role.at_least(required) {
        return Err(ApiError::forbidden(format!(
            "This needs the {} role or higher in this workspace.",
            required.as_db()
        )));
    }
    Ok(membership)
}

/// `TRIAL_EXPIRED` while the workspace is read-only (the README's billing status table:
/// trial over without a paid plan, or the subscription unpaid, paused or ended): reads keep
/// working, nothing is deleted.
pub fn ensure_writable(workspace: &WorkspaceRow) -> ApiResult<()> {
    if crate::billing::status::standing(workspace, Utc::now()).read_only {
        return Err(ApiError::new(
            ErrorCode::TrialExpired,
            "This workspace is read-only until an Owner or Admin chooses a plan.",
        ));
    }
    Ok(())
}

/// The caller's membership in a live workspace, or `NOT_FOUND`.
pub async fn membership(ctx: &Context<'_>, workspace_id: Uuid) -> ApiResult<CallerMembership> {
    let request = request(ctx);
    request.caller()?;
    request
        .membership(workspace_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Workspace"))
}
