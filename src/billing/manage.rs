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
//!   trial ends; after it, at once. Choosing is one billing operation at a time per
//!   workspace, decided from Stripe's list of the customer's subscriptions
//!   ([`select_plan`]): a live one changes plan (prorated), a first payment still waiting
//!   is replaced, so the customer never holds two.
//! - Cancelling ends the subscription with its period; resuming undoes that.

use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection as _;
use serde_json::json;
use uuid::Uuid;

use super::account;
use super::details::BillingDetails;
use super::operations::{self, Answer, BeginError, Begun, Intent, Operation, State};
use super::plans::{default_plan, PlanId};
use super::status::SubscriptionStatus;
use super::stripe::{MadeBy, PendingPayment, StripeApi, StripeCallError, Subscription};
use super::sync::{AsOf, Write, Writer};
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
    #[error(
        "This request was interrupted and a later billing change took its place: check the \
         workspace's billing before choosing again."
    )]
    Superseded,
    #[error(transparent)]
    Operation(#[from] BeginError),
    #[error(transparent)]
    Stripe(#[from] StripeCallError),
    #[error(transparent)]
    Pool(#[from] DbError),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    #[error("{0:#}")]
    Internal(anyhow::Error),
    /// PostgreSQL was out of reach in a step that answers `anyhow`.
    #[error("{0:#}")]
    Unreachable(anyhow::Error),
}

impl From<anyhow::Error> for BillingError {
    /// A step that answers `anyhow` (the sync, the cards' refresh): Stripe's refusal as
    /// Stripe said it, anything else internal.
    fn from(err: anyhow::Error) -> Self {
        match err.downcast::<StripeCallError>() {
            Ok(stripe) => BillingError::Stripe(stripe),
            Err(other) if crate::db::is_outage_of(&other) => BillingError::Unreachable(other),
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
            BillingError::CardNeeded
            | BillingError::NoSubscription
            | BillingError::Superseded
            | BillingError::Operation(BeginError::InProgress) => {
                ApiError::conflict(err.to_string())
            }
            BillingError::Operation(BeginError::KeyReused | BeginError::BadKey) => {
                ApiError::bad_input(err.to_string())
            }
            BillingError::Operation(BeginError::Db(err)) => err.into(),
            // Stripe's own message for a request it refused is meant for people (anything
            // else, a 409 or 429 that outlasted the retries, an auth failure, is ours).
            BillingError::Stripe(StripeCallError::Refused { status, message })
                if is_final(status) =>
            {
                ApiError::bad_input(format!("Stripe: {message}"))
            }
            // Stripe down, slow or failing: retryable, and it may have acted, which the
            // operation's retry finds out ([`super::operations`]).
            BillingError::Stripe(
                StripeCallError::Unavailable(_) | StripeCallError::Refused { .. },
            ) => ApiError::upstream_unavailable(
                "Stripe could not be reached or failed. Retry: with the same idempotencyKey, \
                 the retry finishes this change and never charges twice.",
            ),
            BillingError::Stripe(other) => ApiError::internal(&other),
            BillingError::Pool(err) => err.into(),
            BillingError::Db(err) => err.into(),
            BillingError::Internal(err) => ApiError::internal(&err),
            BillingError::Unreachable(err) => ApiError::database_out_of_reach(&format!("{err:#}")),
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
    super::cards::refresh_recording(db, stripe, workspace_id, customer, trail, event).await?;
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

/// Chooses or changes the workspace's plan as one billing operation
/// ([`super::operations`]); answers what the first payment still needs from the customer,
/// if anything. `client_key` is the caller's idempotency key, if it sent one.
///
/// The operation's life, one function per step ([`Choice`]): prepared (the customer, its
/// card, the plan's price), begun (written open, or answered from an earlier request with
/// the key), placed in Stripe, then settled with the mirror, refused for good, or released
/// for a retry while a call it sent may still land.
pub async fn select_plan(
    db: &Db,
    stripe: &StripeApi,
    trail: &Trail,
    workspace: &WorkspaceRow,
    plan: PlanId,
    client_key: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<PendingPayment>, BillingError> {
    let context = Context {
        db,
        stripe,
        trail,
        workspace,
        now,
    };
    let choice = Choice::prepare(context, plan).await?;
    let (operation, phone_item) = match choice.begin(client_key).await? {
        (Begun::Run(operation), phone_item) => (operation, phone_item),
        (Begun::Answered(answer), _) => return answered(answer),
    };
    match choice.place(&operation, phone_item.as_deref()).await {
        Ok(subscription) => choice.settle(&operation, subscription).await,
        Err(StripeCallError::Refused { status, message }) if is_final(status) => {
            choice.refuse(&operation, status, message).await
        }
        Err(other) => choice.release(&operation, other).await,
    }
}

/// Who and what a plan choice works with.
#[derive(Clone, Copy)]
struct Context<'a> {
    db: &'a Db,
    stripe: &'a StripeApi,
    trail: &'a Trail,
    workspace: &'a WorkspaceRow,
    now: DateTime<Utc>,
}

/// A plan choice, prepared: the customer (made on first use) has a default card, and the
/// plan has its Stripe price.
struct Choice<'a> {
    cx: Context<'a>,
    plan: PlanId,
    customer: String,
    price: String,
}

impl<'a> Choice<'a> {
    async fn prepare(cx: Context<'a>, plan: PlanId) -> Result<Self, BillingError> {
        let workspace_id = cx.workspace.id;
        let customer = customer(cx.db, cx.stripe, workspace_id).await?;
        if cx.stripe.default_payment_method(&customer).await?.is_none() {
            return Err(BillingError::NoPaymentMethod);
        }
        let price = plan_price(cx.db, cx.stripe, workspace_id, plan).await?;
        Ok(Choice {
            cx,
            plan,
            customer,
            price,
        })
    }

    /// Writes the operation open (or finds what the key names), with the recorded
    /// phone-numbers item, which a plan change leaves where it is.
    async fn begin(
        &self,
        client_key: Option<&str>,
    ) -> Result<(Begun, Option<String>), BillingError> {
        let workspace_id = self.cx.workspace.id;
        let mut conn = self.cx.db.conn_in(workspace_id).await?;
        let intent = Intent::SelectPlan(self.plan);
        let lease = self.cx.stripe.operation_lease();
        let begun = operations::begin(
            &mut conn,
            workspace_id,
            intent,
            client_key,
            lease,
            self.cx.now,
        )
        .await?;
        let phone_item = match begun {
            Begun::Run(_) => account::find(&mut conn, workspace_id)
                .await?
                .and_then(|a| a.phone_numbers_item_id),
            Begun::Answered(_) => None,
        };
        Ok((begun, phone_item))
    }

    /// Puts the customer on the plan in Stripe ([`place_plan`]), no connection held.
    async fn place(
        &self,
        operation: &Operation,
        phone_item: Option<&str>,
    ) -> Result<Subscription, StripeCallError> {
        let ends = self.cx.workspace.trial_ends_at;
        let trial_end = (ends > self.cx.now).then_some(ends);
        let (customer, price) = (&self.customer, &self.price);
        place_plan(
            self.cx.stripe,
            operation,
            customer,
            price,
            phone_item,
            trial_end,
        )
        .await
    }

    /// Closes the operation with Stripe's answer and mirrors it, with the plan's audit
    /// event, in one transaction; then brings the phone numbers and invoices along.
    async fn settle(
        &self,
        operation: &Operation,
        subscription: Subscription,
    ) -> Result<Option<PendingPayment>, BillingError> {
        let (workspace, now) = (self.cx.workspace, self.cx.now);
        // Stripe's answer is at least as new as now.
        let write = Write {
            as_of: AsOf::Read(Utc::now()),
            by: Writer::Settlement,
        };
        let pending = subscription.pending_payment();
        let event = Event {
            action: Action::PlanSelected,
            target: Target::workspace(workspace.id),
            changes: audit::changed("plan", workspace.plan.clone(), self.plan.as_db()),
        };
        let chosen = Answer::Chosen {
            pending: pending.clone(),
        };
        let mut conn = self.cx.db.conn_in(workspace.id).await?;
        conn.transaction(async |conn| {
            let settled = Some(subscription.id.as_str());
            if !operations::finish(
                conn,
                operation.workspace_id,
                operation.id,
                State::Settled,
                settled,
                &chosen,
                now,
            )
            .await?
            {
                // Taken over meanwhile: the later change's result stands.
                return Err(BillingError::Superseded);
            }
            let plan = Some(self.plan);
            let trail = self.cx.trail;
            super::sync::mirror_in(
                conn,
                workspace.id,
                &subscription,
                plan,
                trail,
                Some(event),
                write,
            )
            .await?;
            Ok(())
        })
        .await?;
        drop(conn);
        self.follow_up(Some(&subscription), true).await;
        Ok(pending)
    }

    /// Stripe refused the request itself (invalid, or the card cannot pay): the operation
    /// ends with that answer, which a retry with the key gets again.
    async fn refuse(
        &self,
        operation: &Operation,
        status: u16,
        message: String,
    ) -> Result<Option<PendingPayment>, BillingError> {
        let refused = Answer::Refused { status, message };
        let mut conn = self.cx.db.conn_in(self.cx.workspace.id).await?;
        let (workspace_id, id, now) = (operation.workspace_id, operation.id, self.cx.now);
        operations::finish(
            &mut conn,
            workspace_id,
            id,
            State::Failed,
            None,
            &refused,
            now,
        )
        .await?;
        drop(conn);
        // A phone-numbers sync that yielded to this operation runs now.
        self.follow_up(None, false).await;
        answered(refused)
    }

    /// Stripe may have acted: the operation stays open, held only while a call it sent may
    /// land, for its retry or then the next change, which reads Stripe's list.
    async fn release(
        &self,
        operation: &Operation,
        failure: StripeCallError,
    ) -> Result<Option<PendingPayment>, BillingError> {
        let mut conn = self.cx.db.conn_in(self.cx.workspace.id).await?;
        let landing =
            chrono::Duration::from_std(crate::config::STRIPE_CALL_LANDING).unwrap_or_default();
        operations::release(&mut conn, operation.id, landing).await?;
        Err(failure.into())
    }

    /// After the operation ended: the phone numbers follow the plan (its per-number price),
    /// and the invoices are re-read when the plan changed. Best effort: the workers' sync
    /// repairs whatever fails here.
    async fn follow_up(&self, subscription: Option<&Subscription>, invoices: bool) {
        let (db, stripe, workspace_id) = (self.cx.db, self.cx.stripe, self.cx.workspace.id);
        let work = async {
            super::phone_numbers::follow(db, stripe, workspace_id, subscription).await?;
            if invoices {
                let listed = stripe.invoices(&self.customer, 100).await?;
                let mut conn = db.conn_in(workspace_id).await?;
                account::save_invoices(&mut conn, workspace_id, &listed).await?;
            }
            anyhow::Ok(())
        };
        if let Err(err) = work.await {
            tracing::warn!(workspace = %workspace_id, "after a plan choice, the sync will repair: {err:#}");
        }
    }
}

/// Whether Stripe refused a request for good: it is invalid (400, 404) or the card cannot
/// pay (402). Anything else (409 a concurrent request, 429 too many, an auth failure, 5xx)
/// may pass later, and leaves the operation to its retry.
fn is_final(status: u16) -> bool {
    matches!(status, 400 | 402 | 404)
}

/// A client's `idempotencyKey`, checked.
pub fn parse_client_key(raw: &str) -> Result<String, BillingError> {
    Ok(operations::parse_client_key(raw)?)
}

/// What a finished operation answered, answered again.
fn answered(answer: Answer) -> Result<Option<PendingPayment>, BillingError> {
    match answer {
        Answer::Chosen { pending } => Ok(pending),
        Answer::Refused { status, message } => {
            Err(BillingError::Stripe(StripeCallError::Refused {
                status,
                message,
            }))
        }
        Answer::Abandoned => Err(BillingError::Superseded),
        // A worker's operation: no client key names one.
        Answer::Done => Ok(None),
    }
}

/// The Stripe price of `plan`, re-reading the plans from Stripe once if it is not synced.
async fn plan_price(
    db: &Db,
    stripe: &StripeApi,
    workspace_id: Uuid,
    plan: PlanId,
) -> Result<String, BillingError> {
    let mut conn = db.conn_in(workspace_id).await?;
    if let Some(price) = super::plans::stripe_price(&mut conn, plan).await? {
        return Ok(price);
    }
    drop(conn);
    // Outside any transaction, with no connection held.
    let plans = stripe.plans().await?;
    let mut conn = db.conn_in(workspace_id).await?;
    super::plans::save_synced(&mut conn, &plans).await?;
    plans
        .into_iter()
        .find(|p| p.plan.id == plan)
        .map(|p| p.price_id)
        .ok_or_else(|| BillingError::PlanWithoutPrice(default_plan(plan).name))
}

/// Puts the customer on `price`, deciding from Stripe's own list of their subscriptions,
/// never from the mirror (a webhook may not have arrived):
/// - one an earlier attempt of this operation made is the answer;
/// - one not waiting on its first payment (active, trialing, past due, unpaid, paused: one
///   whose 3-D Secure just completed included) changes plan, and is never cancelled;
/// - otherwise first payments still waiting (`incomplete` in Stripe, so never paid) are
///   cancelled and a new subscription starts, so the customer never holds two.
async fn place_plan(
    stripe: &StripeApi,
    operation: &Operation,
    customer: &str,
    price: &str,
    phone_item: Option<&str>,
    trial_end: Option<DateTime<Utc>>,
) -> Result<Subscription, StripeCallError> {
    let subscriptions = stripe.subscriptions(customer).await?;
    if let Some(made) = subscriptions
        .iter()
        .find(|s| s.operation() == Some(operation.id))
    {
        return Ok(made.clone());
    }
    let (waiting, current): (Vec<_>, Vec<_>) = subscriptions.iter().partition(|s| {
        SubscriptionStatus::parse(&s.status) == Some(SubscriptionStatus::Incomplete)
    });
    if let Some(current) = current.first() {
        return stripe.change_plan(current, phone_item, price).await;
    }
    for waiting in waiting {
        // Its first invoice is voided before it goes: Stripe refuses to void a paid one,
        // so a payment the customer has just made is never cancelled.
        if !stripe.void_first_payment(waiting).await? {
            let paid = stripe.subscription(&waiting.id).await?;
            return stripe.change_plan(&paid, phone_item, price).await;
        }
        stripe.cancel_now(&waiting.id).await?;
    }
    let made_by = MadeBy {
        workspace_id: operation.workspace_id,
        operation_id: operation.id,
        idempotency_key: operation.key("create"),
    };
    stripe
        .create_subscription(customer, price, trial_end, &made_by)
        .await
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
    let write = Write {
        as_of: AsOf::Read(Utc::now()),
        by: Writer::Request,
    };
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
        write,
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
