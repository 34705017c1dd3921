//! `POST /webhooks/stripe`: verify the signature over the raw body, record the event once,
//! queue the sync of the workspace it concerns, and answer at once.
//!
//! Processing a subscription event mirrors the event's copy of the subscription only when
//! it is the newest event seen for it (by Stripe's `created`), so duplicates and any
//! delivery order end in the newest state; every other event, and one whose order is
//! unclear, re-reads the workspace's billing from Stripe ([`super::sync`]).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::sync::{ApplySubscriptionEvent, SyncBilling, SyncPlans};
use crate::config::Secret;
use crate::db::Db;
use crate::schema::stripe_events;

/// Signatures older (or newer) than this are refused, as Stripe's libraries do.
pub const TOLERANCE: Duration = Duration::from_secs(300);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header")]
    Missing,
    #[error("malformed Stripe-Signature header")]
    Malformed,
    #[error("timestamp outside the tolerance")]
    Stale,
    #[error("no signature matches")]
    Mismatch,
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Checks `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]` over `body` with `secret`.
pub fn verify(
    secret: &str,
    header: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - timestamp).unsigned_abs() > TOLERANCE.as_secs() {
        return Err(SignatureError::Stale);
    }
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    let expected = hex(&hmac_sha256(secret.as_bytes(), &signed));
    signatures
        .iter()
        .any(|candidate| constant_time_eq(candidate.as_bytes(), expected.as_bytes()))
        .then_some(())
        .ok_or(SignatureError::Mismatch)
}

/// The header Stripe would send for `body` at `timestamp` (tests and tooling).
pub fn sign(secret: &str, body: &[u8], timestamp: i64) -> String {
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    format!(
        "t={timestamp},v1={}",
        hex(&hmac_sha256(secret.as_bytes(), &signed))
    )
}

diesel::define_sql_function!(fn workspace_of_stripe_customer(customer: diesel::sql_types::Text) -> diesel::sql_types::Nullable<diesel::sql_types::Uuid>);

diesel::define_sql_function!(fn workspace_of_payment_method(payment_method: diesel::sql_types::Text) -> diesel::sql_types::Nullable<diesel::sql_types::Uuid>);

/// Whose an event's object is: a Stripe customer, or, for a card detached from its
/// customer (Stripe then sends it with `customer: null`), the card as we mirrored it.
enum Owner<'a> {
    Customer(&'a str),
    Card(&'a str),
}

fn owner_of(event: &Value) -> Option<Owner<'_>> {
    let object = event.get("data")?.get("object")?;
    let text = |field: &str| object.get(field).and_then(Value::as_str);
    match object.get("object")?.as_str()? {
        "customer" => text("id").map(Owner::Customer),
        "payment_method" => text("customer")
            .map(Owner::Customer)
            .or_else(|| text("id").map(Owner::Card)),
        _ => text("customer").map(Owner::Customer),
    }
}

/// What the endpoint needs: the database, and the signing secret (none: the endpoint is off,
/// NOT_FOUND).
#[derive(Clone)]
pub struct Webhooks {
    pub db: Db,
    pub secret: Option<Secret>,
}

pub async fn receive(
    State(hooks): State<Arc<Webhooks>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let (status, outcome) = take(&hooks, &headers, &body).await;
    metrics::counter!("linkai_stripe_webhooks_total", "outcome" => outcome).increment(1);
    status
}

/// The answer to one delivery, and what became of it: `received`, `duplicate` (recorded
/// before), `rejected` (not a signed event), or `error`.
async fn take(hooks: &Webhooks, headers: &HeaderMap, body: &Bytes) -> (StatusCode, &'static str) {
    let Some(secret) = &hooks.secret else {
        return (StatusCode::NOT_FOUND, "rejected");
    };
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    if let Err(err) = verify(secret.expose(), header, body, Utc::now().timestamp()) {
        tracing::warn!("refused a Stripe webhook: {err}");
        return (StatusCode::BAD_REQUEST, "rejected");
    }
    let Ok(event) = serde_json::from_slice::<Value>(body) else {
        return (StatusCode::BAD_REQUEST, "rejected");
    };
    let (Some(id), Some(kind)) = (event["id"].as_str(), event["type"].as_str()) else {
        return (StatusCode::BAD_REQUEST, "rejected");
    };
    match record(&hooks.db, id, kind, &event).await {
        Ok(true) => (StatusCode::OK, "received"),
        Ok(false) => (StatusCode::OK, "duplicate"),
        // Stripe delivers again later either way; an outage is logged once, not per event.
        Err(err) if crate::db::is_outage_of(&err) => {
            crate::db::note_outage(&format!("{err:#}"));
            (StatusCode::SERVICE_UNAVAILABLE, "error")
        }
        Err(err) => {
            tracing::error!("could not record Stripe event {id}: {err:#}");
            (StatusCode::INTERNAL_SERVER_ERROR, "error")
        }
    }
}

