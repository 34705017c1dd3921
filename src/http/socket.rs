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
//! - A client that takes nothing for [`SEND_TIMEOUT`] is dropped (4499): what one socket
//!   holds is bounded (a batch read from the log, 16 messages, the kernel's buffer), and no
//!   other socket waits for it.
//! - When the server shuts down, sockets close with 1001 "going away".

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use async_graphql::http::{WebSocketProtocols, WsMessage};
use async_graphql::parser::types::OperationType;
use async_graphql::{Data, Executor, Request, Response};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use futures_util::stream::{self, BoxStream, SplitSink};
use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use uuid::Uuid;

use crate::auth::bearers::Lookup;
use crate::error::ApiError;
use crate::graphql::context::RequestContext;
use crate::graphql::{errors, handoff, shape};
use crate::live::{Hub, OpenSocket};
use crate::App;

/// Subscriptions one socket may hold at once.
pub const SUBSCRIPTIONS_PER_SOCKET: usize = 20;
/// A socket's read buffer: what the client sends is small (`connection_init`, `subscribe`
/// with one small document, `pong`, `complete`); a longer one, up to [`MAX_MESSAGE_BYTES`],
/// takes one read per 512 bytes. Each socket keeps it (at 4 KiB, a seventh of a socket's
/// memory).
const SOCKET_BUFFER_BYTES: usize = 512;
/// The largest message a client may send: a subscribe message is one small document.
const MAX_MESSAGE_BYTES: usize = crate::http::MAX_BODY_BYTES;
/// The WebSocket subprotocol served (graphql-transport-ws, the `graphql-ws` library's).
const SUBPROTOCOL: &str = "graphql-transport-ws";
/// graphql-transport-ws: "Forbidden", for a `connection_init` without a live token.
const CLOSE_FORBIDDEN: u16 = 4403;
/// graphql-transport-ws: a `subscribe` whose id is already in progress on the socket.
const CLOSE_DUPLICATE_ID: u16 = 4409;
/// graphql-transport-ws: no `connection_init` within [`INIT_TIMEOUT`].
const CLOSE_INIT_TIMEOUT: u16 = 4408;
/// WebSocket: the server is going away.
const CLOSE_GOING_AWAY: u16 = 1001;
/// How often the server pings each socket (browsers and WebSocket libraries answer pings
/// themselves), so proxies keep it open and a vanished client is noticed.
const PING_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
/// Every this many pings (a minute), an open socket checks its token again (a session's age
/// and idle limits), besides when its revocation is notified.
const RECHECK_EVERY: u64 = 60 / PING_EVERY.as_secs();
const _: () = assert!(RECHECK_EVERY > 0, "pings at least every minute");
/// A socket whose client sent nothing, not even a pong, for this long is closed.
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(75);
/// How long one message may take to reach a client's socket before the client is dropped.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// A client that took nothing for [`SEND_TIMEOUT`] (not part of graphql-transport-ws, whose
/// 44xx codes this avoids; `graphql-ws` clients retry on it).
const CLOSE_TOO_SLOW: u16 = 4499;
/// How long a dropped slow client's close frame waits for it to read again.
const SLOW_CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(30);
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
    if !offers_transport_ws(headers) {
        return (
            StatusCode::BAD_REQUEST,
            "Ask for the graphql-transport-ws subprotocol.",
        )
            .into_response();
    }
    upgrade
        .protocols([SUBPROTOCOL])
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        // The library reads into a 128 KiB buffer per socket by default: 10,000 idle
        // sockets held 1.5 GB (bench/run section 9). Messages in are small; messages out
        // are written at once, and at most a few of them wait for a slow client.
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve(app, socket, open))
}

/// Whether the client offers graphql-transport-ws (the older `graphql-ws` protocol of
/// subscriptions-transport-ws is not served, whatever else it offers).
fn offers_transport_ws(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|offered| offered.to_str().ok())
        .is_some_and(|offered| offered.split(',').any(|p| p.trim() == SUBPROTOCOL))
}

