//! Phone numbers billed on the workspace's subscription.
//!
//! Rules:
//! - Each phone number of a workspace is one unit of a per-number price on its plan's
//!   product (the price whose metadata says `item=phone_number`, synced with the plans;
//!   docs/billing.md, "Billing for operators"). The quantity is the number of phone numbers, on one
//!   subscription item whose id the billing account keeps.
//! - It follows creates and deletes: both queue the workspace's billing sync in their own
//!   transaction, and the sync brings the item in step ([`follow`]; Stripe's default
//!   proration applies). The periodic reconciliation runs the same sync, so an item changed
//!   or removed in Stripe, or a lost job, is repaired within the hour.
//! - Bringing the item in step is a billing operation ([`super::operations`]): one at a time
//!   per workspace, beside plan changes, never two side by side. A sync that finds one
//!   running leaves it be: the running one re-reads the numbers when it closes, after its
//!   close is written, so a number created meanwhile is either seen by it or finds it closed
//!   and runs its own. Its Stripe keys come from the operation, so no key is ever sent for
//!   another intent.
//! - It decides from Stripe, not the mirror: every item of the subscription at a per-number
//!   price is a phone-numbers item (and the recorded one, read by its id), and any but the
//!   one kept (left by a crash between Stripe's answer and the commit, say) is removed.
//!   (The local fake keeps an item added to a subscription out of the subscription's
//!   items; the recorded id finds it there.)
//! - Only a live subscription (trialing, active, past due) carries the item: without a
//!   plan nothing is billed. During the trial the subscription is trialing, so Stripe
//!   charges nothing for the numbers until the trial ends, as for the plan.
//! - A plan change moves the numbers to the new plan's per-number price: the item is
//!   replaced, which Stripe prorates like any change. A plan whose product has no
//!   per-number price bills no numbers.
//! - No connection is held while Stripe is called.

use chrono::Utc;
use diesel::sql_types::{Array, BigInt, Nullable, Text, Uuid as SqlUuid};
use diesel::OptionalExtension as _;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::account;
use super::operations::{self, Answer, BeginError, Begun, Intent, Operation, State};
use super::status::SubscriptionStatus;
use super::stripe::{StripeApi, Subscription};
use crate::db::{bind, static_sql, Db};

/// How many times one operation re-reads numbers that keep changing before it leaves the
/// rest to the next sync.
const MAX_ROUNDS: usize = 5;

/// What the sync starts from, read in one statement.
#[derive(diesel::QueryableByName, Debug)]
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
    /// Every plan's per-number price: an item at any of them bills phone numbers.
    #[diesel(sql_type = Array<Text>)]
    phone_prices: Vec<String>,
    #[diesel(sql_type = BigInt)]
    numbers: i64,
}

impl Billed {
    /// The subscription that should carry the item, if one is live.
    fn live_subscription(&self) -> Option<&str> {
        let live = self
            .subscription_status
            .as_deref()
            .and_then(SubscriptionStatus::parse)
            .is_some_and(SubscriptionStatus::is_live);
        self.subscription_id.as_deref().filter(|_| live)
    }

    /// What the item should be on that subscription: its price and quantity, or nothing.
    fn wanted(&self) -> Option<(String, i32)> {
        self.live_subscription()?;
        wanted(self.price.clone(), self.numbers)
    }
}

/// What the phone numbers' item should be: the per-number price and the quantity, or
/// nothing.
pub fn wanted(price: Option<String>, numbers: i64) -> Option<(String, i32)> {
    let quantity = i32::try_from(numbers).unwrap_or(i32::MAX);
    price
        .filter(|_| quantity > 0)
        .map(|price| (price, quantity))
}

/// What one round left in Stripe.
#[derive(Debug, Default, PartialEq, Eq)]
struct Applied {
    subscription: Option<String>,
    /// The item kept: its id, price and quantity.
    item: Option<(String, String, i32)>,
}

