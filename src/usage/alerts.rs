//! Usage alerts: when a workspace's usage of a limit (messages, SMS, agents, phone numbers)
//! passes 80 % and again when it reaches 100 % in a billing period, the Owner and Admins get
//! one email each, and the audit log one event (`USAGE_NEARING_LIMIT`, `USAGE_LIMIT_REACHED`).
//!
//! Rules:
//! - The write that crosses a threshold records the alert, queues its email and appends its
//!   event, in its own transaction. Counters move one writer at a time (the counter's row,
//!   or the workspace's row for agents and phone numbers), so one writer crosses each
//!   threshold; the alert's unique key (period, limit, threshold, value of the limit) makes
//!   that exactly once however writers race or retry.
//! - A plan change moves the limit: the next threshold crossed of the new limit alerts
//!   again (a larger plan is a new allowance), and a threshold of a limit already alerted
//!   in the period does not. A change that lowers the limit below the usage alerts nothing
//!   by itself; the refusals that follow say `USAGE_LIMIT_REACHED`.
//! - 100 % is the counter reaching the limit. A metered write that would pass it is refused
//!   whole and writes nothing, an alert included: the runtime hears `USAGE_LIMIT_REACHED`.
//! - The email job re-reads the alert and sends only while it is not marked emailed; it
//!   marks it after sending, so a job that fails midway sends again to those it reached
//!   (at least once each, as every notice here).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use linkai_jobs::Payload;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Action, Event, Target, Trail};
use crate::billing::plans::CountLimit;
use crate::schema::usage_alerts;

/// The thresholds, in percent of the limit.
pub const THRESHOLDS: [i16; 2] = [80, 100];

/// What a limit counts: `usage_alerts.metric`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Limited {
    Messages,
    Sms,
    Agents,
    PhoneNumbers,
}

impl Limited {
    pub fn as_db(self) -> &'static str {
        match self {
            Limited::Messages => "messages",
            Limited::Sms => "sms",
            Limited::Agents => "agents",
            Limited::PhoneNumbers => "phone_numbers",
        }
    }

    fn from_db(text: &str) -> Option<Self> {
        [
            Limited::Messages,
            Limited::Sms,
            Limited::Agents,
            Limited::PhoneNumbers,
        ]
        .into_iter()
        .find(|what| what.as_db() == text)
    }

    /// How the email names it.
    pub fn label(self) -> &'static str {
        match self {
            Limited::Messages => "messages",
            Limited::Sms => "SMS",
            Limited::Agents => "agents",
            Limited::PhoneNumbers => "phone numbers",
        }
    }
}

/// The usage at which `threshold` percent of `limit` is reached.
fn level(limit: i32, threshold: i16) -> i64 {
    // Rounded up: 80 % of 5 agents is reached at the 4th.
    (i64::from(limit) * i64::from(threshold) + 99) / 100
}

/// The usages at which `limit`'s alerts go out, lowest first (none for no allowance).
pub fn levels(limit: i32) -> Vec<i64> {
    THRESHOLDS
        .into_iter()
        .filter(|_| limit > 0)
        .map(|t| level(limit, t))
        .collect()
}

/// One move of a counter: in the period starting `period_start`, usage went from `before`
/// to `after` against `limit`.
#[derive(Clone, Copy, Debug)]
pub struct Moved {
    pub workspace_id: Uuid,
    pub period_start: DateTime<Utc>,
    pub what: Limited,
    pub before: i64,
    pub after: i64,
    pub limit: i32,
}

impl Moved {
    /// The thresholds this move crosses.
    pub fn crossed(&self) -> Vec<i16> {
        THRESHOLDS
            .into_iter()
            .zip(levels(self.limit))
            .filter(|(_, at)| self.before < *at && *at <= self.after)
            .map(|(threshold, _)| threshold)
            .collect()
    }
}

/// Job: email the Owner and Admins about an alert (`usage::jobs`).
#[derive(Debug, Serialize, Deserialize)]
pub struct SendUsageAlert {
    pub workspace_id: Uuid,
    pub alert_id: Uuid,
}

impl Payload for SendUsageAlert {
    const KIND: &'static str = "send_usage_alert";
}

