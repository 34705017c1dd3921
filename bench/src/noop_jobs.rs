//! No-op jobs through the service's apalis queue settings (batch size, poll interval, retry
//! layer) and one worker: throughput, and Redis commands per job counted by Redis itself
//! (`INFO commandstats`, reset before each phase).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis::prelude::*;
use linkai_jobs::queue::{retry_policy, FIRST_RETRY, POLL_INTERVAL};
use linkai_jobs::WorkerSettings;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Noop {
    n: usize,
}

/// Counts finished jobs and wakes the driver when the last one is done.
struct Finished {
    count: AtomicUsize,
    target: usize,
    all_done: Notify,
}

async fn noop(_job: Noop, finished: Data<Arc<Finished>>) -> Result<(), BoxDynError> {
    if finished.count.fetch_add(1, Ordering::Relaxed) + 1 == finished.target {
        finished.all_done.notify_one();
    }
    Ok(())
}

/// Runs one worker until it has run `target` jobs or `at_most` has passed; returns how many
/// jobs it ran.
async fn work(
    settings: &WorkerSettings,
    target: usize,
    at_most: Duration,
) -> anyhow::Result<usize> {
    let finished = Arc::new(Finished {
        count: AtomicUsize::new(0),
        target,
        all_done: Notify::new(),
    });
    let worker = WorkerBuilder::new(settings.worker_name.clone())
        .backend(
            settings
                .storage::<Noop>()
                .await?
                .poll_with_interval(POLL_INTERVAL),
        )
        .data(Arc::clone(&finished))
        .retry(retry_policy(FIRST_RETRY)?)
        .build(noop);
    let all_done = Arc::clone(&finished);
    worker
        .run_until(async move {
            let _ = tokio::time::timeout(at_most, all_done.all_done.notified()).await;
            Ok::<(), WorkerError>(())
        })
        .await?;
    Ok(finished.count.load(Ordering::Relaxed))
}

/// Jobs a worker runs again after the worker that finished them is gone: `jobs` are pushed
/// and run by one worker, which then stops without a word; a second worker watches the queue
/// for longer than it takes to declare the first one dead.
pub async fn rerun_after_worker_loss(redis_url: &str, jobs: usize) -> anyhow::Result<usize> {
    let first = WorkerSettings {
        redis_url: redis_url.to_owned(),
        queue: "linkai-bench-recovery".to_owned(),
        worker_name: "linkai-bench-first".to_owned(),
        heartbeat: Duration::from_millis(500),
        missed_heartbeats: 2,
        first_retry: FIRST_RETRY,
    };
    let mut storage = first.storage::<Noop>().await?;
    for n in 0..jobs {
        storage.push(Noop { n }).await?;
    }
    let ran = work(&first, jobs, Duration::from_secs(30)).await?;
    anyhow::ensure!(ran == jobs, "the first worker ran {ran} of {jobs} jobs");
    let second = WorkerSettings {
        worker_name: "linkai-bench-second".to_owned(),
        ..first
    };
    work(&second, usize::MAX, Duration::from_secs(4)).await
}

/// apalis runs every queue operation as one Lua script call: these are the client's round
/// trips. The other commands counted run inside those scripts.
const SCRIPT_CALLS: [&str; 3] = ["evalsha", "eval", "script|load"];

