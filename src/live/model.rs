//! The stream's SQL: a workspace's audit events and conversation events in stream order
//! (`seq`, migrations 000069 and 000074), and the cursor that marks a subscriber's place in
//! it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Bool, Nullable, Timestamptz, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::audit::model::AuditRow;
use crate::db::{bind, static_sql};
use crate::error::{ApiError, ApiResult};

/// A place in a workspace's stream: after its event number `seq` (0: before the first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub workspace_id: Uuid,
    pub seq: i64,
}

impl Position {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}.{}", self.workspace_id, self.seq))
    }

    /// A cursor of `workspace_id`'s stream; a cursor of another's is bad input.
    pub fn decode(raw: &str, workspace_id: Uuid) -> ApiResult<Position> {
        let invalid = || ApiError::bad_input("`after` is not a cursor of this workspace's stream.");
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (workspace, seq) = text.split_once('.').ok_or_else(invalid)?;
        let seq = seq.parse::<i64>().ok().filter(|seq| *seq >= 0);
        match (Uuid::parse_str(workspace), seq) {
            (Ok(found), Some(seq)) if found == workspace_id => Ok(Position { workspace_id, seq }),
            _ => Err(invalid()),
        }
    }
}

/// One event read from the stream.
#[derive(QueryableByName)]
pub struct StreamRow {
    /// A conversation event in the audit log's shape: the service acted, on a
    /// `conversation`, with no request or address.
    #[diesel(embed)]
    pub event: AuditRow,
    #[diesel(sql_type = BigInt)]
    pub seq: i64,
    /// Whether the audit log holds it (a conversation event is in the stream only).
    #[diesel(sql_type = Bool)]
    pub audited: bool,
}

/// Up to `limit` events of the connection's workspace after `after`, in stream order. Runs
/// inside the workspace (`Db::conn_in`): row-level security holds on the read.
pub async fn after(
    conn: &mut AsyncPgConnection,
    after: Position,
    limit: i64,
) -> diesel::QueryResult<Vec<StreamRow>> {
    static_sql(
        "SELECT id, at, actor_kind, actor_id, action, target_kind, target_id, changes, \
                request_id, client, seq, true AS audited \
         FROM audit_events \
         WHERE workspace_id = $1 AND seq IS NOT NULL AND seq > $2 \
         UNION ALL \
         SELECT id, at, 'service', NULL, action, 'conversation', conversation_id::text, \
                changes, NULL, NULL, seq, false \
         FROM conversation_events \
         WHERE workspace_id = $1 AND seq > $2 \
         ORDER BY seq LIMIT $3",
        (
            bind::<SqlUuid, _>(after.workspace_id),
            bind::<BigInt, _>(after.seq),
            bind::<BigInt, _>(limit),
        ),
    )
    .load(conn)
    .await
}

/// How far back a cursor may resume: a client away longer refetches. It also bounds what a
/// member can replay of events from before they could see them live.
pub const REPLAY_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);

#[derive(QueryableByName)]
struct Bounds {
    /// The last number given.
    #[diesel(sql_type = BigInt)]
    latest: i64,
    /// When the event after the cursor was written, if the log holds it.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    next_at: Option<DateTime<Utc>>,
}

async fn bounds(conn: &mut AsyncPgConnection, at: Position) -> diesel::QueryResult<Bounds> {
    static_sql(
        "SELECT coalesce((SELECT seq FROM workspace_event_seqs WHERE workspace_id = $1), 0) \
                  AS latest, \
                coalesce((SELECT at FROM audit_events WHERE workspace_id = $1 AND seq = $2 + 1), \
                         (SELECT at FROM conversation_events \
                          WHERE workspace_id = $1 AND seq = $2 + 1)) \
                  AS next_at",
        (
            bind::<SqlUuid, _>(at.workspace_id),
            bind::<BigInt, _>(at.seq),
        ),
    )
    .get_result(conn)
    .await
}

/// Where the stream is now: a subscriber starting here gets every event committed after.
pub async fn now(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
) -> diesel::QueryResult<Position> {
    let nowhere = Position {
        workspace_id,
        seq: -1,
    };
    Ok(Position {
        workspace_id,
        seq: bounds(conn, nowhere).await?.latest,
    })
}

