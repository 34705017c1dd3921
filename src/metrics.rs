//! Prometheus metrics: what an operator watches. Every process records through the
//! `metrics` facade into one Prometheus recorder (`metrics-exporter-prometheus`) and serves
//! it at `GET /metrics` on `METRICS_ADDR`, off the public port (docs/deploy.md, "Metrics reference").
//!
//! Rules:
//! - Names start with `linkai_`; durations are in seconds (`_seconds`); counters end in
//!   `_total`.
//! - Label values come from closed sets: routes, error codes, job kinds, email templates,
//!   throttle rules, Stripe endpoints with their ids cut out. Never an id or an address.
//! - Operation names are the one open set: a process keeps the first
//!   [`MAX_OPERATION_NAMES`] distinct names (of at most [`MAX_OPERATION_NAME_CHARS`]) of
//!   documents that passed validation, folds the rest into `other`, and unnamed operations
//!   into `anonymous`.
//! - Without `METRICS_ADDR` no recorder is installed, and the request path records nothing
//!   (one atomic load per request).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::db::Db;

/// Operation names a process labels by, at most.
pub const MAX_OPERATION_NAMES: usize = 100;
/// A longer operation name is labelled `other`.
pub const MAX_OPERATION_NAME_CHARS: usize = 64;

/// Whether a client-chosen operation name is short enough to label by (or name a span).
pub fn is_short_operation_name(name: &str) -> bool {
    name.chars().count() <= MAX_OPERATION_NAME_CHARS
}

/// Whether this process installed a recorder: the request path skips its metrics if not.
static ENABLED: AtomicBool = AtomicBool::new(false);

fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Buckets of request-scale durations, in seconds.
const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of statements per request.
const STATEMENTS: &[f64] = &[1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 55.0];

/// How often histograms' buffered samples are drained.
const UPKEEP: Duration = Duration::from_secs(5);

/// Installs this process's recorder; later calls (tests run several apps in one process)
/// answer the first one's handle.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    static INSTALLED: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = INSTALLED.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)?
        .set_buckets_for_metric(Matcher::Suffix("_statements".into()), STATEMENTS)?
        .install_recorder()?;
    describe();
    ENABLED.store(true, Ordering::Relaxed);
    // Histograms buffer their samples until upkeep drains them: drained on a timer, so an
    // unscraped process does not grow.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(INSTALLED.get_or_init(|| handle).clone())
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves. Gauges of the moment (the
/// pool, the outbox's lag) are read at each scrape.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
    db: Db,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let scrape = move || {
        let (handle, db) = (handle.clone(), db.clone());
        async move {
            sample(&db).await;
            handle.run_upkeep();
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                handle.render(),
            )
        }
    };
    let router = Router::new().route("/metrics", get(scrape));
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Reads the gauges of the moment: the pool's connections and waiters, and the age of the
/// oldest outbox row waiting to be relayed (bounded: a slow database gives up the lag, not
/// the scrape).
async fn sample(db: &Db) {
    let status = db.pool_status();
    let in_use = status.size.saturating_sub(status.available);
    metrics::gauge!("linkai_db_pool_connections", "state" => "in_use").set(in_use as f64);
    metrics::gauge!("linkai_db_pool_connections", "state" => "idle").set(status.available as f64);
    metrics::gauge!("linkai_db_pool_waiting").set(status.waiting as f64);
    // Unknown (NaN) when the database does not answer: never a stale 0 during an outage.
    let lag = tokio::time::timeout(Duration::from_secs(1), crate::outbox::lag(db)).await;
    let seconds = match lag {
        Ok(Ok(seconds)) => seconds,
        _ => f64::NAN,
    };
    metrics::gauge!("linkai_outbox_lag_seconds").set(seconds);
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "linkai_http_requests_total",
        "HTTP requests by route and status."
    );
    describe_histogram!(
        "linkai_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request durations by route."
    );
    describe_counter!(
        "linkai_graphql_operations_total",
        "GraphQL operations run, by operation name and type."
    );
    describe_histogram!(
        "linkai_graphql_operation_duration_seconds",
        Unit::Seconds,
        "GraphQL operation durations, by operation name and type."
    );
    describe_counter!(
        "linkai_graphql_errors_total",
        "GraphQL errors answered, by code."
    );
    describe_counter!(
        "linkai_graphql_refused_documents_total",
        "Documents refused before they ran, by reason."
    );
    describe_histogram!(
        "linkai_graphql_request_statements",
        Unit::Count,
        "SQL statements per GraphQL request."
    );
    describe_gauge!(
        "linkai_db_pool_connections",
        "Pooled connections, by state."
    );
    describe_gauge!(
        "linkai_db_pool_waiting",
        "Requests waiting for a pooled connection."
    );
    describe_counter!(
        "linkai_db_connections_opened_total",
        "Database connections the pool opened."
    );
    describe_counter!(
        "linkai_db_abandoned_transactions_total",
        "Transactions left open by a dropped request, by outcome (rolled_back and kept, closed)."
    );
    describe_histogram!(
        "linkai_db_pool_wait_seconds",
        Unit::Seconds,
        "Time spent waiting for a pooled connection."
    );
    describe_gauge!(
        "linkai_outbox_lag_seconds",
        Unit::Seconds,
        "Age of the oldest outbox row waiting to be queued (0 when none waits, NaN when the database did not answer)."
    );
    describe_counter!(
        "linkai_jobs_total",
        "Jobs by kind and outcome (run, retried, failed, dropped)."
    );
    describe_counter!(
        "linkai_emails_total",
        "Emails by template and outcome (sent, failed)."
    );
    describe_counter!(
        "linkai_stripe_requests_total",
        "Stripe calls by endpoint, method and status."
    );
    describe_histogram!(
        "linkai_stripe_request_duration_seconds",
        Unit::Seconds,
        "Stripe call durations by endpoint and method."
    );
    describe_counter!(
        "linkai_stripe_webhooks_total",
        "Stripe webhooks by outcome (received, duplicate, rejected)."
    );
    describe_counter!(
        "linkai_throttled_total",
        "Requests refused by a throttle, by rule."
    );
    describe_counter!(
        "linkai_auth_token_lookups_total",
        "Bearer tokens looked up, by source: cache (this server read it in the last TOKEN_CACHE_MS) or database."
    );
    describe_counter!(
        "linkai_auth_token_cache_forgets_total",
        "Times this server forgot cached tokens, by reason: revoked_here (a mutation on this server revoked them), notified (another server's revocation, by NOTIFY), listener_back (the listener reconnected: everything)."
    );
    describe_counter!(
        "linkai_live_log_reads_total",
        "Reads of a workspace's event stream by its subscribers: shared (one for all on this server) or own (a subscriber behind what is shared)."
    );
    describe_counter!(
        "linkai_live_sockets_dropped_total",
        "Sockets the server closed on a client, by reason (slow, idle, init_timeout)."
    );
    describe_counter!(
        "linkai_live_wakes_total",
        "Workspaces' subscribers woken, by source: published (through Redis after a commit) or polled (the once-a-second poll found a wake that never came; a lower bound where conversations are written, whose wakes cannot name their events' numbers)."
    );
    describe_counter!(
        "linkai_live_wakes_published_total",
        "Wakes this process sent other servers after its commits, by outcome (published, dropped when the queue to Redis was full, failed)."
    );
}

