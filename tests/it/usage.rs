//! `reportUsage` from the agent runtime and `workspace.usage`.

use serde_json::json;

use crate::harness::TestApp;

/// The agent runtime's service token, in every test database (`harness::template`).
pub const SERVICE_TOKEN: &str = "lksvc_test_runtime";
pub const SERVICE_NAME: &str = "test-runtime";
const REPORT: &str = "mutation($ws: ID!, $m: UsageMetric!, $q: Int!, $k: String!) {
  reportUsage(workspaceId: $ws, metric: $m, quantity: $q, idempotencyKey: $k) { messages sms limits { messages sms } periodStart periodEnd } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_counts_once_per_key_and_only_with_a_service_token() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let report =
        |m: &str, q: i64, k: &str| json!({ "ws": ada.own_workspace, "m": m, "q": q, "k": k });
    app.gql(None, REPORT, report("MESSAGES", 1, "a"))
        .await
        .assert_code("UNAUTHENTICATED");
    app.gql(ada.token(), REPORT, report("MESSAGES", 1, "a"))
        .await
        .assert_code("FORBIDDEN");

    let first = app
        .gql(
            Some(SERVICE_TOKEN),
            REPORT,
            report("MESSAGES", 5, "conversation-1"),
        )
        .await;
    assert_eq!(first.data("reportUsage")["messages"], 5);
    let again = app
        .gql(
            Some(SERVICE_TOKEN),
            REPORT,
            report("MESSAGES", 5, "conversation-1"),
        )
        .await;
    assert_eq!(again.data("reportUsage")["messages"], 5);
    app.gql(
        Some(SERVICE_TOKEN),
        REPORT,
        report("MESSAGES", 6, "conversation-1"),
    )
    .await
    .assert_code("CONFLICT");
    let sms = app
        .gql(Some(SERVICE_TOKEN), REPORT, report("SMS", 2, "sms-1"))
        .await;
    assert_eq!(sms.data("reportUsage")["sms"], 2);
    // NUL cannot be stored in PostgreSQL text: it was an INTERNAL error (issue 15).
    for (q, k) in [(0, "zero"), (1, ""), (1, "key\u{0}nul")] {
        app.gql(Some(SERVICE_TOKEN), REPORT, report("SMS", q, k))
            .await
            .assert_code("BAD_USER_INPUT");
    }
    app.gql(
        Some(SERVICE_TOKEN),
        REPORT,
        json!({ "ws": uuid::Uuid::new_v4(), "m": "SMS", "q": 1, "k": "x" }),
    )
    .await
    .assert_code("NOT_FOUND");

    let seen = app
        .gql(
            ada.token(),
            "query($ws: ID!) { workspace(id: $ws) { usage { messages sms } } }",
            json!({ "ws": ada.own_workspace }),
        )
        .await;
    assert_eq!(
        seen.data("workspace")["usage"],
        json!({ "messages": 5, "sms": 2 })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_reports_never_pass_the_limit() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    // Trial: the Scale plan's 10,000 SMS. 60 reports of 200 would make 12,000.
    let calls = (0..60).map(|i| {
        app.gql(
            Some(SERVICE_TOKEN),
            REPORT,
            json!({ "ws": ada.own_workspace, "m": "SMS", "q": 200, "k": format!("batch-{i}") }),
        )
    });
    let results = futures::future::join_all(calls).await;
    let counted = results.iter().filter(|r| r.code().is_none()).count();
    assert_eq!(counted, 50);
    for res in results.iter().filter(|r| r.code().is_some()) {
        res.assert_code("USAGE_LIMIT_REACHED");
    }
    let seen = app
        .gql(
            ada.token(),
            "query($ws: ID!) { workspace(id: $ws) { usage { sms limits { sms } } } }",
            json!({ "ws": ada.own_workspace }),
        )
        .await;
    assert_eq!(
        seen.data("workspace")["usage"],
        json!({ "sms": 10000, "limits": { "sms": 10000 } })
    );
    // A refused report did not record its key: it can be retried once there is room.
    let refused = results
        .iter()
        .position(|r| r.code().is_some())
        .expect("one refused");
    let retry = app.gql(Some(SERVICE_TOKEN), REPORT, json!({ "ws": ada.own_workspace, "m": "SMS", "q": 200, "k": format!("batch-{refused}") })).await;
    retry.assert_code("USAGE_LIMIT_REACHED");
}

