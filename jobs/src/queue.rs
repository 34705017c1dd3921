//! Jobs on Redis with apalis: pushing (used by the server's outbox relay) and the worker
//! that runs them.
//!
//! Behaviours we rely on (measured, see the README): an idle worker fetches on its poll
//! interval, so we poll every [`POLL_INTERVAL`]; a killed worker's in-flight jobs are
//! re-enqueued by any live worker after `heartbeat × missed heartbeats`; failed jobs are
//! retried with exponential backoff. Handlers are idempotent, so a job run twice is safe.

use std::future::Future;
use std::time::Duration;

use apalis::layers::retry::backoff::ExponentialBackoffMaker;
use apalis::layers::retry::backoff::MakeBackoff;
use apalis::layers::retry::{HasherRng, RetryPolicy};
use apalis::prelude::*;
use apalis_redis::{Config, ConnectionManager, RedisStorage};

use crate::handler::{handle, Deps};
use crate::Job;

pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Attempts per job before the worker stops retrying it (the email stays unsent and the
/// failure is logged; the relay's row is gone, so an operator re-sends from the app).
pub const MAX_RETRIES: usize = 8;

/// Where jobs live and how workers watch each other.
#[derive(Clone, Debug)]
pub struct WorkerSettings {
    pub redis_url: String,
    /// Redis key prefix of the queue; tests use their own.
    pub queue: String,
    /// Unique per live worker process.
    pub worker_name: String,
    pub heartbeat: Duration,
    /// A worker silent for this many heartbeats is dead and its jobs are re-enqueued.
    pub missed_heartbeats: usize,
}

impl WorkerSettings {
    fn storage_config(&self) -> Config {
        Config::default()
            .queue(&self.queue)
            .batch_size(50)
            .heartbeat_interval(self.heartbeat)
            .missed_heartbeats(self.missed_heartbeats)
            .persist_results(false)
    }
}

/// Pushes jobs onto the Redis queue.
#[derive(Clone)]
pub struct JobQueue {
    storage: RedisStorage<Job, ConnectionManager>,
}

impl JobQueue {
    pub async fn connect(settings: &WorkerSettings) -> anyhow::Result<Self> {
        let conn = apalis_redis::connect(settings.redis_url.as_str()).await?;
        Ok(Self {
            storage: RedisStorage::new(conn).with_config(settings.storage_config()),
        })
    }

    pub async fn push(&mut self, job: Job) -> anyhow::Result<()> {
        self.storage.push(job).await?;
        Ok(())
    }
}

async fn run_job(job: Job, deps: Data<Deps>) -> Result<(), BoxDynError> {
    handle(&job, &deps).await.map_err(|err| {
        tracing::warn!(kind = job.kind(), "job failed, will retry: {err:#}");
        err.into()
    })
}

/// Runs a worker until `shutdown` resolves.
pub async fn run_worker(
    settings: &WorkerSettings,
    deps: Deps,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let conn = apalis_redis::connect(settings.redis_url.as_str()).await?;
    let storage = RedisStorage::<Job, _>::new(conn)
        .with_config(settings.storage_config())
        .poll_with_interval(POLL_INTERVAL);
    let backoff = ExponentialBackoffMaker::new(
        Duration::from_millis(500),
        Duration::from_secs(300),
        0.5,
        HasherRng::default(),
    )?
    .make_backoff();
    let worker = WorkerBuilder::new(settings.worker_name.clone())
        .backend(storage)
        .data(deps)
        .retry(RetryPolicy::retries(MAX_RETRIES).with_backoff(backoff))
        .build(run_job);
    worker
        .run_until(async move {
            shutdown.await;
            Ok::<(), WorkerError>(())
        })
        .await?;
    Ok(())
}
