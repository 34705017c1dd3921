//! graphql-transport-ws (the `graphql-ws` library's protocol) on `GET /graphql`.
//!
//! - The upgrade checks `Origin` against the CORS origins: a page elsewhere cannot open a
//!   socket (browsers send `Origin` on every WebSocket; other clients need not).
//! - `connection_init` carries the token (`{"authorization": "Bearer …"}`, as the HTTP
//!   header); without a live one the socket closes (4403). An account holds at most
//!   [`crate::live::SOCKETS_PER_ACCOUNT`] sockets per server, a socket at most
//!   [`SUBSCRIPTIONS_PER_SOCKET`] subscriptions.
//! - Only subscriptions run here; queries and mutations go over HTTP, with its limits.
//!   Documents get the same bounds as over HTTP (tokens, depth, aliases).
//! - Ping/pong is the protocol's own (async-graphql answers pings).
//! - When the server shuts down, sockets close with 1001 "going away".

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_graphql::parser::types::OperationType;
use async_graphql::{Data, Executor, Request, Response};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use futures_util::stream::{self, BoxStream, SplitSink};
use futures_util::{SinkExt as _, StreamExt as _};

use crate::error::ApiError;
use crate::graphql::context::RequestContext;
use crate::graphql::shape;
use crate::live::Hub;
use crate::App;

/// Subscriptions one socket may hold at once.
pub const SUBSCRIPTIONS_PER_SOCKET: usize = 20;
/// The largest message a client may send: a subscribe message is one small document.
const MAX_MESSAGE_BYTES: usize = crate::http::MAX_BODY_BYTES;
/// graphql-transport-ws: "Forbidden", for a `connection_init` without a live token.
const CLOSE_FORBIDDEN: u16 = 4403;
/// graphql-transport-ws: no `connection_init` within [`INIT_TIMEOUT`].
const CLOSE_INIT_TIMEOUT: u16 = 4408;
/// WebSocket: the server is going away.
const CLOSE_GOING_AWAY: u16 = 1001;
/// How long a socket may stay open without a `connection_init`.
const INIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Upgrades `GET /graphql` to graphql-transport-ws, when the page's origin may.
pub async fn upgrade(
    app: Arc<App>,
    allowed_origin: bool,
    headers: &HeaderMap,
    upgrade: WebSocketUpgrade,
) -> HttpResponse {
    if !allowed_origin {
        return (StatusCode::FORBIDDEN, "This origin may not open sockets.").into_response();
    }
    let Some(open) = app.live.open_socket() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many sockets are open.",
        )
            .into_response();
    };
    let Some(protocol) = transport_ws(headers).await else {
        return (
            StatusCode::BAD_REQUEST,
            "Ask for the graphql-transport-ws subprotocol.",
        )
            .into_response();
    };
    upgrade
        .protocols(["graphql-transport-ws"])
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            serve(app, socket, protocol).await;
            drop(open);
        })
}

/// The graphql-transport-ws protocol, if the client offers it (the older `graphql-ws`
/// protocol of subscriptions-transport-ws is not served, whatever else it offers).
async fn transport_ws(headers: &HeaderMap) -> Option<GraphQLProtocol> {
    let offered = headers
        .get(axum::http::header::SEC_WEBSOCKET_PROTOCOL)?
        .to_str()
        .ok()?;
    if !offered
        .split(',')
        .any(|p| p.trim() == "graphql-transport-ws")
    {
        return None;
    }
    // The library's extractor is the only way to name its protocol: give it only this one.
    let (mut parts, ()) = axum::http::Request::builder()
        .header(
            axum::http::header::SEC_WEBSOCKET_PROTOCOL,
            "graphql-transport-ws",
        )
        .body(())
        .ok()?
        .into_parts();
    <GraphQLProtocol as axum::extract::FromRequestParts<()>>::from_request_parts(&mut parts, &())
        .await
        .ok()
}

