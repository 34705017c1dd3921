//! Never charge twice (issue 26): plan changes under races, retries and answers that never
//! came back, each checked from Stripe's side (the fake's own list), not the mirror's: at
//! most one live subscription per workspace, and every live one known to the database.

use std::time::Duration;

use serde_json::{json, Value};

use crate::billing::{add_card, stripe_get};
use crate::harness::{Actor, TestApp};
use crate::stripe_proxy::StripeProxy;

const SELECT: &str = "mutation($ws: ID!, $p: PlanId!, $k: String) {
  selectPlan(workspaceId: $ws, plan: $p, idempotencyKey: $k) { billing { status plan { id } } } }";

/// Gives `actor`'s own workspace a customer and a default card; answers the customer.
async fn with_card(app: &TestApp, actor: &Actor) -> String {
    crate::billing::with_card(app, actor, &actor.own_workspace).await
}

/// The customer's subscriptions that are not over, as Stripe lists them.
pub async fn live_in_stripe(customer: &str) -> Vec<Value> {
    let all = stripe_get(&format!(
        "subscriptions?customer={customer}&status=all&limit=100"
    ))
    .await;
    all["data"]
        .as_array()
        .expect("a list")
        .iter()
        .filter(|s| {
            !["canceled", "incomplete_expired"].contains(&s["status"].as_str().unwrap_or(""))
        })
        .cloned()
        .collect()
}

/// The subscription the database mirrors for the workspace.
async fn mirrored(app: &TestApp, workspace: &str) -> Option<String> {
    #[derive(diesel::QueryableByName)]
    struct Mirrored {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        subscription_id: Option<String>,
    }
    let mut conn = app.db.conn().await;
    let row: Mirrored = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query(format!(
            "SELECT subscription_id FROM billing_accounts WHERE workspace_id = '{workspace}'"
        )),
        &mut conn,
    )
    .await
    .expect("an account");
    row.subscription_id
}

/// What Stripe shows, as the tests check it: exactly one live subscription, and it is the
/// one the database knows.
async fn assert_one_known(app: &TestApp, actor: &Actor, customer: &str) -> Value {
    let live = live_in_stripe(customer).await;
    assert_eq!(live.len(), 1, "live in Stripe: {live:#?}");
    let known = mirrored(app, &actor.own_workspace).await;
    assert_eq!(known.as_deref(), live[0]["id"].as_str(), "the mirror");
    live[0].clone()
}

fn select(actor: &Actor, plan: &str, key: Option<&str>) -> Value {
    json!({ "ws": actor.own_workspace, "p": plan, "k": key })
}

/// Before: 4 `selectPlan` at once left 2, then 4 live subscriptions. Now 8 at once, over
/// three plans, run one at a time: the others are CONFLICT, and Stripe holds one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_plan_choices_at_once_leave_one_live_subscription() {
    let app = TestApp::builder().with_stripe().start().await;
    let ada = app.sign_up("Ada").await;
    let customer = with_card(&app, &ada).await;
    let plans = ["STARTER", "GROWTH", "SCALE"];
    let choices = (0..8).map(|i| app.gql(ada.token(), SELECT, select(&ada, plans[i % 3], None)));
    let answers = futures::future::join_all(choices).await;
    let mut chosen = 0;
    for res in &answers {
        match res.code() {
            None => chosen += 1,
            Some("CONFLICT") => {}
            other => panic!("{other:?}: {:#}", res.body),
        }
    }
    assert!(chosen >= 1);
    assert_one_known(&app, &ada, &customer).await;
}

