//! The transactional outbox: a job is written to PostgreSQL in the same transaction as the
//! change that implies it, then a relay hands it to the Redis queue.
//!
//! The relay wakes on `NOTIFY outbox` (sent by a trigger at commit) and polls every
//! [`POLL_FALLBACK`] in case a notification is missed. A row is deleted only in the
//! transaction that pushed it, so with Redis down jobs wait in PostgreSQL; a crash between
//! push and commit pushes a job twice, which idempotent handlers absorb.

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::StreamExt as _;
use linkai_jobs::queue::MAX_SCHEDULED;
use linkai_jobs::{Job, JobQueue, Payload, WorkerSettings};
use tokio::sync::watch;

use crate::db::Db;
use crate::schema::outbox;

const BATCH: i64 = 100;
pub const POLL_FALLBACK: Duration = Duration::from_secs(1);
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// Seconds since the oldest row waiting for the relay was written (0 when none waits).
pub async fn lag(db: &Db) -> anyhow::Result<f64> {
    let mut conn = db.conn_outside_tenancy().await?;
    // By id (the primary key, in writing order): the oldest without reading the rest.
    let oldest: Option<chrono::DateTime<chrono::Utc>> = outbox::table
        .order(outbox::id)
        .select(outbox::created_at)
        .first(&mut *conn)
        .await
        .optional()?;
    let age = oldest.map_or(chrono::Duration::zero(), |at| chrono::Utc::now() - at);
    Ok(age.num_milliseconds().max(0) as f64 / 1000.0)
}

/// Records the job `payload` in the caller's transaction.
pub async fn enqueue<P: Payload>(conn: &mut AsyncPgConnection, payload: &P) -> QueryResult<()> {
    let job = Job::of(payload)
        .and_then(|job| serde_json::to_value(&job))
        .map_err(|err| diesel::result::Error::SerializationError(Box::new(err)))?;
    diesel::insert_into(outbox::table)
        .values(outbox::job.eq(job))
        .execute(conn)
        .await
        .map(drop)
}

/// Moves up to [`BATCH`] jobs to Redis; returns how many. Moves none while the queue holds
/// [`MAX_SCHEDULED`] jobs that no worker has taken yet (the rest wait here, safely).
async fn relay_batch(db: &Db, queue: &mut JobQueue) -> anyhow::Result<usize> {
    if queue.scheduled().await? >= MAX_SCHEDULED {
        tracing::warn!("job queue backlog at {MAX_SCHEDULED}: holding jobs in the outbox");
        return Ok(0);
    }
    let mut conn = db.conn().await?;
    conn.transaction(async |conn| {
        // A job names its kind (`Job`'s envelope): a row without one is left in place for
        // whoever can read it, and does not hold back the rows behind it.
        let rows: Vec<(i64, serde_json::Value)> = outbox::table
            .select((outbox::id, outbox::job))
            .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                "jsonb_typeof(job -> 'type') = 'string'",
            ))
            .order(outbox::id)
            .limit(BATCH)
            .for_update()
            .skip_locked()
            .load(conn)
            .await?;
        let mut pushed = Vec::with_capacity(rows.len());
        for (id, job) in &rows {
            match serde_json::from_value::<Job>(job.clone()) {
                Ok(job) => {
                    queue.push(job).await?;
                    pushed.push(*id);
                }
                // A job this build cannot read is kept for a build that can, not dropped.
                Err(err) => tracing::error!(id, "unreadable outbox job left in place: {err}"),
            }
        }
        diesel::delete(outbox::table.filter(outbox::id.eq_any(&pushed)))
            .execute(conn)
            .await?;
        Ok(rows.len())
    })
    .await
}

async fn listen(url: &str) -> anyhow::Result<AsyncPgConnection> {
    use diesel_async::SimpleAsyncConnection as _;
    let mut conn = AsyncPgConnection::establish(url).await?;
    conn.batch_execute("LISTEN outbox").await?;
    Ok(conn)
}

/// Relays until `shutdown` turns true.
pub async fn run_relay(
    db: Db,
    database_url: String,
    settings: WorkerSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut queue = loop {
        match JobQueue::connect(&settings).await {
            Ok(queue) => break queue,
            Err(err) => {
                tracing::warn!("outbox relay cannot reach Redis yet: {err:#}");
                tokio::select! {
                    () = tokio::time::sleep(RETRY_AFTER_ERROR) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    };
    let mut listener = None;
    while !*shutdown.borrow() {
        if listener.is_none() {
            listener = listen(&database_url)
                .await
                .inspect_err(|err| tracing::warn!("outbox relay cannot LISTEN: {err:#}"))
                .ok();
        }
        let pause = match relay_batch(&db, &mut queue).await {
            Ok(moved) if moved as i64 == BATCH => continue,
            Ok(_) => POLL_FALLBACK,
            Err(err) => {
                tracing::warn!("outbox relay will retry: {err:#}");
                RETRY_AFTER_ERROR
            }
        };
        let woken = async {
            match listener.as_mut() {
                Some(conn) => {
                    let mut notifications = std::pin::pin!(conn.notifications_stream());
                    matches!(notifications.next().await, Some(Ok(_)))
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            alive = woken => if !alive { listener = None },
            () = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => {}
        }
    }
}
