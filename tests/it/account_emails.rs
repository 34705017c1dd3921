//! Sign-up, verification and password-reset emails, delivered over real SMTP and followed.

use diesel_async::RunQueryDsl as _;
use serde_json::json;

use crate::harness::{TestApp, PASSWORD};

const SIGN_UP: &str = "mutation($e: String!, $p: String!) {
  signUp(email: $e, password: $p, name: \"Ada\") { email session { token } } }";
const COMPLETE: &str = "mutation($t: String!) {
  completeSignUp(token: $t) { token user { id email emailVerified activeWorkspace { name viewerRole } } } }";
const SIGN_IN: &str =
    "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }";

/// Signing up makes nothing until the emailed link is followed: then the account (its
/// address proven), its first workspace and a session. The link works once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_emails_a_link_that_opens_the_account_once() {
    let app = TestApp::builder().with_workers().start().await;
    let email = "ada.lovelace@example.com";
    let res = app
        .gql(
            None,
            SIGN_UP,
            json!({ "e": format!("  {email} "), "p": PASSWORD }),
        )
        .await;
    assert_eq!(
        res.data("signUp"),
        &json!({ "email": email, "session": null })
    );
    // No account yet: the password opens nothing.
    app.gql(None, SIGN_IN, json!({ "e": email, "p": PASSWORD }))
        .await
        .assert_code("UNAUTHENTICATED");
    let mail = app
        .mail
        .wait_for(email, "complete-sign-up", 1)
        .await
        .remove(0);
    assert_eq!(mail.subject(), "Finish signing up for Link AI");
    assert!(mail
        .decoded
        .contains("http://localhost:3000/complete-sign-up?token=lka_"));
    let opened = app.gql(None, COMPLETE, json!({ "t": mail.token() })).await;
    let payload = opened.data("completeSignUp");
    assert_eq!(payload["user"]["email"], email);
    assert_eq!(payload["user"]["emailVerified"], true);
    assert_eq!(
        payload["user"]["activeWorkspace"],
        json!({ "name": "Ada's Workspace", "viewerRole": "OWNER" })
    );
    let token = payload["token"].as_str().expect("session");
    let me = app.gql(Some(token), "{ me { email } }", json!({})).await;
    assert_eq!(me.data("me")["email"], email);
    app.gql(None, COMPLETE, json!({ "t": mail.token() }))
        .await
        .assert_code("NOT_FOUND");
    app.gql(None, COMPLETE, json!({ "t": "lka_forged" }))
        .await
        .assert_code("NOT_FOUND");
    assert!(app
        .gql(None, SIGN_IN, json!({ "e": email, "p": PASSWORD }))
        .await
        .data("signIn")["token"]
        .is_string());
}

