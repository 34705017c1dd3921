//! `me.securityLog` (issue 17, item 6): the account's own sign-ins, sign-outs, sessions
//! and tokens, with where each came from; refused attempts write nothing, and only the
//! account reads it.

use serde_json::{json, Value};

use crate::audit::actions;
use crate::harness::{TestApp, PASSWORD};

const LOG: &str =
    "query($first: Int, $after: String) { me { securityLog(first: $first, after: $after) {
  totalCount pageInfo { hasNextPage endCursor }
  edges { node { action tokenId details requestId clientAddress userAgent at } } } } }";

async fn sign_in(app: &TestApp, email: &str, password: &str, agent: &str) -> Value {
    app.client()
        .post(format!("{}/graphql", app.base_url))
        .header("x-forwarded-for", "198.51.100.7")
        .header("user-agent", agent)
        .json(&json!({
            "query": "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }",
            "variables": { "e": email, "p": password },
        }))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_reads_its_own_sign_ins_sessions_and_tokens() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let bob = app.sign_up("Bob").await;

    // A wrong password is refused and leaves no trace in Ada's log.
    let refused = sign_in(&app, &ada.email, "not her password", "Stranger/1.0").await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );
    let laptop = sign_in(&app, &ada.email, PASSWORD, "Firefox/140.0").await;
    let laptop = laptop["data"]["signIn"]["token"]
        .as_str()
        .expect("session")
        .to_owned();
    let phone = sign_in(&app, &ada.email, PASSWORD, "Safari/18.0").await["data"]["signIn"]["token"]
        .as_str()
        .expect("session")
        .to_owned();

    let made = app
        .gql(
            Some(&laptop),
            "mutation { createAccessToken(name: \"CI\", readOnly: true) { id } }",
            json!({}),
        )
        .await;
    let token_id = made.data("createAccessToken")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.gql(
        Some(&laptop),
        "mutation($id: ID!) { revokeAccessToken(id: $id) }",
        json!({ "id": token_id }),
    )
    .await
    .data("revokeAccessToken");
    // The phone's session, ended from the laptop; then every other session.
    let sessions = app
        .gql(
            Some(&laptop),
            "{ sessions { edges { node { id userAgent } } } }",
            json!({}),
        )
        .await;
    let phone_session = sessions.data("sessions")["edges"]
        .as_array()
        .expect("sessions")
        .iter()
        .find(|edge| edge["node"]["userAgent"] == "Safari/18.0")
        .expect("the phone's session")["node"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.gql(
        Some(&laptop),
        "mutation($id: ID!) { revokeSession(id: $id) }",
        json!({ "id": phone_session }),
    )
    .await
    .data("revokeSession");
    app.gql(Some(&phone), "{ me { id } }", json!({}))
        .await
        .assert_code("UNAUTHENTICATED");
    let ended = app
        .gql(Some(&laptop), "mutation { revokeOtherSessions }", json!({}))
        .await;
    assert_eq!(
        ended.data("revokeOtherSessions"),
        1,
        "the sign-up's session"
    );
    // A revocation that finds nothing is NOT_FOUND and writes nothing.
    app.gql(
        Some(&laptop),
        "mutation($id: ID!) { revokeAccessToken(id: $id) }",
        json!({ "id": uuid::Uuid::new_v4() }),
    )
    .await
    .assert_code("NOT_FOUND");

    let page = app.gql(Some(&laptop), LOG, json!({})).await;
    let page = page.data("me")["securityLog"].clone();
    assert_eq!(
        actions(&page),
        [
            "OTHER_SESSIONS_REVOKED",
            "SESSION_REVOKED",
            "ACCESS_TOKEN_REVOKED",
            "ACCESS_TOKEN_CREATED",
            "SIGNED_IN",
            "SIGNED_IN",
            "SIGNED_UP",
        ]
    );
    let node = |i: usize| page["edges"][i]["node"].clone();
    assert_eq!(node(0)["details"], json!({ "count": 1 }));
    assert_eq!(node(1)["tokenId"], phone_session.as_str());
    assert_eq!(node(2)["tokenId"], token_id.as_str());
    assert_eq!(node(3)["tokenId"], token_id.as_str());
    assert_eq!(
        node(3)["details"],
        json!({ "name": "CI", "readOnly": true, "expiresAt": null, "workspaceIds": null })
    );
    assert_eq!(node(4)["userAgent"], "Safari/18.0");
    assert_eq!(node(4)["tokenId"], phone_session.as_str());
    assert_eq!(node(5)["userAgent"], "Firefox/140.0");
    assert_eq!(node(5)["clientAddress"], "198.51.100.7");
    for i in 0..7 {
        assert!(node(i)["requestId"].is_string(), "{}", node(i));
        assert!(node(i)["clientAddress"].is_string(), "{}", node(i));
    }
    // Pages, newest first.
    let first = app.gql(Some(&laptop), LOG, json!({ "first": 4 })).await;
    let first = first.data("me")["securityLog"].clone();
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    let rest = app
        .gql(
            Some(&laptop),
            LOG,
            json!({ "first": 4, "after": first["pageInfo"]["endCursor"] }),
        )
        .await;
    assert_eq!(
        actions(&rest.data("me")["securityLog"]),
        ["SIGNED_IN", "SIGNED_IN", "SIGNED_UP"]
    );

    // Signing out is the last thing the session writes.
    app.gql(Some(&laptop), "mutation { signOut }", json!({}))
        .await
        .data("signOut");
    let again = sign_in(&app, &ada.email, PASSWORD, "Firefox/140.0").await["data"]["signIn"]
        ["token"]
        .as_str()
        .expect("session")
        .to_owned();
    let page = app.gql(Some(&again), LOG, json!({ "first": 2 })).await;
    assert_eq!(
        actions(&page.data("me")["securityLog"]),
        ["SIGNED_IN", "SIGNED_OUT"]
    );

    // Bob's log is his own.
    assert_eq!(
        actions(&app.gql(bob.token(), LOG, json!({})).await.data("me")["securityLog"]),
        ["SIGNED_UP"]
    );
}

/// Through a shared workspace, a fellow member's log is FORBIDDEN (and only that field).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_reads_another_accounts_log() {
    let app = TestApp::new().await;
    let team = app.team().await;
    let res = app
        .gql(
            team.owner.token(),
            "query($ws: ID!) { workspace(id: $ws) { members { edges { node { user { id securityLog { totalCount } } } } } } }",
            json!({ "ws": team.workspace }),
        )
        .await;
    res.assert_code("FORBIDDEN");
    let edges = res.body["data"]["workspace"]["members"]["edges"]
        .as_array()
        .expect("members")
        .clone();
    assert_eq!(edges.len(), 4);
    for edge in edges {
        assert!(edge["node"]["user"]["id"].is_string());
        assert_eq!(edge["node"]["user"]["securityLog"], Value::Null);
    }
}
