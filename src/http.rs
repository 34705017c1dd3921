//! The HTTP surface: `POST /graphql`, GraphiQL on `GET /graphql`, `/healthz`, `/readyz`,
//! a request body limit and graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::http::GraphiQLSource;
use async_graphql::{Request, Value};
use async_graphql_axum::GraphQLResponse;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;

use crate::error::ApiError;
use crate::graphql::context::RequestContext;
use crate::App;

/// Largest request body accepted; GraphQL operations are small.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The app is shared behind one `Arc`: axum hands every request its own copy of the state,
/// and copying `App` itself cost a reference count per field each way.
pub fn router(app: App) -> Router {
    with_middleware(
        Router::new()
            .route("/graphql", get(graphiql).post(graphql))
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .route("/webhooks/stripe", post(crate::billing::webhook::receive)),
    )
    .with_state(Arc::new(app))
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

async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .title("Link AI Workspaces")
            .finish(),
    )
}

/// One operation as JSON (`query`, `operationName`, `variables`). The body is parsed straight
/// into the request: async-graphql's own extractor also takes batches and multipart uploads,
/// which the contract has none of, and buffers every body twice to tell them apart.
async fn graphql(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let message = format!(
                "The request body could not be read: {}",
                rejection.body_text()
            );
            return error_response(rejection.status(), &ApiError::bad_input(message));
        }
    };
    let mut request: Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            let message = format!("The request is not a GraphQL request: {err}");
            return error_response(StatusCode::BAD_REQUEST, &ApiError::bad_input(message));
        }
    };
    app.documents.prepare(&mut request);
    let db = app.db.for_request();
    let bearer = bearer_token(&headers);
    let service = bearer
        .is_some_and(|token| crate::usage::is_service_token(&app.config.service_tokens, token));
    let caller = match crate::auth::authenticate(&db, bearer.filter(|_| !service)).await {
        Ok(caller) => caller,
        Err(err) => return error_response(StatusCode::SERVICE_UNAVAILABLE, &err),
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
    if app.config.http.expose_sql_stats {
        response
            .extensions
            .insert("sqlStatements".into(), Value::from(db.statements() as u64));
        response.extensions.insert(
            "sqlContextStatements".into(),
            Value::from(db.context_statements() as u64),
        );
    }
    GraphQLResponse::from(response).into_response()
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// A GraphQL-shaped error for failures before execution.
fn error_response(status: StatusCode, err: &ApiError) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": err.message(), "extensions": { "code": err.code().as_str() } }]
    });
    (status, Json(body)).into_response()
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
