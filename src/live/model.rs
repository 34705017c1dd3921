//! The stream's SQL: a workspace's audit events in stream order (migration 000069), and the
//! cursor that marks a subscriber's place in it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use diesel::sql_types::{BigInt, Bool, Text, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::audit::model::AuditRow;
use crate::db::{bind, static_sql};
use crate::error::{ApiError, ApiResult};

/// A place in a workspace's stream: after the event `id` of transaction `xid`. A place
/// taken when nobody had a cursor is a transaction horizon with the nil id: every event of
/// that transaction or a later one comes after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub xid: u64,
    pub id: Uuid,
}

impl Position {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}.{}", self.xid, self.id))
    }

    pub fn decode(raw: &str) -> ApiResult<Position> {
        let invalid = || ApiError::bad_input("`after` is not a cursor of this stream.");
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (xid, id) = text.split_once('.').ok_or_else(invalid)?;
        // xid8 is a 64-bit counter that PostgreSQL starts at 3; i64 keeps it bindable.
        let xid = xid
            .parse::<u64>()
            .ok()
            .filter(|xid| i64::try_from(*xid).is_ok())
            .ok_or_else(invalid)?;
        let id = Uuid::parse_str(id).map_err(|_| invalid())?;
        Ok(Position { xid, id })
    }

    fn xid_bind(&self) -> i64 {
        i64::try_from(self.xid).unwrap_or(i64::MAX)
    }
}

/// One event read from the stream.
#[derive(QueryableByName)]
pub struct StreamRow {
    #[diesel(embed)]
    pub event: AuditRow,
    #[diesel(sql_type = BigInt)]
    xid: i64,
    /// Written by a transaction younger than one still running: an older transaction may
    /// still commit an event before it, so it is not delivered yet.
    #[diesel(sql_type = Bool)]
    pub pending: bool,
}

impl StreamRow {
    pub fn position(&self) -> Position {
        Position {
            xid: u64::try_from(self.xid).unwrap_or_default(),
            id: self.event.id,
        }
    }
}

/// Up to `limit` events of the connection's workspace after `after`, in stream order. Runs
/// inside the workspace (`Db::conn_in`): row-level security holds on the read.
pub async fn after(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    after: Position,
    limit: i64,
) -> diesel::QueryResult<Vec<StreamRow>> {
    static_sql(
        "SELECT e.id, e.at, e.actor_kind, e.actor_id, e.action, e.target_kind, e.target_id, \
                e.changes, e.request_id, e.client, e.xid::text::bigint AS xid, \
                e.xid >= pg_snapshot_xmin(pg_current_snapshot()) AS pending \
         FROM audit_events e \
         WHERE e.workspace_id = $1 AND e.xid IS NOT NULL \
           AND (e.xid, e.id) > ($2::text::xid8, $3) \
         ORDER BY e.xid, e.id LIMIT $4",
        (
            bind::<SqlUuid, _>(workspace_id),
            bind::<Text, _>(after.xid_bind().to_string()),
            bind::<SqlUuid, _>(after.id),
            bind::<BigInt, _>(limit),
        ),
    )
    .load(conn)
    .await
}

#[derive(QueryableByName)]
struct Horizon {
    #[diesel(sql_type = BigInt)]
    xid: i64,
}

/// Where a subscriber without a cursor starts: the oldest transaction still running (or
/// the next one), so nothing committed from now on is missed.
pub async fn horizon(conn: &mut AsyncPgConnection) -> diesel::QueryResult<Position> {
    let horizon: Horizon = static_sql(
        "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xid",
        (),
    )
    .get_result(conn)
    .await?;
    Ok(Position {
        xid: u64::try_from(horizon.xid).unwrap_or_default(),
        id: Uuid::nil(),
    })
}

#[derive(QueryableByName)]
struct Kept {
    #[diesel(sql_type = Bool)]
    kept: bool,
}

/// Whether the stream still holds the event a cursor names: a cursor whose event was
/// pruned (retention, docs/security.md) may have lost others after it.
pub async fn holds(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    at: Position,
) -> diesel::QueryResult<bool> {
    let kept: Kept = static_sql(
        "SELECT EXISTS (SELECT 1 FROM audit_events WHERE workspace_id = $1 \
           AND xid = $2::text::xid8 AND id = $3) AS kept",
        (
            bind::<SqlUuid, _>(workspace_id),
            bind::<Text, _>(at.xid_bind().to_string()),
            bind::<SqlUuid, _>(at.id),
        ),
    )
    .get_result(conn)
    .await?;
    Ok(kept.kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_and_forgeries_are_bad_input() {
        let at = Position {
            xid: 744,
            id: Uuid::now_v7(),
        };
        assert_eq!(Position::decode(&at.encode()).expect("reads back"), at);
        for forged in [
            "",
            "bm9wZQ",
            &URL_SAFE_NO_PAD.encode("18446744073709551615.x"),
        ] {
            assert!(Position::decode(forged).is_err(), "{forged}");
        }
        let too_big = URL_SAFE_NO_PAD.encode(format!("{}.{}", u64::MAX, Uuid::nil()));
        assert!(Position::decode(&too_big).is_err());
    }
}
