//! Invitation types, the public preview and the invitation mutations.

use async_graphql::{Context, Enum, Object, SimpleObject, ID};
use chrono::Utc;
use diesel_async::AsyncConnection as _;
use uuid::Uuid;

use super::model::{self, InvitationRow};
use super::{InvitationStatus, PendingChange};
use crate::auth::graphql::User;
use crate::auth::model::UserRow;
use crate::auth::token;
use crate::db::page::{split_total, Cursor, Page};
use crate::error::{ApiError, ApiResult};
use crate::graphql::context::{parse_id, request};
use crate::graphql::guard::{least, membership, require_role, GqlRole, RoleGuard};
use crate::graphql::pagination::PageOf;
use crate::graphql::scalars::Timestamp;
use crate::roles::Action;
use crate::text::EmailAddress;
use crate::workspaces::graphql::Workspace;

/// Where an invitation stands.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(
    name = "InvitationStatus",
    remote = "InvitationStatus",
    rename_items = "SCREAMING_SNAKE_CASE"
)]
pub enum GqlInvitationStatus {
    /// Waiting for the invitee.
    Pending,
    /// The invitee joined.
    Accepted,
    /// The invitee said no.
    Declined,
    /// An Owner or Admin withdrew it.
    Revoked,
    /// It ran out; it can be resent.
    Expired,
}

/// An invitation to join a workspace.
pub struct Invitation {
    row: InvitationRow,
    invited_by: Option<UserRow>,
}

/// An invitation to join a workspace, as Owners and Admins see it.
#[Object(serial)]
impl Invitation {
    /// Stable identifier.
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    /// The invited address.
    async fn email(&self) -> &str {
        &self.row.email
    }

    /// The role the invitee gets on accepting.
    async fn role(&self) -> GqlRole {
        self.row.role().into()
    }

    /// Where it stands; a pending invitation past its expiry is EXPIRED.
    async fn status(&self) -> GqlInvitationStatus {
        self.row.status(Utc::now()).into()
    }

    /// Who sent it (null if their account is gone).
    async fn invited_by(&self) -> Option<User> {
        self.invited_by.clone().map(User::new)
    }

    /// When it was created.
    async fn created_at(&self) -> Timestamp {
        self.row.created_at.into()
    }

    /// When the current link stops working.
    async fn expires_at(&self) -> Timestamp {
        self.row.expires_at.into()
    }
}

/// What the accept page shows before the invitee signs in or up.
#[derive(SimpleObject)]
pub struct InvitationPreview {
    /// The workspace they are invited to.
    workspace_name: String,
    /// Who invited them.
    invited_by_name: String,
    /// The invited address: sign in or up with it to accept.
    email: String,
    /// The role they get.
    role: GqlRole,
    /// Where the invitation stands.
    status: GqlInvitationStatus,
    /// When the link stops working.
    expires_at: Timestamp,
}

/// The invitation `id` of the workspace as `Workspace.invitations` shows it, if there is
/// one; for roles that manage members (the caller checks).
pub async fn invitation(
    ctx: &Context<'_>,
    workspace_id: Uuid,
    id: Uuid,
) -> ApiResult<Option<Invitation>> {
    let mut conn = request(ctx).db.conn_in(workspace_id).await?;
    Ok(model::find_with_inviter(&mut conn, workspace_id, id)
        .await?
        .map(|(row, invited_by)| Invitation { row, invited_by }))
}

/// A page of a workspace's invitations, oldest first.
pub async fn invitations_page(
    ctx: &Context<'_>,
    workspace_id: Uuid,
    first: Option<i32>,
    after: Option<&str>,
) -> ApiResult<PageOf<Invitation>> {
    let page = Page::parse(first, after)?;
    let mut conn = request(ctx).db.conn_in(workspace_id).await?;
    let rows = model::page(&mut conn, workspace_id, &page).await?;
    let (rows, total) = split_total(rows, model::count(&mut conn, workspace_id)).await?;
    let nodes = rows
        .into_iter()
        .map(|(row, invited_by)| Invitation { row, invited_by })
        .collect();
    Ok(PageOf::from_rows(nodes, &page, total, |invitation| {
        Cursor {
            at: invitation.row.created_at,
            id: invitation.row.id,
        }
        .encode()
    }))
}

#[derive(Default)]
pub struct InvitationQuery;

/// Invitation queries.
#[Object]
impl InvitationQuery {
    /// Public preview of an invitation, for the accept page.
    async fn invitation(
        &self,
        ctx: &Context<'_>,
        token: String,
    ) -> ApiResult<Option<InvitationPreview>> {
        let db = &request(ctx).db;
        let hash = token::hash(&token);
        let mut conn = db.conn_outside_tenancy().await?;
        let workspace = model::workspace_of_token(&mut conn, &hash)
            .await?
            .ok_or(super::InvitationError::InvalidLink)?;
        drop(conn);
        let mut conn = db.conn_in(workspace).await?;
        let preview = model::preview(&mut conn, &hash)
            .await?
            .ok_or(super::InvitationError::InvalidLink)?;
        Ok(Some(InvitationPreview {
            workspace_name: preview.workspace_name,
            invited_by_name: preview.inviter_name.unwrap_or_default(),
            email: preview.invitation.email.clone(),
            role: preview.invitation.role().into(),
            status: preview.invitation.status(Utc::now()).into(),
            expires_at: preview.invitation.expires_at.into(),
        }))
    }
}