/// Issue 15: `signUp` with a taken address said so. Now a taken and a new address get the
/// same answer from the same work (counted), the account's owner is told by email instead
/// of a link, and the stranger holds nothing: no session, no account, and their password
/// opens nothing. At most 3 sign-up emails an hour reach one address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_address_answers_as_a_new_one_and_its_owner_is_told() {
    let app = TestApp::builder().with_workers().start().await;
    let ada = app.sign_up("Ada").await;
    let stranger = "their own password";
    let taken = app
        .gql(
            None,
            SIGN_UP,
            json!({ "e": ada.email.to_uppercase(), "p": stranger }),
        )
        .await;
    let new = app
        .gql(
            None,
            SIGN_UP,
            json!({ "e": "grace@example.com", "p": stranger }),
        )
        .await;
    assert_eq!(taken.data("signUp")["session"], json!(null));
    assert_eq!(new.data("signUp")["session"], json!(null));
    assert_eq!(taken.data("signUp")["email"], ada.email.to_uppercase());
    assert_eq!(taken.sql_statements(), new.sql_statements());

    let notices = || {
        app.mail
            .to(&ada.email)
            .into_iter()
            .filter(|m| m.subject() == "Someone tried to sign up to Link AI with your address")
            .collect::<Vec<_>>()
    };
    let told = app
        .mail
        .wait_until(
            |_| !notices().is_empty(),
            std::time::Duration::from_secs(30),
        )
        .await;
    assert!(told.is_some(), "no notice to the owner");
    let notice = notices().remove(0);
    assert!(notice
        .decoded
        .contains("http://localhost:3000/reset-password"));
    assert!(
        !notice.decoded.contains("?token="),
        "no link that does anything"
    );
    app.mail
        .wait_for("grace@example.com", "complete-sign-up", 1)
        .await;

    // The stranger's password opens nothing; Ada's still works.
    app.gql(None, SIGN_IN, json!({ "e": ada.email, "p": stranger }))
        .await
        .assert_code("UNAUTHENTICATED");
    assert!(app
        .gql(None, SIGN_IN, json!({ "e": ada.email, "p": PASSWORD }))
        .await
        .data("signIn")["token"]
        .is_string());

    // Sign-ups to one address past its hourly share of 3 emails send nothing more (Ada's
    // own link went with the request it finished).
    for _ in 0..4 {
        app.gql(None, SIGN_UP, json!({ "e": ada.email, "p": stranger }))
            .await
            .data("signUp");
    }
    // Wait until the worker has handled every request to the address (sent, or forgotten
    // as over the share), then count.
    let unhandled = || async {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query(format!(
            "SELECT count(*) AS n FROM sign_up_requests
             WHERE lower(email) = lower('{}') AND sent_at IS NULL",
            ada.email
        ))
        .get_result::<Count>(&mut app.db.conn().await)
        .await
        .expect("count")
        .n
    };
    for _ in 0..300 {
        if unhandled().await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(unhandled().await, 0);
    assert_eq!(notices().len(), 3);
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
    // Issue 15: a known address took 3.4 ms against 1.8 ms for an unknown one. Now both do
    // the same work (the worker finds the account), counted exactly rather than timed.
    // (Context statements are left out: they depend on what the pooled connection did
    // before, here the workers' jobs.)
    assert_eq!(unknown.sql_statements(), known.sql_statements());

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

/// Issue 15's takeover chain, replayed on an account from before sign-ups were confirmed by
/// email (so its address is unproven; new sign-ups cannot make one, see above): someone
/// registered another person's address and keeps a session; the real person resets the
/// password through the emailed link and joins a workspace. The early session must see
/// nothing of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_reset_evicts_whoever_registered_the_address_first() {
    let app = TestApp::builder().with_workers().start().await;
    let squatter = app.sign_up("Grace").await;
    app.unprove_email(&squatter).await;
    // An unproven address cannot make access tokens at all.
    app.gql(
        squatter.token(),
        "mutation { createAccessToken(name: \"keep\") { token } }",
        json!({}),
    )
    .await
    .assert_code("FORBIDDEN");
    let kept = squatter.token().expect("session").to_owned();

    // The real Grace cannot sign up, so she resets the password from her inbox.
    app.gql(
        None,
        "mutation($e: String!) { requestPasswordReset(email: $e) }",
        json!({ "e": squatter.email }),
    )
    .await
    .data("requestPasswordReset");
    let token = app
        .mail
        .wait_for(&squatter.email, "reset-password", 1)
        .await[0]
        .token();
    app.gql(
        None,
        "mutation($t: String!) { resetPassword(token: $t, password: \"grace's own password\") }",
        json!({ "t": token }),
    )
    .await
    .data("resetPassword");

    // An agency invites her; she signs in and accepts.
    let agency = app.sign_up("Agency").await;
    app.invite(&agency, &agency.own_workspace, &squatter.email, "ADMIN")
        .await;
    let link = app
        .mail
        .wait_for(&squatter.email, "invitations/accept", 1)
        .await[0]
        .token();
    let grace = app
        .gql(
            None,
            "mutation($e: String!) { signIn(email: $e, password: \"grace's own password\") { token } }",
            json!({ "e": squatter.email }),
        )
        .await
        .data("signIn")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    app.gql(
        Some(&grace),
        "mutation($t: String!) { acceptInvitation(token: $t) { id } }",
        json!({ "t": link }),
    )
    .await
    .data("acceptInvitation");

    // The squatter's session is dead: no workspace, no account.
    for early in [kept.as_str()] {
        let res = app
            .gql(Some(early), "{ me { id } workspaces { id } }", json!({}))
            .await;
        res.assert_code("UNAUTHENTICATED");
        assert_eq!(res.body["data"], json!({ "me": null, "workspaces": null }));
    }
    let hers = app
        .gql(Some(&grace), "{ workspaces { id } }", json!({}))
        .await;
    assert_eq!(hers.data("workspaces").as_array().map(Vec::len), Some(2));
}

