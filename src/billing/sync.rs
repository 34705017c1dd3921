//! Mirrors a workspace's subscription from Stripe, the source of truth for money. Runs after
//! each webhook (as a job) and periodically for every workspace with a Stripe customer, so
//! missed or reordered webhooks are repaired.

use diesel::sql_types::Uuid as SqlUuid;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::account;
use super::stripe::StripeApi;
use crate::db::{static_sql, Db};

/// Copies the workspace's cards, invoices and subscription state from Stripe (making the
/// first saved card the default when there is none).
pub async fn sync_workspace(db: &Db, stripe: &StripeApi, workspace_id: Uuid) -> anyhow::Result<()> {
    let mut conn = db.conn_in(workspace_id).await?;
    let Some(account) = account::find(&mut conn, workspace_id).await? else {
        return Ok(());
    };
    let customer = &account.stripe_customer_id;
    super::cards::refresh(&mut conn, stripe, workspace_id, customer).await?;
    let invoices = stripe.invoices(customer, 100).await?;
    account::save_invoices(&mut conn, workspace_id, &invoices).await?;
    let Some(subscription_id) = account.subscription_id else {
        return Ok(());
    };
    let subscription = stripe.subscription(&subscription_id).await?;
    let phone_item = account.phone_numbers_item_id.as_deref();
    let plan = match subscription.price_id(phone_item) {
        Some(price) => match super::plans::by_stripe_price(&mut conn, price).await? {
            Some(plan) => Some(plan),
            None => sync_plans(&mut conn, stripe)
                .await?
                .into_iter()
                .find(|synced| synced.price_id == price)
                .map(|synced| synced.plan.id),
        },
        None => None,
    };
    mirror(&mut conn, workspace_id, &subscription, plan).await?;
    super::phone_numbers::sync(&mut conn, stripe, workspace_id).await?;
    Ok(())
}

/// Stores the subscription as Stripe reports it, on a connection inside the workspace;
/// the first mirror to see it enter a status that emails (the README's billing status
/// table) queues the payment-failed email in the same transaction. Every path that learns a subscription's state goes through here.
pub async fn mirror(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    subscription: &super::stripe::Subscription,
    plan: Option<super::plans::PlanId>,
) -> diesel::QueryResult<()> {
    conn.transaction(async |conn| {
        if account::save_subscription(conn, workspace_id, subscription, plan).await? {
            let job = linkai_jobs::Job::SendPaymentFailed { workspace_id };
            crate::outbox::enqueue(conn, &job).await?;
        }
        Ok(())
    })
    .await
}

/// Ends a deleted workspace's subscription now, and mirrors the result.
pub async fn cancel_workspace(
    db: &Db,
    stripe: &StripeApi,
    workspace_id: Uuid,
) -> anyhow::Result<()> {
    let mut conn = db.conn_in(workspace_id).await?;
    let Some(account) = account::find(&mut conn, workspace_id).await? else {
        return Ok(());
    };
    let Some(subscription_id) = account.subscription_id else {
        return Ok(());
    };
    let status = account
        .subscription_status
        .as_deref()
        .and_then(super::status::SubscriptionStatus::parse);
    if status != Some(super::status::SubscriptionStatus::Canceled) {
        stripe.cancel_now(&subscription_id).await?;
    }
    let subscription = stripe.subscription(&subscription_id).await?;
    mirror(&mut conn, workspace_id, &subscription, None).await?;
    Ok(())
}

/// Bills the workspace's current Owner: their email goes on the Stripe customer, unless a
/// billing email was set (`updateBillingDetails`), which stays.
pub async fn update_customer_email(
    db: &Db,
    stripe: &StripeApi,
    workspace_id: Uuid,
) -> anyhow::Result<()> {
    let mut conn = db.conn_in(workspace_id).await?;
    let Some(account) = account::find(&mut conn, workspace_id).await? else {
        return Ok(());
    };
    if super::details::BillingDetails::from_column(account.details.as_ref())
        .email
        .is_some()
    {
        return Ok(());
    }
    let Some(owner) = crate::members::model::owner_of(&mut conn, workspace_id).await? else {
        return Ok(());
    };
    let Some(user) = crate::auth::model::find_user(&mut conn, owner).await? else {
        return Ok(());
    };
    stripe
        .update_customer_email(&account.stripe_customer_id, &user.email)
        .await?;
    Ok(())
}

/// Reads our plans' prices and limits from Stripe and stores them.
pub async fn sync_plans(
    conn: &mut AsyncPgConnection,
    stripe: &StripeApi,
) -> anyhow::Result<Vec<super::stripe::SyncedPlan>> {
    let plans = stripe.plans().await?;
    super::plans::save_synced(conn, &plans).await?;
    Ok(plans)
}

#[derive(diesel::QueryableByName)]
struct Billed {
    #[diesel(sql_type = SqlUuid)]
    workspace_id: Uuid,
}

/// Re-syncs the plans, then every workspace with a Stripe customer; returns how many
/// workspaces were synced.
pub async fn reconcile(db: &Db, stripe: &StripeApi) -> anyhow::Result<usize> {
    let mut conn = db.conn().await?;
    sync_plans(&mut conn, stripe).await?;
    let billed: Vec<Billed> = static_sql("SELECT workspaces_with_billing() AS workspace_id", ())
        .load(&mut conn)
        .await?;
    drop(conn);
    let mut synced = 0;
    for workspace in billed {
        let result = sync_workspace(db, stripe, workspace.workspace_id).await;
        if let Err(err) = result {
            let id = workspace.workspace_id;
            tracing::warn!(workspace = %id, "billing sync failed: {err:#}");
        } else {
            synced += 1;
        }
    }
    Ok(synced)
}
