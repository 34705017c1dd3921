//! Job payloads: ids only.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Work to do in the background. Handlers are idempotent: a job may run more than once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Job {
    /// Email the invitation link; `delivery` counts sends (1 at creation, +1 per resend),
    /// so a duplicate of an old delivery is skipped.
    SendInvitation { invitation_id: Uuid, delivery: i32 },
    /// Email the address-verification link for an account token.
    SendEmailVerification { token_id: Uuid },
    /// Email the password-reset link for an account token.
    SendPasswordReset { token_id: Uuid },
    /// Email the link confirming a new sign-in address, to that address.
    SendEmailChange { token_id: Uuid },
    /// A reset was asked for an address: if an account has it (and its hourly cap allows),
    /// make the link and email it. The request itself cannot tell (see the server's auth).
    ProcessPasswordReset { request_id: Uuid },
    /// Someone signed up with an address: email the link that finishes the sign-up, or, if
    /// an account has the address, tell its owner (within the address's hourly cap). The
    /// sign-up itself cannot tell (see the server's auth).
    ProcessSignUp { request_id: Uuid },
    /// Mirror the workspace's subscription from Stripe (after a webhook, and periodically).
    SyncBilling { workspace_id: Uuid },
    /// Apply a recorded `customer.subscription.*` event: its copy of the subscription if it
    /// is the newest event seen, else nothing (or a re-read, when the order is unclear).
    ApplySubscriptionEvent {
        workspace_id: Uuid,
        event_id: String,
    },
    /// Re-read our plans' prices and limits from Stripe.
    SyncPlans,
    /// The workspace was deleted: end its subscription now.
    CancelBilling { workspace_id: Uuid },
    /// The Owner changed: bill the new Owner's email.
    UpdateBillingEmail { workspace_id: Uuid },
    /// Email a workspace's Owner and Admins that a payment failed.
    SendPaymentFailed { workspace_id: Uuid },
    /// Tell a person something happened to their account (password changed, account deleted).
    SendAccountNotice { notice_id: Uuid },
    /// Email a workspace's Owner and Admins about its trial.
    SendTrialNotice {
        workspace_id: Uuid,
        notice: TrialNotice,
    },
    /// Email a workspace's Owner and Admins that its default card expires soon or expired.
    SendCardNotice { workspace_id: Uuid, notice_id: Uuid },
}

/// The emails about the default card's expiry, each sent at most once per card and
/// expiry date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardNotice {
    /// It expires within 30 days.
    ExpiresSoon,
    /// It has expired: payments with it fail.
    Expired,
}

impl CardNotice {
    pub fn as_db(self) -> &'static str {
        match self {
            CardNotice::ExpiresSoon => "expires_soon",
            CardNotice::Expired => "expired",
        }
    }

    pub fn from_db(text: &str) -> Option<Self> {
        [CardNotice::ExpiresSoon, CardNotice::Expired]
            .into_iter()
            .find(|notice| notice.as_db() == text)
    }
}

/// The emails of a trial's life, each sent at most once per workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialNotice {
    /// 7 days left.
    Reminder7,
    /// 3 days left.
    Reminder3,
    /// 1 day left.
    Reminder1,
    /// The trial ended without a plan: the workspace is read-only.
    Expired,
}

impl TrialNotice {
    /// From the earliest to the most urgent.
    pub const ALL: [TrialNotice; 4] = [
        TrialNotice::Reminder7,
        TrialNotice::Reminder3,
        TrialNotice::Reminder1,
        TrialNotice::Expired,
    ];

    pub fn as_db(self) -> &'static str {
        match self {
            TrialNotice::Reminder7 => "reminder_7",
            TrialNotice::Reminder3 => "reminder_3",
            TrialNotice::Reminder1 => "reminder_1",
            TrialNotice::Expired => "expired",
        }
    }

    /// Days before the trial's end when the notice is due (0: at the end).
    pub fn days_before_end(self) -> i64 {
        match self {
            TrialNotice::Reminder7 => 7,
            TrialNotice::Reminder3 => 3,
            TrialNotice::Reminder1 => 1,
            TrialNotice::Expired => 0,
        }
    }
}

impl Job {
    /// Whether the job talks to Stripe rather than sending email.
    pub fn is_billing(&self) -> bool {
        matches!(
            self,
            Job::SyncBilling { .. }
                | Job::ApplySubscriptionEvent { .. }
                | Job::SyncPlans
                | Job::CancelBilling { .. }
                | Job::UpdateBillingEmail { .. }
        )
    }

    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Job::SendInvitation { .. } => "send_invitation",
            Job::SendEmailVerification { .. } => "send_email_verification",
            Job::SendPasswordReset { .. } => "send_password_reset",
            Job::SendEmailChange { .. } => "send_email_change",
            Job::ProcessPasswordReset { .. } => "process_password_reset",
            Job::ProcessSignUp { .. } => "process_sign_up",
            Job::SendTrialNotice { .. } => "send_trial_notice",
            Job::SendCardNotice { .. } => "send_card_notice",
            Job::SendPaymentFailed { .. } => "send_payment_failed",
            Job::SendAccountNotice { .. } => "send_account_notice",
            Job::SyncBilling { .. } => "sync_billing",
            Job::ApplySubscriptionEvent { .. } => "apply_subscription_event",
            Job::SyncPlans => "sync_plans",
            Job::CancelBilling { .. } => "cancel_billing",
            Job::UpdateBillingEmail { .. } => "update_billing_email",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_as_tagged_json() {
        let job = Job::SendInvitation {
            invitation_id: Uuid::nil(),
            delivery: 2,
        };
        let json = serde_json::to_string(&job).expect("serializes");
        assert_eq!(
            json,
            r#"{"type":"send_invitation","invitation_id":"00000000-0000-0000-0000-000000000000","delivery":2}"#
        );
        assert_eq!(serde_json::from_str::<Job>(&json).expect("parses"), job);
    }
}
