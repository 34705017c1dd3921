//! GraphQL over HTTP as the spec (graphql.github.io/graphql-over-http) has it, checked by
//! graphql-http's `auditServer` in `clients/`:
//!
//! - `POST /graphql` with `Content-Type: application/json` (anything else: 415), one
//!   operation as `{ query, operationName?, variables?, extensions? }`;
//! - `GET /graphql?query=…&variables=…&operationName=…` for queries (a mutation: 405,
//!   `Allow: POST`); a browser asking for `text/html` without a query gets the playground;
//! - the answer is `application/graphql-response+json` when the client accepts it, else
//!   `application/json` (also for `*/*` and no `Accept`);
//! - a request error (the body, the document or its variables are refused, so nothing ran)
//!   has no `data`; it answers 400 with `application/graphql-response+json`, and 200 with
//!   `application/json` for a document that does not parse or validate (legacy clients read
//!   the body whatever the status). A body that is not JSON, or not a GraphQL request, is a
//!   400 either way.

use async_graphql::{Request, ServerError, Variables};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::error::{ApiError, ErrorCode};

/// The media type of an answer, chosen from the request's `Accept`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaType {
    GraphqlResponse,
    Json,
}

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json; charset=utf-8";
const JSON: &str = "application/json; charset=utf-8";

impl MediaType {
    /// The client's preference by quality; `application/graphql-response+json` on a tie.
    /// `None`: the client accepts neither (406).
    pub fn negotiate(headers: &HeaderMap) -> Option<MediaType> {
        let Some(accept) = headers.get(header::ACCEPT) else {
            return Some(MediaType::Json);
        };
        let Ok(accept) = accept.to_str() else {
            return Some(MediaType::Json);
        };
        let mut best: Option<(f32, MediaType)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim();
            let quality = parts
                .filter_map(|param| param.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if quality <= 0.0 {
                continue;
            }
            let offered = if media.eq_ignore_ascii_case("application/graphql-response+json") {
                MediaType::GraphqlResponse
            } else if media.eq_ignore_ascii_case("application/json")
                || media.eq_ignore_ascii_case("application/*")
                || media == "*/*"
            {
                MediaType::Json
            } else {
                continue;
            };
            let better = match best {
                None => true,
                Some((q, current)) => {
                    quality > q
                        || (quality == q
                            && offered == MediaType::GraphqlResponse
                            && current == MediaType::Json)
                }
            };
            if better {
                best = Some((quality, offered));
            }
        }
        best.map(|(_, media)| media)
    }

    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            MediaType::GraphqlResponse => GRAPHQL_RESPONSE_JSON,
            MediaType::Json => JSON,
        })
    }

    /// The status of a request error: the document was refused, nothing ran.
    fn request_error_status(self) -> StatusCode {
        match self {
            MediaType::GraphqlResponse => StatusCode::BAD_REQUEST,
            MediaType::Json => StatusCode::OK,
        }
    }
}

/// Whether the text asks for the playground: a browser navigating to the URL.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| {
            accept
                .split(',')
                .any(|range| range.split(';').next().unwrap_or_default().trim() == "text/html")
        })
}

/// Whether a POST says its body is JSON (`application/json`, any parameters).
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// The parameters of one GraphQL request, as a POST body or a GET query string carries
/// them (GET's `variables` and `extensions` are JSON text).
/// Keys the spec does not name (`documentId`, `id`, a client's own) are ignored, as they
/// are in a GET's query string: refusing them breaks clients that send them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostParams {
    query: String,
    #[serde(default)]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<Variables>,
    /// Checked to be a map, as the spec says; no extension is implemented, so it is not read.
    #[serde(default, rename = "extensions")]
    _extensions: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetParams {
    pub query: Option<String>,
    #[serde(default)]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<String>,
    #[serde(default)]
    extensions: Option<String>,
}

impl PostParams {
    /// The request in a POST body; `Err` is the reason it is not one.
    pub fn parse(body: &[u8]) -> Result<Request, String> {
        let params: PostParams = match serde_json::from_slice(body) {
            Ok(params) => params,
            Err(err) if err.is_data() => {
                return Err(format!("The body is not a GraphQL request: {err}."));
            }
            Err(err) => return Err(format!("The body is not JSON: {err}.")),
        };
        Ok(request(
            params.query,
            params.operation_name,
            params.variables,
        ))
    }
}

