//! A thin proxy in front of the Stripe fake, for the tests that count or disturb what the
//! server and the workers ask Stripe.
//!
//! Every request is recorded (method, path, `Stripe-Version`, `Idempotency-Key`); one that
//! does not name the pinned API version (`linkai::billing::transport::API_VERSION`) is
//! refused, as Stripe would refuse a version it does not know, and the rest are forwarded
//! to localstripe, which ignores the header. The harness puts every app's Stripe behind
//! one, so the whole suite checks the version. Three behaviours can be switched on:
//! - **delayed calls**: the next calls matching a method and path reach Stripe late;
//! - **held answers**: the next calls matching a method and path are forwarded at once (so
//!   Stripe acts) and their answer is held back, as when a response arrives after the
//!   request timed out or the process died between Stripe's call and the commit;
//! - **replays**: as Stripe documents (and localstripe does not), a request repeating an
//!   `Idempotency-Key` gets the first answer again without reaching Stripe.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// One request as it reached the proxy.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub stripe_version: Option<String>,
    pub idempotency_key: Option<String>,
}

struct Hold {
    method: String,
    path: String,
    times: usize,
    for_: Duration,
    /// Before the call reaches Stripe (a slow network), else after Stripe acted (a lost or
    /// late answer).
    before: bool,
}

#[derive(Default)]
struct Shared {
    replays: HashMap<String, (StatusCode, Bytes)>,
    holds: Vec<Hold>,
    seen: Vec<Seen>,
}

struct Proxy {
    upstream: String,
    replay: bool,
    client: reqwest::Client,
    shared: Mutex<Shared>,
}

impl Proxy {
    fn shared(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How long to hold this call here (`before` Stripe or after it), taking one of the
    /// matching holds' turns.
    fn held(&self, method: &str, path: &str, before: bool) -> Option<Duration> {
        let mut shared = self.shared();
        let hold = shared
            .holds
            .iter_mut()
            .find(|h| h.times > 0 && h.before == before && h.method == method && h.path == path)?;
        hold.times -= 1;
        Some(hold.for_)
    }
}

pub struct StripeProxy {
    pub url: String,
    proxy: Arc<Proxy>,
    server: tokio::task::JoinHandle<()>,
}

impl StripeProxy {
    /// A proxy to the Stripe fake; `replay`: answer repeated idempotency keys as Stripe does.
    pub async fn start(replay: bool) -> Self {
        let upstream = crate::harness::stripe_fake().await.to_owned();
        let proxy = Arc::new(Proxy {
            upstream,
            replay,
            client: reqwest::Client::new(),
            shared: Mutex::default(),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(Arc::clone(&proxy));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, proxy, server }
    }

    /// Holds back the answer of the next `times` calls of `method` to exactly `path` for
    /// `for_`, after Stripe has acted on them.
    pub fn hold(&self, method: &str, path: &str, times: usize, for_: Duration) {
        self.proxy.shared().holds.push(Hold {
            method: method.to_owned(),
            path: path.to_owned(),
            times,
            for_,
            before: false,
        });
    }

    /// Delays the next `times` calls of `method` to exactly `path` by `for_` before they
    /// reach Stripe: Stripe acts late.
    pub fn delay(&self, method: &str, path: &str, times: usize, for_: Duration) {
        self.proxy.shared().holds.push(Hold {
            method: method.to_owned(),
            path: path.to_owned(),
            times,
            for_,
            before: true,
        });
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.proxy.shared().seen.clone()
    }

    /// Requests whose method and path (`GET /v1/subscriptions/sub_...`) start with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        let shared = self.proxy.shared();
        let calls = shared.seen.iter();
        calls
            .filter(|seen| format!("{} {}", seen.method, seen.path).starts_with(prefix))
            .count()
    }
}

impl Drop for StripeProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

async fn forward(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let method = parts.method.as_str().to_owned();
    let key = header(&parts.headers, "idempotency-key");
    let version = header(&parts.headers, "stripe-version");
    proxy.shared().seen.push(Seen {
        method: method.clone(),
        path: path.clone(),
        stripe_version: version.clone(),
        idempotency_key: key.clone(),
    });
    if version.as_deref() != Some(linkai::billing::transport::API_VERSION) {
        let error = serde_json::json!({ "error": {
            "type": "invalid_request_error",
            "message": format!("Stripe-Version {version:?} is not the pinned version"),
        }});
        return json_response(StatusCode::BAD_REQUEST, Bytes::from(error.to_string()));
    }
    let replayed = key
        .as_ref()
        .filter(|_| proxy.replay)
        .and_then(|key| proxy.shared().replays.get(key).cloned());
    if let Some((status, body)) = replayed {
        return json_response(status, body);
    }
    if let Some(for_) = proxy.held(&method, &path, true) {
        tokio::time::sleep(for_).await;
    }
    let target = match parts.uri.query() {
        Some(query) => format!("{}{path}?{query}", proxy.upstream),
        None => format!("{}{path}", proxy.upstream),
    };
    let mut upstream = proxy
        .client
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).expect("a method"),
            target,
        )
        .body(body);
    for name in ["authorization", "content-type"] {
        if let Some(value) = header(&parts.headers, name) {
            upstream = upstream.header(name, value);
        }
    }
    let Ok(answer) = upstream.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let body = answer.bytes().await.unwrap_or_default();
    if let Some(key) = key.filter(|_| proxy.replay) {
        proxy
            .shared()
            .replays
            .entry(key)
            .or_insert((status, body.clone()));
    }
    if let Some(for_) = proxy.held(&method, &path, false) {
        tokio::time::sleep(for_).await;
    }
    json_response(status, body)
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}
