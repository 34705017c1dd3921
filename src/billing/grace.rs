//! The grace period of a failed payment.
//!
//! Rules:
//! - A subscription that enters a failed-payment status (past due, unpaid) records when
//!   ([`super::account::save_subscription`], under the account's row lock, once per failure
//!   spell), and the Owner and Admins are emailed at once, with the day the workspace
//!   becomes read-only.
//! - Past due stays writable for the grace period (`PAST_DUE_GRACE_DAYS`, default 7 days),
//!   then reads as read-only, still PAST_DUE, until a payment goes through or Stripe gives
//!   up (unpaid, read-only at once). Stripe's own retries can last weeks; the workspace
//!   does not keep running on credit that long.
//! - [`NOTICE_BEFORE`] the grace ends, the Owner and Admins are emailed once more, unless
//!   it was paid meanwhile: a scan on the trial scan's schedule records the notice and
//!   queues its email in one transaction, once per failure spell.
//! - Leaving the failed-payment statuses clears both, so the next failure starts afresh.

use std::sync::OnceLock;

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Interval, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection as _, RunQueryDsl};
use linkai_jobs::Payload;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::{bind, static_sql, Db};
use crate::schema::workspaces;

/// How long before the grace period ends its last notice is due.
pub const NOTICE_BEFORE: Duration = Duration::days(2);

static GRACE: OnceLock<Duration> = OnceLock::new();

/// Sets the grace period for this process (from `PAST_DUE_GRACE_DAYS`, at start); the
/// first setting stands.
pub fn configure(grace: Duration) {
    let _ = GRACE.set(grace);
}

/// The grace period of a past-due workspace.
pub fn grace() -> Duration {
    GRACE.get().copied().unwrap_or(Duration::days(
        i64::try_from(crate::config::DEFAULT_PAST_DUE_GRACE_DAYS).unwrap_or(7),
    ))
}

/// When a workspace whose payment failed at `failed_at` becomes read-only.
pub fn read_only_from(failed_at: DateTime<Utc>) -> DateTime<Utc> {
    failed_at + grace()
}

/// Job: tell a workspace's Owner and Admins that it becomes read-only soon
/// (`billing::jobs`).
#[derive(Debug, Serialize, Deserialize)]
pub struct SendGraceEnding {
    pub workspace_id: Uuid,
}

impl Payload for SendGraceEnding {
    const KIND: &'static str = "send_grace_ending";
}

#[derive(diesel::QueryableByName)]
struct Due {
    #[diesel(sql_type = SqlUuid)]
    workspace_id: Uuid,
}

fn interval(duration: Duration) -> diesel::data_types::PgInterval {
    diesel::data_types::PgInterval::from_microseconds(duration.num_microseconds().unwrap_or(0))
}

/// Records and queues the due "read-only soon" notices; returns how many were queued.
pub async fn scan(db: &Db, now: DateTime<Utc>) -> anyhow::Result<usize> {
    let mut conn = db.conn().await?;
    let due: Vec<Due> = static_sql(
        "SELECT graces_needing_notice($1, $2, $3) AS workspace_id",
        (
            bind::<Timestamptz, _>(now),
            bind::<Interval, _>(interval(grace())),
            bind::<Interval, _>(interval(NOTICE_BEFORE)),
        ),
    )
    .load(&mut conn)
    .await?;
    drop(conn);
    let mut queued = 0;
    for Due { workspace_id } in due {
        let mut conn = db.conn_in(workspace_id).await?;
        let recorded = conn
            .transaction(async |conn| {
                // Once per failure spell: the row decides among scans running together.
                let claimed = diesel::update(
                    workspaces::table
                        .find(workspace_id)
                        .filter(workspaces::grace_notice_at.is_null())
                        .filter(workspaces::payment_failed_at.is_not_null()),
                )
                .set(workspaces::grace_notice_at.eq(now))
                .execute(conn)
                .await?;
                if claimed == 1 {
                    crate::outbox::enqueue(conn, &SendGraceEnding { workspace_id }).await?;
                }
                QueryResult::Ok(claimed == 1)
            })
            .await?;
        queued += usize::from(recorded);
    }
    Ok(queued)
}
