//! Verification and password-reset emails, delivered over real SMTP and followed.

use serde_json::json;

use crate::harness::{TestApp, PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_emails_a_verification_link_that_works_once() {
    let app = TestApp::builder().with_workers().start().await;
    let ada = app.sign_up("Ada").await;
    let email = app
        .mail
        .wait_for(&ada.email, "verify-email", 1)
        .await
        .remove(0);
    assert_eq!(email.subject(), "Confirm your email address for Link AI");
    assert!(email
        .decoded
        .contains("http://localhost:3000/verify-email?token=lka_"));
    let verify = "mutation($t: String!) { verifyEmail(token: $t) { id emailVerified } }";
    let res = app.gql(None, verify, json!({ "t": email.token() })).await;
    assert_eq!(res.data("verifyEmail")["emailVerified"], true);
    assert_eq!(res.data("verifyEmail")["id"], ada.id.as_str());
    app.gql(None, verify, json!({ "t": email.token() }))
        .await
        .assert_code("NOT_FOUND");
    app.gql(None, verify, json!({ "t": "lka_forged" }))
        .await
        .assert_code("NOT_FOUND");
    let me = app
        .gql(ada.token(), "{ me { emailVerified } }", json!({}))
        .await;
    assert_eq!(me.data("me")["emailVerified"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_reset_answers_the_same_for_anyone_and_signs_out_everywhere() {
    let app = TestApp::builder().with_workers().start().await;
    let ada = app.sign_up("Ada").await;
    let request = "mutation($e: String!) { requestPasswordReset(email: $e) }";
    let unknown = app
        .gql(None, request, json!({ "e": "nobody@example.com" }))
        .await;
    let known = app
        .gql(None, request, json!({ "e": ada.email.to_uppercase() }))
        .await;
    assert_eq!(unknown.body["data"], known.body["data"]);
    assert_eq!(known.data("requestPasswordReset"), true);

    let reset_mail = app
        .mail
        .wait_for(&ada.email, "reset-password", 1)
        .await
        .remove(0);
    assert_eq!(reset_mail.subject(), "Reset your Link AI password");
    let token = reset_mail.token();
    let reset = "mutation($t: String!, $p: String!) { resetPassword(token: $t, password: $p) }";
    app.gql(None, reset, json!({ "t": token, "p": "short" }))
        .await
        .assert_code("BAD_USER_INPUT");
    let res = app
        .gql(
            None,
            reset,
            json!({ "t": token, "p": "a brand new password" }),
        )
        .await;
    assert_eq!(res.data("resetPassword"), true);
    app.gql(
        None,
        reset,
        json!({ "t": token, "p": "another new password" }),
    )
    .await
    .assert_code("NOT_FOUND");

    app.gql(ada.token(), "{ me { id } }", json!({}))
        .await
        .assert_code("UNAUTHENTICATED");
    let sign_in =
        "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }";
    app.gql(None, sign_in, json!({ "e": ada.email, "p": PASSWORD }))
        .await
        .assert_code("UNAUTHENTICATED");
    app.gql(
        None,
        sign_in,
        json!({ "e": ada.email, "p": "a brand new password" }),
    )
    .await
    .data("signIn");
    assert!(app.mail.to("nobody@example.com").is_empty());
}