async fn serve(app: Arc<App>, socket: WebSocket, protocol: GraphQLProtocol) {
    let (sink, source) = socket.split();
    // The protocol's messages go through a channel, so this side can add the close codes
    // the library does not send (4403, 4408, 1001).
    let (to_client, outgoing) = futures_channel::mpsc::channel::<Message>(16);
    let executor = LiveExecutor {
        app: Arc::clone(&app),
        open: Arc::default(),
    };
    let hub = app.live.clone();
    let protocol_task = GraphQLWebSocket::new_with_pair(
        to_client.sink_map_err(|_| axum::Error::new("the socket closed")),
        source,
        executor,
        protocol,
    )
    .with_data(hub_data(&hub))
    .on_connection_init(connection_init(Arc::clone(&app)))
    .serve();
    let forward = forward(sink, outgoing, hub);
    tokio::pin!(forward);
    tokio::select! {
        // The protocol is done: what it sent last (a close frame) still goes out.
        () = protocol_task => forward.await,
        () = &mut forward => {}
    }
}

/// Sends the protocol's messages to the client until either side is done; closes sockets
/// that do not initialise in time (4408) and, at shutdown, every socket (1001).
async fn forward(
    mut sink: SplitSink<WebSocket, Message>,
    mut outgoing: futures_channel::mpsc::Receiver<Message>,
    hub: Hub,
) {
    let closing = hub.closed();
    let init_deadline = tokio::time::sleep(INIT_TIMEOUT);
    tokio::pin!(closing, init_deadline);
    let mut acknowledged = false;
    loop {
        let message = tokio::select! {
            next = outgoing.next() => match next {
                Some(message) => message,
                None => return,
            },
            () = &mut init_deadline, if !acknowledged => {
                close(CLOSE_INIT_TIMEOUT, "Connection initialisation timeout")
            }
            () = &mut closing => close(CLOSE_GOING_AWAY, "The server is going away."),
        };
        acknowledged |=
            matches!(&message, Message::Text(text) if text.as_str().contains("\"connection_ack\""));
        let closes = matches!(message, Message::Close(_));
        if sink.send(forbidden_on_init_failure(message)).await.is_err() || closes {
            return;
        }
    }
}

fn hub_data(hub: &Hub) -> Data {
    let mut data = Data::default();
    data.insert(hub.clone());
    data
}

/// async-graphql closes a refused `connection_init` with 1002; graphql-transport-ws asks
/// for 4403 Forbidden, which clients (graphql-ws) treat as final rather than retrying.
fn forbidden_on_init_failure(message: Message) -> Message {
    match message {
        Message::Close(Some(frame)) if frame.code == 1002 => {
            close(CLOSE_FORBIDDEN, frame.reason.as_str())
        }
        other => other,
    }
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.to_owned().into(),
    }))
}

/// The socket's caller, from the token in `connection_init`'s payload.
fn connection_init(
    app: Arc<App>,
) -> impl FnOnce(serde_json::Value) -> BoxFuture<async_graphql::Result<Data>> + Send + 'static {
    move |payload| {
        Box::pin(async move {
            let refused = || async_graphql::Error::new("A live token is needed.");
            let token = token_of(&payload).ok_or_else(refused)?;
            let db = app.db.for_request();
            let caller = crate::auth::authenticate(&db, Some(&token), &app.config.sessions)
                .await
                .map_err(async_graphql::Error::from)?
                .ok_or_else(refused)?;
            let guard = app.live.sign_in_socket(caller.user_id).ok_or_else(|| {
                async_graphql::Error::new("This account has too many sockets open.")
            })?;
            let db = db.acting_as(Some(caller.user_id));
            let mut context = RequestContext::new(db, Some(caller), None, app.passwords.clone());
            context.stripe = app.stripe.clone();
            let mut data = Data::default();
            data.insert(context);
            data.insert(Arc::new(guard));
            Ok(data)
        })
    }
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// `authorization` (or `Authorization`) in the payload: `Bearer <token>` or the token alone.
fn token_of(payload: &serde_json::Value) -> Option<String> {
    let value = payload
        .get("authorization")
        .or_else(|| payload.get("Authorization"))?
        .as_str()?
        .trim();
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        Some(_) => return None,
        None => value,
    };
    (!token.is_empty()).then(|| token.to_owned())
}

