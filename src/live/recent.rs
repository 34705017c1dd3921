//! A workspace's latest events as this server last read them, shared by its subscribers on
//! this server ([`Recent`]). A change that wakes ten subscribers of one workspace costs one
//! read of the log: the first subscriber to ask reads, while the others wait for it, and
//! all of them take the rows from memory. A subscriber behind what is kept (a cursor from
//! earlier, a slow client) reads the log itself, as every subscriber did before.

use std::collections::VecDeque;
use std::sync::Arc;

use super::model::{self, Position, StreamRow};
use super::Hub;
use crate::db::Db;
use crate::error::ApiResult;

/// Events read per statement, and the most a subscriber takes at once.
pub const BATCH: i64 = 100;
/// Events kept per workspace: one batch, so a workspace costs at most a batch of memory
/// on a server, however many subscribe to it.
const KEPT: usize = BATCH as usize;

/// See the module's documentation. One per workspace with subscribers on this server
/// (src/live/mod.rs keeps it beside the workspace's wake-ups).
#[derive(Default)]
pub struct Recent(tokio::sync::Mutex<Window>);

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
        let mut window = self.0.lock().await;
        if !window.covers(position.seq) {
            drop(window);
            crate::metrics::log_read("own");
            return Ok(read(db, hub, position)
                .await?
                .into_iter()
                .map(Arc::new)
                .collect());
        }
        if window.stale(position.seq, wake) {
            let from = Position {
                seq: window.head.unwrap_or(position.seq),
                ..position
            };
            crate::metrics::log_read("shared");
            let rows = read(db, hub, from).await?;
            window.take(from.seq, rows, wake);
        }
        Ok(window.after(position.seq))
    }
}

impl Window {
    /// Whether what is kept reaches back to `seq` (or nothing was read yet).
    fn covers(&self, seq: i64) -> bool {
        match (self.head, self.rows.front()) {
            (None, _) => true,
            (Some(_), Some(first)) => seq >= first.seq - 1,
            (Some(head), None) => seq >= head,
        }
    }

    /// Whether a subscriber at `seq` that has seen `wake` wake-ups needs a newer read.
    fn stale(&self, seq: i64, wake: u64) -> bool {
        match self.head {
            None => true,
            Some(head) => self.read_at_wake < wake || (seq >= head && !self.complete),
        }
    }

    fn take(&mut self, from: i64, rows: Vec<StreamRow>, wake: u64) {
        self.complete = rows.len() < KEPT;
        self.head = Some(rows.last().map_or(from, |row| row.seq));
        self.read_at_wake = self.read_at_wake.max(wake);
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
        }
    }

    #[test]
    fn the_window_serves_what_it_read_and_asks_again_when_woken_or_cut_short() {
        let mut window = Window::default();
        assert!(window.covers(7) && window.stale(7, 0), "nothing read yet");
        window.take(7, (8..=10).map(row).collect(), 1);
        assert!(!window.stale(7, 1), "read at this wake-up, to the end");
        assert!(window.stale(7, 2), "a later wake-up");
        let seqs = |rows: Vec<Arc<StreamRow>>| rows.iter().map(|r| r.seq).collect::<Vec<_>>();
        assert_eq!(seqs(window.after(8)), vec![9, 10]);
        assert!(!window.covers(6), "behind what is kept");

        // A full batch may have left events behind it: a subscriber at its end reads again.
        window.take(10, (11..=10 + BATCH).map(row).collect(), 2);
        assert_eq!(window.rows.len(), KEPT, "at most a batch is kept");
        assert!(!window.covers(9));
        assert!(window.stale(10 + BATCH, 2) && !window.stale(10 + BATCH - 1, 2));
    }
}
