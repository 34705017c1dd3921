//! What every background job handler is given, and the one way it sends an email.
//!
//! Each feature declares its jobs' payloads beside the code that queues them (through the
//! [outbox](crate::outbox), in the writing transaction) and handles them in its `jobs.rs`,
//! whose `register` adds its handlers; `worker.rs` wires every feature's into one registry.
//! A handler is idempotent (a job may run twice): it re-reads what it acts on, does nothing
//! when that is no longer due, and records what it did after doing it.

use linkai_jobs::email::{self, Email, Mailer, Message};

use uuid::Uuid;

use crate::billing::stripe::StripeApi;
use crate::db::Db;
use crate::roles::Role;
use crate::workspaces::model::WorkspaceRow;

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
        let sent = self.mailer.send(email).await;
        let outcome = if sent.is_ok() { "sent" } else { "failed" };
        metrics::counter!("linkai_emails_total", "template" => email.template, "outcome" => outcome)
            .increment(1);
        sent?;
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

    /// Emails the workspace's Owner and Admins, each their own copy (`email` renders it for
    /// an address and a name), if the workspace is live and `still_true` of it; returns
    /// whether it did.
    pub async fn notify_admins(
        &self,
        workspace_id: Uuid,
        still_true: impl FnOnce(&WorkspaceRow) -> bool,
        email: impl Fn(&str, String, &WorkspaceRow) -> Email,
    ) -> anyhow::Result<bool> {
        let mut conn = self.db.conn_in(workspace_id).await?;
        let Some(workspace) = crate::workspaces::model::find_live(&mut conn, workspace_id).await?
        else {
            return Ok(false);
        };
        if !still_true(&workspace) {
            return Ok(false);
        }
        let admins = [Role::Owner, Role::Admin];
        let recipients =
            crate::members::model::with_roles(&mut conn, workspace_id, &admins).await?;
        drop(conn);
        for user in recipients {
            self.deliver(&email(&user.email, user.name, &workspace))
                .await?;
        }
        Ok(true)
    }

    /// A page of the app.
    pub fn page(&self, path: &str) -> String {
        format!("{}/{path}", self.app_url)
    }
}
