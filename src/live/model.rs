//! The stream's SQL: a workspace's audit events in stream order (`seq`, migration 000069),
//! and the cursor that marks a subscriber's place in it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Nullable, Timestamptz, Uuid as SqlUuid};
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
    #[diesel(embed)]
    pub event: AuditRow,
    #[diesel(sql_type = BigInt)]
    pub seq: i64,
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
                request_id, client, seq \
         FROM audit_events \
         WHERE workspace_id = $1 AND seq IS NOT NULL AND seq > $2 \
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
    /// The oldest event the log still holds.
    #[diesel(sql_type = Nullable<BigInt>)]
    oldest: Option<i64>,
    /// The last number given.
    #[diesel(sql_type = BigInt)]
    latest: i64,
    /// When the event after the cursor was written, if the log holds it.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    next_at: Option<DateTime<Utc>>,
}

async fn bounds(conn: &mut AsyncPgConnection, at: Position) -> diesel::QueryResult<Bounds> {
    static_sql(
        "SELECT (SELECT min(seq) FROM audit_events WHERE workspace_id = $1 AND seq IS NOT NULL) \
                  AS oldest, \
                coalesce((SELECT seq FROM workspace_event_seqs WHERE workspace_id = $1), 0) \
                  AS latest, \
                (SELECT at FROM audit_events WHERE workspace_id = $1 AND seq = $2 + 1) \
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
    /// The log no longer holds some events after it (the audit retention pruned them), or
    /// they are older than [`REPLAY_WINDOW`].
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
    if bounds.next_at.is_some_and(|at| at < now - REPLAY_WINDOW) {
        return Resume::Expired;
    }
    // Numbers have no gaps, and retention prunes from the oldest: the log holds
    // `oldest..=latest`, or nothing once it is all pruned.
    let first_missing = bounds.oldest.unwrap_or(bounds.latest + 1);
    if seq + 1 >= first_missing {
        Resume::Whole
    } else {
        Resume::Expired
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
        let recent = Some(now - chrono::TimeDelta::hours(1));
        let held = |oldest, latest| Bounds {
            oldest,
            latest,
            next_at: recent,
        };
        let judge = |seq, bounds: &Bounds| judge(seq, bounds, now);
        assert_eq!(judge(0, &held(None, 0)), Resume::Whole, "no events yet");
        assert_eq!(judge(5, &held(Some(1), 9)), Resume::Whole);
        assert_eq!(judge(0, &held(Some(1), 9)), Resume::Whole, "from the start");
        assert_eq!(
            judge(3, &held(Some(4), 9)),
            Resume::Whole,
            "just before the oldest"
        );
        assert_eq!(judge(2, &held(Some(4), 9)), Resume::Expired, "3 was pruned");
        assert_eq!(
            judge(9, &held(None, 9)),
            Resume::Whole,
            "all pruned, nothing after"
        );
        assert_eq!(judge(8, &held(None, 9)), Resume::Expired, "9 was pruned");
        assert_eq!(judge(10, &held(Some(1), 9)), Resume::Unknown);
        let old = Bounds {
            next_at: Some(now - REPLAY_WINDOW - chrono::TimeDelta::minutes(1)),
            ..held(Some(1), 9)
        };
        assert_eq!(judge(4, &old), Resume::Expired, "older than the window");
    }
}