#[derive(QueryableByName)]
struct Head {
    #[diesel(sql_type = SqlUuid)]
    workspace_id: Uuid,
    #[diesel(sql_type = BigInt)]
    seq: i64,
}

/// The last number of each of `workspace_ids`' streams that has one, across workspaces
/// (migration 000072's function: the listening connection has no workspace of its own).
pub async fn heads(
    conn: &mut AsyncPgConnection,
    workspace_ids: &[Uuid],
) -> diesel::QueryResult<Vec<(Uuid, i64)>> {
    let heads: Vec<Head> = static_sql(
        "SELECT workspace_id, seq FROM workspace_event_heads($1)",
        (bind::<diesel::sql_types::Array<SqlUuid>, _>(workspace_ids),),
    )
    .load(conn)
    .await?;
    Ok(heads.into_iter().map(|h| (h.workspace_id, h.seq)).collect())
}

/// What a cursor is worth now.
#[derive(Debug, PartialEq, Eq)]
pub enum Resume {
    /// Every event after it is still in the log.
    Whole,
    /// The log no longer holds the event after it (the audit retention, or the
    /// conversation events' two days, pruned it), or that event is older than
    /// [`REPLAY_WINDOW`].
    Expired,
    /// It is ahead of the stream: no cursor this stream gave.
    Unknown,
}

/// Whether the log still holds every event after `at`, none older than the window.
pub async fn resume(
    conn: &mut AsyncPgConnection,
    at: Position,
    now: DateTime<Utc>,
) -> diesel::QueryResult<Resume> {
    let bounds = bounds(conn, at).await?;
    Ok(judge(at.seq, &bounds, now))
}

fn judge(seq: i64, bounds: &Bounds, now: DateTime<Utc>) -> Resume {
    if seq > bounds.latest {
        return Resume::Unknown;
    }
    if seq == bounds.latest {
        return Resume::Whole;
    }
    // Numbers have no gaps, and each table is pruned from its oldest, the audit log after a
    // year, conversation events after two days. So when the next event is held and
    // younger than the window, so is every later one (committed later, written at most a
    // transaction's length earlier), far from either pruning: the log holds them all.
    match bounds.next_at {
        Some(at) if at >= now - REPLAY_WINDOW => Resume::Whole,
        _ => Resume::Expired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_for_its_workspace_only() {
        let at = Position {
            workspace_id: Uuid::now_v7(),
            seq: 744,
        };
        assert_eq!(
            Position::decode(&at.encode(), at.workspace_id).expect("reads back"),
            at
        );
        assert!(
            Position::decode(&at.encode(), Uuid::now_v7()).is_err(),
            "another's"
        );
        let forged = |text: &str| URL_SAFE_NO_PAD.encode(text);
        for raw in [
            String::new(),
            "bm9wZQ".into(),
            forged(&format!("{}.-1", at.workspace_id)),
            forged(&format!("{}.x", at.workspace_id)),
            forged("x.1"),
        ] {
            assert!(Position::decode(&raw, at.workspace_id).is_err(), "{raw}");
        }
    }

    #[test]
    fn a_cursor_resumes_while_the_log_holds_what_follows_it() {
        let now = Utc::now();
        let at = |hours| Some(now - chrono::TimeDelta::hours(hours));
        let held = |latest, next_at| Bounds { latest, next_at };
        let judge = |seq, bounds: &Bounds| judge(seq, bounds, now);
        assert_eq!(judge(0, &held(0, None)), Resume::Whole, "no events yet");
        assert_eq!(judge(5, &held(9, at(1))), Resume::Whole);
        assert_eq!(judge(0, &held(9, at(1))), Resume::Whole, "from the start");
        assert_eq!(
            judge(9, &held(9, None)),
            Resume::Whole,
            "at the head, whatever was pruned"
        );
        assert_eq!(judge(2, &held(9, None)), Resume::Expired, "3 was pruned");
        assert_eq!(judge(10, &held(9, at(1))), Resume::Unknown);
        assert_eq!(
            judge(4, &held(9, at(25))),
            Resume::Expired,
            "older than the window"
        );
    }
}
