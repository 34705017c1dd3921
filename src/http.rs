//! The HTTP surface: `/graphql` (GraphQL over HTTP, [`transport`]; subscriptions over
//! WebSocket, [`socket`]; CORS, [`cors`]; the playground for browsers, [`playground`]),
//! `/healthz`, `/readyz`, the Stripe webhook, and the bounds every connection lives within
//! ([`serve_router`], [`with_middleware`]):
//!
//! - headers within `header_timeout` of the connection opening or its previous response (so
//!   silent, slowloris and idle keep-alive connections are closed);
//! - the whole body within `body_timeout` (else 408) and at most [`MAX_BODY_BYTES`] (413);
//! - an answer within `request_timeout`, else 503 `SERVICE_UNAVAILABLE` (the work is dropped,
//!   so its transaction rolls back);
//! - at most `max_connections` open; further ones wait in the kernel's backlog, so the
//!   process never runs out of file descriptors;
//! - after SIGTERM, requests in flight get `shutdown_timeout`, then the process exits.

mod cors;
mod playground;
pub mod request_id;
pub mod socket;
pub mod transport;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_graphql::parser::types::OperationType;
use async_graphql::{Request, Value};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Request as HttpRequest};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::auth::bearers::Lookup;
use crate::config::{HttpLimits, IpNet};
use crate::error::ApiError;
use crate::graphql::context::RequestContext;
use crate::graphql::documents::Validated;
use crate::App;
use transport::{GetParams, MediaType, PostParams};

/// Largest request body accepted; GraphQL operations are small.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The app is shared behind one `Arc`: axum hands every request its own copy of the state,
/// and copying `App` itself cost a reference count per field each way.
pub fn router(app: App) -> Router {
    let cors = Arc::new(cors::Cors::new(&app.config.http.cors_origins));
    let graphql = Router::new()
        .route(
            "/graphql",
            get(graphql_get)
                .post(graphql_post)
                // Answered by the CORS layer; routed so that the layer sees OPTIONS.
                .options(|| async { StatusCode::NO_CONTENT }),
        )
        .route(
            "/exports/download",
            get(crate::exports::http::download).options(|| async { StatusCode::NO_CONTENT }),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&cors),
            cors::layer,
        ))
        .layer(axum::Extension(cors));
    // The webhook gets only what it uses: the database and its signing secret.
    let webhooks = crate::billing::webhook::Webhooks {
        db: app.db.clone(),
        secret: (app.config.stripe.as_ref()).and_then(|s| s.webhook_secret.clone()),
    };
    let webhook = Router::new()
        .route("/webhooks/stripe", post(crate::billing::webhook::receive))
        .with_state(Arc::new(webhooks));
    let mut routes = graphql
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .merge(webhook);
    if app.config.http.introspection {
        routes = routes.route("/graphiql/{file}", get(playground::asset));
    }
    let limits = app.config.http.limits;
    let trusted = app.config.http.trusted_proxies.clone().into();
    with_middleware(routes, limits, trusted).with_state(Arc::new(app))
}

/// The middleware every route goes through; public so the benchmark's bare-handler baseline
/// pays exactly the same. Outermost is the request's id, so every other layer's log lines
/// carry it and every answer (a timeout's too) names it.
pub fn with_middleware<S: Clone + Send + Sync + 'static>(
    routes: Router<S>,
    limits: HttpLimits,
    trusted_proxies: Arc<[IpNet]>,
) -> Router<S> {
    routes
        .layer(axum::middleware::from_fn_with_state(limits, deadlines))
        .layer(axum::middleware::from_fn(crate::metrics::measure_http))
        .layer(axum::middleware::from_fn_with_state(
            trusted_proxies,
            request_id::layer,
        ))
}

