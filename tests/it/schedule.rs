//! Scheduled work runs once per interval whatever the number of workers (src/schedule.rs),
//! counted where it costs: the calls the workers make to Stripe.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};

use crate::billing::subscribe;
use crate::harness::{stripe_fake, TestApp, STRIPE_KEY};

/// Stands between the server or the workers and the Stripe fake and writes down every call it passes on
/// (`GET /v1/subscriptions/sub_...`).
pub struct CountingProxy {
    pub url: String,
    calls: Arc<Mutex<Vec<String>>>,
}

#[derive(Clone)]
struct Upstream {
    base: String,
    client: reqwest::Client,
    calls: Arc<Mutex<Vec<String>>>,
}

async fn forward(
    State(upstream): State<Upstream>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Bytes) {
    upstream
        .calls
        .lock()
        .expect("lock")
        .push(format!("{method} {}", uri.path()));
    let target = format!(
        "{}{}",
        upstream.base,
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut request = upstream.client.request(method, target).body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let answer = request.send().await.expect("the fake answers");
    let status = StatusCode::from_u16(answer.status().as_u16()).expect("status");
    (status, answer.bytes().await.expect("body"))
}

impl CountingProxy {
    pub async fn start(base: &str) -> Self {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let upstream = Upstream {
            base: base.to_owned(),
            client: reqwest::Client::new(),
            calls: calls.clone(),
        };
        let router = axum::Router::new().fallback(forward).with_state(upstream);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("port");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, calls }
    }

    /// Calls whose method and path start with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        let calls = self.calls.lock().expect("lock");
        calls.iter().filter(|c| c.starts_with(prefix)).count()
    }
}

/// Issue 16: every worker ran the hourly reconciliation of every workspace, so N workers
/// made N times the Stripe calls. Three worker processes start together (each wakes at
/// once, then hourly); one round reads each billed workspace's subscription and customer
/// from Stripe once, and nothing more follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_reconcile_each_workspace_once_per_round() {
    let app = TestApp::builder().with_stripe().start().await;
    let ada = app.sign_up("Ada").await;
    subscribe(&app, &ada, &ada.own_workspace, "GROWTH").await;
    let bob = app.sign_up("Bob").await;
    subscribe(&app, &bob, &bob.own_workspace, "STARTER").await;
    let billed = 2;

    let proxy = CountingProxy::start(stripe_fake().await).await;
    let workers: Vec<_> = (0..3)
        .map(|i| {
            app.worker_process(
                &format!("reconciler-{i}"),
                &[
                    ("STRIPE_SECRET_KEY", STRIPE_KEY),
                    ("STRIPE_API_BASE", &proxy.url),
                    ("BILLING_SYNC_SECS", "3600"),
                    ("TRIAL_SCAN_SECS", "3600"),
                ],
            )
        })
        .collect();

    let subscriptions = "GET /v1/subscriptions/sub_";
    let customers = "GET /v1/customers/cus_";
    for _ in 0..300 {
        if proxy.count(subscriptions) >= billed && proxy.count(customers) >= billed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The other two workers have woken by now too; give them time to (not) go round.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        (proxy.count(subscriptions), proxy.count(customers)),
        (billed, billed),
        "{:#?}",
        proxy.calls.lock().expect("lock")
    );
    drop(workers);
}
