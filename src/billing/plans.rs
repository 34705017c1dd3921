//! Plans and their usage limits. These are the built-in defaults, used when Stripe is not
//! configured; with Stripe, the plan sync overrides prices and limits from product metadata.

use async_graphql::{Enum, SimpleObject};

/// A paid plan.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
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
#[derive(SimpleObject, Clone, Copy, Debug, PartialEq, Eq)]
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

/// A plan with its price and limits.
#[derive(SimpleObject, Clone, Debug)]
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
