//! The HTTP surface: `/graphql` (GraphQL over HTTP, [`transport`]; CORS, [`cors`]; the
//! playground for browsers, [`playground`]), `/healthz`, `/readyz`, the Stripe webhook, a
//! request body limit and graceful shutdown.

mod cors;
mod playground;
pub mod transport;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::parser::types::OperationType;
use async_graphql::{Request, Value};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;

use crate::error::ApiError;
use crate::graphql::context::RequestContext;
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
        .route_layer(axum::middleware::from_fn_with_state(cors, cors::layer));
    let mut routes = graphql
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/webhooks/stripe", post(crate::billing::webhook::receive));
    if app.config.http.introspection {
        routes = routes.route("/graphiql/{file}", get(playground::asset));
    }
    with_middleware(routes).with_state(Arc::new(app))
}

/// The middleware every route goes through; public so the benchmark's bare-handler baseline
/// pays exactly the same.
pub fn with_middleware<S: Clone + Send + Sync + 'static>(routes: Router<S>) -> Router<S> {
    routes.layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
}

/// Serves until `shutdown` resolves, then finishes the requests in flight.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
}

/// One operation as JSON (`query`, `operationName`, `variables`, `extensions`). The body is
/// parsed straight into the request: async-graphql's own extractor also takes batches and
/// multipart uploads, which the contract has none of, and buffers every body twice to tell
/// them apart.
async fn graphql_post(
    State(app): State<Arc<App>>,
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
        Ok(request) => execute(&app, &headers, media, request, false).await,
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
    headers: HeaderMap,
    params: Result<Query<GetParams>, QueryRejection>,
) -> Response {
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
    execute(&app, &headers, media, request, true).await
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
    headers: &HeaderMap,
    media: MediaType,
    mut request: Request,
    over_get: bool,
) -> Response {
    app.documents.prepare(&mut request);
    // `parsed_query` borrows the whole request: lend the name and variables aside.
    let operation_name = request.operation_name.take();
    let variables = std::mem::take(&mut request.variables);
    let shape = match request.parsed_query() {
        Ok(doc) => crate::graphql::shape::check(
            doc,
            operation_name.as_deref(),
            &variables,
            app.config.http.introspection,
        ),
        Err(_) => {
            // The cache parses only what parses: read the parser's own error for the answer.
            let errors: Vec<_> = async_graphql::parser::parse_query(&request.query)
                .err()
                .map(|err| crate::error::parse_error(&err))
                .into_iter()
                .collect();
            return transport::request_error(media, &errors);
        }
    };
    request.operation_name = operation_name;
    request.variables = variables;
    match shape {
        Ok(Some(shape)) if over_get && shape.operation != OperationType::Query => {
            let err = ApiError::bad_input("Mutations are sent with POST, not GET.");
            let mut response = transport::http_error(StatusCode::METHOD_NOT_ALLOWED, media, &err);
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        Ok(_) => {}
        Err(err) => return transport::request_error_of(media, &err),
    }
    // The text is only needed again to place nulls after field errors: keep it aside
    // rather than copy it (the schema runs the parsed document).
    let query = std::mem::take(&mut request.query);
    let operation_name = request.operation_name.clone();

    let db = app.db.for_request();
    let bearer = bearer_token(headers);
    let service = bearer
        .is_some_and(|token| crate::usage::is_service_token(&app.config.service_tokens, token));
    let caller = match crate::auth::authenticate(&db, bearer.filter(|_| !service)).await {
        Ok(caller) => caller,
        Err(err) => return transport::http_error(StatusCode::SERVICE_UNAVAILABLE, media, &err),
    };
    let db = db.acting_as(caller.as_ref().map(|caller| caller.user_id));
    let mut context = RequestContext::new(
        db.clone(),
        caller,
        service,
        app.config.unfiltered_kind.clone(),
    );
    context.stripe = app.stripe.clone();
    let request = request.data(context);
    let mut response = app.schema.execute(request).await;
    crate::error::code_errors(&mut response);
    if crate::error::is_request_error(&response) {
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
    transport::executed(media, &response)
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    let postgres = tokio::time::timeout(READY_TIMEOUT, async {
        let mut conn = app.db.conn().await.map_err(|e| e.to_string())?;
        diesel_async::RunQueryDsl::execute(crate::db::static_sql("SELECT 1", ()), &mut conn)
            .await
            .map_err(|e| e.to_string())
    });
    let redis = tokio::time::timeout(READY_TIMEOUT, redis_ping(&app.config.redis_url));
    let (postgres, redis) = tokio::join!(postgres, redis);
    let postgres_ok = matches!(postgres, Ok(Ok(_)));
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
