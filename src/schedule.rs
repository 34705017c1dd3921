//! Scheduled work once per interval, whatever the number of workers. Every worker wakes on
//! the schedule, but a round runs only on the worker whose claim moves the round's
//! `next_at` forward (`scheduled_rounds`): one upsert, so exactly one of several workers
//! waking together wins, and the others skip until the next interval. A worker that dies
//! mid-round leaves the row due at `next_at`, where another takes the following round.

use chrono::{DateTime, Utc};
use diesel::sql_types::{Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::{bind, static_sql};

/// Kinds of scheduled work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Round {
    /// Trial reminders and expiries, plus forgetting old counters and requests.
    TrialScan,
    /// Every workspace's billing re-read from Stripe.
    BillingReconciliation,
    /// Deleted workspaces past their restore window purged.
    WorkspacePurge,
}

impl Round {
    fn name(self) -> &'static str {
        match self {
            Round::TrialScan => "trial_scan",
            Round::BillingReconciliation => "billing_reconciliation",
            Round::WorkspacePurge => "workspace_purge",
        }
    }
}

#[derive(diesel::QueryableByName)]
struct Claimed {
    #[diesel(sql_type = Text)]
    #[allow(dead_code)]
    name: String,
}

/// Whether `worker` takes the `round` due at `now`: true for one caller per interval.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    round: Round,
    worker: &str,
    interval: std::time::Duration,
    now: DateTime<Utc>,
) -> diesel::QueryResult<bool> {
    let next = now + chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::MAX);
    let claimed: Vec<Claimed> = static_sql(
        "INSERT INTO scheduled_rounds (name, next_at, claimed_by) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET next_at = EXCLUDED.next_at, claimed_by = EXCLUDED.claimed_by \
         WHERE scheduled_rounds.next_at <= $4 RETURNING name",
        (
            bind::<Text, _>(round.name()),
            bind::<Timestamptz, _>(next),
            bind::<Text, _>(worker),
            bind::<Timestamptz, _>(now),
        ),
    )
    .load(conn)
    .await?;
    Ok(!claimed.is_empty())
}