/// Reads the whole body within `body_timeout` and answers within `request_timeout`.
///
/// The body is read here, before any handler, so a client dripping it byte by byte holds
/// nothing but its own connection, and is cut off at the deadline.
async fn deadlines(State(limits): State<HttpLimits>, request: HttpRequest, next: Next) -> Response {
    let answer = async {
        let (parts, body) = request.into_parts();
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
            return body_error(StatusCode::PAYLOAD_TOO_LARGE);
        }
        let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
        let bytes = match tokio::time::timeout(limits.body_timeout, limited.collect()).await {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(err)) if err.is::<http_body_util::LengthLimitError>() => {
                return body_error(StatusCode::PAYLOAD_TOO_LARGE)
            }
            Ok(Err(_)) => return body_error(StatusCode::BAD_REQUEST),
            Err(_) => return body_error(StatusCode::REQUEST_TIMEOUT),
        };
        next.run(HttpRequest::from_parts(
            parts,
            axum::body::Body::from(bytes),
        ))
        .await
    };
    match tokio::time::timeout(limits.request_timeout, answer).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout = ?limits.request_timeout, "request timed out");
            transport::http_error(
                StatusCode::SERVICE_UNAVAILABLE,
                MediaType::Json,
                &ApiError::unavailable(),
            )
        }
    }
}

fn body_error(status: StatusCode) -> Response {
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "The request body is over 256 KiB.",
        StatusCode::REQUEST_TIMEOUT => "The request body did not arrive in time.",
        _ => "The request body could not be read.",
    };
    let mut response =
        transport::http_error(status, MediaType::Json, &ApiError::bad_input(message));
    if status == StatusCode::REQUEST_TIMEOUT {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Serves until `shutdown` resolves, then finishes the requests in flight.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = app.config.http.limits;
    // One connection per server listens for the workspaces' events, for all its sockets
    // (and one hears Redis); they go when this future does.
    let live = app.live.clone();
    let listening = live.clone().listen(
        app.config.database.app_url.expose().to_owned(),
        app.config.redis_url.expose().to_owned(),
    );
    // However this future ends (shutdown, or dropped), the sockets are told.
    let _close_sockets = CloseOnDrop(live.clone());
    let closing = live.clone();
    let served = serve_router(listener, router(app), limits, async move {
        shutdown.await;
        closing.close();
    });
    let served = tokio::select! {
        served = served => served,
        () = listening => Ok(()),
    };
    // Each socket says "going away" before the process goes.
    if tokio::time::timeout(limits.shutdown_timeout, live.drained())
        .await
        .is_err()
    {
        tracing::warn!("sockets still open at the shutdown deadline are dropped");
    }
    served
}

/// Tells the server's sockets it is going away when dropped.
struct CloseOnDrop(crate::live::Hub);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// After a failed `accept` (out of file descriptors, say), wait this long before the next:
/// the error would repeat at once.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `router` over HTTP/1.1 within `limits` until `shutdown` resolves; then stops
/// accepting, lets requests in flight finish for up to `shutdown_timeout`, and returns.
/// Each request carries its peer's address as [`ConnectInfo`].
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    // Turns true at shutdown: each connection finishes its request in flight, then closes.
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    loop {
        // A slot first: at the cap, connections wait in the backlog rather than take a
        // file descriptor each.
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = Arc::clone(&open).acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service =
            hyper::service::service_fn(move |mut request: HttpRequest<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                tower::ServiceExt::oneshot(router.clone(), request)
            });
        // With upgrades: `GET /graphql` may become a socket (src/http/socket.rs), which then
        // lives on its own and closes itself at shutdown.
        let connection = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            tokio::pin!(connection);
            let stopped = async move {
                let _ = stop.wait_for(|stop| *stop).await;
            };
            let served = tokio::select! {
                served = connection.as_mut() => served,
                () = stopped => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = served {
                tracing::debug!(%err, %peer, "connection closed with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    stopping.send_replace(true);
    // Every connection holds a slot until it closes: all slots back means all closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    tokio::select! {
        _ = open.acquire_many(all) => {}
        () = tokio::time::sleep(limits.shutdown_timeout) => {
            tracing::warn!("requests still open at the shutdown deadline are dropped");
        }
    }
    Ok(())
}

/// One operation as JSON (`query`, `operationName`, `variables`, `extensions`). The body is
/// parsed straight into the request: async-graphql's own extractor also takes batches and
/// multipart uploads, which the contract has none of, and buffers every body twice to tell
/// them apart.
async fn graphql_post(
    State(app): State<Arc<App>>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(media) = MediaType::negotiate(&headers) else {
        return not_acceptable();
    };
    if !transport::is_json(&headers) {
        let err = ApiError::bad_input(
            "Send the operation as JSON with `Content-Type: application/json`.",
        );
        return transport::http_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, media, &err);
    }
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let message = format!(
                "The request body could not be read: {}",
                rejection.body_text()
            );
            return transport::http_error(rejection.status(), media, &ApiError::bad_input(message));
        }
    };
    match PostParams::parse(&body) {
        Ok(request) => execute(&app, peer, &headers, media, request, false).await,
        Err(message) => transport::http_error(
            StatusCode::BAD_REQUEST,
            media,
            &ApiError::bad_input(message),
        ),
    }
}

