//! Mirrors a workspace's subscription from Stripe, the source of truth for money. Runs after
//! each webhook (as a job) and periodically for every workspace with a Stripe customer, so
//! missed or reordered webhooks are repaired.

use chrono::{DateTime, Utc};
use diesel::sql_types::Uuid as SqlUuid;
use diesel::{OptionalExtension as _, QueryDsl as _};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use linkai_jobs::Payload;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::account;
use super::plans::PlanId;
use super::stripe::{Ended, StripeApi, Subscription};
use crate::audit::{self, Action, Event, Target, Trail};
use crate::db::{static_sql, Db};
use crate::schema::stripe_events;

/// Declares billing's Stripe-side jobs, each handled in `billing::jobs`.
macro_rules! payloads {
    ($($(#[$doc:meta])* $name:ident = $kind:literal { $($field:ident: $ty:ty),* })*) => {$(
        $(#[$doc])*
        #[derive(Debug, Serialize, Deserialize)]
        pub struct $name {
            $(pub $field: $ty,)*
        }

        impl Payload for $name {
            const KIND: &'static str = $kind;
        }
    )*};
}

payloads! {
    /// Mirror the workspace's subscription, cards and invoices from Stripe (after a webhook,
    /// and when a billed quantity changed).
    SyncBilling = "sync_billing" { workspace_id: Uuid }
    /// Apply a recorded `customer.subscription.*` event: its copy of the subscription if it
    /// is the newest event seen, else nothing (or a re-read, when the order is unclear).
    ApplySubscriptionEvent = "apply_subscription_event" { workspace_id: Uuid, event_id: String }
    /// Re-read our plans' prices and limits from Stripe.
    SyncPlans = "sync_plans" {}
    /// The workspace was deleted: its subscription ends ([`follow_lifecycle`]).
    CancelBilling = "cancel_billing" { workspace_id: Uuid }
    /// The workspace was restored: its subscription goes on ([`follow_lifecycle`]).
    ResumeBilling = "resume_billing" { workspace_id: Uuid }
    /// The Owner changed: bill the new Owner's email.
    UpdateBillingEmail = "update_billing_email" { workspace_id: Uuid }
    /// Email a workspace's Owner and Admins that a payment failed.
    SendPaymentFailed = "send_payment_failed" { workspace_id: Uuid }
}

/// Copies the workspace's cards, invoices and subscription from Stripe (making the first
/// saved card the default when there is none). The subscription comes from Stripe's list
/// of the customer's subscriptions, not only the recorded id, so a subscription Stripe has
/// is never unknown to us ([`adopt`]). While a plan change runs, it settles the
/// subscription itself, and this leaves it be. No connection is held while Stripe is
/// called.
pub async fn sync_workspace(db: &Db, stripe: &StripeApi, workspace_id: Uuid) -> anyhow::Result<()> {
    let mut conn = db.conn_in(workspace_id).await?;
    let Some(account) = account::find(&mut conn, workspace_id).await? else {
        return Ok(());
    };
    drop(conn);
    let customer = &account.stripe_customer_id;
    super::cards::refresh(db, stripe, workspace_id, customer).await?;
    let invoices = stripe.invoices(customer, 100).await?;
    let mut conn = db.conn_in(workspace_id).await?;
    account::save_invoices(&mut conn, workspace_id, &invoices).await?;
    if super::operations::plan_change_running(&mut conn, workspace_id).await? {
        return Ok(());
    }
    drop(conn);
    let sent_at = Utc::now();
    let listed = stripe.subscriptions(customer).await?;
    // An operation that began before the list was read may have made one of these: it
    // decides about it, and this round ends nothing.
    let mut conn = db.conn_in(workspace_id).await?;
    if super::operations::plan_change_running(&mut conn, workspace_id).await? {
        return Ok(());
    }
    drop(conn);
    let recorded = account.subscription_id.as_deref();
    let (subscription, adopted) = match adopt(stripe, workspace_id, listed, recorded).await? {
        Some(Adoption::Kept(subscription)) => (subscription, None),
        Some(Adoption::Adopted(subscription, event)) => (subscription, Some(event)),
        // Nothing live: the recorded one, read by id, says how it ended.
        None => match recorded {
            Some(id) => (stripe.subscription(id).await?, None),
            None => {
                let mut conn = db.conn_in(workspace_id).await?;
                return Ok(account::mark_synced(&mut conn, workspace_id).await?);
            }
        },
    };
    let phone_item = account.phone_numbers_item_id.as_deref();
    let plan = plan_of(db, stripe, workspace_id, &subscription, phone_item).await?;
    let write = Write {
        as_of: AsOf::Read(sent_at),
        by: Writer::Sync {
            adopting: adopted.is_some(),
        },
    };
    let mut conn = db.conn_in(workspace_id).await?;
    mirror(
        &mut conn,
        workspace_id,
        &subscription,
        plan,
        &Trail::stripe(),
        adopted,
        write,
    )
    .await?;
    account::mark_synced(&mut conn, workspace_id).await?;
    drop(conn);
    super::phone_numbers::follow(db, stripe, workspace_id, Some(&subscription)).await
}

/// What reconciliation keeps of the customer's subscriptions that are not over.
enum Adoption {
    /// The one the mirror holds.
    Kept(Subscription),
    /// Another: the mirror did not hold it (its answer was lost, say), or duplicates were
    /// ended; the audit event says which it replaced and what was ended.
    Adopted(Subscription, Event),
}

/// Decides which of the workspace's live subscriptions it keeps, ending the others (never
/// more than one live subscription per workspace). Ours are the recorded one and those
/// whose metadata names the workspace (one made by hand in Stripe's dashboard is left
/// alone). The one kept is, in order: active or trialing, then past due, unpaid or paused,
/// then still waiting on its first payment; among equals the recorded one, then the
/// oldest. Duplicates are ended ([`StripeApi::end_duplicate`]: a paid one is refunded in
/// full); one that fails is left for the next round, and the rest go on.
///
/// `None` when the workspace has no live subscription.
async fn adopt(
    stripe: &StripeApi,
    workspace_id: Uuid,
    listed: Vec<Subscription>,
    recorded: Option<&str>,
) -> anyhow::Result<Option<Adoption>> {
    use super::status::SubscriptionStatus as S;
    let is_recorded = |s: &Subscription| Some(s.id.as_str()) == recorded;
    let mut ours: Vec<Subscription> = listed
        .into_iter()
        .filter(|s| is_recorded(s) || s.is_for(workspace_id))
        .collect();
    let rank = |s: &Subscription| match S::parse(&s.status) {
        Some(S::Active | S::Trialing) => 0,
        Some(S::Incomplete) => 2,
        _ => 1,
    };
    let keep = ours
        .iter()
        .enumerate()
        .min_by_key(|(_, s)| (rank(s), !is_recorded(s), s.created, s.id.clone()))
        .map(|(at, _)| at);
    let Some(keep) = keep else {
        return Ok(None);
    };
    let kept = ours.remove(keep);
    let (mut ended, mut refunded) = (Vec::new(), Vec::new());
    for duplicate in ours {
        match stripe.end_duplicate(&duplicate).await {
            Ok(Ended::Left) => {}
            Ok(Ended::Voided) => ended.push(duplicate.id),
            Ok(Ended::Cancelled { refunded: payment }) => {
                ended.push(duplicate.id);
                refunded.extend(payment);
            }
            Err(err) => tracing::warn!(
                subscription = %duplicate.id,
                "a duplicate subscription could not be ended, the next round retries: {err}"
            ),
        }
    }
    if is_recorded(&kept) && ended.is_empty() {
        return Ok(Some(Adoption::Kept(kept)));
    }
    let event = Event {
        action: Action::SubscriptionAdopted,
        target: Target::stripe("subscription", &kept.id),
        changes: serde_json::json!({ "replaced": recorded, "ended": ended, "refunded": refunded }),
    };
    Ok(Some(Adoption::Adopted(kept, event)))
}

/// The plan a subscription bills, by its plan item's price (re-reading the plans from
/// Stripe when the price is new to us).
async fn plan_of(
    db: &Db,
    stripe: &StripeApi,
    workspace_id: Uuid,
    subscription: &Subscription,
    phone_item: Option<&str>,
) -> anyhow::Result<Option<PlanId>> {
    let Some(price) = subscription.price_id(phone_item) else {
        return Ok(None);
    };
    let mut conn = db.conn_in(workspace_id).await?;
    if let Some(plan) = super::plans::by_stripe_price(&mut conn, price).await? {
        return Ok(Some(plan));
    }
    drop(conn);
    Ok(sync_plans(db, stripe)
        .await?
        .into_iter()
        .find(|synced| synced.price_id == price)
        .map(|synced| synced.plan.id))
}

/// Applies a recorded `customer.subscription.*` event. Stripe sends every change of a
/// subscription as an event carrying the subscription as it was then, in no guaranteed
/// order: its copy is mirrored only if it is newer than the state the mirror holds
/// ([`mirror`]), an older one changes nothing, and one whose order is unclear (the same
/// second, no time, or a copy we cannot read) re-reads the workspace from Stripe instead.
/// An event about another subscription than the workspace's goes to reconciliation, which
/// adopts it if it is the one to keep.
pub async fn apply_subscription_event(
    db: &Db,
    stripe: &StripeApi,
    workspace_id: Uuid,
    event_id: &str,
) -> anyhow::Result<()> {
    let mut conn = db.conn_in(workspace_id).await?;
    let event: Option<serde_json::Value> = stripe_events::table
        .find(event_id)
        .select(stripe_events::payload)
        .first(&mut conn)
        .await
        .optional()?;
    let Some(event) = event else {
        return Ok(());
    };
    let created = event["created"]
        .as_i64()
        .and_then(|at| DateTime::from_timestamp(at, 0));
    let copy = serde_json::from_value::<Subscription>(event["data"]["object"].clone())
        .ok()
        .map(|subscription| subscription.read_as_documented(Utc::now()));
    let (Some(created), Some(copy)) = (created, copy) else {
        drop(conn);
        return sync_workspace(db, stripe, workspace_id).await;
    };
    let Some(account) = account::find(&mut conn, workspace_id).await? else {
        return Ok(());
    };
    drop(conn);
    let phone_item = account.phone_numbers_item_id.as_deref();
    let plan = plan_of(db, stripe, workspace_id, &copy, phone_item).await?;
    let write = Write {
        as_of: AsOf::Event(created),
        by: Writer::Event,
    };
    let mut conn = db.conn_in(workspace_id).await?;
    let mirrored = mirror(
        &mut conn,
        workspace_id,
        &copy,
        plan,
        &Trail::stripe(),
        None,
        write,
    )
    .await?;
    drop(conn);
    match mirrored {
        Mirrored::Written => super::phone_numbers::follow(db, stripe, workspace_id, None).await,
        Mirrored::Older => Ok(()),
        Mirrored::Unclear | Mirrored::OtherSubscription | Mirrored::Busy => {
            sync_workspace(db, stripe, workspace_id).await
        }
    }
}

/// When the Stripe state a mirror write holds was true.
#[derive(Clone, Copy, Debug)]
pub enum AsOf {
    /// Read from Stripe by a request sent at this instant (or answered at it, for a change
    /// we made): at least this new.
    Read(DateTime<Utc>),
    /// An event's `created`: a whole second, so a state within it is of unclear order.
    Event(DateTime<Utc>),
}

/// Who writes the mirror, which decides what the write may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    /// A request's answer after changing the held subscription (cancel, resume).
    Request,
    /// A billing operation settling: it may replace the held subscription.
    Settlement,
    /// The workers' sync: nothing while a billing operation runs; `adopting`, it may replace
    /// the held subscription.
    Sync { adopting: bool },
    /// A webhook event's copy of the held subscription.
    Event,
}

/// A mirror write: when its state was true, and who writes it.
#[derive(Clone, Copy, Debug)]
pub struct Write {
    pub as_of: AsOf,
    pub by: Writer,
}

/// What a mirror write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mirrored {
    Written,
    /// The mirror holds a newer state: nothing changed.
    Older,
    /// Within the same second as the state held: re-read Stripe to know.
    Unclear,
    /// About another subscription than the one held, with no decision to replace it.
    OtherSubscription,
    /// A sync's write while a billing operation runs: the operation settles it.
    Busy,
}

