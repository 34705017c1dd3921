//! CORS for `/graphql`: pages on the configured origins (`CORS_ORIGINS`, by default the
//! origin of `APP_URL`) may call the API from a browser; other origins get no CORS header,
//! so the browser keeps their pages from reading any answer. Tokens travel in
//! `Authorization`, never in cookies, so credentials are not allowed.
//!
//! Not on `/webhooks/stripe`: Stripe is no browser.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// What a GraphQL client sends: urql and Apollo Client send `Content-Type` and `Accept`;
/// Apollo adds its client-awareness and CSRF-prevention headers when configured.
const ALLOWED_HEADERS: &str = "accept, authorization, content-type, apollo-require-preflight, \
     apollographql-client-name, apollographql-client-version, x-apollo-operation-name";
const ALLOWED_METHODS: &str = "GET, POST, OPTIONS";
/// Browsers cap this (Chromium at 2 hours); one preflight per origin and header set for that
/// long.
const MAX_AGE_SECS: &str = "7200";

pub struct Cors {
    origins: Vec<HeaderValue>,
}

impl Cors {
    pub fn new(origins: &[String]) -> Self {
        Self {
            origins: origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok())
                .collect(),
        }
    }

    /// Whether a socket may open: from one of our origins, from the API's own (the
    /// playground), or from no browser at all. A browser always sends `Origin` when a page
    /// opens a WebSocket, and sockets have no preflight, so the check is here rather than in
    /// the browser.
    pub fn admits_socket(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        self.allowed(headers).is_some() || same_origin(origin, headers.get(header::HOST))
    }

    /// The request's `Origin`, when it is one of ours (compared exactly, as browsers send
    /// it: lower-case scheme and host).
    fn allowed<'h>(&self, headers: &'h HeaderMap) -> Option<&'h HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        self.origins
            .iter()
            .any(|allowed| allowed.as_bytes().eq_ignore_ascii_case(origin.as_bytes()))
            .then_some(origin)
    }
}

/// Whether `origin` names the host the request was sent to (`Host`): the page came from this
/// server itself.
fn same_origin(origin: &HeaderValue, host: Option<&HeaderValue>) -> bool {
    let (Ok(origin), Some(Ok(host))) = (origin.to_str(), host.map(HeaderValue::to_str)) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

/// Answers preflights and marks every other `/graphql` answer for allowed origins.
pub async fn layer(State(cors): State<Arc<Cors>>, request: Request, next: Next) -> Response {
    let origin = cors.allowed(request.headers()).cloned();
    if request.method() == Method::OPTIONS {
        return preflight(origin.as_ref(), request.headers());
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    // Answers differ by origin, so shared caches must key on it.
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    response
}

fn preflight(origin: Option<&HeaderValue>, request: &HeaderMap) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
    headers.insert(
        header::VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        ),
    );
    let Some(origin) = origin else {
        // A stranger's preflight, or a plain OPTIONS: nothing that lets a browser go on.
        if request.contains_key(header::ORIGIN) {
            *response.status_mut() = StatusCode::FORBIDDEN;
        }
        return response;
    };
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOWED_METHODS),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOWED_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE_SECS),
    );
    response
}
