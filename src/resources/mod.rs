//! Everything a workspace creates: agents, contacts, knowledge bases, forms, phone
//! numbers, calendars and integrations, through one mechanism.
//!
//! Each kind says only what is its own, in its one file under `kinds/` ([`Kind`]: its input,
//! its validation, its output fields, the plan limit it counts against, the other kinds its
//! fields refer to, its unique fields); scoping to the workspace, permissions, read-only
//! refusal, limits, references, the audit events and pagination are written once here, and
//! the GraphQL surface once in `graphql.rs` and `kinds/mod.rs`. Rules: Owners and Admins
//! create, edit and delete anything; Members create and edit, and delete what they created;
//! Viewers read. An id from another workspace is `NOT_FOUND`, exactly like a missing one.
//! Creating past the plan's limit for the kind is `USAGE_LIMIT_REACHED`, checked under the
//! workspace's lock in the creating transaction, so parallel creations cannot overshoot.
//! Deleting a resource takes it out of every field that refers to it, as the referring
//! kinds declare, in the same transaction.

pub mod graphql;
pub mod kinds;
pub mod model;

use std::future::Future;

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use uuid::Uuid;

use self::model::{ResourceRow, Scope};
use crate::audit::{self, Event, Target, Trail};
use crate::auth::model::UserRow;
use crate::billing::{self, plans::CountLimit};
use crate::db::is_unique_violation;
use crate::db::page::{split_total, Page};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::roles::{self, Action, Role};
use crate::text::Name;

/// A validated input: the common name and the kind's own fields.
pub struct Fields {
    pub name: Name,
    pub data: serde_json::Value,
}

/// A field of one kind that names resources of another: `Reference::one("phone_number_id",
/// "phone_number")` holds one id (or none), `Reference::many` a list. Deleting the resource
/// named takes it out of the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The field in `data` (snake case, as stored).
    pub field: &'static str,
    /// The kind it names.
    pub to: &'static str,
    pub many: bool,
}

impl Reference {
    pub const fn one(field: &'static str, to: &'static str) -> Self {
        Reference {
            field,
            to,
            many: false,
        }
    }

    pub const fn many(field: &'static str, to: &'static str) -> Self {
        Reference {
            field,
            to,
            many: true,
        }
    }
}

/// A reference held by resources of kind `from`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Referrer {
    pub from: &'static str,
    pub reference: Reference,
}

/// What makes a resource kind different from the others.
pub trait Kind: Send + Sync + Sized + 'static {
    /// The `resources.kind` value.
    const KIND: &'static str;
    /// For messages: "Agent", "Phone number", ...
    const LABEL: &'static str;
    /// The plan limit this kind counts against, if any.
    const LIMIT: Option<CountLimit> = None;
    /// Whether each one is billed on the subscription ([`billing::phone_numbers`]): creating
    /// or deleting one queues the workspace's billing sync in the same transaction.
    const BILLED: bool = false;
    /// Its fields that name other resources.
    const REFERENCES: &'static [Reference] = &[];
    /// Its unique indexes (from its migration) and the conflict each means to a client.
    const UNIQUE: &'static [(&'static str, &'static str)] = &[];

    /// What `create` takes; read back from the stored fields to apply a patch.
    type Input: Send + Sync + serde::de::DeserializeOwned;
    /// What `update` takes: only the fields to change (see `kinds::input_and_patch!`).
    type Patch: Send + Sync + serde::Serialize;
    /// What clients see.
    type Node;

    /// Checks an input inside the writing transaction (so references can be checked).
    fn validate(
        conn: &mut AsyncPgConnection,
        scope: Scope,
        input: &Self::Input,
    ) -> impl Future<Output = ApiResult<Fields>> + Send;

    fn node(row: ResourceRow, created_by: Option<UserRow>) -> Self::Node;
}

/// A stored resource and, when asked for, its creator's account.
pub type Stored = (ResourceRow, Option<UserRow>);