/// The same chain through the verification link, on an account from before sign-ups were
/// confirmed: a verification link reaches the real owner; following it (from her own
/// inbox, with no session) proves the address and ends every session made before, so the
/// squatter is signed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proving_the_address_signs_out_whoever_registered_it_first() {
    let app = TestApp::builder().with_workers().start().await;
    let squatter = app.sign_up("Grace").await;
    app.unprove_email(&squatter).await;
    let me = "{ me { id } }";
    assert!(app
        .gql(squatter.token(), me, json!({}))
        .await
        .data("me")
        .is_object());
    app.gql(
        squatter.token(),
        "mutation { resendVerificationEmail }",
        json!({}),
    )
    .await
    .data("resendVerificationEmail");
    let link = app.mail.wait_for(&squatter.email, "verify-email", 1).await[0].token();
    let verified = app
        .gql(
            None,
            "mutation($t: String!) { verifyEmail(token: $t) { emailVerified } }",
            json!({ "t": link }),
        )
        .await;
    assert_eq!(verified.data("verifyEmail")["emailVerified"], true);
    app.gql(squatter.token(), me, json!({}))
        .await
        .assert_code("UNAUTHENTICATED");
}

/// `changePassword` needs the current password, signs out every other session and token,
/// answers a new session, and tells the address by email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_password_signs_out_everywhere_else_and_says_so() {
    let app = TestApp::builder().with_workers().start().await;
    let ada = app.sign_up("Ada").await;
    let pat = app
        .gql(
            ada.token(),
            "mutation { createAccessToken(name: \"script\") { token } }",
            json!({}),
        )
        .await
        .data("createAccessToken")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let change = "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) { token user { id } } }";
    app.gql(
        Some(&pat),
        change,
        json!({ "c": PASSWORD, "n": "a whole new password" }),
    )
    .await
    .assert_code("FORBIDDEN");
    let wrong = app
        .gql(
            ada.token(),
            change,
            json!({ "c": "not my password", "n": "a whole new password" }),
        )
        .await;
    wrong.assert_code("FORBIDDEN");
    app.gql(ada.token(), change, json!({ "c": PASSWORD, "n": "short" }))
        .await
        .assert_code("BAD_USER_INPUT");

    let changed = app
        .gql(
            ada.token(),
            change,
            json!({ "c": PASSWORD, "n": "a whole new password" }),
        )
        .await;
    let fresh = changed.data("changePassword")["token"]
        .as_str()
        .expect("a new session")
        .to_owned();
    let me = "{ me { id } }";
    for old in [ada.token.as_str(), pat.as_str()] {
        app.gql(Some(old), me, json!({}))
            .await
            .assert_code("UNAUTHENTICATED");
    }
    assert_eq!(
        app.gql(Some(&fresh), me, json!({})).await.data("me")["id"],
        ada.id
    );
    let sign_in =
        "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }";
    app.gql(None, sign_in, json!({ "e": ada.email, "p": PASSWORD }))
        .await
        .assert_code("UNAUTHENTICATED");
    app.gql(
        None,
        sign_in,
        json!({ "e": ada.email, "p": "a whole new password" }),
    )
    .await
    .data("signIn");
    let told = app
        .mail
        .wait_until(
            |sink| {
                sink.to(&ada.email)
                    .iter()
                    .any(|m| m.subject() == "Your Link AI password was changed")
            },
            std::time::Duration::from_secs(30),
        )
        .await;
    assert!(told.is_some(), "{:#?}", app.mail.to(&ada.email));
}

