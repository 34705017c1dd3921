//! `exportWorkspace` (issue 24): the Owner's export arrives as an emailed link that, with the
//! Owner's own session, downloads the workspace's data as JSON; nobody else's session, no
//! session, and no expired link does.

use serde_json::{json, Value};

use crate::harness::{Actor, TestApp};
use crate::usage::SERVICE_TOKEN;

const EXPORT: &str = "mutation($ws: ID!) { exportWorkspace(workspaceId: $ws) }";

async fn download(app: &TestApp, token: &str, session: Option<&str>) -> (u16, String) {
    let mut request = app
        .client()
        .get(format!("{}/exports/download", app.base_url))
        .query(&[("token", token)]);
    if let Some(session) = session {
        request = request.bearer_auth(session);
    }
    let res = request.send().await.expect("answered");
    let status = res.status().as_u16();
    (status, res.text().await.expect("body"))
}

/// An agent, a contact and a conversation of three messages, written by the runtime.
pub async fn converse(app: &TestApp, owner: &Actor, ws: &str) {
    let agent = app
        .gql(
            owner.token(),
            "mutation($ws: ID!) { createAgent(workspaceId: $ws, input: { name: \"Receptionist\" }) { id } }",
            json!({ "ws": ws }),
        )
        .await
        .data("createAgent")["id"]
        .clone();
    let started = app
        .gql(
            Some(SERVICE_TOKEN),
            "mutation($ws: ID!, $input: StartConversationInput!) { startConversation(workspaceId: $ws, input: $input) { id } }",
            json!({ "ws": ws, "input": { "externalId": "c-1", "agentId": agent, "channel": "SMS",
                                         "contact": { "phone": "+14155550100", "name": "Grace" } } }),
        )
        .await;
    let messages: Vec<Value> = [
        "Hi, can I book for tomorrow?",
        "Of course: what time?",
        "Noon",
    ]
    .iter()
    .enumerate()
    .map(|(i, text)| {
        json!({ "externalId": format!("m-{i}"),
            "direction": if i % 2 == 0 { "INBOUND" } else { "OUTBOUND" },
            "text": text, "sentAt": format!("2026-12-01T10:0{i}:00Z") })
    })
    .collect();
    app.gql(
        Some(SERVICE_TOKEN),
        "mutation($ws: ID!, $c: ID!, $m: [MessageInput!]!) { appendMessages(workspaceId: $ws, conversationId: $c, messages: $m) { conversation { id } } }",
        json!({ "ws": ws, "c": started.data("startConversation")["id"], "m": messages }),
    )
    .await
    .data("appendMessages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_downloads_the_workspaces_data_with_the_emailed_link_and_a_session() {
    let app = TestApp::builder().with_workers().start().await;
    let team = app.team().await;
    let ws = team.workspace.clone();
    app.invite(&team.owner, &ws, "guest@example.com", "VIEWER")
        .await;
    converse(&app, &team.owner, &ws).await;
    // Only the Owner asks.
    app.gql(team.admin.token(), EXPORT, json!({ "ws": ws }))
        .await
        .assert_code("FORBIDDEN");
    let asked = app
        .gql(team.owner.token(), EXPORT, json!({ "ws": ws }))
        .await;
    assert_eq!(asked.data("exportWorkspace"), true);

    let mail = app
        .mail
        .wait_for(&team.owner.email, "exports/download", 1)
        .await
        .remove(0);
    assert!(mail.subject().contains("is ready"), "{}", mail.subject());
    let token = mail.token();
    let (status, body) = download(&app, &token, Some(&team.owner.token)).await;
    assert_eq!(status, 200, "{body}");
    let export: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(export["workspace"]["id"], ws);
    let emails: Vec<&str> = export["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["email"].as_str())
        .collect();
    for actor in [&team.owner, &team.admin, &team.member, &team.viewer] {
        assert!(emails.contains(&actor.email.as_str()), "{emails:?}");
    }
    assert!(!emails.contains(&team.stranger.email.as_str()));
    assert_eq!(export["invitations"][0]["email"], "guest@example.com");
    assert!(export["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .any(|r| r["name"] == "Receptionist"));
    let said: Vec<&str> = export["conversations"][0]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(
        said,
        [
            "Hi, can I book for tomorrow?",
            "Of course: what time?",
            "Noon"
        ]
    );
    let actions: Vec<&str> = export["auditLog"]
        .as_array()
        .expect("audit log")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"workspace.export_requested"),
        "{actions:?}"
    );
    assert!(export["invoices"].is_array() && export["usage"].is_array());
    // No secret of any kind.
    for secret in ["password", "token_hash", "link_hashes", "lks_", "lki_"] {
        assert!(!body.contains(secret), "the export holds {secret}");
    }

    // Nothing of another workspace, nor who wrote the conversations.
    assert!(
        !body.contains(&team.stranger.own_workspace),
        "another workspace's id"
    );
    assert!(!body.contains("service_token"));

    // The link alone, an access token, someone else's session, and a made-up link open
    // nothing.
    assert_eq!(download(&app, &token, None).await.0, 401);
    let access = app
        .gql(
            team.owner.token(),
            "mutation { createAccessToken(name: \"ci\") { token } }",
            json!({}),
        )
        .await;
    let access = access.data("createAccessToken")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_eq!(download(&app, &token, Some(&access)).await.0, 403);
    assert_eq!(download(&app, &token, Some(&team.admin.token)).await.0, 404);
    assert_eq!(
        download(&app, "lkx_made_up", Some(&team.owner.token))
            .await
            .0,
        404
    );
    // Nor does the link once it has expired.
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query("UPDATE workspace_exports SET expires_at = now() - interval '1 second'"),
        &mut app.db.conn().await,
    )
    .await
    .expect("expired");
    assert_eq!(download(&app, &token, Some(&team.owner.token)).await.0, 404);
    // And the scheduled scan forgets the expired document.
    let mut conn = app.db.conn().await;
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query("SELECT forget_expired_exports()"),
        &mut conn,
    )
    .await
    .expect("forgotten");
    let kept = diesel_async::RunQueryDsl::execute(
        diesel::sql_query("SELECT 1 FROM workspace_exports WHERE document IS NOT NULL"),
        &mut conn,
    )
    .await
    .expect("exports");
    assert_eq!(kept, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_asks_for_three_exports_a_day() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    for _ in 0..3 {
        app.gql(ada.token(), EXPORT, json!({ "ws": ada.own_workspace }))
            .await
            .data("exportWorkspace");
    }
    app.gql(ada.token(), EXPORT, json!({ "ws": ada.own_workspace }))
        .await
        .assert_code("RATE_LIMITED");
}
