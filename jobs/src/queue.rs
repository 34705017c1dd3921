//! Jobs on Redis with apalis: pushing (used by the server's outbox relay) and the worker
//! that runs them.
//!
//! Behaviours we rely on (measured, see BENCHMARKS.md): an idle worker fetches on its poll
//! interval, so we poll every [`POLL_INTERVAL`]; a killed worker's in-flight jobs are
//! re-enqueued by any live worker after `heartbeat × missed heartbeats`; failed jobs are
//! retried with exponential backoff. Handlers are idempotent, so a job run twice is safe.

use std::future::Future;
use std::time::Duration;

use apalis::layers::retry::backoff::ExponentialBackoff;
use apalis::layers::retry::backoff::ExponentialBackoffMaker;
use apalis::layers::retry::backoff::MakeBackoff;
use apalis::layers::retry::{BackoffRetryPolicy, HasherRng, RetryPolicy};
use apalis::prelude::*;
use apalis_redis::{Config, ConnectionManager, RedisStorage};

use std::sync::Arc;

use crate::{Handlers, Job};
use tracing::Instrument as _;

pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Most jobs that may wait in the queue's scheduled set. apalis-redis 1.0 promotes every due
/// scheduled job in one Lua `unpack`, which fails past about 8,000 items and stops the
/// worker for good (found by the benchmark); the outbox relay holds jobs in PostgreSQL
/// rather than pushing past this.
pub const MAX_SCHEDULED: usize = 5_000;
/// Finished jobs whose data one trim removes from Redis: a bounded script, so Redis never
/// stalls on it however many have piled up.
pub const TRIM_BATCH: usize = 500;
/// How often a worker trims finished jobs.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(10);
/// Retries per job (after its first attempt) before the worker stops retrying it and the
/// job goes to the dead set (the email stays unsent and the failure is logged; the relay's
/// row is gone, so an operator re-sends from the app).
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
    /// How long a failed job waits before its first retry; each later one waits about
    /// twice as long ([`retry_policy`]).
    pub first_retry: Duration,
}

impl WorkerSettings {
    /// The queue's storage for jobs of type `T` (the benchmark's no-op jobs use the same).
    pub async fn storage<T>(&self) -> anyhow::Result<RedisStorage<T, ConnectionManager>> {
        let conn = apalis_redis::connect(self.redis_url.as_str()).await?;
        Ok(RedisStorage::new(conn).with_config(self.storage_config()))
    }

    fn storage_config(&self) -> Config {
        Config::default()
            .queue(&self.queue)
            .batch_size(50)
            .heartbeat_interval(self.heartbeat)
            .missed_heartbeats(self.missed_heartbeats)
            // Without results apalis never acknowledges a finished job: it stays in its
            // worker's in-flight set, and when that worker is lost every job it ever finished
            // is run again (tested in bench/tests/redis_commands.rs).
            .persist_results(true)
            // Nobody subscribes to apalis's per-job pub/sub events: one command less per job.
            .emit_events(false)
    }
}

/// Removes finished jobs from Redis. apalis-redis keeps every done job's id, payload and
/// metadata forever (about 400 bytes each), and its own `vacuum` reads the whole queue in one
/// script; PostgreSQL holds the record of what was done, so Redis need not.
pub struct FinishedJobs {
    conn: ConnectionManager,
    config: Config,
    script: redis::Script,
}

impl FinishedJobs {
    pub async fn connect(settings: &WorkerSettings) -> anyhow::Result<Self> {
        Ok(Self {
            conn: apalis_redis::connect(settings.redis_url.as_str()).await?,
            config: settings.storage_config(),
            script: redis::Script::new(
                "local ids = redis.call('SPOP', KEYS[1], ARGV[1])
                 for _, id in ipairs(ids) do
                   redis.call('HDEL', KEYS[2], id)
                   redis.call('DEL', KEYS[3] .. ':' .. id)
                 end
                 return #ids",
            ),
        })
    }

    /// Removes up to [`TRIM_BATCH`] finished jobs; returns how many.
    pub async fn trim(&mut self) -> anyhow::Result<usize> {
        Ok(self
            .script
            .key(self.config.done_jobs_set())
            .key(self.config.job_data_hash())
            .key(self.config.job_meta_hash())
            .arg(TRIM_BATCH)
            .invoke_async(&mut self.conn)
            .await?)
    }

    /// Trims until no finished job is left; returns how many were removed.
    pub async fn trim_all(&mut self) -> anyhow::Result<usize> {
        let mut removed = 0;
        loop {
            let batch = self.trim().await?;
            removed += batch;
            if batch < TRIM_BATCH {
                return Ok(removed);
            }
        }
    }

    /// Trims every [`TRIM_INTERVAL`], forever; failures are logged and retried next time.
    async fn run(mut self) {
        loop {
            tokio::time::sleep(TRIM_INTERVAL).await;
            if let Err(err) = self.trim_all().await {
                tracing::warn!("could not trim finished jobs: {err:#}");
            }
        }
    }
}

