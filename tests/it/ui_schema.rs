//! A schema a UI can cache and page: member ids, full page info, one page-size rule for
//! every list, the caller's tokens, and resending the verification email.

use serde_json::{json, Value};

use crate::harness::TestApp;

const MEMBERS: &str = "query($ws: ID!, $first: Int, $after: String) { workspace(id: $ws) {
    members(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { cursor node { id role user { id } } }
    } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_have_ids_a_cache_can_key_on() {
    let app = TestApp::new().await;
    let team = app.team().await;
    let list = |ws: String| {
        let token = team.owner.token.clone();
        let app = &app;
        async move {
            app.gql(Some(&token), MEMBERS, json!({ "ws": ws, "first": 10 }))
                .await
                .data("workspace")["members"]["edges"]
                .as_array()
                .expect("edges")
                .iter()
                .map(|edge| edge["node"].clone())
                .collect::<Vec<Value>>()
        }
    };
    let first = list(team.workspace.clone()).await;
    let again = list(team.workspace.clone()).await;
    let ids: Vec<&str> = first
        .iter()
        .map(|m| m["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), 4);
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 4, "one id per member");
    assert_eq!(first, again, "ids are stable");

    // The same person in another workspace is another member.
    let other = app.create_workspace(&team.owner, "Second").await;
    let there = list(other).await;
    assert_eq!(there[0]["user"]["id"], team.owner.id.as_str());
    assert!(!ids.contains(&there[0]["id"].as_str().expect("id")));

    // A role change answers the member under the id the list gave, so a cache updates it.
    let changed = app
        .gql(
            team.owner.token(),
            "mutation($ws: ID!, $user: ID!) { changeMemberRole(workspaceId: $ws, userId: $user, role: VIEWER) { id role } }",
            json!({ "ws": team.workspace, "user": team.member.id }),
        )
        .await;
    let member = changed.data("changeMemberRole");
    let listed = first
        .iter()
        .find(|m| m["user"]["id"] == team.member.id.as_str())
        .expect("listed");
    assert_eq!(member["id"], listed["id"]);
    assert_eq!(member["role"], "VIEWER");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_info_gives_both_ends_of_a_page() {
    let app = TestApp::new().await;
    let team = app.team().await;
    let page = |first: i32, after: Option<String>| {
        let app = &app;
        let token = team.owner.token.clone();
        let ws = team.workspace.clone();
        async move {
            app.gql(
                Some(&token),
                MEMBERS,
                json!({ "ws": ws, "first": first, "after": after }),
            )
            .await
            .data("workspace")["members"]
                .clone()
        }
    };
    let one = page(3, None).await;
    let info = &one["pageInfo"];
    assert_eq!(info["hasNextPage"], true);
    assert_eq!(info["hasPreviousPage"], false);
    assert_eq!(info["startCursor"], one["edges"][0]["cursor"]);
    assert_eq!(info["endCursor"], one["edges"][2]["cursor"]);
    let two = page(3, info["endCursor"].as_str().map(str::to_owned)).await;
    assert_eq!(two["edges"].as_array().map(Vec::len), Some(1));
    assert_eq!(two["pageInfo"]["hasNextPage"], false);
    assert_eq!(two["pageInfo"]["hasPreviousPage"], true);
    assert_eq!(two["pageInfo"]["startCursor"], two["edges"][0]["cursor"]);
    let empty = page(0, None).await;
    assert_eq!(empty["pageInfo"]["startCursor"], Value::Null);
    assert_eq!(empty["totalCount"], 4);
}

/// Every list takes the same `first` (0 to 100, default 20) and `after`, and answers a
/// connection; a `first` out of range is the same BAD_USER_INPUT everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_pages_the_same_way() {
    let mut lists = Vec::new();
    for (type_name, field) in crate::schema::object_fields() {
        let first = field.arguments.iter().find(|a| a.node.name.node == "first");
        let Some(first) = first else {
            // A bare list of an object type would page nothing: only small fixed sets may
            // be plain lists.
            let named = field.ty.node.to_string();
            if named.starts_with('[') && !named.ends_with("Edge!]!") {
                assert!(
                    [
                        "[Plan!]",
                        "[Workspace!]",
                        "[PaymentMethod!]",
                        // At most 50, fixed when the token is made.
                        "[ID!]",
                        "[FormField!]!",
                        "[ID!]!",
                        "[String!]!",
                        // An append's batch: at most 100, as sent.
                        "[Message!]!",
                        // One point per day of at most 400 days.
                        "[AnalyticsPoint!]!"
                    ]
                    .contains(&named.as_str()),
                    "{type_name}.{} is a bare list {named}",
                    field.name.node
                );
            }
            continue;
        };
        let described = first.node.description.as_ref().map(|d| d.node.clone());
        assert_eq!(
            described.as_deref(),
            Some("Page size, 0 to 100 (default 20)."),
            "{type_name}.{}",
            field.name.node
        );
        assert!(
            field.arguments.iter().any(|a| a.node.name.node == "after"),
            "{type_name}.{} takes `after`",
            field.name.node
        );
        let returns = field.ty.node.to_string();
        assert!(
            returns.contains("Connection"),
            "{type_name}.{}: {returns}",
            field.name.node
        );
        lists.push(format!("{type_name}.{}", field.name.node));
    }
    assert!(lists.contains(&"Billing.invoices".to_owned()), "{lists:?}");
    assert!(
        lists.contains(&"Query.accessTokens".to_owned()),
        "{lists:?}"
    );
    assert!(lists.len() >= 11, "{lists:?}");

    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    for first in [-1, 101] {
        for query in [
            "query($ws: ID!, $n: Int) { workspace(id: $ws) { billing { invoices(first: $n) { totalCount } } } }",
            "query($ws: ID!, $n: Int) { workspace(id: $ws) { agents(first: $n) { totalCount } } }",
        ] {
            let res = app.gql(ada.token(), query, json!({ "ws": ada.own_workspace, "n": first })).await;
            res.assert_code("BAD_USER_INPUT");
            assert!(res.message().contains("between 0 and 100"), "{}", res.message());
        }
    }
}

const TOKENS: &str =
    "{ accessTokens { totalCount edges { node { id kind name createdAt lastUsedAt current } } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_lists_their_tokens_with_when_each_was_last_used() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let res = app.gql(ada.token(), TOKENS, json!({})).await;
    let tokens = res.data("accessTokens");
    assert_eq!(tokens["totalCount"], 1);
    let session = &tokens["edges"][0]["node"];
    assert_eq!(session["kind"], "SESSION");
    assert_eq!(session["current"], true);
    assert!(
        session["lastUsedAt"].is_string(),
        "signing in is a use: {session}"
    );

    let made = app
        .gql(
            ada.token(),
            "mutation { createAccessToken(name: \"CI script\") { id token } }",
            json!({}),
        )
        .await;
    let pat = made.data("createAccessToken").clone();
    let listed = |res: &crate::harness::Gql, id: &Value| {
        res.data("accessTokens")["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|edge| edge["node"].clone())
            .find(|node| node["id"] == *id)
    };
    let res = app.gql(ada.token(), TOKENS, json!({})).await;
    let unused = listed(&res, &pat["id"]).expect("listed");
    assert_eq!(unused["kind"], "PERSONAL");
    assert_eq!(unused["name"], "CI script");
    assert_eq!(unused["current"], false);
    assert_eq!(unused["lastUsedAt"], Value::Null);
    assert!(!res
        .body
        .to_string()
        .contains(pat["token"].as_str().expect("secret")));

    // Used once: the session's list shows when. The token itself cannot list the
    // account's tokens (that needs a session).
    app.gql(pat["token"].as_str(), "{ me { id } }", json!({}))
        .await
        .data("me");
    app.gql(pat["token"].as_str(), TOKENS, json!({}))
        .await
        .assert_code("FORBIDDEN");
    let res = app.gql(ada.token(), TOKENS, json!({})).await;
    let used = listed(&res, &pat["id"]).expect("listed");
    assert_eq!(used["current"], false);
    assert!(used["lastUsedAt"].is_string());

    // Revoked: gone from the list. Another user sees only their own.
    app.gql(
        ada.token(),
        "mutation($id: ID!) { revokeAccessToken(id: $id) }",
        json!({ "id": pat["id"] }),
    )
    .await
    .data("revokeAccessToken");
    let res = app.gql(ada.token(), TOKENS, json!({})).await;
    assert!(listed(&res, &pat["id"]).is_none());
    let grace = app.sign_up("Grace").await;
    let theirs = app.gql(grace.token(), TOKENS, json!({})).await;
    assert_eq!(theirs.data("accessTokens")["totalCount"], 1);
    let anonymous = app.gql(None, TOKENS, json!({})).await;
    anonymous.assert_code("UNAUTHENTICATED");
    assert_eq!(anonymous.body["data"]["accessTokens"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verification_email_can_be_sent_again_within_limits() {
    let app = TestApp::builder().with_workers().start().await;
    // Accounts from before sign-ups were confirmed by email prove their address this way.
    let ada = app.sign_up("Ada").await;
    app.unprove_email(&ada).await;
    let resend = "mutation { resendVerificationEmail }";
    // Five this hour, then RATE_LIMITED.
    for _ in 0..5 {
        assert_eq!(
            app.gql(ada.token(), resend, json!({}))
                .await
                .data("resendVerificationEmail"),
            true
        );
    }
    let emails = app.mail.wait_for(&ada.email, "verify-email", 5).await;
    app.gql(ada.token(), resend, json!({}))
        .await
        .assert_code("RATE_LIMITED");

    // Any of the links verifies; then resending is a CONFLICT.
    let token = emails.last().expect("sent").token();
    // Followed in the signed-in app, which sends its session along: that session is kept.
    app.gql(
        ada.token(),
        "mutation($t: String!) { verifyEmail(token: $t) { emailVerified } }",
        json!({ "t": token }),
    )
    .await
    .data("verifyEmail");
    let grace = app.sign_up("Grace").await;
    app.unprove_email(&grace).await;
    app.gql(ada.token(), resend, json!({}))
        .await
        .assert_code("CONFLICT");
    app.gql(None, resend, json!({}))
        .await
        .assert_code("UNAUTHENTICATED");
    assert_eq!(
        app.gql(grace.token(), resend, json!({}))
            .await
            .data("resendVerificationEmail"),
        true
    );
}