/// A bearer token looked up: from this server's `cache` or from the `database`.
pub fn token_looked_up(source: &'static str) {
    if !enabled() {
        return;
    }
    metrics::counter!("linkai_auth_token_lookups_total", "source" => source).increment(1);
}

/// Cached tokens forgotten, and why (src/auth/bearers.rs).
pub fn tokens_forgotten(reason: &'static str) {
    if !enabled() {
        return;
    }
    metrics::counter!("linkai_auth_token_cache_forgets_total", "reason" => reason).increment(1);
}

/// A read of a workspace's event stream: `shared` by its subscribers on this server, or
/// `own`, by one behind what they share.
pub fn log_read(kind: &'static str) {
    if !enabled() {
        return;
    }
    metrics::counter!("linkai_live_log_reads_total", "kind" => kind).increment(1);
}

/// Subscribers of a workspace woken: from a `published` wake, or `polled`, by the poll
/// that finds what a lost wake did not announce.
pub fn woken(source: &'static str) {
    if !enabled() {
        return;
    }
    metrics::counter!("linkai_live_wakes_total", "source" => source).increment(1);
}

/// Wakes sent after commits: `published`, `dropped` (the queue to Redis was full), or
/// `failed` (Redis did not take them).
pub fn wakes_published(outcome: &'static str, count: u64) {
    if !enabled() {
        return;
    }
    metrics::counter!("linkai_live_wakes_published_total", "outcome" => outcome).increment(count);
}

/// A socket closed on its client: it took nothing for too long (`slow`), answered no ping
/// (`idle`), or never sent `connection_init` (`init_timeout`).
pub fn socket_dropped(reason: &'static str) {
    if !enabled() {
        return;
    }
    metrics::counter!("linkai_live_sockets_dropped_total", "reason" => reason).increment(1);
}

