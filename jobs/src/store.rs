//! What the handlers need from the database, implemented by the server.

use chrono::{DateTime, Utc};

use crate::{CardNotice, Job, TrialNotice};

/// What a notice to the people who pay is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    Trial(TrialNotice),
    /// The last payment failed; Stripe retries.
    PaymentFailed,
    /// The default card expires soon or expired.
    Card(CardNotice),
}

/// What a job's emails need.
#[derive(Clone, Debug)]
pub enum Prepared {
    /// One email carrying a one-time link.
    Token(TokenEmail),
    /// A trial notice, one email per recipient.
    Notices(Vec<NoticeEmail>),
    /// A notice to a person about their own account.
    Account(AccountEmail),
}

/// What happened to an account, for the email that says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountNotice {
    /// `changePassword` set a new password and signed the account out everywhere else.
    PasswordChanged,
    /// `deleteAccount` deleted the account (the address is forgotten once this is sent).
    AccountDeleted,
    /// `changeEmail` asked to move the account to another address (told to the current one).
    EmailChangeRequested,
    /// Someone signed up with the address of this account (nothing was made).
    SignUpAttempted,
}

/// A notice to the person whose account it is.
#[derive(Clone, Debug)]
pub struct AccountEmail {
    pub to: String,
    pub name: String,
    pub notice: AccountNotice,
    /// What the notice is about, when it names something (the new address).
    pub detail: String,
}

/// A trial notice to one Owner or Admin.
#[derive(Clone, Debug)]
pub struct NoticeEmail {
    pub to: String,
    pub name: String,
    pub workspace_name: String,
    pub trial_ends_at: DateTime<Utc>,
    pub notice: Notice,
    /// The card a card notice is about, e.g. "Visa ending in 4242 (expires 12/2026)";
    /// empty for the other notices.
    pub card: String,
}

/// Prepares and records job emails.
///
/// Delivery is at least once: `prepare` mints a fresh token (storing only its hash) and
/// returns what the email needs; after the email is accepted by the transport, `mark_sent`
/// records it, so a later duplicate of the job is skipped. A crash between the two sends a
/// second email whose new token replaces the first.
#[async_trait::async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// `None` when the email is no longer due: already sent, revoked, used or expired, or
    /// (a trial reminder) the workspace chose a plan meanwhile.
    async fn prepare(&self, job: &Job) -> anyhow::Result<Option<Prepared>>;

    async fn mark_sent(&self, job: &Job) -> anyhow::Result<()>;

    /// Runs a billing job against Stripe; each is idempotent (mirroring copies Stripe's
    /// state, cancelling a cancelled subscription or setting the same email changes nothing).
    async fn billing(&self, job: &Job) -> anyhow::Result<()>;
}

/// A token email ready to render.
#[derive(Clone, Debug)]
pub struct TokenEmail {
    pub to: String,
    /// The one-time secret for the link; exists only in memory and in the email.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub kind: TokenEmailKind,
}

#[derive(Clone, Debug)]
pub enum TokenEmailKind {
    Invitation {
        workspace_name: String,
        inviter_name: String,
        /// Human role name, e.g. "Admin".
        role: String,
    },
    VerifyEmail {
        name: String,
    },
    /// The link that finishes a sign-up and makes the account.
    CompleteSignUp {
        name: String,
    },
    ResetPassword {
        name: String,
    },
    /// Sent to the new address.
    ConfirmEmailChange {
        name: String,
    },
}
