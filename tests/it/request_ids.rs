//! `X-Request-Id` (issue 24): kept from a trusted proxy or made, answered on the response,
//! stored on the audit event, and named by the log lines of the request and of the job it
//! queued, down to the email's.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::harness::TestApp;
use crate::processes::{self, span_field};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_from_the_proxy_reaches_the_audit_log_and_the_jobs_log_lines() {
    // The test app trusts the test as its proxy (127.0.0.1); a worker process sends mail.
    let app = TestApp::new().await;
    let owner = app.sign_up("Owner").await;
    let worker = processes::worker(&app, "request-ids", &[]);
    let id = Uuid::new_v4();
    // nginx's `$request_id` form: 32 hex digits.
    let res = app
        .client()
        .post(format!("{}/graphql", app.base_url))
        .bearer_auth(owner.token().expect("token"))
        .header("x-request-id", id.simple().to_string())
        .json(&json!({
            "query": "mutation($ws: ID!) { inviteMember(workspaceId: $ws, email: \"ida@example.com\", role: MEMBER) { id } }",
            "variables": { "ws": owner.own_workspace },
        }))
        .send()
        .await
        .expect("sent");
    assert_eq!(res.headers()["x-request-id"], id.to_string().as_str());
    let body: serde_json::Value = res.json().await.expect("json");
    assert!(body["errors"].is_null(), "{body}");

    let audit = app
        .gql(
            owner.token(),
            "query($ws: ID!) { workspace(id: $ws) { auditLog(first: 5) { edges { node { action requestId } } } } }",
            json!({ "ws": owner.own_workspace }),
        )
        .await;
    let events = audit.data("workspace")["auditLog"]["edges"].clone();
    let invited = events
        .as_array()
        .expect("events")
        .iter()
        .map(|edge| &edge["node"])
        .find(|e| e["action"] == "INVITATION_SENT")
        .unwrap_or_else(|| panic!("{events}"));
    assert_eq!(invited["requestId"], id.to_string());

    app.mail
        .wait_for("ida@example.com", "invitations/accept", 1)
        .await;
    let mut sent = Vec::new();
    for _ in 0..100 {
        sent = worker.logged("email sent");
        if !sent.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let line = sent
        .first()
        .unwrap_or_else(|| panic!("{:#?}", worker.logs()));
    assert_eq!(span_field(line, "job", "kind"), Some("send_invitation"));
    assert_eq!(
        span_field(line, "job", "request_id"),
        Some(id.to_string().as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anyone_else_gets_an_id_of_ours_which_their_log_lines_name() {
    let app = TestApp::new().await;
    // No TRUSTED_PROXIES: the test is a client like any other. The webhook's refusal is
    // one log line of the request.
    let api = processes::serve(
        &app,
        &[
            ("STRIPE_SECRET_KEY", "sk_test_unused"),
            ("STRIPE_API_BASE", "http://127.0.0.1:9"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_request_ids"),
        ],
    )
    .await;
    let chosen = Uuid::new_v4();
    let mut answered = Vec::new();
    for header in [Some(chosen.to_string()), Some("not-a-uuid".into()), None] {
        let mut request = reqwest::Client::new()
            .post(format!("{}/webhooks/stripe", api.base_url))
            .header("stripe-signature", "t=1,v1=00")
            .body("{}");
        if let Some(header) = header {
            request = request.header("x-request-id", header);
        }
        let res = request.send().await.expect("sent");
        assert_eq!(res.status(), 400);
        let id = res.headers()["x-request-id"].to_str().expect("ascii");
        let id = Uuid::parse_str(id).expect("a UUID");
        assert_ne!(id, chosen, "a client does not choose its request's id");
        answered.push(id.to_string());
    }
    let mut refused = Vec::new();
    for _ in 0..100 {
        refused = api.logged("refused a Stripe webhook");
        if refused.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logged: Vec<String> = refused
        .iter()
        .map(|line| {
            span_field(line, "request", "request_id")
                .expect("in the request's span")
                .to_owned()
        })
        .collect();
    assert_eq!(logged, answered);
}