pub async fn run(redis_url: &str, count: usize) -> anyhow::Result<serde_json::Value> {
    let settings = WorkerSettings {
        redis_url: redis_url.to_owned(),
        queue: "linkai-bench-noop".to_owned(),
        worker_name: "linkai-bench-worker".to_owned(),
        heartbeat: Duration::from_secs(5),
        missed_heartbeats: 3,
        first_retry: FIRST_RETRY,
    };
    let client = redis::Client::open(redis_url)?;
    let mut admin = client.get_multiplexed_async_connection().await?;
    redis::cmd("FLUSHDB").query_async::<()>(&mut admin).await?;
    let memory_before = memory_used(&mut admin).await?;

    // Pushed one at a time, as the outbox relay pushes.
    let mut storage = settings.storage::<Noop>().await?;
    reset_stats(&mut admin).await?;
    let pushing = Instant::now();
    for n in 0..count {
        storage.push(Noop { n }).await?;
    }
    let push_secs = pushing.elapsed().as_secs_f64();
    let push_commands = commands(&mut admin).await?;

    reset_stats(&mut admin).await?;
    let draining = Instant::now();
    let done = work(&settings, count, Duration::from_secs(600)).await?;
    let drain_secs = draining.elapsed().as_secs_f64();
    let drain_commands = commands(&mut admin).await?;

    let used_memory = memory_used(&mut admin).await? - memory_before;
    // What the worker's periodic trim leaves behind.
    reset_stats(&mut admin).await?;
    let trimmed = linkai_jobs::queue::FinishedJobs::connect(&settings)
        .await?
        .trim_all()
        .await?;
    let trim_commands = commands(&mut admin).await?;
    let used_after_trim = memory_used(&mut admin).await? - memory_before;
    let keys_left: usize = redis::cmd("DBSIZE").query_async(&mut admin).await?;
    let total = |commands: &BTreeMap<String, u64>| commands.values().sum::<u64>();
    let scripts = |commands: &BTreeMap<String, u64>| {
        SCRIPT_CALLS
            .iter()
            .filter_map(|name| commands.get(*name))
            .sum::<u64>()
    };
    let per_job = |calls: u64| calls as f64 / count as f64;
    Ok(serde_json::json!({
        "jobs": count,
        "done": done,
        "push_jobs_per_sec": count as f64 / push_secs,
        "drain_secs": drain_secs,
        "jobs_per_sec": count as f64 / drain_secs,
        "redis_commands_per_job": per_job(total(&push_commands) + total(&drain_commands)),
        "redis_round_trips_per_job": per_job(scripts(&push_commands) + scripts(&drain_commands)),
        "redis_bytes_kept_per_job": used_memory as f64 / count as f64,
        "trimmed": trimmed,
        "redis_commands_per_job_trim": per_job(total(&trim_commands)),
        "redis_bytes_kept_per_job_after_trim": used_after_trim as f64 / count as f64,
        "redis_keys_left_after_trim": keys_left,
        "push_commands": push_commands,
        "drain_commands": drain_commands,
    }))
}

/// `used_memory` of `INFO memory`, in bytes.
async fn memory_used(admin: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<i64> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(admin).await?;
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:")?.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("INFO memory has no used_memory"))
}

async fn reset_stats(admin: &mut redis::aio::MultiplexedConnection) -> redis::RedisResult<()> {
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async::<()>(admin)
        .await
}

/// Calls per command since the last reset, as `INFO commandstats` reports them (commands
/// run inside Lua scripts included), leaving out this probe's own `CONFIG` and `INFO`.
async fn commands(
    admin: &mut redis::aio::MultiplexedConnection,
) -> redis::RedisResult<BTreeMap<String, u64>> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(admin)
        .await?;
    Ok(parse_commandstats(&info))
}

fn parse_commandstats(info: &str) -> BTreeMap<String, u64> {
    info.lines()
        .filter_map(|line| {
            let (name, fields) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = fields.split(',').find_map(|f| f.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .filter(|(name, _)| !name.starts_with("config") && name != "info")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_commandstats;

    #[test]
    fn reads_calls_per_command() {
        let info = "# Commandstats\r\ncmdstat_evalsha:calls=12,usec=40,usec_per_call=3.33,rejected_calls=0,failed_calls=0\r\ncmdstat_info:calls=1,usec=1\r\ncmdstat_config|resetstat:calls=1,usec=3\r\ncmdstat_hset:calls=4,usec=2\r\n";
        let stats = parse_commandstats(info);
        assert_eq!(stats.len(), 2);
        assert_eq!(stats["evalsha"], 12);
        assert_eq!(stats["hset"], 4);
    }
}
