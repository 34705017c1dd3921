//! Everything a workspace creates: agents, contacts, knowledge bases, forms, phone
//! numbers, calendars and integrations, through one mechanism.
//!
//! Each kind says only what is its own ([`Kind`]: its input, its validation, its output
//! fields, the plan limit it counts against); scoping to the workspace, permissions,
//! read-only refusal, limits, pagination and the GraphQL surface are written once here and
//! in `graphql.rs`. Rules: Owners and Admins create, edit and delete anything; Members
//! create and edit, and delete what they created; Viewers read. An id from another
//! workspace is `NOT_FOUND`, exactly like a missing one. Creating an agent or phone number
//! past the plan's limit is `USAGE_LIMIT_REACHED`, checked under the workspace's lock in
//! the creating transaction, so parallel creations cannot overshoot.

pub mod common;
pub mod graphql;
pub mod kinds;
pub mod model;

pub use common::{ResourceCommon, ResourceNode};

use std::future::Future;

use async_graphql::{Context, ID};
use chrono::Utc;
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use uuid::Uuid;

use self::model::{ResourceRow, Scope};
use crate::audit::{self, Event, Target};
use crate::auth::model::UserRow;
use crate::billing::{self, plans::Limits};
use crate::db::is_unique_violation;
use crate::db::page::{split_total, Page};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::graphql::context::{parse_id, request, RequestContext};
use crate::graphql::guard::membership;
use crate::graphql::pagination::PageOf;
use crate::roles::{self, Action};
use crate::text::Name;

/// A validated input: the common name and the kind's own fields.
pub struct Fields {
    pub name: Name,
    pub data: serde_json::Value,
}

/// What makes a resource kind different from the others.
pub trait Kind: Send + Sync + Sized + 'static {
    /// The `resources.kind` value.
    const KIND: &'static str;
    /// For messages: "Agent", "Phone number", ...
    const LABEL: &'static str;
    /// The plan limit this kind counts against, if any.
    const LIMIT: Option<fn(&Limits) -> i32> = None;
    /// Whether each one is billed on the subscription ([`billing::phone_numbers`]): creating
    /// or deleting one queues the workspace's billing sync in the same transaction.
    const BILLED: bool = false;

    /// What `create` takes; read back from the stored fields to apply a patch.
    type Input: Send + Sync + serde::de::DeserializeOwned;
    /// What `update` takes: only the fields to change (see `kinds::input_and_patch!`).
    type Patch: Send + Sync + serde::Serialize;
    type Node: ResourceNode;

    /// Checks an input inside the writing transaction (so references can be checked).
    fn validate(
        conn: &mut AsyncPgConnection,
        scope: Scope,
        input: &Self::Input,
    ) -> impl Future<Output = ApiResult<Fields>> + Send;

    fn node(row: ResourceRow, created_by: Option<UserRow>) -> Self::Node;
}

fn scope<K: Kind>(request: &RequestContext, workspace_id: Uuid) -> Scope {
    Scope {
        workspace_id,
        kind: K::KIND,
        app_filter: request.tenant_filter(K::KIND),
    }
}

fn not_found<K: Kind>() -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("{} not found.", K::LABEL))
}

fn write_error(err: diesel::result::Error) -> ApiError {
    if is_unique_violation(&err, model::PHONE_NUMBER_UNIQUE) {
        ApiError::conflict("This phone number is already in this workspace.")
    } else {
        err.into()
    }
}

/// Whether the write's answer selects `createdBy`; most do not, and then the creator is not
/// read (one statement fewer). The look-ahead sees through fragments; it ignores `@skip`,
/// which can only make it read a creator nobody shows.
fn creator_asked(ctx: &Context<'_>) -> bool {
    ctx.look_ahead().field("createdBy").exists()
}

async fn creator(
    conn: &mut AsyncPgConnection,
    row: &ResourceRow,
    asked: bool,
) -> ApiResult<Option<UserRow>> {
    match row.created_by {
        Some(id) if asked => Ok(crate::auth::model::find_user(conn, id).await?),
        _ => Ok(None),
    }
}

pub async fn create<K: Kind>(
    ctx: &Context<'_>,
    workspace_id: &ID,
    input: K::Input,
) -> ApiResult<K::Node> {
    let request = request(ctx);
    let caller = request.caller()?.user_id;
    let trail = request.trail()?;
    let workspace_id = parse_id(workspace_id)?;
    let scope = scope::<K>(request, workspace_id);
    let creator_asked = creator_asked(ctx);
    let mut conn = request.db.conn_in(workspace_id).await?;
    let (row, created_by) = conn
        .transaction(async |conn| {
            if let Some(limit) = K::LIMIT {
                let max = limit(&billing::lock_row_with_limits(conn, workspace_id).await?);
                let used = model::count(
                    conn,
                    Scope {
                        app_filter: true,
                        ..scope
                    },
                )
                .await?;
                if used >= i64::from(max) {
                    return Err(ApiError::new(
                        ErrorCode::UsageLimitReached,
                        format!(
                            "This plan allows at most {max} {}s; choose a bigger plan.",
                            K::KIND.replace('_', " ")
                        ),
                    ));
                }
            }
            let fields = K::validate(conn, scope, &input).await?;
            let row = model::insert(
                conn,
                scope,
                fields.name.as_str(),
                &fields.data,
                caller,
                Utc::now(),
            )
            .await
            .map_err(write_error)?;
            let created_by = creator(conn, &row, creator_asked).await?;
            billed::<K>(conn, workspace_id).await?;
            let event = Event {
                action: audit::Action::ResourceCreated,
                target: Target::resource(K::KIND, row.id),
                changes: serde_json::json!({ "name": row.name }),
            };
            audit::record(conn, workspace_id, &trail, event, row.created_at).await?;
            Ok::<_, ApiError>((row, created_by))
        })
        .await?;
    Ok(K::node(row, created_by))
}

