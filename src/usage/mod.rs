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
//! day a service reports for the workspace, and the alerts it crosses
//! ([`alerts`]: 80 % and 100 % of the limit, each emailed once). A refused or repeated
//! report appends nothing.

pub mod alerts;
pub mod graphql;
pub mod jobs;
pub mod model;

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Action, Event, Target, Trail};
use crate::billing::{self, plans::Limits};
use crate::error::{ApiError, ErrorCode};
use crate::workspaces::model::WorkspaceRow;

/// What is metered per billing period (GraphQL's `UsageMetric` is its mirror).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Messages,
    Sms,
}

impl Metric {
    pub fn as_db(self) -> &'static str {
        match self {
            Metric::Messages => "messages",
            Metric::Sms => "sms",
        }
    }

    /// Its alerts' name for it.
    pub fn limited(self) -> alerts::Limited {
        match self {
            Metric::Messages => alerts::Limited::Messages,
            Metric::Sms => alerts::Limited::Sms,
        }
    }

    pub fn limit(self, limits: &Limits) -> i32 {
        match self {
            Metric::Messages => limits.messages,
            Metric::Sms => limits.sms,
        }
    }
}

pub const MAX_QUANTITY: i32 = 1_000_000;
pub const MAX_KEY_CHARS: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("`quantity` must be 1 to {MAX_QUANTITY}.")]
    Quantity,
    #[error("`idempotencyKey` must be 1 to {MAX_KEY_CHARS} characters.")]
    KeyLength,
    /// PostgreSQL text cannot hold NUL: refused here, not as a database error.
    #[error("`idempotencyKey` must not contain control characters.")]
    KeyControlCharacters,
    #[error("Workspace not found.")]
    NotFound,
    #[error("This workspace is read-only until an Owner or Admin chooses a plan.")]
    ReadOnly,
    #[error("This would pass the plan's {metric} limit for the period ({limit}).")]
    LimitReached { metric: &'static str, limit: i32 },
    #[error("This idempotencyKey was used for a different report.")]
    KeyReused,
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

impl From<UsageError> for ApiError {
    fn from(err: UsageError) -> Self {
        match err {
            UsageError::Quantity | UsageError::KeyLength | UsageError::KeyControlCharacters => {
                ApiError::bad_input(err.to_string())
            }
            UsageError::NotFound => ApiError::not_found("Workspace"),
            UsageError::ReadOnly => ApiError::new(ErrorCode::TrialExpired, err.to_string()),
            UsageError::LimitReached { .. } => {
                ApiError::new(ErrorCode::UsageLimitReached, err.to_string())
            }
            UsageError::KeyReused => ApiError::conflict(err.to_string()),
            UsageError::Db(err) => err.into(),
        }
    }
}

/// The workspace and the billing period a report was counted in.
pub struct Reported {
    pub workspace: WorkspaceRow,
    pub period: (DateTime<Utc>, DateTime<Utc>),
    pub limits: Limits,
}

/// Counts `quantity` of `metric` for the workspace under the idempotency `key` (a key seen
/// before counts nothing), within the period's limit, and appends the audit events a
/// counted report implies; call inside a transaction, on a connection inside the workspace.
pub async fn report(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    workspace_id: Uuid,
    metric: Metric,
    quantity: i32,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Reported, UsageError> {
    if !(1..=MAX_QUANTITY).contains(&quantity) {
        return Err(UsageError::Quantity);
    }
    let key = key.trim();
    if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
        return Err(UsageError::KeyLength);
    }
    if key.chars().any(char::is_control) {
        return Err(UsageError::KeyControlCharacters);
    }
    let live = billing::live_with_limits(conn, workspace_id, now)
        .await?
        .ok_or(UsageError::NotFound)?;
    let period = live.usage_period(now);
    let billing::Live {
        workspace, limits, ..
    } = live;
    let period_start = period.0;
    let fresh = model::insert_event(
        conn,
        workspace_id,
        key,
        metric.as_db(),
        quantity,
        period_start,
    )
    .await?;
    if !fresh {
        let seen = model::find_event(conn, workspace_id, key).await?;
        if seen != Some((metric.as_db().to_owned(), quantity)) {
            return Err(UsageError::KeyReused);
        }
        return Ok(Reported {
            workspace,
            period,
            limits,
        });
    }
    if billing::status::standing(&workspace, now).read_only {
        return Err(UsageError::ReadOnly);
    }
    count(
        conn,
        trail,
        &limits,
        (workspace_id, period_start),
        &[(metric, quantity)],
        now,
    )
    .await?;
    Ok(Reported {
        workspace,
        period,
        limits,
    })
}

/// Counts each `(metric, quantity)` in the workspace's period starting `period_start`,
/// within the plan's `limits`, and appends the audit events the counts imply. A count that
/// would pass its limit is `LimitReached`, and the caller's transaction counts nothing: the
/// checks and the counts are one statement, so parallel counts cannot overshoot. Call
/// inside the transaction that writes what is counted.
pub async fn count(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    limits: &Limits,
    (workspace_id, period_start): (Uuid, DateTime<Utc>),
    counts: &[(Metric, i32)],
    now: DateTime<Utc>,
) -> Result<(), UsageError> {
    // One row per metric: an upsert cannot move one counter twice.
    let mut merged: Vec<(Metric, i32)> = Vec::with_capacity(counts.len());
    for &(metric, quantity) in counts {
        match merged.iter_mut().find(|(m, _)| *m == metric) {
            Some((_, total)) => *total = total.saturating_add(quantity),
            None => merged.push((metric, quantity)),
        }
    }
    let counts = merged.as_slice();
    let asked: Vec<(&str, i32, i32)> = counts
        .iter()
        .map(|(metric, quantity)| (metric.as_db(), *quantity, metric.limit(limits)))
        .collect();
    let totals = model::add_within_limits(conn, workspace_id, period_start, &asked).await?;
    let mut moves = Vec::with_capacity(counts.len());
    for &(metric, quantity) in counts {
        let total = totals
            .iter()
            .find(|(m, _)| m == metric.as_db())
            .map(|(_, total)| *total)
            .ok_or(UsageError::LimitReached {
                metric: metric.as_db(),
                limit: metric.limit(limits),
            })?;
        moves.push((metric, quantity, total));
    }
    let at = (workspace_id, period_start);
    counted(conn, trail, limits, at, &moves, now).await?;
    Ok(())
}

/// Appends the audit events of counts a write made itself (an append, `append_messages`
/// in migration 000061): each `(metric, quantity, the period's total after)`, in the
/// period starting `period_start`, as [`count`] appends them. Call in the write's
/// transaction.
pub async fn counted(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    limits: &Limits,
    (workspace_id, period_start): (Uuid, DateTime<Utc>),
    moves: &[(Metric, i32, i64)],
    now: DateTime<Utc>,
) -> diesel::QueryResult<()> {
    let counted: Vec<Counted> = moves
        .iter()
        .map(|&(metric, quantity, total)| Counted {
            metric,
            quantity,
            total,
            limit: metric.limit(limits),
            period_start,
        })
        .collect();
    record_counts(conn, trail, workspace_id, &counted, now).await
}

/// Since when a counted write looks for the workspace's `SERVICE_ACCESSED` event, which the
/// day's first one appends: the start of `now`'s UTC day.
pub fn access_day(now: DateTime<Utc>) -> DateTime<Utc> {
    now.date_naive()
        .and_hms_opt(0, 0, 0)
        .map_or(now, |start| start.and_utc())
}

/// Counts just made.
struct Counted {
    metric: Metric,
    quantity: i32,
    /// The period's total after it.
    total: i64,
    limit: i32,
    period_start: DateTime<Utc>,
}

/// Appends the audit events counted reports imply, in their transaction: the day's first
/// `SERVICE_ACCESSED` (checked once, however many metrics), and the alerts each crosses.
async fn record_counts(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    workspace_id: Uuid,
    counted: &[Counted],
    now: DateTime<Utc>,
) -> diesel::QueryResult<()> {
    let Some(first) = counted.first() else {
        return Ok(());
    };
    let day = access_day(now);
    if !audit::model::exists_since(conn, workspace_id, Action::ServiceAccessed, day).await? {
        let event = Event {
            action: Action::ServiceAccessed,
            target: Target::workspace(workspace_id),
            changes: json!({ "metric": first.metric.as_db() }),
        };
        audit::record(conn, workspace_id, trail, event, now).await?;
    }
    for report in counted {
        let moved = alerts::Moved {
            workspace_id,
            period_start: report.period_start,
            what: report.metric.limited(),
            before: report.total - i64::from(report.quantity),
            after: report.total,
            limit: report.limit,
        };
        alerts::check(conn, trail, moved, now).await?;
    }
    Ok(())
}