/// Queries over GET (`?query=…`), or the playground for a browser that asks for a page.
async fn graphql_get(
    State(app): State<Arc<App>>,
    axum::Extension(cors): axum::Extension<Arc<cors::Cors>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    params: Result<Query<GetParams>, QueryRejection>,
) -> Response {
    if let Ok(upgrade) = upgrade {
        return socket::upgrade(app, cors.admits_socket(&headers), &headers, upgrade).await;
    }
    let params = params.ok().map(|Query(params)| params);
    let has_query = params.as_ref().is_some_and(|p| p.query.is_some());
    if !has_query && app.config.http.introspection && transport::wants_html(&headers) {
        return playground::page();
    }
    let Some(media) = MediaType::negotiate(&headers) else {
        return not_acceptable();
    };
    let request = match params.filter(|_| has_query).map(GetParams::into_request) {
        Some(Ok(request)) => request,
        Some(Err(message)) => {
            return transport::http_error(
                StatusCode::BAD_REQUEST,
                media,
                &ApiError::bad_input(message),
            )
        }
        None => {
            let err =
                ApiError::bad_input("Send a query as `?query=…`, or the operation as a JSON POST.");
            return transport::http_error(StatusCode::BAD_REQUEST, media, &err);
        }
    };
    execute(&app, peer, &headers, media, request, true).await
}

fn not_acceptable() -> Response {
    let err =
        ApiError::bad_input("Accept `application/graphql-response+json` or `application/json`.");
    transport::http_error(StatusCode::NOT_ACCEPTABLE, MediaType::Json, &err)
}