/// `deleteAccount`: refused while the account owns a workspace others belong to; then it
/// deletes the account with the workspaces only it belonged to, leaves shared ones with
/// their data, signs everything out and tells the address, which can sign up afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_account_keeps_what_others_share_and_says_so() {
    let app = TestApp::builder().with_workers().start().await;
    let ada = app.sign_up("Ada").await;
    let bob = app.sign_up("Bob").await;
    let shared = app.create_workspace(&ada, "Shared").await;
    app.add_member(&shared, &bob, "admin").await;
    let delete = "mutation($p: String!) { deleteAccount(password: $p) }";
    app.gql(ada.token(), delete, json!({ "p": "not it" }))
        .await
        .assert_code("FORBIDDEN");
    let refused = app.gql(ada.token(), delete, json!({ "p": PASSWORD })).await;
    refused.assert_code("CONFLICT");
    assert!(
        refused.message().contains("Shared"),
        "{}",
        refused.message()
    );
    let me = "{ me { id } }";
    assert_eq!(
        app.gql(ada.token(), me, json!({})).await.data("me")["id"],
        ada.id
    );

    app.gql(
        ada.token(),
        "mutation($ws: ID!, $u: ID!) { transferOwnership(workspaceId: $ws, userId: $u) { id } }",
        json!({ "ws": shared, "u": bob.id }),
    )
    .await
    .data("transferOwnership");
    let deleted = app.gql(ada.token(), delete, json!({ "p": PASSWORD })).await;
    assert_eq!(deleted.data("deleteAccount"), true);

    app.gql(ada.token(), me, json!({}))
        .await
        .assert_code("UNAUTHENTICATED");
    // Her own workspace is deleted; the shared one is Bob's, without her.
    let mut conn = app.db.conn().await;
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let gone: Count = diesel::sql_query(format!(
        "SELECT count(*) AS n FROM workspaces WHERE id = '{}' AND deleted_at IS NOT NULL",
        ada.own_workspace
    ))
    .get_result(&mut conn)
    .await
    .expect("counted");
    assert_eq!(gone.n, 1);
    let members = app
        .gql(
            bob.token(),
            "query($ws: ID!) { workspace(id: $ws) { members { totalCount } } }",
            json!({ "ws": shared }),
        )
        .await;
    assert_eq!(members.data("workspace")["members"]["totalCount"], 1);

    let told = app
        .mail
        .wait_until(
            |sink| {
                sink.to(&ada.email)
                    .iter()
                    .any(|m| m.subject() == "Your Link AI account was deleted")
            },
            std::time::Duration::from_secs(30),
        )
        .await;
    assert!(told.is_some(), "{:#?}", app.mail.to(&ada.email));
    // The address is free again: signing up with it emails a link, not a notice.
    app.gql(None, SIGN_UP, json!({ "e": ada.email, "p": PASSWORD }))
        .await
        .data("signUp");
    app.mail.wait_for(&ada.email, "complete-sign-up", 1).await;
}

