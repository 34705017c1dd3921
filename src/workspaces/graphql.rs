//! The `Workspace` type and the workspace queries and mutations.

use async_graphql::{Context, InputObject, MaybeUndefined, MergedObject, Object, ID};
use chrono::Utc;
use diesel_async::AsyncConnection as _;

use super::loader::CallerMembership;
use super::model::{self, WorkspaceRow};
use crate::auth;
use crate::billing::graphql::GqlBillingStatus;
use crate::billing::graphql::{billing_of, Billing};
use crate::conversations::graphql::ConversationLists;
use crate::error::ApiResult;
use crate::graphql::context::{parse_id, request};
use crate::graphql::guard::{least, membership, require_role, GqlRole, RoleGuard};
use crate::graphql::pagination::PageOf;
use crate::graphql::scalars::Timestamp;
use crate::invitations::graphql::{invitations_page, Invitation};
use crate::live::graphql::LiveFields;
use crate::members::graphql::{members_page, Member};
use crate::resources::graphql::ResourceLists;
use crate::roles::{Action, Role};
use crate::text::Name;
use crate::usage::graphql::{usage_of, Usage};

/// `Workspace`: its own fields, merged with the parts other features add, each made from
/// the workspace's row (`From<&WorkspaceRow>`). A feature adds its fields to `Workspace`
/// with one line in the list below.
macro_rules! workspace_parts {
    ($($part:ty),* $(,)?) => {
        /// A workspace the caller belongs to: the unit of isolation, collaboration and billing.
        #[derive(MergedObject)]
        pub struct Workspace($($part,)* WorkspaceFields);

        impl Workspace {
            pub fn new(row: WorkspaceRow, viewer_role: Role) -> Self {
                Workspace($(<$part>::from(&row),)* WorkspaceFields { row, viewer_role })
            }
        }
    };
}

workspace_parts!(ResourceLists, ConversationLists, LiveFields);

impl From<CallerMembership> for Workspace {
    fn from(membership: CallerMembership) -> Self {
        Workspace::new(membership.workspace, membership.role)
    }
}

/// The workspace's own fields (the resource lists are merged in from `resources`).
pub struct WorkspaceFields {
    row: WorkspaceRow,
    viewer_role: Role,
}

impl WorkspaceFields {
    fn standing(&self) -> crate::billing::status::Standing {
        crate::billing::status::standing(&self.row, Utc::now())
    }
}

/// A workspace's own fields.
#[Object]
impl WorkspaceFields {
    /// Stable identifier.
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    /// Display name, 1-100 characters.
    async fn name(&self) -> &str {
        &self.row.name
    }

    /// When the workspace was created.
    async fn created_at(&self) -> Timestamp {
        self.row.created_at.into()
    }

    /// The caller's role here.
    async fn viewer_role(&self) -> GqlRole {
        self.viewer_role.into()
    }

    /// Whose days analytics count in: an IANA time zone (UTC unless an Owner or Admin set
    /// another).
    async fn time_zone(&self) -> &str {
        &self.row.time_zone
    }

    /// How many days conversations are kept after their last activity (null: forever).
    async fn conversation_retention_days(&self) -> Option<i32> {
        self.row.conversation_retention_days
    }

    /// Where the workspace stands with billing.
    async fn billing_status(&self) -> GqlBillingStatus {
        self.standing().status.into()
    }

    /// When the free trial ends (or ended).
    async fn trial_ends_at(&self) -> Option<Timestamp> {
        Some(Timestamp(self.row.trial_ends_at))
    }

    /// Whether resource writes are refused (trial expired without a paid plan, or the
    /// subscription unpaid, paused or canceled: docs/billing.md's billing status table); reads,
    /// members, invitations and billing keep working.
    async fn read_only(&self) -> bool {
        self.standing().read_only
    }

