//! Role rules declared once per field, from the field's [`Action`]: `@requireRole(role:
//! ...)` in the SDL and the guard enforcing it are both its least role.
//!
//! ```ignore
//! #[graphql(guard = "RoleGuard::new(Action::ManageBilling, &workspace_id)",
//!           directive = require_role::apply(least(Action::ManageBilling)))]
//! ```
//!
//! Service calls have their own principal and guard ([`ServiceGuard`]).
//!
//! The guard answers `UNAUTHENTICATED` without a caller, `NOT_FOUND` outside the workspace
//! (indistinguishable from a missing one) and `FORBIDDEN` when the role is too low;
//! `RoleGuard::writer` also answers `TRIAL_EXPIRED` while the workspace is read-only.

use async_graphql::{Context, Enum, Guard, TypeDirective, ID};
use uuid::Uuid;

use chrono::Utc;

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::graphql::context::{parse_id, request};
use crate::roles::{Action, Role};
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

/// The `@requireRole` of a field doing `action`: its least role.
pub fn least(action: Action) -> GqlRole {
    action.least_role().into()
}

/// Lets a field through when the caller's role in the workspace allows `action` (by its
/// least role: the row-dependent part of a rule, such as deleting only one's own item, is
/// the domain's). The membership it checked is the request's, cached: the resolver gets
/// it again with [`membership`], without another check or statement.
pub struct RoleGuard {
    required: Role,
    workspace_id: Result<Uuid, String>,
    /// The field changes the workspace: refused while it is read-only.
    writes: bool,
}

impl RoleGuard {
    pub fn new(action: Action, workspace_id: &ID) -> Self {
        Self {
            required: action.least_role(),
            workspace_id: parse_id(workspace_id).map_err(|_| workspace_id.to_string()),
            writes: false,
        }
    }

    /// For fields that write the workspace's resources: also answers `TRIAL_EXPIRED` while
    /// the workspace is read-only. Read-only means no resource writes and nothing more:
    /// membership, invitations, the name and billing stay open to their roles, so a lapsed
    /// workspace can still be handed over and paid for.
    pub fn writer(action: Action, workspace_id: &ID) -> Self {
        Self {
            writes: true,
            ..Self::new(action, workspace_id)
        }
    }

    /// For fields of an already-resolved workspace.
    pub fn on(action: Action, workspace_id: Uuid) -> Self {
        Self {
            required: action.least_role(),
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

/// Lets a field through for a service holding a live service token (the agent runtime),
/// the principal of service calls: a person is FORBIDDEN, nobody is UNAUTHENTICATED.
pub struct ServiceGuard;

impl Guard for ServiceGuard {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let request = request(ctx);
        if request.service.is_some() {
            return Ok(());
        }
        Err(match request.caller {
            Some(_) => ApiError::forbidden("This needs a service token."),
            None => ApiError::unauthenticated(),
        }
        .into())
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

/// `TRIAL_EXPIRED` while the workspace is read-only (docs/billing.md's billing status table:
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