#[derive(Default)]
pub struct InvitationMutation;

/// Invitation mutations.
#[Object]
impl InvitationMutation {
    /// Invites someone by email with a role; they get an email with a link valid 7 days.
    /// Only the Owner may invite an Owner (accepting transfers ownership).
    ///
    /// Needs the ADMIN role or higher.
    #[graphql(
        guard = "RoleGuard::new(Action::ManageMembers, &workspace_id)",
        directive = require_role::apply(least(Action::ManageMembers))
    )]
    async fn invite_member(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        email: String,
        role: GqlRole,
    ) -> ApiResult<Invitation> {
        let request = request(ctx);
        let trail = request.trail()?;
        let workspace_id = parse_id(&workspace_id)?;
        let email = EmailAddress::parse(&email)?;
        let mut conn = request.db.conn().await?;
        let row = conn
            .transaction(async |conn| {
                super::invite(conn, &trail, workspace_id, &email, role.into(), Utc::now()).await
            })
            .await?;
        Invitation::with_inviter(ctx, row).await
    }

    /// Sends the invitation again with a new link (the old one stops working) and a fresh
    /// 7-day expiry. Works for expired invitations too.
    ///
    /// Needs the ADMIN role or higher.
    #[graphql(
        guard = "RoleGuard::new(Action::ManageMembers, &workspace_id)",
        directive = require_role::apply(least(Action::ManageMembers))
    )]
    async fn resend_invitation(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        invitation_id: ID,
    ) -> ApiResult<Invitation> {
        change_invitation(ctx, &workspace_id, &invitation_id, PendingChange::Resend).await
    }

    /// Withdraws a pending invitation; its link stops working.
    ///
    /// Needs the ADMIN role or higher.
    #[graphql(
        guard = "RoleGuard::new(Action::ManageMembers, &workspace_id)",
        directive = require_role::apply(least(Action::ManageMembers))
    )]
    async fn revoke_invitation(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        invitation_id: ID,
    ) -> ApiResult<Invitation> {
        change_invitation(ctx, &workspace_id, &invitation_id, PendingChange::Revoke).await
    }

    /// Joins the workspace of an invitation sent to the caller's email address.
    async fn accept_invitation(&self, ctx: &Context<'_>, token: String) -> ApiResult<Workspace> {
        let request = request(ctx);
        let caller = request.caller()?;
        // A token limited to listed workspaces cannot join more.
        caller.ensure_unscoped()?;
        let caller = caller.user_id;
        let mut conn = request.db.conn().await?;
        let user = crate::auth::model::find_user(&mut conn, caller)
            .await?
            .ok_or_else(ApiError::unauthenticated)?;
        let trail = request.trail()?;
        let workspace_id = conn
            .transaction(async |conn| {
                super::accept(conn, &trail, &token, user.id, &user.email, Utc::now()).await
            })
            .await?;
        drop(conn);
        Ok(membership(ctx, workspace_id).await?.into())
    }

    /// Declines an invitation; no sign-in needed, the link is enough.
    async fn decline_invitation(&self, ctx: &Context<'_>, token: String) -> ApiResult<bool> {
        let request = request(ctx);
        let trail = request.link_holder_trail();
        let mut conn = request.db.conn().await?;
        conn.transaction(async |conn| super::decline(conn, &trail, &token, Utc::now()).await)
            .await?;
        Ok(true)
    }
}

async fn change_invitation(
    ctx: &Context<'_>,
    workspace_id: &ID,
    invitation_id: &ID,
    change: PendingChange,
) -> ApiResult<Invitation> {
    let request = request(ctx);
    let trail = request.trail()?;
    let (workspace_id, invitation_id) = (parse_id(workspace_id)?, parse_id(invitation_id)?);
    let mut conn = request.db.conn().await?;
    let row = conn
        .transaction(async |conn| {
            super::change_pending(
                conn,
                &trail,
                workspace_id,
                invitation_id,
                change,
                Utc::now(),
            )
            .await
        })
        .await?;
    Invitation::with_inviter(ctx, row).await
}

impl Invitation {
    /// A single invitation with its inviter loaded.
    async fn with_inviter(ctx: &Context<'_>, row: InvitationRow) -> ApiResult<Self> {
        let invited_by = match row.invited_by {
            Some(id) => {
                let mut conn = request(ctx).db.conn().await?;
                crate::auth::model::find_user(&mut conn, id).await?
            }
            None => None,
        };
        Ok(Invitation { row, invited_by })
    }
}
