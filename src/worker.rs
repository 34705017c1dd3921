//! The background side of the server: the outbox relay and the apalis worker, and the
//! PostgreSQL implementation of the jobs crate's [`JobStore`].

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use diesel_async::AsyncConnection as _;
use linkai_jobs::email::Mailer;
use linkai_jobs::store::{
    AccountEmail, AccountNotice, Notice, NoticeEmail, Prepared, TokenEmail, TokenEmailKind,
};
use linkai_jobs::{Deps, Job, JobStore, WorkerSettings};
use tokio::sync::watch;

use crate::auth::model::{self as accounts, LinkPurpose};
use crate::auth::token::{self, TokenKind};
use crate::billing::stripe::StripeApi;
use crate::billing::{self, trial};
use crate::config::{Config, MISSED_HEARTBEATS};
use crate::db::Db;
use crate::invitations::{model as invitation_model, InvitationStatus};
use crate::roles::Role;
use crate::schedule::Round;

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
    let stripe = config.stripe.as_ref().map(StripeApi::new).transpose()?;
    let deps = Deps {
        store: Arc::new(PgJobStore {
            db: db.clone(),
            stripe: stripe.clone(),
        }),
        mailer,
        app_url: config.http.app_url.clone(),
    };
    let scans = run_trial_scans(
        db.clone(),
        config.workers.name.clone(),
        config.workers.trial_scan_interval,
        config.workers.audit_retention,
        shutdown.clone(),
    );
    let (db_for_billing, shutdown_for_billing) = (db.clone(), shutdown.clone());
    let relay = crate::outbox::run_relay(
        db,
        config.database.url.expose().to_owned(),
        settings.clone(),
        shutdown.clone(),
    );
    let worker = run_worker_until_shutdown(settings, deps, shutdown);
    let reconciliation = run_billing_reconciliation(
        db_for_billing,
        config.workers.name.clone(),
        stripe,
        config.workers.billing_sync_interval,
        shutdown_for_billing,
    );
    tokio::join!(relay, worker, scans, reconciliation);
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

/// The jobs crate's view of our database (and of Stripe, for billing syncs).
pub struct PgJobStore {
    db: Db,
    stripe: Option<StripeApi>,
}