    /// The members, oldest first. Every member may list them.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn members(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor after which the page starts.")] after: Option<String>,
    ) -> ApiResult<PageOf<Member>> {
        members_page(ctx, self.row.id, first, after.as_deref()).await
    }

    /// Usage in the current billing period against the plan's limits. Every member may read it.
    async fn usage(&self, ctx: &Context<'_>) -> ApiResult<Usage> {
        let mut conn = request(ctx).db.conn_in(self.row.id).await?;
        usage_of(&mut conn, &self.row).await
    }

    /// Plan, trial, subscription, payment methods and invoices.
    ///
    /// Needs the ADMIN role or higher.
    #[graphql(
        guard = "RoleGuard::on(Action::ManageBilling, self.row.id)",
        directive = require_role::apply(least(Action::ManageBilling))
    )]
    async fn billing(&self, ctx: &Context<'_>) -> ApiResult<Option<Billing>> {
        billing_of(ctx, self.row.id).await.map(Some)
    }

    /// The workspace's audit log, newest first: each change, who made it (and through
    /// which request, from which address) and the values that changed. Kept for
    /// `AUDIT_RETENTION_DAYS` (365 by default).
    ///
    /// Needs the ADMIN role or higher.
    #[graphql(
        guard = "RoleGuard::on(Action::ReadAuditLog, self.row.id)",
        directive = require_role::apply(least(Action::ReadAuditLog)),
        complexity = "first.unwrap_or(20).max(0) as usize * child_complexity"
    )]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor after which the page starts.")] after: Option<String>,
        #[graphql(desc = "Which events; left out: all.")] filter: Option<
            crate::audit::graphql::AuditLogFilter,
        >,
    ) -> ApiResult<Option<PageOf<crate::audit::graphql::AuditEvent>>> {
        crate::audit::graphql::audit_log_page(ctx, self.row.id, first, after.as_deref(), filter)
            .await
            .map(Some)
    }

    /// Invitations of any status, oldest first.
    ///
    /// Needs the ADMIN role or higher.
    #[graphql(
        guard = "RoleGuard::on(Action::ManageMembers, self.row.id)",
        directive = require_role::apply(least(Action::ManageMembers)),
        complexity = "first.unwrap_or(20).max(0) as usize * child_complexity"
    )]
    async fn invitations(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor after which the page starts.")] after: Option<String>,
    ) -> ApiResult<Option<PageOf<Invitation>>> {
        invitations_page(ctx, self.row.id, first, after.as_deref())
            .await
            .map(Some)
    }
}

#[derive(Default)]
pub struct WorkspaceQuery;

#[Object]
impl WorkspaceQuery {
    /// The workspaces the caller belongs to.
    async fn workspaces(&self, ctx: &Context<'_>) -> ApiResult<Option<Vec<Workspace>>> {
        let request = request(ctx);
        let caller = request.caller()?;
        let mut conn = request.db.conn_for_caller().await?;
        let rows = model::memberships_of_caller(&mut conn, None).await?;
        Ok(Some(
            rows.into_iter()
                .filter(|(row, _)| caller.reaches(row.id))
                .map(|(row, role)| Workspace::new(row, role))
                .collect(),
        ))
    }

    /// One workspace the caller belongs to; any other id is NOT_FOUND.
    async fn workspace(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Workspace>> {
        Ok(Some(membership(ctx, parse_id(&id)?).await?.into()))
    }
}

#[derive(Default)]
pub struct WorkspaceMutation;

#[Object]
impl WorkspaceMutation {
    /// Creates a workspace with the caller as Owner, on its own 14-day trial. An account owns
    /// at most 20 (USAGE_LIMIT_REACHED) and creates at most 5 a day (RATE_LIMITED).
    async fn create_workspace(&self, ctx: &Context<'_>, name: String) -> ApiResult<Workspace> {
        let request = request(ctx);
        let caller = request.caller()?;
        caller.ensure_unscoped()?;
        let trail = request.trail()?;
        let name = Name::parse(&name, "name")?;
        let mut conn = request.db.conn().await?;
        let row = conn
            .transaction(async |conn| super::create(conn, &trail, name.as_str(), Utc::now()).await)
            .await?;
        Ok(Workspace::new(row, Role::Owner))
    }

    /// Makes a workspace the caller's `activeWorkspace`, so frontends can restore it.
    async fn switch_workspace(&self, ctx: &Context<'_>, workspace_id: ID) -> ApiResult<Workspace> {
        let request = request(ctx);
        let caller = request.caller()?;
        let membership = membership(ctx, parse_id(&workspace_id)?).await?;
        let mut conn = request.db.conn().await?;
        auth::model::set_active_workspace(&mut conn, caller.user_id, Some(membership.workspace.id))
            .await?;
        Ok(membership.into())
    }