impl Applied {
    fn is_in_step_with(&self, billed: &Billed) -> bool {
        let priced = self
            .item
            .as_ref()
            .map(|(_, price, quantity)| (price.clone(), *quantity));
        self.subscription.as_deref() == billed.live_subscription() && priced == billed.wanted()
    }
}

/// Brings the subscription's phone-numbers item in step with the workspace's phone
/// numbers. When Stripe's items already match, nothing is written; else the change is a
/// billing operation of its own, and nothing happens when another operation runs (see the
/// module's rules). Holds no connection while Stripe is called.
pub async fn follow(
    db: &Db,
    stripe: &StripeApi,
    workspace_id: Uuid,
    known: Option<&Subscription>,
) -> anyhow::Result<()> {
    let mut conn = db.conn_in(workspace_id).await?;
    let Some(billed) = read(&mut conn, workspace_id).await? else {
        return Ok(());
    };
    drop(conn);
    let changes = match billed.live_subscription() {
        Some(id) => Changes::between(phone_items(stripe, id, &billed, known).await?, &billed),
        None => Changes::default(),
    };
    if changes.is_empty() {
        let item = changes.kept.map(|(id, _, _)| id);
        if item != billed.phone_numbers_item_id {
            let mut conn = db.conn_in(workspace_id).await?;
            account::set_phone_numbers_item(&mut conn, workspace_id, item.as_deref()).await?;
        }
        return Ok(());
    }
    let mut conn = db.conn_in(workspace_id).await?;
    let lease = stripe.operation_lease();
    let begun = operations::begin(
        &mut conn,
        workspace_id,
        Intent::PhoneNumbers,
        None,
        lease,
        Utc::now(),
    )
    .await;
    let operation = match begun {
        Ok(Begun::Run(operation)) => operation,
        Ok(Begun::Answered(_)) | Err(BeginError::InProgress) => return Ok(()),
        Err(err) => return Err(err.into()),
    };
    drop(conn);
    let settled = settle(db, stripe, &operation).await;
    if settled.is_err() {
        // Stripe may have acted: held only while a call sent may land, then the next sync
        // takes it over and reads Stripe again.
        let mut conn = db.conn_in(workspace_id).await?;
        let landing =
            chrono::Duration::from_std(crate::config::STRIPE_CALL_LANDING).unwrap_or_default();
        operations::release(&mut conn, operation.id, landing).await?;
    }
    settled
}

/// Rounds of the operation: read the numbers and Stripe's items, change Stripe, then close
/// if the numbers did not move meanwhile, else go again.
async fn settle(db: &Db, stripe: &StripeApi, operation: &Operation) -> anyhow::Result<()> {
    let workspace_id = operation.workspace_id;
    let mut conn = db.conn_in(workspace_id).await?;
    let mut billed = read(&mut conn, workspace_id).await?;
    drop(conn);
    for round in 0..MAX_ROUNDS {
        let applied = match &billed {
            Some(billed) => apply(db, stripe, operation, round, billed).await?,
            None => Applied::default(),
        };
        let mut conn = db.conn_in(workspace_id).await?;
        match close(&mut conn, operation, &applied).await {
            Ok(()) => return Ok(()),
            Err(Closing::Moved(now)) => billed = Some(*now),
            Err(Closing::Db(err)) => return Err(err.into()),
        }
    }
    anyhow::bail!("the phone numbers kept changing; the next sync brings them in step")
}

/// Why an operation did not close.
enum Closing {
    /// The numbers (or the subscription) moved while Stripe was called: as they are now.
    Moved(Box<Billed>),
    Db(diesel::result::Error),
}

impl From<diesel::result::Error> for Closing {
    fn from(err: diesel::result::Error) -> Self {
        Closing::Db(err)
    }
}

