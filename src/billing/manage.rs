//! What Owners and Admins do to a workspace's billing: its Stripe customer, cards, plan,
//! details and cancellation.
//!
//! Rules:
//! - Stripe is the source of truth and is called first, with no transaction open and no
//!   lock held (a row lock across Stripe's latency would stall every request needing the
//!   row); then the mirror of what Stripe now says and the change's audit event commit
//!   together. Connections are not held across a Stripe call.
//! - The customer is made on first use, with the Owner's email, once per workspace
//!   ([`customer`]).
//! - A card must be the workspace's own; the default card a live subscription needs can go
//!   only when another card takes its place.
//! - A plan needs a default card. During the trial the subscription starts billing when the
//!   trial ends; after it, at once. A first payment left incomplete is replaced when a plan
//!   is chosen again, so the customer never holds two. Changing plan prorates.
//! - Cancelling ends the subscription with its period; resuming undoes that.

use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection as _;
use serde_json::json;
use uuid::Uuid;

use super::account;
use super::details::BillingDetails;
use super::plans::{default_plan, PlanId};
use super::status::SubscriptionStatus;
use super::stripe::{PendingPayment, StripeApi, StripeCallError, Subscription};
use crate::audit::{self, Action, Event, Target, Trail};
use crate::db::{Db, DbError};
use crate::error::{ApiError, ErrorCode};
use crate::workspaces::model::WorkspaceRow;

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("Add a payment method first: createSetupIntent, then setDefaultPaymentMethod.")]
    NoPaymentMethod,
    #[error("The {0} plan has no price in Stripe yet.")]
    PlanWithoutPrice(String),
    #[error("`paymentMethodId` is not a card saved to this workspace.")]
    NotACard,
    #[error("The subscription is charged to this card: add another card first.")]
    CardNeeded,
    #[error("This workspace has no subscription: choose a plan first.")]
    NoSubscription,
    #[error(transparent)]
    Stripe(#[from] StripeCallError),
    #[error(transparent)]
    Pool(#[from] DbError),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    #[error("{0:#}")]
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for BillingError {
    /// A step that answers `anyhow` (the sync, the cards' refresh): Stripe's refusal as
    /// Stripe said it, anything else internal.
    fn from(err: anyhow::Error) -> Self {
        match err.downcast::<StripeCallError>() {
            Ok(stripe) => BillingError::Stripe(stripe),
            Err(other) => BillingError::Internal(other),
        }
    }
}

impl From<BillingError> for ApiError {
    fn from(err: BillingError) -> Self {
        match err {
            BillingError::NoPaymentMethod | BillingError::NotACard => {
                ApiError::bad_input(err.to_string())
            }
            BillingError::PlanWithoutPrice(_) => {
                ApiError::new(ErrorCode::BillingNotConfigured, err.to_string())
            }
            BillingError::CardNeeded | BillingError::NoSubscription => {
                ApiError::conflict(err.to_string())
            }
            // Stripe's own message for a request it refused is meant for people.
            BillingError::Stripe(StripeCallError::Refused { status, message })
                if (400..500).contains(&status) =>
            {
                ApiError::bad_input(format!("Stripe: {message}"))
            }
            BillingError::Stripe(other) => ApiError::internal(&other),
            BillingError::Pool(err) => err.into(),
            BillingError::Db(err) => err.into(),
            BillingError::Internal(err) => ApiError::internal(&err),
        }
    }
}

/// The workspace's Stripe customer, created on first use with the Owner's email.
///
/// The customer is made with one idempotency key per workspace (so a retry, or a
/// concurrent first call, gets the same customer back from Stripe), then recorded unless
/// another call recorded one first, and that one is answered. Where Stripe made two anyway
/// (its keys are kept 24 hours), the copy not recorded is deleted.
pub async fn customer(
    db: &Db,
    stripe: &StripeApi,
    workspace_id: Uuid,
) -> Result<String, BillingError> {
    let mut conn = db.conn_in(workspace_id).await?;
    if let Some(account) = account::find(&mut conn, workspace_id).await? {
        return Ok(account.stripe_customer_id);
    }
    let email = owner_email(&mut conn, workspace_id).await?;
    drop(conn);
    let created = stripe.create_customer(workspace_id, &email).await?;
    let mut conn = db.conn_in(workspace_id).await?;
    account::insert_customer(&mut conn, workspace_id, &created).await?;
    let recorded = account::find(&mut conn, workspace_id)
        .await?
        .map(|account| account.stripe_customer_id)
        .ok_or_else(|| BillingError::Internal(anyhow::anyhow!("customer not recorded")))?;
    drop(conn);
    if recorded != created {
        if let Err(err) = stripe.delete_customer(&created).await {
            tracing::warn!(customer = %created, "a duplicate Stripe customer was left: {err}");
        }
    }
    Ok(recorded)
}

/// The Owner's address: the customer's email unless a billing email is set.
async fn owner_email(
    conn: &mut diesel_async::AsyncPgConnection,
    workspace_id: Uuid,
) -> Result<String, BillingError> {
    let owner = crate::members::model::owner_of(conn, workspace_id)
        .await?
        .ok_or_else(|| BillingError::Internal(anyhow::anyhow!("workspace without owner")))?;
    Ok(crate::auth::model::find_user(conn, owner)
        .await?
        .map(|user| user.email)
        .unwrap_or_default())
}

/// Starts adding a card: the client secret for Stripe Elements.
pub async fn setup_intent(
    db: &Db,
    stripe: &StripeApi,
    workspace_id: Uuid,
) -> Result<String, BillingError> {
    let customer = customer(db, stripe, workspace_id).await?;
    Ok(stripe.create_setup_intent(&customer).await?)
}

/// `prefix` then 1 to 250 ASCII letters, digits and underscores: what Stripe's ids look like.
fn is_stripe_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|rest| {
        (1..=250).contains(&rest.len())
            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// The workspace's customer, for a request naming the card `payment_method_id`.
async fn customer_for_card(
    db: &Db,
    stripe: &StripeApi,
    workspace_id: Uuid,
    payment_method_id: &str,
) -> Result<String, BillingError> {
    // The id becomes part of a Stripe URL path: only Stripe's own id shape may get there.
    if !is_stripe_id(payment_method_id, "pm_") {
        return Err(BillingError::NotACard);
    }
    customer(db, stripe, workspace_id).await
}

/// Mirrors the customer's cards after a change to them in Stripe, with its audit event.
async fn refresh_cards(
    db: &Db,
    stripe: &StripeApi,
    trail: &Trail,
    workspace_id: Uuid,
    customer: &str,
    event: Event,
) -> Result<(), BillingError> {
    let mut conn = db.conn_in(workspace_id).await?;
    super::cards::refresh_recording(&mut conn, stripe, workspace_id, customer, trail, event)
        .await?;
    Ok(())
}

/// Makes one of the workspace's saved cards the one invoices are charged to.
pub async fn set_default_card(
    db: &Db,
    stripe: &StripeApi,
    trail: &Trail,
    workspace_id: Uuid,
    payment_method_id: &str,
) -> Result<(), BillingError> {
    let customer = customer_for_card(db, stripe, workspace_id, payment_method_id).await?;
    let method = stripe
        .payment_method(payment_method_id)
        .await
        .map_err(|_| BillingError::NotACard)?;
    if method.customer.as_deref() != Some(customer.as_str()) {
        return Err(BillingError::NotACard);
    }
    stripe
        .set_default_payment_method(&customer, payment_method_id)
        .await?;
    let event = Event {
        action: Action::DefaultPaymentMethodChanged,
        target: Target::stripe("payment_method", payment_method_id),
        changes: json!({ "card": super::cards::label(&method) }),
    };
    refresh_cards(db, stripe, trail, workspace_id, &customer, event).await
}

/// Removes a saved card. The default card a subscription needs can only go when another
/// card is saved, which then becomes the default.
pub async fn remove_card(
    db: &Db,
    stripe: &StripeApi,
    trail: &Trail,
    workspace_id: Uuid,
    payment_method_id: &str,
) -> Result<(), BillingError> {
    let customer = customer_for_card(db, stripe, workspace_id, payment_method_id).await?;
    // Stripe's list, not the mirror: a card just added may not be mirrored yet.
    let super::stripe::Cards { cards, default } = stripe.cards(&customer).await?;
    let Some(removed) = cards.iter().find(|card| card.id == payment_method_id) else {
        return Err(BillingError::NotACard);
    };
    let mut changes = json!({ "card": super::cards::label(removed) });
    if default.as_deref() == Some(payment_method_id) {
        match cards.iter().find(|card| card.id != payment_method_id) {
            Some(next) => {
                stripe
                    .set_default_payment_method(&customer, &next.id)
                    .await?;
                changes["default"] = json!(super::cards::label(next));
            }
            None => {
                let mut conn = db.conn_in(workspace_id).await?;
                let needed = account::find(&mut conn, workspace_id)
                    .await?
                    .and_then(|a| a.subscription_status)
                    .as_deref()
                    .and_then(SubscriptionStatus::parse)
                    .is_some_and(|s| s.is_live() || s == SubscriptionStatus::Incomplete);
                if needed {
                    return Err(BillingError::CardNeeded);
                }
            }
        }
    }
    stripe.detach_payment_method(payment_method_id).await?;
    let event = Event {
        action: Action::PaymentMethodRemoved,
        target: Target::stripe("payment_method", payment_method_id),
        changes,
    };
    refresh_cards(db, stripe, trail, workspace_id, &customer, event).await
}

/// Chooses or changes the workspace's plan; answers what the first payment still needs
/// from the customer, if anything.
pub async fn select_plan(
    db: &Db,
    stripe: &StripeApi,
    trail: &Trail,
    workspace: &WorkspaceRow,
    plan: PlanId,
    now: DateTime<Utc>,
) -> Result<Option<PendingPayment>, BillingError> {
    let workspace_id = workspace.id;
    let customer = customer(db, stripe, workspace_id).await?;
    let Some(card) = stripe.default_payment_method(&customer).await? else {
        return Err(BillingError::NoPaymentMethod);
    };
    let mut conn = db.conn_in(workspace_id).await?;
    let synced = super::plans::stripe_price(&mut conn, plan).await?;
    let account = account::find(&mut conn, workspace_id).await?;
    drop(conn);
    let price = match synced {
        Some(price) => price,
        None => {
            // Plans are re-read from Stripe once, outside any transaction.
            let plans = stripe.plans().await?;
            let mut conn = db.conn_in(workspace_id).await?;
            super::plans::save_synced(&mut conn, &plans).await?;
            plans
                .into_iter()
                .find(|p| p.plan.id == plan)
                .map(|p| p.price_id)
                .ok_or_else(|| BillingError::PlanWithoutPrice(default_plan(plan).name))?
        }
    };
    let phone_item = account
        .as_ref()
        .and_then(|a| a.phone_numbers_item_id.clone());
    let existing = account.and_then(|a| Some((a.subscription_id?, a.subscription_status)));
    let status = existing
        .as_ref()
        .and_then(|(_, status)| status.as_deref())
        .and_then(SubscriptionStatus::parse);
    let subscription: Subscription = match existing {
        Some((id, _)) if status.is_some_and(SubscriptionStatus::is_live) => {
            let current = stripe.subscription(&id).await?;
            stripe
                .change_plan(&current, phone_item.as_deref(), &price)
                .await?
        }
        previous => {
            // A first payment left waiting is replaced, so the customer never holds two.
            if let Some((id, _)) =
                previous.filter(|_| status == Some(SubscriptionStatus::Incomplete))
            {
                stripe.cancel_now(&id).await?;
            }
            let trial_end = (workspace.trial_ends_at > now).then_some(workspace.trial_ends_at);
            // Per card as well: choosing again with another card is a new request.
            let key = format!(
                "subscription-{workspace_id}-{}-{card}-{}",
                plan.as_db(),
                now.timestamp() / 60
            );
            stripe
                .create_subscription(&customer, &price, trial_end, key)
                .await?
        }
    };
    let event = Event {
        action: Action::PlanSelected,
        target: Target::workspace(workspace_id),
        changes: audit::changed("plan", workspace.plan.clone(), plan.as_db()),
    };
    let mut conn = db.conn_in(workspace_id).await?;
    super::sync::mirror(
        &mut conn,
        workspace_id,
        &subscription,
        Some(plan),
        trail,
        Some(event),
    )
    .await?;
    // The phone numbers move to the new plan's per-number price.
    super::phone_numbers::sync(&mut conn, stripe, workspace_id).await?;
    let invoices = stripe.invoices(&customer, 100).await?;
    account::save_invoices(&mut conn, workspace_id, &invoices).await?;
    Ok(subscription.pending_payment())
}

/// Sets the details invoices carry, on the Stripe customer first; fields `update` leaves
/// out keep their value.
pub async fn update_details(
    db: &Db,
    stripe: &StripeApi,
    trail: &Trail,
    workspace_id: Uuid,
    update: BillingDetails,
    now: DateTime<Utc>,
) -> Result<(), BillingError> {
    let customer = customer(db, stripe, workspace_id).await?;
    let mut conn = db.conn_in(workspace_id).await?;
    let before = account::find(&mut conn, workspace_id).await?;
    let fields = update.fields();
    let merged = BillingDetails::from_column(before.as_ref().and_then(|a| a.details.as_ref()))
        .merged(update);
    let owner_email = owner_email(&mut conn, workspace_id).await?;
    drop(conn);
    // Stripe first: what is stored here is what it accepted.
    stripe
        .update_customer_details(&customer, &merged, &owner_email)
        .await?;
    let event = Event {
        action: Action::BillingDetailsUpdated,
        target: Target::workspace(workspace_id),
        changes: json!({ "fields": fields }),
    };
    let mut conn = db.conn_in(workspace_id).await?;
    conn.transaction(async |conn| {
        account::set_details(conn, workspace_id, &merged).await?;
        audit::record(conn, workspace_id, trail, event, now).await
    })
    .await?;
    Ok(())
}

/// Ends the subscription with its period (`cancel`), or undoes that.
pub async fn set_cancel(
    db: &Db,
    stripe: &StripeApi,
    trail: &Trail,
    workspace_id: Uuid,
    cancel: bool,
) -> Result<(), BillingError> {
    let mut conn = db.conn_in(workspace_id).await?;
    let subscription_id = account::find(&mut conn, workspace_id)
        .await?
        .and_then(|a| a.subscription_id)
        .ok_or(BillingError::NoSubscription)?;
    drop(conn);
    let subscription = stripe
        .set_cancel_at_period_end(&subscription_id, cancel)
        .await?;
    let period_end = subscription
        .current_period_end
        .and_then(|at| DateTime::from_timestamp(at, 0));
    let event = Event {
        action: if cancel {
            Action::SubscriptionCanceled
        } else {
            Action::SubscriptionResumed
        },
        target: Target::stripe("subscription", &subscription.id),
        changes: json!({ "periodEnd": period_end.map(|at| at.to_rfc3339()) }),
    };
    let mut conn = db.conn_in(workspace_id).await?;
    super::sync::mirror(
        &mut conn,
        workspace_id,
        &subscription,
        None,
        trail,
        Some(event),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stripe_shaped_card_ids_reach_a_url() {
        assert!(is_stripe_id("pm_1Abc_2", "pm_"));
        for bad in ["", "pm_", "pm_../customers", "pm_a b", "cus_123", "pm_é"] {
            assert!(!is_stripe_id(bad, "pm_"), "{bad}");
        }
        assert!(!is_stripe_id(&format!("pm_{}", "a".repeat(251)), "pm_"));
    }
}
