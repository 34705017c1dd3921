//! Stripe's subscription statuses, parsed in this one place, and the one table of what each
//! means for a workspace: the `BillingStatus` it shows, whether it is read-only, and which
//! email goes out. docs/billing.md's billing status table is this table ([`SubscriptionStatus::effect`]).
//!
//! Where a status leaves something to the workspace's own state (`None` below), the trial
//! and the plan decide as they do before any subscription: TRIALING until the trial ends,
//! then ACTIVE with a plan that applies, else TRIAL_EXPIRED and read-only.

use chrono::{DateTime, Utc};

use super::BillingStatus;
use crate::workspaces::model::WorkspaceRow;

/// A subscription's status as Stripe reports it
/// (<https://docs.stripe.com/billing/subscriptions/overview#subscription-statuses>).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscriptionStatus {
    Trialing,
    Active,
    /// The first invoice is not paid yet: the card needs authentication or was declined.
    Incomplete,
    /// The first invoice was not paid within 23 hours: the subscription is void.
    IncompleteExpired,
    /// A renewal failed; Stripe retries.
    PastDue,
    /// Stripe's retries ran out; invoices are no longer attempted.
    Unpaid,
    Canceled,
    /// The trial ended without a payment method and Stripe paused the subscription.
    Paused,
}

/// The email a status sends when a workspace enters it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusEmail {
    /// "Your payment failed": to the Owner and Admins, once per failure spell.
    PaymentFailed,
}

/// What a status means for the workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Effect {
    /// The status shown; `None`: as without a subscription (the trial and the plan).
    pub shown: Option<BillingStatus>,
    /// Whether the workspace is read-only; `None`: as without a subscription.
    pub read_only: Option<bool>,
    /// Whether the plan the subscription is for applies (its limits, ACTIVE after the
    /// trial). Not before its first payment, nor once the subscription is over.
    pub plan_applies: bool,
    /// The email sent when a workspace enters this status.
    pub email: Option<StatusEmail>,
}

impl SubscriptionStatus {
    pub const ALL: [SubscriptionStatus; 8] = [
        SubscriptionStatus::Trialing,
        SubscriptionStatus::Active,
        SubscriptionStatus::Incomplete,
        SubscriptionStatus::IncompleteExpired,
        SubscriptionStatus::PastDue,
        SubscriptionStatus::Unpaid,
        SubscriptionStatus::Canceled,
        SubscriptionStatus::Paused,
    ];

    /// Stripe's text; `None` for a status Stripe may add later (logged by the caller, and
    /// then treated as no subscription: the trial and the plan decide).
    pub fn parse(stripe: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_stripe() == stripe)
    }

    pub fn as_stripe(self) -> &'static str {
        match self {
            SubscriptionStatus::Trialing => "trialing",
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::Incomplete => "incomplete",
            SubscriptionStatus::IncompleteExpired => "incomplete_expired",
            SubscriptionStatus::PastDue => "past_due",
            SubscriptionStatus::Unpaid => "unpaid",
            SubscriptionStatus::Canceled => "canceled",
            SubscriptionStatus::Paused => "paused",
        }
    }

    /// The table (docs/billing.md, "Billing statuses").
    pub fn effect(self) -> Effect {
        use BillingStatus as Shown;
        let (shown, read_only, plan_applies, email) = match self {
            // TRIALING while our trial lasts (Stripe's ends with it), then ACTIVE.
            SubscriptionStatus::Trialing | SubscriptionStatus::Active => (None, None, true, None),
            // The first payment is pending: the workspace keeps its state before (trialing,
            // or read-only once the trial ended) until Stripe says it is paid.
            SubscriptionStatus::Incomplete => (Some(Shown::Incomplete), None, false, None),
            // Void: as if no plan had been chosen (the mirror clears it).
            SubscriptionStatus::IncompleteExpired => (None, None, false, None),
            // Read-only once its grace period is over (`standing`).
            SubscriptionStatus::PastDue => (
                Some(Shown::PastDue),
                Some(false),
                true,
                Some(StatusEmail::PaymentFailed),
            ),
            SubscriptionStatus::Unpaid => (
                Some(Shown::Unpaid),
                Some(true),
                true,
                Some(StatusEmail::PaymentFailed),
            ),
            SubscriptionStatus::Canceled => (Some(Shown::Canceled), Some(true), false, None),
            SubscriptionStatus::Paused => (Some(Shown::Paused), Some(true), false, None),
        };
        Effect {
            shown,
            read_only,
            plan_applies,
            email,
        }
    }

    /// Whether a subscription in this status can be changed to another plan rather than
    /// replaced by a new one.
    pub fn is_live(self) -> bool {
        self.effect().plan_applies
    }
}

/// Where a workspace stands: the status shown and whether it is read-only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Standing {
    pub status: BillingStatus,
    pub read_only: bool,
}

/// The workspace's mirrored subscription status, parsed (unknown statuses logged).
pub fn subscription_of(workspace: &WorkspaceRow) -> Option<SubscriptionStatus> {
    let text = workspace.subscription_status.as_deref()?;
    let parsed = SubscriptionStatus::parse(text);
    if parsed.is_none() {
        tracing::warn!(status = text, "unknown Stripe subscription status");
    }
    parsed
}

/// Where `workspace` stands at `now`, from its mirrored subscription through the table,
/// then its trial and plan.
pub fn standing(workspace: &WorkspaceRow, now: DateTime<Utc>) -> Standing {
    let effect = subscription_of(workspace).map(SubscriptionStatus::effect);
    let plan_applies = workspace.plan.is_some() && effect.is_none_or(|e| e.plan_applies);
    let trialing = now < workspace.trial_ends_at;
    let own = if trialing {
        BillingStatus::Trialing
    } else if plan_applies {
        BillingStatus::Active
    } else {
        BillingStatus::TrialExpired
    };
    // Past due is writable for its grace period only (src/billing/grace.rs).
    let grace_over = subscription_of(workspace) == Some(SubscriptionStatus::PastDue)
        && workspace
            .payment_failed_at
            .is_some_and(|failed| now >= super::grace::read_only_from(failed));
    Standing {
        status: effect.and_then(|e| e.shown).unwrap_or(own),
        read_only: grace_over
            || effect
                .and_then(|e| e.read_only)
                .unwrap_or(!trialing && !plan_applies),
    }
}
