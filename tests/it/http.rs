//! The API as HTTP clients meet it: CORS, GraphQL over HTTP (GET, content negotiation,
//! status codes), spec-correct `null`s for field errors, introspection and the playground.
//! The client libraries and a real browser check the same from outside (`clients.rs`).

use reqwest::header::{
    ACCEPT, ACCESS_CONTROL_ALLOW_ORIGIN, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ORIGIN, VARY,
};
use serde_json::{json, Value};

use crate::harness::{assert_spec_shape, TestApp};

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

fn url(app: &TestApp) -> String {
    format!("{}/graphql", app.base_url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_an_allowed_origin_may_call_the_api_and_others_may_not() {
    let app = TestApp::builder()
        .with_env(
            "CORS_ORIGINS",
            "https://app.example.com, http://localhost:5173",
        )
        .start()
        .await;
    let preflight = |origin: &'static str| {
        app.client()
            .request(reqwest::Method::OPTIONS, url(&app))
            .header(ORIGIN, origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let ok = preflight("https://app.example.com").await.expect("sent");
    assert_eq!(ok.status(), 204);
    let headers = ok.headers();
    assert_eq!(
        headers[ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.com"
    );
    let allowed_headers = headers["access-control-allow-headers"]
        .to_str()
        .expect("ascii");
    for needed in ["authorization", "content-type", "accept"] {
        assert!(allowed_headers.contains(needed), "{allowed_headers}");
    }
    let methods = headers["access-control-allow-methods"]
        .to_str()
        .expect("ascii");
    assert!(
        methods.contains("GET") && methods.contains("POST"),
        "{methods}"
    );
    assert!(headers.contains_key("access-control-max-age"));
    assert!(headers[VARY].to_str().expect("ascii").contains("Origin"));

    let stranger = preflight("https://evil.example.net").await.expect("sent");
    assert!(!stranger.headers().contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
    assert!(!stranger.status().is_success());

    // The actual request: allowed origin echoed, others get no CORS header (the browser
    // then hides the answer from the page), and every answer varies by Origin.
    for (origin, allowed) in [
        ("http://localhost:5173", true),
        ("https://evil.example.net", false),
    ] {
        let res = app
            .client()
            .post(url(&app))
            .header(ORIGIN, origin)
            .json(&json!({ "query": "{ __typename }" }))
            .send()
            .await
            .expect("sent");
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()
                .get(ACCESS_CONTROL_ALLOW_ORIGIN)
                .map(|v| v.to_str().expect("ascii")),
            allowed.then_some(origin)
        );
        assert!(res.headers()[VARY]
            .to_str()
            .expect("ascii")
            .contains("Origin"));
    }

    // The webhook is not for browsers.
    let webhook = app
        .client()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/webhooks/stripe", app.base_url),
        )
        .header(ORIGIN, "https://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("sent");
    assert!(!webhook.headers().contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_cors_origin_is_app_urls() {
    let app = TestApp::builder()
        .with_env("APP_URL", "https://console.example.com/app")
        .start()
        .await;
    let res = app
        .client()
        .post(url(&app))
        .header(ORIGIN, "https://console.example.com")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(
        res.headers()[ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://console.example.com"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_run_over_get_and_mutations_do_not() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let res = app
        .client()
        .get(url(&app))
        .query(&[
            ("query", "query Me($n: Int) { me { email activeWorkspace { members(first: $n) { totalCount } } } }"),
            ("variables", r#"{"n": 1}"#),
            ("operationName", "Me"),
        ])
        .bearer_auth(&ada.token)
        .header(ACCEPT, GRAPHQL_RESPONSE)
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 200);
    assert!(res.headers()[CONTENT_TYPE]
        .to_str()
        .expect("ascii")
        .starts_with(GRAPHQL_RESPONSE));
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["data"]["me"]["email"], ada.email.as_str());

    let before = app
        .gql(ada.token(), "{ workspaces { id } }", json!({}))
        .await;
    let res = app
        .client()
        .get(url(&app))
        .query(&[(
            "query",
            "mutation { createWorkspace(name: \"Over GET\") { id } }",
        )])
        .bearer_auth(&ada.token)
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "POST");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    let after = app
        .gql(ada.token(), "{ workspaces { id } }", json!({}))
        .await;
    assert_eq!(before.body, after.body, "the GET mutation changed nothing");

    // A GET with no query and no wish for a page is a clear 400, not the playground.
    let res = app
        .client()
        .get(url(&app))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_negotiated_and_request_errors_have_the_specs_status() {
    let app = TestApp::new().await;
    let post = |accept: Option<&'static str>, body: Value| {
        let mut request = app.client().post(url(&app)).json(&body);
        if let Some(accept) = accept {
            request = request.header(ACCEPT, accept);
        }
        request.send()
    };
    let ok = json!({ "query": "{ __typename }" });
    for (accept, media) in [
        (None, "application/json"),
        (Some("application/json"), "application/json"),
        (Some("*/*"), "application/json"),
        (Some(GRAPHQL_RESPONSE), GRAPHQL_RESPONSE),
        (
            Some("application/graphql-response+json, application/json;q=0.9"),
            GRAPHQL_RESPONSE,
        ),
    ] {
        let res = post(accept, ok.clone()).await.expect("sent");
        assert_eq!(res.status(), 200);
        let content_type = res.headers()[CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(
            content_type.starts_with(media),
            "{accept:?}: {content_type}"
        );
    }
    let res = post(Some("text/csv"), ok.clone()).await.expect("sent");
    assert_eq!(res.status(), 406);

    // Documents refused before running: 400 with the new media type, 200 with the legacy
    // one, and never a `data` entry.
    for (query, code) in [
        ("{", "GRAPHQL_PARSE_FAILED"),
        ("{ nope }", "GRAPHQL_VALIDATION_FAILED"),
    ] {
        for (accept, status) in [(GRAPHQL_RESPONSE, 400), ("application/json", 200)] {
            let res = post(Some(accept), json!({ "query": query }))
                .await
                .expect("sent");
            assert_eq!(res.status(), status, "{query} as {accept}");
            let body: Value = res.json().await.expect("json");
            assert_spec_shape(&body);
            assert!(body.get("data").is_none());
            assert_eq!(body["errors"][0]["extensions"]["code"], code);
        }
    }

    // Not JSON, or JSON that is no GraphQL request: 400 whatever is accepted.
    for body in [
        "{ \"not a JSON",
        r#"{"qeury": "{ __typename }"}"#,
        r#"{"query": 1}"#,
    ] {
        let res = app
            .client()
            .post(url(&app))
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .expect("sent");
        assert_eq!(res.status(), 400, "{body}");
    }
    // POST bodies must say they are JSON.
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = app
            .client()
            .post(url(&app))
            .body(r#"{"query":"{ __typename }"}"#);
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        let res = request.send().await.expect("sent");
        assert_eq!(res.status(), 415, "{content_type:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_field_is_null_in_place_and_the_rest_of_the_screen_survives() {
    let app = TestApp::new().await;
    let team = app.team().await;

    // A Member may not read billing: `billing` is null, the workspace and its other fields
    // stay (the key is there, as generated client types promise).
    let res = app
        .gql(
            team.member.token(),
            "query($ws: ID!) { workspace(id: $ws) { name billing { status } viewerRole } }",
            json!({ "ws": team.workspace }),
        )
        .await;
    assert_eq!(res.code(), Some("FORBIDDEN"));
    let workspace = &res.body["data"]["workspace"];
    assert_eq!(workspace["billing"], Value::Null);
    assert_eq!(workspace["viewerRole"], "MEMBER");

    // The refused field alone in its object: the object stays, with the field null.
    let res = app
        .gql(
            team.viewer.token(),
            "query($ws: ID!) { workspace(id: $ws) { billing { status } } }",
            json!({ "ws": team.workspace }),
        )
        .await;
    assert_eq!(
        res.body["data"],
        json!({ "workspace": { "billing": null } })
    );

    // Without a token: the public field answers, `me` is null beside it.
    let res = app.gql(None, "{ plans { id } me { id } }", json!({})).await;
    assert_eq!(res.code(), Some("UNAUTHENTICATED"));
    assert_eq!(res.body["data"]["me"], Value::Null);
    assert_eq!(res.body["data"]["plans"].as_array().map(Vec::len), Some(3));

    // Every root field failing: each is null, nothing is missing.
    let res = app
        .gql(None, "{ me { id } workspaces { id } }", json!({}))
        .await;
    assert_eq!(res.body["data"], json!({ "me": null, "workspaces": null }));

    // In a list, through a fragment and an alias: the refused field is null in each item.
    let res = app
        .gql(
            team.member.token(),
            "{ mine: workspaces { ...W } } fragment W on Workspace { id pay: billing { status } }",
            json!({}),
        )
        .await;
    let items = res.body["data"]["mine"].as_array().expect("list");
    assert_eq!(items.len(), 2);
    let refused = items.iter().filter(|w| w["pay"].is_null()).count();
    assert_eq!(refused, 1, "{:#}", res.body);
    assert!(items.iter().all(|w| w["id"].is_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_non_null_field_nulls_its_nearest_nullable_parent() {
    let app = TestApp::new().await;
    let team = app.team().await;
    // `createAgent: Agent!` on the mutation root: a refused write nulls `data`, and the
    // error says why.
    let res = app
        .gql(
            team.viewer.token(),
            "mutation($ws: ID!) { createAgent(workspaceId: $ws, input: { name: \"X\" }) { id } }",
            json!({ "ws": team.workspace }),
        )
        .await;
    assert_eq!(res.code(), Some("FORBIDDEN"));
    assert_eq!(res.body["data"], Value::Null);
    assert_eq!(res.body["errors"][0]["path"], json!(["createAgent"]));
}

const STANDARD_INTROSPECTION: &str = include_str!("../../src/graphql/introspection_query.graphql");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standard_introspection_query_answers_and_says_who_may_call_what() {
    let app = TestApp::new().await;
    let res = app.gql(None, STANDARD_INTROSPECTION, json!({})).await;
    let schema = res.data("__schema");
    let types = schema["types"].as_array().expect("types");
    let workspace = types
        .iter()
        .find(|t| t["name"] == "Workspace")
        .expect("Workspace");
    let billing = workspace["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["name"] == "billing")
        .expect("billing");
    let description = billing["description"].as_str().expect("described");
    assert!(description.contains("ADMIN"), "{description}");
    let date_time = types
        .iter()
        .find(|t| t["name"] == "DateTime")
        .expect("DateTime");
    assert!(date_time["specifiedByURL"]
        .as_str()
        .is_some_and(|u| u.contains("3339")));
    let described = date_time["description"].as_str().unwrap_or_default();
    assert!(
        described.contains("RFC 3339") && !described.contains("<Utc>"),
        "{described}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_and_the_playground_can_be_switched_off() {
    let app = TestApp::builder()
        .with_env("INTROSPECTION", "false")
        .start()
        .await;
    let res = app
        .gql(None, "{ __schema { queryType { name } } }", json!({}))
        .await;
    assert!(res.body.get("data").is_none());
    assert_eq!(res.code(), Some("GRAPHQL_VALIDATION_FAILED"));
    let page = app
        .client()
        .get(url(&app))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .expect("sent");
    assert_ne!(page.status(), 200);
    let asset = app
        .client()
        .get(format!("{}/graphiql/graphiql.js", app.base_url))
        .send()
        .await
        .expect("sent");
    assert_eq!(asset.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playground_is_served_from_this_host_only() {
    let app = TestApp::new().await;
    let page = app
        .client()
        .get(url(&app))
        .header(ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .expect("sent");
    assert_eq!(page.status(), 200);
    let csp = page.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let html = page.text().await.expect("html");
    assert!(!html.contains("//unpkg") && !html.contains("cdn"), "{html}");
    assert!(html.contains("access-token"));
    let mut scripts = 0;
    for src in html
        .split("src=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
    {
        assert!(src.starts_with("/graphiql/"), "{src} is not ours");
        let asset = app
            .client()
            .get(format!("{}{src}", app.base_url))
            .send()
            .await
            .expect("sent");
        assert_eq!(asset.status(), 200, "{src}");
        assert!(asset.headers()[CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/javascript"));
        scripts += 1;
    }
    assert_eq!(scripts, 2);
    // The stylesheet, Monaco's font and its workers are ours too.
    for file in [
        "graphiql.css",
        "codicon.ttf",
        "editor.worker.js",
        "json.worker.js",
        "graphql.worker.js",
    ] {
        let asset = app
            .client()
            .get(format!("{}/graphiql/{file}", app.base_url))
            .send()
            .await
            .expect("sent");
        assert_eq!(asset.status(), 200, "{file}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nulled_field_keeps_its_place_in_the_documents_order() {
    let app = TestApp::new().await;
    let team = app.team().await;
    // Read as text: a JSON map in the test would sort the keys.
    let text = app
        .client()
        .post(url(&app))
        .bearer_auth(&team.member.token)
        .json(&json!({
            "query": "query($ws: ID!) { workspace(id: $ws) { name billing { status } viewerRole } }",
            "variables": { "ws": team.workspace },
        }))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    let at = |key: &str| {
        text.find(&format!("\"{key}\""))
            .unwrap_or_else(|| panic!("{key}: {text}"))
    };
    assert!(
        at("name") < at("billing") && at("billing") < at("viewerRole"),
        "{text}"
    );
}
