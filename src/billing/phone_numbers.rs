//! Phone numbers billed on the workspace's subscription.
//!
//! Rules:
//! - Each phone number of a workspace is one unit of a per-number price on its plan's
//!   product (the price whose metadata says `item=phone_number`, synced with the plans;
//!   README, "Billing for operators"). The quantity is the number of phone numbers, on one
//!   subscription item whose id the billing account keeps.
//! - It follows creates and deletes: both queue the workspace's billing sync in their own
//!   transaction, and the sync sets the quantity (Stripe's default proration applies). The
//!   periodic reconciliation runs the same sync, so an item changed or removed in Stripe,
//!   or a lost job, is repaired within the hour.
//! - Only a live subscription (trialing, active, past due) carries the item: without a
//!   plan nothing is billed. During the trial the subscription is trialing, so Stripe
//!   charges nothing for the numbers until the trial ends, as for the plan.
//! - A plan change moves the numbers to the new plan's per-number price: the item is
//!   replaced, which Stripe prorates like any change. A plan whose product has no
//!   per-number price bills no numbers.
//! - Stripe is called outside any transaction; the item id is stored after Stripe made it.

use diesel::sql_types::{BigInt, Nullable, Text, Uuid as SqlUuid};
use diesel::OptionalExtension as _;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::account;
use super::status::SubscriptionStatus;
use super::stripe::StripeApi;
use crate::db::{bind, static_sql};

/// What the sync starts from, read in one statement.
#[derive(diesel::QueryableByName)]
struct Billed {
    #[diesel(sql_type = Nullable<Text>)]
    subscription_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    subscription_status: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    phone_numbers_item_id: Option<String>,
    /// The per-number price of the workspace's plan.
    #[diesel(sql_type = Nullable<Text>)]
    price: Option<String>,
    #[diesel(sql_type = BigInt)]
    numbers: i64,
}

/// What the phone numbers' item should be: the per-number price and the quantity, or
/// nothing.
pub fn wanted(price: Option<String>, numbers: i64) -> Option<(String, i32)> {
    let quantity = i32::try_from(numbers).unwrap_or(i32::MAX);
    price
        .filter(|_| quantity > 0)
        .map(|price| (price, quantity))
}

/// Brings the subscription's phone-numbers item in step with the workspace's phone
/// numbers; the connection must be inside the workspace, and no transaction open.
pub async fn sync(
    conn: &mut AsyncPgConnection,
    stripe: &StripeApi,
    workspace_id: Uuid,
) -> anyhow::Result<()> {
    let account: Option<Billed> = static_sql(
        "SELECT a.subscription_id, a.subscription_status, a.phone_numbers_item_id, \
                p.phone_number_price_id AS price, \
                (SELECT count(*) FROM resources r \
                 WHERE r.workspace_id = a.workspace_id AND r.kind = 'phone_number') AS numbers \
         FROM billing_accounts a \
         JOIN workspaces w ON w.id = a.workspace_id AND w.deleted_at IS NULL \
         LEFT JOIN plan_prices p ON p.plan = w.plan \
         WHERE a.workspace_id = $1",
        (bind::<SqlUuid, _>(workspace_id),),
    )
    .get_result(conn)
    .await
    .optional()?;
    let Some(account) = account else {
        return Ok(());
    };
    let live = account
        .subscription_status
        .as_deref()
        .and_then(SubscriptionStatus::parse)
        .is_some_and(SubscriptionStatus::is_live);
    let (Some(subscription), true) = (account.subscription_id.as_deref(), live) else {
        // An ended subscription took its items with it.
        if account.phone_numbers_item_id.is_some() {
            account::set_phone_numbers_item(conn, workspace_id, None).await?;
        }
        return Ok(());
    };
    let current = match account.phone_numbers_item_id.as_deref() {
        Some(item) => stripe.subscription_item(item).await?,
        None => None,
    };
    let kept = match (current, wanted(account.price, account.numbers)) {
        (None, None) => None,
        (Some(item), None) => {
            stripe.remove_subscription_item(&item.id).await?;
            None
        }
        (Some(item), Some((price, quantity)))
            if item.plan.as_ref().map(|p| p.id.as_str()) == Some(price.as_str()) =>
        {
            if item.quantity != quantity {
                stripe
                    .set_subscription_item_quantity(&item.id, quantity)
                    .await?;
            }
            Some(item.id)
        }
        (current, Some((price, quantity))) => {
            let replaced = current.map(|item| item.id);
            if let Some(old) = &replaced {
                stripe.remove_subscription_item(old).await?;
            }
            // Two syncs that saw the same state send the same key, so Stripe adds one item.
            let key = format!(
                "phone-numbers-{subscription}-{price}-{}-{quantity}",
                replaced.as_deref().unwrap_or("none")
            );
            Some(
                stripe
                    .add_subscription_item(subscription, &price, quantity, key)
                    .await?,
            )
        }
    };
    if kept != account.phone_numbers_item_id {
        account::set_phone_numbers_item(conn, workspace_id, kept.as_deref()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_billed_only_with_a_price_and_at_least_one_number() {
        assert_eq!(wanted(None, 3), None);
        assert_eq!(wanted(Some("price_1".into()), 0), None);
        assert_eq!(
            wanted(Some("price_1".into()), 3),
            Some(("price_1".to_owned(), 3))
        );
    }
}
