//! Billing per workspace: plans and their limits, the billing status (derived, never
//! stored, from the trial and the plan, so it cannot go stale) and billing periods.

pub mod account;
pub mod cards;
pub mod details;
pub mod grace;
pub mod graphql;
pub mod jobs;
pub mod manage;
pub mod operations;
pub mod phone_numbers;
pub mod plans;
pub mod status;
pub mod stripe;
pub mod sync;
pub mod transport;
pub mod trial;
pub mod webhook;

use chrono::{DateTime, Months, Utc};

use self::plans::{Limits, PlanId, TRIAL_PLAN};
use crate::workspaces::model::WorkspaceRow;

/// Where a workspace stands with billing (docs/billing.md's billing status table; GraphQL's
/// `BillingStatus` is its mirror in `billing::graphql`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BillingStatus {
    /// In the free trial, with full access.
    Trialing,
    /// A plan is paid for.
    Active,
    /// A plan was chosen but its first payment is not complete: the card needs
    /// authentication (`selectPlan`'s `requiresAction`) or was declined. The workspace keeps
    /// its state before (writable in the trial, read-only after it) until Stripe says paid.
    Incomplete,
    /// The last payment failed; Stripe is retrying. Everything keeps working.
    PastDue,
    /// Stripe's retries ran out with the invoice unpaid; the workspace is read-only until a
    /// payment goes through.
    Unpaid,
    /// The subscription was paused (the trial ended without a payment method); the
    /// workspace is read-only until it resumes.
    Paused,
    /// The subscription ended; the workspace is read-only.
    Canceled,
    /// The trial ended with no plan; the workspace is read-only until a plan is chosen.
    TrialExpired,
}

impl BillingStatus {
    /// The status shown at `now` ([`status::standing`]).
    pub fn derive(workspace: &WorkspaceRow, now: DateTime<Utc>) -> BillingStatus {
        status::standing(workspace, now).status
    }
}

/// The plan whose limits a workspace works under at `now`: the highest during the trial
/// (a plan chosen in it applies from the trial's end, when its billing starts), then its
/// own.
pub fn effective_plan(workspace: &WorkspaceRow, now: DateTime<Utc>) -> PlanId {
    let trialing = now < workspace.trial_ends_at;
    effective_plan_of(workspace.plan.as_deref().filter(|_| !trialing))
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
    Ok(plans::find(conn, effective_plan(workspace, Utc::now()))
        .await?
        .limits)
}

/// The effective plan of `w` at `$3` and its row, for a statement that reads `w` (`$2` the
/// trial's plan): the plan row may be absent (before the first sync), and then the defaults
/// apply. `$3` is the service's clock, as [`effective_plan`] and the usage period use.
macro_rules! with_plan {
    () => {
        " CROSS JOIN LATERAL (SELECT COALESCE(CASE WHEN w.trial_ends_at <= $3 THEN w.plan END, \
                                              $2) AS effective_plan) e \
          LEFT JOIN plan_prices p ON p.plan = e.effective_plan "
    };
}

/// A plan's limits as read beside its workspace (see [`with_plan!`]).
#[derive(diesel::QueryableByName)]
struct PlanLimits {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    effective_plan: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Integer>)]
    messages: Option<i32>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Integer>)]
    sms: Option<i32>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Integer>)]
    agents: Option<i32>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Integer>)]
    phone_numbers: Option<i32>,
}

impl PlanLimits {
    fn limits(self) -> Limits {
        match (self.messages, self.sms, self.agents, self.phone_numbers) {
            (Some(messages), Some(sms), Some(agents), Some(phone_numbers)) => Limits {
                messages,
                sms,
                agents,
                phone_numbers,
            },
            _ => plans::default_plan(effective_plan_of(self.effective_plan.as_deref())).limits,
        }
    }
}

