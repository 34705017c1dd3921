//! Waking every server's subscribers of a workspace once a commit has written its events.
//!
//! Recording an audit event notes its workspace and number ([`note`], from
//! `audit::record`); a conversation's write notes its workspace only ([`note_at_commit`]:
//! its events are numbered when it commits). The work that does either, a mutation
//! (src/http.rs) or a job (src/worker.rs), runs in a [`scope`]: when the work is over, and
//! with it every transaction it opened, the scope hands what was noted to this process's
//! [`Publisher`], which publishes `<workspace>:<number>` on the installation's [`channel`]
//! in the background, never holding up an answer. Every server subscribes to the channel
//! (`Hub::listen`, src/live/mod.rs).
//!
//! A wake is only a hint: subscribers read the events from the log themselves, and nothing
//! relies on what a wake says. One may come too early: a transaction that rolled back (its
//! number is given again), or a request abandoned while its commit was on the way. One may
//! never come: a crash after the commit, Redis away, a change written outside a scope (a
//! scheduled round, a script). Each server's poll of the streams' heads, once a second,
//! wakes the subscribers of every workspace whose head moved since the last poll, so what
//! any of those wakes failed to announce arrives within about a second.
//!
//! Why not NOTIFY, which is transactional: PostgreSQL serialises the commits of all
//! transactions that notified, through their WAL flush, and that capped audited writes at
//! about 3,300 a second per database (migration 000072 says more).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use uuid::Uuid;

use super::lock;

/// The Redis channel of an installation whose job queue is `jobs_queue` (`JOBS_QUEUE`):
/// installations sharing a Redis keep apart by that prefix, and Redis' pub/sub ignores its
/// database numbers.
pub fn channel(jobs_queue: &str) -> String {
    format!("{jobs_queue}:wakes")
}
/// Wakes waiting for Redis in one process; past it they are dropped (the poll finds them).
const QUEUED: usize = 16_384;
/// Wakes sent in one round trip.
const BATCH: usize = 256;
/// How long a connection or a round trip to Redis may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// After Redis failed, wakes are dropped without trying for this long: a queue of retries
/// would only deliver them after the poll has.
const RETRY_AFTER: Duration = Duration::from_secs(1);

tokio::task_local! {
    static NOTED: Noted;
}

/// Each workspace's highest event number recorded in the scope.
#[derive(Clone, Default)]
struct Noted(Arc<Mutex<HashMap<Uuid, i64>>>);

/// The number a wake carries for events numbered at their commit (conversation events,
/// migration 000074), which their writer cannot know: numbers start at 1.
pub const AT_COMMIT: i64 = 0;

/// Notes that `workspace_id`'s stream takes events when the work's transaction commits
/// (conversation events: [`AT_COMMIT`]).
pub fn note_at_commit(workspace_id: Uuid) {
    note(workspace_id, AT_COMMIT);
}

/// Notes that event `seq` of `workspace_id`'s stream was written; outside a [`scope`] it is
/// left to the poll. The wake keeps the highest number, unless the work also wrote events
/// numbered at its commit: those come after every number it saw, so it says [`AT_COMMIT`].
pub fn note(workspace_id: Uuid, seq: i64) {
    let _ = NOTED.try_with(|noted| {
        let mut noted = lock(&noted.0);
        let highest = noted.entry(workspace_id).or_insert(seq);
        *highest = if seq == AT_COMMIT || *highest == AT_COMMIT {
            AT_COMMIT
        } else {
            (*highest).max(seq)
        };
    });
}

/// Runs `work`, then publishes what it noted: when it ends, or when it is dropped (a client
/// that hung up), since a transaction may have committed before. Inside another scope,
/// the outer one publishes, once its own work is over.
pub async fn scope<F: Future>(publisher: &Publisher, work: F) -> F::Output {
    if NOTED.try_with(|_| ()).is_ok() {
        return work.await;
    }
    let noted = Noted::default();
    let _publish = PublishOnDrop {
        publisher: publisher.clone(),
        noted: noted.clone(),
    };
    NOTED.scope(noted, work).await
}

struct PublishOnDrop {
    publisher: Publisher,
    noted: Noted,
}

impl Drop for PublishOnDrop {
    fn drop(&mut self) {
        for wake in std::mem::take(&mut *lock(&self.noted.0)) {
            self.publisher.send(wake);
        }
    }
}

/// Hands wakes to a task that publishes them on Redis, in batches. One per process
/// (`App::connect`).
#[derive(Clone)]
pub struct Publisher {
    queue: mpsc::Sender<(Uuid, i64)>,
    channel: Arc<str>,
}

impl Publisher {
    /// Starts the publishing task, which ends with the last clone of the publisher.
    pub fn start(redis_url: String, channel: String) -> Publisher {
        let (sender, queue) = mpsc::channel(QUEUED);
        let channel: Arc<str> = channel.into();
        tokio::spawn(publish(redis_url, Arc::clone(&channel), queue));
        Publisher {
            queue: sender,
            channel,
        }
    }

