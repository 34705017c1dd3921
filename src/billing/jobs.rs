//! Billing's jobs: mirroring Stripe (each idempotent: mirroring copies Stripe's state,
//! cancelling a cancelled subscription or setting the same email changes nothing), and the
//! notices to the people who pay (trial, failed payment, expiring card), each sent to the
//! Owner and Admins unless it stopped being true before it went out.

use chrono::Utc;
use linkai_jobs::email::{messages, render, when};

use super::cards::{self, CardNotice, SendCardNotice};
use super::grace::{self, SendGraceEnding};
use super::status::{self, StatusEmail};
use super::stripe::StripeApi;
use super::sync::{
    self, ApplySubscriptionEvent, CancelBilling, ResumeBilling, SendPaymentFailed, SyncBilling,
    SyncPlans, UpdateBillingEmail,
};
use super::trial::{self, SendTrialNotice, TrialNotice};
use crate::jobs::{Handlers, JobContext};
use crate::workspaces::model::WorkspaceRow;

pub fn register(handlers: Handlers) -> Handlers {
    handlers
        .on(|job: SyncBilling, cx| async move {
            with_stripe(&cx, async |stripe| {
                sync::sync_workspace(&cx.db, stripe, job.workspace_id).await
            })
            .await
        })
        .on(|job: ApplySubscriptionEvent, cx| async move {
            with_stripe(&cx, async |stripe| {
                sync::apply_subscription_event(&cx.db, stripe, job.workspace_id, &job.event_id)
                    .await
            })
            .await
        })
        .on(|job: CancelBilling, cx| async move {
            // Its Stripe events go first (docs/billing.md, "Stripe events are kept 30 days").
            let mut conn = cx.db.conn_in(job.workspace_id).await?;
            super::webhook::scrub_workspace(&mut conn, job.workspace_id).await?;
            drop(conn);
            with_stripe(&cx, async |stripe| {
                sync::follow_lifecycle(&cx.db, stripe, job.workspace_id).await
            })
            .await
        })
        .on(|job: ResumeBilling, cx| async move {
            with_stripe(&cx, async |stripe| {
                sync::follow_lifecycle(&cx.db, stripe, job.workspace_id).await
            })
            .await
        })
        .on(|job: UpdateBillingEmail, cx| async move {
            with_stripe(&cx, async |stripe| {
                sync::update_customer_email(&cx.db, stripe, job.workspace_id).await
            })
            .await
        })
        .on(|_: SyncPlans, cx| async move {
            with_stripe(&cx, async |stripe| {
                sync::sync_plans(&cx.db, stripe).await.map(drop)
            })
            .await
        })
        .on(send_trial_notice)
        .on(send_payment_failed)
        .on(send_grace_ending)
        .on(send_card_notice)
}

/// Runs `work` against Stripe; without Stripe configured there is nothing to mirror.
async fn with_stripe(
    cx: &JobContext,
    work: impl AsyncFnOnce(&StripeApi) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    match &cx.stripe {
        Some(stripe) => work(stripe).await,
        None => Ok(()),
    }
}

async fn send_trial_notice(job: SendTrialNotice, cx: JobContext) -> anyhow::Result<()> {
    let mut conn = cx.db.conn_in(job.workspace_id).await?;
    if !trial::pending(&mut conn, job.workspace_id, job.notice).await? {
        return Ok(());
    }
    drop(conn);
    // Once a plan is chosen, the trial's notices no longer apply.
    let sent = cx
        .notify_admins(
            job.workspace_id,
            |w| w.plan.is_none(),
            |to, name, workspace| {
                let link = cx.page("settings/billing");
                let ends = when(workspace.trial_ends_at);
                let workspace = workspace.name.clone();
                match job.notice {
                    TrialNotice::Expired => render(
                        to,
                        &messages::TrialExpired {
                            name,
                            workspace,
                            ends,
                            link,
                        },
                    ),
                    reminder => {
                        let days = reminder.days_before_end();
                        let message = messages::TrialReminder {
                            name,
                            workspace,
                            days: days.to_string(),
                            plural: if days == 1 { "" } else { "s" }.into(),
                            ends,
                            link,
                        };
                        render(to, &message)
                    }
                }
            },
        )
        .await?;
    if sent {
        let mut conn = cx.db.conn_in(job.workspace_id).await?;
        trial::mark_emailed(&mut conn, job.workspace_id, job.notice, Utc::now()).await?;
    }
    Ok(())
}

