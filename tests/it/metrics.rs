//! Metrics as Prometheus scrapes them (issue 24): `linkai serve --no-workers` and `linkai
//! worker`, each a process with its own `METRICS_ADDR`, after a flow through both; the
//! text is read by a Prometheus text-format parser (`prometheus-parse`).

use std::time::Duration;

use prometheus_parse::{Sample, Scrape, Value as Metric};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::TestApp;

pub async fn scrape(client: &reqwest::Client, base: &str) -> Scrape {
    try_scrape(client, base).await.expect("scrape")
}

/// `None` while nothing listens at `base` (`http://127.0.0.1:port`) yet.
async fn try_scrape(client: &reqwest::Client, base: &str) -> Option<Scrape> {
    let res = client.get(format!("{base}/metrics")).send().await.ok()?;
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"]
        .to_str()
        .expect("type")
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = res.text().await.expect("text");
    Some(Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("Prometheus text"))
}

/// Label pairs a sample must have.
type Labels<'a> = &'a [(&'a str, &'a str)];

/// The samples named `name` whose labels include `labels`.
fn samples<'a>(scrape: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect()
}

/// The sum of the counters named `name` whose labels include `labels`.
pub fn counted(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(scrape, name, labels)
        .iter()
        .map(|s| match &s.value {
            Metric::Counter(v) => *v,
            other => panic!("{name} is not a counter: {other:?}"),
        })
        .sum()
}

/// How many observations the histograms named `name` with `labels` hold.
fn observed(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> u64 {
    samples(scrape, name, labels)
        .iter()
        .map(|s| match &s.value {
            Metric::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count) as u64,
            other => panic!("{name} is not a histogram: {other:?}"),
        })
        .sum()
}

/// Prometheus' conventions, on every sample: our prefix, `_total` on counters, seconds for
/// durations, and label values from closed sets (never an id or an address).
fn assert_conventions(scrape: &Scrape) {
    assert!(!scrape.samples.is_empty());
    for sample in &scrape.samples {
        assert!(sample.metric.starts_with("linkai_"), "{}", sample.metric);
        if matches!(sample.value, Metric::Counter(_)) {
            assert!(sample.metric.ends_with("_total"), "{}", sample.metric);
        }
        assert!(!sample.metric.contains("millis"), "{}", sample.metric);
        for (key, value) in sample.labels.iter() {
            let looks_like_id = Uuid::parse_str(value).is_ok() || value.contains('@');
            assert!(!looks_like_id, "{}: {key}={value}", sample.metric);
        }
    }
}

