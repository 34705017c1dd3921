//! A deleted workspace's life (issue 24): its Owner restores it within the window with its
//! plan; after the window a worker's round purges every row of it, found from the catalog,
//! and its Stripe customer, leaving one record outside it.

use std::collections::BTreeMap;
use std::time::Duration;

use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{json, Value};

use crate::billing::{stripe_get, subscribe};
use crate::billing_faults::live_in_stripe;
use crate::harness::{stripe_fake, Actor, TestApp, STRIPE_KEY};
use crate::processes;

const DELETE: &str = "mutation($ws: ID!) { deleteWorkspace(workspaceId: $ws) }";
const RESTORE: &str =
    "mutation($ws: ID!) { restoreWorkspace(workspaceId: $ws) { id name viewerRole } }";
const BILLING: &str =
    "query($ws: ID!) { workspace(id: $ws) { billing { plan { id } status cancelAtPeriodEnd } } }";

pub async fn sql_bool(conn: &mut AsyncPgConnection, query: &str) -> bool {
    #[derive(diesel::QueryableByName)]
    struct Answer {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        yes: bool,
    }
    let answer: Answer = diesel::sql_query(format!("SELECT ({query}) AS yes"))
        .get_result(conn)
        .await
        .unwrap_or_else(|err| panic!("{query}: {err}"));
    answer.yes
}