#[async_trait::async_trait]
impl JobStore for PgJobStore {
    async fn prepare(&self, job: &Job) -> anyhow::Result<Option<Prepared>> {
        match *job {
            Job::SendTrialNotice {
                workspace_id,
                notice,
            } => {
                return self
                    .prepare_notice(workspace_id, Notice::Trial(notice), String::new())
                    .await
            }
            Job::SendPaymentFailed { workspace_id } => {
                return self
                    .prepare_notice(workspace_id, Notice::PaymentFailed, String::new())
                    .await;
            }
            Job::SendCardNotice {
                workspace_id,
                notice_id,
            } => return self.prepare_card_notice(workspace_id, notice_id).await,
            Job::SendAccountNotice { notice_id } => {
                let mut conn = self.db.conn().await?;
                let Some((kind, to, name, detail)) =
                    accounts::unsent_notice(&mut conn, notice_id).await?
                else {
                    return Ok(None);
                };
                let notice = match kind.as_str() {
                    "password_changed" => AccountNotice::PasswordChanged,
                    "account_deleted" => AccountNotice::AccountDeleted,
                    "email_change_requested" => AccountNotice::EmailChangeRequested,
                    other => anyhow::bail!("unknown account notice `{other}`"),
                };
                return Ok(Some(Prepared::Account(AccountEmail {
                    to,
                    name,
                    notice,
                    detail: detail.unwrap_or_default(),
                })));
            }
            Job::ProcessSignUp { request_id } => {
                let mut conn = self.db.conn().await?;
                return conn
                    .transaction(async |conn| sign_up_email(conn, request_id).await)
                    .await;
            }
            _ => {}
        }
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
                    Job::SendEmailVerification { token_id } => {
                        account_link_email(conn, token_id, LinkPurpose::VerifyEmail).await
                    }
                    Job::SendPasswordReset { token_id } => {
                        account_link_email(conn, token_id, LinkPurpose::ResetPassword).await
                    }
                    Job::SendEmailChange { token_id } => {
                        account_link_email(conn, token_id, LinkPurpose::ChangeEmail).await
                    }
                    Job::ProcessPasswordReset { request_id } => {
                        match reset_link(conn, request_id).await? {
                            Some(token_id) => {
                                account_link_email(conn, token_id, LinkPurpose::ResetPassword).await
                            }
                            None => Ok(None),
                        }
                    }
                    _ => Ok(None),
                }
            })
            .await?;
        Ok(prepared.map(Prepared::Token))
    }

    async fn billing(&self, job: &Job) -> anyhow::Result<()> {
        let Some(stripe) = &self.stripe else {
            return Ok(());
        };
        match *job {
            Job::SyncBilling { workspace_id } => {
                billing::sync::sync_workspace(&self.db, stripe, workspace_id).await
            }
            Job::ApplySubscriptionEvent {
                workspace_id,
                ref event_id,
            } => {
                billing::sync::apply_subscription_event(&self.db, stripe, workspace_id, event_id)
                    .await
            }
            Job::CancelBilling { workspace_id } => {
                billing::sync::cancel_workspace(&self.db, stripe, workspace_id).await
            }
            Job::UpdateBillingEmail { workspace_id } => {
                billing::sync::update_customer_email(&self.db, stripe, workspace_id).await
            }
            Job::SyncPlans => {
                let mut conn = self.db.conn().await?;
                billing::sync::sync_plans(&mut conn, stripe).await.map(drop)
            }
            _ => Ok(()),
        }
    }

    async fn mark_sent(&self, job: &Job) -> anyhow::Result<()> {
        let mut conn = match *job {
            Job::SendTrialNotice { workspace_id, .. }
            | Job::SendCardNotice { workspace_id, .. } => self.db.conn_in(workspace_id).await?,
            _ => self.db.conn().await?,
        };
        match *job {
            Job::SendInvitation {
                invitation_id,
                delivery,
            } => {
                if let Some(workspace) =
                    invitation_model::workspace_of(&mut conn, invitation_id).await?
                {
                    drop(conn);
                    let mut conn = self.db.conn_in(workspace).await?;
                    invitation_model::mark_delivered(&mut conn, invitation_id, delivery).await?;
                }
            }
            Job::SendEmailVerification { token_id }
            | Job::SendPasswordReset { token_id }
            | Job::SendEmailChange { token_id } => {
                accounts::mark_account_token_sent(&mut conn, token_id, Utc::now()).await?;
            }
            Job::ProcessPasswordReset { request_id } => {
                if let Some(token_id) =
                    accounts::token_of_reset_request(&mut conn, request_id).await?
                {
                    accounts::mark_account_token_sent(&mut conn, token_id, Utc::now()).await?;
                }
            }
            Job::SendAccountNotice { notice_id } => {
                accounts::forget_notice(&mut conn, notice_id).await?;
            }
            Job::ProcessSignUp { request_id } => {
                accounts::mark_sign_up_sent(&mut conn, request_id, Utc::now()).await?;
            }
            Job::SendTrialNotice {
                workspace_id,
                notice,
            } => {
                trial::mark_emailed(&mut conn, workspace_id, notice, Utc::now()).await?;
            }
            Job::SendCardNotice { notice_id, .. } => {
                billing::cards::mark_emailed(&mut conn, notice_id, Utc::now()).await?;
            }
            Job::SendPaymentFailed { .. }
            | Job::SyncPlans
            | Job::SyncBilling { .. }
            | Job::ApplySubscriptionEvent { .. }
            | Job::CancelBilling { .. }
            | Job::UpdateBillingEmail { .. } => {}
        }
        Ok(())
    }
}

