//! Sessions expire and can be ended one by one or all but this one; personal access tokens
//! carry least privilege (expiry, read-only, listed workspaces).

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{Gql, TestApp, PASSWORD};

const ME: &str = "{ me { id } }";

async fn make_token(app: &TestApp, session: Option<&str>, args: &str) -> Gql {
    app.gql(
        session,
        &format!("mutation {{ createAccessToken({args}) {{ id token }} }}"),
        json!({}),
    )
    .await
}

fn secret(res: &Gql) -> String {
    res.data("createAccessToken")["token"]
        .as_str()
        .expect("token")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_tokens_carry_least_privilege() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let bob = app.sign_up("Bob").await;
    let second = app.create_workspace(&ada, "Second").await;
    let own = ada.own_workspace.clone();

    // Read-only, limited to one workspace.
    let reader = secret(
        &make_token(
            &app,
            ada.token(),
            &format!("name: \"reader\", readOnly: true, workspaceIds: [\"{own}\"]"),
        )
        .await,
    );
    let listed = app
        .gql(Some(&reader), "{ workspaces { id } }", json!({}))
        .await;
    assert_eq!(listed.data("workspaces"), &json!([{ "id": own }]));
    app.gql(
        Some(&reader),
        "query($id: ID!) { workspace(id: $id) { id } }",
        json!({ "id": second }),
    )
    .await
    .assert_code("NOT_FOUND");
    let rename =
        "mutation($id: ID!) { renameWorkspace(workspaceId: $id, name: \"Renamed\") { name } }";
    let refused = app.gql(Some(&reader), rename, json!({ "id": own })).await;
    refused.assert_code("FORBIDDEN");
    assert!(refused.body.get("data").is_none(), "nothing ran");
    let names = app
        .gql(ada.token(), "{ workspaces { name } }", json!({}))
        .await;
    assert!(!names.body.to_string().contains("Renamed"));

    // Writable but scoped: writes in its workspace only, no new workspaces, no new tokens.
    let scoped = secret(
        &make_token(
            &app,
            ada.token(),
            &format!("name: \"scoped\", workspaceIds: [\"{own}\"]"),
        )
        .await,
    );
    let renamed = app.gql(Some(&scoped), rename, json!({ "id": own })).await;
    assert_eq!(renamed.data("renameWorkspace")["name"], "Renamed");
    app.gql(Some(&scoped), rename, json!({ "id": second }))
        .await
        .assert_code("NOT_FOUND");
    app.gql(
        Some(&scoped),
        "mutation { createWorkspace(name: \"More\") { id } }",
        json!({}),
    )
    .await
    .assert_code("FORBIDDEN");
    make_token(&app, Some(&scoped), "name: \"broader\"")
        .await
        .assert_code("FORBIDDEN");

    // Bad requests change nothing.
    for args in [
        "name: \"past\", expiresAt: \"2020-01-01T00:00:00Z\"".to_owned(),
        "name: \"far\", expiresAt: \"2099-01-01T00:00:00Z\"".to_owned(),
        "name: \"none\", workspaceIds: []".to_owned(),
    ] {
        make_token(&app, ada.token(), &args)
            .await
            .assert_code("BAD_USER_INPUT");
    }
    make_token(
        &app,
        ada.token(),
        &format!(
            "name: \"theirs\", workspaceIds: [\"{}\"]",
            bob.own_workspace
        ),
    )
    .await
    .assert_code("NOT_FOUND");

    // An expiry ends it.
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let brief = secret(
        &make_token(
            &app,
            ada.token(),
            &format!("name: \"brief\", expiresAt: \"{soon}\""),
        )
        .await,
    );
    app.gql(Some(&brief), ME, json!({})).await.data("me");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    app.gql(Some(&brief), ME, json!({}))
        .await
        .assert_code("UNAUTHENTICATED");

    // The list shows what each may do.
    let tokens = app
        .gql(
            ada.token(),
            "{ accessTokens { edges { node { name readOnly workspaceIds expiresAt } } } }",
            json!({}),
        )
        .await;
    let nodes: Vec<Value> = tokens.data("accessTokens")["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| edge["node"].clone())
        .collect();
    let reader_node = nodes
        .iter()
        .find(|n| n["name"] == "reader")
        .expect("listed");
    assert_eq!(reader_node["readOnly"], true);
    assert_eq!(reader_node["workspaceIds"], json!([own]));
    assert_eq!(reader_node["expiresAt"], Value::Null);
}

async fn sign_in_with_agent(app: &TestApp, email: &str, agent: &str) -> String {
    let res: Value = app
        .client()
        .post(format!("{}/graphql", app.base_url))
        .header("user-agent", agent)
        .json(&json!({
            "query": "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }",
            "variables": { "e": email, "p": PASSWORD },
        }))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    res["data"]["signIn"]["token"]
        .as_str()
        .expect("token")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_listed_and_ended_one_or_all_but_this_one() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let laptop = sign_in_with_agent(&app, &ada.email, "Firefox/130 (laptop)").await;
    let phone = sign_in_with_agent(&app, &ada.email, "Safari/18 (phone)").await;
    let pat = secret(&make_token(&app, ada.token(), "name: \"script\"").await);

    let sessions = app
        .gql(
            Some(&laptop),
            "{ sessions { totalCount edges { node { id kind userAgent current createdAt lastUsedAt } } } }",
            json!({}),
        )
        .await;
    let list = sessions.data("sessions");
    assert_eq!(list["totalCount"], 3, "the sign-up's and two sign-ins");
    let nodes: Vec<&Value> = list["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| &e["node"])
        .collect();
    assert!(nodes.iter().all(|n| n["kind"] == "SESSION"));
    let phone_node = nodes
        .iter()
        .find(|n| n["userAgent"] == "Safari/18 (phone)")
        .expect("the phone is listed");
    let laptop_node = nodes
        .iter()
        .find(|n| n["current"] == true)
        .expect("this one");
    assert_eq!(laptop_node["userAgent"], "Firefox/130 (laptop)");

    // A personal token cannot end sessions.
    app.gql(Some(&pat), "mutation { revokeOtherSessions }", json!({}))
        .await
        .assert_code("FORBIDDEN");
    let revoke = "mutation($id: ID!) { revokeSession(id: $id) }";
    let ended = app
        .gql(Some(&laptop), revoke, json!({ "id": phone_node["id"] }))
        .await;
    assert_eq!(ended.data("revokeSession"), true);
    app.gql(Some(&phone), ME, json!({}))
        .await
        .assert_code("UNAUTHENTICATED");
    app.gql(Some(&laptop), revoke, json!({ "id": phone_node["id"] }))
        .await
        .assert_code("NOT_FOUND");

    // Everywhere else: the sign-up's session ends, this one and the personal token stay.
    let others = app
        .gql(Some(&laptop), "mutation { revokeOtherSessions }", json!({}))
        .await;
    assert_eq!(others.data("revokeOtherSessions"), 1);
    app.gql(ada.token(), ME, json!({}))
        .await
        .assert_code("UNAUTHENTICATED");
    app.gql(Some(&laptop), ME, json!({})).await.data("me");
    app.gql(Some(&pat), ME, json!({})).await.data("me");
}

/// Sets a session's `created_at` and `last_used_at` this many days back.
async fn age_session(app: &TestApp, token: &str, created_days: i64, used_days: i64) {
    use diesel_async::RunQueryDsl;
    use sha2::Digest as _;
    let hash = hex(&sha2::Sha256::digest(token.as_bytes()));
    diesel::sql_query(format!(
        "UPDATE access_tokens SET created_at = now() - interval '{created_days} days', \
         last_used_at = now() - interval '{used_days} days' WHERE token_hash = '\\x{hash}'"
    ))
    .execute(&mut app.db.conn().await)
    .await
    .expect("aged");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Before: a two-year-old session still worked. Now a session ends 7 days after its last use
/// and 30 days after sign-in (docs/security.md; both configurable), whichever comes first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_when_idle_and_when_old() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let cases = [
        // (created, last used, still works)
        (20, 1, true),
        (20, 8, false),
        (31, 0, false),
        (730, 0, false),
    ];
    for (created, used, works) in cases {
        let token = sign_in_with_agent(&app, &ada.email, "test").await;
        age_session(&app, &token, created, used).await;
        let res = app.gql(Some(&token), ME, json!({})).await;
        if works {
            assert_eq!(res.data("me")["id"], ada.id, "{created}/{used}");
        } else {
            res.assert_code("UNAUTHENTICATED");
        }
    }

    let strict = TestApp::builder()
        .with_env("SESSION_IDLE_DAYS", "1")
        .start()
        .await;
    let grace = strict.sign_up("Grace").await;
    let token = sign_in_with_agent(&strict, &grace.email, "test").await;
    age_session(&strict, &token, 3, 2).await;
    strict
        .gql(Some(&token), ME, json!({}))
        .await
        .assert_code("UNAUTHENTICATED");
}

const REVOKE_TOKEN: &str = "mutation($id: ID!) { revokeAccessToken(id: $id) }";

/// The caller's live tokens as `(id, kind, current)`, read with `session`.
async fn token_ids(app: &TestApp, session: Option<&str>) -> Vec<(String, String, bool)> {
    let res = app
        .gql(
            session,
            "{ accessTokens(first: 100) { edges { node { id kind current } } } }",
            json!({}),
        )
        .await;
    res.data("accessTokens")["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| {
            let node = &edge["node"];
            (
                node["id"].as_str().expect("id").to_owned(),
                node["kind"].as_str().expect("kind").to_owned(),
                node["current"].as_bool().expect("current"),
            )
        })
        .collect()
}

