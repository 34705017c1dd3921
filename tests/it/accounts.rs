//! Sign-up, sign-in, sessions and personal access tokens.

use chrono::{DateTime, Duration, Utc};
use diesel_async::RunQueryDsl;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::harness::{TestApp, PASSWORD};

const SIGN_UP: &str = "mutation($email: String!, $password: String!, $name: String!) {
  signUp(email: $email, password: $password, name: $name) { email session { token } }
}";
const COMPLETE: &str = "mutation($t: String!) {
  completeSignUp(token: $t) {
    token
    user { id email name emailVerified activeWorkspace { id name viewerRole billingStatus trialEndsAt createdAt readOnly } }
  }
}";
const SIGN_IN: &str = "mutation($email: String!, $password: String!) {
  signIn(email: $email, password: $password) { token user { id email } }
}";
const ME: &str = "{ me { id email name activeWorkspace { id name } } }";

async fn count(app: &TestApp, table: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.db.conn().await;
    diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"))
        .get_result::<Count>(&mut conn)
        .await
        .expect("count")
        .n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_creates_an_owned_trialing_workspace_named_after_the_user() {
    let app = TestApp::new().await;
    let res = app
        .gql(
            None,
            SIGN_UP,
            json!({ "email": "  Ada.Lovelace@Example.com ", "password": PASSWORD, "name": " Ada " }),
        )
        .await;
    assert_eq!(
        res.data("signUp"),
        &json!({ "email": "Ada.Lovelace@Example.com", "session": null })
    );
    // Nothing exists until the emailed link is followed.
    assert_eq!(count(&app, "users").await, 0);
    assert_eq!(count(&app, "workspaces").await, 0);
    let link = app.sign_up_link("ada.lovelace@example.com").await;
    let res = app.gql(None, COMPLETE, json!({ "t": link })).await;
    let payload = res.data("completeSignUp");
    let user = &payload["user"];
    assert_eq!(user["email"], "Ada.Lovelace@Example.com");
    assert_eq!(user["name"], "Ada");
    assert_eq!(user["emailVerified"], true);
    let workspace = &user["activeWorkspace"];
    assert_eq!(workspace["name"], "Ada's Workspace");
    assert_eq!(workspace["viewerRole"], "OWNER");
    assert_eq!(workspace["billingStatus"], "TRIALING");
    assert_eq!(workspace["readOnly"], false);
    let created: DateTime<Utc> = workspace["createdAt"]
        .as_str()
        .expect("date")
        .parse()
        .expect("rfc3339");
    let trial_ends: DateTime<Utc> = workspace["trialEndsAt"]
        .as_str()
        .expect("date")
        .parse()
        .expect("rfc3339");
    assert_eq!(trial_ends - created, Duration::days(14));
    assert!((Utc::now() - created).num_seconds().abs() < 60);

    let token = payload["token"].as_str().expect("token");
    let me = app.gql(Some(token), ME, json!({})).await;
    assert_eq!(me.data("me")["activeWorkspace"]["id"], workspace["id"]);
    let list = app
        .gql(Some(token), "{ workspaces { id viewerRole } }", json!({}))
        .await;
    assert_eq!(
        list.data("workspaces"),
        &json!([{ "id": workspace["id"], "viewerRole": "OWNER" }])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_rejects_bad_input_with_coded_errors_and_creates_nothing() {
    let app = TestApp::new().await;
    let cases = [
        ("not-an-email", PASSWORD, "Ada", "email"),
        ("ada@example", PASSWORD, "Ada", "email"),
        ("ada@example.com", "short", "Ada", "password"),
        ("ada@example.com", PASSWORD, "   ", "name"),
        ("ada@example.com", PASSWORD, &"x".repeat(101), "name"),
    ];
    for (email, password, name, field) in cases {
        let res = app
            .gql(
                None,
                SIGN_UP,
                json!({ "email": email, "password": password, "name": name }),
            )
            .await;
        res.assert_code("BAD_USER_INPUT");
        assert!(res.message().contains(field), "{field}: {}", res.message());
    }
    assert_eq!(count(&app, "sign_up_requests").await, 0);
    assert_eq!(count(&app, "users").await, 0);
    assert_eq!(count(&app, "workspaces").await, 0);
}

/// Two sign-ups of one address, whatever its case and spacing, both answered: the first
/// link followed opens the account, the second then answers CONFLICT and makes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_are_unique_whatever_their_case_and_spacing() {
    let app = TestApp::new().await;
    let sign_up = |email: &'static str| {
        app.gql(
            None,
            SIGN_UP,
            json!({ "email": email, "password": PASSWORD, "name": "Grace" }),
        )
    };
    sign_up("grace@example.com").await.data("signUp");
    let first = app.sign_up_link("grace@example.com").await;
    sign_up(" GRACE@Example.COM").await.data("signUp");
    let second = app.sign_up_link("grace@example.com").await;
    app.gql(None, COMPLETE, json!({ "t": first }))
        .await
        .data("completeSignUp");
    app.gql(None, COMPLETE, json!({ "t": second }))
        .await
        .assert_code("CONFLICT");
    assert_eq!(count(&app, "users").await, 1);
    assert_eq!(count(&app, "workspaces").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_accepts_any_case_and_answers_wrong_password_like_unknown_email() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let ok = app
        .gql(
            None,
            SIGN_IN,
            json!({ "email": ada.email.to_uppercase(), "password": PASSWORD }),
        )
        .await;
    let session = ok.data("signIn");
    assert_eq!(session["user"]["id"], ada.id.as_str());
    let token = session["token"].as_str().expect("token");
    assert_ne!(token, ada.token);
    app.gql(Some(token), ME, json!({})).await.data("me");

    let wrong_password = app
        .gql(
            None,
            SIGN_IN,
            json!({ "email": ada.email, "password": "wrong password" }),
        )
        .await;
    let unknown_email = app
        .gql(
            None,
            SIGN_IN,
            json!({ "email": "nobody@example.com", "password": PASSWORD }),
        )
        .await;
    wrong_password.assert_code("UNAUTHENTICATED");
    assert_eq!(wrong_password.answer(), unknown_email.answer());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_and_tokens_are_stored_only_as_hashes() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    #[derive(diesel::QueryableByName)]
    struct Secrets {
        #[diesel(sql_type = diesel::sql_types::Text)]
        password_hash: String,
        #[diesel(sql_type = diesel::sql_types::Bytea)]
        token_hash: Vec<u8>,
        #[diesel(sql_type = diesel::sql_types::Text)]
        dump: String,
    }
    let mut conn = app.db.conn().await;
    let row: Secrets = diesel::sql_query(
        "SELECT u.password_hash, t.token_hash, (u.*)::text || (t.*)::text AS dump
         FROM users u JOIN access_tokens t ON t.user_id = u.id",
    )
    .get_result(&mut conn)
    .await
    .expect("one user, one token");
    assert!(row.password_hash.starts_with("$argon2id$"));
    assert!(!row.dump.contains(PASSWORD));
    assert!(!row.dump.contains(&ada.token));
    assert_eq!(
        row.token_hash,
        Sha256::digest(ada.token.as_bytes()).to_vec()
    );
    assert!(ada.token.len() >= 43, "at least 256 bits of base64");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_revokes_the_session_at_once() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let res = app
        .gql(ada.token(), "mutation { signOut }", json!({}))
        .await;
    assert_eq!(res.data("signOut"), true);
    app.gql(ada.token(), ME, json!({}))
        .await
        .assert_code("UNAUTHENTICATED");
    app.gql(ada.token(), "mutation { signOut }", json!({}))
        .await
        .assert_code("UNAUTHENTICATED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_access_tokens_work_until_revoked_and_only_by_their_owner() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let bob = app.sign_up("Bob").await;
    let created = app
        .gql(
            ada.token(),
            "mutation { createAccessToken(name: \" CI script \") { token id name } }",
            json!({}),
        )
        .await;
    let pat = created.data("createAccessToken").clone();
    assert_eq!(pat["name"], "CI script");
    let pat_token = pat["token"].as_str().expect("token");
    assert!(pat_token.starts_with("lkp_"));
    let me = app.gql(Some(pat_token), ME, json!({})).await;
    assert_eq!(me.data("me")["id"], ada.id.as_str());

    let revoke = "mutation($id: ID!) { revokeAccessToken(id: $id) }";
    app.gql(bob.token(), revoke, json!({ "id": pat["id"] }))
        .await
        .assert_code("NOT_FOUND");
    app.gql(Some(pat_token), ME, json!({})).await.data("me");
    let res = app
        .gql(ada.token(), revoke, json!({ "id": pat["id"] }))
        .await;
    assert_eq!(res.data("revokeAccessToken"), true);
    app.gql(Some(pat_token), ME, json!({}))
        .await
        .assert_code("UNAUTHENTICATED");
    app.gql(ada.token(), ME, json!({})).await.data("me");
    app.gql(
        ada.token(),
        "mutation { createAccessToken(name: \"\") { id } }",
        json!({}),
    )
    .await
    .assert_code("BAD_USER_INPUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_and_unknown_tokens_are_unauthenticated() {
    let app = TestApp::new().await;
    app.gql(None, ME, json!({}))
        .await
        .assert_code("UNAUTHENTICATED");
    app.gql(Some("lks_made_up"), ME, json!({}))
        .await
        .assert_code("UNAUTHENTICATED");
    app.gql(None, "{ workspaces { id } }", json!({}))
        .await
        .assert_code("UNAUTHENTICATED");
    app.gql(
        None,
        "mutation { createWorkspace(name: \"x\") { id } }",
        json!({}),
    )
    .await
    .assert_code("UNAUTHENTICATED");
}