/// The email a sign-up request gets: the link that finishes it (minted now), or, when an
/// account has the address, a note to that account's owner. Nothing if it was sent or
/// followed already; a request that expired or whose address had its hourly share is
/// forgotten instead.
async fn sign_up_email(
    conn: &mut diesel_async::AsyncPgConnection,
    request_id: uuid::Uuid,
) -> anyhow::Result<Option<Prepared>> {
    let Some(pending) = accounts::lock_sign_up_request(conn, request_id).await? else {
        return Ok(None);
    };
    let now = Utc::now();
    if pending.sent_at.is_some() {
        return Ok(None);
    }
    // A retry of a request already taken on (its send failed) goes ahead without counting
    // twice.
    let taken_on = pending.expires_at > now
        && (pending.claimed_at.is_some()
            || accounts::claim_sign_up_email(
                conn,
                request_id,
                &pending.email,
                now - chrono::Duration::hours(1),
                crate::auth::SIGN_UP_EMAILS_PER_HOUR,
                now,
            )
            .await?);
    if !taken_on {
        accounts::forget_sign_up(conn, request_id).await?;
        return Ok(None);
    }
    if let Some((user_id, _)) = accounts::find_credentials(conn, &pending.email).await? {
        let Some(owner) = accounts::find_user(conn, user_id).await? else {
            return Ok(None);
        };
        return Ok(Some(Prepared::Account(AccountEmail {
            to: owner.email,
            name: owner.name,
            notice: AccountNotice::SignUpAttempted,
            detail: String::new(),
        })));
    }
    let minted = token::mint(TokenKind::AccountLink);
    accounts::set_sign_up_token(conn, request_id, &minted.hash).await?;
    Ok(Some(Prepared::Token(TokenEmail {
        to: pending.email,
        token: minted.plaintext,
        expires_at: pending.expires_at,
        kind: TokenEmailKind::CompleteSignUp { name: pending.name },
    })))
}

/// The link a reset request makes: on its first run, if an account has the address and
/// its hourly cap allows, a new reset token; later runs find the one it made.
async fn reset_link(
    conn: &mut diesel_async::AsyncPgConnection,
    request_id: uuid::Uuid,
) -> anyhow::Result<Option<uuid::Uuid>> {
    let Some((email, processed, made)) = accounts::lock_reset_request(conn, request_id).await?
    else {
        return Ok(None);
    };
    if processed.is_some() {
        return Ok(made);
    }
    let now = Utc::now();
    let mut made = None;
    if let Some((user_id, _)) = accounts::find_credentials(conn, &email).await? {
        let recent = accounts::account_tokens_since(
            conn,
            user_id,
            LinkPurpose::ResetPassword,
            now - chrono::Duration::hours(1),
        )
        .await?;
        if recent < crate::auth::RESETS_PER_HOUR {
            let expires = now + crate::auth::RESET_PASSWORD_VALIDITY;
            made = Some(
                accounts::insert_account_token(
                    conn,
                    user_id,
                    LinkPurpose::ResetPassword,
                    expires,
                    None,
                )
                .await?,
            );
        }
    }
    accounts::finish_reset_request(conn, request_id, made, now).await?;
    Ok(made)
}

/// The email for an account link (verification or reset), minting its token, unless it
/// was sent, used or expired already.
async fn account_link_email(
    conn: &mut diesel_async::AsyncPgConnection,
    token_id: uuid::Uuid,
    purpose: LinkPurpose,
) -> anyhow::Result<Option<TokenEmail>> {
    let Some((link, user)) = accounts::lock_account_token(conn, token_id).await? else {
        return Ok(None);
    };
    let due = link.sent_at.is_none() && link.used_at.is_none() && link.expires_at > Utc::now();
    if !due {
        return Ok(None);
    }
    let minted = token::mint(TokenKind::AccountLink);
    accounts::set_account_token_hash(conn, token_id, &minted.hash).await?;
    // An address change is confirmed at the new address; the other links go to the account's.
    let to = link.new_email.unwrap_or(user.email);
    let kind = match purpose {
        LinkPurpose::ResetPassword => TokenEmailKind::ResetPassword { name: user.name },
        LinkPurpose::VerifyEmail => TokenEmailKind::VerifyEmail { name: user.name },
        LinkPurpose::ChangeEmail => TokenEmailKind::ConfirmEmailChange { name: user.name },
    };
    Ok(Some(TokenEmail {
        to,
        token: minted.plaintext,
        expires_at: link.expires_at,
        kind,
    }))
}

impl PgJobStore {
    /// A card notice's emails, unless sent already or the card changed meanwhile.
    async fn prepare_card_notice(
        &self,
        workspace_id: uuid::Uuid,
        notice_id: uuid::Uuid,
    ) -> anyhow::Result<Option<Prepared>> {
        let mut conn = self.db.conn_in(workspace_id).await?;
        let Some((notice, card)) = billing::cards::pending(&mut conn, notice_id).await? else {
            return Ok(None);
        };
        let mut brand = card.brand;
        if let Some(first) = brand.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        let about = format!(
            "{brand} ending in {} (expires {:02}/{})",
            card.last4, card.exp_month, card.exp_year
        );
        drop(conn);
        self.prepare_notice(workspace_id, Notice::Card(notice), about)
            .await
    }

