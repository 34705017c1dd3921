//! Rows and queries for usage events and counters.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::billing::plans::CountLimit;
use crate::db::{bind, static_sql};
use crate::schema::{usage_counters, usage_events};

/// Records a report; false when its key was seen before in the workspace.
pub async fn insert_event(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    key: &str,
    metric: &str,
    quantity: i32,
    period_start: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::insert_into(usage_events::table)
        .values((
            usage_events::workspace_id.eq(workspace_id),
            usage_events::idempotency_key.eq(key),
            usage_events::metric.eq(metric),
            usage_events::quantity.eq(quantity),
            usage_events::period_start.eq(period_start),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await
        .map(|n| n == 1)
}

/// The metric and quantity an earlier report with `key` had.
pub async fn find_event(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    key: &str,
) -> QueryResult<Option<(String, i32)>> {
    usage_events::table
        .find((workspace_id, key))
        .select((usage_events::metric, usage_events::quantity))
        .first(conn)
        .await
        .optional()
}

#[derive(QueryableByName)]
struct Counter {
    #[diesel(sql_type = Text)]
    metric: String,
    #[diesel(sql_type = BigInt)]
    total: i64,
}

/// Adds each `(metric, quantity, limit)` to the period's counter if its result stays within
/// its limit, in one statement (`add_usage`, migration 000061, which takes counters in
/// metric order, so concurrent writers lock them in the same order); the new totals of
/// those that stayed within, by metric.
pub async fn add_within_limits(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    period_start: DateTime<Utc>,
    counts: &[(&str, i32, i32)],
) -> QueryResult<Vec<(String, i64)>> {
    let metrics: Vec<&str> = counts.iter().map(|c| c.0).collect();
    let quantities: Vec<i32> = counts.iter().map(|c| c.1).collect();
    let limits: Vec<i32> = counts.iter().map(|c| c.2).collect();
    let rows: Vec<Counter> = static_sql(
        "SELECT metric, total FROM add_usage($1, $2, $3, $4, $5)",
        (
            bind::<SqlUuid, _>(workspace_id),
            bind::<Timestamptz, _>(period_start),
            bind::<Array<Text>, _>(metrics),
            bind::<Array<Integer>, _>(quantities),
            bind::<Array<Integer>, _>(limits),
        ),
    )
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.metric, row.total))
        .collect())
}

/// `(messages, sms)` counted in the period.
pub async fn totals(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    period_start: DateTime<Utc>,
) -> QueryResult<(i64, i64)> {
    let rows: Vec<(String, i64)> = usage_counters::table
        .filter(usage_counters::workspace_id.eq(workspace_id))
        .filter(usage_counters::period_start.eq(period_start))
        .select((usage_counters::metric, usage_counters::total))
        .load(conn)
        .await?;
    let of = |metric: &str| {
        rows.iter()
            .find(|(m, _)| m == metric)
            .map_or(0, |(_, t)| *t)
    };
    Ok((of("messages"), of("sms")))
}

#[derive(QueryableByName)]
struct InUse {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = BigInt)]
    held: i64,
}

/// How many resources of each of `limited` kinds the workspace holds now, by the limit each
/// counts against (a kind with none counts 0).
pub async fn in_use(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    limited: &[(&'static str, CountLimit)],
) -> QueryResult<Vec<(CountLimit, i64)>> {
    let kinds: Vec<&str> = limited.iter().map(|(kind, _)| *kind).collect();
    let counts: Vec<InUse> = static_sql(
        "SELECT kind, count(*) AS held FROM resources
         WHERE workspace_id = $1 AND kind = ANY($2) GROUP BY kind",
        (
            bind::<SqlUuid, _>(workspace_id),
            bind::<Array<Text>, _>(kinds),
        ),
    )
    .load(conn)
    .await?;
    Ok(limited
        .iter()
        .map(|&(kind, limit)| {
            let held = counts.iter().find(|c| c.kind == kind).map_or(0, |c| c.held);
            (limit, held)
        })
        .collect())
}