/// A socket's work: async-graphql's graphql-transport-ws on what the client sends, and
/// [`forward`] sending what it answers.
///
/// Each socket's task keeps this future for as long as the socket is open, so it is built
/// by plain functions, not `async fn`s, and without async-graphql-axum's
/// `GraphQLWebSocket::serve`: an `async fn` keeps its arguments beside what it made of
/// them, and those were the socket (368 bytes, kept twice) and the builder (352 bytes, kept
/// twice): a fifth of a socket's memory (BENCHMARKS.md, thirty-sixth round).
fn serve(app: Arc<App>, socket: WebSocket, open: OpenSocket) -> impl Future<Output = ()> {
    let (sink, source) = socket.split();
    // When the client was last heard from (a message, or the pong to a ping), in
    // milliseconds since the socket opened.
    let opened = tokio::time::Instant::now();
    let heard = Arc::new(AtomicU64::new(NEVER));
    // The protocol's messages go through a channel, so this side can add the close codes
    // the library does not send (4403, 4408, 4409, 1001).
    let (to_client, outgoing) = futures_channel::mpsc::channel::<Message>(16);
    let in_progress = InProgress::default();
    let init = in_progress.clone();
    let source = source
        .inspect({
            let heard = Arc::clone(&heard);
            move |_| heard.store(millis_since(opened), Ordering::Relaxed)
        })
        .take_while({
            let (in_progress, mut refuse) = (in_progress.clone(), to_client.clone());
            move |message| {
                let reused = message.as_ref().ok().and_then(|m| in_progress.reused(m));
                if let Some(id) = &reused {
                    let reason = format!("Subscriber for {id} already exists");
                    let _ = refuse.try_send(close(CLOSE_DUPLICATE_ID, &reason));
                }
                std::future::ready(message.is_ok() && reused.is_none())
            }
        })
        .filter_map(|message| {
            std::future::ready(match message {
                Ok(message @ (Message::Text(_) | Message::Binary(_))) => Some(message.into_data()),
                _ => None,
            })
        });
    let executor = LiveExecutor {
        app: Arc::clone(&app),
        open: Arc::default(),
    };
    let (signed_in, signed) = tokio::sync::oneshot::channel();
    let to_client = to_client
        .sink_map_err(|_| axum::Error::new("the socket closed"))
        .with_flat_map(move |message| stream::iter(in_progress.rewrite(message).map(Ok)));
    let protocol =
        async_graphql::http::WebSocket::new(executor, source, WebSocketProtocols::GraphQLWS)
            .connection_data(hub_data(&app.live))
            .on_connection_init(connection_init(Arc::clone(&app), signed_in))
            .map(|message| Ok(axum_message(message)))
            .forward(to_client);
    Serving {
        protocol: protocol.fuse(),
        forward: forward(app, sink, outgoing, signed, Heard { opened, heard }, init),
        _open: open,
    }
}

/// A message of async-graphql's as axum sends it.
fn axum_message(message: WsMessage) -> Message {
    match message {
        WsMessage::Text(text) => Message::Text(text.into()),
        WsMessage::Close(code, reason) => Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })),
    }
}

/// A socket's two halves ([`serve`]), polled together as `tokio::select!` would, without
/// moving either (the macro moves what it polls, and so keeps it twice). The socket is done
/// when [`forward`] is: once the protocol ends (and is dropped, with its operations), what
/// it sent last (a close frame) still goes out.
#[pin_project::pin_project]
struct Serving<P, F> {
    #[pin]
    protocol: futures_util::future::Fuse<P>,
    #[pin]
    forward: F,
    /// Counts the socket among the server's until it ends.
    _open: OpenSocket,
}

impl<P: Future, F: Future<Output = ()>> Future for Serving<P, F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let _ = this.protocol.poll(cx);
        this.forward.poll(cx)
    }
}

