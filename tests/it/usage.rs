//! `reportUsage` from the agent runtime and `workspace.usage`.

use serde_json::json;

use crate::harness::TestApp;

pub const SERVICE_TOKEN: &str = "svc_test_runtime";
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
