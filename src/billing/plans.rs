//! Plans and their usage limits. These are the built-in defaults, used when Stripe is not
//! configured; with Stripe, the plan sync overrides prices and limits from product metadata.

/// A paid plan (GraphQL's `PlanId` is its mirror in `billing::graphql`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlanId {
    /// For a first agent in production.
    Starter,
    /// For teams running several agents.
    Growth,
    /// For high volume.
    Scale,
}

impl PlanId {
    pub const ALL: [PlanId; 3] = [PlanId::Starter, PlanId::Growth, PlanId::Scale];

    pub fn as_db(self) -> &'static str {
        match self {
            PlanId::Starter => "starter",
            PlanId::Growth => "growth",
            PlanId::Scale => "scale",
        }
    }

    pub fn from_db(value: &str) -> Option<PlanId> {
        PlanId::ALL.into_iter().find(|plan| plan.as_db() == value)
    }
}

/// Usage limits per workspace: messages and SMS per billing period, agents and phone
/// numbers in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Messages per billing period.
    pub messages: i32,
    /// SMS per billing period.
    pub sms: i32,
    /// Agents at once.
    pub agents: i32,
    /// Phone numbers at once.
    pub phone_numbers: i32,
}

/// A limit on how many of one kind of resource a workspace holds at once; a resource kind
/// names the one it counts against (`resources::Kind::LIMIT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CountLimit {
    Agents,
    PhoneNumbers,
}

impl CountLimit {
    /// The limit's value in `limits`.
    pub fn of(self, limits: &Limits) -> i32 {
        match self {
            CountLimit::Agents => limits.agents,
            CountLimit::PhoneNumbers => limits.phone_numbers,
        }
    }
}

/// A plan with its price and limits.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Which plan.
    pub id: PlanId,
    /// Display name.
    pub name: String,
    /// Price per month, in cents (USD).
    pub monthly_price_cents: i32,
    /// What a workspace on this plan may use.
    pub limits: Limits,
}

/// One of our plans as found in Stripe.
#[derive(Clone, Debug)]
pub struct SyncedPlan {
    pub price_id: String,
    pub plan: Plan,
    /// The per-phone-number price on the plan's product, if it has one.
    pub phone_number_price_id: Option<String>,
}

/// The built-in plans.
pub fn default_plan(id: PlanId) -> Plan {
    let (name, monthly_price_cents, limits) = match id {
        PlanId::Starter => (
            "Starter",
            4_900,
            Limits {
                messages: 2_000,
                sms: 500,
                agents: 3,
                phone_numbers: 1,
            },
        ),
        PlanId::Growth => (
            "Growth",
            14_900,
            Limits {
                messages: 10_000,
                sms: 2_500,
                agents: 10,
                phone_numbers: 5,
            },
        ),
        PlanId::Scale => (
            "Scale",
            49_900,
            Limits {
                messages: 50_000,
                sms: 10_000,
                agents: 50,
                phone_numbers: 20,
            },
        ),
    };
    Plan {
        id,
        name: name.to_owned(),
        monthly_price_cents,
        limits,
    }
}

/// During the trial a workspace gets the highest plan's limits.
pub const TRIAL_PLAN: PlanId = PlanId::Scale;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::schema::plan_prices;

#[derive(Queryable, Selectable)]
#[diesel(table_name = plan_prices)]
struct PlanPriceRow {
    plan: String,
    name: String,
    monthly_price_cents: i32,
    messages: i32,
    sms: i32,
    agents: i32,
    phone_numbers: i32,
}

impl PlanPriceRow {
    fn plan(&self) -> Option<Plan> {
        Some(Plan {
            id: PlanId::from_db(&self.plan)?,
            name: self.name.clone(),
            monthly_price_cents: self.monthly_price_cents,
            limits: Limits {
                messages: self.messages,
                sms: self.sms,
                agents: self.agents,
                phone_numbers: self.phone_numbers,
            },
        })
    }
}

/// Every plan: as synced from Stripe, else the built-in default.
pub async fn all(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Plan>> {
    let synced: Vec<PlanPriceRow> = plan_prices::table
        .select(PlanPriceRow::as_select())
        .load(conn)
        .await?;
    Ok(PlanId::ALL
        .into_iter()
        .map(|id| {
            synced
                .iter()
                .find(|row| row.plan == id.as_db())
                .and_then(PlanPriceRow::plan)
                .unwrap_or_else(|| default_plan(id))
        })
        .collect())
}

/// One plan: as synced from Stripe, else the built-in default.
pub async fn find(conn: &mut AsyncPgConnection, id: PlanId) -> QueryResult<Plan> {
    let row: Option<PlanPriceRow> = plan_prices::table
        .find(id.as_db())
        .select(PlanPriceRow::as_select())
        .first(conn)
        .await
        .optional()?;
    Ok(row
        .and_then(|row| row.plan())
        .unwrap_or_else(|| default_plan(id)))
}

/// The Stripe price to subscribe to for a plan, once synced.
pub async fn stripe_price(conn: &mut AsyncPgConnection, id: PlanId) -> QueryResult<Option<String>> {
    plan_prices::table
        .find(id.as_db())
        .select(plan_prices::stripe_price_id)
        .first(conn)
        .await
        .optional()
}

/// Which plan a Stripe price is for.
pub async fn by_stripe_price(
    conn: &mut AsyncPgConnection,
    price: &str,
) -> QueryResult<Option<PlanId>> {
    let plan: Option<String> = plan_prices::table
        .filter(plan_prices::stripe_price_id.eq(price))
        .select(plan_prices::plan)
        .first(conn)
        .await
        .optional()?;
    Ok(plan.as_deref().and_then(PlanId::from_db))
}

/// Stores the plans found in Stripe.
pub async fn save_synced(conn: &mut AsyncPgConnection, plans: &[SyncedPlan]) -> QueryResult<()> {
    for synced in plans {
        let plan = &synced.plan;
        let values = (
            plan_prices::plan.eq(plan.id.as_db()),
            plan_prices::stripe_price_id.eq(&synced.price_id),
            plan_prices::name.eq(&plan.name),
            plan_prices::monthly_price_cents.eq(plan.monthly_price_cents),
            plan_prices::messages.eq(plan.limits.messages),
            plan_prices::sms.eq(plan.limits.sms),
            plan_prices::agents.eq(plan.limits.agents),
            plan_prices::phone_numbers.eq(plan.limits.phone_numbers),
            plan_prices::phone_number_price_id.eq(&synced.phone_number_price_id),
            plan_prices::synced_at.eq(diesel::dsl::now),
        );
        diesel::insert_into(plan_prices::table)
            .values(values)
            .on_conflict(plan_prices::plan)
            .do_update()
            .set(values)
            .execute(conn)
            .await?;
    }
    Ok(())
}