/// Locks the workspace's row (see [`crate::workspaces::model::lock_row`]) and reads the limits
/// it works under, in one statement: a limit check that follows sees the plan as of the lock.
pub async fn lock_row_with_limits(
    conn: &mut diesel_async::AsyncPgConnection,
    workspace_id: uuid::Uuid,
) -> diesel::QueryResult<Limits> {
    use crate::db::{bind, static_sql};
    use diesel_async::RunQueryDsl;

    // `OF w`: the plan row is read, not locked.
    let locked: PlanLimits = static_sql(
        concat!(
            "SELECT e.effective_plan, p.messages, p.sms, p.agents, p.phone_numbers \
             FROM workspaces w",
            with_plan!(),
            "WHERE w.id = $1 FOR NO KEY UPDATE OF w"
        ),
        (
            bind::<diesel::sql_types::Uuid, _>(workspace_id),
            bind::<diesel::sql_types::Text, _>(TRIAL_PLAN.as_db()),
            bind::<diesel::sql_types::Timestamptz, _>(Utc::now()),
        ),
    )
    .get_result(conn)
    .await?;
    Ok(locked.limits())
}

/// A live workspace as its writes see it: the row, the limits it works under, and the
/// billing period Stripe last reported (whether or not a subscription applies).
pub struct Live {
    pub workspace: WorkspaceRow,
    pub limits: Limits,
    reported_period: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

impl Live {
    /// The period usage counts in at `now` ([`usage_period`], from what was read).
    pub fn usage_period(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let live = status::subscription_of(&self.workspace)
            .is_some_and(status::SubscriptionStatus::is_live);
        usage_period_of(&self.workspace, self.reported_period.filter(|_| live), now)
    }
}

/// The live workspace with the limits it works under at `now` and its reported billing
/// period, in one statement (`workspace_for_writes`, migration 000061) on any connection:
/// the statement enters the workspace for itself, so the runtime's writes need no context
/// statement before it.
pub async fn live_with_limits(
    conn: &mut diesel_async::AsyncPgConnection,
    workspace_id: uuid::Uuid,
    now: DateTime<Utc>,
) -> diesel::QueryResult<Option<Live>> {
    use crate::db::{bind, static_sql};
    use diesel::sql_types::{Nullable, Timestamptz};
    use diesel::{OptionalExtension, QueryableByName};
    use diesel_async::RunQueryDsl;

    #[derive(QueryableByName)]
    struct Row {
        #[diesel(embed)]
        workspace: WorkspaceRow,
        #[diesel(embed)]
        plan: PlanLimits,
        #[diesel(sql_type = Nullable<Timestamptz>)]
        current_period_start: Option<DateTime<Utc>>,
        #[diesel(sql_type = Nullable<Timestamptz>)]
        current_period_end: Option<DateTime<Utc>>,
    }
    let row: Option<Row> = static_sql(
        "SELECT * FROM workspace_for_writes($1, $2, $3)",
        (
            bind::<diesel::sql_types::Uuid, _>(workspace_id),
            bind::<diesel::sql_types::Text, _>(TRIAL_PLAN.as_db()),
            bind::<Timestamptz, _>(now),
        ),
    )
    .get_result(conn)
    .await
    .optional()?;
    Ok(row.map(|row| Live {
        reported_period: row.current_period_start.zip(row.current_period_end),
        workspace: row.workspace,
        limits: row.plan.limits(),
    }))
}

/// The period usage counts in at `now` (docs/architecture.md, usage): while a subscription's plan
/// applies, its current period as Stripe reports it (rolled forward monthly if a renewal
/// is not mirrored yet); otherwise, during the trial, the trial; after it, months from
/// the trial's end. Reads the mirrored period only for workspaces with a subscription.
pub async fn usage_period(
    conn: &mut diesel_async::AsyncPgConnection,
    workspace: &WorkspaceRow,
    now: DateTime<Utc>,
) -> diesel::QueryResult<(DateTime<Utc>, DateTime<Utc>)> {
    let live = status::subscription_of(workspace).is_some_and(status::SubscriptionStatus::is_live);
    let subscription = if live {
        account::current_period(conn, workspace.id).await?
    } else {
        None
    };
    Ok(usage_period_of(workspace, subscription, now))
}

/// [`usage_period`] with the mirrored period given.
pub fn usage_period_of(
    workspace: &WorkspaceRow,
    subscription: Option<(DateTime<Utc>, DateTime<Utc>)>,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    // The trial is one period, whenever a plan is chosen in it: choosing one keeps what was
    // counted (a trialing subscription's own period starts when it was made).
    if now < workspace.trial_ends_at {
        return (workspace.created_at, workspace.trial_ends_at);
    }
    match subscription {
        Some((start, end)) if now < end => (start, end),
        Some((start, _)) => period(start, now),
        None => period(workspace.trial_ends_at, now),
    }
}

/// The monthly period containing `now`, anchored at `anchor`.
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

/// Where a card stands with its expiry date (valid through the last day of its month).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardExpiry {
    Valid,
    /// Expires within [`CARD_EXPIRY_NOTICE_DAYS`].
    ExpiresSoon,
    Expired,
}