impl AsOf {
    /// Where this state stands against the one the mirror holds (`held`, if any).
    fn against(self, held: Option<DateTime<Utc>>) -> Mirrored {
        let Some(held) = held else {
            return Mirrored::Written;
        };
        match self {
            AsOf::Read(at) if at > held => Mirrored::Written,
            AsOf::Read(_) => Mirrored::Older,
            AsOf::Event(second) if second > held => Mirrored::Written,
            AsOf::Event(second) if second + chrono::Duration::seconds(1) <= held => Mirrored::Older,
            AsOf::Event(_) => Mirrored::Unclear,
        }
    }

    /// The time the mirror keeps for it: an event's state may be anywhere in its second,
    /// so it is kept as the second's end, and a read sent within that second never passes
    /// it.
    fn kept_as(self) -> DateTime<Utc> {
        match self {
            AsOf::Read(at) => at,
            AsOf::Event(second) => {
                second + chrono::Duration::seconds(1) - chrono::Duration::microseconds(1)
            }
        }
    }
}

/// Stores the subscription as Stripe reports it, on a connection inside the workspace,
/// unless the mirror holds a newer state of it, or another subscription that `write` may
/// not replace: every write is weighed, under the account's row lock, against when the
/// state it holds was true ([`AsOf`]), so a slow read can never land over a newer state.
/// The first mirror to see the subscription enter a status that emails (docs/billing.md's
/// billing status table) queues the payment-failed email in the same transaction. Every
/// path that learns a subscription's state goes through here.
///
/// The audit event commits with it: `event` when a request changed the subscription (the
/// status's change, if any, added to its `changes`), else `SubscriptionStatusChanged` by
/// `trail` when the status moved.
pub async fn mirror(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    subscription: &Subscription,
    plan: Option<PlanId>,
    trail: &Trail,
    event: Option<Event>,
    write: Write,
) -> diesel::QueryResult<Mirrored> {
    conn.transaction(async |conn| {
        mirror_in(conn, workspace_id, subscription, plan, trail, event, write).await
    })
    .await
}

