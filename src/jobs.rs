//! What every background job handler is given, and the one way it sends an email.
//!
//! Each feature declares its jobs' payloads beside the code that queues them (through the
//! [outbox](crate::outbox), in the writing transaction) and handles them in its `jobs.rs`,
//! whose `register` adds its handlers; `worker.rs` wires every feature's into one registry.
//! A handler is idempotent (a job may run twice): it re-reads what it acts on, does nothing
//! when that is no longer due, and records what it did after doing it.

use linkai_jobs::email::{self, Email, Mailer, Message};

use crate::billing::stripe::StripeApi;
use crate::db::Db;

/// The handlers of every feature, by job kind.
pub type Handlers = linkai_jobs::Handlers<JobContext>;

/// What a handler works with.
#[derive(Clone)]
pub struct JobContext {
    pub db: Db,
    /// `None` when Stripe is not configured: billing jobs then do nothing.
    pub stripe: Option<StripeApi>,
    pub mailer: Mailer,
    /// Base of links in emails (`APP_URL`), never taken from a request.
    pub app_url: String,
}

impl JobContext {
    /// Renders `message` and hands it to the transport; an error makes the job retry.
    pub async fn send<M: Message>(&self, to: &str, message: &M) -> anyhow::Result<()> {
        self.deliver(&email::render(to, message)).await
    }

    /// Hands a rendered email to the transport (for handlers choosing among emails).
    pub async fn deliver(&self, email: &Email) -> anyhow::Result<()> {
        self.mailer.send(email).await?;
        tracing::info!(
            email = email.template,
            to = %email::mask_address(&email.to),
            "email sent"
        );
        Ok(())
    }

    /// A link into the app that carries a one-time token.
    pub fn token_link(&self, path: &str, token: &str) -> String {
        email::token_link(&self.app_url, path, token)
    }

    /// A page of the app.
    pub fn page(&self, path: &str) -> String {
        format!("{}/{path}", self.app_url)
    }
}
