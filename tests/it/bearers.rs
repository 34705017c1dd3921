//! A server reuses a live token's lookup for up to a second (src/auth/bearers.rs), and a
//! revoked token still stops working at once on the server that revoked it, and on every
//! other as soon as the revocation's notification arrives.
//!
//! Each test first proves the token is cached: a `{ __typename }` sent with it that runs no
//! statement at all (the lookup is the only statement it would run). Then it revokes, and
//! uses it again.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{gql_at, TestApp, PASSWORD};
use crate::processes;

const ME: &str = "{ me { id } }";
const NEW_PASSWORD: &str = "another long passphrase 42";

/// The whole answer of `base` to `query` sent with `token`, errors and extensions too.
async fn ask(base: &str, token: &str, query: &str) -> Value {
    reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json")
}

/// Sends `token` to `base` until an answer ran no statement: the token is in that server's
/// cache now (only a live token is kept).
async fn cache(base: &str, token: &str) {
    for _ in 0..20 {
        let res = ask(base, token, "{ __typename }").await;
        if res["extensions"]["sqlStatements"] == 0 {
            return;
        }
    }
    panic!("{token} was looked up every time");
}

async fn refused(base: &str, token: &str) {
    let res = ask(base, token, ME).await;
    assert_eq!(
        res["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{res:#}"
    );
}

async fn sign_in(base: &str, email: &str) -> String {
    let signed_in = gql_at(
        base,
        None,
        "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }",
        json!({ "e": email, "p": PASSWORD }),
    )
    .await;
    signed_in["signIn"]["token"]
        .as_str()
        .expect("token")
        .to_owned()
}

/// A `serve` process on `app`'s database that reports its statements and its metrics; and
/// its metrics' address.
async fn server(app: &TestApp) -> (processes::Process, String) {
    let env = [
        ("METRICS_ADDR", "127.0.0.1:0"),
        ("GRAPHQL_SQL_STATS", "true"),
    ];
    let mut server = processes::serve(app, &env).await;
    let metrics = server.announced("metrics on ").await;
    (server, metrics)
}

/// Times a server forgot cached tokens, by `reason`.
const FORGETS: &str = "linkai_auth_token_cache_forgets_total";
/// Tokens a server looked up, by `source`.
const LOOKUPS: &str = "linkai_auth_token_lookups_total";

/// The counter `name` with the one label `label` of the server at `metrics`.
async fn counted(metrics: &str, name: &str, label: (&str, &str)) -> f64 {
    let scrape = crate::metrics::scrape(&reqwest::Client::new(), metrics).await;
    crate::metrics::counted(&scrape, name, &[label])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_reads_its_token_afresh_however_recently_it_was_read() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let (server, metrics) = server(&app).await;
    let base = server.base_url.as_str();
    let token = ada.token().expect("token");
    for _ in 0..3 {
        cache(base, token).await;
        let before = counted(&metrics, LOOKUPS, ("source", "database")).await;
        let made = "mutation { createAccessToken(name: \"script\") { id } }";
        gql_at(base, Some(token), made, json!({})).await;
        assert_eq!(
            counted(&metrics, LOOKUPS, ("source", "database")).await,
            before + 1.0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_revocation_stops_a_cached_token_at_once_on_this_server() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let (server, metrics) = server(&app).await;
    let base = server.base_url.as_str();
    // Each revocation below is forgotten by the mutation's own server when its work is
    // over, before it answers, whenever the notification comes.
    let mut forgotten = counted(&metrics, FORGETS, ("reason", "revoked_here")).await;
    let mut revoke = async |token: &str, mutation: &str, variables: Value| {
        let answer = gql_at(base, Some(token), mutation, variables).await;
        let now = counted(&metrics, FORGETS, ("reason", "revoked_here")).await;
        assert!(now > forgotten, "{mutation}");
        forgotten = now;
        answer
    };

    // Signing out.
    let laptop = sign_in(base, &ada.email).await;
    cache(base, &laptop).await;
    revoke(&laptop, "mutation { signOut }", json!({})).await;
    refused(base, &laptop).await;

    // Another session, ended by id.
    let (laptop, phone) = (
        sign_in(base, &ada.email).await,
        sign_in(base, &ada.email).await,
    );
    let sessions = gql_at(
        base,
        Some(&laptop),
        "{ sessions { edges { node { id current userAgent createdAt } } } }",
        json!({}),
    )
    .await;
    let mut others: Vec<&Value> = sessions["sessions"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| &e["node"])
        .filter(|node| node["current"] == false)
        .collect();
    // The newest other session is the phone's.
    others.sort_by_key(|node| node["createdAt"].as_str().unwrap_or_default().to_owned());
    let phone_id = others.last().expect("the phone's session")["id"].clone();
    cache(base, &phone).await;
    let mutation = "mutation($id: ID!) { revokeSession(id: $id) }";
    revoke(&laptop, mutation, json!({ "id": phone_id })).await;
    refused(base, &phone).await;

    // A personal access token.
    let made = gql_at(
        base,
        Some(&laptop),
        "mutation { createAccessToken(name: \"script\") { id token } }",
        json!({}),
    )
    .await;
    let pat = made["createAccessToken"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    cache(base, &pat).await;
    let mutation = "mutation($id: ID!) { revokeAccessToken(id: $id) }";
    let id = made["createAccessToken"]["id"].clone();
    revoke(&laptop, mutation, json!({ "id": id })).await;
    refused(base, &pat).await;

    // Every other session.
    let tablet = sign_in(base, &ada.email).await;
    cache(base, &tablet).await;
    revoke(&laptop, "mutation { revokeOtherSessions }", json!({})).await;
    refused(base, &tablet).await;
    refused(base, ada.token().expect("token")).await;
    cache(base, &laptop).await;

    // A new password signs out everything but the session it answers with.
    let tablet = sign_in(base, &ada.email).await;
    cache(base, &tablet).await;
    let changed = revoke(
        &laptop,
        "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) { token } }",
        json!({ "c": PASSWORD, "n": NEW_PASSWORD }),
    )
    .await;
    let fresh = changed["changePassword"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    refused(base, &tablet).await;
    refused(base, &laptop).await;

    // A deleted account's tokens go with it.
    cache(base, &fresh).await;
    let mutation = "mutation($p: String!) { deleteAccount(password: $p) }";
    revoke(&fresh, mutation, json!({ "p": NEW_PASSWORD })).await;
    refused(base, &fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_server_forgets_a_token_revoked_here_when_the_notification_arrives() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let (there, metrics) = server(&app).await;
    let phone = sign_in(&app.base_url, &ada.email).await;
    cache(&there.base_url, &phone).await;

    let before = counted(&metrics, FORGETS, ("reason", "notified")).await;
    app.gql(Some(&phone), "mutation { signOut }", json!({}))
        .await
        .data("signOut");
    let mut heard = false;
    for _ in 0..100 {
        if counted(&metrics, FORGETS, ("reason", "notified")).await > before {
            heard = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(heard, "the other server heard of the revocation");
    refused(&there.base_url, &phone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_token_spares_a_page_its_lookup_and_made_up_tokens_are_not_kept() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let token = ada.token();
    let page = "query($id: ID!) { workspace(id: $id) { members(first: 10) { totalCount } } }";
    let vars = json!({ "id": ada.own_workspace });
    // The membership and the page; the lookup makes three (tests/it/statements.rs). Back
    // to back, most requests are within the second.
    let mut counts = Vec::new();
    for _ in 0..10 {
        counts.push(app.gql(token, page, vars.clone()).await.sql_statements());
    }
    assert!(counts.iter().all(|&n| n == 2 || n == 3), "{counts:?}");
    assert!(counts.contains(&2), "{counts:?}");

    // A token nobody has is looked up every time.
    for _ in 0..3 {
        let res = ask(&app.base_url, "lks_made_up", "{ __typename }").await;
        assert_eq!(res["extensions"]["sqlStatements"], 1, "{res:#}");
    }
}