async fn post(client: &reqwest::Client, base: &str, body: Value) -> Value {
    client
        .post(format!("{base}/graphql"))
        .json(&body)
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_processes_expose_bounded_prometheus_metrics_of_what_they_did() {
    // The app gives the database, queue and mail; its own server and workers stay idle.
    let app = TestApp::new().await;
    // Port 0 for every listener: each process logs the port it got.
    let any = [("METRICS_ADDR", "127.0.0.1:0")];
    let mut serve = crate::processes::serve(&app, &any).await;
    let api_metrics = serve.announced("metrics on ").await;
    let mut worker = crate::processes::worker(&app, "metrics", &any);
    let worker_metrics = worker.announced("metrics on ").await;
    let base = serve.base_url.clone();
    let client = reqwest::Client::new();
    let ready = client.get(format!("{base}/readyz")).send().await;
    assert_eq!(ready.expect("readyz").status(), 200);

    // The flow: two named queries, one anonymous, a coded error, a refused document, and a
    // sign-up, whose email the worker sends.
    for _ in 0..2 {
        let hello = post(
            &client,
            &base,
            json!({ "query": "query Hello { __typename }" }),
        )
        .await;
        assert_eq!(hello["data"]["__typename"], "Query");
    }
    post(&client, &base, json!({ "query": "{ __typename }" })).await;
    let stranger = post(
        &client,
        &base,
        json!({ "query": "query Stranger($id: ID!) { workspace(id: $id) { id } }",
                "variables": { "id": Uuid::new_v4().to_string() } }),
    )
    .await;
    let code = stranger["errors"][0]["extensions"]["code"]
        .as_str()
        .expect("code")
        .to_owned();
    let huge = format!("{{ {} }}", "__typename ".repeat(20_000));
    let refused = post(&client, &base, json!({ "query": huge })).await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"],
        "QUERY_TOO_COMPLEX"
    );
    // Names past 64 characters, and names of documents that fail validation, fold into
    // `other`; so does nothing else here.
    let long = format!("query {} {{ __typename }}", "L".repeat(65));
    post(&client, &base, json!({ "query": long })).await;
    let invalid = post(&client, &base, json!({ "query": "query Broken { nope }" })).await;
    assert_eq!(
        invalid["errors"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
    // Off the public port: /metrics there is an unmatched path, labelled as one.
    let public = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("get");
    assert_eq!(public.status(), 404);
    // A webhook with no signing secret configured is refused.
    let hook = client
        .post(format!("{base}/webhooks/stripe"))
        .body("{}")
        .send()
        .await
        .expect("webhook");
    assert_eq!(hook.status(), 404);
    let email = format!("ada-{}@example.com", Uuid::new_v4().simple());
    let signed = post(
        &client,
        &base,
        json!({ "query": "mutation SignUp($e: String!) { signUp(email: $e, password: \"correct horse battery\", name: \"Ada\") { email } }",
                "variables": { "e": email } }),
    )
    .await;
    assert_eq!(signed["data"]["signUp"]["email"], email);
    // The worker sent the sign-up email.
    app.mail.wait_for(&email, "complete-sign-up", 1).await;

    let api = scrape(&client, &api_metrics).await;
    assert_conventions(&api);
    let graphql_ok = [("route", "/graphql"), ("method", "POST"), ("status", "200")];
    assert!(counted(&api, "linkai_http_requests_total", &graphql_ok) >= 5.0);
    assert!(counted(&api, "linkai_http_requests_total", &[("route", "/readyz")]) >= 1.0);
    // What the flow did, counted exactly.
    let hello = [("operation", "Hello"), ("type", "query")];
    let expected: [(&str, Labels, f64); 8] = [
        ("linkai_graphql_operations_total", &hello, 2.0),
        (
            "linkai_graphql_operations_total",
            &[("operation", "anonymous")],
            1.0,
        ),
        (
            "linkai_graphql_operations_total",
            &[("operation", "other"), ("type", "query")],
            2.0,
        ),
        (
            "linkai_graphql_operations_total",
            &[("operation", "SignUp"), ("type", "mutation")],
            1.0,
        ),
        ("linkai_graphql_errors_total", &[("code", &code)], 1.0),
        (
            "linkai_graphql_refused_documents_total",
            &[("reason", "tokens")],
            1.0,
        ),
        (
            "linkai_http_requests_total",
            &[("route", "unmatched"), ("method", "GET"), ("status", "404")],
            1.0,
        ),
        (
            "linkai_stripe_webhooks_total",
            &[("outcome", "rejected")],
            1.0,
        ),
    ];
    for (name, labels, count) in expected {
        assert_eq!(counted(&api, name, labels), count, "{name} {labels:?}");
    }
    assert_eq!(
        observed(&api, "linkai_graphql_operation_duration_seconds", &hello),
        2
    );
    // Every operation that ran reported its statements (the refused one did not run).
    assert_eq!(observed(&api, "linkai_graphql_request_statements", &[]), 7);
    assert!(observed(&api, "linkai_db_pool_wait_seconds", &[]) >= 1);
    for state in ["in_use", "idle"] {
        let gauge = samples(&api, "linkai_db_pool_connections", &[("state", state)]);
        assert!(matches!(gauge[..], [s] if matches!(s.value, Metric::Gauge(_))));
    }
    assert_eq!(samples(&api, "linkai_db_pool_waiting", &[]).len(), 1);

    let worker = scrape(&client, &worker_metrics).await;
    assert_conventions(&worker);
    assert!(counted(&worker, "linkai_jobs_total", &[("outcome", "run")]) >= 1.0);
    let failed = [("outcome", "failed")];
    assert!(samples(&worker, "linkai_jobs_total", &failed).is_empty());
    assert!(counted(&worker, "linkai_emails_total", &[("outcome", "sent")]) >= 1.0);
    let lag = samples(&worker, "linkai_outbox_lag_seconds", &[]);
    assert!(matches!(lag[..], [s] if matches!(s.value, Metric::Gauge(v) if v >= 0.0)));
}

/// A job whose every attempt fails is retried `MAX_RETRIES` times and then dropped for
/// good: apalis-redis would schedule it again, up to its own 25 attempts, unless the last
/// attempt aborts it (jobs/src/queue.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_failing_is_retried_then_dropped_for_good() {
    let app = TestApp::new().await;
    // Nothing listens on port 1: every attempt to send the sign-up email fails.
    let mut worker = crate::processes::worker(
        &app,
        "failing",
        &[
            ("METRICS_ADDR", "127.0.0.1:0"),
            ("SMTP_URL", "smtp://127.0.0.1:1"),
            ("JOBS_FIRST_RETRY_MS", "1"),
        ],
    );
    let metrics = worker.announced("metrics on ").await;
    let email = format!("ada-{}@example.com", Uuid::new_v4().simple());
    app.request_sign_up(&email, "Ada").await.data("signUp");
    let client = reqwest::Client::new();
    let outcome = |scrape: &Scrape, outcome: &str| {
        counted(scrape, "linkai_jobs_total", &[("outcome", outcome)])
    };
    let mut dropped = None;
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let scraped = try_scrape(&client, &metrics).await;
        if let Some(scraped) = scraped.filter(|s| outcome(s, "failed") > 0.0) {
            dropped = Some(scraped);
            break;
        }
    }
    let dropped = dropped.expect("the job failed for good");
    let retries = linkai_jobs::queue::MAX_RETRIES as f64;
    assert_eq!(outcome(&dropped, "retried"), retries);
    assert_eq!(outcome(&dropped, "failed"), 1.0);
    assert_eq!(outcome(&dropped, "run"), 0.0);
    // apalis-redis schedules a failed job again `attempt` seconds after it failed (9 s
    // here): past that, it has not run again.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let later = scrape(&client, &metrics).await;
    assert_eq!(outcome(&later, "retried"), retries);
    assert_eq!(outcome(&later, "failed"), 1.0);
    assert!(app.mail.all().is_empty());
}
