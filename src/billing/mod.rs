//! Billing per workspace. So far: the billing status, derived (never stored) from the trial
//! and, later, the mirrored Stripe subscription, so it cannot go stale.

use async_graphql::Enum;
use chrono::{DateTime, Utc};

/// Where a workspace stands with billing.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum BillingStatus {
    /// In the free trial, with full access.
    Trialing,
    /// A plan is paid for.
    Active,
    /// The last payment failed; Stripe is retrying.
    PastDue,
    /// The subscription ended; the workspace is read-only.
    Canceled,
    /// The trial ended with no plan; the workspace is read-only until a plan is chosen.
    TrialExpired,
}

impl BillingStatus {
    /// Trial-only derivation: until subscriptions are mirrored, a workspace is trialing
    /// until its trial ends.
    pub fn derive(trial_ends_at: DateTime<Utc>, now: DateTime<Utc>) -> BillingStatus {
        if now < trial_ends_at {
            BillingStatus::Trialing
        } else {
            BillingStatus::TrialExpired
        }
    }

    /// Read-only workspaces keep every read and refuse every write.
    pub fn is_read_only(self) -> bool {
        matches!(self, BillingStatus::TrialExpired | BillingStatus::Canceled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn trial_status_follows_the_clock() {
        let ends = Utc::now();
        let before = BillingStatus::derive(ends, ends - Duration::seconds(1));
        assert_eq!(before, BillingStatus::Trialing);
        assert!(!before.is_read_only());
        let after = BillingStatus::derive(ends, ends);
        assert_eq!(after, BillingStatus::TrialExpired);
        assert!(after.is_read_only());
    }
}
