//! Service tokens: how the agent runtime (and any other service) calls the API. Each has a
//! name for the operator; the conversations it writes record the token; only its SHA-256
//! is stored. The
//! operator adds and revokes them with `linkai service-token` (as the database's owner:
//! the application role only reads them), and a revoked token fails from its next request,
//! without a restart.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::token::{self, TokenKind, SERVICE_PREFIX};
use crate::db::Db;
use crate::error::ApiResult;
use crate::schema::service_tokens;

/// The service a request comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub token_id: Uuid,
}

/// One token as the operator sees it.
#[derive(Queryable, Debug)]
pub struct ServiceTokenRow {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The live service token `bearer` is, if it is one: one statement, and none for a bearer
/// without the service prefix.
pub async fn authenticate(db: &Db, bearer: &str) -> ApiResult<Option<Service>> {
    if !bearer.starts_with(SERVICE_PREFIX) {
        return Ok(None);
    }
    let mut conn = db.conn_outside_tenancy().await?;
    let found = service_tokens::table
        .filter(service_tokens::token_hash.eq(token::hash(bearer)))
        .filter(service_tokens::revoked_at.is_null())
        .select(service_tokens::id)
        .first::<Uuid>(&mut conn)
        .await
        .optional()?;
    Ok(found.map(|token_id| Service { token_id }))
}

/// Adds a token named `name` and returns its plaintext, shown once.
pub async fn add(conn: &mut AsyncPgConnection, name: &str) -> QueryResult<String> {
    let minted = token::mint(TokenKind::Service);
    diesel::insert_into(service_tokens::table)
        .values((
            service_tokens::id.eq(Uuid::now_v7()),
            service_tokens::name.eq(name),
            service_tokens::token_hash.eq(&minted.hash),
        ))
        .execute(conn)
        .await?;
    Ok(minted.plaintext)
}

/// Revokes the live token named `name`; whether there was one.
pub async fn revoke(
    conn: &mut AsyncPgConnection,
    name: &str,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    let revoked = diesel::update(service_tokens::table)
        .filter(service_tokens::name.eq(name))
        .filter(service_tokens::revoked_at.is_null())
        .set(service_tokens::revoked_at.eq(now))
        .execute(conn)
        .await?;
    Ok(revoked > 0)
}

/// Every token, oldest first.
pub async fn list(conn: &mut AsyncPgConnection) -> QueryResult<Vec<ServiceTokenRow>> {
    service_tokens::table
        .select((
            service_tokens::id,
            service_tokens::name,
            service_tokens::created_at,
            service_tokens::revoked_at,
        ))
        .order((service_tokens::created_at, service_tokens::id))
        .load(conn)
        .await
}
