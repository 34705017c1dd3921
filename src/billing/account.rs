//! The workspace's billing account: its Stripe customer and the mirrored subscription.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::plans::PlanId;
use super::status::SubscriptionStatus;
use super::stripe::Subscription;
use crate::db::{bind, static_sql};
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
    pub current_period_start: Option<DateTime<Utc>>,
    /// What `updateBillingDetails` set ([`super::details::BillingDetails`]).
    pub details: Option<serde_json::Value>,
    /// The subscription item billing the phone numbers ([`super::phone_numbers`]).
    pub phone_numbers_item_id: Option<String>,
    /// When the newest subscription event applied happened ([`super::sync`]).
    pub stripe_state_at: Option<DateTime<Utc>>,
    /// The workspace's deletion set the subscription to end ([`super::sync::follow_lifecycle`]).
    pub ended_by_deletion: bool,
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

/// Records whether the workspace's deletion is what set its subscription to end.
pub async fn set_ended_by_deletion(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    ended: bool,
) -> QueryResult<()> {
    diesel::update(billing_accounts::table.find(workspace_id))
        .set(billing_accounts::ended_by_deletion.eq(ended))
        .execute(conn)
        .await
        .map(drop)
}

/// Stores the billing details as written to the Stripe customer.
pub async fn set_details(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    details: &super::details::BillingDetails,
) -> QueryResult<()> {
    let value = serde_json::to_value(details)
        .map_err(|err| diesel::result::Error::SerializationError(Box::new(err)))?;
    diesel::update(billing_accounts::table.find(workspace_id))
        .set(billing_accounts::details.eq(value))
        .execute(conn)
        .await
        .map(drop)
}