    /// The channel it publishes on.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    fn send(&self, wake: (Uuid, i64)) {
        if self.queue.try_send(wake).is_err() {
            crate::metrics::wakes_published("dropped", 1);
        }
    }
}

async fn publish(url: String, channel: Arc<str>, mut queue: mpsc::Receiver<(Uuid, i64)>) {
    let mut connection = None;
    let mut failed_at: Option<Instant> = None;
    let mut batch = Vec::with_capacity(BATCH);
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        let count = batch.len() as u64;
        let resting = failed_at.is_some_and(|at| at.elapsed() < RETRY_AFTER);
        let sent = if resting {
            Err("Redis failed a moment ago".to_owned())
        } else {
            publish_batch(&url, &channel, &mut connection, &batch).await
        };
        match sent {
            Ok(()) => {
                if failed_at.take().is_some() {
                    tracing::info!("wakes are published again");
                }
                crate::metrics::wakes_published("published", count);
            }
            Err(err) => {
                if failed_at.is_none() {
                    tracing::warn!(%err, "wakes could not be published; servers will poll for them");
                }
                failed_at = failed_at.filter(|_| resting).or(Some(Instant::now()));
                connection = None;
                crate::metrics::wakes_published("failed", count);
            }
        }
        batch.clear();
    }
}

async fn publish_batch(
    url: &str,
    channel: &str,
    connection: &mut Option<redis::aio::MultiplexedConnection>,
    batch: &[(Uuid, i64)],
) -> Result<(), String> {
    let sent = tokio::time::timeout(REDIS_TIMEOUT, async {
        if connection.is_none() {
            let client = redis::Client::open(url)?;
            *connection = Some(client.get_multiplexed_async_connection().await?);
        }
        let mut pipe = redis::pipe();
        for (workspace_id, seq) in batch {
            pipe.cmd("PUBLISH")
                .arg(channel)
                .arg(format!("{workspace_id}:{seq}"))
                .ignore();
        }
        let connection = connection.as_mut().expect("connected above");
        pipe.query_async::<()>(connection).await
    })
    .await;
    match sent {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("Redis did not answer in time".into()),
    }
}

/// A published wake: the workspace and the event number it announces.
pub fn parse(payload: &[u8]) -> Option<(Uuid, i64)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (workspace, seq) = text.split_once(':')?;
    Some((workspace.parse().ok()?, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publisher() -> (Publisher, mpsc::Receiver<(Uuid, i64)>) {
        let (sender, queue) = mpsc::channel(8);
        let publisher = Publisher {
            queue: sender,
            channel: "test:wakes".into(),
        };
        (publisher, queue)
    }

    #[tokio::test]
    async fn a_scope_hands_over_each_workspace_once_with_its_highest_number() {
        let (publisher, mut queue) = publisher();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        scope(&publisher, async {
            note(a, 3);
            // An inner scope (a helper that opens its own) leaves publishing to the outer.
            scope(&publisher, async { note(b, 1) }).await;
            assert!(
                queue.try_recv().is_err(),
                "not before the outer work is over"
            );
            note(a, 5);
            note(a, 4);
        })
        .await;
        let mut sent = Vec::new();
        queue.recv_many(&mut sent, 8).await;
        sent.sort_by_key(|(_, seq)| *seq);
        assert_eq!(sent, vec![(b, 1), (a, 5)]);
        note(a, 6);
        assert!(queue.try_recv().is_err(), "outside a scope nothing is sent");
    }

    #[tokio::test]
    async fn events_numbered_at_commit_make_the_wake_say_so_whatever_came_before() {
        let (publisher, mut queue) = publisher();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        scope(&publisher, async {
            note(a, 5);
            note_at_commit(a);
            note(a, 6);
            note(b, 2);
        })
        .await;
        let mut sent = Vec::new();
        queue.recv_many(&mut sent, 8).await;
        sent.sort_by_key(|(_, seq)| *seq);
        assert_eq!(sent, vec![(a, AT_COMMIT), (b, 2)]);
    }

    #[tokio::test]
    async fn an_abandoned_scope_still_hands_over_what_it_noted() {
        let (publisher, mut queue) = publisher();
        let a = Uuid::now_v7();
        let work = scope(&publisher, async {
            note(a, 7);
            std::future::pending::<()>().await;
        });
        let abandoned = tokio::time::timeout(Duration::from_millis(10), work).await;
        assert!(abandoned.is_err());
        assert_eq!(queue.try_recv().ok(), Some((a, 7)));
    }

    #[test]
    fn only_a_workspace_and_a_number_is_a_wake() {
        let a = Uuid::now_v7();
        assert_eq!(parse(format!("{a}:12").as_bytes()), Some((a, 12)));
        assert_eq!(parse(a.to_string().as_bytes()), None);
        assert_eq!(parse(format!("{a}:x").as_bytes()), None);
        assert_eq!(parse(b"\xff:1"), None);
    }
}
