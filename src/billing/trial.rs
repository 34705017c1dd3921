//! The trial's life: reminders to the Owner and Admins 7, 3 and 1 days before it ends, and
//! a notice when it ends without a plan (the workspace then reads as TRIAL_EXPIRED and is
//! read-only; nothing is deleted).
//!
//! A scan, run by every worker on a schedule and taking "now" as a parameter, records each
//! due notice as a row (one per workspace and notice) and enqueues its email in the same
//! transaction; the row's primary key makes several workers or a retried scan send it once.
//! When several notices are due at once (a scan missed for days), only the most urgent is
//! emailed and the older ones are recorded as passed.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Interval, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use linkai_jobs::Payload;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::{bind, static_sql, Db};
use crate::schema::trial_notices;

/// The emails of a trial's life, each sent at most once per workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialNotice {
    /// 7 days left.
    Reminder7,
    /// 3 days left.
    Reminder3,
    /// 1 day left.
    Reminder1,
    /// The trial ended without a plan: the workspace is read-only.
    Expired,
}

impl TrialNotice {
    /// From the earliest to the most urgent.
    pub const ALL: [TrialNotice; 4] = [
        TrialNotice::Reminder7,
        TrialNotice::Reminder3,
        TrialNotice::Reminder1,
        TrialNotice::Expired,
    ];

    pub fn as_db(self) -> &'static str {
        match self {
            TrialNotice::Reminder7 => "reminder_7",
            TrialNotice::Reminder3 => "reminder_3",
            TrialNotice::Reminder1 => "reminder_1",
            TrialNotice::Expired => "expired",
        }
    }

    /// Days before the trial's end when the notice is due (0: at the end).
    pub fn days_before_end(self) -> i64 {
        match self {
            TrialNotice::Reminder7 => 7,
            TrialNotice::Reminder3 => 3,
            TrialNotice::Reminder1 => 1,
            TrialNotice::Expired => 0,
        }
    }
}

/// Job: email a workspace's Owner and Admins about its trial (`billing::jobs`).
#[derive(Debug, Serialize, Deserialize)]
pub struct SendTrialNotice {
    pub workspace_id: Uuid,
    pub notice: TrialNotice,
}

impl Payload for SendTrialNotice {
    const KIND: &'static str = "send_trial_notice";
}

#[derive(QueryableByName)]
struct Ending {
    #[diesel(sql_type = SqlUuid)]
    workspace_id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    trial_ends_at: DateTime<Utc>,
}

/// The notices due at `now` for a trial ending at `ends`, earliest first.
pub fn due(ends: DateTime<Utc>, now: DateTime<Utc>) -> Vec<TrialNotice> {
    TrialNotice::ALL
        .into_iter()
        .filter(|notice| now >= ends - Duration::days(notice.days_before_end()))
        .collect()
}

/// Records and enqueues the notices due at `now`; returns how many emails were enqueued.
pub async fn scan(db: &Db, now: DateTime<Utc>) -> anyhow::Result<usize> {
    let mut conn = db.conn().await?;
    let horizon = Duration::days(TrialNotice::Reminder7.days_before_end());
    let ending: Vec<Ending> = static_sql(
        "SELECT workspace_id, trial_ends_at FROM trials_needing_notice($1, $2)",
        (
            bind::<Timestamptz, _>(now),
            bind::<Interval, _>(diesel::data_types::PgInterval::from_microseconds(
                horizon.num_microseconds().unwrap_or(i64::MAX),
            )),
        ),
    )
    .load(&mut conn)
    .await?;
    let mut enqueued = 0;
    for trial in ending {
        let due = due(trial.trial_ends_at, now);
        let Some(&most_urgent) = due.last() else {
            continue;
        };
        let sent = conn
            .transaction(async |conn| {
                record(
                    conn,
                    trial.workspace_id,
                    &due,
                    most_urgent,
                    trial.trial_ends_at,
                )
                .await
            })
            .await?;
        enqueued += usize::from(sent);
    }
    Ok(enqueued)
}

/// Inserts the due notices; enqueues the most urgent one's email if this call recorded it.
async fn record(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    due: &[TrialNotice],
    most_urgent: TrialNotice,
    ends: DateTime<Utc>,
) -> QueryResult<bool> {
    crate::db::enter_workspace(conn, workspace_id).await?;
    let rows: Vec<_> = due
        .iter()
        .map(|notice| {
            (
                trial_notices::workspace_id.eq(workspace_id),
                trial_notices::notice.eq(notice.as_db()),
                trial_notices::due_at.eq(ends - Duration::days(notice.days_before_end())),
            )
        })
        .collect();
    let inserted: Vec<String> = diesel::insert_into(trial_notices::table)
        .values(rows)
        .on_conflict_do_nothing()
        .returning(trial_notices::notice)
        .get_results(conn)
        .await?;
    if !inserted.iter().any(|notice| notice == most_urgent.as_db()) {
        return Ok(false);
    }
    let job = SendTrialNotice {
        workspace_id,
        notice: most_urgent,
    };
    crate::outbox::enqueue(conn, &job).await?;
    Ok(true)
}

/// Whether the notice still needs its email; the caller is inside the workspace.
pub async fn pending(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    notice: TrialNotice,
) -> QueryResult<bool> {
    let emailed: Option<Option<DateTime<Utc>>> = trial_notices::table
        .find((workspace_id, notice.as_db()))
        .select(trial_notices::emailed_at)
        .for_update()
        .first(conn)
        .await
        .optional()?;
    Ok(matches!(emailed, Some(None)))
}

pub async fn mark_emailed(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    notice: TrialNotice,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(trial_notices::table.find((workspace_id, notice.as_db())))
        .set(trial_notices::emailed_at.eq(now))
        .execute(conn)
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_fall_due_7_3_1_and_0_days_before_the_end() {
        let ends = Utc::now();
        let at = |days_left: f64| {
            due(
                ends,
                ends - Duration::seconds((days_left * 86_400.0) as i64),
            )
        };
        assert!(at(7.5).is_empty());
        assert_eq!(at(7.0), [TrialNotice::Reminder7]);
        assert_eq!(at(2.5), [TrialNotice::Reminder7, TrialNotice::Reminder3]);
        assert_eq!(at(0.5).last(), Some(&TrialNotice::Reminder1));
        assert_eq!(at(0.0).last(), Some(&TrialNotice::Expired));
        assert_eq!(at(-3.0).len(), 4);
    }
}