/// `changeEmail` sends a link to the new address and tells the current one; the account
/// moves when the link is followed, and not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_address_takes_effect_from_the_new_inbox() {
    let app = TestApp::builder().with_workers().start().await;
    let ada = app.sign_up("Ada").await;
    let carol = app.sign_up("Carol").await;
    let change = "mutation($e: String!, $p: String!) { changeEmail(newEmail: $e, password: $p) }";
    let new = format!("new-{}", ada.email);
    app.gql(ada.token(), change, json!({ "e": new, "p": "wrong" }))
        .await
        .assert_code("FORBIDDEN");
    app.gql(
        ada.token(),
        change,
        json!({ "e": "not an address", "p": PASSWORD }),
    )
    .await
    .assert_code("BAD_USER_INPUT");
    let asked = app
        .gql(ada.token(), change, json!({ "e": new, "p": PASSWORD }))
        .await;
    assert_eq!(asked.data("changeEmail"), true);

    let link = app.mail.wait_for(&new, "confirm-email-change", 1).await[0].token();
    let told = app
        .mail
        .wait_until(
            |sink| {
                sink.to(&ada.email).iter().any(|m| {
                    m.subject() == "Your Link AI sign-in address is changing"
                        && m.decoded.contains(&new)
                })
            },
            std::time::Duration::from_secs(30),
        )
        .await;
    assert!(told.is_some(), "{:#?}", app.mail.to(&ada.email));
    let sign_in =
        "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }";
    // Nothing moved yet.
    app.gql(None, sign_in, json!({ "e": ada.email, "p": PASSWORD }))
        .await
        .data("signIn");

    let confirm = "mutation($t: String!) { confirmEmailChange(token: $t) { email emailVerified } }";
    let moved = app.gql(None, confirm, json!({ "t": link })).await;
    assert_eq!(moved.data("confirmEmailChange")["email"], new.as_str());
    assert_eq!(moved.data("confirmEmailChange")["emailVerified"], true);
    app.gql(None, confirm, json!({ "t": link }))
        .await
        .assert_code("NOT_FOUND");
    // Confirmed from another device: the session from before the move ended with it.
    app.gql(ada.token(), "{ me { email } }", json!({}))
        .await
        .assert_code("UNAUTHENTICATED");
    let fresh = app.session(&new, PASSWORD).await;
    app.gql(None, sign_in, json!({ "e": ada.email, "p": PASSWORD }))
        .await
        .assert_code("UNAUTHENTICATED");

    // Asking for a taken address answers the same; following the link is a CONFLICT.
    let asked = app
        .gql(
            Some(&fresh),
            change,
            json!({ "e": carol.email, "p": PASSWORD }),
        )
        .await;
    assert_eq!(asked.data("changeEmail"), true);
    let link = app
        .mail
        .wait_for(&carol.email, "confirm-email-change", 1)
        .await[0]
        .token();
    app.gql(None, confirm, json!({ "t": link }))
        .await
        .assert_code("CONFLICT");
}

const CHANGE_EMAIL: &str =
    "mutation($e: String!, $p: String!) { changeEmail(newEmail: $e, password: $p) }";
const CONFIRM_EMAIL: &str = "mutation($t: String!) { confirmEmailChange(token: $t) { email } }";
const RESET: &str = "mutation($t: String!, $p: String!) { resetPassword(token: $t, password: $p) }";

/// Issue 27's takeover, replayed: someone who knew Ada's password signs in and asks to move
/// her account to an address they read. Ada sees the notice and resets her password. Before,
/// the attacker's link still moved the account within 24 hours; now the reset voids it (and
/// every other pending link), and the attacker's session is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_voids_an_address_change_asked_before_it() {
    let app = TestApp::builder().with_workers().start().await;
    let ada = app.sign_up("Ada").await;
    let theirs = format!("attacker-{}", ada.email);
    let attacker = app.session(&ada.email, PASSWORD).await;
    let asked = app
        .gql(
            Some(&attacker),
            CHANGE_EMAIL,
            json!({ "e": theirs, "p": PASSWORD }),
        )
        .await;
    assert_eq!(asked.data("changeEmail"), true);
    let stolen = app.mail.wait_for(&theirs, "confirm-email-change", 1).await[0].token();

    // Ada resets her password from the emailed link.
    app.gql(
        None,
        "mutation($e: String!) { requestPasswordReset(email: $e) }",
        json!({ "e": ada.email }),
    )
    .await;
    let link = app.mail.wait_for(&ada.email, "reset-password", 1).await[0].token();
    let reset = app
        .gql(None, RESET, json!({ "t": link, "p": "ada's new password" }))
        .await;
    assert_eq!(reset.data("resetPassword"), true);

    app.gql(None, CONFIRM_EMAIL, json!({ "t": stolen }))
        .await
        .assert_code("NOT_FOUND");
    app.gql(Some(&attacker), "{ me { email } }", json!({}))
        .await
        .assert_code("UNAUTHENTICATED");
    let res = app
        .gql(
            None,
            SIGN_IN,
            json!({ "e": ada.email, "p": "ada's new password" }),
        )
        .await;
    let session = res.data("signIn")["token"].as_str().expect("a session");
    let me = app
        .gql(
            Some(session),
            "{ me { email securityLog(first: 5) { edges { node { action details } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(me.data("me")["email"], ada.email.as_str());
    let events = me.data("me")["securityLog"]["edges"]
        .as_array()
        .expect("events")
        .clone();
    let reset = events
        .iter()
        .map(|edge| &edge["node"])
        .find(|event| event["action"] == "PASSWORD_RESET")
        .expect("the reset is logged");
    assert_eq!(reset["details"]["linksVoided"], 1, "{reset:#}");
}

