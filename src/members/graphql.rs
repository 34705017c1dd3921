//! The `Member` type and the member mutations.

use async_graphql::{Context, Object, ID};
use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection as _;
use uuid::Uuid;

use super::model::{self, MemberRow};
use crate::auth;
use crate::auth::graphql::User;
use crate::error::{ApiError, ApiResult};
use crate::graphql::context::{parse_id, request};
use crate::graphql::guard::{lock_caller_role, require_role, RoleGuard};
use crate::graphql::pagination::{split_total, Cursor, Page, PageOf};
use crate::graphql::scalars::Timestamp;
use crate::roles::{self, Action, Role};
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
    async fn role(&self) -> Role {
        self.role
    }

    /// When they joined.
    async fn joined_at(&self) -> Timestamp {
        self.joined_at.into()
    }
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
        guard = "RoleGuard::new(Role::Owner, &workspace_id)",
        directive = require_role::apply(Role::Owner)
    )]
    async fn change_member_role(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        user_id: ID,
        role: Role,
    ) -> ApiResult<Member> {
        let request = request(ctx);
        let caller = request.caller()?.user_id;
        let (workspace_id, target) = (parse_id(&workspace_id)?, parse_id(&user_id)?);
        let mut conn = request.db.conn().await?;
        conn.transaction(async |conn| {
            let caller_role = lock_caller_role(conn, workspace_id, caller).await?;
            if !roles::allows(caller_role, Action::ChangeRoles) {
                return Err(ApiError::forbidden("Only the Owner can change roles."));
            }
            let target_role = model::role_of(conn, workspace_id, target)
                .await?
                .ok_or_else(|| ApiError::not_found("Member"))?;
            match (target_role, role) {
                (Role::Owner, Role::Owner) => {}
                (Role::Owner, _) => {
                    return Err(ApiError::forbidden(
                        "The Owner keeps the OWNER role until ownership is transferred to someone else.",
                    ))
                }
                (_, Role::Owner) => model::transfer_ownership(conn, workspace_id, caller, target).await?,
                (_, role) => model::set_role(conn, workspace_id, target, role).await?,
            }
            let member = model::find(conn, workspace_id, target)
                .await?
                .ok_or_else(|| ApiError::not_found("Member"))?;
            Ok(Member::new(workspace_id, member))
        })
        .await
    }

    /// Removes a member. Their work stays in the workspace. Nobody removes the Owner.
    ///
    /// Needs the ADMIN role or higher.
    #[graphql(
        guard = "RoleGuard::new(Role::Admin, &workspace_id)",
        directive = require_role::apply(Role::Admin)
    )]
    async fn remove_member(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        user_id: ID,
    ) -> ApiResult<bool> {
        let request = request(ctx);
        let caller = request.caller()?.user_id;
        let (workspace_id, target) = (parse_id(&workspace_id)?, parse_id(&user_id)?);
        let mut conn = request.db.conn().await?;
        conn.transaction(async |conn| {
            let caller_role = lock_caller_role(conn, workspace_id, caller).await?;
            if !roles::allows(caller_role, Action::ManageMembers) {
                return Err(ApiError::forbidden(
                    "Only Owners and Admins remove members.",
                ));
            }
            let target_role = model::role_of(conn, workspace_id, target)
                .await?
                .ok_or_else(|| ApiError::not_found("Member"))?;
            if !roles::may_remove(caller_role, target_role) {
                return Err(ApiError::forbidden("Nobody can remove the Owner."));
            }
            model::remove(conn, workspace_id, target).await?;
            auth::model::clear_active_workspace(conn, target, workspace_id).await?;
            Ok(true)
        })
        .await
    }

    /// Hands ownership to another member; the caller becomes Admin.
    ///
    /// Needs the OWNER role.
    #[graphql(
        guard = "RoleGuard::new(Role::Owner, &workspace_id)",
        directive = require_role::apply(Role::Owner)
    )]
    async fn transfer_ownership(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        user_id: ID,
    ) -> ApiResult<Workspace> {
        let request = request(ctx);
        let caller = request.caller()?.user_id;
        let (workspace_id, target) = (parse_id(&workspace_id)?, parse_id(&user_id)?);
        let mut conn = request.db.conn().await?;
        conn.transaction(async |conn| {
            let caller_role = lock_caller_role(conn, workspace_id, caller).await?;
            if caller_role != Role::Owner {
                return Err(ApiError::forbidden(
                    "Only the Owner can transfer ownership.",
                ));
            }
            if target == caller {
                return Err(ApiError::bad_input("You already own this workspace."));
            }
            model::role_of(conn, workspace_id, target)
                .await?
                .ok_or_else(|| ApiError::not_found("Member"))?;
            model::transfer_ownership(conn, workspace_id, caller, target).await?;
            let (row, role) =
                crate::workspaces::model::memberships_of_caller(conn, Some(&[workspace_id]))
                    .await?
                    .pop()
                    .ok_or_else(|| ApiError::not_found("Workspace"))?;
            Ok(Workspace::new(row, role))
        })
        .await
    }
}
