//! The background side of the server: the outbox relay and the apalis worker, and the
//! PostgreSQL implementation of the jobs crate's [`JobStore`].

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use diesel_async::AsyncConnection as _;
use linkai_jobs::email::Mailer;
use linkai_jobs::store::{TokenEmail, TokenEmailKind};
use linkai_jobs::{Deps, Job, JobStore, WorkerSettings};
use tokio::sync::watch;

use crate::auth::model as accounts;
use crate::auth::token::{self, TokenKind};
use crate::config::{Config, MISSED_HEARTBEATS};
use crate::db::Db;
use crate::invitations::{model as invitation_model, InvitationStatus};

pub fn settings(config: &Config) -> WorkerSettings {
    WorkerSettings {
        redis_url: config.redis_url.clone(),
        queue: config.workers.queue.clone(),
        worker_name: config.workers.name.clone(),
        heartbeat: config.workers.heartbeat,
        missed_heartbeats: MISSED_HEARTBEATS,
    }
}

/// Runs the relay and a worker until `shutdown` turns true.
pub async fn run(config: &Config, db: Db, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let settings = settings(config);
    let mailer = Mailer::new(
        config.email.smtp_url.as_ref().map(|url| url.expose()),
        &config.email.outbox_dir,
        &config.email.from,
    )?;
    let deps = Deps {
        store: Arc::new(PgJobStore { db: db.clone() }),
        mailer,
        app_url: config.http.app_url.clone(),
    };
    let relay = crate::outbox::run_relay(
        db,
        config.database.url.expose().to_owned(),
        settings.clone(),
        shutdown.clone(),
    );
    let worker = run_worker_until_shutdown(settings, deps, shutdown);
    tokio::join!(relay, worker);
    Ok(())
}

/// Keeps a worker running: if Redis goes away the worker stops, and it is started again.
async fn run_worker_until_shutdown(
    settings: WorkerSettings,
    deps: Deps,
    shutdown: watch::Receiver<bool>,
) {
    loop {
        let mut stop = shutdown.clone();
        let stopped = async move {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        match linkai_jobs::queue::run_worker(&settings, deps.clone(), stopped).await {
            Ok(()) if *shutdown.borrow() => return,
            Ok(()) => tracing::warn!("worker stopped; starting it again"),
            Err(err) => tracing::warn!("worker failed; starting it again: {err:#}"),
        }
        let mut stop = shutdown.clone();
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// The jobs crate's view of our database.
pub struct PgJobStore {
    db: Db,
}

#[async_trait::async_trait]
impl JobStore for PgJobStore {
    async fn prepare(&self, job: &Job) -> anyhow::Result<Option<TokenEmail>> {
        let mut conn = self.db.conn().await?;
        let prepared = conn
            .transaction(async |conn| -> anyhow::Result<Option<TokenEmail>> {
                match *job {
                    Job::SendInvitation {
                        invitation_id,
                        delivery,
                    } => {
                        let Some(preview) =
                            invitation_model::lock_for_delivery(conn, invitation_id).await?
                        else {
                            return Ok(None);
                        };
                        let invitation = &preview.invitation;
                        let due = invitation.status(Utc::now()) == InvitationStatus::Pending
                            && invitation.delivery == delivery
                            && invitation.delivered < delivery;
                        if !due {
                            return Ok(None);
                        }
                        let minted = token::mint(TokenKind::Invitation);
                        invitation_model::set_token(conn, invitation_id, &minted.hash).await?;
                        Ok(Some(TokenEmail {
                            to: invitation.email.clone(),
                            token: minted.plaintext,
                            expires_at: invitation.expires_at,
                            kind: TokenEmailKind::Invitation {
                                workspace_name: preview.workspace_name.clone(),
                                inviter_name: preview
                                    .inviter_name
                                    .clone()
                                    .unwrap_or_else(|| "A teammate".into()),
                                role: invitation.role().title().into(),
                            },
                        }))
                    }
                    Job::SendEmailVerification { token_id }
                    | Job::SendPasswordReset { token_id } => {
                        let Some((link, user)) =
                            accounts::lock_account_token(conn, token_id).await?
                        else {
                            return Ok(None);
                        };
                        let due = link.sent_at.is_none()
                            && link.used_at.is_none()
                            && link.expires_at > Utc::now();
                        if !due {
                            return Ok(None);
                        }
                        let minted = token::mint(TokenKind::AccountLink);
                        accounts::set_account_token_hash(conn, token_id, &minted.hash).await?;
                        let kind = match job {
                            Job::SendPasswordReset { .. } => {
                                TokenEmailKind::ResetPassword { name: user.name }
                            }
                            _ => TokenEmailKind::VerifyEmail { name: user.name },
                        };
                        Ok(Some(TokenEmail {
                            to: user.email,
                            token: minted.plaintext,
                            expires_at: link.expires_at,
                            kind,
                        }))
                    }
                }
            })
            .await?;
        Ok(prepared)
    }

    async fn mark_sent(&self, job: &Job) -> anyhow::Result<()> {
        let mut conn = self.db.conn().await?;
        match *job {
            Job::SendInvitation {
                invitation_id,
                delivery,
            } => {
                invitation_model::mark_delivered(&mut conn, invitation_id, delivery).await?;
            }
            Job::SendEmailVerification { token_id } | Job::SendPasswordReset { token_id } => {
                accounts::mark_account_token_sent(&mut conn, token_id, Utc::now()).await?;
            }
        }
        Ok(())
    }
}