    /// The notice's emails to the Owner and Admins, unless already sent or no longer true
    /// (a plan was chosen, the payment went through, or the workspace is gone).
    async fn prepare_notice(
        &self,
        workspace_id: uuid::Uuid,
        notice: Notice,
        card: String,
    ) -> anyhow::Result<Option<Prepared>> {
        let mut conn = self.db.conn_in(workspace_id).await?;
        if let Notice::Trial(trial_notice) = notice {
            if !trial::pending(&mut conn, workspace_id, trial_notice).await? {
                return Ok(None);
            }
        }
        let Some(workspace) = crate::workspaces::model::find_live(&mut conn, workspace_id).await?
        else {
            return Ok(None);
        };
        let still_true = match notice {
            Notice::Trial(_) => workspace.plan.is_none(),
            Notice::PaymentFailed => {
                billing::status::subscription_of(&workspace).and_then(|s| s.effect().email)
                    == Some(billing::status::StatusEmail::PaymentFailed)
            }
            // Checked with the card, as the notice was taken.
            Notice::Card(_) => true,
        };
        if !still_true {
            return Ok(None);
        }
        let recipients =
            crate::members::model::with_roles(&mut conn, workspace_id, &[Role::Owner, Role::Admin])
                .await?;
        let emails = recipients
            .into_iter()
            .map(|user| NoticeEmail {
                to: user.email,
                name: user.name,
                workspace_name: workspace.name.clone(),
                trial_ends_at: workspace.trial_ends_at,
                notice,
                card: card.clone(),
            })
            .collect();
        Ok(Some(Prepared::Notices(emails)))
    }
}

/// Re-syncs every billed workspace from Stripe every `interval`, repairing missed webhooks:
/// one worker per interval, however many run.
async fn run_billing_reconciliation(
    db: Db,
    worker: String,
    stripe: Option<StripeApi>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(stripe) = stripe else {
        return;
    };
    loop {
        if claim(&db, Round::BillingReconciliation, &worker, interval).await {
            if let Err(err) = billing::sync::reconcile(&db, &stripe).await {
                tracing::warn!("billing reconciliation failed, will retry: {err:#}");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// Whether this worker takes the round now (one worker per interval, [`crate::schedule`]).
/// A database error skips the round here; it is tried again at the next wake-up.
async fn claim(db: &Db, round: Round, worker: &str, interval: Duration) -> bool {
    let claimed = async {
        let mut conn = db.conn_outside_tenancy().await?;
        anyhow::Ok(crate::schedule::claim(&mut conn, round, worker, interval, Utc::now()).await?)
    };
    claimed.await.unwrap_or_else(|err| {
        tracing::warn!(
            ?round,
            "claiming a scheduled round failed, will retry: {err:#}"
        );
        false
    })
}

/// Scans for due trial and card notices every `interval` until `shutdown` turns true, and
/// on the same schedule forgets throttle counters that no longer count, old reset and
/// sign-up requests, and audit events past `audit_retention`: one worker per interval,
/// however many run.
async fn run_trial_scans(
    db: Db,
    worker: String,
    interval: Duration,
    audit_retention: chrono::Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if claim(&db, Round::TrialScan, &worker, interval).await {
            if let Err(err) = trial::scan(&db, Utc::now()).await {
                tracing::warn!("trial scan failed, will retry: {err:#}");
            }
            if let Err(err) = billing::cards::scan(&db, Utc::now()).await {
                tracing::warn!("card-expiry scan failed, will retry: {err:#}");
            }
            let forgotten = async {
                let mut conn = db.conn_outside_tenancy().await?;
                crate::throttle::forget_old(&mut conn, Utc::now()).await?;
                accounts::forget_old_reset_requests(&mut conn, Utc::now()).await?;
                crate::audit::prune(&mut conn, Utc::now(), audit_retention).await?;
                crate::auth::security::prune(&mut conn, Utc::now() - audit_retention).await?;
                anyhow::Ok(accounts::forget_old_sign_ups(&mut conn, Utc::now()).await?)
            };
            if let Err(err) = forgotten.await {
                tracing::warn!("forgetting old counters and requests failed, will retry: {err:#}");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}