/// How long before a card's expiry it counts as expiring soon.
pub const CARD_EXPIRY_NOTICE_DAYS: i64 = 30;

/// Whether a card expiring at the end of `month`/`year` is expired or expires soon at `now`.
pub fn card_expiry(month: i32, year: i32, now: DateTime<Utc>) -> CardExpiry {
    let (next_year, next_month) = if month >= 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    let Some(end) = u32::try_from(next_month)
        .ok()
        .and_then(|m| chrono::NaiveDate::from_ymd_opt(next_year, m, 1))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
    else {
        // No date Stripe would send: treat as expired, so it is looked at.
        return CardExpiry::Expired;
    };
    if now >= end {
        CardExpiry::Expired
    } else if end - now <= chrono::Duration::days(CARD_EXPIRY_NOTICE_DAYS) {
        CardExpiry::ExpiresSoon
    } else {
        CardExpiry::Valid
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
            payment_failed_at: None,
            time_zone: "UTC".into(),
            conversation_retention_days: None,
        }
    }

    #[test]
    fn status_follows_the_trial_and_the_plan() {
        let ends = Utc::now();
        let trial = workspace(ends, None);
        let before = status::standing(&trial, ends - Duration::seconds(1));
        assert_eq!(before.status, BillingStatus::Trialing);
        assert!(!before.read_only);
        let after = status::standing(&trial, ends);
        assert_eq!(after.status, BillingStatus::TrialExpired);
        assert!(after.read_only);
        let paid =
            BillingStatus::derive(&workspace(ends, Some("growth")), ends + Duration::days(9));
        assert_eq!(paid, BillingStatus::Active);
        let chosen_in_trial =
            BillingStatus::derive(&workspace(ends, Some("growth")), ends - Duration::days(1));
        assert_eq!(chosen_in_trial, BillingStatus::Trialing);
    }

    /// Issue 16: `incomplete` read as ACTIVE and lifted read-only, `unpaid` never became
    /// read-only, `paused` was not handled. Every Stripe status, during and after the
    /// trial, with a plan chosen: the status shown and read-only, as docs/billing.md's table says.
    #[test]
    fn every_stripe_status_shows_and_locks_as_the_table_says() {
        use status::SubscriptionStatus as S;
        use BillingStatus as B;
        let ends = Utc::now();
        let during = ends - Duration::days(1);
        let after = ends + Duration::days(1);
        let table = [
            (S::Trialing, (B::Trialing, false), (B::Active, false)),
            (S::Active, (B::Trialing, false), (B::Active, false)),
            (S::Incomplete, (B::Incomplete, false), (B::Incomplete, true)),
            (
                S::IncompleteExpired,
                (B::Trialing, false),
                (B::TrialExpired, true),
            ),
            (S::PastDue, (B::PastDue, false), (B::PastDue, false)),
            (S::Unpaid, (B::Unpaid, true), (B::Unpaid, true)),
            (S::Canceled, (B::Canceled, true), (B::Canceled, true)),
            (S::Paused, (B::Paused, true), (B::Paused, true)),
        ];
        assert_eq!(table.len(), S::ALL.len());
        for (stripe, in_trial, past_trial) in table {
            assert_eq!(S::parse(stripe.as_stripe()), Some(stripe));
            let mut row = workspace(ends, Some("growth"));
            row.subscription_status = Some(stripe.as_stripe().to_owned());
            for (now, (shown, read_only)) in [(during, in_trial), (after, past_trial)] {
                let standing = status::standing(&row, now);
                assert_eq!(standing.status, shown, "{stripe:?}");
                assert_eq!(standing.read_only, read_only, "{stripe:?}");
            }
        }
        assert_eq!(S::parse("something_new"), None);
        let emails: Vec<S> = S::ALL
            .into_iter()
            .filter(|s| s.effect().email.is_some())
            .collect();
        assert_eq!(emails, [S::PastDue, S::Unpaid]);
    }

    #[test]
    fn trials_get_the_highest_limits_and_plans_their_own() {
        let ends = Utc::now();
        let (during, after) = (ends - Duration::days(1), ends);
        assert_eq!(
            effective_plan(&workspace(ends, None), during),
            PlanId::Scale
        );
        // Chosen in the trial: the trial's limits until it ends, when billing starts.
        let chosen = workspace(ends, Some("starter"));
        assert_eq!(effective_plan(&chosen, during), PlanId::Scale);
        assert_eq!(effective_plan(&chosen, after), PlanId::Starter);
    }

    /// Issue 16: usage periods ran from the workspace's creation, not the invoice's. In the
    /// trial the trial is the period; with a subscription, Stripe's current period, which a
    /// renewal moves; a renewal not mirrored yet rolls on monthly.
    #[test]
    fn usage_follows_the_trial_then_the_subscriptions_period() {
        let ends = Utc
            .with_ymd_and_hms(2026, 3, 15, 12, 0, 0)
            .single()
            .expect("valid");
        let row = workspace(ends, Some("growth"));
        let in_trial = ends - Duration::days(3);
        assert_eq!(
            usage_period_of(&row, None, in_trial),
            (row.created_at, ends)
        );
        let first = (ends, ends + Duration::days(31));
        let renewed = (first.1, first.1 + Duration::days(30));
        let now = ends + Duration::days(10);
        assert_eq!(usage_period_of(&row, Some(first), now), first);
        let after_renewal = first.1 + Duration::days(1);
        assert_eq!(usage_period_of(&row, Some(renewed), after_renewal), renewed);
        // Not mirrored yet: the month after the known period.
        let (start, _) = usage_period_of(&row, Some(first), after_renewal);
        assert_eq!(
            start,
            ends.checked_add_months(Months::new(1)).expect("valid")
        );
        // After a trial without a plan: months from the trial's end.
        let (start, _) = usage_period_of(&workspace(ends, None), None, ends + Duration::days(40));
        assert_eq!(
            start,
            ends.checked_add_months(Months::new(1)).expect("valid")
        );
    }

    /// Issue 26: past due stayed writable for Stripe's whole retry schedule.
    #[test]
    fn past_due_turns_read_only_when_its_grace_period_ends() {
        let ends = Utc::now() - Duration::days(30);
        let mut row = workspace(ends, Some("growth"));
        row.subscription_status = Some("past_due".into());
        let failed = Utc::now();
        row.payment_failed_at = Some(failed);
        let grace = grace::grace();
        let before = status::standing(&row, failed + grace - Duration::seconds(1));
        let after = status::standing(&row, failed + grace);
        assert_eq!(before.status, BillingStatus::PastDue);
        assert!(!before.read_only);
        assert_eq!(after.status, BillingStatus::PastDue);
        assert!(after.read_only);
        // Paid again: the failure spell (and its date) is over.
        row.subscription_status = Some("active".into());
        assert!(!status::standing(&row, failed + grace * 2).read_only);
    }

    #[test]
    fn cards_are_valid_through_their_month_and_expire_soon_within_30_days() {
        let at = |y, m, d| {
            Utc.with_ymd_and_hms(y, m, d, 12, 0, 0)
                .single()
                .expect("valid")
        };
        assert_eq!(
            card_expiry(11, 2026, at(2026, 11, 30)),
            CardExpiry::ExpiresSoon
        );
        assert_eq!(card_expiry(12, 2026, at(2026, 11, 30)), CardExpiry::Valid);
        assert_eq!(
            card_expiry(12, 2026, at(2026, 12, 2)),
            CardExpiry::ExpiresSoon
        );
        assert_eq!(card_expiry(12, 2026, at(2027, 1, 1)), CardExpiry::Expired);
        assert_eq!(card_expiry(10, 2026, at(2026, 11, 1)), CardExpiry::Expired);
        assert_eq!(card_expiry(0, 0, at(2026, 11, 1)), CardExpiry::Expired);
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