/// Polls `query` (a boolean SQL expression) until it holds, for up to 30 s.
pub async fn until(app: &TestApp, query: &str) {
    let mut conn = app.db.conn().await;
    for _ in 0..300 {
        if sql_bool(&mut conn, query).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never true: {query}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_restores_a_deleted_workspace_with_its_plan_within_the_window() {
    let app = TestApp::builder()
        .with_stripe()
        .with_workers()
        .start()
        .await;
    let team = app.team().await;
    let ws = team.workspace.clone();
    subscribe(&app, &team.owner, &ws, "GROWTH").await;
    app.gql(team.owner.token(), DELETE, json!({ "ws": ws }))
        .await
        .data("deleteWorkspace");
    app.gql(team.owner.token(), BILLING, json!({ "ws": ws }))
        .await
        .assert_code("NOT_FOUND");
    // The paid month runs out, and no further one is charged.
    until(
        &app,
        &format!("SELECT cancel_at_period_end AND ended_by_deletion FROM billing_accounts WHERE workspace_id = '{ws}'"),
    )
    .await;

    for other in [&team.admin, &team.member, &team.stranger] {
        app.gql(other.token(), RESTORE, json!({ "ws": ws }))
            .await
            .assert_code("NOT_FOUND");
    }
    let restored = app
        .gql(team.owner.token(), RESTORE, json!({ "ws": ws }))
        .await;
    assert_eq!(restored.data("restoreWorkspace")["viewerRole"], "OWNER");
    assert_eq!(restored.data("restoreWorkspace")["id"], ws);
    // Its members are back with it, and the plan goes on.
    let billing = app
        .gql(team.admin.token(), BILLING, json!({ "ws": ws }))
        .await;
    assert_eq!(billing.data("workspace")["billing"]["plan"]["id"], "GROWTH");
    until(
        &app,
        &format!("SELECT NOT cancel_at_period_end AND NOT ended_by_deletion FROM billing_accounts WHERE workspace_id = '{ws}'"),
    )
    .await;
    let log = app
        .gql(
            team.owner.token(),
            "query($ws: ID!) { workspace(id: $ws) { auditLog(first: 3) { edges { node { action actorId } } } } }",
            json!({ "ws": ws }),
        )
        .await;
    let newest = &log.data("workspace")["auditLog"]["edges"][0]["node"];
    assert_eq!(newest["action"], "WORKSPACE_RESTORED");
    assert_eq!(newest["actorId"], team.owner.id);
    // Restoring a live workspace finds nothing to restore.
    app.gql(team.owner.token(), RESTORE, json!({ "ws": ws }))
        .await
        .assert_code("NOT_FOUND");

    // Past the window (30 days), it stays deleted.
    app.gql(team.owner.token(), DELETE, json!({ "ws": ws }))
        .await
        .data("deleteWorkspace");
    diesel::sql_query(format!(
        "UPDATE workspaces SET deleted_at = now() - interval '30 days 1 minute' WHERE id = '{ws}'"
    ))
    .execute(&mut app.db.conn().await)
    .await
    .expect("a month ago");
    app.gql(team.owner.token(), RESTORE, json!({ "ws": ws }))
        .await
        .assert_code("NOT_FOUND");
}

/// Rows in each table with a `workspace_id` column, for `workspace` (from the catalog: a
/// table added later is counted without editing this).
async fn rows_by_table(conn: &mut AsyncPgConnection, workspace: &str) -> BTreeMap<String, i64> {
    #[derive(diesel::QueryableByName)]
    struct Table {
        #[diesel(sql_type = Text)]
        name: String,
    }
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let tables: Vec<Table> = diesel::sql_query(
        "SELECT c.relname AS name FROM pg_class c
         JOIN pg_namespace s ON s.oid = c.relnamespace AND s.nspname = 'public'
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'workspace_id' AND NOT a.attisdropped
         WHERE c.relkind IN ('r', 'p') ORDER BY 1",
    )
    .load(conn)
    .await
    .expect("catalog");
    let mut rows = BTreeMap::new();
    for table in tables {
        let count: Count = diesel::sql_query(format!(
            "SELECT count(*) AS n FROM {} WHERE workspace_id = '{workspace}'",
            table.name
        ))
        .get_result(conn)
        .await
        .expect("count");
        rows.insert(table.name, count.n);
    }
    let own: Count = diesel::sql_query(format!(
        "SELECT count(*) AS n FROM workspaces WHERE id = '{workspace}'"
    ))
    .get_result(conn)
    .await
    .expect("count");
    rows.insert("workspaces".into(), own.n);
    rows
}

/// A workspace with something in most of its tables: members, an invitation, a plan with
/// its card and invoice, an agent and a contact, a conversation with messages, usage
/// (`exports::converse`).
async fn fill(app: &TestApp, owner: &Actor, ws: &str, member: &Actor) -> String {
    app.add_member(ws, member, "member").await;
    app.invite(owner, ws, &format!("guest-{ws}@example.com"), "VIEWER")
        .await;
    let customer = subscribe(app, owner, ws, "STARTER").await;
    crate::exports::converse(app, owner, ws).await;
    customer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_leaves_no_row_of_the_workspace_in_any_table_and_nothing_of_others_goes() {
    let app = TestApp::builder().with_stripe().start().await;
    let ada = app.sign_up("Ada").await;
    let bob = app.sign_up("Bob").await;
    let cy = app.sign_up("Cy").await;
    let gone = ada.own_workspace.clone();
    let kept = bob.own_workspace.clone();
    let customer = fill(&app, &ada, &gone, &cy).await;
    fill(&app, &bob, &kept, &cy).await;
    // Cy's own workspace goes with the account, as `deleteAccount` deletes it.
    let cys = cy.own_workspace.clone();
    app.gql(
        cy.token(),
        "mutation($p: String!) { deleteAccount(password: $p) }",
        json!({ "p": crate::harness::PASSWORD }),
    )
    .await
    .data("deleteAccount");
    app.gql(ada.token(), DELETE, json!({ "ws": gone }))
        .await
        .data("deleteWorkspace");
    // Deleted yesterday: still restorable, so no purge touches it.
    let recent = app.create_workspace(&bob, "Recent").await;
    app.gql(bob.token(), DELETE, json!({ "ws": recent }))
        .await
        .data("deleteWorkspace");

    let mut conn = app.db.conn().await;
    let before = rows_by_table(&mut conn, &gone).await;
    let filled: Vec<_> = before
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(t, _)| t)
        .collect();
    assert!(filled.len() >= 12, "the workspace has rows in {filled:?}");
    let others_before = rows_by_table(&mut conn, &kept).await;
    let recent_before = rows_by_table(&mut conn, &recent).await;
    // Within the window nothing is purged; past it, the next round purges both.
    diesel::sql_query(format!(
        "UPDATE workspaces SET deleted_at = now() - interval '31 days' WHERE id IN ('{gone}', '{cys}')"
    ))
    .execute(&mut conn)
    .await
    .expect("a month ago");
    // A worker without Stripe purges the workspace that had no customer, and leaves the one
    // whose customer it could not delete.
    let mut unbilled =
        processes::worker(&app, "purger-without-stripe", &[("TRIAL_SCAN_SECS", "1")]);
    until(
        &app,
        &format!("SELECT count(*) = 1 FROM purged_workspaces WHERE id = '{cys}'"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    unbilled.kill().await;
    assert!(
        sql_bool(
            &mut conn,
            &format!("SELECT count(*) = 0 FROM purged_workspaces WHERE id = '{gone}'")
        )
        .await
    );
    let stripe = stripe_fake().await;
    let _worker = processes::worker(
        &app,
        "purger",
        &[
            ("TRIAL_SCAN_SECS", "1"),
            ("STRIPE_SECRET_KEY", STRIPE_KEY),
            ("STRIPE_API_BASE", stripe),
        ],
    );
    until(
        &app,
        &format!("SELECT count(*) = 2 FROM purged_workspaces WHERE id IN ('{gone}', '{cys}')"),
    )
    .await;

    for workspace in [&gone, &cys] {
        let left: Vec<_> = rows_by_table(&mut conn, workspace)
            .await
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect();
        assert!(left.is_empty(), "rows of {workspace} left: {left:?}");
    }
    assert_eq!(rows_by_table(&mut conn, &kept).await, others_before);
    assert_eq!(rows_by_table(&mut conn, &recent).await, recent_before);
    // Its jobs waiting in the outbox went with it.
    assert!(
        sql_bool(
            &mut conn,
            &format!("SELECT count(*) = 0 FROM outbox WHERE job ->> 'workspace_id' = '{gone}'")
        )
        .await
    );
    assert!(
        sql_bool(
            &mut conn,
            &format!("SELECT rows_deleted > 0 FROM purged_workspaces WHERE id = '{gone}'")
        )
        .await
    );
    // Its Stripe customer is gone too.
    let deleted = stripe_get(&format!("customers/{customer}")).await;
    assert!(
        deleted["deleted"] == true || deleted["error"].is_object(),
        "{deleted}"
    );
    // Stripe's event about that deletion arrives after the purge: recorded, scrubbed.
    let event = json!({
        "id": "evt_after_the_purge", "object": "event", "type": "customer.deleted",
        "created": chrono::Utc::now().timestamp(),
        "data": { "object": { "object": "customer", "id": customer, "email": "ada@example.com" } },
    })
    .to_string();
    let status = app
        .client()
        .post(format!("{}/webhooks/stripe", app.base_url))
        .header(
            "stripe-signature",
            crate::webhooks::signed(&event).expect("signed"),
        )
        .body(event)
        .send()
        .await
        .expect("delivered")
        .status();
    assert_eq!(status, 200);
    assert!(
        sql_bool(
            &mut conn,
            "SELECT payload = '{\"id\": \"evt_after_the_purge\", \"type\": \"customer.deleted\", \"scrubbed\": true}'::jsonb FROM stripe_events WHERE id = 'evt_after_the_purge'"
        )
        .await
    );
}

/// Waits until the workers have taken every job queued so far, and a little more for the
/// last one to finish.
async fn jobs_done(app: &TestApp) {
    until(app, "SELECT count(*) = 0 FROM outbox").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owners_own_cancellation_outlives_a_delete_and_a_restore() {
    let app = TestApp::builder()
        .with_stripe()
        .with_workers()
        .start()
        .await;
    let ada = app.sign_up("Ada").await;
    let ws = ada.own_workspace.clone();
    let customer = subscribe(&app, &ada, &ws, "STARTER").await;
    let cancelled = app
        .gql(
            ada.token(),
            "mutation($ws: ID!) { cancelSubscription(workspaceId: $ws) { cancelAtPeriodEnd } }",
            json!({ "ws": ws }),
        )
        .await;
    assert_eq!(
        cancelled.data("cancelSubscription")["cancelAtPeriodEnd"],
        true
    );
    app.gql(ada.token(), DELETE, json!({ "ws": ws }))
        .await
        .data("deleteWorkspace");
    jobs_done(&app).await;
    app.gql(ada.token(), RESTORE, json!({ "ws": ws }))
        .await
        .data("restoreWorkspace");
    jobs_done(&app).await;
    // The deletion did not set the cancellation, so the restore does not undo it.
    let billing = app.gql(ada.token(), BILLING, json!({ "ws": ws })).await;
    assert_eq!(
        billing.data("workspace")["billing"]["cancelAtPeriodEnd"],
        true
    );
    let listed = stripe_get(&format!("subscriptions?customer={customer}")).await;
    let live: Vec<&Value> = listed["data"]
        .as_array()
        .expect("subscriptions")
        .iter()
        .filter(|s| s["status"] != "canceled")
        .collect();
    assert_eq!(live.len(), 1, "{listed}");
    assert_eq!(live[0]["cancel_at_period_end"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_restores_only_a_workspace_it_reaches_and_a_read_only_one_none() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let ws = ada.own_workspace.clone();
    let second = app.create_workspace(&ada, "Second").await;
    let token = |scope: Option<&str>, read_only: bool| {
        let app = &app;
        let ada = &ada;
        let scope = scope.map(|ws| vec![ws.to_owned()]);
        async move {
            app.gql(
                ada.token(),
                "mutation($s: [ID!], $r: Boolean!) { createAccessToken(name: \"t\", workspaceIds: $s, readOnly: $r) { token } }",
                json!({ "s": scope, "r": read_only }),
            )
            .await
            .data("createAccessToken")["token"]
                .as_str()
                .expect("token")
                .to_owned()
        }
    };
    let elsewhere = token(Some(&second), false).await;
    let read_only = token(None, true).await;
    let scoped_here = token(Some(&ws), false).await;
    app.gql(ada.token(), DELETE, json!({ "ws": ws }))
        .await
        .data("deleteWorkspace");
    app.gql(Some(&elsewhere), RESTORE, json!({ "ws": ws }))
        .await
        .assert_code("NOT_FOUND");
    app.gql(Some(&read_only), RESTORE, json!({ "ws": ws }))
        .await
        .assert_code("FORBIDDEN");
    let restored = app
        .gql(Some(&scoped_here), RESTORE, json!({ "ws": ws }))
        .await;
    assert_eq!(restored.data("restoreWorkspace")["id"], ws);
}

/// A workspace on a paid plan, behind a Stripe proxy with `STRIPE_TIMEOUT_SECS` as given,
/// and the way to run its billing's follow-up of its life (`follow_lifecycle`).
struct Paid {
    app: TestApp,
    team: crate::harness::Team,
    ws: String,
    customer: String,
    /// The subscription.
    id: String,
    stripe: linkai::billing::stripe::StripeApi,
}

impl Paid {
    async fn start(proxy: &crate::stripe_proxy::StripeProxy, timeout_secs: &str) -> Self {
        let app = TestApp::builder()
            .with_stripe_proxy(proxy)
            .with_env("STRIPE_TIMEOUT_SECS", timeout_secs)
            .start()
            .await;
        let team = app.team().await;
        let ws = team.workspace.clone();
        let customer = subscribe(&app, &team.owner, &ws, "GROWTH").await;
        let [subscription] = &live_in_stripe(&customer).await[..] else {
            panic!("one subscription");
        };
        let id = subscription["id"].as_str().expect("id").to_owned();
        let stripe = app.stripe.clone().expect("stripe");
        Self {
            app,
            team,
            ws,
            customer,
            id,
            stripe,
        }
    }

    async fn follow(&self) -> anyhow::Result<()> {
        let workspace = self.ws.parse().expect("uuid");
        linkai::billing::sync::follow_lifecycle(&self.app.pool, &self.stripe, workspace).await
    }
}

/// Deleting and restoring call Stripe from a job (`billing::sync::follow_lifecycle`). It
/// must come out the same when two runs of it race each other and when Stripe acted but
/// its answer was lost (held past `STRIPE_TIMEOUT_SECS`): one subscription, set to end at
/// the period's end while the workspace is deleted, and going on after the restore.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_follows_a_deletion_once_when_its_job_races_itself_and_loses_an_answer() {
    let proxy = crate::stripe_proxy::StripeProxy::start(false).await;
    let paid = Paid::start(&proxy, "1").await;
    let (app, team, ws, customer, id) = (&paid.app, &paid.team, &paid.ws, &paid.customer, &paid.id);
    let follow = || paid.follow();

    for (mutation, ending) in [(DELETE, true), (RESTORE, false)] {
        app.gql(team.owner.token(), mutation, json!({ "ws": ws }))
            .await
            .answer();
        // Stripe takes the first change and its answer never comes in time.
        let change = format!("/v1/subscriptions/{id}");
        let before = proxy.count(&format!("POST {change}"));
        proxy.hold("POST", &change, 1, Duration::from_secs(4));
        // Two runs at once (the mutation's own job waits in the outbox: no worker here).
        let (a, b) = tokio::join!(follow(), follow());
        // A run whose answer was lost fails; its retry (the job's next attempt) succeeds.
        if a.is_err() || b.is_err() {
            follow().await.expect("the retry");
        }
        assert!(
            proxy.count(&format!("POST {change}")) > before,
            "Stripe was asked"
        );
        let live = live_in_stripe(customer).await;
        assert_eq!(live.len(), 1, "{live:#?}");
        // The same subscription, not ended and not replaced.
        assert_eq!(live[0]["id"], *id);
        assert_eq!(live[0]["cancel_at_period_end"], ending, "{mutation}");
        until(
            app,
            &format!(
                "SELECT cancel_at_period_end = {ending} AND ended_by_deletion = {ending} \
                 FROM billing_accounts WHERE workspace_id = '{ws}'"
            ),
        )
        .await;
    }
}

/// The purge deletes the workspace's Stripe customer. Two rounds racing each other (two
/// workers), with Stripe's answer to the deletion lost (held past `STRIPE_TIMEOUT_SECS`),
/// and a later round after the failure: the customer is gone, the workspace is purged once,
/// with one record of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_racing_itself_after_a_lost_answer_deletes_the_customer_and_purges_once() {
    let proxy = crate::stripe_proxy::StripeProxy::start(false).await;
    let app = TestApp::builder()
        .with_stripe_proxy(&proxy)
        .with_env("STRIPE_TIMEOUT_SECS", "1")
        .start()
        .await;
    let team = app.team().await;
    let ws = team.workspace.clone();
    let customer = subscribe(&app, &team.owner, &ws, "STARTER").await;
    app.gql(team.owner.token(), DELETE, json!({ "ws": ws }))
        .await
        .data("deleteWorkspace");
    diesel::sql_query(format!(
        "UPDATE workspaces SET deleted_at = now() - interval '31 days' WHERE id = '{ws}'"
    ))
    .execute(&mut app.db.conn().await)
    .await
    .expect("a month ago");

    let deletion = format!("/v1/customers/{customer}");
    proxy.hold("DELETE", &deletion, 1, Duration::from_secs(4));
    let stripe = app.stripe.clone().expect("stripe");
    let purge = || linkai::workspaces::lifecycle::purge_due(&app.pool, Some(&stripe));
    let (a, b) = tokio::join!(purge(), purge());
    let purged = a.expect("a round") + b.expect("a round") + purge().await.expect("a round");
    assert_eq!(purged, 1, "purged once");
    assert!(proxy.count(&format!("DELETE {deletion}")) >= 1);
    let gone = stripe_get(&format!("customers/{customer}")).await;
    assert!(
        gone["deleted"] == true || gone["error"].is_object(),
        "the customer is deleted: {gone}"
    );
    let left: Vec<_> = rows_by_table(&mut app.db.conn().await, &ws)
        .await
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(
        sql_bool(
            &mut app.db.conn().await,
            &format!("SELECT count(*) = 1 FROM purged_workspaces WHERE id = '{ws}'"),
        )
        .await
    );
}

/// A restore while the deletion's billing follow-up is still calling Stripe: the two runs
/// take turns (`db::one_at_a_time`), so the restore's run sees what the deletion did and
/// undoes it. Without turns, a restore's run between the deletion's record and its call
/// found nothing to undo, and the plan ended at the period's end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_racing_the_deletions_billing_follow_up_keeps_the_plan() {
    let proxy = crate::stripe_proxy::StripeProxy::start(false).await;
    let paid = Paid::start(&proxy, "5").await;
    let (app, team, ws, customer, id) = (&paid.app, &paid.team, &paid.ws, &paid.customer, &paid.id);
    let follow = || paid.follow();

    app.gql(team.owner.token(), DELETE, json!({ "ws": ws }))
        .await
        .data("deleteWorkspace");
    // The deletion's change reaches Stripe late: after its run recorded it, and after the
    // restore's run began.
    proxy.delay(
        "POST",
        &format!("/v1/subscriptions/{id}"),
        1,
        Duration::from_millis(1500),
    );
    let deletion = follow();
    let restore = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.gql(team.owner.token(), RESTORE, json!({ "ws": ws }))
            .await
            .data("restoreWorkspace");
        follow().await
    };
    let (deleted, restored) = tokio::join!(deletion, restore);
    if deleted.is_err() || restored.is_err() {
        // A run that failed (a lost answer, or waiting too long for its turn) runs again.
        follow().await.expect("the retry");
    }
    let live = live_in_stripe(customer).await;
    assert_eq!(live.len(), 1, "{live:#?}");
    assert_eq!(live[0]["id"], *id);
    assert_eq!(live[0]["cancel_at_period_end"], false, "the plan goes on");
    until(
        app,
        &format!(
            "SELECT NOT cancel_at_period_end AND NOT ended_by_deletion \
             FROM billing_accounts WHERE workspace_id = '{ws}'"
        ),
    )
    .await;
}
