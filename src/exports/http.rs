//! `GET /exports/download?token=…`: the export's document, to the Owner who asked for it,
//! with their session (`Authorization: Bearer`; an access token is `FORBIDDEN`), while the
//! link works. Anything else is `NOT_FOUND`, whether the export exists or not. Pages on
//! `CORS_ORIGINS` may fetch it (the route is under the CORS layer, src/http.rs).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;

use super::model;
use crate::auth::bearers::Lookup;
use crate::error::{ApiError, ApiResult};
use crate::http::transport::{http_error, MediaType};
use crate::roles::Role;
use crate::App;

#[derive(Deserialize)]
pub struct Link {
    token: Option<String>,
}

pub async fn download(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(link): Query<Link>,
) -> Response {
    match document(&app, &headers, link.token.as_deref().unwrap_or_default()).await {
        Ok((id, body)) => {
            let disposition = format!("attachment; filename=\"workspace-export-{id}.json\"");
            let mut response = (StatusCode::OK, body).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if let Ok(value) = HeaderValue::from_str(&disposition) {
                headers.insert(header::CONTENT_DISPOSITION, value);
            }
            response
        }
        Err(err) => {
            use crate::error::ErrorCode;
            let status = match err.code() {
                ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
                ErrorCode::Forbidden => StatusCode::FORBIDDEN,
                ErrorCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::NOT_FOUND,
            };
            let mut response = http_error(status, MediaType::Json, &err);
            if status == StatusCode::UNAUTHORIZED {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            response
        }
    }
}

/// The export's id and document, for the Owner who asked, with a session: who asks is
/// checked before the document is read.
async fn document(app: &App, headers: &HeaderMap, token: &str) -> ApiResult<(uuid::Uuid, String)> {
    let bearer = crate::http::bearer_token(headers);
    // Afresh: a whole workspace's data is not handed to a token revoked a moment ago.
    let (sessions, fresh) = (&app.config.sessions, Lookup::Fresh);
    let caller = crate::auth::authenticate(&app.db, &app.bearers, fresh, bearer, sessions)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    caller.ensure_session()?;
    let gone = || ApiError::not_found("Export");
    let db = app.db.acting_as(Some(caller.user_id));
    let mut conn = db.conn_outside_tenancy().await?;
    let (id, workspace_id) = model::find_by_token(&mut conn, &crate::auth::token::hash(token))
        .await?
        .ok_or_else(gone)?;
    drop(conn);
    let mut conn = db.conn_in(workspace_id).await?;
    let export = model::find_ready(&mut conn, id, Utc::now())
        .await?
        .ok_or_else(gone)?;
    let owner = crate::members::model::role_of(&mut conn, workspace_id, caller.user_id).await?;
    let live = crate::workspaces::model::find_live(&mut conn, workspace_id).await?;
    if export.requested_by != caller.user_id || owner != Some(Role::Owner) || live.is_none() {
        return Err(gone());
    }
    let body = model::document(&mut conn, id).await?.ok_or_else(gone)?;
    Ok((id, body))
}
