//! Audit rows and their SQL.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{Action, Event, Trail};
use crate::db::{bind, static_sql};
use crate::schema::audit_events;

#[derive(Queryable, Selectable, QueryableByName, Clone, Debug)]
#[diesel(table_name = audit_events)]
pub struct AuditRow {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    pub changes: serde_json::Value,
    pub request_id: Option<Uuid>,
    pub client: Option<String>,
}

pub async fn insert(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    trail: &Trail,
    event: &Event,
    now: DateTime<Utc>,
) -> QueryResult<Option<i64>> {
    diesel::insert_into(audit_events::table)
        .values((
            audit_events::workspace_id.eq(workspace_id),
            audit_events::at.eq(now),
            audit_events::actor_kind.eq(trail.kind.as_db()),
            audit_events::actor_id.eq(trail.actor_id),
            audit_events::action.eq(event.action.as_db()),
            audit_events::target_kind.eq(event.target.kind),
            audit_events::target_id.eq(&event.target.id),
            audit_events::changes.eq(&event.changes),
            audit_events::request_id.eq(trail.request_id),
            audit_events::client.eq(trail.client.map(|ip| ip.to_string())),
        ))
        // Its number in the workspace's stream (migration 000069's trigger gives one to
        // every event).
        .returning(audit_events::seq)
        .get_result(conn)
        .await
}

/// Whether the workspace has an event of `action` at or after `since`.
pub async fn exists_since(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    action: Action,
    since: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        audit_events::table
            .filter(audit_events::workspace_id.eq(workspace_id))
            .filter(audit_events::at.ge(since))
            .filter(audit_events::action.eq(action.as_db())),
    ))
    .get_result(conn)
    .await
}

/// Which events a page shows.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only these actions (none: all).
    pub actions: Vec<Action>,
    pub actor_id: Option<Uuid>,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
}

type Boxed<'a> = audit_events::BoxedQuery<'a, diesel::pg::Pg>;

fn filtered<'a>(workspace_id: Uuid, filter: &Filter) -> Boxed<'a> {
    let mut query = audit_events::table
        .filter(audit_events::workspace_id.eq(workspace_id))
        .into_boxed();
    if !filter.actions.is_empty() {
        let actions: Vec<&'static str> = filter.actions.iter().map(|a| a.as_db()).collect();
        query = query.filter(audit_events::action.eq_any(actions));
    }
    if let Some(actor) = filter.actor_id {
        query = query.filter(audit_events::actor_id.eq(actor));
    }
    if let Some(since) = filter.since {
        query = query.filter(audit_events::at.ge(since));
    }
    query
}

/// Up to `limit` events, newest first, after the event at `after` (its time and id).
pub async fn page(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    filter: &Filter,
    limit: i64,
    after: Option<(DateTime<Utc>, Uuid)>,
) -> QueryResult<Vec<AuditRow>> {
    let mut query = filtered(workspace_id, filter)
        .select(AuditRow::as_select())
        .order((audit_events::at.desc(), audit_events::id.desc()))
        .limit(limit);
    if let Some((at, id)) = after {
        query = query.filter(
            audit_events::at
                .lt(at)
                .or(audit_events::at.eq(at).and(audit_events::id.lt(id))),
        );
    }
    query.load(conn).await
}

pub async fn count(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    filter: &Filter,
) -> QueryResult<i64> {
    filtered(workspace_id, filter)
        .count()
        .get_result(conn)
        .await
}

#[derive(QueryableByName)]
struct Pruned {
    #[diesel(sql_type = BigInt)]
    pruned: i64,
}

/// Deletes events from before `before` in every workspace (an owner-run function).
pub async fn prune(conn: &mut AsyncPgConnection, before: DateTime<Utc>) -> QueryResult<usize> {
    prune_with(conn, "SELECT prune_audit_events($1) AS pruned", before).await
}

/// Runs one of the owner-run retention functions (`SELECT prune_...($1) AS pruned`), which
/// delete what the app role may not; answers how many rows went.
pub async fn prune_with(
    conn: &mut AsyncPgConnection,
    sql: &'static str,
    before: DateTime<Utc>,
) -> QueryResult<usize> {
    let pruned: Pruned = static_sql(sql, (bind::<Timestamptz, _>(before),))
        .get_result(conn)
        .await?;
    Ok(usize::try_from(pruned.pruned).unwrap_or(usize::MAX))
}