/// Waits out an operation's lease: the same request answers CONFLICT while the request
/// that died may still be running it, then goes through.
async fn after_the_lease(app: &TestApp, actor: &Actor, vars: Value) -> crate::harness::Gql {
    for _ in 0..60 {
        let res = app.gql(actor.token(), SELECT, vars.clone()).await;
        if res.code() != Some("CONFLICT") {
            return res;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("still CONFLICT after a minute");
}

/// The replay: Stripe made the subscription but its answer came after the request
/// timed out (a crash between Stripe's call and the commit looks the same from here), and
/// the request answered SERVICE_UNAVAILABLE. Before, its retry made a second live
/// subscription. Now, while the dead request's lease runs, anything else is CONFLICT; then
/// the retry with the same key finds what its first attempt made (by the operation in its
/// metadata) and a new request decides from Stripe's list: one live subscription, known.
/// Both with the fake as it is (no replay of idempotency keys) and with a proxy replaying
/// them as Stripe does; the retry always comes in a later minute than the first attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_choice_whose_answer_came_too_late_is_finished_by_the_next_one() {
    let (keyed, fresh) = tokio::join!(answer_too_late(false, true), answer_too_late(true, false));
    // The same key again, now settled, answers as before and makes nothing.
    let (app, ada, customer, key, _proxy) = keyed;
    let before = assert_one_known(&app, &ada, &customer).await;
    let again = app
        .gql(ada.token(), SELECT, select(&ada, "GROWTH", Some(&key)))
        .await;
    again.data("selectPlan");
    assert_eq!(
        assert_one_known(&app, &ada, &customer).await["id"],
        before["id"]
    );
    drop(fresh);
}

/// One run of the too-late answer: `replay` as Stripe does; the retry carries the first
/// request's key (`same_key`) or is a new request.
async fn answer_too_late(
    replay: bool,
    same_key: bool,
) -> (TestApp, Actor, String, String, StripeProxy) {
    let proxy = StripeProxy::start(replay).await;
    let app = TestApp::builder()
        .with_stripe_proxy(&proxy)
        .with_env("HTTP_REQUEST_TIMEOUT_SECS", "2")
        .start()
        .await;
    let ada = app.sign_up("Ada").await;
    let customer = with_card(&app, &ada).await;
    let key = uuid::Uuid::new_v4().to_string();
    proxy.hold("POST", "/v1/subscriptions", 1, Duration::from_secs(4));
    let first_minute = chrono::Utc::now().timestamp() / 60;
    let first = app
        .gql(ada.token(), SELECT, select(&ada, "GROWTH", Some(&key)))
        .await;
    first.assert_code("SERVICE_UNAVAILABLE");
    // Stripe has it; the database does not know it yet.
    assert_eq!(live_in_stripe(&customer).await.len(), 1);
    assert_eq!(mirrored(&app, &ada.own_workspace).await, None);
    // Never two runners: the same request, or another, waits for the lease.
    app.gql(ada.token(), SELECT, select(&ada, "GROWTH", Some(&key)))
        .await
        .assert_code("CONFLICT");
    // The retry crosses a minute boundary (the old key held the minute, so a retry in the
    // next one bought again).
    while chrono::Utc::now().timestamp() / 60 == first_minute {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let retry = select(&ada, "GROWTH", same_key.then_some(key.as_str()));
    let res = after_the_lease(&app, &ada, retry).await;
    assert_eq!(
        res.data("selectPlan")["billing"]["plan"]["id"],
        "GROWTH",
        "{:#}",
        res.body
    );
    assert_one_known(&app, &ada, &customer).await;
    let creates: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|seen| seen.method == "POST" && seen.path == "/v1/subscriptions")
        .collect();
    assert_eq!(creates.len(), 1, "the retry made nothing new");
    let sent = creates[0].idempotency_key.as_deref().unwrap_or_default();
    // The operation's key for this attempt (a resumed attempt sends its own).
    assert!(
        sent.starts_with("op-") && sent.contains("-create-"),
        "{sent}"
    );
    (app, ada, customer, key, proxy)
}

/// A key names one request: the same key for another plan is BAD_USER_INPUT, as is a key
/// that is not printable ASCII; a plan chosen again with a new key changes the plan on the
/// same subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_names_one_request() {
    let app = TestApp::builder().with_stripe().start().await;
    let ada = app.sign_up("Ada").await;
    let customer = with_card(&app, &ada).await;
    app.gql(
        ada.token(),
        SELECT,
        select(&ada, "STARTER", Some("click-1")),
    )
    .await
    .data("selectPlan");
    let first = assert_one_known(&app, &ada, &customer).await;
    let reused = app
        .gql(ada.token(), SELECT, select(&ada, "SCALE", Some("click-1")))
        .await;
    reused.assert_code("BAD_USER_INPUT");
    for bad in ["", "two words", &"k".repeat(256)] {
        app.gql(ada.token(), SELECT, select(&ada, "SCALE", Some(bad)))
            .await
            .assert_code("BAD_USER_INPUT");
    }
    let changed = app
        .gql(ada.token(), SELECT, select(&ada, "SCALE", Some("click-2")))
        .await;
    assert_eq!(changed.data("selectPlan")["billing"]["plan"]["id"], "SCALE");
    let after = assert_one_known(&app, &ada, &customer).await;
    assert_eq!(
        after["id"], first["id"],
        "the plan changed on the same subscription"
    );
}

