//! Usage: messages and SMS metered per billing period through an idempotent report from
//! the agent runtime (a service token), and agents and phone numbers in use, shown against
//! the plan's limits.
//!
//! Rules: a report with an idempotency key already seen in the workspace counts once (the
//! same key with a different metric or quantity is a `CONFLICT`); a report that would take
//! the period past the plan's limit is refused with `USAGE_LIMIT_REACHED` and counts
//! nothing. The check and the count are one statement, so parallel reports cannot
//! overshoot. The period follows billing ([`crate::billing::usage_period`]): the trial
//! during the trial, then the subscription's current period, so limits reset on the day
//! the invoice does.
//!
//! A counted report appends `SERVICE_ACCESSED` to the audit log the first time in the UTC
//! day a service reports for the workspace, and `USAGE_LIMIT_REACHED` when it brings a
//! counter to its limit (once per period and metric: a counter never passes its limit). A
//! refused or repeated report appends nothing.

pub mod graphql;
pub mod model;

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::audit::{self, Action, Event, Target, Trail};
use crate::config::Secret;

/// A report just counted.
pub struct Report {
    pub metric: &'static str,
    /// The period's total after it.
    pub total: i64,
    pub limit: i32,
    pub period_start: DateTime<Utc>,
}

/// Appends the audit events a counted report implies, in its transaction.
pub async fn record_report(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    workspace_id: Uuid,
    report: Report,
    now: DateTime<Utc>,
) -> diesel::QueryResult<()> {
    let target = Target::workspace(workspace_id);
    let day = now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map_or(now, |start| start.and_utc());
    if !audit::model::exists_since(conn, workspace_id, Action::ServiceAccessed, day).await? {
        let event = Event {
            action: Action::ServiceAccessed,
            target: target.clone(),
            changes: json!({ "metric": report.metric }),
        };
        audit::record(conn, workspace_id, trail, event, now).await?;
    }
    if report.total == i64::from(report.limit) {
        let event = Event {
            action: Action::UsageLimitReached,
            target,
            changes: json!({
                "metric": report.metric,
                "limit": report.limit,
                "periodStart": report.period_start.to_rfc3339(),
            }),
        };
        audit::record(conn, workspace_id, trail, event, now).await?;
    }
    Ok(())
}

/// Whether `token` is one of the configured service tokens. Compares digests, so the time
/// taken does not depend on how much of a token matched.
pub fn is_service_token(tokens: &[Secret], token: &str) -> bool {
    let digest = Sha256::digest(token.as_bytes());
    tokens.iter().fold(false, |found, candidate| {
        let candidate = Sha256::digest(candidate.expose().as_bytes());
        let same = candidate
            .iter()
            .zip(digest.iter())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0;
        found | same
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_tokens_are_service_tokens() {
        let tokens = vec![Secret::new("svc_one"), Secret::new("svc_two")];
        assert!(is_service_token(&tokens, "svc_two"));
        assert!(!is_service_token(&tokens, "svc_thre"));
        assert!(!is_service_token(&[], "svc_one"));
    }
}
