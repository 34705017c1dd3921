//! Saved cards as the workers mirror them from Stripe (issue 16, item 5): no Stripe call
//! when billing is read, card webhooks keep the mirror, the Owner and Admins are told once
//! when the default card is about to expire and once when it has, and Stripe's automatic
//! card updates are followed.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

use crate::billing::{add_card_expiring, customer_of, stripe_post, subscribe};
use crate::harness::{stripe_fake, Actor, TestApp};
use crate::stripe_proxy::StripeProxy;
use crate::webhooks::{deliver, signed};

const CARDS: &str = "query($ws: ID!) { workspace(id: $ws) { billing { paymentMethods { id brand last4 expMonth expYear isDefault expired expiresSoon } } } }";

async fn cards(app: &TestApp, actor: &Actor, workspace: &str) -> Vec<Value> {
    app.gql(actor.token(), CARDS, json!({ "ws": workspace }))
        .await
        .data("workspace")["billing"]["paymentMethods"]
        .as_array()
        .expect("cards")
        .clone()
}

/// Waits until the mirrored cards satisfy `done`; answers the last ones read.
pub async fn wait_for_cards(
    app: &TestApp,
    actor: &Actor,
    workspace: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut last = Vec::new();
    for _ in 0..150 {
        last = cards(app, actor, workspace).await;
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

/// What Stripe sends about a card: the event with the card as it is now in the fake.
async fn announce(app: &TestApp, kind: &str, card: &str) {
    let object = crate::billing::stripe_get(&format!("payment_methods/{card}")).await;
    let body = json!({
        "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
        "object": "event",
        "type": kind,
        "created": Utc::now().timestamp(),
        "data": { "object": object },
    })
    .to_string();
    assert_eq!(deliver(app, &body, signed(&body)).await, 200, "{kind}");
}

/// What Stripe.js and Stripe do when a card is saved in the browser: the card is attached
/// to the customer, and `payment_method.attached` is sent to the webhook.
pub async fn save_card(app: &TestApp, customer: &str, month: u32, year: i32) -> String {
    let card = add_card_expiring(customer, "4242424242424242", month, year).await;
    announce(app, "payment_method.attached", &card).await;
    card
}

/// The server's own database and Stripe handles, as a worker has them, for driving
/// scheduled work (a scan at a chosen time, a reconciliation round) from the test.
pub async fn worker_side(app: &TestApp, plan_key: Option<&str>) -> linkai::App {
    let mut settings = Vec::new();
    if let Some(key) = plan_key {
        settings.push(("STRIPE_PLAN_METADATA_KEY", key.to_owned()));
    }
    worker_side_with(app, stripe_fake().await, &settings)
}

/// [`worker_side`] with Stripe at `stripe_base` (the fake, or a proxy in front of it) and
/// more settings.
pub fn worker_side_with(
    app: &TestApp,
    stripe_base: &str,
    settings: &[(&str, String)],
) -> linkai::App {
    let url = app.db.url();
    let config = linkai::config::Config::from_lookup(|name| match name {
        "DATABASE_URL" => Some(url.clone()),
        "STRIPE_SECRET_KEY" => Some(crate::harness::STRIPE_KEY.into()),
        "STRIPE_API_BASE" => Some(stripe_base.to_owned()),
        _ => settings
            .iter()
            .find(|(setting, _)| *setting == name)
            .map(|(_, value)| value.clone()),
    })
    .expect("config");
    linkai::App::connect(config).expect("app")
}

/// Issue 16: every billing query called Stripe live (two calls per read), which Stripe's
/// rate limits and latency would not carry. The server talks to Stripe through a counting
/// proxy: once the cards are mirrored, reading billing with its cards, plan and invoices
/// ten times makes no Stripe call at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_billing_makes_no_stripe_call() {
    let proxy = StripeProxy::start(false).await;
    let app = TestApp::builder()
        .with_stripe_proxy(&proxy)
        .with_workers()
        .start()
        .await;
    let ada = app.sign_up("Ada").await;
    let ws = ada.own_workspace.clone();
    let customer = subscribe(&app, &ada, &ws, "GROWTH").await;
    let spare = save_card(&app, &customer, 12, 2032).await;
    let listed = wait_for_cards(&app, &ada, &ws, |cards| cards.len() == 2).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed.iter().any(|card| card["id"] == spare.as_str()),
        "{listed:?}"
    );
    // The mirror is complete; let the worker's sync of that webhook finish its calls.
    let mut before = proxy.count("");
    loop {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let now = proxy.count("");
        if now == before {
            break;
        }
        before = now;
    }
    let read = "query($ws: ID!) { workspace(id: $ws) { billingStatus billing { status plan { id } currentPeriodEnd details { email }
      paymentMethods { id isDefault expired expiresSoon } invoices { totalCount edges { node { id status } } } } } }";
    for _ in 0..10 {
        let billing = app.gql(ada.token(), read, json!({ "ws": ws })).await;
        let billing = &billing.data("workspace")["billing"];
        assert_eq!(billing["paymentMethods"].as_array().map(Vec::len), Some(2));
        assert_eq!(billing["plan"]["id"], "GROWTH");
    }
    assert_eq!(proxy.count(""), before, "a billing read called Stripe");
}