/// Changing the password (signed in, with the current one) voids every link asked for
/// under the old one too: a verification link and a reset link stop working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_voids_pending_links() {
    let app = TestApp::builder().with_workers().start().await;
    let ada = app.sign_up("Ada").await;
    app.unprove_email(&ada).await;
    app.gql(
        ada.token(),
        "mutation { resendVerificationEmail }",
        json!({}),
    )
    .await
    .data("resendVerificationEmail");
    let verify = app.mail.wait_for(&ada.email, "verify-email", 1).await[0].token();
    app.gql(
        None,
        "mutation($e: String!) { requestPasswordReset(email: $e) }",
        json!({ "e": ada.email }),
    )
    .await;
    let reset = app.mail.wait_for(&ada.email, "reset-password", 1).await[0].token();

    let change = "mutation($c: String!) { changePassword(currentPassword: $c, newPassword: \"ada's next password\") { token } }";
    app.gql(ada.token(), change, json!({ "c": PASSWORD }))
        .await
        .data("changePassword");

    app.gql(
        None,
        "mutation($t: String!) { verifyEmail(token: $t) { id } }",
        json!({ "t": verify }),
    )
    .await
    .assert_code("NOT_FOUND");
    app.gql(None, RESET, json!({ "t": reset, "p": "someone else's" }))
        .await
        .assert_code("NOT_FOUND");
    app.gql(
        None,
        SIGN_IN,
        json!({ "e": ada.email, "p": "ada's next password" }),
    )
    .await
    .data("signIn");
}

/// Confirming an address change ends every other session and personal token, as a reset
/// does, keeps the session it was confirmed from, and says so in the security log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirming_an_address_change_ends_every_other_session_and_token() {
    let app = TestApp::builder().with_workers().start().await;
    let ada = app.sign_up("Ada").await;
    let elsewhere = app.session(&ada.email, PASSWORD).await;
    let script = app
        .gql(
            ada.token(),
            "mutation { createAccessToken(name: \"script\") { token } }",
            json!({}),
        )
        .await
        .data("createAccessToken")["token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let new = format!("moved-{}", ada.email);
    app.gql(
        ada.token(),
        CHANGE_EMAIL,
        json!({ "e": new, "p": PASSWORD }),
    )
    .await
    .data("changeEmail");
    let link = app.mail.wait_for(&new, "confirm-email-change", 1).await[0].token();
    let moved = app
        .gql(ada.token(), CONFIRM_EMAIL, json!({ "t": link }))
        .await;
    assert_eq!(moved.data("confirmEmailChange")["email"], new.as_str());

    for gone in [&elsewhere, &script] {
        app.gql(Some(gone), "{ me { email } }", json!({}))
            .await
            .assert_code("UNAUTHENTICATED");
    }
    let me = app
        .gql(
            ada.token(),
            "{ me { email securityLog(first: 1) { edges { node { action details } } } } }",
            json!({}),
        )
        .await;
    let event = &me.data("me")["securityLog"]["edges"][0]["node"];
    assert_eq!(event["action"], "EMAIL_CHANGED");
    assert_eq!(event["details"]["revoked"], 2, "{event:#}");
    assert_eq!(event["details"]["to"], new.as_str());
}