/// Records the event and queues its workspace's sync in one transaction; a redelivered
/// event is recorded already and changes nothing (false).
async fn record(db: &Db, id: &str, kind: &str, event: &Value) -> anyhow::Result<bool> {
    let mut conn = db.conn().await?;
    conn.transaction(async |conn| {
        let plans = ["product.", "price.", "plan."]
            .iter()
            .any(|prefix| kind.starts_with(prefix));
        let workspace: Option<Uuid> = match owner_of(event).filter(|_| !plans) {
            Some(Owner::Customer(customer)) => {
                diesel::select(workspace_of_stripe_customer(customer))
                    .get_result(conn)
                    .await?
            }
            Some(Owner::Card(card)) => {
                diesel::select(workspace_of_payment_method(card))
                    .get_result(conn)
                    .await?
            }
            None => None,
        };
        let customer = match owner_of(event) {
            Some(Owner::Customer(customer)) => Some(customer),
            _ => None,
        };
        let inserted = diesel::insert_into(stripe_events::table)
            .values((
                stripe_events::id.eq(id),
                stripe_events::event_type.eq(kind),
                stripe_events::payload.eq(event),
                stripe_events::stripe_customer_id.eq(customer),
            ))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        if inserted == 0 {
            return Ok(false);
        }
        if plans {
            crate::outbox::enqueue(conn, &SyncPlans {}).await?;
            return Ok(true);
        }
        if let Some(workspace_id) = workspace {
            // A subscription event carries the subscription as it was: applied in order.
            if kind.starts_with("customer.subscription.") {
                let job = ApplySubscriptionEvent {
                    workspace_id,
                    event_id: id.to_owned(),
                };
                crate::outbox::enqueue(conn, &job).await?;
            } else {
                crate::outbox::enqueue(conn, &SyncBilling { workspace_id }).await?;
            }
        }
        Ok::<_, anyhow::Error>(true)
    })
    .await
}

/// Forgets Stripe events received before `before` (the retention period, longer than
/// Stripe's redelivery window); returns how many.
pub async fn prune(conn: &mut AsyncPgConnection, before: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(stripe_events::table.filter(stripe_events::received_at.lt(before)))
        .execute(conn)
        .await
}

diesel::define_sql_function! {
    /// Scrubs the kept events about a workspace's Stripe customer (the migration
    /// `2026-12-05-000028_billing_grace_and_retention` defines it): each keeps its id and
    /// type, so a redelivery stays a no-op, and loses what it said.
    fn scrub_stripe_events_of(workspace: diesel::sql_types::Uuid) -> diesel::sql_types::BigInt;
}

/// Scrubs the events about a deleted workspace (its customer's emails, addresses, card
/// digits); returns how many.
pub async fn scrub_workspace(conn: &mut AsyncPgConnection, workspace_id: Uuid) -> QueryResult<i64> {
    diesel::select(scrub_stripe_events_of(workspace_id))
        .get_result(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signature_cases() {
        let secret = "whsec_test";
        let body = br#"{"id":"evt_1","type":"invoice.paid"}"#;
        let now = 1_800_000_000;
        let valid = sign(secret, body, now);
        let wrong_secret = sign("whsec_other", body, now);
        let old = sign(secret, body, now - 301);
        let mut changed = body.to_vec();
        changed[10] ^= 1;
        let wrong_part = wrong_secret
            .split_once(",v1=")
            .map(|(_, v)| v)
            .unwrap_or_default();
        let right_part = valid.split_once(",v1=").map(|(_, v)| v).unwrap_or_default();
        let two = format!("t={now},v1={wrong_part},v1={right_part}");
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            &'a [u8],
            Result<(), SignatureError>,
        );
        let cases: [Case; 7] = [
            ("valid", Some(&valid), body, Ok(())),
            (
                "wrong secret",
                Some(&wrong_secret),
                body,
                Err(SignatureError::Mismatch),
            ),
            (
                "changed byte",
                Some(&valid),
                &changed,
                Err(SignatureError::Mismatch),
            ),
            (
                "old timestamp",
                Some(&old),
                body,
                Err(SignatureError::Stale),
            ),
            ("missing header", None, body, Err(SignatureError::Missing)),
            ("two signatures, one valid", Some(&two), body, Ok(())),
            (
                "no v1",
                Some("t=1800000000"),
                body,
                Err(SignatureError::Malformed),
            ),
        ];
        for (name, header, body, expected) in cases {
            assert_eq!(verify(secret, header, body, now), expected, "{name}");
        }
    }
}