/// For a billed kind, queues the billing sync that brings the subscription's quantity in
/// step, inside the writing transaction.
async fn billed<K: Kind>(conn: &mut AsyncPgConnection, workspace_id: Uuid) -> ApiResult<()> {
    if K::BILLED {
        crate::outbox::enqueue(conn, &billing::sync::SyncBilling { workspace_id }).await?;
    }
    Ok(())
}

/// The input `patch` makes of a stored resource: the stored name and fields, with the
/// patch's fields laid over them (a field the patch leaves out keeps its value; `null` clears
/// it). The result is validated like a new input, so a patch can only reach states a create
/// could.
fn patched<K: Kind>(existing: &ResourceRow, patch: &K::Patch) -> ApiResult<K::Input> {
    let mut fields = match existing.data.parse::<serde_json::Value>() {
        serde_json::Value::Object(fields) => fields,
        _ => serde_json::Map::new(),
    };
    fields.insert("name".into(), existing.name.clone().into());
    let changes = match serde_json::to_value(patch) {
        Ok(serde_json::Value::Object(changes)) => changes,
        Ok(_) => serde_json::Map::new(),
        Err(err) => return Err(ApiError::internal(&err)),
    };
    let cleared: Vec<String> = changes
        .iter()
        .filter(|(_, value)| value.is_null())
        .map(|(name, _)| crate::text::camel_case(name))
        .collect();
    fields.extend(changes);
    serde_json::from_value(serde_json::Value::Object(fields)).map_err(|_| {
        ApiError::bad_input(match cleared.as_slice() {
            [] => format!("{} cannot be changed this way.", K::LABEL),
            names => format!(
                "{} cannot be cleared: give a value instead of null.",
                names
                    .iter()
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    })
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
    let creator_asked = creator_asked(ctx);
    // The fields the patch sets (not their values: they may be personal data).
    let set_fields: Vec<String> = match serde_json::to_value(&patch) {
        Ok(serde_json::Value::Object(set)) => set
            .keys()
            .map(|name| crate::text::camel_case(name))
            .collect(),
        _ => Vec::new(),
    };
    let mut conn = request.db.conn_in(workspace_id).await?;
    let (row, created_by) = conn
        .transaction(async |conn| {
            let existing = model::find_for_update(conn, scope, id)
                .await?
                .ok_or_else(not_found::<K>)?;
            let input = patched::<K>(&existing, &patch)?;
            let fields = K::validate(conn, scope, &input).await?;
            let now = Utc::now();
            let row = model::update(conn, existing.id, fields.name.as_str(), &fields.data, now)
                .await
                .map_err(write_error)?;
            let created_by = creator(conn, &row, creator_asked).await?;
            let event = Event {
                action: audit::Action::ResourceUpdated,
                target: Target::resource(K::KIND, row.id),
                changes: serde_json::json!({
                    "name": { "from": existing.name, "to": row.name },
                    "fields": set_fields,
                }),
            };
            audit::record(conn, workspace_id, &trail, event, now).await?;
            Ok::<_, ApiError>((row, created_by))
        })
        .await?;
    Ok(K::node(row, created_by))
}

pub async fn delete<K: Kind>(ctx: &Context<'_>, workspace_id: &ID, id: &ID) -> ApiResult<bool> {
    let request = request(ctx);
    let caller = request.caller()?.user_id;
    let trail = request.trail()?;
    let workspace_id = parse_id(workspace_id)?;
    let id = parse_id(id).map_err(|_| not_found::<K>())?;
    // The guard checked the role for the action; whose item it is, is checked here.
    let membership = membership(ctx, workspace_id).await?;
    let scope = scope::<K>(request, workspace_id);
    let mut conn = request.db.conn_in(workspace_id).await?;
    conn.transaction(async |conn| {
        let row = model::find_for_update(conn, scope, id)
            .await?
            .ok_or_else(not_found::<K>)?;
        let own = row.created_by == Some(caller);
        if !roles::allows(membership.role, Action::DeleteItem { own }) {
            return Err(ApiError::forbidden(
                "Members may delete only what they created; ask an Owner or Admin.",
            ));
        }
        model::delete(conn, &row).await?;
        billed::<K>(conn, workspace_id).await?;
        let event = Event {
            action: audit::Action::ResourceDeleted,
            target: Target::resource(K::KIND, row.id),
            changes: serde_json::json!({ "name": row.name }),
        };
        audit::record(conn, workspace_id, &trail, event, Utc::now()).await?;
        Ok::<_, ApiError>(true)
    })
    .await
}

pub async fn page<K: Kind>(
    ctx: &Context<'_>,
    workspace_id: Uuid,
    first: Option<i32>,
    after: Option<&str>,
) -> ApiResult<PageOf<K::Node>> {
    let request = request(ctx);
    let page = Page::parse(first, after)?;
    let scope = scope::<K>(request, workspace_id);
    let mut conn = request.db.conn_in(workspace_id).await?;
    let rows = model::page(&mut conn, scope, &page).await?;
    let (rows, total) = split_total(rows, model::count(&mut conn, scope)).await?;
    let nodes = rows
        .into_iter()
        .map(|(row, user)| K::node(row, user))
        .collect();
    Ok(PageOf::from_rows(nodes, &page, total, |node| {
        node.common().cursor().encode()
    }))
}
