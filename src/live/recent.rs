//! A workspace's latest events as this server last read them, shared by its subscribers on
//! this server ([`Recent`]). A change that wakes ten subscribers of one workspace costs one
//! read of the log: the first subscriber at the end of what is kept reads, the others
//! wait for that read, and all of them take the rows from memory. A subscriber behind what
//! is kept (a cursor from earlier, a slow client) reads the log itself.
//!
//! A read may hold the window's read lock while it waits for its turn and its connection:
//! each subscription runs in a task of its own, polled whether or not its client takes
//! messages (src/http/socket.rs, `resolved_apart`), so it lets them go when it is done.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::model::{self, Position, StreamRow};
use super::{lock, Hub};
use crate::db::Db;
use crate::error::{ApiError, ApiResult};

/// Events read per statement, and the most a subscriber takes at once.
pub const BATCH: i64 = 100;
/// Events kept per workspace: one batch, so a workspace costs at most a batch of memory
/// on a server, however many subscribe to it.
const KEPT: usize = BATCH as usize;

/// See the module's documentation. One per workspace with subscribers on this server
/// (src/live/mod.rs keeps it beside the workspace's wake-ups).
#[derive(Default)]
pub struct Recent {
    window: Mutex<Window>,
    /// Held by the one task reading for the window.
    reading: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Window {
    /// Consecutive events of the stream, oldest first, at most [`KEPT`].
    rows: VecDeque<Arc<StreamRow>>,
    /// The last number read; `None` before the first read.
    head: Option<i64>,
    /// The wake-up count seen before the last read began: every event a wake-up up to it
    /// announced had committed, so that read saw it.
    read_at_wake: u64,
    /// The last read found less than a batch: nothing committed before it was left unread.
    complete: bool,
    /// When the last read failed: the reads queued behind it fail too, at once.
    failed_at: Option<Instant>,
}

/// What a subscriber finds in the window.
enum Found {
    /// Rows after its position (or none, as of its last wake-up).
    Rows(Vec<Arc<StreamRow>>),
    /// It is at the end of what was read, and there may be more.
    Stale,
    /// It is behind what is kept.
    Behind,
}

impl Recent {
    /// Up to [`BATCH`] events after `position` for a subscriber that has seen `wake`
    /// wake-ups of the workspace: from memory when what is kept is as new as that, after
    /// one read for everyone if not.
    pub async fn after(
        &self,
        db: &Db,
        hub: &Hub,
        position: Position,
        wake: u64,
    ) -> ApiResult<Vec<Arc<StreamRow>>> {
        let asked = Instant::now();
        for _ in 0..2 {
            match self.find(position.seq, wake) {
                Found::Rows(rows) => return Ok(rows),
                Found::Behind => break,
                Found::Stale => self.refresh(db, hub, position, wake, asked).await?,
            }
        }
        crate::metrics::log_read("own");
        let rows = read(db, hub, position).await?;
        Ok(rows.into_iter().map(Arc::new).collect())
    }

    /// The last event number read into the window, if any was.
    pub fn head(&self) -> Option<i64> {
        lock(&self.window).head
    }

    /// As if a read had reached event `seq` (for the hub's tests).
    #[cfg(test)]
    pub(super) fn read_through(&self, seq: i64) {
        lock(&self.window).head = Some(seq);
    }

    fn find(&self, seq: i64, wake: u64) -> Found {
        let window = lock(&self.window);
        match window.head {
            None => Found::Stale,
            Some(head) if seq < head => match window.rows.front() {
                Some(first) if seq >= first.seq - 1 => Found::Rows(window.after(seq)),
                _ => Found::Behind,
            },
            Some(head) if seq > head || window.read_at_wake < wake || !window.complete => {
                Found::Stale
            }
            Some(_) => Found::Rows(Vec::new()),
        }
    }