/// [`mirror`] inside the caller's transaction, for a change that commits more with it (a
/// billing operation's settlement).
pub async fn mirror_in(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    subscription: &Subscription,
    plan: Option<PlanId>,
    trail: &Trail,
    event: Option<Event>,
    write: Write,
) -> diesel::QueryResult<Mirrored> {
    let Some((held, held_at)) = account::lock_mirror(conn, workspace_id).await? else {
        return Ok(Mirrored::OtherSubscription);
    };
    let weighed = weigh(conn, workspace_id, subscription, held, held_at, write).await?;
    if weighed != Mirrored::Written {
        // A request's own change is on the record whatever the mirror keeps.
        if let (Writer::Request | Writer::Settlement, Some(event)) = (write.by, event) {
            audit::record(conn, workspace_id, trail, event, Utc::now()).await?;
        }
        return Ok(weighed);
    }
    let state_at = write.as_of.kept_as();
    let saved =
        account::save_subscription(conn, workspace_id, subscription, plan, state_at).await?;
    if saved.entered {
        let job = SendPaymentFailed { workspace_id };
        crate::outbox::enqueue(conn, &job).await?;
    }
    let moved = (saved.previous_status.as_deref() != Some(subscription.status.as_str()))
        .then(|| audit::changed("status", saved.previous_status, subscription.status.clone()));
    let event = match (event, moved) {
        (Some(mut event), Some(moved)) => {
            merge(&mut event.changes, moved);
            Some(event)
        }
        (Some(event), None) => Some(event),
        (None, Some(moved)) => Some(Event {
            action: Action::SubscriptionStatusChanged,
            target: Target::stripe("subscription", &subscription.id),
            changes: moved,
        }),
        (None, None) => None,
    };
    if let Some(event) = event {
        audit::record(conn, workspace_id, trail, event, Utc::now()).await?;
    }
    Ok(Mirrored::Written)
}

