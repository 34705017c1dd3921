//! The `Member` type and the member mutations.

use async_graphql::{Context, Object, ID};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::model::{self, MemberRow};
use crate::auth::graphql::User;
use crate::db::page::{split_total, Cursor, Page};
use crate::error::{ApiError, ApiResult};
use crate::graphql::context::{parse_id, request};
use crate::graphql::guard::{least, require_role, GqlRole, RoleGuard};
use crate::graphql::pagination::PageOf;
use crate::graphql::scalars::Timestamp;
use crate::roles::{Action, Role};
use crate::workspaces::graphql::Workspace;

/// Someone in a workspace, with their role.
pub struct Member {
    workspace_id: Uuid,
    user: User,
    role: Role,
    joined_at: DateTime<Utc>,
}

impl Member {
    pub fn new(workspace_id: Uuid, row: MemberRow) -> Self {
        Self {
            workspace_id,
            user: User::new(row.user),
            role: row.role,
            joined_at: row.joined_at,
        }
    }
}

/// Someone in a workspace, with their role.
#[Object(serial)]
impl Member {
    /// Stable for this person in this workspace (the same person in another workspace is
    /// another member), so client caches can update a member in place.
    async fn id(&self) -> ID {
        ID(format!("{}:{}", self.workspace_id, self.user.user_id()))
    }

    /// The person.
    async fn user(&self) -> &User {
        &self.user
    }

    /// Their role in this workspace.
    async fn role(&self) -> GqlRole {
        self.role.into()
    }

    /// When they joined.
    async fn joined_at(&self) -> Timestamp {
        self.joined_at.into()
    }
}

/// The member `user_id` of the workspace as `Workspace.members` shows them, if they still
/// belong to it.
pub async fn member(
    ctx: &Context<'_>,
    workspace_id: Uuid,
    user_id: Uuid,
) -> ApiResult<Option<Member>> {
    let mut conn = request(ctx).db.conn_in(workspace_id).await?;
    Ok(model::find(&mut conn, workspace_id, user_id)
        .await?
        .map(|row| Member::new(workspace_id, row)))
}

/// A page of a workspace's members: one statement whatever the page size (two if empty).
pub async fn members_page(
    ctx: &Context<'_>,
    workspace_id: Uuid,
    first: Option<i32>,
    after: Option<&str>,
) -> ApiResult<PageOf<Member>> {
    let page = Page::parse(first, after)?;
    let mut conn = request(ctx).db.conn_in(workspace_id).await?;
    let rows = model::page(&mut conn, workspace_id, &page).await?;
    let (rows, total) = split_total(rows, model::count(&mut conn, workspace_id)).await?;
    Ok(PageOf::from_rows(
        rows.into_iter()
            .map(|row| Member::new(workspace_id, row))
            .collect(),
        &page,
        total,
        |member| {
            Cursor {
                at: member.joined_at,
                id: member.user.user_id(),
            }
            .encode()
        },
    ))
}

#[derive(Default)]
pub struct MemberMutation;

/// Member mutations.
#[Object]
impl MemberMutation {
    /// Changes a member's role. Setting OWNER transfers ownership: the current Owner
    /// becomes Admin in the same step.
    ///
    /// Needs the OWNER role.
    #[graphql(
        guard = "RoleGuard::new(Action::ChangeRoles, &workspace_id)",
        directive = require_role::apply(least(Action::ChangeRoles))
    )]
    async fn change_member_role(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        user_id: ID,
        role: GqlRole,
    ) -> ApiResult<Member> {
        let request = request(ctx);
        let trail = request.trail()?;
        let (workspace_id, target) = (parse_id(&workspace_id)?, parse_id(&user_id)?);
        let mut conn = request.db.conn().await?;
        let member = super::change_role(
            &mut conn,
            &trail,
            workspace_id,
            target,
            role.into(),
            Utc::now(),
        )
        .await?;
        Ok(Member::new(workspace_id, member))
    }

    /// Removes a member. Their work stays in the workspace. Nobody removes the Owner.
    ///
    /// Needs the ADMIN role or higher.
    #[graphql(
        guard = "RoleGuard::new(Action::ManageMembers, &workspace_id)",
        directive = require_role::apply(least(Action::ManageMembers))
    )]
    async fn remove_member(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        user_id: ID,
    ) -> ApiResult<bool> {
        let request = request(ctx);
        let trail = request.trail()?;
        let (workspace_id, target) = (parse_id(&workspace_id)?, parse_id(&user_id)?);
        let mut conn = request.db.conn().await?;
        super::remove(&mut conn, &trail, workspace_id, target, Utc::now()).await?;
        Ok(true)
    }

    /// Hands ownership to another member; the caller becomes Admin.
    ///
    /// Needs the OWNER role.
    #[graphql(
        guard = "RoleGuard::new(Action::TransferOwnership, &workspace_id)",
        directive = require_role::apply(least(Action::TransferOwnership))
    )]
    async fn transfer_ownership(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        user_id: ID,
    ) -> ApiResult<Workspace> {
        let request = request(ctx);
        let trail = request.trail()?;
        let (workspace_id, target) = (parse_id(&workspace_id)?, parse_id(&user_id)?);
        let mut conn = request.db.conn().await?;
        super::transfer_ownership(&mut conn, &trail, workspace_id, target, Utc::now()).await?;
        let (row, role) =
            crate::workspaces::model::memberships_of_caller(&mut conn, Some(&[workspace_id]))
                .await?
                .pop()
                .ok_or_else(|| ApiError::not_found("Workspace"))?;
        Ok(Workspace::new(row, role))
    }
}