/// Every call the server and the workers make to Stripe names the pinned API version (the
/// proxy every test app sits behind refuses one that does not: this shows what it saw).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stripe_call_names_the_pinned_api_version() {
    let proxy = StripeProxy::start(false).await;
    let app = TestApp::builder()
        .with_stripe_proxy(&proxy)
        .with_workers()
        .start()
        .await;
    let ada = app.sign_up("Ada").await;
    with_card(&app, &ada).await;
    app.gql(ada.token(), SELECT, select(&ada, "STARTER", None))
        .await
        .data("selectPlan");
    let seen = proxy.seen();
    assert!(seen.len() >= 5, "{seen:#?}");
    for call in &seen {
        assert_eq!(
            call.stripe_version.as_deref(),
            Some(linkai::billing::transport::API_VERSION),
            "{call:?}"
        );
    }
}

/// Issue 26, "choosing again can cancel a paid subscription": the first payment waited on
/// 3-D Secure; the customer completed it in the browser, and before Stripe's webhook
/// arrived the admin chose again. Replacing was decided from the mirror (still INCOMPLETE),
/// so the paid subscription was cancelled and another charged. Now it is decided from
/// Stripe, where the subscription is active: its plan changes, nothing is cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn choosing_again_right_after_3d_secure_keeps_the_paid_subscription() {
    let app = TestApp::builder().with_stripe().start().await;
    let ada = app.sign_up("Ada").await;
    crate::billing::lapse_trial(&app, &ada.own_workspace).await;
    let customer = with_card(&app, &ada).await;
    crate::billing::set_card(&app, &ada, &customer, "4000002760003184").await;
    let select_3ds = "mutation($ws: ID!, $p: PlanId!) { selectPlan(workspaceId: $ws, plan: $p) {
      billing { status } requiresAction { clientSecret } } }";
    let waiting = app
        .gql(ada.token(), select_3ds, select(&ada, "STARTER", None))
        .await;
    let waiting = waiting.data("selectPlan");
    assert_eq!(waiting["billing"]["status"], "INCOMPLETE");
    let secret = waiting["requiresAction"]["clientSecret"]
        .as_str()
        .expect("a client secret")
        .to_owned();
    // stripe.confirmCardPayment in the browser; no webhook reaches us (no workers).
    let intent = secret.split("_secret").next().expect("intent id");
    crate::billing::stripe_post(
        &format!("payment_intents/{intent}/_authenticate"),
        &[("client_secret", &secret), ("success", "true")],
    )
    .await;
    let paid = assert_one_known(&app, &ada, &customer).await;
    assert_eq!(paid["status"], "active");

    let again = app
        .gql(ada.token(), SELECT, select(&ada, "GROWTH", None))
        .await;
    assert_eq!(again.data("selectPlan")["billing"]["plan"]["id"], "GROWTH");
    let kept = assert_one_known(&app, &ada, &customer).await;
    assert_eq!(kept["id"], paid["id"], "the paid subscription is kept");
    assert_eq!(kept["status"], "active");
}

/// Delivers a Stripe event that makes the workers re-read the workspace from Stripe.
async fn announce_invoice_paid(app: &TestApp, customer: &str) {
    let event = json!({
        "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
        "type": "invoice.paid",
        "data": { "object": { "object": "invoice", "customer": customer } },
    })
    .to_string();
    let signature = crate::webhooks::signed(&event);
    assert_eq!(crate::webhooks::deliver(app, &event, signature).await, 200);
}