/// Whether `write` may store `subscription` over what the mirror holds (`held`, true at
/// `held_at`), read under the account's lock.
async fn weigh(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    subscription: &Subscription,
    held: Option<String>,
    held_at: Option<DateTime<Utc>>,
    write: Write,
) -> diesel::QueryResult<Mirrored> {
    if matches!(write.by, Writer::Sync { .. })
        && super::operations::plan_change_running(conn, workspace_id).await?
    {
        return Ok(Mirrored::Busy);
    }
    let same = held.as_deref().is_none_or(|held| held == subscription.id);
    Ok(match (same, write.by) {
        (true, _) => write.as_of.against(held_at),
        // The latest decision (a superseded operation cannot settle): the states of two
        // subscriptions do not order each other.
        (false, Writer::Settlement) => Mirrored::Written,
        // An adoption still yields to anything newer the mirror learnt meanwhile.
        (false, Writer::Sync { adopting: true }) => write.as_of.against(held_at),
        (false, _) => Mirrored::OtherSubscription,
    })
}

/// Adds `more`'s fields to the object `changes`.
fn merge(changes: &mut serde_json::Value, more: serde_json::Value) {
    if let (Some(changes), serde_json::Value::Object(more)) = (changes.as_object_mut(), more) {
        changes.extend(more);
    }
}

