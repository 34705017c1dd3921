//! `Workspace.auditLog`: parse, call the model, map.

use async_graphql::{Context, Enum, InputObject, SimpleObject, ID};
use uuid::Uuid;

use super::model::{self, AuditRow, Filter};
use crate::db::page::{Cursor, Page};
use crate::error::ApiResult;
use crate::graphql::context::{parse_id, request};
use crate::graphql::pagination::PageOf;
use crate::graphql::scalars::Timestamp;

macro_rules! audit_action {
    ($($(#[$doc:meta])* $variant:ident = $db:literal,)*) => {
        /// What happened (docs/security.md's audit table says which mutation writes which).
        #[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
        #[graphql(remote = "super::Action", rename_items = "SCREAMING_SNAKE_CASE")]
        pub enum AuditAction {
            $($(#[$doc])* $variant,)*
        }
    };
}

super::with_actions!(audit_action);

/// Who acted.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "super::PrincipalKind", rename_items = "SCREAMING_SNAKE_CASE")]
pub enum PrincipalKind {
    /// A person, signed in.
    User,
    /// A person's personal access token.
    AccessToken,
    /// A service with a service token (the agent runtime).
    Service,
    /// Stripe, through its webhooks.
    Stripe,
    /// The server's scheduled work.
    System,
}

/// One change to the workspace.
#[derive(SimpleObject)]
pub struct AuditEvent {
    /// The event's id.
    id: ID,
    /// When it happened.
    at: Timestamp,
    /// What happened.
    action: AuditAction,
    /// Who acted: the kind of principal.
    actor_kind: PrincipalKind,
    /// The person who acted (a session or their access token); null for services, Stripe
    /// and the system.
    actor_id: Option<ID>,
    /// What it happened to: `user`, `invitation`, ...
    target_kind: String,
    /// The target's id.
    target_id: String,
    /// The values that matter, e.g. `{"role": {"from": "MEMBER", "to": "ADMIN"}}`.
    changes: async_graphql::Json<serde_json::Value>,
    /// The request that made it, when it came from one.
    request_id: Option<ID>,
    /// The client's address, when it came from a request.
    client_address: Option<String>,
    #[graphql(skip)]
    cursor: String,
}

/// Which events to list; fields left out do not filter.
#[derive(InputObject, Default)]
pub struct AuditLogFilter {
    /// Only these actions.
    actions: Option<Vec<AuditAction>>,
    /// Only what this person did.
    actor_id: Option<ID>,
    /// Only events at or after this time.
    since: Option<Timestamp>,
}

impl AuditLogFilter {
    fn parse(self) -> ApiResult<Filter> {
        Ok(Filter {
            actions: self
                .actions
                .unwrap_or_default()
                .into_iter()
                .map(Into::into)
                .collect(),
            actor_id: self.actor_id.as_ref().map(parse_id).transpose()?,
            since: self.since.map(|since| since.0),
        })
    }
}

pub(crate) fn event(row: AuditRow) -> AuditEvent {
    AuditEvent {
        cursor: Cursor {
            at: row.at,
            id: row.id,
        }
        .encode(),
        id: ID(row.id.to_string()),
        at: row.at.into(),
        // A row's action and kind are written from these enums; an unknown one would be
        // a newer server's, shown as the closest the schema has.
        action: super::Action::from_db(&row.action)
            .unwrap_or(super::Action::MemberRoleChanged)
            .into(),
        actor_kind: super::PrincipalKind::from_db(&row.actor_kind)
            .unwrap_or(super::PrincipalKind::System)
            .into(),
        actor_id: row.actor_id.map(|id| ID(id.to_string())),
        target_kind: row.target_kind,
        target_id: row.target_id,
        changes: async_graphql::Json(row.changes),
        request_id: row.request_id.map(|id| ID(id.to_string())),
        client_address: row.client,
    }
}

/// A page of the workspace's audit log, newest first.
pub async fn audit_log_page(
    ctx: &Context<'_>,
    workspace_id: Uuid,
    first: Option<i32>,
    after: Option<&str>,
    filter: Option<AuditLogFilter>,
) -> ApiResult<PageOf<AuditEvent>> {
    let page = Page::parse(first, after)?;
    let filter = filter.unwrap_or_default().parse()?;
    let mut conn = request(ctx).db.conn_in(workspace_id).await?;
    let after = page.after.map(|cursor| (cursor.at, cursor.id));
    let rows = model::page(&mut conn, workspace_id, &filter, page.limit(), after).await?;
    let total = model::count(&mut conn, workspace_id, &filter).await?;
    let events = rows.into_iter().map(event).collect();
    Ok(PageOf::from_rows(events, &page, total, |event| {
        event.cursor.clone()
    }))
}
