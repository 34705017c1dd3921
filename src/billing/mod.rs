//! Billing per workspace: plans and their limits, the billing status (derived, never
//! stored, from the trial and the plan, so it cannot go stale) and billing periods.

pub mod account;
pub mod graphql;
pub mod plans;
pub mod stripe;
pub mod sync;
pub mod trial;
pub mod webhook;

use async_graphql::{Context, Enum, Object};
use chrono::{DateTime, Months, Utc};

use self::plans::{Limits, Plan, PlanId, TRIAL_PLAN};
use crate::workspaces::model::WorkspaceRow;

/// Where a workspace stands with billing.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum BillingStatus {
    /// In the free trial, with full access.
    Trialing,
    /// A plan is paid for.
    Active,
    /// The last payment failed; Stripe is retrying.
    PastDue,
    /// The subscription ended; the workspace is read-only.
    Canceled,
    /// The trial ended with no plan; the workspace is read-only until a plan is chosen.
    TrialExpired,
}

impl BillingStatus {
    /// From the mirrored subscription first (past due, ended), then the plan and trial:
    /// with a plan chosen during the trial the workspace stays trialing (nothing is charged
    /// before the trial ends), then active; without one it expires with the trial.
    pub fn derive(workspace: &WorkspaceRow, now: DateTime<Utc>) -> BillingStatus {
        match workspace.subscription_status.as_deref() {
            Some("past_due" | "unpaid") => return BillingStatus::PastDue,
            Some("canceled" | "incomplete_expired") => return BillingStatus::Canceled,
            _ => {}
        }
        if now < workspace.trial_ends_at {
            BillingStatus::Trialing
        } else if workspace.plan.is_some() {
            BillingStatus::Active
        } else {
            BillingStatus::TrialExpired
        }
    }

    /// Read-only workspaces keep every read and refuse every write.
    pub fn is_read_only(self) -> bool {
        matches!(self, BillingStatus::TrialExpired | BillingStatus::Canceled)
    }
}

/// The plan whose limits a workspace works under: its own, or the highest during the trial.
pub fn effective_plan(workspace: &WorkspaceRow) -> PlanId {
    effective_plan_of(workspace.plan.as_deref())
}

/// [`effective_plan`] from the workspace's `plan` column.
fn effective_plan_of(plan: Option<&str>) -> PlanId {
    plan.and_then(PlanId::from_db).unwrap_or(TRIAL_PLAN)
}

/// The limits a workspace works under (as synced from Stripe, else the defaults).
pub async fn limits(
    conn: &mut diesel_async::AsyncPgConnection,
    workspace: &WorkspaceRow,
) -> diesel::QueryResult<Limits> {
    Ok(plans::find(conn, effective_plan(workspace)).await?.limits)
}

/// Locks the workspace's row (see [`crate::workspaces::model::lock_row`]) and reads the limits
/// it works under, in one statement: a limit check that follows sees the plan as of the lock.
pub async fn lock_row_with_limits(
    conn: &mut diesel_async::AsyncPgConnection,
    workspace_id: uuid::Uuid,
) -> diesel::QueryResult<Limits> {
    use crate::db::{bind, static_sql};
    use diesel::sql_types::{Nullable, Text};
    use diesel_async::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct Locked {
        #[diesel(sql_type = Nullable<Text>)]
        plan: Option<String>,
        #[diesel(sql_type = Nullable<diesel::sql_types::Integer>)]
        messages: Option<i32>,
        #[diesel(sql_type = Nullable<diesel::sql_types::Integer>)]
        sms: Option<i32>,
        #[diesel(sql_type = Nullable<diesel::sql_types::Integer>)]
        agents: Option<i32>,
        #[diesel(sql_type = Nullable<diesel::sql_types::Integer>)]
        phone_numbers: Option<i32>,
    }

    // `OF w`: the plan row is read, not locked (and may be absent: then the defaults apply).
    let locked: Locked = static_sql(
        "SELECT w.plan, p.messages, p.sms, p.agents, p.phone_numbers \
         FROM workspaces w LEFT JOIN plan_prices p ON p.plan = COALESCE(w.plan, $2) \
         WHERE w.id = $1 FOR NO KEY UPDATE OF w",
        (
            bind::<diesel::sql_types::Uuid, _>(workspace_id),
            bind::<Text, _>(TRIAL_PLAN.as_db()),
        ),
    )
    .get_result(conn)
    .await?;
    let plan = effective_plan_of(locked.plan.as_deref());
    Ok(
        match (
            locked.messages,
            locked.sms,
            locked.agents,
            locked.phone_numbers,
        ) {
            (Some(messages), Some(sms), Some(agents), Some(phone_numbers)) => Limits {
                messages,
                sms,
                agents,
                phone_numbers,
            },
            _ => plans::default_plan(plan).limits,
        },
    )
}