/// Issue 27: any personal token could end its user's signed-in session through
/// `revokeAccessToken` (it took a session's id too). Now sessions are ended by sessions, and
/// a personal token revokes itself only: a leaked token cannot sign its owner out or end
/// their other tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_personal_token_revokes_only_itself() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let first = secret(&make_token(&app, ada.token(), "name: \"first\"").await);
    let second = secret(&make_token(&app, ada.token(), "name: \"second\"").await);
    let ids = token_ids(&app, ada.token()).await;
    let session = ids.iter().find(|t| t.2).expect("this session").0.clone();
    let personal: Vec<&String> = ids
        .iter()
        .filter(|t| t.1 == "PERSONAL")
        .map(|t| &t.0)
        .collect();
    assert_eq!(personal.len(), 2);

    // The token against the session, and against its sibling: refused, nothing ends.
    for target in [&session, personal[1]] {
        app.gql(Some(&first), REVOKE_TOKEN, json!({ "id": target }))
            .await
            .assert_code("FORBIDDEN");
    }
    for live in [ada.token(), Some(second.as_str())] {
        app.gql(live, ME, json!({})).await.data("me");
    }
    // A session's id is not an access token's, even from the session itself.
    app.gql(ada.token(), REVOKE_TOKEN, json!({ "id": session }))
        .await
        .assert_code("NOT_FOUND");
    app.gql(ada.token(), ME, json!({})).await.data("me");

    // A token revokes itself; a session revokes any of them.
    let res = app
        .gql(Some(&first), REVOKE_TOKEN, json!({ "id": personal[0] }))
        .await;
    assert_eq!(res.data("revokeAccessToken"), true);
    app.gql(Some(&first), ME, json!({}))
        .await
        .assert_code("UNAUTHENTICATED");
    let res = app
        .gql(ada.token(), REVOKE_TOKEN, json!({ "id": personal[1] }))
        .await;
    assert_eq!(res.data("revokeAccessToken"), true);
    app.gql(Some(&second), ME, json!({}))
        .await
        .assert_code("UNAUTHENTICATED");
}

