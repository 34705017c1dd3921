//! Runs one job: prepare, render, send, record.

use std::sync::Arc;

use crate::email::{mask_address, Mailer};
use crate::store::{JobStore, Prepared};
use crate::Job;

/// What handlers need, shared by every job a worker runs.
#[derive(Clone)]
pub struct Deps {
    pub store: Arc<dyn JobStore>,
    pub mailer: Mailer,
    /// Base of links in emails (`APP_URL`), never taken from a request.
    pub app_url: String,
}

/// Handles `job`; an error makes the worker retry it with backoff.
pub async fn handle(job: &Job, deps: &Deps) -> anyhow::Result<()> {
    if job.is_billing() {
        return deps.store.billing(job).await;
    }
    let Some(prepared) = deps.store.prepare(job).await? else {
        tracing::debug!(kind = job.kind(), "nothing to send any more");
        return Ok(());
    };
    let emails = match &prepared {
        Prepared::Token(token) => vec![crate::email::render(token, &deps.app_url)],
        Prepared::Notices(notices) => notices
            .iter()
            .map(|notice| crate::email::render_notice(notice, &deps.app_url))
            .collect(),
        Prepared::Account(account) => vec![crate::email::render_account(account, &deps.app_url)],
    };
    for email in &emails {
        deps.mailer.send(email).await?;
        tracing::info!(kind = job.kind(), to = %mask_address(&email.to), "email sent");
    }
    deps.store.mark_sent(job).await?;
    Ok(())
}