/// Pushes jobs onto the Redis queue.
#[derive(Clone)]
pub struct JobQueue {
    storage: RedisStorage<Job, ConnectionManager>,
    scheduled_set: String,
}

impl JobQueue {
    pub async fn connect(settings: &WorkerSettings) -> anyhow::Result<Self> {
        Ok(Self {
            storage: settings.storage().await?,
            scheduled_set: settings.storage_config().scheduled_jobs_set(),
        })
    }

    /// How many jobs wait to be promoted by a worker.
    pub async fn scheduled(&mut self) -> anyhow::Result<usize> {
        Ok(redis::cmd("ZCARD")
            .arg(&self.scheduled_set)
            .query_async(self.storage.get_connection())
            .await?)
    }

    pub async fn push(&mut self, job: Job) -> anyhow::Result<()> {
        self.storage.push(job).await?;
        Ok(())
    }
}

/// What a worker runs jobs with: the handlers, and the context each is given.
struct Runner<C> {
    handlers: Arc<Handlers<C>>,
    context: C,
}

impl<C: Clone> Clone for Runner<C> {
    fn clone(&self) -> Self {
        Self {
            handlers: Arc::clone(&self.handlers),
            context: self.context.clone(),
        }
    }
}

/// Runs the job's handler, and counts the outcome (`linkai_jobs_total`) by kind: `run`,
/// `retried` (it failed and will run again), `failed` (its last attempt failed), or
/// `dropped` (no handler knows its kind, on its last attempt).
async fn run_job<C>(job: Job, runner: Data<Runner<C>>, attempt: Attempt) -> Result<(), BoxDynError>
where
    C: Clone + Send + Sync + 'static,
{
    let kind = runner.handlers.label(job.kind());
    // Every log line of the job (its emails' too) names it and the request that queued it;
    // a job it queues in turn carries that request on.
    let span = tracing::info_span!("job", kind, request_id = tracing::field::Empty);
    let work = runner.handlers.run(&job, runner.context.clone());
    let result = match job.origin() {
        Some(origin) => {
            span.record("request_id", tracing::field::display(origin.request_id));
            let mut origin = origin;
            if let Some(parent) = origin.trace_parent.take() {
                crate::request::continue_trace(&span, &parent);
                // The job's own span is the parent of what it queues.
                origin.trace_parent = crate::request::trace_parent(&span).or(Some(parent));
            }
            crate::request::scope(origin, work.instrument(span.clone())).await
        }
        None => work.instrument(span.clone()).await,
    };
    let _in_job = span.enter();
    // The retry policy runs a job again while its attempts (counted from 1) are at most
    // MAX_RETRIES.
    let last = attempt.current() > MAX_RETRIES;
    let outcome = match (&result, last) {
        (Ok(()), _) => "run",
        (Err(_), false) => "retried",
        (Err(_), true) if kind == "unknown" => "dropped",
        (Err(_), true) => "failed",
    };
    metrics::counter!("linkai_jobs_total", "kind" => kind, "outcome" => outcome).increment(1);
    result.map_err(|err| {
        tracing::warn!(kind = job.kind(), outcome, "job failed: {err:#}");
        if last {
            // apalis-redis schedules a failed job again up to its own 25 attempts
            // (lua/handle_results.lua); an abort sends it to the dead set instead, so the
            // last retry is MAX_RETRIES' and `failed` counts each job once.
            return Box::new(AbortError::new(err)) as BoxDynError;
        }
        err.into()
    })
}

/// How long a failed job waits before its first retry, unless configured.
pub const FIRST_RETRY: Duration = Duration::from_millis(500);

/// Up to [`MAX_RETRIES`] retries, backing off exponentially from `first_retry` to five
/// minutes.
pub fn retry_policy(
    first_retry: Duration,
) -> anyhow::Result<BackoffRetryPolicy<ExponentialBackoff>> {
    let backoff = ExponentialBackoffMaker::new(
        first_retry,
        Duration::from_secs(300),
        0.5,
        HasherRng::default(),
    )?
    .make_backoff();
    Ok(RetryPolicy::retries(MAX_RETRIES).with_backoff(backoff))
}

/// Runs a worker, and the trimming of finished jobs, until `shutdown` resolves: each job
/// goes to its kind's handler in `handlers`, with a clone of `context`.
pub async fn run_worker<C>(
    settings: &WorkerSettings,
    handlers: Arc<Handlers<C>>,
    context: C,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()>
where
    C: Clone + Send + Sync + 'static,
{
    let storage = settings
        .storage::<Job>()
        .await?
        .poll_with_interval(POLL_INTERVAL);
    let worker = WorkerBuilder::new(settings.worker_name.clone())
        .backend(storage)
        .data(Runner { handlers, context })
        .retry(retry_policy(settings.first_retry)?)
        .build(run_job::<C>);
    let trimming = FinishedJobs::connect(settings).await?.run();
    let working = worker.run_until(async move {
        shutdown.await;
        Ok::<(), WorkerError>(())
    });
    tokio::select! {
        result = working => result?,
        () = trimming => {}
    }
    Ok(())
}
