//! The background side of the server: the outbox relay, the apalis worker running every
//! feature's job handlers (wired here, written in each feature's `jobs.rs`), and the
//! scheduled rounds.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use linkai_jobs::email::Mailer;
use linkai_jobs::WorkerSettings;
use tokio::sync::watch;

use crate::auth::model as accounts;
use crate::billing::stripe::StripeApi;
use crate::billing::{self, trial};
use crate::config::{Config, MISSED_HEARTBEATS};
use crate::db::Db;
use crate::jobs::{Handlers, JobContext};
use crate::live::wakes::Publisher;
use crate::schedule::Round;

/// Every feature's job handlers.
pub fn handlers() -> Handlers {
    let handlers = Handlers::default();
    let handlers = crate::auth::jobs::register(handlers);
    let handlers = crate::invitations::jobs::register(handlers);
    let handlers = crate::usage::jobs::register(handlers);
    let handlers = crate::exports::jobs::register(handlers);
    billing::jobs::register(handlers)
}

pub fn settings(config: &Config) -> WorkerSettings {
    WorkerSettings {
        redis_url: config.redis_url.expose().to_owned(),
        queue: config.workers.queue.clone(),
        worker_name: config.workers.name.clone(),
        heartbeat: config.workers.heartbeat,
        missed_heartbeats: MISSED_HEARTBEATS,
        first_retry: config.workers.first_retry,
    }
}

/// Runs the relay and a worker until `shutdown` turns true; `wakes` publishes what the jobs'
/// audit events wake (src/live/wakes.rs).
pub async fn run(
    config: &Config,
    db: Db,
    wakes: Publisher,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let settings = settings(config);
    let mailer = Mailer::new(
        config.email.smtp_url.as_ref().map(|url| url.expose()),
        &config.email.outbox_dir,
        &config.email.from,
    )?;
    let stripe = config.stripe.as_ref().map(StripeApi::new).transpose()?;
    let context = JobContext {
        db: db.clone(),
        stripe: stripe.clone(),
        mailer,
        app_url: config.http.app_url.clone(),
    };
    let scans = run_trial_scans(
        db.clone(),
        config.workers.name.clone(),
        config.workers.trial_scan_interval,
        config.workers.audit_retention,
        config.billing.stripe_event_retention,
        shutdown.clone(),
    );
    let (db_for_billing, shutdown_for_billing) = (db.clone(), shutdown.clone());
    let relay = crate::outbox::run_relay(
        db,
        config.database.url.expose().to_owned(),
        settings.clone(),
        shutdown.clone(),
    );
    // A job's audit events wake live subscribers on every server once the job is over.
    let handlers = handlers().around(move |work| {
        let wakes = wakes.clone();
        Box::pin(async move { crate::live::wakes::scope(&wakes, work).await })
    });
    let worker = run_worker_until_shutdown(settings, Arc::new(handlers), context, shutdown);
    let purges = run_purges(
        db_for_billing.clone(),
        config.workers.name.clone(),
        stripe.clone(),
        config.workers.trial_scan_interval,
        shutdown_for_billing.clone(),
    );
    let reconciliation = run_billing_reconciliation(
        db_for_billing,
        config.workers.name.clone(),
        stripe,
        config.workers.billing_sync_interval,
        shutdown_for_billing,
    );
    tokio::join!(relay, worker, scans, purges, reconciliation);
    Ok(())
}