/// Parses (through the document cache), measures and runs one request, then answers it as
/// the spec says: request errors without `data`, field errors as `null`s in place.
async fn execute(
    app: &App,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: &HeaderMap,
    media: MediaType,
    mut request: Request,
    over_get: bool,
) -> Response {
    // Bounded before the parser sees it (graphql-js's `maxTokens`).
    if crate::graphql::shape::count_tokens(&request.query) > crate::graphql::shape::MAX_TOKENS {
        crate::metrics::refused("tokens");
        let err = ApiError::new(
            crate::error::ErrorCode::QueryTooComplex,
            format!(
                "The document has more than {} tokens.",
                crate::graphql::shape::MAX_TOKENS
            ),
        );
        return transport::request_error_of(media, &err);
    }
    let validated = app.documents.prepare(&mut request);
    // `parsed_query` borrows the whole request: lend the name and variables aside.
    let operation_name = request.operation_name.take();
    let variables = std::mem::take(&mut request.variables);
    let (shape, known) = match request.parsed_query() {
        Ok(doc) => (
            crate::graphql::shape::check(
                doc,
                operation_name.as_deref(),
                &variables,
                app.config.http.introspection,
            ),
            validated == Validated::UnlessValues
                && crate::graphql::documents::values_pass(doc, &variables),
        ),
        Err(_) => {
            crate::metrics::refused("parse");
            // The cache parses only what parses: read the parser's own error for the answer.
            let errors: Vec<_> = async_graphql::parser::parse_query(&request.query)
                .err()
                .map(|err| crate::graphql::errors::parse_error(&err))
                .into_iter()
                .collect();
            return transport::request_error(media, &errors);
        }
    };
    request.operation_name = operation_name;
    request.variables = variables;
    let writes = matches!(&shape, Ok(Some(shape)) if shape.operation != OperationType::Query);
    let (kind, name) = match &shape {
        Ok(Some(shape)) => (
            match shape.operation {
                OperationType::Query => "query",
                OperationType::Mutation => "mutation",
                OperationType::Subscription => "subscription",
            },
            shape.name.clone(),
        ),
        _ => ("unknown", None),
    };
    match shape {
        Ok(Some(shape)) if over_get && shape.operation != OperationType::Query => {
            crate::metrics::refused("method");
            let err = ApiError::bad_input("Mutations are sent with POST, not GET.");
            let mut response = transport::http_error(StatusCode::METHOD_NOT_ALLOWED, media, &err);
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        Ok(Some(shape)) if shape.operation == OperationType::Subscription => {
            crate::metrics::refused("transport");
            let err = ApiError::bad_input(
                "Subscriptions are served over WebSocket on /graphql (graphql-transport-ws).",
            );
            return transport::request_error_of(media, &err);
        }
        Ok(_) => {}
        Err(err) => {
            crate::metrics::refused("shape");
            return transport::request_error_of(media, &err);
        }
    }
    // The text is only needed again to place nulls after field errors: keep it aside
    // rather than copy it (the schema runs the parsed document).
    let query = std::mem::take(&mut request.query);
    let operation_name = request.operation_name.clone();

    let db = app.db.for_request();
    let bearer = bearer_token(headers);
    let service = match bearer {
        Some(token) => crate::auth::service_tokens::authenticate(&db, token).await,
        None => Ok(None),
    };
    let service = match service {
        Ok(service) => service,
        Err(err) => return transport::http_error(StatusCode::SERVICE_UNAVAILABLE, media, &err),
    };
    let person = bearer.filter(|_| service.is_none());
    // A write reads its token afresh: a token revoked on another server a moment ago must not
    // mint credentials or invite anyone (src/auth/bearers.rs).
    let lookup = if writes {
        Lookup::Fresh
    } else {
        Lookup::Recent
    };
    let authenticated =
        crate::auth::authenticate(&db, &app.bearers, lookup, person, &app.config.sessions).await;
    let caller = match authenticated {
        Ok(caller) => caller,
        Err(err) => return transport::http_error(StatusCode::SERVICE_UNAVAILABLE, media, &err),
    };
    if writes && caller.as_ref().is_some_and(|caller| caller.read_only) {
        let err = ApiError::forbidden("This access token is read-only: it can run queries only.");
        return transport::request_error_of(media, &err);
    }
    let db = db.acting_as(caller.as_ref().map(|caller| caller.user_id));
    let mut context = RequestContext::new(db.clone(), caller, service, app.passwords.clone());
    #[cfg(feature = "rls-proof")]
    {
        context.unfiltered_kind = app.config.unfiltered_kind.clone();
    }
    context.stripe = app.stripe.clone();
    context.user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .map(|agent| {
            agent
                .chars()
                .filter(|c| !c.is_control())
                .take(256)
                .collect()
        });
    context.client = peer.map(|axum::Extension(ConnectInfo(peer))| {
        client_address(peer.ip(), headers, &app.config.http.trusted_proxies)
    });
    let request = request.data(context);
    let schema = match known {
        true => &app.validated_schema,
        false => &app.schema,
    };
    let started = std::time::Instant::now();
    // In a trace, the execution and the serialisation are spans of their own beside the
    // connection waits and statements (src/db.rs): a slow request shows where its time went.
    // Untraced, the execution is awaited as it is (wrapping it costs 2 % of a request's
    // instructions: the execution's future is large and would be moved).
    let mut response = if crate::traces::exported() {
        let span = tracing::info_span!(
            "execute",
            graphql.operation.type = kind,
            // Client-chosen: bounded as the metrics' label is.
            graphql.operation.name = name
                .as_deref()
                .filter(|name| crate::metrics::is_short_operation_name(name)),
        );
        let running = async {
            if writes {
                mutate(app, schema, request).await
            } else {
                schema.execute(request).await
            }
        };
        tracing::Instrument::instrument(running, span).await
    } else if writes {
        mutate(app, schema, request).await
    } else {
        schema.execute(request).await
    };
    if validated == Validated::No && !crate::graphql::errors::is_request_error(&response) {
        app.documents.validated(&query);
    }
    crate::graphql::errors::code_errors(&mut response);
    let ran = crate::metrics::Ran {
        name: name.as_deref(),
        valid: !crate::graphql::errors::is_request_error(&response),
        kind,
    };
    crate::metrics::operation_ran(
        ran,
        started.elapsed(),
        db.statements(),
        crate::graphql::errors::codes(&response),
    );
    if crate::graphql::errors::is_request_error(&response) {
        return transport::request_error(media, &response.errors);
    }
    if response.errors.iter().any(|err| !err.path.is_empty()) {
        if let Some(doc) = app.documents.parsed(&query) {
            crate::graphql::nulls::complete(
                &app.output_types,
                &doc,
                operation_name.as_deref(),
                &mut response,
            );
        }
    }
    if app.config.http.expose_sql_stats {
        response
            .extensions
            .insert("sqlStatements".into(), Value::from(db.statements() as u64));
        response.extensions.insert(
            "sqlContextStatements".into(),
            Value::from(db.context_statements() as u64),
        );
    }
    if crate::traces::exported() {
        return tracing::info_span!("serialize").in_scope(|| transport::executed(media, &response));
    }
    transport::executed(media, &response)
}

/// Runs a mutation, then wakes the subscribers of what it changed and forgets the tokens
/// it revoked (src/live/wakes.rs, src/auth/bearers.rs).
async fn mutate(
    app: &App,
    schema: &crate::graphql::AppSchema,
    request: Request,
) -> async_graphql::Response {
    // Boxed: an `async fn` wrapper keeps the future it is given beside the one it awaits,
    // so inline the execution was held nine times over (26 KB of 2.9) in every request's
    // future, which axum copies whole into its box (BENCHMARKS.md, fortieth round).
    let work = app.live.publishing(Box::pin(schema.execute(request)));
    app.bearers.revoking(work).await
}

/// The client's address: the peer's, unless the peer is a trusted proxy, in which case the
/// right-most address of `X-Forwarded-For` that is not itself a trusted proxy (addresses
/// further left were written by the client and prove nothing).
fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return crate::config::canonical(peer);
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in forwarded.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip) => continue,
            Ok(ip) => return crate::config::canonical(ip),
            // A malformed hop: nothing left of it can be believed; the proxy is the client.
            Err(_) => break,
        }
    }
    crate::config::canonical(peer)
}

pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    let postgres = tokio::time::timeout(READY_TIMEOUT, async {
        let mut conn = app.db.conn().await?;
        diesel_async::RunQueryDsl::execute(crate::db::static_sql("SELECT 1", ()), &mut conn)
            .await
            .map_err(crate::db::DbError::from)
    });
    let redis = tokio::time::timeout(READY_TIMEOUT, redis_ping(app.config.redis_url.expose()));
    let (postgres, redis) = tokio::join!(postgres, redis);
    let postgres_ok = match &postgres {
        Ok(Ok(_)) => {
            crate::db::note_reachable();
            true
        }
        Ok(Err(err)) if err.is_outage() => {
            crate::db::note_outage(err);
            false
        }
        _ => false,
    };
    let redis_ok = matches!(redis, Ok(Ok(())));
    let status = if postgres_ok && redis_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({ "postgres": postgres_ok, "redis": redis_ok });
    (status, Json(body)).into_response()
}

/// `PING` through a real Redis client, so passwords and TLS in `REDIS_URL` work as they do
/// for the job queue.
async fn redis_ping(url: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map(drop)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let trusted = [IpNet::parse("10.0.0.0/8").expect("net")];
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, 203.0.113.7, 10.0.0.9"),
        );
        // From the proxy: the right-most untrusted hop, not the client-written left end.
        assert_eq!(
            client_address(ip("10.0.0.2"), &headers, &trusted),
            ip("203.0.113.7")
        );
        // From anyone else: the header is ignored.
        assert_eq!(
            client_address(ip("198.51.100.1"), &headers, &trusted),
            ip("198.51.100.1")
        );
        headers.insert("x-forwarded-for", HeaderValue::from_static("nonsense"));
        assert_eq!(
            client_address(ip("10.0.0.2"), &headers, &trusted),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &HeaderMap::new(), &trusted),
            ip("10.0.0.2")
        );
    }
}