/// The review of issue 27's first fix: a reset and an address change confirmed at the same
/// moment locked the same rows in opposite orders, and PostgreSQL's deadlock answered
/// INTERNAL. Every use of a link now locks the account first, so they run one after the
/// other, and whichever is first voids the other's link (a reset ends the move; the move
/// ends a reset link sent to the old address): one succeeds, the other is NOT_FOUND.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_and_an_address_change_at_once_run_one_after_the_other() {
    let app = TestApp::builder().with_workers().start().await;
    let ada = app.sign_up("Ada").await;
    let mut email = ada.email.clone();
    let mut password = PASSWORD.to_owned();
    let mut resets_here = 0;
    for round in 0..3 {
        let session = app.session(&email, &password).await;
        let new = format!("round{round}-{}", ada.email);
        app.gql(
            Some(&session),
            CHANGE_EMAIL,
            json!({ "e": new, "p": password }),
        )
        .await
        .data("changeEmail");
        let change = app.mail.wait_for(&new, "confirm-email-change", 1).await[0].token();
        app.gql(
            None,
            "mutation($e: String!) { requestPasswordReset(email: $e) }",
            json!({ "e": email }),
        )
        .await;
        resets_here += 1;
        let resets = app
            .mail
            .wait_for(&email, "reset-password", resets_here)
            .await;
        let reset = resets[resets_here - 1].token();
        let next = format!("password of round {round}");
        // Both start while the account's row is held elsewhere, so both are inside their
        // transactions, holding what they locked before it, when it is let go.
        let mut holder = app.db.conn().await;
        for sql in [
            "BEGIN".to_owned(),
            format!("SELECT id FROM users WHERE id = '{}' FOR UPDATE", ada.id),
        ] {
            diesel::sql_query(sql)
                .execute(&mut holder)
                .await
                .expect("held");
        }
        let release = async {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            diesel::sql_query("ROLLBACK")
                .execute(&mut holder)
                .await
                .expect("let go");
        };
        let (confirmed, was_reset, ()) = tokio::join!(
            app.gql(None, CONFIRM_EMAIL, json!({ "t": change })),
            app.gql(None, RESET, json!({ "t": reset, "p": next })),
            release,
        );
        match (confirmed.code(), was_reset.code()) {
            (None, Some("NOT_FOUND")) => {
                email = new;
                resets_here = 0;
            }
            (Some("NOT_FOUND"), None) => password = next,
            other => panic!("{other:?}: {:#} {:#}", confirmed.body, was_reset.body),
        }
    }
    app.session(&email, &password).await;
}

/// A sign-up email sent again because the record of the first send was lost (its worker
/// died, or PostgreSQL dropped, in between) carries a second link; the first still opens
/// the account, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_sign_up_email_leaves_the_first_link_working() {
    let app = TestApp::builder().with_workers().start().await;
    let email = "retried@example.com";
    app.gql(None, SIGN_UP, json!({ "e": email, "p": PASSWORD }))
        .await
        .data("signUp");
    let first = app.mail.wait_for(email, "complete-sign-up", 1).await[0].token();
    let mut conn = app.db.conn().await;
    diesel::sql_query("UPDATE sign_up_requests SET sent_at = NULL")
        .execute(&mut conn)
        .await
        .expect("the record is lost");
    diesel::sql_query(
        "INSERT INTO outbox (job)
         SELECT jsonb_build_object('type', 'process_sign_up', 'request_id', id)
         FROM sign_up_requests",
    )
    .execute(&mut conn)
    .await
    .expect("the send is retried");
    let second = app.mail.wait_for(email, "complete-sign-up", 2).await[1].token();
    assert_ne!(first, second);
    let opened = app.gql(None, COMPLETE, json!({ "t": first })).await;
    assert_eq!(opened.data("completeSignUp")["user"]["email"], email);
    app.gql(None, COMPLETE, json!({ "t": second }))
        .await
        .assert_code("NOT_FOUND");
}