/// Sends the protocol's messages to the client until either side is done. Closes sockets
/// that do not initialise in time (4408), whose token is revoked or expires (4403: checked
/// when its revocation is notified and every [`RECHECK_EVERY`] pings), whose client stopped
/// taking messages (4499, [`drop_slow`]), and, at shutdown, every socket (1001).
///
/// A plain function building the future ([`serve`] says why): what the loop uses lives in
/// it once.
fn forward(
    app: Arc<App>,
    mut sink: SplitSink<WebSocket, Message>,
    mut outgoing: futures_channel::mpsc::Receiver<Message>,
    signed_in: tokio::sync::oneshot::Receiver<SignedIn>,
    heard: Heard,
    init: InProgress,
) -> impl Future<Output = ()> {
    let hub = app.live.clone();
    // One timer for pings and token checks. The first ping comes in the second half of a
    // ping's interval (proxies close sockets silent for a minute), the first check at the
    // first or second ping: sockets opened together (after a deploy) check apart.
    let mut pings = tokio::time::interval_at(
        tokio::time::Instant::now() + PING_EVERY.mul_f64(0.5 + rand::random::<f64>() / 2.0),
        PING_EVERY,
    );
    pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u64 = rand::random_range(0..RECHECK_EVERY);
    // Each dropped once over (`once_some`): an idle socket keeps neither.
    let mut init_deadline = Some(Box::pin(tokio::time::sleep(INIT_TIMEOUT)));
    let mut signed_in = Some(signed_in);
    let mut token: Option<(crate::live::Wake, SignedIn)> = None;
    let mut acknowledged = false;
    async move {
        let closing = hub.closed();
        tokio::pin!(closing);
        loop {
            let message = tokio::select! {
                next = outgoing.next() => match next {
                    Some(message) => message,
                    None => return,
                },
                signed = once_some(&mut signed_in), if signed_in.is_some() => {
                    signed_in = None;
                    token = signed.ok().map(|signed| (hub.watch_token(signed.token_id), signed));
                    // A revocation between the sign-in and the watch would wait for the recheck.
                    match still_signed_in(&app, &token).await {
                        true => continue,
                        false => token_ended(),
                    }
                }
                () = revoked(&mut token) => match still_signed_in(&app, &token).await {
                    true => continue,
                    false => token_ended(),
                },
                _ = pings.tick() => {
                    ticks += 1;
                    if heard.silent_for() > IDLE_TIMEOUT {
                        crate::metrics::socket_dropped("idle");
                        close(1000, "No answer to pings.")
                    } else if token.is_some()
                        && ticks % RECHECK_EVERY == 0
                        && !still_signed_in(&app, &token).await
                    {
                        token_ended()
                    } else {
                        Message::Ping(Default::default())
                    }
                }
                // Once the client's `connection_init` came, the socket waits for its answer
                // however long the check takes. Anything else (a ping) does not count.
                () = once_some(&mut init_deadline), if !acknowledged && !init.init_came() => {
                    if init.init_came() {
                        init_deadline = None;
                        continue;
                    }
                    crate::metrics::socket_dropped("init_timeout");
                    close(CLOSE_INIT_TIMEOUT, "Connection initialisation timeout")
                }
                () = &mut closing => close(CLOSE_GOING_AWAY, "The server is going away."),
            };
            if !acknowledged {
                acknowledged = matches!(&message, Message::Text(text) if text.as_str().contains("\"connection_ack\""));
            }
            if acknowledged || init.init_came() {
                init_deadline = None;
            }
            let closes = matches!(message, Message::Close(_));
            match tokio::time::timeout(SEND_TIMEOUT, sink.send(protocol_close(message))).await {
                Ok(Ok(())) if !closes => {}
                // Only a message that is not itself a goodbye: `closing` has not fired then.
                Err(_) if !closes => return Box::pin(drop_slow(sink, closing)).await,
                _ => return,
            }
        }
    }
}