/// Records the alerts `moved` crosses, queues their emails and appends their events; call
/// in the transaction that moved the counter. Nothing to do (no statement) when it crosses
/// none.
pub async fn check(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    moved: Moved,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    for threshold in moved.crossed() {
        let inserted: Option<Uuid> = diesel::insert_into(usage_alerts::table)
            .values((
                usage_alerts::id.eq(Uuid::now_v7()),
                usage_alerts::workspace_id.eq(moved.workspace_id),
                usage_alerts::period_start.eq(moved.period_start),
                usage_alerts::metric.eq(moved.what.as_db()),
                usage_alerts::threshold.eq(threshold),
                usage_alerts::limit_value.eq(moved.limit),
                usage_alerts::used.eq(moved.after),
            ))
            .on_conflict_do_nothing()
            .returning(usage_alerts::id)
            .get_result(conn)
            .await
            .optional()?;
        let Some(alert_id) = inserted else {
            continue;
        };
        let job = SendUsageAlert {
            workspace_id: moved.workspace_id,
            alert_id,
        };
        crate::outbox::enqueue(conn, &job).await?;
        let action = match threshold {
            100 => Action::UsageLimitReached,
            _ => Action::UsageNearingLimit,
        };
        let event = Event {
            action,
            target: Target::workspace(moved.workspace_id),
            changes: json!({
                "metric": moved.what.as_db(),
                "threshold": threshold,
                "used": moved.after,
                "limit": moved.limit,
                "periodStart": moved.period_start.to_rfc3339(),
            }),
        };
        audit::record(conn, moved.workspace_id, trail, event, now).await?;
    }
    Ok(())
}

/// Checks the alerts of adding one more of a counted kind (an agent, a phone number) to
/// the `before` the workspace held, under its row lock; reads the billing period only when
/// a threshold is crossed.
pub async fn after_adding(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    workspace_id: Uuid,
    what: CountLimit,
    (before, limit): (i64, i32),
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let what = match what {
        CountLimit::Agents => Limited::Agents,
        CountLimit::PhoneNumbers => Limited::PhoneNumbers,
    };
    let mut moved = Moved {
        workspace_id,
        period_start: now,
        what,
        before,
        after: before + 1,
        limit,
    };
    if moved.crossed().is_empty() {
        return Ok(());
    }
    let Some(workspace) = crate::workspaces::model::find_live(conn, workspace_id).await? else {
        return Ok(());
    };
    moved.period_start = crate::billing::usage_period(conn, &workspace, now).await?.0;
    check(conn, trail, moved, now).await
}

/// An alert not emailed yet.
pub struct Pending {
    pub what: Limited,
    pub threshold: i16,
    pub used: i64,
    pub limit: i32,
}

/// The workspace's alert, if it is still to be emailed.
pub async fn pending(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    alert_id: Uuid,
) -> QueryResult<Option<Pending>> {
    let row: Option<(String, i16, i64, i32)> = usage_alerts::table
        .find((workspace_id, alert_id))
        .filter(usage_alerts::emailed_at.is_null())
        .select((
            usage_alerts::metric,
            usage_alerts::threshold,
            usage_alerts::used,
            usage_alerts::limit_value,
        ))
        .first(conn)
        .await
        .optional()?;
    Ok(row.and_then(|(metric, threshold, used, limit)| {
        Some(Pending {
            what: Limited::from_db(&metric)?,
            threshold,
            used,
            limit,
        })
    }))
}

/// Marks the alert emailed.
pub async fn mark_emailed(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    alert_id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(usage_alerts::table.find((workspace_id, alert_id)))
        .set(usage_alerts::emailed_at.eq(now))
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moved(before: i64, after: i64, limit: i32) -> Moved {
        Moved {
            workspace_id: Uuid::nil(),
            period_start: Utc::now(),
            what: Limited::Messages,
            before,
            after,
            limit,
        }
    }

    #[test]
    fn a_move_crosses_the_thresholds_between_its_ends() {
        assert_eq!(moved(0, 79, 100).crossed(), Vec::<i16>::new());
        assert_eq!(moved(79, 80, 100).crossed(), [80]);
        assert_eq!(moved(80, 99, 100).crossed(), Vec::<i16>::new());
        assert_eq!(moved(99, 100, 100).crossed(), [100]);
        assert_eq!(moved(10, 100, 100).crossed(), [80, 100]);
        // 80 % of 5 agents is the 4th.
        assert_eq!(moved(3, 4, 5).crossed(), [80]);
        assert_eq!(moved(4, 5, 5).crossed(), [100]);
        // A plan with no allowance has nothing to warn about.
        assert_eq!(moved(0, 0, 0).crossed(), Vec::<i16>::new());
    }
}
