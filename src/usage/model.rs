//! Rows and queries for usage events and counters.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text, Timestamptz, Uuid as SqlUuid};
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
struct Total {
    #[diesel(sql_type = BigInt)]
    total: i64,
}

/// Adds `quantity` to the period's counter if the result stays within `limit`; the new
/// total, or `None` when it would not.
pub async fn add_within_limit(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    period_start: DateTime<Utc>,
    metric: &str,
    quantity: i32,
    limit: i32,
) -> QueryResult<Option<i64>> {
    let total: Option<Total> = static_sql(
        "INSERT INTO usage_counters (workspace_id, period_start, metric, total)
         SELECT $1, $2, $3, $4 WHERE $4 <= $5
         ON CONFLICT (workspace_id, period_start, metric)
         DO UPDATE SET total = usage_counters.total + excluded.total
            WHERE usage_counters.total + excluded.total <= $5
         RETURNING total",
        (
            bind::<SqlUuid, _>(workspace_id),
            bind::<Timestamptz, _>(period_start),
            bind::<Text, _>(metric),
            bind::<Integer, _>(quantity),
            bind::<Integer, _>(limit),
        ),
    )
    .get_result(conn)
    .await
    .optional()?;
    Ok(total.map(|t| t.total))
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
            bind::<diesel::sql_types::Array<Text>, _>(kinds),
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