/// Makes Stripe follow the workspace's life. While it is deleted it pays for nothing more:
/// a subscription in a paid period runs to the period's end and no further (so a restore
/// keeps the plan), and any other of ours (in arrears, or one whose answer was lost) ends
/// now. Once it is restored, what its deletion set is undone (an Owner's own cancellation
/// before it stays). Each step is decided from Stripe's state, not the mirror's, and the
/// workspace's state is read again after acting: when a deletion and a restore race each
/// other's jobs, the last state wins. Runs one at a time per workspace: a restore's run
/// between a deletion's record and its Stripe call would otherwise see nothing to undo.
pub async fn follow_lifecycle(
    db: &Db,
    stripe: &StripeApi,
    workspace_id: Uuid,
) -> anyhow::Result<()> {
    let key = format!("billing-lifecycle:{workspace_id}");
    crate::db::one_at_a_time(db, &key, follow_lifecycle_alone(db, stripe, workspace_id)).await
}

async fn follow_lifecycle_alone(
    db: &Db,
    stripe: &StripeApi,
    workspace_id: Uuid,
) -> anyhow::Result<()> {
    for _ in 0..3 {
        let Some((deleted, account)) = lifecycle_state(db, workspace_id).await? else {
            return Ok(());
        };
        if deleted {
            end_billing(db, stripe, workspace_id, &account).await?;
        } else {
            resume_billing(db, stripe, workspace_id, &account).await?;
        }
        let now = lifecycle_state(db, workspace_id).await?;
        if now.is_none_or(|(still, _)| still == deleted) {
            return Ok(());
        }
    }
    anyhow::bail!("the workspace kept being deleted and restored while its billing followed")
}

/// Whether the workspace is deleted, with its billing account; `None` without one.
async fn lifecycle_state(
    db: &Db,
    workspace_id: Uuid,
) -> anyhow::Result<Option<(bool, account::BillingAccountRow)>> {
    let mut conn = db.conn_in(workspace_id).await?;
    let deleted = crate::workspaces::model::find_live(&mut conn, workspace_id)
        .await?
        .is_none();
    Ok(account::find(&mut conn, workspace_id)
        .await?
        .map(|account| (deleted, account)))
}

async fn end_billing(
    db: &Db,
    stripe: &StripeApi,
    workspace_id: Uuid,
    account: &account::BillingAccountRow,
) -> anyhow::Result<()> {
    let listed = stripe.subscriptions(&account.stripe_customer_id).await?;
    let ours = listed.iter().filter(|s| {
        s.is_for(workspace_id) && !matches!(s.status.as_str(), "canceled" | "incomplete_expired")
    });
    for subscription in ours {
        let recorded = account.subscription_id.as_deref() == Some(subscription.id.as_str());
        let paid = matches!(subscription.status.as_str(), "active" | "trialing");
        if !(recorded && paid) {
            stripe.cancel_now(&subscription.id).await?;
        } else if !subscription.cancel_at_period_end {
            // Recorded first: if the call's answer is lost, a restore still resumes it.
            let mut conn = db.conn_in(workspace_id).await?;
            account::set_ended_by_deletion(&mut conn, workspace_id, true).await?;
            drop(conn);
            stripe
                .set_cancel_at_period_end(&subscription.id, true)
                .await?;
        }
    }
    match &account.subscription_id {
        Some(id) => mirror_now(db, stripe, workspace_id, id).await,
        None => Ok(()),
    }
}

