//! Export rows and their SQL.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Bytea, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::{bind, static_sql};
use crate::schema::workspace_exports;

pub async fn insert(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    owner: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<Uuid> {
    let id = Uuid::now_v7();
    diesel::insert_into(workspace_exports::table)
        .values((
            workspace_exports::id.eq(id),
            workspace_exports::workspace_id.eq(workspace_id),
            workspace_exports::requested_by.eq(owner),
            workspace_exports::requested_at.eq(now),
        ))
        .execute(conn)
        .await?;
    Ok(id)
}

/// An export as its job and its download read it.
#[derive(Queryable, Selectable, Debug)]
#[diesel(table_name = workspace_exports)]
pub struct ExportRow {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub requested_by: Uuid,
    pub ready_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// The export, locked; the connection must be inside its workspace.
pub async fn lock(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<ExportRow>> {
    workspace_exports::table
        .filter(workspace_exports::id.eq(id))
        .select(ExportRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Builds the document, once: a rerun finds it built. The connection must be inside the
/// workspace.
pub async fn build(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    workspace_id: Uuid,
    expires_at: DateTime<Utc>,
) -> QueryResult<()> {
    static_sql(
        "UPDATE workspace_exports SET document = workspace_export_document($2), \
         ready_at = now(), expires_at = $3 WHERE id = $1 AND document IS NULL",
        (
            bind::<SqlUuid, _>(id),
            bind::<SqlUuid, _>(workspace_id),
            bind::<diesel::sql_types::Timestamptz, _>(expires_at),
        ),
    )
    .execute(conn)
    .await
    .map(drop)
}

pub async fn set_token(conn: &mut AsyncPgConnection, id: Uuid, hash: &[u8]) -> QueryResult<()> {
    diesel::update(workspace_exports::table.filter(workspace_exports::id.eq(id)))
        .set(workspace_exports::token_hash.eq(hash))
        .execute(conn)
        .await
        .map(drop)
}

pub async fn mark_sent(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(workspace_exports::table.filter(workspace_exports::id.eq(id)))
        .set(workspace_exports::sent_at.eq(now))
        .execute(conn)
        .await
        .map(drop)
}

#[derive(QueryableByName)]
struct ByToken {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    workspace_id: Uuid,
}

/// The export a link token belongs to, and its workspace. Runs in any context.
pub async fn find_by_token(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
) -> QueryResult<Option<(Uuid, Uuid)>> {
    let found: Option<ByToken> = static_sql(
        "SELECT id, workspace_id FROM workspace_export_by_token($1)",
        (bind::<Bytea, _>(token_hash),),
    )
    .get_result(conn)
    .await
    .optional()?;
    Ok(found.map(|row| (row.id, row.workspace_id)))
}

/// The export, if it is ready and its link unexpired at `now`; the connection must be
/// inside its workspace.
pub async fn find_ready(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<Option<ExportRow>> {
    workspace_exports::table
        .filter(workspace_exports::id.eq(id))
        .filter(workspace_exports::expires_at.gt(now))
        .filter(workspace_exports::document.is_not_null())
        .select(ExportRow::as_select())
        .first(conn)
        .await
        .optional()
}

#[derive(QueryableByName)]
struct Document {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    text: Option<String>,
}

/// The document as PostgreSQL writes it out; the connection must be inside its workspace.
pub async fn document(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<String>> {
    let document: Option<Document> = static_sql(
        "SELECT document::text AS text FROM workspace_exports WHERE id = $1",
        (bind::<SqlUuid, _>(id),),
    )
    .get_result(conn)
    .await
    .optional()?;
    Ok(document.and_then(|document| document.text))
}

/// Drops the documents whose links expired: an export is no second copy kept past its
/// data's retention. Runs in any context.
pub async fn forget_expired(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    static_sql("SELECT forget_expired_exports()", ())
        .execute(conn)
        .await
        .map(drop)
}