/// The schema behind the socket: subscriptions only, bounded as over HTTP, each response's
/// errors coded as over HTTP.
#[derive(Clone)]
struct LiveExecutor {
    app: Arc<App>,
    /// Subscriptions open on this socket.
    open: Arc<AtomicUsize>,
}

impl Executor for LiveExecutor {
    async fn execute(&self, _request: Request) -> Response {
        refused(&ApiError::bad_input(
            "Send queries and mutations over HTTP: sockets carry subscriptions.",
        ))
    }

    fn execute_stream(
        &self,
        request: Request,
        data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let mut request = request;
        if let Err(err) = self.admit(&mut request) {
            return stream::once(async move { refused(&err) }).boxed();
        }
        let Some(slot) = Slot::take(&self.open) else {
            let err = ApiError::new(
                crate::error::ErrorCode::RateLimited,
                format!("A socket holds at most {SUBSCRIPTIONS_PER_SOCKET} subscriptions."),
            );
            return stream::once(async move { refused(&err) }).boxed();
        };
        let responses = self
            .app
            .schema
            .execute_stream_with_session_data(request, data.unwrap_or_default());
        responses
            .map(move |mut response| {
                let _held = &slot;
                crate::graphql::errors::code_errors(&mut response);
                response
            })
            .boxed()
    }
}

impl LiveExecutor {
    /// The same bounds as a document over HTTP (src/http.rs), and a subscription.
    fn admit(&self, request: &mut Request) -> Result<(), ApiError> {
        if shape::count_tokens(&request.query) > shape::MAX_TOKENS {
            return Err(ApiError::new(
                crate::error::ErrorCode::QueryTooComplex,
                format!("The document has more than {} tokens.", shape::MAX_TOKENS),
            ));
        }
        self.app.documents.prepare(request);
        let operation_name = request.operation_name.clone();
        let variables = std::mem::take(&mut request.variables);
        let checked = match request.parsed_query() {
            Ok(doc) => shape::check(
                doc,
                operation_name.as_deref(),
                &variables,
                self.app.config.http.introspection,
            ),
            // The schema reports the parse error itself.
            Err(_) => Ok(None),
        };
        request.variables = variables;
        match checked? {
            Some(shape) if shape.operation != OperationType::Subscription => {
                Err(ApiError::bad_input(
                    "Send queries and mutations over HTTP: sockets carry subscriptions.",
                ))
            }
            _ => Ok(()),
        }
    }
}

/// One of a socket's subscriptions, counted until dropped.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(open: &Arc<AtomicUsize>) -> Option<Slot> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < SUBSCRIPTIONS_PER_SOCKET).then_some(n + 1)
        })
        .ok()
        .map(|_| Slot(Arc::clone(open)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn refused(err: &ApiError) -> Response {
    Response::from_errors(vec![err.to_server_error()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_the_payload_as_from_the_header() {
        let token = |payload: serde_json::Value| token_of(&payload);
        assert_eq!(
            token(serde_json::json!({"authorization": "Bearer abc"})).as_deref(),
            Some("abc")
        );
        assert_eq!(
            token(serde_json::json!({"Authorization": "bearer  abc "})).as_deref(),
            Some("abc")
        );
        assert_eq!(
            token(serde_json::json!({"authorization": "abc"})).as_deref(),
            Some("abc")
        );
        assert_eq!(
            token(serde_json::json!({"authorization": "Basic abc"})),
            None
        );
        assert_eq!(token(serde_json::json!({"authorization": ""})), None);
        assert_eq!(token(serde_json::json!({"token": "abc"})), None);
        assert_eq!(token(serde_json::json!(null)), None);
    }
}