    /// Reads what follows `position` into the window, unless a read that finished while
    /// this one waited its turn already did.
    async fn refresh(
        &self,
        db: &Db,
        hub: &Hub,
        position: Position,
        wake: u64,
        asked: Instant,
    ) -> ApiResult<()> {
        let _reading = self.reading.lock().await;
        if lock(&self.window).failed_at.is_some_and(|at| at >= asked) {
            return Err(ApiError::unavailable());
        }
        if !matches!(self.find(position.seq, wake), Found::Stale) {
            return Ok(());
        }
        crate::metrics::log_read("shared");
        match read(db, hub, position).await {
            Ok(rows) => {
                lock(&self.window).take(position.seq, rows, wake);
                Ok(())
            }
            Err(err) => {
                lock(&self.window).failed_at = Some(Instant::now());
                Err(err)
            }
        }
    }
}

impl Window {
    /// Adds what was read after `from`, the reader's position: at or past the head, so
    /// nothing kept is skipped (past it, what is kept goes: a subscriber there starts over).
    fn take(&mut self, from: i64, rows: Vec<StreamRow>, wake: u64) {
        if self.head.is_none_or(|head| from != head) {
            self.rows.clear();
        }
        self.complete = rows.len() < KEPT;
        self.head = Some(rows.last().map_or(from, |row| row.seq));
        self.read_at_wake = self.read_at_wake.max(wake);
        self.failed_at = None;
        self.rows.extend(rows.into_iter().map(Arc::new));
        let over = self.rows.len().saturating_sub(KEPT);
        self.rows.drain(..over);
    }

    fn after(&self, seq: i64) -> Vec<Arc<StreamRow>> {
        self.rows
            .iter()
            .filter(|row| row.seq > seq)
            .take(KEPT)
            .cloned()
            .collect()
    }
}

/// One batch of the log after `position`, inside the workspace (row-level security holds),
/// a few readers at a time on this server.
async fn read(db: &Db, hub: &Hub, position: Position) -> ApiResult<Vec<StreamRow>> {
    let _turn = hub.read_turn().await;
    let mut conn = db.conn_in(position.workspace_id).await?;
    Ok(model::after(&mut conn, position, BATCH).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64) -> StreamRow {
        StreamRow {
            event: crate::audit::model::AuditRow {
                id: uuid::Uuid::now_v7(),
                at: chrono::Utc::now(),
                actor_kind: "system".into(),
                actor_id: None,
                action: "workspace.renamed".into(),
                target_kind: "workspace".into(),
                target_id: String::new(),
                changes: serde_json::Value::Null,
                request_id: None,
                client: None,
            },
            seq,
            audited: true,
        }
    }

    fn seqs(found: Found) -> Option<Vec<i64>> {
        match found {
            Found::Rows(rows) => Some(rows.iter().map(|row| row.seq).collect()),
            Found::Stale | Found::Behind => None,
        }
    }

    fn recent() -> Recent {
        Recent::default()
    }

    #[test]
    fn a_subscriber_inside_the_window_takes_its_rows_and_one_at_its_end_reads_again() {
        let recent = recent();
        assert!(
            matches!(recent.find(7, 0), Found::Stale),
            "nothing read yet"
        );
        lock(&recent.window).take(7, (8..=10).map(row).collect(), 1);
        assert_eq!(seqs(recent.find(8, 1)), Some(vec![9, 10]));
        assert_eq!(
            seqs(recent.find(10, 1)),
            Some(vec![]),
            "at the end, up to date"
        );
        assert!(
            matches!(recent.find(10, 2), Found::Stale),
            "a later wake-up"
        );
        assert_eq!(
            seqs(recent.find(8, 2)),
            Some(vec![9, 10]),
            "inside the window, what is kept is served before anything newer is read"
        );
        assert!(matches!(recent.find(6, 1), Found::Behind));
        assert!(
            matches!(recent.find(12, 1), Found::Stale),
            "ahead of the window"
        );
    }

    #[test]
    fn nothing_kept_is_skipped_when_a_read_fills_the_window() {
        let recent = recent();
        lock(&recent.window).take(0, (1..=BATCH).map(row).collect(), 1);
        assert!(
            matches!(recent.find(BATCH, 1), Found::Stale),
            "a full batch may have left events behind it"
        );
        // A lagging subscriber at 50 is served from the window, not past it.
        lock(&recent.window).take(BATCH, (BATCH + 1..=2 * BATCH).map(row).collect(), 1);
        assert_eq!(
            lock(&recent.window).rows.len(),
            KEPT,
            "at most a batch is kept"
        );
        assert!(matches!(recent.find(50, 1), Found::Behind));
        // A subscriber ahead of the head starts the window over from itself.
        lock(&recent.window).take(3 * BATCH, vec![row(3 * BATCH + 1)], 2);
        assert_eq!(seqs(recent.find(3 * BATCH, 2)), Some(vec![3 * BATCH + 1]));
        assert!(matches!(recent.find(2 * BATCH, 2), Found::Behind));
    }
}
