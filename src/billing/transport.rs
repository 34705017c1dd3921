//! How we talk to Stripe: async-stripe's request types (`stripe_client_core`), sent by our
//! own client, because async-stripe's sends the API version it was generated for (newer
//! than the fields we read) and has no timeouts or setting to change either.
//!
//! - **One pinned API version**, [`API_VERSION`], on every request. Why this one, and how
//!   to move to another, is in docs/billing.md ("Stripe API version").
//! - **Timeouts**: [`CONNECT_TIMEOUT`] to connect and `STRIPE_TIMEOUT_SECS` for each
//!   attempt as a whole, so a hung Stripe never hangs a request or a job.
//! - **Retries** only where repeating cannot act twice: reads, deletes and requests
//!   carrying an idempotency key; only for what may pass (a network failure or timeout, a
//!   409, 429 or 5xx, unless Stripe says `Stripe-Should-Retry: false`); at most
//!   [`ATTEMPTS`] attempts with doubling backoff.

use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use stripe_client_core::{CustomizedStripeRequest, StripeClient, StripeClientErr, StripeMethod};

/// The Stripe API version every request names. The newest version that still has every
/// field the adapter reads (`invoice.payment_intent`, `subscription.current_period_*`:
/// both moved in 2025-03-31.basil); `tests/fixtures/stripe/` holds its published fixtures.
pub const API_VERSION: &str = "2025-02-24.acacia";

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const ATTEMPTS: u32 = 3;
/// The wait before the second attempt; each later one waits twice as long.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// A failed call, as our adapter maps it.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Stripe answered with an error status; its body.
    #[error("Stripe answered {status}")]
    Status { status: u16, body: Bytes },
    /// No answer: connecting, sending or reading failed, or the attempt timed out.
    #[error("{0}")]
    Unreachable(String),
    #[error("unreadable answer: {0}")]
    Unreadable(String),
}

impl StripeClientErr for TransportError {
    fn deserialize_err(msg: impl std::fmt::Display) -> Self {
        TransportError::Unreadable(msg.to_string())
    }
}

#[derive(Clone)]
pub struct Transport {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// `https://api.stripe.com/`, or a local fake's base; ends with `/`.
    base: String,
    authorization: HeaderValue,
    /// How long one attempt may take, from sending to the whole answer.
    attempt_timeout: Duration,
}

impl Transport {
    pub fn new(secret_key: &str, base: &str, attempt_timeout: Duration) -> anyhow::Result<Self> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let mut authorization = HeaderValue::from_str(&format!("Bearer {secret_key}"))?;
        authorization.set_sensitive(true);
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            base: base.to_owned(),
            authorization,
            attempt_timeout,
        })
    }

    fn request(
        &self,
        method: &Method,
        uri: &str,
        key: Option<&str>,
        body: &Bytes,
    ) -> Result<Request<Full<Bytes>>, TransportError> {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(AUTHORIZATION, self.authorization.clone())
            .header("stripe-version", API_VERSION);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        if !body.is_empty() {
            request = request.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        request
            .body(Full::new(body.clone()))
            .map_err(|err| TransportError::Unreadable(err.to_string()))
    }

    /// One attempt: Stripe's status, whether it says to retry, and the body. Counted and
    /// timed by endpoint (ids cut out), method and status (`error` when none came back).
    async fn attempt(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Option<bool>, Bytes), TransportError> {
        let endpoint = crate::metrics::stripe_endpoint(request.uri().path());
        let method = match *request.method() {
            Method::GET => "GET",
            Method::DELETE => "DELETE",
            _ => "POST",
        };
        let started = std::time::Instant::now();
        let result = self.attempt_once(request).await;
        let status = match &result {
            Ok((status, _, _)) => status.as_u16().to_string(),
            Err(_) => "error".to_owned(),
        };
        metrics::histogram!("linkai_stripe_request_duration_seconds", "endpoint" => endpoint.clone(), "method" => method)
            .record(started.elapsed());
        metrics::counter!("linkai_stripe_requests_total", "endpoint" => endpoint, "method" => method, "status" => status)
            .increment(1);
        result
    }

    async fn attempt_once(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Option<bool>, Bytes), TransportError> {
        let answer = async {
            let response = self.client.request(request).await.map_err(unreachable)?;
            let status = response.status();
            let retry = response
                .headers()
                .get("stripe-should-retry")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse().ok());
            let body = response.into_body().collect().await.map_err(unreachable)?;
            Ok((status, retry, body.to_bytes()))
        };
        tokio::time::timeout(self.attempt_timeout, answer)
            .await
            .unwrap_or_else(|_| Err(TransportError::Unreachable("timed out".into())))
    }
}

fn unreachable(err: impl std::fmt::Display) -> TransportError {
    TransportError::Unreachable(err.to_string())
}

/// Whether a failed attempt may be tried again.
fn retryable(failure: &Result<(StatusCode, Option<bool>, Bytes), TransportError>) -> bool {
    match failure {
        Err(TransportError::Unreachable(_)) => true,
        Err(_) => false,
        Ok((status, should_retry, _)) => {
            let worth = *status == StatusCode::CONFLICT
                || *status == StatusCode::TOO_MANY_REQUESTS
                || status.is_server_error();
            should_retry.unwrap_or(worth)
        }
    }
}

impl StripeClient for Transport {
    type Err = TransportError;

    async fn execute(&self, request: CustomizedStripeRequest) -> Result<Bytes, TransportError> {
        let (request, config) = request.into_pieces();
        let key = config
            .request_strategy
            .as_ref()
            .and_then(|strategy| strategy.get_key())
            .map(stripe_client_core::IdempotencyKey::into_inner);
        let method = match request.method {
            StripeMethod::Get => Method::GET,
            StripeMethod::Post => Method::POST,
            StripeMethod::Delete => Method::DELETE,
        };
        let mut uri = format!("{}v1{}", self.base, request.path);
        if let Some(query) = &request.query {
            uri = format!("{uri}?{query}");
        }
        let body = Bytes::from(request.body.unwrap_or_default());
        // Repeating a POST without a key could act twice.
        let repeatable = method != Method::POST || key.is_some();
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let outcome = self
                .attempt(self.request(&method, &uri, key.as_deref(), &body)?)
                .await;
            if attempt < ATTEMPTS && repeatable && retryable(&outcome) {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                attempt += 1;
                continue;
            }
            return match outcome? {
                (status, _, body) if status.is_success() => Ok(body),
                (status, _, body) => Err(TransportError::Status {
                    status: status.as_u16(),
                    body,
                }),
            };
        }
    }
}