/// Sent when the subscription entered a failed-payment state; skipped if the payment went
/// through meanwhile. Stripe's own retries make a duplicate harmless, so no record is kept.
async fn send_payment_failed(job: SendPaymentFailed, cx: JobContext) -> anyhow::Result<()> {
    let still_failing = |workspace: &WorkspaceRow| {
        status::subscription_of(workspace).and_then(|s| s.effect().email)
            == Some(StatusEmail::PaymentFailed)
    };
    cx.notify_admins(job.workspace_id, still_failing, |to, name, workspace| {
        let failed = workspace.payment_failed_at.unwrap_or_else(Utc::now);
        let message = messages::PaymentFailed {
            name,
            workspace: workspace.name.clone(),
            read_only_on: when(grace::read_only_from(failed)),
            link: cx.page("settings/billing"),
        };
        render(to, &message)
    })
    .await
    .map(drop)
}

/// Sent before a past-due workspace's grace period ends; skipped if it was paid meanwhile
/// (recorded by the scan, once per failure spell: [`grace`]).
async fn send_grace_ending(job: SendGraceEnding, cx: JobContext) -> anyhow::Result<()> {
    let now = Utc::now();
    cx.notify_admins(
        job.workspace_id,
        |workspace| still_ending(workspace, now).is_some(),
        |to, name, workspace| {
            let ends = still_ending(workspace, now).unwrap_or(now);
            let message = messages::GraceEnding {
                name,
                workspace: workspace.name.clone(),
                read_only_on: when(ends),
                link: cx.page("settings/billing"),
            };
            render(to, &message)
        },
    )
    .await
    .map(drop)
}

/// When a past-due workspace becomes read-only, if it still is past due and not read-only
/// yet at `now`.
fn still_ending(
    workspace: &WorkspaceRow,
    now: chrono::DateTime<Utc>,
) -> Option<chrono::DateTime<Utc>> {
    let past_due = status::subscription_of(workspace) == Some(status::SubscriptionStatus::PastDue);
    let ends = grace::read_only_from(workspace.payment_failed_at?);
    (past_due && now < ends).then_some(ends)
}

/// Sent unless sent already or the card changed meanwhile (checked as the notice is read).
async fn send_card_notice(job: SendCardNotice, cx: JobContext) -> anyhow::Result<()> {
    let mut conn = cx.db.conn_in(job.workspace_id).await?;
    let Some((notice, card)) = cards::pending(&mut conn, job.workspace_id, job.notice_id).await?
    else {
        return Ok(());
    };
    drop(conn);
    let mut brand = card.brand;
    if let Some(first) = brand.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    let about = format!(
        "{brand} ending in {} (expires {:02}/{})",
        card.last4, card.exp_month, card.exp_year
    );
    let sent = cx
        .notify_admins(
            job.workspace_id,
            |_| true,
            |to, name, workspace| {
                let (workspace, card) = (workspace.name.clone(), about.clone());
                let link = cx.page("settings/billing");
                match notice {
                    CardNotice::ExpiresSoon => render(
                        to,
                        &messages::CardExpiresSoon {
                            name,
                            workspace,
                            card,
                            link,
                        },
                    ),
                    CardNotice::Expired => render(
                        to,
                        &messages::CardExpired {
                            name,
                            workspace,
                            card,
                            link,
                        },
                    ),
                }
            },
        )
        .await?;
    if sent {
        let mut conn = cx.db.conn_in(job.workspace_id).await?;
        cards::mark_emailed(&mut conn, job.workspace_id, job.notice_id, Utc::now()).await?;
    }
    Ok(())
}