impl GetParams {
    /// The request in a GET query string (`self.query` is set).
    pub fn into_request(self) -> Result<Request, String> {
        let variables = match self.variables.as_deref() {
            None | Some("") => None,
            Some(text) => serde_json::from_str::<Option<Variables>>(text)
                .map_err(|err| format!("`variables` is not a JSON object: {err}."))?,
        };
        if let Some(text) = self.extensions.as_deref().filter(|text| !text.is_empty()) {
            serde_json::from_str::<Option<serde_json::Map<String, serde_json::Value>>>(text)
                .map_err(|err| format!("`extensions` is not a JSON object: {err}."))?;
        }
        Ok(request(
            self.query.unwrap_or_default(),
            self.operation_name,
            variables,
        ))
    }
}

fn request(query: String, operation_name: Option<String>, variables: Option<Variables>) -> Request {
    let mut request = Request::new(query);
    if let Some(name) = operation_name {
        request = request.operation_name(name);
    }
    if let Some(variables) = variables {
        request = request.variables(variables);
    }
    request
}

/// An answer that executed: 200, `data` and any field errors.
pub fn executed(media: MediaType, response: &async_graphql::Response) -> Response {
    let mut answer = body(StatusCode::OK, media, serde_json::to_vec(response));
    // A field refused for load or rate (`retryAfter`) tells HTTP-level retry logic too.
    let wait = response
        .errors
        .iter()
        .filter_map(|err| match err.extensions.as_ref()?.get("retryAfter")? {
            async_graphql::Value::Number(n) => n.as_u64(),
            _ => None,
        })
        .max();
    if let Some(wait) = wait {
        answer
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
    }
    answer
}

/// A request error: the document (or its variables) was refused before anything ran.
pub fn request_error(media: MediaType, errors: &[ServerError]) -> Response {
    let errors = serde_json::json!({ "errors": errors });
    body(
        media.request_error_status(),
        media,
        serde_json::to_vec(&errors),
    )
}

/// A failure of the HTTP request itself (not JSON, wrong method or content type): the same
/// status whatever the client accepts.
pub fn http_error(status: StatusCode, media: MediaType, err: &ApiError) -> Response {
    let errors = serde_json::json!({ "errors": [err.to_server_error()] });
    let mut answer = body(status, media, serde_json::to_vec(&errors));
    if let Some(wait) = err.retry_after() {
        answer
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
    }
    answer
}

/// One error answered as a request error.
pub fn request_error_of(media: MediaType, err: &ApiError) -> Response {
    request_error(media, &[err.to_server_error()])
}

fn body(status: StatusCode, media: MediaType, bytes: serde_json::Result<Vec<u8>>) -> Response {
    let Ok(bytes) = bytes else {
        // Serialising our own values cannot fail; answer something coded if it ever does.
        let err = ApiError::new(ErrorCode::Internal, "The answer could not be written.");
        return (StatusCode::INTERNAL_SERVER_ERROR, err.message().to_owned()).into_response();
    };
    let mut response = (status, bytes).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, media.content_type());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> Option<MediaType> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).expect("ascii"));
        MediaType::negotiate(&headers)
    }

    #[test]
    fn negotiation_follows_the_clients_preference() {
        use MediaType::*;
        assert_eq!(MediaType::negotiate(&HeaderMap::new()), Some(Json));
        assert_eq!(accept("application/json"), Some(Json));
        assert_eq!(accept("*/*"), Some(Json));
        assert_eq!(
            accept("application/graphql-response+json"),
            Some(GraphqlResponse)
        );
        // urql, graphql-http's client and Apollo Client send this.
        assert_eq!(
            accept("application/graphql-response+json, application/json;q=0.9"),
            Some(GraphqlResponse)
        );
        assert_eq!(
            accept("application/json, application/graphql-response+json;q=0.5"),
            Some(Json)
        );
        assert_eq!(
            accept("application/graphql-response+json;q=0, */*"),
            Some(Json)
        );
        assert_eq!(accept("text/html"), None);
        // A browser's address bar: */* at a lower quality.
        assert_eq!(
            accept("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            Some(Json)
        );
    }

    #[test]
    fn post_bodies_must_be_one_well_formed_request() {
        assert!(PostParams::parse(br#"{"query":"{ __typename }"}"#).is_ok());
        assert!(PostParams::parse(
            br#"{"query":"{ __typename }","operationName":null,"variables":null,"extensions":null}"#
        )
        .is_ok());
        assert!(
            PostParams::parse(br#"{"query":"{ __typename }","documentId":null,"id":"q1"}"#).is_ok()
        );
        for bad in [
            &br#"{"qeury":"{ __typename }"}"#[..],
            br#"{"query":0}"#,
            br#"{"query":"{ a }","variables":"x"}"#,
            br#"{"query":"{ a }","operationName":1}"#,
            br#"[{"query":"{ a }"}]"#,
            b"{ \"not json",
        ] {
            assert!(
                PostParams::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