/// Purges deleted workspaces past their restore window, on the trial scan's schedule: one
/// worker per interval, however many run (src/workspaces/lifecycle.rs).
async fn run_purges(
    db: Db,
    worker: String,
    stripe: Option<StripeApi>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if claim(&db, Round::WorkspacePurge, &worker, interval).await {
            let purged = crate::workspaces::lifecycle::purge_due(&db, stripe.as_ref());
            if let Err(err) = purged.await {
                tracing::warn!("purging deleted workspaces failed, will retry: {err:#}");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// Keeps a worker running: if Redis goes away the worker stops, and it is started again.
async fn run_worker_until_shutdown(
    settings: WorkerSettings,
    handlers: Arc<Handlers>,
    context: JobContext,
    shutdown: watch::Receiver<bool>,
) {
    loop {
        let mut stop = shutdown.clone();
        let stopped = async move {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        match linkai_jobs::queue::run_worker(
            &settings,
            Arc::clone(&handlers),
            context.clone(),
            stopped,
        )
        .await
        {
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
            match billing::sync::reconcile(&db, &stripe, interval).await {
                Ok(round) if round.failed + round.left > 0 => {
                    tracing::warn!(
                        ?round,
                        "billing reconciliation left workspaces for the next round"
                    );
                }
                Ok(_) => {}
                Err(err) => tracing::warn!("billing reconciliation failed, will retry: {err:#}"),
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

/// Forgets what no longer counts: throttle counters, old reset and sign-up requests and
/// invitation sends, sign-in networks, audit and security events past `audit_retention`,
/// expired exports, Stripe events past `stripe_event_retention`. Each step on its own: one
/// that fails is logged and retried next round, and does not stop the others.
async fn forget_old(
    db: &Db,
    audit_retention: chrono::Duration,
    stripe_event_retention: chrono::Duration,
) {
    let mut conn = match db.conn_outside_tenancy().await {
        Ok(conn) => conn,
        Err(err) => {
            tracing::warn!("forgetting old rows failed, will retry: {err:#}");
            return;
        }
    };
    let (conn, now) = (&mut *conn, Utc::now());
    let stale = now - crate::auth::SIGN_IN_NETWORK_MEMORY;
    let steps = [
        (
            "throttle counters",
            crate::throttle::forget_old(conn, now).await.map(drop),
        ),
        (
            "reset requests",
            accounts::forget_old_reset_requests(conn, now)
                .await
                .map(drop),
        ),
        (
            "invitation sends",
            crate::invitations::forget_old_sends(conn, now)
                .await
                .map(drop),
        ),
        (
            "sign-in networks",
            accounts::forget_old_networks(conn, stale).await.map(drop),
        ),
        (
            "audit events",
            crate::audit::prune(conn, now, audit_retention)
                .await
                .map(drop),
        ),
        ("exports", crate::exports::model::forget_expired(conn).await),
        (
            "security events",
            crate::auth::security::prune(conn, now - audit_retention)
                .await
                .map(drop),
        ),
        (
            "Stripe events",
            billing::webhook::prune(conn, now - stripe_event_retention)
                .await
                .map(drop),
        ),
        (
            "sign-up requests",
            accounts::forget_old_sign_ups(conn, now).await.map(drop),
        ),
    ];
    for (what, done) in steps {
        if let Err(err) = done {
            tracing::warn!("forgetting old {what} failed, will retry: {err:#}");
        }
    }
}

/// Scans for due trial, card and grace-period notices every `interval` until `shutdown`
/// turns true, and on the same schedule forgets throttle counters that no longer count,
/// old reset and sign-up requests, audit events past `audit_retention` and Stripe events
/// past `stripe_event_retention`: one worker per interval, however many run.
async fn run_trial_scans(
    db: Db,
    worker: String,
    interval: Duration,
    audit_retention: chrono::Duration,
    stripe_event_retention: chrono::Duration,
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
            if let Err(err) = billing::grace::scan(&db, Utc::now()).await {
                tracing::warn!("grace-period scan failed, will retry: {err:#}");
            }
            forget_old(&db, audit_retention, stripe_event_retention).await;
            // On its own: a slow batch of conversations must not stop the forgetting above.
            let pruned = async {
                let mut conn = db.conn_outside_tenancy().await?;
                anyhow::Ok(crate::conversations::prune(&mut conn, Utc::now()).await?)
            };
            if let Err(err) = pruned.await {
                tracing::warn!("deleting conversations past retention failed, will retry: {err:#}");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}
