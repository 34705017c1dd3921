//! `X-Request-Id`: each request's id, taken from a trusted proxy (`TRUSTED_PROXIES`) when it
//! sends a UUID (nginx's 32-hex `$request_id` is one), made here otherwise, and returned on
//! the response. Every log line of the request is in its `request` span; the jobs it queues
//! carry the id on (`linkai_jobs::request`), and so do the audit and security events it
//! writes (`RequestContext::request_id`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::config::IpNet;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Runs the request in the scope and span of its id, and answers the id. When traces are
/// exported (src/traces.rs), the span continues a trusted proxy's `traceparent`, and the
/// jobs the request queues continue the span.
pub async fn layer(State(trusted): State<Arc<[IpNet]>>, request: Request, next: Next) -> Response {
    let proxy = from_proxy(&request, &trusted);
    let id = proxy
        .then(|| forwarded(&request))
        .flatten()
        .unwrap_or_else(Uuid::new_v4);
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        otel.kind = tracing::field::Empty,
        http.request.method = tracing::field::Empty,
        url.path = tracing::field::Empty,
    );
    let mut trace_parent = None;
    if crate::traces::exported() {
        span.record("otel.kind", "server");
        span.record("http.request.method", request.method().as_str());
        // The path alone: a query string may hold a link's token.
        span.record("url.path", request.uri().path());
        let from_proxy = proxy.then(|| only(&request, "traceparent")).flatten();
        if let Some(parent) = from_proxy.and_then(|value| value.to_str().ok()) {
            linkai_jobs::request::continue_trace(&span, parent);
        }
        trace_parent = linkai_jobs::request::trace_parent(&span);
    }
    let origin = linkai_jobs::request::Origin {
        request_id: id,
        trace_parent,
    };
    let mut response =
        linkai_jobs::request::scope(origin, next.run(request).instrument(span)).await;
    let mut text = Uuid::encode_buffer();
    if let Ok(value) = HeaderValue::from_str(id.hyphenated().encode_lower(&mut text)) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

/// Whether the peer is a trusted proxy. Anyone else's id and trace are ignored: a client
/// must not choose the id its log lines and audit events are filed under (so the proxy must
/// set the header, replacing any the client sent: docs/deploy.md).
fn from_proxy(request: &Request, trusted: &[IpNet]) -> bool {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| trusted.iter().any(|net| net.contains(peer.ip())))
}

/// The proxy's id, if it sent one UUID.
fn forwarded(request: &Request) -> Option<Uuid> {
    Uuid::try_parse(only(request, HEADER.as_str())?.to_str().ok()?.trim()).ok()
}

/// The header if the request has exactly one: a proxy that added its value to the client's
/// instead of replacing it does not vouch for either.
fn only<'r>(request: &'r Request, name: &str) -> Option<&'r HeaderValue> {
    let mut values = request.headers().get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Some(value),
        _ => None,
    }
}
