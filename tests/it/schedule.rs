//! Scheduled work runs once per interval whatever the number of workers (src/schedule.rs),
//! counted where it costs: the calls the workers make to Stripe.

use std::time::Duration;

use crate::billing::subscribe;
use crate::harness::{TestApp, STRIPE_KEY};
use crate::stripe_proxy::StripeProxy;

/// Issue 16: every worker ran the hourly reconciliation of every workspace, so N workers
/// made N times the Stripe calls. Three worker processes start together (each wakes at
/// once, then hourly); one round reads each billed workspace's subscriptions and customer
/// from Stripe once, and nothing more follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_reconcile_each_workspace_once_per_round() {
    let app = TestApp::builder().with_stripe().start().await;
    let ada = app.sign_up("Ada").await;
    subscribe(&app, &ada, &ada.own_workspace, "GROWTH").await;
    let bob = app.sign_up("Bob").await;
    subscribe(&app, &bob, &bob.own_workspace, "STARTER").await;
    let billed = 2;

    let proxy = StripeProxy::start(false).await;
    let workers: Vec<_> = (0..3)
        .map(|i| {
            crate::processes::worker(
                &app,
                &format!("reconciler-{i}"),
                &[
                    ("STRIPE_SECRET_KEY", STRIPE_KEY),
                    ("STRIPE_API_BASE", &proxy.url),
                    ("BILLING_SYNC_SECS", "3600"),
                    ("TRIAL_SCAN_SECS", "3600"),
                ],
            )
        })
        .collect();

    // One list of the customer's subscriptions per workspace (the sync reads Stripe's list,
    // not only the recorded id: src/billing/sync.rs).
    let subscriptions = "GET /v1/subscriptions";
    let customers = "GET /v1/customers/cus_";
    for _ in 0..300 {
        if proxy.count(subscriptions) >= billed && proxy.count(customers) >= billed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The other two workers have woken by now too; give them time to (not) go round.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        (proxy.count(subscriptions), proxy.count(customers)),
        (billed, billed),
        "{:#?}",
        proxy.seen()
    );
    drop(workers);
}