/// Counts each request by route, method and status, and times it: the outermost layer
/// (`http::with_middleware`), so it sees the deadlines' answers too.
pub async fn measure_http(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if !enabled() {
        return next.run(request).await;
    }
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = match request.method().as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "OPTIONS" => "OPTIONS",
        "HEAD" => "HEAD",
        _ => "other",
    };
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("linkai_http_request_duration_seconds", "route" => route.clone(), "method" => method)
        .record(started.elapsed());
    metrics::counter!("linkai_http_requests_total", "route" => route, "method" => method, "status" => status)
        .increment(1);
    response
}

/// A document refused before it ran: over the token budget (`tokens`), not GraphQL
/// (`parse`), over a shape limit (`shape`), or a mutation sent with GET (`method`).
pub fn refused(reason: &'static str) {
    if !enabled() {
        return;
    }
    metrics::counter!("linkai_graphql_refused_documents_total", "reason" => reason).increment(1);
}

/// What an operation that ran is labelled by: its name if it passed validation (`valid`),
/// and its type.
#[derive(Clone, Copy)]
pub struct Ran<'a> {
    pub name: Option<&'a str>,
    pub valid: bool,
    pub kind: &'static str,
}

/// An operation that ran: how long it took, the statements it ran, and its errors' codes.
pub fn operation_ran<'a>(
    ran: Ran<'_>,
    took: Duration,
    statements: usize,
    codes: impl Iterator<Item = &'a str>,
) {
    if !enabled() {
        return;
    }
    let operation = if ran.valid {
        operation_label(ran.name)
    } else {
        "other"
    };
    let kind = ran.kind;
    metrics::counter!("linkai_graphql_operations_total", "operation" => operation, "type" => kind)
        .increment(1);
    metrics::histogram!("linkai_graphql_operation_duration_seconds", "operation" => operation, "type" => kind)
        .record(took);
    metrics::histogram!("linkai_graphql_request_statements").record(statements as f64);
    for code in codes {
        let code = crate::error::ErrorCode::ALL
            .iter()
            .map(|known| known.as_str())
            .find(|known| *known == code)
            .unwrap_or("OTHER");
        metrics::counter!("linkai_graphql_errors_total", "code" => code).increment(1);
    }
}

/// The label for an operation named `name`: itself if it is among the first
/// [`MAX_OPERATION_NAMES`] this process ran, `other` past them, `anonymous` without one.
fn operation_label(name: Option<&str>) -> &'static str {
    static NAMES: OnceLock<RwLock<HashSet<&'static str>>> = OnceLock::new();
    let Some(name) = name else {
        return "anonymous";
    };
    if !is_short_operation_name(name) {
        return "other";
    }
    let names = NAMES.get_or_init(|| RwLock::new(HashSet::new()));
    if let Some(known) = names.read().ok().and_then(|set| set.get(name).copied()) {
        return known;
    }
    let Ok(mut set) = names.write() else {
        return "other";
    };
    if let Some(known) = set.get(name) {
        return known;
    }
    if set.len() >= MAX_OPERATION_NAMES {
        return "other";
    }
    // Leaked once per name, at most MAX_OPERATION_NAMES per process: a label then costs
    // no allocation per request.
    let kept: &'static str = Box::leak(name.to_owned().into_boxed_str());
    set.insert(kept);
    kept
}

/// A Stripe path as a label: ids become `{id}`. Stripe's resource names are lower-case
/// words joined by `_`; its ids (`cus_Nf2k…`, `sub_1Ox…`) carry digits or capitals.
pub fn stripe_endpoint(path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = path
        .split('/')
        .map(|segment| {
            let word = segment.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            if word || segment == "v1" {
                segment
            } else {
                "{id}"
            }
        })
        .collect();
    segments.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_ids_are_cut_out_of_endpoints() {
        assert_eq!(stripe_endpoint("/v1/customers"), "/v1/customers");
        assert_eq!(
            stripe_endpoint("/v1/customers/cus_123/sources?limit=3"),
            "/v1/customers/{id}/sources"
        );
        assert_eq!(
            stripe_endpoint("/v1/subscription_items/si_9Xb"),
            "/v1/subscription_items/{id}"
        );
    }

    #[test]
    fn operation_names_are_bounded() {
        assert_eq!(operation_label(None), "anonymous");
        let first = operation_label(Some("Members"));
        assert_eq!(first, "Members");
        for n in 0..MAX_OPERATION_NAMES {
            operation_label(Some(&format!("Op{n}")));
        }
        assert_eq!(operation_label(Some("Members")), "Members");
        assert_eq!(operation_label(Some("OneTooMany")), "other");
        assert_eq!(operation_label(Some(&"L".repeat(65))), "other");
    }
}
