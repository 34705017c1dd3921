//! Every error reaches the client with a stable code, and internals never leak.

use diesel_async::RunQueryDsl;
use serde_json::{json, Value};

use crate::harness::TestApp;

const KNOWN_CODES: &[&str] = &[
    "UNAUTHENTICATED",
    "NOT_FOUND",
    "FORBIDDEN",
    "BAD_USER_INPUT",
    "CONFLICT",
    "USAGE_LIMIT_REACHED",
    "TRIAL_EXPIRED",
    "RATE_LIMITED",
    "BILLING_NOT_CONFIGURED",
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "QUERY_TOO_COMPLEX",
    "SERVICE_UNAVAILABLE",
    "INTERNAL",
];

pub fn assert_all_coded(body: &Value, code: &str) {
    let errors = body["errors"].as_array().expect("errors");
    assert!(!errors.is_empty());
    for error in errors {
        assert_eq!(error["extensions"]["code"], code, "{body:#}");
        assert!(KNOWN_CODES.contains(&code));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_that_do_not_parse_or_validate_have_their_own_codes() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let cases = [
        ("{ me { id ", json!({}), "GRAPHQL_PARSE_FAILED"),
        (
            "{ me { noSuchField } }",
            json!({}),
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            "query($n: Int) { plans { id } }",
            json!({}),
            "GRAPHQL_VALIDATION_FAILED",
        ),
        // Values are what a person typed: BAD_USER_INPUT, as for a resolver's own checks.
        (
            "query($id: ID!) { workspace(id: $id) { id } }",
            json!({}),
            "BAD_USER_INPUT",
        ),
        (
            "query($n: Int) { workspaces { members(first: $n) { totalCount } } }",
            json!({ "n": "ten" }),
            "BAD_USER_INPUT",
        ),
        (
            "mutation { changeMemberRole(workspaceId: \"x\", userId: \"y\", role: KING) { role } }",
            json!({}),
            "BAD_USER_INPUT",
        ),
    ];
    for (query, variables, code) in cases {
        let res = app.gql(ada.token(), query, variables).await;
        assert_all_coded(&res.body, code);
        // A refused document ran nothing: no `data` at all (checked for every response by
        // the harness too), and a message without the parser's drawing.
        assert!(res.body.get("data").is_none(), "{query}: {:#}", res.body);
        let message = res.message();
        assert!(
            !message.contains("-->") && !message.contains(" | "),
            "{message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_deep_or_too_complex_queries_are_refused() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let user = "user { activeWorkspace { members { edges { node { user { activeWorkspace { id } } } } } } }";
    let deep =
        format!("{{ me {{ activeWorkspace {{ members {{ edges {{ node {{ {user} }} }} }} }} }} }}");
    assert_all_coded(
        &app.gql(ada.token(), &deep, json!({})).await.body,
        "QUERY_TOO_COMPLEX",
    );
    let wide = "{ workspaces { members(first: 100) { edges { node { user { activeWorkspace {
        members(first: 100) { edges { node { role } } } } } } } } } }";
    let res = app.gql(ada.token(), wide, json!({})).await;
    assert_all_coded(&res.body, "QUERY_TOO_COMPLEX");
    // Introspection that multiplies the schema by itself is refused like any other.
    let abusive =
        "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }";
    let res = app.gql(None, abusive, json!({})).await;
    assert_all_coded(&res.body, "QUERY_TOO_COMPLEX");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_requests_get_coded_http_errors() {
    let app = TestApp::new().await;
    let url = format!("{}/graphql", app.base_url);
    // Not JSON, and a batch (one operation per request: refused, not half run).
    for body in ["{not json", r#"[{ "query": "{ me { id } }" }]"#] {
        let res = app
            .client()
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("sent");
        assert_eq!(res.status(), 400, "{body}");
        let answer: Value = res.json().await.expect("json");
        assert_all_coded(&answer, "BAD_USER_INPUT");
    }

    let huge = json!({ "query": format!("{{ me {{ id }} }} # {}", "x".repeat(300 * 1024)) });
    let res = app
        .client()
        .post(&url)
        .json(&huge)
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_failures_are_internal_and_leak_nothing() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let mut conn = app.db.conn().await;
    diesel::sql_query("ALTER TABLE workspaces RENAME TO workspaces_moved")
        .execute(&mut conn)
        .await
        .expect("renamed");
    let res = app
        .gql(ada.token(), "{ workspaces { id } }", json!({}))
        .await;
    assert_all_coded(&res.body, "INTERNAL");
    let text = res.body["errors"].to_string().to_lowercase();
    for leak in [
        "relation",
        "select",
        "workspaces_moved",
        "diesel",
        "postgres",
        "sql",
    ] {
        assert!(!text.contains(leak), "leaked {leak}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_answer() {
    let app = TestApp::new().await;
    let health = app
        .client()
        .get(format!("{}/healthz", app.base_url))
        .send()
        .await
        .expect("sent");
    assert_eq!(health.status(), 200);
    let ready = app
        .client()
        .get(format!("{}/readyz", app.base_url))
        .send()
        .await
        .expect("sent");
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body, json!({ "postgres": true, "redis": true }));
    let graphiql = app
        .client()
        .get(format!("{}/graphql", app.base_url))
        .header("accept", "text/html")
        .send()
        .await
        .expect("sent");
    assert_eq!(graphiql.status(), 200);
    assert!(graphiql
        .text()
        .await
        .expect("html")
        .to_lowercase()
        .contains("graphiql"));
}