/// The mirror's subscription and when its state was true in Stripe, locked: what a mirror
/// write is weighed against.
pub async fn lock_mirror(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
) -> QueryResult<Option<(Option<String>, Option<DateTime<Utc>>)>> {
    billing_accounts::table
        .find(workspace_id)
        .select((
            billing_accounts::subscription_id,
            billing_accounts::stripe_state_at,
        ))
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Records that the workers re-read everything from Stripe now: the reconciliation goes
/// least recently synced first.
pub async fn mark_synced(conn: &mut AsyncPgConnection, workspace_id: Uuid) -> QueryResult<()> {
    diesel::update(billing_accounts::table.find(workspace_id))
        .set(billing_accounts::synced_at.eq(diesel::dsl::now))
        .execute(conn)
        .await
        .map(drop)
}

/// Records the subscription item that bills the workspace's phone numbers (or none).
pub async fn set_phone_numbers_item(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    item: Option<&str>,
) -> QueryResult<()> {
    diesel::update(billing_accounts::table.find(workspace_id))
        .set(billing_accounts::phone_numbers_item_id.eq(item))
        .execute(conn)
        .await
        .map(drop)
}

/// The mirrored subscription's current period, if it has one.
pub async fn current_period(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
) -> QueryResult<Option<(DateTime<Utc>, DateTime<Utc>)>> {
    type Ends = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);
    let period: Option<Ends> = billing_accounts::table
        .find(workspace_id)
        .select((
            billing_accounts::current_period_start,
            billing_accounts::current_period_end,
        ))
        .first(conn)
        .await
        .optional()?;
    Ok(period.and_then(|(start, end)| Some((start?, end?))))
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

/// What [`save_subscription`] found.
pub struct Saved {
    /// This call found the workspace entering a status that emails.
    pub entered: bool,
    /// The account's status before, as Stripe said it (none before the first plan).
    pub previous_status: Option<String>,
}

#[derive(QueryableByName)]
struct Previous {
    #[diesel(sql_type = Nullable<Text>)]
    previous: Option<String>,
}

/// Mirrors a subscription and the plan it is for onto the account and the workspace, with
/// when its state was true in Stripe (`state_at`);
/// `entered` when this call is the one that found the workspace entering a status that emails
/// (past due or unpaid, from one that does not: one email per failure spell, and the row
/// lock makes that one call, however many syncs run at once). A void first payment
/// (`incomplete_expired`) clears the plan it was for.
pub async fn save_subscription(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    subscription: &Subscription,
    plan: Option<PlanId>,
    state_at: DateTime<Utc>,
) -> QueryResult<Saved> {
    let status = SubscriptionStatus::parse(&subscription.status);
    let emailing: Vec<&str> = SubscriptionStatus::ALL
        .into_iter()
        .filter(|s| s.effect().email.is_some())
        .map(SubscriptionStatus::as_stripe)
        .collect();
    let entered = status.is_some_and(|s| s.effect().email.is_some())
        && diesel::update(
            workspaces::table.find(workspace_id).filter(
                workspaces::subscription_status
                    .is_null()
                    .or(diesel::dsl::not(
                        workspaces::subscription_status.eq_any(&emailing),
                    )),
            ),
        )
        .set((
            workspaces::subscription_status.eq(&subscription.status),
            // The grace period starts (src/billing/grace.rs).
            workspaces::payment_failed_at.eq(Some(Utc::now())),
            workspaces::grace_notice_at.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)
        .await?
            == 1;
    let period = |ts: Option<i64>| ts.and_then(|ts| DateTime::from_timestamp(ts, 0));
    // The status it had comes back from the same statement, read under the row lock.
    let before: Option<Previous> = static_sql(
        "UPDATE billing_accounts a SET subscription_id = $2, subscription_status = $3, \
                current_period_start = $4, current_period_end = $5, \
                cancel_at_period_end = $6, stripe_state_at = $7, updated_at = now() \
         FROM (SELECT workspace_id, subscription_status FROM billing_accounts \
               WHERE workspace_id = $1 FOR UPDATE) old \
         WHERE a.workspace_id = old.workspace_id \
         RETURNING old.subscription_status AS previous",
        (
            bind::<SqlUuid, _>(workspace_id),
            bind::<Text, _>(&subscription.id),
            bind::<Text, _>(&subscription.status),
            bind::<Nullable<Timestamptz>, _>(period(subscription.current_period_start)),
            bind::<Nullable<Timestamptz>, _>(period(subscription.current_period_end)),
            bind::<Bool, _>(subscription.cancel_at_period_end),
            bind::<Timestamptz, _>(state_at),
        ),
    )
    .get_result(conn)
    .await
    .optional()?;
    let plan = match status {
        Some(SubscriptionStatus::IncompleteExpired) => Some(None),
        _ => plan.map(|plan| Some(plan.as_db())),
    };
    // Paid (or over): the failure spell and its grace period end (src/billing/grace.rs).
    let spell_over = status.is_none_or(|s| s.effect().email.is_none());
    static_sql(
        "UPDATE workspaces SET subscription_status = $2, \
                plan = CASE WHEN $3 THEN $4 ELSE plan END, \
                payment_failed_at = CASE WHEN $5 THEN NULL ELSE payment_failed_at END, \
                grace_notice_at = CASE WHEN $5 THEN NULL ELSE grace_notice_at END \
         WHERE id = $1",
        (
            bind::<SqlUuid, _>(workspace_id),
            bind::<Text, _>(&subscription.status),
            bind::<Bool, _>(plan.is_some()),
            bind::<Nullable<Text>, _>(plan.flatten()),
            bind::<Bool, _>(spell_over),
        ),
    )
    .execute(conn)
    .await?;
    Ok(Saved {
        entered,
        previous_status: before.and_then(|b| b.previous),
    })
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = crate::schema::invoices)]
pub struct InvoiceRow {
    pub id: String,
    pub number: Option<String>,
    pub status: String,
    pub amount_due_cents: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    pub hosted_invoice_url: Option<String>,
    pub invoice_pdf: Option<String>,
}

/// Mirrors the invoices Stripe listed for the workspace.
pub async fn save_invoices(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    invoices: &[super::stripe::Invoice],
) -> QueryResult<()> {
    use crate::schema::invoices::dsl as i;
    for invoice in invoices {
        let created = DateTime::from_timestamp(invoice.created, 0).unwrap_or_default();
        let status = invoice.status.clone().unwrap_or_default();
        diesel::insert_into(i::invoices)
            .values((
                i::id.eq(&invoice.id),
                i::workspace_id.eq(workspace_id),
                i::number.eq(&invoice.number),
                i::status.eq(&status),
                i::amount_due_cents.eq(invoice.amount_due),
                i::currency.eq(&invoice.currency),
                i::created_at.eq(created),
                i::hosted_invoice_url.eq(&invoice.hosted_invoice_url),
                i::invoice_pdf.eq(&invoice.invoice_pdf),
            ))
            .on_conflict((i::workspace_id, i::id))
            .do_update()
            .set((
                i::number.eq(&invoice.number),
                i::status.eq(&status),
                i::amount_due_cents.eq(invoice.amount_due),
                i::hosted_invoice_url.eq(&invoice.hosted_invoice_url),
                i::invoice_pdf.eq(&invoice.invoice_pdf),
                i::synced_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// How many invoices the workspace has.
pub async fn invoices_count(conn: &mut AsyncPgConnection, workspace_id: Uuid) -> QueryResult<i64> {
    use crate::schema::invoices::dsl as i;
    i::invoices
        .filter(i::workspace_id.eq(workspace_id))
        .count()
        .get_result(conn)
        .await
}

/// A page of the workspace's invoices, newest first, after the invoice `after`.
pub async fn invoices_page(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    first: i64,
    after: Option<&str>,
) -> QueryResult<Vec<InvoiceRow>> {
    use crate::schema::invoices::dsl as i;
    let mut query = i::invoices
        .filter(i::workspace_id.eq(workspace_id))
        .select(InvoiceRow::as_select())
        .order((i::created_at.desc(), i::id.desc()))
        .limit(first)
        .into_boxed();
    if let Some(after) = after {
        let anchor: Option<(DateTime<Utc>, String)> = i::invoices
            .filter(i::workspace_id.eq(workspace_id))
            .filter(i::id.eq(after))
            .select((i::created_at, i::id))
            .first(conn)
            .await
            .optional()?;
        let Some((at, id)) = anchor else {
            return Ok(Vec::new());
        };
        query = query.filter(
            i::created_at
                .lt(at)
                .or(i::created_at.eq(at).and(i::id.lt(id))),
        );
    }
    query.load(conn).await
}