/// Issue 16: message and SMS counters ran on periods counted from the workspace's creation,
/// not the invoice's. In the trial the trial is the period; with a subscription it is
/// Stripe's current period, and a renewal starts the count again. The fake cannot renew a
/// subscription (nor end a trial early), so after a real Starter subscription is made this
/// feeds the signed webhook endpoint the `customer.subscription.updated` events Stripe
/// sends for its first period and for the renewal (their documented JSON).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_follows_the_trial_then_the_invoices_period_across_a_renewal() {
    use crate::webhooks::{deliver, documented_subscription, signed, subscription_event};
    use diesel_async::RunQueryDsl;
    let app = TestApp::builder()
        .with_stripe()
        .with_workers()
        .start()
        .await;
    let ada = app.sign_up("Ada").await;
    let report = |q: i64, k: &str| json!({ "ws": ada.own_workspace, "m": "SMS", "q": q, "k": k });
    let trial = app
        .gql(Some(SERVICE_TOKEN), REPORT, report(1, "in-trial"))
        .await;
    let usage = trial.data("reportUsage");
    let workspace = app
        .gql(
            ada.token(),
            "query($ws: ID!) { workspace(id: $ws) { createdAt trialEndsAt } }",
            json!({ "ws": ada.own_workspace }),
        )
        .await
        .data("workspace")
        .clone();
    assert_eq!(usage["periodStart"], workspace["createdAt"]);
    assert_eq!(usage["periodEnd"], workspace["trialEndsAt"]);

    // A Starter subscription; then the trial is over and its first period runs.
    let customer = crate::billing::subscribe(&app, &ada, &ada.own_workspace, "STARTER").await;
    let subscription = crate::billing::stripe_subscription_of(&customer).await;
    let subscription_id = subscription["id"].as_str().expect("id").to_owned();
    let price = subscription["items"]["data"][0]["plan"]["id"]
        .as_str()
        .expect("price")
        .to_owned();
    // Issue 26: choosing a plan in the trial reset the allowance (the trialing
    // subscription's own period began). The trial stays one period, with the trial's
    // limits, until it ends and the plan's billing starts.
    let after_choice = app
        .gql(Some(SERVICE_TOKEN), REPORT, report(1, "in-trial-2"))
        .await;
    let counted = after_choice.data("reportUsage");
    assert_eq!(counted["sms"], 2, "the trial's count goes on");
    assert_eq!(counted["periodStart"], workspace["createdAt"]);
    assert_eq!(counted["limits"], usage["limits"], "the trial's limits");
    let id: uuid::Uuid = ada.own_workspace.parse().expect("uuid");
    let mut conn = app.db.conn().await;
    diesel::sql_query(format!(
        "UPDATE workspaces SET trial_ends_at = now() - interval '20 days' WHERE id = '{id}'"
    ))
    .execute(&mut conn)
    .await
    .expect("the trial ended");
    let now = chrono::Utc::now().timestamp();
    let day = 86_400;
    let period_start = async || {
        app.gql(
            ada.token(),
            "query($ws: ID!) { workspace(id: $ws) { usage { periodStart } } }",
            json!({ "ws": ada.own_workspace }),
        )
        .await
        .data("workspace")["usage"]["periodStart"]
            .clone()
    };
    let stripe_sends = async |second: i64, period: (i64, i64)| {
        let object = documented_subscription(
            &subscription_id,
            &customer,
            "active",
            Some((&price, period)),
        );
        let body = subscription_event("customer.subscription.updated", now + second, &object);
        assert_eq!(deliver(&app, &body, signed(&body)).await, 200);
        let start = chrono::DateTime::from_timestamp(period.0, 0)
            .expect("time")
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        for _ in 0..150 {
            if period_start().await == start {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(period_start().await, start, "the period was applied");
    };
    let first = (now - 20 * day, now + 10 * day);
    stripe_sends(1, first).await;
    let limit = app
        .gql(Some(SERVICE_TOKEN), REPORT, report(1, "first-1"))
        .await
        .data("reportUsage")["limits"]["sms"]
        .as_i64()
        .expect("limit");
    let full = app
        .gql(Some(SERVICE_TOKEN), REPORT, report(limit - 1, "first-2"))
        .await;
    let usage = full.data("reportUsage");
    assert_eq!(usage["sms"], limit, "the trial's count stayed in the trial");
    let start = chrono::DateTime::from_timestamp(first.0, 0).expect("time");
    assert_eq!(
        usage["periodStart"],
        start.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    );
    app.gql(Some(SERVICE_TOKEN), REPORT, report(1, "first-3"))
        .await
        .assert_code("USAGE_LIMIT_REACHED");

    // Stripe renews: the period moves, and the count starts again with the new invoice.
    let renewed = (now - 60, now + 30 * day);
    stripe_sends(2, renewed).await;
    let after = app
        .gql(Some(SERVICE_TOKEN), REPORT, report(1, "renewed-1"))
        .await;
    let usage = after.data("reportUsage");
    assert_eq!(usage["sms"], 1);
    let start = chrono::DateTime::from_timestamp(renewed.0, 0).expect("time");
    assert_eq!(
        usage["periodStart"],
        start.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    );
}

/// Issue 23: at 80 % and 100 % of a limit the Owner and Admins get one email each, and the
/// log one event, however many writers race across the threshold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_alerts_go_out_once_per_threshold_and_period() {
    let app = TestApp::builder().with_workers().start().await;
    let team = app.team().await;
    let ws = team.workspace.clone();
    // Trial: the Scale plan's 10,000 SMS. 60 parallel reports of 200 pass 8,000 and reach
    // 10,000, each once.
    let calls = (0..60).map(|i| {
        app.gql(
            Some(SERVICE_TOKEN),
            REPORT,
            json!({ "ws": ws, "m": "SMS", "q": 200, "k": format!("alert-{i}") }),
        )
    });
    futures::future::join_all(calls).await;
    // Agents: 80 % of the Scale plan's limit, passed by parallel creations.
    let limit = app
        .gql(
            team.owner.token(),
            "query($ws: ID!) { workspace(id: $ws) { usage { limits { agents } } } }",
            json!({ "ws": ws }),
        )
        .await
        .data("workspace")["usage"]["limits"]["agents"]
        .as_i64()
        .expect("limit");
    let wanted = (limit * 80 + 99) / 100 + 2;
    let creations = (0..wanted).map(|n| {
        app.gql(
            team.admin.token(),
            "mutation($ws: ID!, $n: String!) { createAgent(workspaceId: $ws, input: { name: $n }) { id } }",
            json!({ "ws": ws, "n": format!("Agent {n}") }),
        )
    });
    for made in futures::future::join_all(creations).await {
        made.data("createAgent");
    }

    // Every alert recorded is emailed, once: wait for the marks, then count.
    let mut conn = app.db.conn().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let alerts = loop {
        #[derive(diesel::QueryableByName)]
        struct Alert {
            #[diesel(sql_type = diesel::sql_types::Text)]
            metric: String,
            #[diesel(sql_type = diesel::sql_types::SmallInt)]
            threshold: i16,
            #[diesel(sql_type = diesel::sql_types::Bool)]
            emailed: bool,
        }
        use diesel_async::RunQueryDsl as _;
        let rows: Vec<Alert> = diesel::sql_query(format!(
            "SELECT metric, threshold, emailed_at IS NOT NULL AS emailed FROM usage_alerts
             WHERE workspace_id = '{ws}' ORDER BY metric, threshold"
        ))
        .load(&mut conn)
        .await
        .expect("alerts");
        if rows.iter().all(|r| r.emailed) && rows.len() >= 3 {
            break rows
                .into_iter()
                .map(|r| (r.metric, r.threshold))
                .collect::<Vec<_>>();
        }
        assert!(std::time::Instant::now() < deadline, "alerts not emailed");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        alerts,
        [
            ("agents".to_owned(), 80),
            ("sms".to_owned(), 80),
            ("sms".to_owned(), 100)
        ]
    );
    let about = |actor: &crate::harness::Actor| {
        let mut subjects: Vec<String> = app
            .mail
            .to(&actor.email)
            .iter()
            .map(|m| m.subject().to_owned())
            .filter(|s| s.contains("has used"))
            .collect();
        subjects.sort();
        subjects
    };
    let expected = [
        "Owner's Workspace has used 100 % of its SMS",
        "Owner's Workspace has used 80 % of its SMS",
        "Owner's Workspace has used 80 % of its agents",
    ];
    assert_eq!(about(&team.owner), expected);
    assert_eq!(about(&team.admin), expected);
    assert!(about(&team.member).is_empty());
    assert!(about(&team.viewer).is_empty());

    let log = app
        .gql(
            team.owner.token(),
            "query($ws: ID!) { workspace(id: $ws) { auditLog(first: 10, filter: { actions: [USAGE_NEARING_LIMIT, USAGE_LIMIT_REACHED] }) {
               edges { node { action changes } } } } }",
            json!({ "ws": ws }),
        )
        .await;
    let events: Vec<(String, String, i64)> = log.data("workspace")["auditLog"]["edges"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            let node = &e["node"];
            (
                node["action"].as_str().expect("action").to_owned(),
                node["changes"]["metric"]
                    .as_str()
                    .expect("metric")
                    .to_owned(),
                node["changes"]["threshold"].as_i64().expect("threshold"),
            )
        })
        .collect();
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(events.contains(&("USAGE_NEARING_LIMIT".into(), "agents".into(), 80)));
    assert!(events.contains(&("USAGE_NEARING_LIMIT".into(), "sms".into(), 80)));
    assert!(events.contains(&("USAGE_LIMIT_REACHED".into(), "sms".into(), 100)));
}
