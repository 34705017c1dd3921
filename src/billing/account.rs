//! The workspace's billing account: its Stripe customer and the mirrored subscription.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::plans::PlanId;
use super::stripe::Subscription;
use crate::schema::{billing_accounts, workspaces};

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = billing_accounts)]
pub struct BillingAccountRow {
    pub workspace_id: Uuid,
    pub stripe_customer_id: String,
    pub subscription_id: Option<String>,
    pub subscription_status: Option<String>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
}

/// The account of a workspace; the connection must be inside it.
pub async fn find(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
) -> QueryResult<Option<BillingAccountRow>> {
    billing_accounts::table
        .find(workspace_id)
        .select(BillingAccountRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Records the customer once; a concurrent first call keeps the row already there.
pub async fn insert_customer(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    customer: &str,
) -> QueryResult<()> {
    diesel::insert_into(billing_accounts::table)
        .values((
            billing_accounts::workspace_id.eq(workspace_id),
            billing_accounts::stripe_customer_id.eq(customer),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await
        .map(drop)
}

/// Mirrors a subscription and the plan it is for onto the account and the workspace;
/// true when this call is the one that found it newly past due (the row lock makes that one
/// call, however many syncs run at once).
pub async fn save_subscription(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    subscription: &Subscription,
    plan: Option<PlanId>,
) -> QueryResult<bool> {
    let became_past_due = subscription.status == "past_due"
        && diesel::update(
            workspaces::table
                .find(workspace_id)
                .filter(workspaces::subscription_status.is_distinct_from("past_due")),
        )
        .set(workspaces::subscription_status.eq("past_due"))
        .execute(conn)
        .await?
            == 1;
    let period_end = subscription
        .current_period_end
        .and_then(|ts| DateTime::from_timestamp(ts, 0));
    diesel::update(billing_accounts::table.find(workspace_id))
        .set((
            billing_accounts::subscription_id.eq(&subscription.id),
            billing_accounts::subscription_status.eq(&subscription.status),
            billing_accounts::current_period_end.eq(period_end),
            billing_accounts::cancel_at_period_end.eq(subscription.cancel_at_period_end),
            billing_accounts::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    let workspace = workspaces::table.find(workspace_id);
    match plan {
        Some(plan) => {
            diesel::update(workspace)
                .set((
                    workspaces::plan.eq(plan.as_db()),
                    workspaces::subscription_status.eq(&subscription.status),
                ))
                .execute(conn)
                .await
        }
        None => {
            diesel::update(workspace)
                .set(workspaces::subscription_status.eq(&subscription.status))
                .execute(conn)
                .await
        }
    }?;
    Ok(became_past_due)
}