/// Issue 27: a read-only token scoped to one workspace read its user's sessions, tokens and
/// security log (client addresses and devices). Those are the account's, and need a
/// signed-in session, like making tokens; any personal token, however broad, is FORBIDDEN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_session_reads_the_accounts_sessions_tokens_and_security_log() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let own = ada.own_workspace.clone();
    let reader = secret(
        &make_token(
            &app,
            ada.token(),
            &format!("name: \"reader\", readOnly: true, workspaceIds: [\"{own}\"]"),
        )
        .await,
    );
    let broad = secret(&make_token(&app, ada.token(), "name: \"broad\"").await);
    let reads = [
        ("sessions", "{ sessions { totalCount } }"),
        ("accessTokens", "{ accessTokens { totalCount } }"),
        ("me", "{ me { securityLog { totalCount } } }"),
    ];
    for (field, query) in reads {
        for token in [&reader, &broad] {
            let res = app.gql(Some(token), query, json!({})).await;
            res.assert_code("FORBIDDEN");
            assert!(res.message().contains("session"), "{field}: {:#}", res.body);
        }
        let res = app.gql(ada.token(), query, json!({})).await;
        assert!(res.body.get("errors").is_none(), "{field}: {:#}", res.body);
    }
    // The token still reads what it was made for.
    let res = app
        .gql(
            Some(&reader),
            "query($id: ID!) { workspace(id: $id) { name } }",
            json!({ "id": own }),
        )
        .await;
    assert!(res.data("workspace")["name"].is_string());
}