/// Closes the operation with the item Stripe now has, if that is still what the workspace
/// wants. The close is written before the numbers are read: a create committed after this
/// read finds the operation closed (its insert waits for this transaction) and runs its own.
async fn close(
    conn: &mut AsyncPgConnection,
    operation: &Operation,
    applied: &Applied,
) -> Result<(), Closing> {
    let workspace_id = operation.workspace_id;
    conn.transaction(async |conn| {
        let now = Utc::now();
        let subscription = applied.subscription.as_deref();
        let done = Answer::Done;
        if !operations::finish(
            conn,
            operation.workspace_id,
            operation.id,
            State::Settled,
            subscription,
            &done,
            now,
        )
        .await?
        {
            // Taken over: the later operation decides from Stripe.
            return Ok(());
        }
        let Some(billed) = read(conn, workspace_id).await? else {
            return Ok(());
        };
        if !applied.is_in_step_with(&billed) {
            return Err(Closing::Moved(Box::new(billed)));
        }
        let item = applied.item.as_ref().map(|(id, _, _)| id.as_str());
        account::set_phone_numbers_item(conn, workspace_id, item).await?;
        Ok(())
    })
    .await
}

/// What Stripe's items need to match what the workspace wants.
#[derive(Debug, Default, PartialEq, Eq)]
struct Changes {
    /// Phone-numbers items beyond the one kept (or all, when none is wanted).
    remove: Vec<String>,
    /// The item kept (id, price, quantity as Stripe has it).
    kept: Option<(String, String, i32)>,
    /// The quantity the kept item must be set to, or the price and quantity to add.
    set_quantity: Option<i32>,
    add: Option<(String, i32)>,
}

impl Changes {
    /// From the phone-numbers items Stripe has ([`phone_items`]): one at the wanted price is
    /// kept, the rest go.
    fn between(mut items: Vec<(String, String, i32)>, billed: &Billed) -> Self {
        let wanted = billed.wanted();
        let kept = wanted.as_ref().and_then(|(price, _)| {
            let at = items.iter().position(|(_, p, _)| p == price)?;
            Some(items.remove(at))
        });
        let set_quantity = match (&kept, &wanted) {
            (Some((_, _, has)), Some((_, quantity))) if has != quantity => Some(*quantity),
            _ => None,
        };
        let add = wanted.filter(|_| kept.is_none());
        Changes {
            remove: items.into_iter().map(|(id, _, _)| id).collect(),
            kept,
            set_quantity,
            add,
        }
    }

    fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set_quantity.is_none() && self.add.is_none()
    }
}

/// The subscription's phone-numbers items as Stripe has them, (id, price, quantity): every
/// item at a per-number price (marked so in its metadata, or one of our plans' current
/// ones: a price the operator replaced still counts) and the recorded one, which Stripe
/// still has if it is not in the list (the local fake keeps added items out of it).
/// `known` is a copy of the subscription just read, when the caller has one.
async fn phone_items(
    stripe: &StripeApi,
    subscription: &str,
    billed: &Billed,
    known: Option<&Subscription>,
) -> anyhow::Result<Vec<(String, String, i32)>> {
    let mut items = match known.filter(|known| known.id == subscription) {
        Some(known) => known.items.data.clone(),
        None => stripe.subscription(subscription).await?.items.data,
    };
    let recorded = billed.phone_numbers_item_id.as_deref();
    if let Some(id) = recorded.filter(|id| !items.iter().any(|item| item.id == *id)) {
        items.extend(stripe.subscription_item(id).await?);
    }
    Ok(items
        .into_iter()
        .filter(|item| {
            let price = item.plan.as_ref().map(|plan| &plan.id);
            item.bills_phone_numbers()
                || Some(item.id.as_str()) == recorded
                || price.is_some_and(|price| billed.phone_prices.contains(price))
        })
        .filter_map(|item| {
            let price = item.plan?.id;
            let quantity = i32::try_from(item.quantity.unwrap_or(0)).unwrap_or(i32::MAX);
            Some((item.id, price, quantity))
        })
        .collect())
}