/// What the resource rules refuse (a kind's own validation answers `BAD_USER_INPUT` itself).
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// Missing and another workspace's alike; the kind's label.
    #[error("{0} not found.")]
    NotFound(&'static str),
    #[error("This plan allows at most {max} {what}s; choose a bigger plan.")]
    OverLimit { max: i32, what: String },
    #[error("Members may delete only what they created; ask an Owner or Admin.")]
    NotYours,
    /// A unique field's value is taken in the workspace: the kind's message.
    #[error("{0}")]
    Taken(&'static str),
    #[error("{0} cannot be changed this way.")]
    Unchangeable(&'static str),
    /// Required fields a patch set to null, named as clients name them.
    #[error("{0} cannot be cleared: give a value instead of null.")]
    Uncleared(String),
}

impl From<ResourceError> for ApiError {
    fn from(err: ResourceError) -> Self {
        let code = match err {
            ResourceError::NotFound(_) => ErrorCode::NotFound,
            ResourceError::OverLimit { .. } => ErrorCode::UsageLimitReached,
            ResourceError::NotYours => ErrorCode::Forbidden,
            ResourceError::Taken(_) => ErrorCode::Conflict,
            ResourceError::Unchangeable(_) | ResourceError::Uncleared(_) => ErrorCode::BadUserInput,
        };
        ApiError::new(code, err.to_string())
    }
}

pub fn not_found<K: Kind>() -> ApiError {
    ResourceError::NotFound(K::LABEL).into()
}

fn write_error<K: Kind>(err: diesel::result::Error) -> ApiError {
    match K::UNIQUE
        .iter()
        .find(|(index, _)| is_unique_violation(&err, index))
    {
        Some((_, conflict)) => ResourceError::Taken(conflict).into(),
        None => err.into(),
    }
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

/// Creates a resource for the person in `trail`; reads its creator back only when
/// `with_creator` (most answers do not show it: one statement fewer).
pub async fn create<K: Kind>(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    scope: Scope,
    input: K::Input,
    with_creator: bool,
    now: DateTime<Utc>,
) -> ApiResult<Stored> {
    let caller = trail.person()?;
    let workspace_id = scope.workspace_id;
    conn.transaction(async |conn| {
        let mut held = None;
        if let Some(limit) = K::LIMIT {
            let max = limit.of(&billing::lock_row_with_limits(conn, workspace_id).await?);
            let counted = Scope {
                app_filter: true,
                ..scope
            };
            let used = model::count(conn, counted).await?;
            if used >= i64::from(max) {
                let what = K::KIND.replace('_', " ");
                return Err(ResourceError::OverLimit { max, what }.into());
            }
            held = Some((limit, used, max));
        }
        let fields = K::validate(conn, scope, &input).await?;
        let row = model::insert(conn, scope, fields.name.as_str(), &fields.data, caller, now)
            .await
            .map_err(write_error::<K>)?;
        let created_by = creator(conn, &row, with_creator).await?;
        billed::<K>(conn, workspace_id).await?;
        if let Some((limit, used, max)) = held {
            let at = (used, max);
            crate::usage::alerts::after_adding(conn, trail, workspace_id, limit, at, now).await?;
        }
        let event = Event {
            action: audit::Action::ResourceCreated,
            target: Target::resource(K::KIND, row.id),
            changes: serde_json::json!({ "name": row.name }),
        };
        audit::record(conn, workspace_id, trail, event, row.created_at).await?;
        Ok((row, created_by))
    })
    .await
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
        let err = match cleared.as_slice() {
            [] => ResourceError::Unchangeable(K::LABEL),
            names => ResourceError::Uncleared(
                names
                    .iter()
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        };
        ApiError::from(err)
    })
}

/// Changes the fields `patch` sets.
pub async fn update<K: Kind>(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    scope: Scope,
    id: Uuid,
    patch: K::Patch,
    with_creator: bool,
    now: DateTime<Utc>,
) -> ApiResult<Stored> {
    // The fields the patch sets (not their values: they may be personal data).
    let set_fields: Vec<String> = match serde_json::to_value(&patch) {
        Ok(serde_json::Value::Object(set)) => set
            .keys()
            .map(|name| crate::text::camel_case(name))
            .collect(),
        _ => Vec::new(),
    };
    conn.transaction(async |conn| {
        let existing = model::find_for_update(conn, scope, id)
            .await?
            .ok_or_else(not_found::<K>)?;
        let input = patched::<K>(&existing, &patch)?;
        let fields = K::validate(conn, scope, &input).await?;
        let row = model::update(conn, &existing, fields.name.as_str(), &fields.data, now)
            .await
            .map_err(write_error::<K>)?;
        let created_by = creator(conn, &row, with_creator).await?;
        let event = Event {
            action: audit::Action::ResourceUpdated,
            target: Target::resource(K::KIND, row.id),
            changes: serde_json::json!({
                "name": { "from": existing.name, "to": row.name },
                "fields": set_fields,
            }),
        };
        audit::record(conn, scope.workspace_id, trail, event, now).await?;
        Ok((row, created_by))
    })
    .await
}

/// Deletes a resource and takes it out of the fields of `referrers` that name it. `role` is
/// the caller's, as the guard checked it: whose item it is, is checked here.
pub async fn delete<K: Kind>(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    role: Role,
    scope: Scope,
    id: Uuid,
    referrers: &[Referrer],
    now: DateTime<Utc>,
) -> ApiResult<bool> {
    let caller = trail.person()?;
    conn.transaction(async |conn| {
        let row = model::find_for_update(conn, scope, id)
            .await?
            .ok_or_else(not_found::<K>)?;
        let own = row.created_by == Some(caller);
        if !roles::allows(role, Action::DeleteItem { own }) {
            return Err(ResourceError::NotYours.into());
        }
        model::delete(conn, &row).await?;
        for referrer in referrers.iter().filter(|r| r.reference.to == K::KIND) {
            model::detach(conn, &row, referrer.from, referrer.reference).await?;
        }
        billed::<K>(conn, scope.workspace_id).await?;
        let event = Event {
            action: audit::Action::ResourceDeleted,
            target: Target::resource(K::KIND, row.id),
            changes: serde_json::json!({ "name": row.name }),
        };
        audit::record(conn, scope.workspace_id, trail, event, now).await?;
        Ok(true)
    })
    .await
}

/// One page of the kind, oldest first, with the size of the whole list.
pub async fn page<K: Kind>(
    conn: &mut AsyncPgConnection,
    scope: Scope,
    page: &Page,
) -> ApiResult<(Vec<K::Node>, i64)> {
    let rows = model::page(conn, scope, page).await?;
    let (rows, total) = split_total(rows, model::count(conn, scope)).await?;
    let nodes = rows
        .into_iter()
        .map(|(row, user)| K::node(row, user))
        .collect();
    Ok((nodes, total))
}