/// Waits until the mirror holds `expected` (the workers' sync runs after a webhook).
async fn wait_for_mirror(app: &TestApp, actor: &Actor, expected: Option<&str>) {
    for _ in 0..100 {
        if mirrored(app, &actor.own_workspace).await.as_deref() == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the mirror never held {expected:?}");
}

/// The audit events of `action` in the workspace, newest first: their `changes`.
async fn audited(app: &TestApp, workspace: &str, action: &str) -> Vec<Value> {
    #[derive(diesel::QueryableByName)]
    struct Changes {
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        changes: Value,
    }
    let mut conn = app.db.conn().await;
    let rows: Vec<Changes> = diesel_async::RunQueryDsl::load(
        diesel::sql_query(format!(
            "SELECT changes FROM audit_events WHERE workspace_id = '{workspace}' \
             AND action = '{action}' ORDER BY at DESC"
        )),
        &mut conn,
    )
    .await
    .expect("events");
    rows.into_iter().map(|row| row.changes).collect()
}

/// Issue 26: "a live subscription carrying the workspace's id, which the database did not
/// know, stayed unknown through reconciliation". A plan choice whose answer was lost, and
/// never retried: once its lease ends, the next sync finds the subscription in Stripe's
/// list and adopts it, with an audit event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_stripe_has_and_we_do_not_is_adopted() {
    let proxy = StripeProxy::start(false).await;
    let app = TestApp::builder()
        .with_stripe_proxy(&proxy)
        .with_workers()
        .with_env("HTTP_REQUEST_TIMEOUT_SECS", "2")
        .start()
        .await;
    let ada = app.sign_up("Ada").await;
    let customer = with_card(&app, &ada).await;
    proxy.hold("POST", "/v1/subscriptions", 1, Duration::from_secs(4));
    app.gql(ada.token(), SELECT, select(&ada, "GROWTH", None))
        .await
        .assert_code("SERVICE_UNAVAILABLE");
    let lost = live_in_stripe(&customer).await;
    assert_eq!(lost.len(), 1);
    assert_eq!(
        lost[0]["metadata"]["workspace_id"],
        ada.own_workspace.as_str()
    );
    assert_eq!(mirrored(&app, &ada.own_workspace).await, None);
    // After the lease, the workers' sync (here after a webhook) adopts it.
    tokio::time::sleep(Duration::from_secs(18)).await;
    announce_invoice_paid(&app, &customer).await;
    wait_for_mirror(&app, &ada, lost[0]["id"].as_str()).await;
    assert_one_known(&app, &ada, &customer).await;
    let adopted = audited(&app, &ada.own_workspace, "billing.subscription_adopted").await;
    assert_eq!(adopted.len(), 1, "{adopted:#?}");
    assert_eq!(adopted[0]["replaced"], Value::Null);
}

/// Two live subscriptions, whatever made them (here one made behind our back): the next
/// sync keeps the one the workspace holds, cancels the other at once and refunds what it
/// charged, and says so in the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_subscription_is_ended_and_refunded() {
    let app = TestApp::builder()
        .with_stripe()
        .with_workers()
        .start()
        .await;
    let ada = app.sign_up("Ada").await;
    crate::billing::lapse_trial(&app, &ada.own_workspace).await;
    let customer = with_card(&app, &ada).await;
    app.gql(ada.token(), SELECT, select(&ada, "STARTER", None))
        .await
        .data("selectPlan");
    let kept = assert_one_known(&app, &ada, &customer).await;
    let plan = kept["items"]["data"][0]["plan"]["id"]
        .as_str()
        .expect("a plan");
    let duplicate = crate::billing::stripe_post(
        "subscriptions",
        &[
            ("customer", &customer),
            ("items[0][plan]", plan),
            ("metadata[workspace_id]", &ada.own_workspace),
        ],
    )
    .await;
    assert_eq!(duplicate["status"], "active", "{duplicate:#}");
    assert_eq!(live_in_stripe(&customer).await.len(), 2);

    announce_invoice_paid(&app, &customer).await;
    for _ in 0..100 {
        if live_in_stripe(&customer).await.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        assert_one_known(&app, &ada, &customer).await["id"],
        kept["id"]
    );
    let ended = stripe_get(&format!(
        "subscriptions/{}",
        duplicate["id"].as_str().expect("id")
    ))
    .await;
    assert_eq!(ended["status"], "canceled");
    let adopted = audited(&app, &ada.own_workspace, "billing.subscription_adopted").await;
    assert_eq!(adopted.len(), 1, "{adopted:#?}");
    assert_eq!(adopted[0]["ended"], json!([duplicate["id"]]));
    assert_eq!(adopted[0]["refunded"].as_array().map(Vec::len), Some(1));
}