/// What `future` resolves to; never once there is none (its `select!` arm is over).
async fn once_some<F: Future + Unpin>(future: &mut Option<F>) -> F::Output {
    match future {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

/// Ends the socket of a client that took nothing for [`SEND_TIMEOUT`]: its kernel buffer is
/// full, its subscriptions wait in the log where they stand (the server holds nothing more
/// for it), and the subscribers of other sockets never waited for it. The close frame
/// ([`CLOSE_TOO_SLOW`]) queues behind what the client has not read: a client that reads
/// again within [`SLOW_CLOSE_GRACE`] gets it, and resumes from its last cursor.
async fn drop_slow(
    mut sink: SplitSink<WebSocket, Message>,
    closing: Pin<&mut impl Future<Output = ()>>,
) {
    crate::metrics::socket_dropped("slow");
    let goodbye = sink.send(close(
        CLOSE_TOO_SLOW,
        "The client fell behind; resume from its last cursor.",
    ));
    tokio::select! {
        _ = tokio::time::timeout(SLOW_CLOSE_GRACE, goodbye) => {}
        () = closing => {}
    }
}

/// A socket's operations. graphql-transport-ws closes a socket whose client reuses the id of
/// one in progress (4409), where async-graphql would replace the first operation silently.
/// And it ends an operation that fails with one `error` message, its payload the errors, and
/// nothing after it, where async-graphql 7.2 sends a `next`, then `complete`
/// ([`InProgress::rewrite`]).
#[derive(Clone, Default)]
struct InProgress(Arc<std::sync::Mutex<Operations>>);

#[derive(Default)]
struct Operations {
    /// In progress, as the client sees them.
    ids: std::collections::HashSet<String>,
    /// Failed: their `error` went out, and async-graphql's `complete` is still to come.
    failed: std::collections::HashSet<String>,
    /// A `connection_init` came (what stops the clock of [`INIT_TIMEOUT`]; pings do not).
    init_came: bool,
}

/// The part of a protocol message that says which operation it is about.
#[derive(serde::Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
}

const COMPLETE: &str = "{\"type\":\"complete\"";

impl InProgress {
    /// Notes a client's message (a `connection_init`, the ids in progress); the id of a
    /// `subscribe` that reuses one in progress.
    fn reused(&self, message: &Message) -> Option<String> {
        let Message::Text(text) = message else {
            return None;
        };
        let envelope: Envelope = serde_json::from_str(text.as_str()).ok()?;
        let mut operations = self.lock();
        if envelope.kind == "connection_init" {
            operations.init_came = true;
        }
        let id = envelope.id?;
        // async-graphql also takes `start` and `stop`, its older protocol's names, here.
        match envelope.kind.as_str() {
            "subscribe" | "start" => {
                // A failed operation's id used again: async-graphql replaces that operation
                // if it is still in its map, without a `complete`, so none is to be dropped.
                operations.failed.remove(&id);
                (!operations.ids.insert(id.clone())).then_some(id)
            }
            "complete" | "stop" => {
                operations.ids.remove(&id);
                None
            }
            _ => None,
        }
    }

    /// Whether the client sent its `connection_init`.
    fn init_came(&self) -> bool {
        self.lock().init_came
    }

    /// A message of async-graphql's as the client gets it: the `next` of a response marked
    /// [`failed`] becomes the `error`, and the `complete` that follows it is dropped; an
    /// `error` or `complete` ends its operation. Runs in the protocol's task, as
    /// [`InProgress::reused`] does, so both see the client's messages and async-graphql's
    /// answers in the order async-graphql handles them.
    fn rewrite(&self, message: Message) -> Option<Message> {
        let Message::Text(text) = &message else {
            return Some(message);
        };
        let text = text.as_str();
        if text.starts_with(COMPLETE) {
            let Ok(Envelope { id: Some(id), .. }) = serde_json::from_str::<Envelope>(text) else {
                return Some(message);
            };
            let mut operations = self.lock();
            operations.ids.remove(&id);
            return (!operations.failed.remove(&id)).then_some(message);
        }
        // Only a message holding the mark's text is parsed (events, the large messages,
        // are not), and only the mark in its extensions counts.
        if !(text.starts_with("{\"type\":\"next\"") && text.contains(FAILED_MARKER)) {
            return Some(message);
        }
        let Some((id, errors)) = failure(text) else {
            return Some(message);
        };
        let error = format!(
            r#"{{"type":"error","id":{},"payload":{errors}}}"#,
            serde_json::Value::String(id.clone())
        );
        let mut operations = self.lock();
        operations.ids.remove(&id);
        operations.failed.insert(id);
        Some(Message::Text(error.into()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Operations> {
        // Nothing holding this lock can leave the sets half-changed.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The key of the extension marking a response that ends its operation with errors
/// ([`failed`]), which the client never sees: [`InProgress::rewrite`] turns it into an
/// `error` message.
const FAILED: &str = "linkai.failed";
const FAILED_MARKER: &str = "\"linkai.failed\":true";

/// Marks `response`, errors and no data, as the last of its operation.
fn failed(mut response: Response) -> Response {
    response
        .extensions
        .insert(FAILED.to_owned(), async_graphql::Value::Boolean(true));
    response
}

/// The id and errors of a `next` whose response is marked [`failed`], if its errors are
/// what graphql-ws accepts in an `error` (a non-empty list).
fn failure(next: &str) -> Option<(String, serde_json::Value)> {
    let mut next: serde_json::Value = serde_json::from_str(next).ok()?;
    let payload = next.get_mut("payload")?;
    if payload["extensions"][FAILED] != true {
        return None;
    }
    let errors = payload.get_mut("errors")?.take();
    let id = next["id"].as_str()?.to_owned();
    errors
        .as_array()
        .is_some_and(|e| !e.is_empty())
        .then_some((id, errors))
}

/// When a socket's client was last heard from.
struct Heard {
    opened: tokio::time::Instant,
    heard: Arc<AtomicU64>,
}

/// In [`Heard`]: nothing yet.
const NEVER: u64 = u64::MAX;

impl Heard {
    fn silent_for(&self) -> std::time::Duration {
        let last = match self.heard.load(Ordering::Relaxed) {
            NEVER => 0,
            last => last,
        };
        std::time::Duration::from_millis(millis_since(self.opened).saturating_sub(last))
    }
}

fn millis_since(opened: tokio::time::Instant) -> u64 {
    u64::try_from(opened.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The token a socket signed in with, by its hash (the plaintext is not kept).
struct SignedIn {
    token_id: Uuid,
    token_hash: Vec<u8>,
}

/// Resolves when the socket's token may have been revoked; never before it signs in.
async fn revoked(token: &mut Option<(crate::live::Wake, SignedIn)>) {
    match token {
        Some((wake, _)) => wake.changed().await,
        None => std::future::pending().await,
    }
}

/// Whether the socket's token is still live; a database that cannot say keeps it open.
/// Boxed while it runs: a socket checks rarely (at sign-in, at a revocation, every
/// [`RECHECK_EVERY`] pings), and inlined, the check's database read took room in every idle
/// socket's task.
async fn still_signed_in(app: &App, token: &Option<(crate::live::Wake, SignedIn)>) -> bool {
    Box::pin(token_live(app, token)).await
}

async fn token_live(app: &App, token: &Option<(crate::live::Wake, SignedIn)>) -> bool {
    let Some((_, signed)) = token else {
        return true;
    };
    // Every socket checks at once when the listener comes back: a few at a time.
    let _turn = app.live.read_turn().await;
    let db = app.db.for_request();
    !matches!(
        crate::auth::still_live(&db, &signed.token_hash, &app.config.sessions).await,
        Ok(false)
    )
}

fn hub_data(hub: &Hub) -> Data {
    let mut data = Data::default();
    data.insert(hub.clone());
    data
}

/// async-graphql closes with 1002 both a refused `connection_init` and a message it cannot
/// read; graphql-transport-ws has codes of its own for each: 4403 Forbidden for a refused
/// token or a full account, 1013 (try again later) when the database could not say, and
/// 4400 for a bad message.
fn protocol_close(message: Message) -> Message {
    match message {
        Message::Close(Some(frame)) if frame.code == 1002 => {
            let reason = frame.reason.as_str();
            let code = match reason {
                NO_LIVE_TOKEN | TOO_MANY_SOCKETS => CLOSE_FORBIDDEN,
                CANNOT_CHECK_TOKEN => 1013,
                _ => 4400,
            };
            close(code, reason)
        }
        other => other,
    }
}

const NO_LIVE_TOKEN: &str = "A live token is needed.";
const TOO_MANY_SOCKETS: &str = "This account has too many sockets open.";
const CANNOT_CHECK_TOKEN: &str = "The token cannot be checked now; try again shortly.";

/// The close frame of a socket whose session or token ended (revoked, expired, idle).
fn token_ended() -> Message {
    close(CLOSE_FORBIDDEN, "The session or token has ended.")
}

/// A close frame; its reason cut to the 123 bytes a frame holds (the library's reasons
/// quote what the client sent).
fn close(code: u16, reason: &str) -> Message {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: reason[..end].to_owned().into(),
    }))
}

/// The socket's caller, from the token in `connection_init`'s payload.
fn connection_init(
    app: Arc<App>,
    signed_in: tokio::sync::oneshot::Sender<SignedIn>,
) -> impl FnOnce(serde_json::Value) -> BoxFuture<async_graphql::Result<Data>> + Send + 'static {
    move |payload| {
        Box::pin(async move {
            let refused = || async_graphql::Error::new(NO_LIVE_TOKEN);
            let token = token_of(&payload).ok_or_else(refused)?;
            let token_hash = crate::auth::token::hash(&token);
            drop(token);
            let db = app.db.for_request();
            // Afresh: a socket outlives the second a cached lookup may lag a revocation by.
            let (sessions, fresh) = (&app.config.sessions, Lookup::Fresh);
            let caller =
                crate::auth::authenticate_hash(&db, &app.bearers, fresh, &token_hash, sessions)
                    .await
                    .map_err(|_| async_graphql::Error::new(CANNOT_CHECK_TOKEN))?
                    .ok_or_else(refused)?;
            let guard = app
                .live
                .sign_in_socket(caller.user_id)
                .ok_or_else(|| async_graphql::Error::new(TOO_MANY_SOCKETS))?;
            let caller_token = caller.token_id;
            let db = db.acting_as(Some(caller.user_id));
            let mut context = RequestContext::new(db, Some(caller), None, app.passwords.clone());
            context.stripe = app.stripe.clone();
            let _ = signed_in.send(SignedIn {
                token_id: caller_token,
                token_hash,
            });
            let mut data = Data::default();
            data.insert(context);
            data.insert(Arc::new(guard));
            Ok(data)
        })
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

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
            return stream::once(async move { failed(refused(&err)) }).boxed();
        }
        let Some(slot) = Slot::take(&self.open) else {
            let err = ApiError::new(
                crate::error::ErrorCode::RateLimited,
                format!("A socket holds at most {SUBSCRIPTIONS_PER_SOCKET} subscriptions."),
            );
            return stream::once(async move { failed(refused(&err)) }).boxed();
        };
        let responses =
            handoff::execute_stream(&self.app.schema, request, data.unwrap_or_default());
        resolved_apart(responses)
            .map(move |response| {
                let _held = &slot;
                response
            })
            .boxed()
    }
}

/// A subscription's responses, each resolved in a task of its own before the socket takes
/// it. The protocol polls a socket's subscriptions only while the client takes messages: a
/// response half resolved inside them would hold its connection (and any lock or turn) for
/// as long as a stalled client keeps the socket. The task resolves the next response once
/// the socket took the last one, so one finished response at most waits, in the channel
/// (the task keeps none while it waits, on either side), and it stops when the
/// subscription does.
fn resolved_apart(
    mut responses: impl futures_util::Stream<Item = Response> + Send + Unpin + 'static,
) -> impl futures_util::Stream<Item = Response> + Send + 'static {
    let (mut ready, taken) = futures_channel::mpsc::channel::<Response>(0);
    let task = tokio::spawn(async move {
        while std::future::poll_fn(|cx| ready.poll_ready(cx))
            .await
            .is_ok()
        {
            let Some(mut response) = responses.next().await else {
                return;
            };
            // The operation's end: an ending its feed marked (src/graphql/errors.rs), or a
            // document refused before it ran.
            let ends = errors::take_ending(&mut response) || errors::is_request_error(&response);
            errors::code_errors(&mut response);
            if ends {
                response = failed(response);
            }
            if ready.start_send(response).is_err() {
                return;
            }
        }
    });
    let stop = AbortOnDrop(task.abort_handle());
    taken.map(move |response| {
        let _stops_with_the_subscription = &stop;
        response
    })
}

/// Aborts a task when its subscription is dropped (completed, stopped, socket closed).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
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
            Some(_) if !one_root_field(request, operation_name.as_deref()) => Err(ApiError::new(
                crate::error::ErrorCode::GraphqlValidationFailed,
                "A subscription selects exactly one root field, written out (the GraphQL \
                 spec's single root field rule).",
            )),
            _ => Ok(()),
        }
    }
}

