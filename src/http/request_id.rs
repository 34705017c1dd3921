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

/// Runs the request in the scope and span of its id, and answers the id.
pub async fn layer(State(trusted): State<Arc<[IpNet]>>, request: Request, next: Next) -> Response {
    let id = forwarded(&request, &trusted).unwrap_or_else(Uuid::new_v4);
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = linkai_jobs::request::scope(id, next.run(request).instrument(span)).await;
    let mut text = Uuid::encode_buffer();
    if let Ok(value) = HeaderValue::from_str(id.hyphenated().encode_lower(&mut text)) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

/// The proxy's id, if the peer is a trusted proxy and it sent one UUID. Anyone else's is
/// ignored: a client must not choose the id its log lines and audit events are filed under
/// (so the proxy must set the header, replacing any the client sent: docs/deploy.md).
fn forwarded(request: &Request, trusted: &[IpNet]) -> Option<Uuid> {
    let ConnectInfo(peer) = request.extensions().get::<ConnectInfo<SocketAddr>>()?;
    if !trusted.iter().any(|net| net.contains(peer.ip())) {
        return None;
    }
    // Exactly one: a proxy that added its id to the client's instead of replacing it does
    // not vouch for either.
    let mut values = request.headers().get_all(HEADER).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    Uuid::try_parse(value.to_str().ok()?.trim()).ok()
}