async fn resume_billing(
    db: &Db,
    stripe: &StripeApi,
    workspace_id: Uuid,
    account: &account::BillingAccountRow,
) -> anyhow::Result<()> {
    if !account.ended_by_deletion {
        return Ok(());
    }
    if let Some(id) = &account.subscription_id {
        let subscription = stripe.subscription(id).await?;
        if subscription.status != "canceled" && subscription.cancel_at_period_end {
            stripe.set_cancel_at_period_end(id, false).await?;
        }
    }
    let mut conn = db.conn_in(workspace_id).await?;
    account::set_ended_by_deletion(&mut conn, workspace_id, false).await?;
    drop(conn);
    match &account.subscription_id {
        Some(id) => mirror_now(db, stripe, workspace_id, id).await,
        None => Ok(()),
    }
}

/// Reads the subscription from Stripe and mirrors it, as a request's change would.
async fn mirror_now(
    db: &Db,
    stripe: &StripeApi,
    workspace_id: Uuid,
    subscription_id: &str,
) -> anyhow::Result<()> {
    let sent_at = Utc::now();
    let subscription = stripe.subscription(subscription_id).await?;
    let write = Write {
        as_of: AsOf::Read(sent_at),
        by: Writer::Request,
    };
    let mut conn = db.conn_in(workspace_id).await?;
    mirror(
        &mut conn,
        workspace_id,
        &subscription,
        None,
        &Trail::system(),
        None,
        write,
    )
    .await?;
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
    drop(conn);
    stripe
        .update_customer_email(&account.stripe_customer_id, &user.email)
        .await?;
    Ok(())
}

/// Reads our plans' prices and limits from Stripe and stores them.
pub async fn sync_plans(
    db: &Db,
    stripe: &StripeApi,
) -> anyhow::Result<Vec<super::plans::SyncedPlan>> {
    let plans = stripe.plans().await?;
    let mut conn = db.conn().await?;
    super::plans::save_synced(&mut conn, &plans).await?;
    Ok(plans)
}

#[derive(diesel::QueryableByName)]
struct Billed {
    #[diesel(sql_type = SqlUuid)]
    workspace_id: Uuid,
}

/// How many workspaces one reconciliation round syncs at once.
pub const RECONCILE_CONCURRENCY: usize = 4;

/// The longest one workspace's sync may take in a round before the round moves on (its
/// billing operations, if any, are leased and taken over by the next sync).
pub const RECONCILE_WORKSPACE_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// What a reconciliation round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    pub synced: usize,
    /// Failed or timed out: retried next round (first, as least recently synced).
    pub failed: usize,
    /// Not started before the round's deadline: first in the next round.
    pub left: usize,
}

/// Re-syncs the plans, then every workspace with a Stripe customer, least recently synced
/// first, [`RECONCILE_CONCURRENCY`] at a time: one failing or hanging workspace (bounded by
/// [`RECONCILE_WORKSPACE_LIMIT`]) never stops the round, and no sync starts after
/// `deadline` (the round's interval), so the next round, on whichever worker claims it,
/// takes over where this one stopped.
pub async fn reconcile(
    db: &Db,
    stripe: &StripeApi,
    deadline: std::time::Duration,
) -> anyhow::Result<Reconciled> {
    use futures_util::StreamExt as _;
    let ends = tokio::time::Instant::now() + deadline;
    sync_plans(db, stripe).await?;
    let mut conn = db.conn().await?;
    let billed: Vec<Billed> = static_sql("SELECT workspaces_with_billing() AS workspace_id", ())
        .load(&mut conn)
        .await?;
    drop(conn);
    let outcomes: Vec<Outcome> = futures_util::stream::iter(billed)
        .map(|workspace| async move {
            if tokio::time::Instant::now() >= ends {
                return Outcome::Left;
            }
            let id = workspace.workspace_id;
            let sync = sync_workspace(db, stripe, id);
            match tokio::time::timeout(RECONCILE_WORKSPACE_LIMIT, sync).await {
                Ok(Ok(())) => Outcome::Synced,
                Ok(Err(err)) => {
                    tracing::warn!(workspace = %id, "billing sync failed: {err:#}");
                    Outcome::Failed
                }
                Err(_) => {
                    tracing::warn!(workspace = %id, "billing sync timed out");
                    Outcome::Failed
                }
            }
        })
        .buffer_unordered(RECONCILE_CONCURRENCY)
        .collect()
        .await;
    let count = |wanted: Outcome| outcomes.iter().filter(|o| **o == wanted).count();
    Ok(Reconciled {
        synced: count(Outcome::Synced),
        failed: count(Outcome::Failed),
        left: count(Outcome::Left),
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Synced,
    Failed,
    Left,
}
