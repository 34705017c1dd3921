//! The GraphQL-tax baseline: the same bytes as the GraphQL answer, from a bare handler behind
//! the service's own middleware.

use axum::body::Bytes;
use axum::http::header;
use axum::routing::post;
use axum::Router;

pub async fn serve(addr: &str, body_file: &str) -> anyhow::Result<serde_json::Value> {
    let answer = Bytes::from(std::fs::read(body_file)?);
    let routes = Router::new().route(
        "/graphql",
        // The request body is read, as GraphQL must read it, then dropped.
        post(move |_request: Bytes| {
            let answer = answer.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], answer) }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let limits = linkai::config::HttpLimits::default();
    linkai::http::serve_router(
        listener,
        linkai::http::with_middleware(routes, limits, std::sync::Arc::from([])),
        limits,
        linkai::http::shutdown_signal(),
    )
    .await?;
    Ok(serde_json::json!({ "served": addr }))
}
