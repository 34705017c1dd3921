//! `linkai-bench`: the parts of `bench/run` that need Rust. Each subcommand prints one JSON
//! object on stdout for the driver to record.
//!
//! - `baseline ADDR BODY_FILE`: a bare axum handler answering `POST /graphql` with the bytes
//!   of `BODY_FILE`, through the service's own middleware (the GraphQL-tax baseline).
//! - `jobs REDIS_URL COUNT`: pushes `COUNT` no-op jobs through the service's queue settings,
//!   drains them with one worker, and counts the Redis commands per job.
//! - `email API_URL SMTP_ADDR TOKENS_FILE RATE COUNT`: a loopback SMTP server, and
//!   invitations sent at a steady rate; latency from each request to its email's acceptance.
//! - `sockets-hold WS_URL COUNT`, `sockets-latency WS_URL ADMIN_URL REDIS_URL WORKSPACES
//!   FANOUT RATE SECONDS`: live updates' footprint and delivery latency (`sockets.rs`).
//! - `otlp ADDR OUT_FILE`: an OTLP/HTTP trace receiver writing each span as a JSON line, for
//!   the tail's slowest requests (`otlp.rs`); runs until stopped.

use linkai_bench::{baseline, email, noop_jobs, otlp, sockets};

use std::io::Write as _;
use std::process::ExitCode;

const USAGE: &str = "usage: linkai-bench baseline ADDR BODY_FILE
       linkai-bench jobs REDIS_URL COUNT
       linkai-bench email API_URL SMTP_ADDR TOKENS_FILE RATE COUNT
       linkai-bench sockets-hold WS_URL COUNT
       linkai-bench sockets-latency WS_URL ADMIN_URL REDIS_URL WORKSPACES FANOUT RATE SECONDS
       linkai-bench otlp ADDR OUT_FILE";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["baseline", addr, body_file] => baseline::serve(addr, body_file).await,
        ["jobs", redis_url, count] => match count.parse() {
            Ok(count) => noop_jobs::run(redis_url, count).await,
            Err(_) => Err(anyhow::anyhow!("COUNT must be a number")),
        },
        ["email", api_url, smtp_addr, tokens_file, rate, count] => {
            match (rate.parse(), count.parse()) {
                (Ok(rate), Ok(count)) => {
                    email::run(api_url, smtp_addr, tokens_file, rate, count).await
                }
                _ => Err(anyhow::anyhow!("RATE and COUNT must be numbers")),
            }
        }
        ["otlp", addr, out_file] => otlp::receive(addr, out_file).await,
        ["sockets-hold", ws_url, count] => match count.parse() {
            Ok(count) => sockets::hold(ws_url, count).await,
            Err(_) => Err(anyhow::anyhow!("COUNT must be a number")),
        },
        ["sockets-latency", ws_url, admin_url, redis_url, workspaces, fanout, rate, seconds] => {
            match (
                workspaces.parse(),
                fanout.parse(),
                rate.parse(),
                seconds.parse(),
            ) {
                (Ok(workspaces), Ok(fanout), Ok(rate), Ok(seconds)) => {
                    let urls = sockets::Urls {
                        socket: ws_url,
                        admin: admin_url,
                        redis: redis_url,
                    };
                    sockets::latency(urls, workspaces, fanout, rate, seconds).await
                }
                _ => Err(anyhow::anyhow!(
                    "WORKSPACES, FANOUT, RATE and SECONDS are numbers"
                )),
            }
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result.and_then(|report| {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{report}")?;
        Ok(())
    }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("linkai-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}