/// Issue 26: a sync read the subscription, slowly; a plan change landed meanwhile; the
/// sync's older copy then overwrote the newer mirror. Now a write older than the state the
/// mirror holds changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sync_never_overwrites_a_newer_plan_change() {
    let proxy = StripeProxy::start(false).await;
    let app = TestApp::builder()
        .with_stripe_proxy(&proxy)
        .with_workers()
        .start()
        .await;
    let ada = app.sign_up("Ada").await;
    let customer = with_card(&app, &ada).await;
    app.gql(ada.token(), SELECT, select(&ada, "STARTER", None))
        .await
        .data("selectPlan");
    // The sync's read of the subscriptions is answered 4 s late, with the old plan.
    let lists = "GET /v1/subscriptions";
    let before = proxy.count(lists);
    proxy.hold("GET", "/v1/subscriptions", 1, Duration::from_secs(4));
    announce_invoice_paid(&app, &customer).await;
    for _ in 0..100 {
        if proxy.count(lists) > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let changed = app
        .gql(ada.token(), SELECT, select(&ada, "GROWTH", None))
        .await;
    assert_eq!(
        changed.data("selectPlan")["billing"]["plan"]["id"],
        "GROWTH"
    );
    // The held read lands, then the sync writes what it can.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let plan = app
        .gql(
            ada.token(),
            "query($ws: ID!) { workspace(id: $ws) { billing { plan { id } } } }",
            json!({ "ws": ada.own_workspace }),
        )
        .await;
    assert_eq!(plan.data("workspace")["billing"]["plan"]["id"], "GROWTH");
    assert_one_known(&app, &ada, &customer).await;
}

/// Issue 26: "Stripe calls have no timeout": a hung Stripe hung the request or job for
/// good. Now each attempt is abandoned after `STRIPE_TIMEOUT_SECS` and a repeatable call is
/// tried again, three times at most, then answered SERVICE_UNAVAILABLE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_stripe_is_abandoned_and_retried_a_bounded_number_of_times() {
    let proxy = StripeProxy::start(false).await;
    let app = TestApp::builder()
        .with_stripe_proxy(&proxy)
        .with_env("STRIPE_TIMEOUT_SECS", "1")
        .start()
        .await;
    let ada = app.sign_up("Ada").await;
    let customer = with_card(&app, &ada).await;
    let reads = format!("GET /v1/customers/{customer}");
    let before = proxy.count(&reads);
    // Stripe takes the calls and never answers in time.
    proxy.hold(
        "GET",
        &format!("/v1/customers/{customer}"),
        10,
        Duration::from_secs(60),
    );
    let res = app
        .gql(ada.token(), SELECT, select(&ada, "STARTER", None))
        .await;
    res.assert_code("SERVICE_UNAVAILABLE");
    assert_eq!(
        proxy.count(&reads) - before,
        3,
        "three attempts, each abandoned"
    );
    assert!(
        live_in_stripe(&customer).await.is_empty(),
        "nothing was bought"
    );
}

/// Issue 26: cards past the tenth (Stripe's default page) vanished from the mirror. All
/// twelve are listed now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_saved_card_is_mirrored_past_one_page() {
    let app = TestApp::builder().with_stripe().start().await;
    let ada = app.sign_up("Ada").await;
    let customer = with_card(&app, &ada).await;
    for _ in 0..11 {
        add_card(&customer).await;
    }
    let cards = "query($ws: ID!) { workspace(id: $ws) { billing { paymentMethods { id } } } }";
    let first = app
        .gql(ada.token(), cards, json!({ "ws": ada.own_workspace }))
        .await;
    let any = first.data("workspace")["billing"]["paymentMethods"][0]["id"].clone();
    // A card change re-reads the cards from Stripe.
    app.gql(
        ada.token(),
        "mutation($ws: ID!, $pm: String!) { setDefaultPaymentMethod(workspaceId: $ws, paymentMethodId: $pm) { status } }",
        json!({ "ws": ada.own_workspace, "pm": any }),
    )
    .await
    .data("setDefaultPaymentMethod");
    let listed = app
        .gql(ada.token(), cards, json!({ "ws": ada.own_workspace }))
        .await;
    let listed = listed.data("workspace")["billing"]["paymentMethods"]
        .as_array()
        .map(Vec::len);
    assert_eq!(listed, Some(12));
}

