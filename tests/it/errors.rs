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

/// The schema validates a document it has passed before again whenever the variables could
/// change its verdict (src/graphql/documents.rs): each bad value gets the same answer, to
/// the byte, from a document the server has never seen and from one it has run with good
/// values. A skipped check would run the operation and answer with `data`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validated_document_is_checked_again_for_values_that_could_fail() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let ws = app.create_workspace(&ada, "Ada's").await;
    let members = "query($ws: ID!, $n: Int, $after: String, $all: Boolean!) { \
                   workspace(id: $ws) { members(first: $n, after: $after) { \
                   totalCount edges @include(if: $all) { cursor } } } }";
    let bad = [
        json!({ "ws": ws, "all": true, "n": "ten" }),
        json!({ "ws": ws, "all": true, "n": 1.5 }),
        json!({ "ws": true, "all": true }),
        json!({ "ws": ws, "all": true, "after": 7 }),
        json!({ "ws": ws, "all": "yes" }),
        json!({ "ws": ws, "all": null }),
        // Values validation accepts and the resolver refuses: the same either way too.
        json!({ "ws": ws, "all": true, "n": -1 }),
        json!({ "ws": ws, "all": true, "n": 2_147_483_648_u64 }),
    ];
    let mut fresh = Vec::new();
    for (i, variables) in bad.iter().enumerate() {
        // Another text for the same document: new to the server's cache.
        let query = format!("{members} # {i}");
        fresh.push(app.gql(ada.token(), &query, variables.clone()).await);
    }
    for _ in 0..2 {
        let good = json!({ "ws": ws, "n": 5, "after": null, "all": true });
        let res = app.gql(ada.token(), members, good).await;
        assert_eq!(
            res.body["data"]["workspace"]["members"]["totalCount"], 1,
            "{:#}",
            res.body
        );
    }
    for (variables, fresh) in bad.iter().zip(fresh) {
        let again = app.gql(ada.token(), members, variables.clone()).await;
        assert_eq!(
            (again.status, again.answer()),
            (fresh.status, fresh.answer()),
            "{variables}"
        );
    }
    for variables in &bad[..6] {
        let res = app.gql(ada.token(), members, variables.clone()).await;
        assert!(
            res.body.get("data").is_none(),
            "{variables}: {:#}",
            res.body
        );
    }
}

/// A variable inside an input object is never checked by value alone: run once without
/// it (which leaves that whole argument unchecked, and the document marked as validated),
/// the document is still refused whole for its unknown field once the variable has a value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variable_inside_an_input_object_is_validated_every_time() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let ws = app.create_workspace(&ada, "Ada's").await;
    let create = "mutation($ws: ID!, $email: String) { createContact(workspaceId: $ws, \
                  input: { name: \"Bob\", email: $email, nickname: \"x\" }) { id } }";
    for _ in 0..2 {
        app.gql(ada.token(), create, json!({ "ws": ws })).await;
    }
    let count = "query($ws: ID!) { workspace(id: $ws) { contacts { totalCount } } }";
    let contacts = |res: crate::harness::Gql| res.body["data"]["workspace"]["contacts"].clone();
    let before = contacts(app.gql(ada.token(), count, json!({ "ws": ws })).await);
    let res = app
        .gql(
            ada.token(),
            create,
            json!({ "ws": ws, "email": "bob@example.com" }),
        )
        .await;
    assert!(res.body.get("data").is_none(), "{:#}", res.body);
    assert!(res.message().contains("nickname"), "{:#}", res.body);
    let after = contacts(app.gql(ada.token(), count, json!({ "ws": ws })).await);
    assert_eq!(after, before);
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
