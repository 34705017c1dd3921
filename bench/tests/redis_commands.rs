//! Redis commands per job through the service's queue settings, counted by a private Redis:
//! the budgets the benchmark reports against, checked on every test run.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Client round trips (apalis's Lua script calls) per job: push, and a share of the
/// batched fetch and acknowledgement.
const ROUND_TRIPS_PER_JOB: f64 = 1.1;
/// Every command Redis runs per job, those inside the scripts included: apalis-redis 1.0's
/// scripts cost 12 with finished jobs acknowledged (see BENCHMARKS.md; the target is
/// 8). The trim of finished jobs costs 2 more, measured apart.
const COMMANDS_PER_JOB: f64 = 12.3;

/// A redis-server of the test's own, stopped when dropped.
struct PrivateRedis {
    server: Child,
    url: String,
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

async fn private_redis() -> PrivateRedis {
    let port = free_port();
    let server = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is installed");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    PrivateRedis {
        server,
        url: format!("redis://127.0.0.1:{port}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_costs_one_round_trip_and_twelve_redis_commands_and_leaves_nothing() {
    let redis = private_redis().await;
    let report = linkai_bench::noop_jobs::run(&redis.url, 2_000)
        .await
        .expect("the run completes");
    assert_eq!(report["done"], 2_000);
    let per_job = |key: &str| report[key].as_f64().expect("a number");
    assert!(
        per_job("redis_round_trips_per_job") <= ROUND_TRIPS_PER_JOB,
        "{report}"
    );
    assert!(
        per_job("redis_commands_per_job") <= COMMANDS_PER_JOB,
        "{report}"
    );
    // Nothing per job stays once the worker's trim has run: the keys left are the queue's
    // and the worker's own.
    assert_eq!(report["trimmed"], 2_000, "{report}");
    assert!(
        report["redis_keys_left_after_trim"]
            .as_u64()
            .is_some_and(|keys| keys <= 8),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_are_not_run_again_when_their_worker_is_lost() {
    let redis = private_redis().await;
    let rerun = linkai_bench::noop_jobs::rerun_after_worker_loss(&redis.url, 50)
        .await
        .expect("the run completes");
    assert_eq!(rerun, 0, "jobs finished by the lost worker were run again");
}