/// Only our own subscriptions are weighed: one made by hand in Stripe's dashboard (no
/// workspace in its metadata) is neither ended nor adopted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_made_by_hand_in_stripe_is_left_alone() {
    let app = TestApp::builder()
        .with_stripe()
        .with_workers()
        .start()
        .await;
    let ada = app.sign_up("Ada").await;
    let customer = with_card(&app, &ada).await;
    app.gql(ada.token(), SELECT, select(&ada, "STARTER", None))
        .await
        .data("selectPlan");
    let ours = assert_one_known(&app, &ada, &customer).await;
    let plan = ours["items"]["data"][0]["plan"]["id"]
        .as_str()
        .expect("a plan");
    let by_hand = crate::billing::stripe_post(
        "subscriptions",
        &[("customer", &customer), ("items[0][plan]", plan)],
    )
    .await;
    announce_invoice_paid(&app, &customer).await;
    // The sync has run once its job's invoices are mirrored; give it time to (not) act.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(live_in_stripe(&customer).await.len(), 2);
    assert_eq!(
        mirrored(&app, &ada.own_workspace).await.as_deref(),
        ours["id"].as_str()
    );
    let hand = stripe_get(&format!(
        "subscriptions/{}",
        by_hand["id"].as_str().expect("id")
    ))
    .await;
    assert_eq!(hand["status"], "active");
}

/// A worker-side app whose Stripe is `proxy`, each attempt abandoned after a second, with
/// a pool of one connection: a sync holding it across a Stripe call would starve the rest.
fn worker_through(app: &TestApp, proxy: &StripeProxy) -> linkai::App {
    let settings = [
        ("DATABASE_POOL_SIZE", "1".to_owned()),
        ("DATABASE_POOL_WAIT_MS", "900".to_owned()),
        ("STRIPE_TIMEOUT_SECS", "1".to_owned()),
    ];
    crate::cards::worker_side_with(app, &proxy.url, &settings)
}

/// Issue 26: "Jobs hold a pooled connection across Stripe calls … Reconciliation stops
/// behind the hung round." Three billed workspaces; Stripe hangs on the second's customer.
/// The round goes on past it (the others are synced, it is counted failed), while it hangs
/// the worker's only connection stays free for anyone else, and the next round takes the
/// one it could not sync first. A round past its deadline starts nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_goes_on_past_a_hung_workspace_and_holds_no_connection_meanwhile() {
    let proxy = StripeProxy::start(false).await;
    let app = TestApp::builder().with_stripe_proxy(&proxy).start().await;
    let mut customers = Vec::new();
    let mut actors = Vec::new();
    for name in ["Ada", "Bob", "Cy"] {
        let actor = app.sign_up(name).await;
        customers.push(with_card(&app, &actor).await);
        actors.push(actor);
    }
    let hung = &customers[1];
    proxy.hold(
        "GET",
        &format!("/v1/customers/{hung}"),
        10,
        Duration::from_secs(60),
    );
    let worker = worker_through(&app, &proxy);
    let stripe = worker.stripe.clone().expect("stripe");
    let round = {
        let (db, stripe) = (worker.db.clone(), stripe.clone());
        tokio::spawn(async move {
            linkai::billing::sync::reconcile(&db, &stripe, Duration::from_secs(60)).await
        })
    };
    // While Stripe hangs, the one connection is free within the pool's wait, again and
    // again.
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < until && !round.is_finished() {
        let conn = worker.db.conn().await;
        assert!(
            conn.is_ok(),
            "the pool's only connection is held: {:?}",
            conn.err()
        );
        drop(conn);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let done = round.await.expect("joined").expect("reconciled");
    assert_eq!(
        (done.synced, done.failed, done.left),
        (2, 1, 0),
        "the others synced, the hung one failed"
    );
    #[derive(diesel::QueryableByName)]
    struct Next {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        workspace_id: uuid::Uuid,
    }
    let mut conn = app.db.conn().await;
    let next: Vec<Next> = diesel_async::RunQueryDsl::load(
        diesel::sql_query("SELECT workspaces_with_billing() AS workspace_id"),
        &mut conn,
    )
    .await
    .expect("listed");
    assert_eq!(
        next[0].workspace_id.to_string(),
        actors[1].own_workspace,
        "the workspace left out goes first next round"
    );
    let late = linkai::billing::sync::reconcile(&worker.db, &stripe, Duration::ZERO)
        .await
        .expect("a round past its deadline");
    assert_eq!((late.synced, late.left), (0, 3));
}