/// Whether the operation selects exactly one root field, itself (not through a fragment):
/// async-graphql does not check the spec's rule, and each root field would be a stream of
/// its own, past the cap on subscriptions.
fn one_root_field(request: &mut Request, operation_name: Option<&str>) -> bool {
    use async_graphql::parser::types::{DocumentOperations, Selection};
    let Ok(doc) = request.parsed_query() else {
        return true;
    };
    let operation = match (&doc.operations, operation_name) {
        (DocumentOperations::Single(operation), _) => Some(operation),
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name),
        (DocumentOperations::Multiple(operations), None) => operations.values().next(),
    };
    operation.is_some_and(|operation| {
        let items = &operation.node.selection_set.node.items;
        items.len() == 1 && matches!(items[0].node, Selection::Field(_))
    })
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

    fn text(message: Option<Message>) -> Option<String> {
        match message? {
            Message::Text(text) => Some(text.as_str().to_owned()),
            other => panic!("not text: {other:?}"),
        }
    }

    /// As async-graphql serialises a `next`: its payload's keys in the struct's order.
    fn next(id: &str, response: &Response) -> Message {
        let payload = serde_json::to_string(response).expect("serialised");
        let id = serde_json::to_string(id).expect("serialised");
        Message::Text(format!(r#"{{"type":"next","id":{id},"payload":{payload}}}"#).into())
    }

    fn subscribe(id: &str) -> Message {
        Message::Text(format!(r#"{{"type":"subscribe","id":"{id}"}}"#).into())
    }

    fn complete(id: &str) -> Message {
        Message::Text(format!(r#"{{"type":"complete","id":"{id}"}}"#).into())
    }

    #[test]
    fn a_failed_operation_ends_with_one_error_message_and_nothing_after_it() {
        let operations = InProgress::default();
        let subscribe = subscribe("1");
        assert_eq!(operations.reused(&subscribe), None);
        let refusal = failed(refused(&ApiError::not_found("Workspace")));
        let error = operations.rewrite(next("1", &refusal)).expect("sent");
        let error = text(Some(error)).expect("text");
        // As graphql-transport-ws writes it, and as `ended` reads it: the type first.
        assert!(
            error.starts_with(r#"{"type":"error","id":"1","payload":[{"#),
            "{error}"
        );
        let error: serde_json::Value = serde_json::from_str(&error).expect("json");
        assert_eq!(error["payload"][0]["message"], "Workspace not found.");
        assert_eq!(error["payload"][0]["extensions"]["code"], "NOT_FOUND");
        assert!(!error.to_string().contains(FAILED), "{error}");
        // Its `complete` is dropped; another operation's is not, nor a later one's of "1".
        assert!(text(operations.rewrite(complete("2"))).is_some());
        assert!(operations.rewrite(complete("1")).is_none());
        assert!(text(operations.rewrite(complete("1"))).is_some());
        // The id is free again.
        assert_eq!(operations.reused(&subscribe), None);
    }

    #[test]
    fn an_id_used_again_before_the_failed_operations_complete_keeps_its_own() {
        let operations = InProgress::default();
        let subscribe = subscribe("1");
        assert_eq!(operations.reused(&subscribe), None);
        let refusal = failed(refused(&ApiError::not_found("Workspace")));
        assert!(operations.rewrite(next("1", &refusal)).is_some());
        // async-graphql replaces the failed operation: its `complete` never comes, and the
        // new one's is the client's.
        assert_eq!(operations.reused(&subscribe), None);
        assert!(text(operations.rewrite(complete("1"))).is_some());
    }

    #[test]
    fn the_older_names_async_graphql_takes_count_as_subscribe_and_complete() {
        let operations = InProgress::default();
        let start = Message::Text(r#"{"type":"start","id":"1"}"#.into());
        assert_eq!(operations.reused(&start), None);
        assert_eq!(
            operations.reused(&start),
            Some("1".to_owned()),
            "a duplicate"
        );
        let refusal = failed(refused(&ApiError::not_found("Workspace")));
        assert!(operations.rewrite(next("1", &refusal)).is_some());
        // Used again before the failed one's `complete`: that one is replaced, not awaited.
        assert_eq!(operations.reused(&start), None);
        assert!(operations.lock().failed.is_empty());
        let stop = Message::Text(r#"{"type":"stop","id":"1"}"#.into());
        assert_eq!(operations.reused(&stop), None);
        assert!(operations.lock().ids.is_empty());
    }

    #[test]
    fn events_and_unmarked_errors_go_out_as_they_are() {
        let operations = InProgress::default();
        let unmarked = refused(&ApiError::not_found("Workspace"));
        let event = Response::new(
            async_graphql::Value::from_json(serde_json::json!({
                "workspaceEvents": {"workspace": {"name": "\"linkai.failed\":true"}}
            }))
            .expect("value"),
        );
        // A `JSON` scalar's keys are written out as they are: the mark's text, not the mark.
        let changes = Response::new(
            async_graphql::Value::from_json(serde_json::json!({
                "workspaceEvents": {"auditEvent": {"changes": {"linkai.failed": true}}}
            }))
            .expect("value"),
        );
        // Ids and data may hold the mark's text: escaped, it is not the mark.
        for message in [
            next("1", &unmarked),
            next("\"linkai.failed\":true", &event),
            next("2", &changes),
        ] {
            let before = message.clone();
            assert_eq!(operations.rewrite(message), Some(before));
        }
    }
}