/// Card webhooks keep the mirror: a card detached in Stripe (its event no longer names
/// the customer) disappears; a card Stripe updates automatically (the issuer sent a new
/// expiry date) shows its new date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_webhooks_keep_the_mirror_in_step_with_stripe() {
    let app = TestApp::builder()
        .with_stripe()
        .with_workers()
        .start()
        .await;
    let ada = app.sign_up("Ada").await;
    let ws = ada.own_workspace.clone();
    let customer = subscribe(&app, &ada, &ws, "GROWTH").await;
    let old = save_card(&app, &customer, 1, 2027).await;
    wait_for_cards(&app, &ada, &ws, |cards| cards.len() == 2).await;

    // Detached in the dashboard.
    stripe_post(&format!("payment_methods/{old}/detach"), &[]).await;
    announce(&app, "payment_method.detached", &old).await;
    let left = wait_for_cards(&app, &ada, &ws, |cards| cards.len() == 1).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_ne!(left[0]["id"], old.as_str());

    // The card updater: same card, new expiry.
    let card = left[0]["id"].as_str().expect("id").to_owned();
    stripe_post(
        &format!("payment_methods/{card}"),
        &[
            ("card[exp_month]", "3"),
            ("card[exp_year]", "2035"),
            ("card[last4]", "4242"),
            ("card[brand]", "visa"),
        ],
    )
    .await;
    announce(&app, "payment_method.automatically_updated", &card).await;
    let updated = wait_for_cards(&app, &ada, &ws, |cards| cards[0]["expYear"] == 2035).await;
    assert_eq!(
        updated,
        [
            json!({ "id": card, "brand": "visa", "last4": "4242", "expMonth": 3, "expYear": 2035,
                 "isDefault": true, "expired": false, "expiresSoon": false })
        ]
    );
}

/// Issue 16: nobody was told a card expired. The default card expires at the end of
/// December 2031; the scheduled scan runs (as the workers run it) on December 15th, then
/// on January 2nd, several times and concurrently: the Owner and Admin get one "expires
/// soon" and one "has expired" email each, Members and Viewers none. The card updater then
/// gives the card a new expiry: nothing more is sent for the old date, and the new date
/// is told about in its turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_and_admins_are_told_once_before_the_default_card_expires_and_once_after() {
    let app = TestApp::builder()
        .with_stripe()
        .with_workers()
        .start()
        .await;
    let team = app.team().await;
    let ws = team.workspace.clone();
    let customer = subscribe(&app, &team.owner, &ws, "GROWTH").await;
    let card = wait_for_cards(&app, &team.owner, &ws, |cards| cards.len() == 1).await[0]["id"]
        .as_str()
        .expect("the card")
        .to_owned();
    assert_eq!(customer_of(&app, &ws).await, customer);
    let db = worker_side(&app, None).await.db;
    let at = |y, m, d| {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0)
            .single()
            .expect("valid")
    };
    let told = |actor: &Actor, subject: &str| {
        app.mail
            .to(&actor.email)
            .iter()
            .filter(|m| m.subject().contains(subject))
            .count()
    };
    let everyone = |subject: &str| {
        [&team.owner, &team.admin, &team.member, &team.viewer].map(|a| told(a, subject))
    };

    assert_eq!(
        linkai::billing::cards::scan(&db, at(2031, 11, 15))
            .await
            .expect("scan"),
        0
    );
    let soon = at(2031, 12, 15);
    let (a, b) = tokio::join!(
        linkai::billing::cards::scan(&db, soon),
        linkai::billing::cards::scan(&db, soon)
    );
    assert_eq!(
        a.expect("scan") + b.expect("scan"),
        1,
        "one notice, whoever scans"
    );
    assert_eq!(
        linkai::billing::cards::scan(&db, soon).await.expect("scan"),
        0
    );
    app.mail
        .wait_until(
            |_| everyone("expires soon")[..2] == [1, 1],
            Duration::from_secs(20),
        )
        .await
        .expect("expires-soon emails");
    let email = app
        .mail
        .to(&team.owner.email)
        .into_iter()
        .find(|m| m.subject().contains("expires soon"))
        .expect("email");
    assert!(
        email
            .decoded
            .contains("Visa ending in 4242 (expires 12/2031)"),
        "{}",
        email.decoded
    );

    let after = at(2032, 1, 2);
    assert_eq!(
        linkai::billing::cards::scan(&db, after)
            .await
            .expect("scan"),
        1
    );
    assert_eq!(
        linkai::billing::cards::scan(&db, after)
            .await
            .expect("scan"),
        0
    );
    app.mail
        .wait_until(
            |_| everyone("has expired")[..2] == [1, 1],
            Duration::from_secs(20),
        )
        .await
        .expect("expired emails");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(everyone("expires soon"), [1, 1, 0, 0]);
    assert_eq!(everyone("has expired"), [1, 1, 0, 0]);

    // The card updater gives it a new date: the old date's notices no longer apply.
    stripe_post(
        &format!("payment_methods/{card}"),
        &[
            ("card[exp_month]", "6"),
            ("card[exp_year]", "2036"),
            ("card[last4]", "4242"),
            ("card[brand]", "visa"),
        ],
    )
    .await;
    announce(&app, "payment_method.automatically_updated", &card).await;
    wait_for_cards(&app, &team.owner, &ws, |cards| cards[0]["expYear"] == 2036).await;
    assert_eq!(
        linkai::billing::cards::scan(&db, after)
            .await
            .expect("scan"),
        0
    );
    assert_eq!(
        linkai::billing::cards::scan(&db, at(2036, 6, 10))
            .await
            .expect("scan"),
        1,
        "the new date is told about in its turn"
    );
}