/// The monthly billing period containing `now`, anchored at `anchor` (the workspace's
/// creation until a subscription sets its own period).
pub fn period(anchor: DateTime<Utc>, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let add = |months: u32| {
        anchor
            .checked_add_months(Months::new(months))
            .unwrap_or(anchor)
    };
    let mut months = 0;
    while add(months + 1) <= now && months < 12 * 1000 {
        months += 1;
    }
    (add(months), add(months + 1))
}

#[derive(Default)]
pub struct BillingQuery;

/// Billing queries.
#[Object]
impl BillingQuery {
    /// The plans a workspace can choose, with prices and limits.
    async fn plans(&self, ctx: &Context<'_>) -> crate::error::ApiResult<Option<Vec<Plan>>> {
        let mut conn = crate::graphql::context::request(ctx).db.conn().await?;
        Ok(Some(plans::all(&mut conn).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn workspace(trial_ends_at: DateTime<Utc>, plan: Option<&str>) -> WorkspaceRow {
        WorkspaceRow {
            id: uuid::Uuid::nil(),
            name: "W".into(),
            created_at: trial_ends_at - Duration::days(14),
            trial_ends_at,
            plan: plan.map(str::to_owned),
            subscription_status: None,
        }
    }

    #[test]
    fn status_follows_the_trial_and_the_plan() {
        let ends = Utc::now();
        let trial = workspace(ends, None);
        let before = BillingStatus::derive(&trial, ends - Duration::seconds(1));
        assert_eq!(before, BillingStatus::Trialing);
        assert!(!before.is_read_only());
        let after = BillingStatus::derive(&trial, ends);
        assert_eq!(after, BillingStatus::TrialExpired);
        assert!(after.is_read_only());
        let paid =
            BillingStatus::derive(&workspace(ends, Some("growth")), ends + Duration::days(9));
        assert_eq!(paid, BillingStatus::Active);
        let chosen_in_trial =
            BillingStatus::derive(&workspace(ends, Some("growth")), ends - Duration::days(1));
        assert_eq!(chosen_in_trial, BillingStatus::Trialing);
        let mut lapsed = workspace(ends, Some("growth"));
        lapsed.subscription_status = Some("past_due".into());
        assert_eq!(
            BillingStatus::derive(&lapsed, ends + Duration::days(40)),
            BillingStatus::PastDue
        );
        lapsed.subscription_status = Some("canceled".into());
        let ended = BillingStatus::derive(&lapsed, ends + Duration::days(40));
        assert_eq!(ended, BillingStatus::Canceled);
        assert!(ended.is_read_only());
    }

    #[test]
    fn trials_get_the_highest_limits_and_plans_their_own() {
        let ends = Utc::now();
        assert_eq!(effective_plan(&workspace(ends, None)), PlanId::Scale);
        assert_eq!(
            effective_plan(&workspace(ends, Some("starter"))),
            PlanId::Starter
        );
    }

    #[test]
    fn periods_are_monthly_from_the_anchor() {
        let anchor = Utc
            .with_ymd_and_hms(2026, 1, 31, 10, 0, 0)
            .single()
            .expect("valid");
        let (start, end) = period(anchor, anchor);
        assert_eq!(
            (start, end),
            (
                anchor,
                Utc.with_ymd_and_hms(2026, 2, 28, 10, 0, 0)
                    .single()
                    .expect("valid")
            )
        );
        let now = Utc
            .with_ymd_and_hms(2026, 4, 15, 0, 0, 0)
            .single()
            .expect("valid");
        let (start, end) = period(anchor, now);
        assert_eq!(
            start,
            Utc.with_ymd_and_hms(2026, 3, 31, 10, 0, 0)
                .single()
                .expect("valid")
        );
        assert_eq!(
            end,
            Utc.with_ymd_and_hms(2026, 4, 30, 10, 0, 0)
                .single()
                .expect("valid")
        );
    }
}
