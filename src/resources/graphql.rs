//! The GraphQL side every kind shares: the common fields of a resource, and the resolvers
//! each kind's `createX`, `updateX`, `deleteX` and list call (`kinds/mod.rs`, `surface!`):
//! parse, scope, call `resources`, map.

use async_graphql::{Context, Object, OutputType, ID};
use chrono::Utc;
use uuid::Uuid;

pub use super::kinds::{ResourceLists, ResourceMutation};
use super::model::{ResourceRow, Scope};
use super::{kinds, not_found, Kind};
use crate::auth::graphql::User;
use crate::auth::model::UserRow;
use crate::db::page::{Cursor, Page};
use crate::error::ApiResult;
use crate::graphql::context::{parse_id, request, RequestContext};
use crate::graphql::guard::membership;
use crate::graphql::pagination::PageOf;
use crate::graphql::scalars::Timestamp;

/// What every resource has.
pub struct ResourceCommon {
    row: ResourceRow,
    /// The creator's account. Pages always read it; a write only when its answer selects
    /// `createdBy`, so it is `None` wherever nobody will show it.
    created_by: Option<User>,
}

impl ResourceCommon {
    pub fn new(row: ResourceRow, created_by: Option<UserRow>) -> Self {
        Self {
            row,
            created_by: created_by.map(User::new),
        }
    }

    pub fn cursor(&self) -> Cursor {
        Cursor {
            at: self.row.created_at,
            id: self.row.id,
        }
    }
}

/// The fields every resource has.
#[Object]
impl ResourceCommon {
    /// Stable identifier.
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    /// Display name, 1-100 characters.
    async fn name(&self) -> &str {
        &self.row.name
    }

    /// Who created it (null if their account is gone).
    async fn created_by(&self) -> Option<&User> {
        self.created_by.as_ref()
    }

    /// When it was created.
    async fn created_at(&self) -> Timestamp {
        self.row.created_at.into()
    }

    /// When it last changed.
    async fn updated_at(&self) -> Timestamp {
        self.row.updated_at.into()
    }
}

/// A resource's GraphQL type: the common fields merged with its kind's own.
pub trait ResourceNode: OutputType {
    fn common(&self) -> &ResourceCommon;
}

fn scope<K: Kind>(request: &RequestContext, workspace_id: Uuid) -> Scope {
    Scope {
        workspace_id,
        kind: K::KIND,
        app_filter: request.tenant_filter(K::KIND),
    }
}

/// Whether the write's answer selects `createdBy`; most do not, and then the creator is not
/// read (one statement fewer). The look-ahead sees through fragments; it ignores `@skip`,
/// which can only make it read a creator nobody shows.
fn creator_asked(ctx: &Context<'_>) -> bool {
    ctx.look_ahead().field("createdBy").exists()
}

pub async fn create<K: Kind>(
    ctx: &Context<'_>,
    workspace_id: &ID,
    input: K::Input,
) -> ApiResult<K::Node> {
    let request = request(ctx);
    let trail = request.trail()?;
    let workspace_id = parse_id(workspace_id)?;
    let scope = scope::<K>(request, workspace_id);
    let mut conn = request.db.conn_in(workspace_id).await?;
    let asked = creator_asked(ctx);
    let (row, created_by) =
        super::create::<K>(&mut conn, &trail, scope, input, asked, Utc::now()).await?;
    Ok(K::node(row, created_by))
}

pub async fn update<K: Kind>(
    ctx: &Context<'_>,
    workspace_id: &ID,
    id: &ID,
    patch: K::Patch,
) -> ApiResult<K::Node> {
    let request = request(ctx);
    let trail = request.trail()?;
    let workspace_id = parse_id(workspace_id)?;
    let id = parse_id(id).map_err(|_| not_found::<K>())?;
    let scope = scope::<K>(request, workspace_id);
    let mut conn = request.db.conn_in(workspace_id).await?;
    let asked = creator_asked(ctx);
    let (row, created_by) =
        super::update::<K>(&mut conn, &trail, scope, id, patch, asked, Utc::now()).await?;
    Ok(K::node(row, created_by))
}

pub async fn delete<K: Kind>(ctx: &Context<'_>, workspace_id: &ID, id: &ID) -> ApiResult<bool> {
    let request = request(ctx);
    let trail = request.trail()?;
    let workspace_id = parse_id(workspace_id)?;
    let id = parse_id(id).map_err(|_| not_found::<K>())?;
    let role = membership(ctx, workspace_id).await?.role;
    let scope = scope::<K>(request, workspace_id);
    let mut conn = request.db.conn_in(workspace_id).await?;
    let referrers = kinds::referrers();
    super::delete::<K>(&mut conn, &trail, role, scope, id, referrers, Utc::now()).await
}

pub async fn page<K: Kind>(
    ctx: &Context<'_>,
    workspace_id: Uuid,
    first: Option<i32>,
    after: Option<&str>,
) -> ApiResult<PageOf<K::Node>>
where
    K::Node: ResourceNode,
{
    let request = request(ctx);
    let page = Page::parse(first, after)?;
    let scope = scope::<K>(request, workspace_id);
    let mut conn = request.db.conn_in(workspace_id).await?;
    let (nodes, total) = super::page::<K>(&mut conn, scope, &page).await?;
    Ok(PageOf::from_rows(nodes, &page, total, |node| {
        node.common().cursor().encode()
    }))
}