/// Changes Stripe's items to what `billed` wants, deciding from the subscription as Stripe
/// has it now; `round` makes each change's key its own.
async fn apply(
    db: &Db,
    stripe: &StripeApi,
    operation: &Operation,
    round: usize,
    billed: &Billed,
) -> anyhow::Result<Applied> {
    // A worker's calls are bounded by no request: the lease is renewed as they go, and a
    // taken-over operation stops here.
    hold(db, stripe, operation).await?;
    let Some(subscription_id) = billed.live_subscription() else {
        // An ended subscription took its items with it.
        return Ok(Applied::default());
    };
    let items = phone_items(stripe, subscription_id, billed, None).await?;
    let changes = Changes::between(items, billed);
    for extra in &changes.remove {
        stripe.remove_subscription_item(extra).await?;
    }
    let mut item = changes.kept;
    if let (Some((id, _, has)), Some(quantity)) = (&mut item, changes.set_quantity) {
        let key = operation.key(&format!("quantity-{round}"));
        stripe
            .set_subscription_item_quantity(id, quantity, key)
            .await?;
        *has = quantity;
    }
    if let Some((price, quantity)) = changes.add {
        // Only an add could leave two items if two runners raced: it runs under a fresh lease.
        hold(db, stripe, operation).await?;
        let key = operation.key(&format!("add-{round}"));
        let id = stripe
            .add_subscription_item(subscription_id, &price, quantity, key)
            .await?;
        item = Some((id, price, quantity));
    }
    Ok(Applied {
        subscription: Some(subscription_id.to_owned()),
        item,
    })
}

/// Renews the operation's lease from now, or fails if it was taken over.
async fn hold(db: &Db, stripe: &StripeApi, operation: &Operation) -> anyhow::Result<()> {
    let mut conn = db.conn_in(operation.workspace_id).await?;
    let lease = stripe.operation_lease();
    if !operations::extend(&mut conn, operation.id, lease).await? {
        anyhow::bail!("a later billing operation took this one over");
    }
    Ok(())
}

/// The workspace's subscription, plan price and phone numbers, on a connection inside it.
async fn read(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
) -> diesel::QueryResult<Option<Billed>> {
    static_sql(
        "SELECT a.subscription_id, a.subscription_status, a.phone_numbers_item_id, \
                p.phone_number_price_id AS price, \
                ARRAY(SELECT phone_number_price_id FROM plan_prices \
                      WHERE phone_number_price_id IS NOT NULL) AS phone_prices, \
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
    .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn billed(price: &str, numbers: i64) -> Billed {
        Billed {
            subscription_id: Some("sub_1".into()),
            subscription_status: Some("active".into()),
            phone_numbers_item_id: None,
            price: Some(price.into()),
            phone_prices: vec!["price_growth".into(), "price_starter".into()],
            numbers,
        }
    }

    fn item(id: &str, price: &str, quantity: i32) -> (String, String, i32) {
        (id.into(), price.into(), quantity)
    }

    #[test]
    fn one_item_at_the_plans_price_is_kept_and_every_other_goes() {
        // A crash left a second item at the same price, and one at the old plan's.
        let items = vec![
            item("si_a", "price_growth", 3),
            item("si_b", "price_growth", 1),
            item("si_old", "price_starter", 3),
        ];
        let changes = Changes::between(items, &billed("price_growth", 4));
        assert_eq!(changes.kept, Some(item("si_a", "price_growth", 3)));
        assert_eq!(changes.remove, ["si_b", "si_old"]);
        assert_eq!(changes.set_quantity, Some(4));
        assert_eq!(changes.add, None);
        // In step: nothing to do.
        let in_step = Changes::between(
            vec![item("si_a", "price_growth", 4)],
            &billed("price_growth", 4),
        );
        assert!(in_step.is_empty());
        // A new plan: the old item goes, one at the new price comes.
        let moved = Changes::between(
            vec![item("si_a", "price_growth", 4)],
            &billed("price_starter", 4),
        );
        assert_eq!(moved.remove, ["si_a"]);
        assert_eq!(moved.add, Some(("price_starter".to_owned(), 4)));
        // The last number gone: so is the item.
        let none = Changes::between(
            vec![item("si_a", "price_growth", 1)],
            &billed("price_growth", 0),
        );
        assert_eq!(
            (none.remove, none.kept, none.add),
            (vec!["si_a".to_owned()], None, None)
        );
    }

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