    /// Renames a workspace.
    ///
    /// Needs the ADMIN role or higher.
    #[graphql(
        guard = "RoleGuard::new(Action::ChangeSettings, &workspace_id)",
        directive = require_role::apply(least(Action::ChangeSettings))
    )]
    async fn rename_workspace(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        name: String,
    ) -> ApiResult<Workspace> {
        let membership = membership(ctx, parse_id(&workspace_id)?).await?;
        let name = Name::parse(&name, "name")?;
        let request = request(ctx);
        let trail = request.trail()?;
        let mut conn = request.db.conn_in(membership.workspace.id).await?;
        let row = super::rename(
            &mut conn,
            &trail,
            membership.workspace.id,
            name.as_str(),
            Utc::now(),
        )
        .await?;
        Ok(Workspace::new(row, membership.role))
    }

    /// Changes the workspace's settings: a field left out stays as it is.
    ///
    /// Needs the ADMIN role or higher.
    #[graphql(
        guard = "RoleGuard::new(Action::ChangeSettings, &workspace_id)",
        directive = require_role::apply(least(Action::ChangeSettings))
    )]
    async fn update_workspace_settings(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        input: WorkspaceSettingsInput,
    ) -> ApiResult<Workspace> {
        let membership = membership(ctx, parse_id(&workspace_id)?).await?;
        let request = request(ctx);
        let trail = request.trail()?;
        let id = membership.workspace.id;
        let retention = match input.conversation_retention_days {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(days) => Some(Some(days)),
        };
        let settings = super::Settings {
            time_zone: input.time_zone,
            conversation_retention_days: retention,
        };
        let mut conn = request.db.conn_in(id).await?;
        let row = super::update_settings(&mut conn, &trail, id, &settings, Utc::now()).await?;
        Ok(Workspace::new(row, membership.role))
    }

    /// Deletes a workspace: it disappears for every member at once. Its data is kept for a
    /// later purge.
    ///
    /// Needs the OWNER role.
    #[graphql(
        guard = "RoleGuard::new(Action::DeleteWorkspace, &workspace_id)",
        directive = require_role::apply(least(Action::DeleteWorkspace))
    )]
    async fn delete_workspace(&self, ctx: &Context<'_>, workspace_id: ID) -> ApiResult<bool> {
        let request = request(ctx);
        let trail = request.trail()?;
        let workspace_id = parse_id(&workspace_id)?;
        let mut conn = request.db.conn().await?;
        super::delete(&mut conn, &trail, workspace_id, Utc::now()).await
    }

    /// Brings back a workspace its Owner deleted, within `WORKSPACE_RESTORE_DAYS` (30 by
    /// default) of the deletion, with its members, data and plan. Only that Owner can;
    /// for anyone else, and after that, it is `NOT_FOUND`.
    ///
    /// Needs the OWNER role.
    async fn restore_workspace(&self, ctx: &Context<'_>, workspace_id: ID) -> ApiResult<Workspace> {
        let request = request(ctx);
        let caller = request.caller()?;
        let workspace_id = parse_id(&workspace_id)?;
        // A token scoped elsewhere finds no workspace here, as on every workspace field.
        if !caller.reaches(workspace_id) {
            return Err(crate::error::ApiError::not_found("Workspace"));
        }
        let trail = request.trail()?;
        let mut conn = request.db.conn().await?;
        let row = super::lifecycle::restore(&mut conn, &trail, workspace_id, Utc::now()).await?;
        Ok(Workspace::new(row, Role::Owner))
    }

    /// Leaves a workspace. Its data stays. The Owner must transfer ownership or delete the
    /// workspace first.
    async fn leave_workspace(&self, ctx: &Context<'_>, workspace_id: ID) -> ApiResult<bool> {
        let request = request(ctx);
        let trail = request.trail()?;
        // Through the caller's membership, as every workspace field: a token scoped
        // elsewhere finds no workspace here.
        let workspace_id = membership(ctx, parse_id(&workspace_id)?)
            .await?
            .workspace
            .id;
        let mut conn = request.db.conn().await?;
        crate::members::leave(&mut conn, &trail, workspace_id, Utc::now()).await?;
        Ok(true)
    }
}

/// A workspace's settings to change: a field left out stays as it is.
#[derive(InputObject)]
pub struct WorkspaceSettingsInput {
    /// Whose days analytics count in: an IANA time zone such as Europe/Paris.
    time_zone: Option<String>,
    /// How many days (1 to 3,650) conversations are kept after their last activity; null
    /// keeps them forever.
    conversation_retention_days: MaybeUndefined<i32>,
}
