//! Rows and queries for resources of every kind.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::auth::model::UserRow;
use crate::db::page::Page;
use crate::db::{bind, static_sql};
use crate::schema::{resources, users};

/// A resource's `data` as the JSON text PostgreSQL sent. Each kind parses it once, straight
/// into its own fields; read as a `serde_json::Value` it was parsed twice, and a page of
/// agents spent its extra time there (BENCHMARKS.md).
#[derive(diesel::deserialize::FromSqlRow, Clone, Debug)]
pub struct DataJson(String);

impl DataJson {
    /// The kind's fields; a missing or unexpected field takes its default, as `data` is
    /// written by our validation only.
    pub fn parse<T: serde::de::DeserializeOwned + Default>(&self) -> T {
        serde_json::from_str(&self.0).unwrap_or_default()
    }
}

impl diesel::deserialize::FromSql<diesel::sql_types::Jsonb, diesel::pg::Pg> for DataJson {
    fn from_sql(value: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
        // jsonb's binary form: a format version (1), then the JSON text.
        match value.as_bytes().split_first() {
            Some((1, text)) => Ok(Self(std::str::from_utf8(text)?.to_owned())),
            _ => Err("unsupported jsonb format version".into()),
        }
    }
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = resources)]
pub struct ResourceRow {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub kind: String,
    pub name: String,
    pub data: DataJson,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Where a query looks: one kind in one workspace. `app_filter` is the application's own
/// `workspace_id` condition; row-level security applies whether or not it is on (tests
/// switch it off for one kind to prove that).
#[derive(Clone, Copy, Debug)]
pub struct Scope {
    pub workspace_id: Uuid,
    pub kind: &'static str,
    pub app_filter: bool,
}

type Boxed<'a> = resources::BoxedQuery<'a, diesel::pg::Pg>;

fn scoped<'a>(scope: Scope) -> Boxed<'a> {
    let query = resources::table
        .filter(resources::kind.eq(scope.kind))
        .into_boxed();
    if scope.app_filter {
        query.filter(resources::workspace_id.eq(scope.workspace_id))
    } else {
        query
    }
}

pub async fn insert(
    conn: &mut AsyncPgConnection,
    scope: Scope,
    name: &str,
    data: &serde_json::Value,
    created_by: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<ResourceRow> {
    diesel::insert_into(resources::table)
        .values((
            resources::id.eq(Uuid::now_v7()),
            resources::workspace_id.eq(scope.workspace_id),
            resources::kind.eq(scope.kind),
            resources::name.eq(name),
            resources::data.eq(data),
            resources::created_by.eq(created_by),
            resources::created_at.eq(now),
            resources::updated_at.eq(now),
        ))
        .returning(ResourceRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn find_for_update(
    conn: &mut AsyncPgConnection,
    scope: Scope,
    id: Uuid,
) -> QueryResult<Option<ResourceRow>> {
    let query = resources::table
        .filter(resources::kind.eq(scope.kind))
        .filter(resources::id.eq(id))
        .select(ResourceRow::as_select())
        .for_update();
    if scope.app_filter {
        query
            .filter(resources::workspace_id.eq(scope.workspace_id))
            .first(conn)
            .await
            .optional()
    } else {
        query.first(conn).await.optional()
    }
}

pub async fn update(
    conn: &mut AsyncPgConnection,
    row: &ResourceRow,
    name: &str,
    data: &serde_json::Value,
    now: DateTime<Utc>,
) -> QueryResult<ResourceRow> {
    diesel::update(resources::table.find((row.workspace_id, row.id)))
        .set((
            resources::name.eq(name),
            resources::data.eq(data),
            resources::updated_at.eq(now),
        ))
        .returning(ResourceRow::as_returning())
        .get_result(conn)
        .await
}

/// Deletes a resource (see [`detach`] for the fields that named it).
pub async fn delete(conn: &mut AsyncPgConnection, row: &ResourceRow) -> QueryResult<()> {
    diesel::delete(resources::table.find((row.workspace_id, row.id)))
        .execute(conn)
        .await
        .map(drop)
}

/// Takes the deleted `row` out of `reference` in the workspace's resources of kind `from`:
/// the field goes when it held the one id, the id leaves the list when it was a list. One
/// statement, whatever the number of resources that named it.
pub async fn detach(
    conn: &mut AsyncPgConnection,
    row: &ResourceRow,
    from: &str,
    reference: crate::resources::Reference,
) -> QueryResult<()> {
    let sql = if reference.many {
        "UPDATE resources SET data = jsonb_set(data, ARRAY[$3], (data -> $3) - $4)
         WHERE workspace_id = $1 AND kind = $2 AND data -> $3 ? $4"
    } else {
        "UPDATE resources SET data = data - $3
         WHERE workspace_id = $1 AND kind = $2 AND data ->> $3 = $4"
    };
    let binds = (
        bind::<diesel::sql_types::Uuid, _>(row.workspace_id),
        bind::<diesel::sql_types::Text, _>(from.to_owned()),
        bind::<diesel::sql_types::Text, _>(reference.field.to_owned()),
        bind::<diesel::sql_types::Text, _>(row.id.to_string()),
    );
    static_sql(sql, binds).execute(conn).await.map(drop)
}

/// One page in `(created_at, id)` order, with one extra row when more follow; each row
/// carries the size of the whole list (see [`split_total`](crate::db::page::split_total)).
pub async fn page(
    conn: &mut AsyncPgConnection,
    scope: Scope,
    page: &Page,
) -> QueryResult<Vec<((ResourceRow, Option<UserRow>), Option<i64>)>> {
    let mut query = resources::table
        .left_join(users::table.on(resources::created_by.eq(users::id.nullable())))
        .filter(resources::kind.eq(scope.kind))
        .select((
            ResourceRow::as_select(),
            Option::<UserRow>::as_select(),
            scoped(scope).count().single_value(),
        ))
        .order((resources::created_at.asc(), resources::id.asc()))
        .limit(page.limit())
        .into_boxed();
    if scope.app_filter {
        query = query.filter(resources::workspace_id.eq(scope.workspace_id));
    }
    if let Some(after) = page.after {
        query = query.filter(
            resources::created_at.gt(after.at).or(resources::created_at
                .eq(after.at)
                .and(resources::id.gt(after.id))),
        );
    }
    let rows: Vec<(ResourceRow, Option<UserRow>, Option<i64>)> = query.load(conn).await?;
    Ok(rows
        .into_iter()
        .map(|(row, user, total)| ((row, user), total))
        .collect())
}

pub async fn count(conn: &mut AsyncPgConnection, scope: Scope) -> QueryResult<i64> {
    scoped(scope).count().get_result(conn).await
}

/// The workspace's resources (of any kind) with these ids.
pub async fn with_ids(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    ids: &[Uuid],
) -> QueryResult<Vec<ResourceRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    resources::table
        .filter(resources::workspace_id.eq(workspace_id))
        .filter(resources::id.eq_any(ids))
        .select(ResourceRow::as_select())
        .load(conn)
        .await
}

/// Which of `ids` name a resource of the scope's kind.
pub async fn existing(
    conn: &mut AsyncPgConnection,
    scope: Scope,
    ids: &[Uuid],
) -> QueryResult<Vec<Uuid>> {
    scoped(scope)
        .filter(resources::id.eq_any(ids))
        .select(resources::id)
        .load(conn)
        .await
}
