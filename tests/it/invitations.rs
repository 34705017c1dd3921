//! Invitations end to end: the email arrives over real SMTP, its link token is followed.

use diesel_async::RunQueryDsl;
use serde_json::{json, Value};

use crate::harness::{Actor, TestApp};

const PREVIEW: &str = "query($t: String!) { invitation(token: $t) {
  workspaceName invitedByName email role status expiresAt } }";
const ACCEPT: &str = "mutation($t: String!) { acceptInvitation(token: $t) { id name viewerRole } }";
const RESEND: &str = "mutation($ws: ID!, $id: ID!) { resendInvitation(workspaceId: $ws, invitationId: $id) { id status expiresAt } }";
const REVOKE: &str = "mutation($ws: ID!, $id: ID!) { revokeInvitation(workspaceId: $ws, invitationId: $id) { id status } }";
const LIST: &str = "query($ws: ID!) { workspace(id: $ws) { invitations(first: 50) {
  totalCount edges { node { id email role status invitedBy { name } } } } } }";

async fn invitations(app: &TestApp, actor: &Actor, workspace: &str) -> Value {
    app.gql(actor.token(), LIST, json!({ "ws": workspace }))
        .await
        .data("workspace")["invitations"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invited_user_follows_the_emailed_link_and_joins() {
    let app = TestApp::builder().with_workers().start().await;
    let ada = app.sign_up("Ada").await;
    let bob = app.sign_up("Bob").await;
    // An account from before sign-ups were confirmed: accepting proves its address.
    app.unprove_email(&bob).await;
    app.gql(
        ada.token(),
        "mutation($ws: ID!, $n: String!) { renameWorkspace(workspaceId: $ws, name: $n) { id } }",
        json!({ "ws": ada.own_workspace, "n": "Ada & Co <Agency>" }),
    )
    .await
    .data("renameWorkspace");
    let invitation_id = app
        .invite(
            &ada,
            &ada.own_workspace,
            &bob.email.to_uppercase(),
            "MEMBER",
        )
        .await;

    let email = app
        .mail
        .wait_for(&bob.email, "invitations/accept", 1)
        .await
        .remove(0);
    assert_eq!(
        email.subject(),
        "Ada invited you to Ada & Co <Agency> on Link AI"
    );
    assert!(
        email.decoded.contains("Ada &amp; Co &lt;Agency&gt;"),
        "HTML escaped"
    );
    assert!(email
        .decoded
        .contains("http://localhost:3000/invitations/accept?token=lki_"));
    let token = email.token();
    assert!(token.len() >= 47, "at least 256 bits: {token}");

    let preview = app.gql(None, PREVIEW, json!({ "t": token })).await;
    let preview = preview.data("invitation");
    assert_eq!(preview["workspaceName"], "Ada & Co <Agency>");
    assert_eq!(preview["invitedByName"], "Ada");
    assert_eq!(preview["role"], "MEMBER");
    assert_eq!(preview["status"], "PENDING");

    let listed = invitations(&app, &ada, &ada.own_workspace).await;
    assert_eq!(listed["edges"][0]["node"]["id"], invitation_id.as_str());
    assert_eq!(listed["edges"][0]["node"]["invitedBy"]["name"], "Ada");

    let joined = app.gql(bob.token(), ACCEPT, json!({ "t": token })).await;
    let joined = joined.data("acceptInvitation");
    assert_eq!(joined["id"], ada.own_workspace.as_str());
    assert_eq!(joined["viewerRole"], "MEMBER");
    let me = app
        .gql(
            bob.token(),
            "{ me { emailVerified } workspaces { id } }",
            json!({}),
        )
        .await;
    assert_eq!(me.data("me")["emailVerified"], true);
    assert_eq!(
        me.body["data"]["workspaces"]
            .as_array()
            .expect("list")
            .len(),
        2
    );

    // Single use.
    let again = app.gql(bob.token(), ACCEPT, json!({ "t": token })).await;
    again.assert_code("NOT_FOUND");
    let preview = app.gql(None, PREVIEW, json!({ "t": token })).await;
    assert_eq!(preview.data("invitation")["status"], "ACCEPTED");
    assert_eq!(
        invitations(&app, &ada, &ada.own_workspace).await["edges"][0]["node"]["status"],
        "ACCEPTED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_expired_revoked_used_and_foreign_tokens_get_the_same_answer() {
    let app = TestApp::builder().with_workers().start().await;
    let ada = app.sign_up("Ada").await;
    let bob = app.sign_up("Bob").await;
    let carol = app.sign_up("Carol").await;
    let dan = app.sign_up("Dan").await;
    app.invite(&ada, &ada.own_workspace, &bob.email, "VIEWER")
        .await;
    let carol_invitation = app
        .invite(&ada, &ada.own_workspace, &carol.email, "VIEWER")
        .await;
    app.invite(&ada, &ada.own_workspace, &dan.email, "VIEWER")
        .await;
    let bob_token = app.mail.wait_for(&bob.email, "invitations/accept", 1).await[0].token();
    let carol_token = app
        .mail
        .wait_for(&carol.email, "invitations/accept", 1)
        .await[0]
        .token();
    let dan_token = app.mail.wait_for(&dan.email, "invitations/accept", 1).await[0].token();

    let garbage = app
        .gql(carol.token(), ACCEPT, json!({ "t": "lki_not-a-token" }))
        .await;
    garbage.assert_code("NOT_FOUND");
    let expected = garbage.body["errors"][0]["message"].clone();

    // Foreign: Bob's link in Carol's hands.
    let foreign = app
        .gql(carol.token(), ACCEPT, json!({ "t": bob_token }))
        .await;
    // Revoked.
    app.gql(
        ada.token(),
        REVOKE,
        json!({ "ws": ada.own_workspace, "id": carol_invitation }),
    )
    .await
    .data("revokeInvitation");
    let revoked = app
        .gql(carol.token(), ACCEPT, json!({ "t": carol_token }))
        .await;
    // Expired.
    let mut conn = app.db.conn().await;
    diesel::sql_query(format!(
        "UPDATE invitations SET expires_at = now() - interval '1 second' WHERE lower(email) = lower('{}')",
        dan.email
    ))
    .execute(&mut conn)
    .await
    .expect("expired");
    let expired = app
        .gql(dan.token(), ACCEPT, json!({ "t": dan_token }))
        .await;
    for res in [&foreign, &revoked, &expired] {
        res.assert_code("NOT_FOUND");
        assert_eq!(res.body["errors"][0]["message"], expected);
    }
    let preview = app.gql(None, PREVIEW, json!({ "t": dan_token })).await;
    assert_eq!(preview.data("invitation")["status"], "EXPIRED");
    // Bob's own link still works after Carol tried it.
    let joined = app
        .gql(bob.token(), ACCEPT, json!({ "t": bob_token }))
        .await;
    assert_eq!(joined.data("acceptInvitation")["viewerRole"], "VIEWER");
    app.gql(None, ACCEPT, json!({ "t": bob_token }))
        .await
        .assert_code("UNAUTHENTICATED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_without_an_account_signs_up_from_the_link_with_the_address_proven() {
    let app = TestApp::builder().with_workers().start().await;
    let ada = app.sign_up("Ada").await;
    app.invite(&ada, &ada.own_workspace, "Newcomer@Example.com", "ADMIN")
        .await;
    let token = app
        .mail
        .wait_for("newcomer@example.com", "invitations/accept", 1)
        .await[0]
        .token();
    let sign_up = "mutation($e: String!, $t: String) { signUp(email: $e, password: \"correct horse battery\", name: \"Nina\", invitationToken: $t) {
        session { token user { emailVerified activeWorkspace { id viewerRole } } } } }";

    let wrong = app
        .gql(
            None,
            sign_up,
            json!({ "e": "someone.else@example.com", "t": token }),
        )
        .await;
    wrong.assert_code("NOT_FOUND");
    let nobody = app.gql(None, "mutation { signIn(email: \"someone.else@example.com\", password: \"correct horse battery\") { token } }", json!({})).await;
    nobody.assert_code("UNAUTHENTICATED");

    let res = app
        .gql(
            None,
            sign_up,
            json!({ "e": "newcomer@example.com", "t": token }),
        )
        .await;
    let user = &res.data("signUp")["session"]["user"];
    assert_eq!(user["emailVerified"], true);
    assert_eq!(user["activeWorkspace"]["id"], ada.own_workspace.as_str());
    assert_eq!(user["activeWorkspace"]["viewerRole"], "ADMIN");
    // Nothing to confirm and nothing else made: the invitation proved the address.
    let mut conn = app.db.conn().await;
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let pending: Count = diesel::sql_query("SELECT count(*) AS n FROM sign_up_requests")
        .get_result(&mut conn)
        .await
        .expect("count");
    assert_eq!(pending.n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_an_owner_invitation_hands_the_workspace_over() {
    let app = TestApp::builder().with_workers().start().await;
    let team = app.team().await;
    let client = app.sign_up("Client").await;
    let invite = "mutation($ws: ID!, $e: String!) { inviteMember(workspaceId: $ws, email: $e, role: OWNER) { id } }";
    app.gql(
        team.admin.token(),
        invite,
        json!({ "ws": team.workspace, "e": client.email }),
    )
    .await
    .assert_code("FORBIDDEN");
    app.gql(
        team.owner.token(),
        invite,
        json!({ "ws": team.workspace, "e": client.email }),
    )
    .await
    .data("inviteMember");
    let token = app
        .mail
        .wait_for(&client.email, "invitations/accept", 1)
        .await[0]
        .token();
    let res = app.gql(client.token(), ACCEPT, json!({ "t": token })).await;
    assert_eq!(res.data("acceptInvitation")["viewerRole"], "OWNER");
    let roles = app.roles_in(&team.workspace).await;
    let role = |id: &str| roles.iter().find(|(u, _)| u == id).map(|(_, r)| r.clone());
    assert_eq!(role(&client.id).as_deref(), Some("owner"));
    assert_eq!(role(&team.owner.id).as_deref(), Some("admin"));
    assert_eq!(roles.iter().filter(|(_, r)| r == "owner").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resending_rotates_the_link_and_revives_expired_invitations() {
    let app = TestApp::builder().with_workers().start().await;
    let ada = app.sign_up("Ada").await;
    let bob = app.sign_up("Bob").await;
    let id = app
        .invite(&ada, &ada.own_workspace, &bob.email, "MEMBER")
        .await;
    let first = app.mail.wait_for(&bob.email, "invitations/accept", 1).await[0].token();

    let mut conn = app.db.conn().await;
    diesel::sql_query(format!(
        "UPDATE invitations SET expires_at = now() - interval '1 day' WHERE id = '{id}'"
    ))
    .execute(&mut conn)
    .await
    .expect("expired");
    let listed = invitations(&app, &ada, &ada.own_workspace).await;
    assert_eq!(listed["edges"][0]["node"]["status"], "EXPIRED");

    let res = app
        .gql(
            ada.token(),
            RESEND,
            json!({ "ws": ada.own_workspace, "id": id }),
        )
        .await;
    assert_eq!(res.data("resendInvitation")["status"], "PENDING");
    let mails = app.mail.wait_for(&bob.email, "invitations/accept", 2).await;
    let second = mails[1].token();
    assert_ne!(first, second);
    app.gql(None, PREVIEW, json!({ "t": first }))
        .await
        .assert_code("NOT_FOUND");
    app.gql(bob.token(), ACCEPT, json!({ "t": first }))
        .await
        .assert_code("NOT_FOUND");
    let joined = app.gql(bob.token(), ACCEPT, json!({ "t": second })).await;
    assert_eq!(joined.data("acceptInvitation")["viewerRole"], "MEMBER");
    app.gql(
        ada.token(),
        RESEND,
        json!({ "ws": ada.own_workspace, "id": id }),
    )
    .await
    .assert_code("CONFLICT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_and_declined_invitations_stop_working() {
    let app = TestApp::builder().with_workers().start().await;
    let ada = app.sign_up("Ada").await;
    let bob = app.sign_up("Bob").await;
    let carol = app.sign_up("Carol").await;
    let bob_invitation = app
        .invite(&ada, &ada.own_workspace, &bob.email, "MEMBER")
        .await;
    app.invite(&ada, &ada.own_workspace, &carol.email, "MEMBER")
        .await;
    let bob_token = app.mail.wait_for(&bob.email, "invitations/accept", 1).await[0].token();
    let carol_token = app
        .mail
        .wait_for(&carol.email, "invitations/accept", 1)
        .await[0]
        .token();

    let res = app
        .gql(
            ada.token(),
            REVOKE,
            json!({ "ws": ada.own_workspace, "id": bob_invitation }),
        )
        .await;
    assert_eq!(res.data("revokeInvitation")["status"], "REVOKED");
    app.gql(
        ada.token(),
        REVOKE,
        json!({ "ws": ada.own_workspace, "id": bob_invitation }),
    )
    .await
    .assert_code("CONFLICT");
    app.gql(bob.token(), ACCEPT, json!({ "t": bob_token }))
        .await
        .assert_code("NOT_FOUND");

    let declined = app
        .gql(
            None,
            "mutation($t: String!) { declineInvitation(token: $t) }",
            json!({ "t": carol_token }),
        )
        .await;
    assert_eq!(declined.data("declineInvitation"), true);
    app.gql(carol.token(), ACCEPT, json!({ "t": carol_token }))
        .await
        .assert_code("NOT_FOUND");
    let statuses: Vec<Value> = invitations(&app, &ada, &ada.own_workspace).await["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["status"].clone())
        .collect();
    assert_eq!(statuses, [json!("REVOKED"), json!("DECLINED")]);
    let members = app
        .gql(
            ada.token(),
            "query($ws: ID!) { workspace(id: $ws) { members { totalCount } } }",
            json!({ "ws": ada.own_workspace }),
        )
        .await;
    assert_eq!(members.data("workspace")["members"]["totalCount"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_and_pending_addresses_cannot_be_invited_twice() {
    let app = TestApp::new().await;
    let team = app.team().await;
    let invite = "mutation($ws: ID!, $e: String!) { inviteMember(workspaceId: $ws, email: $e, role: MEMBER) { id } }";
    let member = app
        .gql(
            team.admin.token(),
            invite,
            json!({ "ws": team.workspace, "e": team.viewer.email.to_uppercase() }),
        )
        .await;
    member.assert_code("CONFLICT");
    assert!(member.message().contains("already a member"));
    app.invite(&team.admin, &team.workspace, "new@example.com", "MEMBER")
        .await;
    let twice = app
        .gql(
            team.owner.token(),
            invite,
            json!({ "ws": team.workspace, "e": " NEW@example.com " }),
        )
        .await;
    twice.assert_code("CONFLICT");
    app.gql(
        team.owner.token(),
        invite,
        json!({ "ws": team.workspace, "e": "not an email" }),
    )
    .await
    .assert_code("BAD_USER_INPUT");
    assert_eq!(
        invitations(&app, &team.owner, &team.workspace).await["totalCount"],
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitation_sends_are_rate_limited() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let id = app
        .invite(&ada, &ada.own_workspace, "pat@example.com", "MEMBER")
        .await;
    for _ in 0..4 {
        app.gql(
            ada.token(),
            RESEND,
            json!({ "ws": ada.own_workspace, "id": id }),
        )
        .await
        .data("resendInvitation");
    }
    let limited = app
        .gql(
            ada.token(),
            RESEND,
            json!({ "ws": ada.own_workspace, "id": id }),
        )
        .await;
    limited.assert_code("RATE_LIMITED");

    // 100 sends from this workspace in the last day: the next invitation waits.
    let mut conn = app.db.conn().await;
    diesel::sql_query(format!(
        "INSERT INTO invitation_sends (invitation_id, workspace_id, email_lower, sent_at)
         SELECT '{id}', '{ws}', 'filler' || i || '@example.com', now() - interval '1 hour'
         FROM generate_series(1, 95) AS i",
        ws = ada.own_workspace
    ))
    .execute(&mut conn)
    .await
    .expect("filled");
    let invite = "mutation($ws: ID!, $e: String!) { inviteMember(workspaceId: $ws, email: $e, role: MEMBER) { id } }";
    app.gql(
        ada.token(),
        invite,
        json!({ "ws": ada.own_workspace, "e": "one.more@example.com" }),
    )
    .await
    .assert_code("RATE_LIMITED");

    // Issue 15: a hostile tenant sent an address 10 invitations from its own workspace,
    // which used to exhaust a cap across workspaces and refuse everyone else's. Caps now
    // count from the sender's side only: the other workspace still invites it.
    let other = app.sign_up("Other").await;
    diesel::sql_query(format!(
        "INSERT INTO invitation_sends (invitation_id, workspace_id, email_lower)
         SELECT '{id}', '{ws}', 'popular@example.com' FROM generate_series(1, 10)",
        ws = ada.own_workspace
    ))
    .execute(&mut conn)
    .await
    .expect("filled");
    let popular = app
        .gql(
            other.token(),
            invite,
            json!({ "ws": other.own_workspace, "e": "Popular@example.com" }),
        )
        .await
        .data("inviteMember")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // One workspace sends one address at most 5 a day.
    diesel::sql_query(format!(
        "INSERT INTO invitation_sends (invitation_id, workspace_id, email_lower)
         SELECT '{popular}', '{ws}', 'pestered@example.com' FROM generate_series(1, 5)",
        ws = other.own_workspace
    ))
    .execute(&mut conn)
    .await
    .expect("filled");
    app.gql(
        other.token(),
        invite,
        json!({ "ws": other.own_workspace, "e": "pestered@example.com" }),
    )
    .await
    .assert_code("RATE_LIMITED");
    // One inviter sends at most 200 a day across all their workspaces.
    diesel::sql_query(format!(
        "INSERT INTO throttles (key, window_start, hits) VALUES ('invite:inviter:{}', now(), 200)
         ON CONFLICT (key) DO UPDATE SET window_start = now(), hits = 200",
        other.id
    ))
    .execute(&mut conn)
    .await
    .expect("filled");
    let res = app
        .gql(
            other.token(),
            invite,
            json!({ "ws": other.own_workspace, "e": "quiet@example.com" }),
        )
        .await;
    res.assert_code("RATE_LIMITED");
    assert!(res.body["errors"][0]["extensions"]["retryAfter"]
        .as_u64()
        .is_some());
    let third = app.sign_up("Third").await;
    app.gql(
        third.token(),
        invite,
        json!({ "ws": third.own_workspace, "e": "quiet@example.com" }),
    )
    .await
    .data("inviteMember");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_accepts_of_one_token_let_exactly_one_in() {
    let app = TestApp::builder().with_workers().start().await;
    let ada = app.sign_up("Ada").await;
    let bob = app.sign_up("Bob").await;
    app.invite(&ada, &ada.own_workspace, &bob.email, "MEMBER")
        .await;
    let token = app.mail.wait_for(&bob.email, "invitations/accept", 1).await[0].token();
    let calls = (0..100).map(|_| app.gql(bob.token(), ACCEPT, json!({ "t": token })));
    let results = futures::future::join_all(calls).await;
    let accepted = results.iter().filter(|r| r.code().is_none()).count();
    assert_eq!(accepted, 1);
    for res in results.iter().filter(|r| r.code().is_some()) {
        res.assert_code("NOT_FOUND");
    }
    assert_eq!(app.roles_in(&ada.own_workspace).await.len(), 2);
}

/// A send retried after its email went out (the worker died, or PostgreSQL dropped, before
/// the delivery was recorded) emails a second link; the first keeps working. A resend is a
/// new delivery: only its link works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_send_leaves_every_emailed_link_working_until_a_resend() {
    let app = TestApp::builder().with_workers().start().await;
    let ada = app.sign_up("Ada").await;
    let ws = &ada.own_workspace;
    let id = app.invite(&ada, ws, "ida@example.com", "MEMBER").await;
    let first = app
        .mail
        .wait_for("ida@example.com", "invitations/accept", 1)
        .await[0]
        .token();
    // The record of the send is lost, and the job runs again. The email reaches the sink
    // before the job records it: wait for the record, or the job's own update would undo
    // the loss.
    crate::lifecycle::until(
        &app,
        &format!("SELECT delivered = 1 FROM invitations WHERE id = '{id}'"),
    )
    .await;
    let mut conn = app.db.conn().await;
    diesel::sql_query(format!(
        "UPDATE invitations SET delivered = 0 WHERE id = '{id}'"
    ))
    .execute(&mut conn)
    .await
    .expect("the record is lost");
    diesel::sql_query(format!(
        "INSERT INTO outbox (job) VALUES
           ('{{\"type\": \"send_invitation\", \"invitation_id\": \"{id}\", \"delivery\": 1}}')"
    ))
    .execute(&mut conn)
    .await
    .expect("the send is retried");
    let second = app
        .mail
        .wait_for("ida@example.com", "invitations/accept", 2)
        .await[1]
        .token();
    assert_ne!(first, second);
    let opens = |token: String| {
        let app = &app;
        async move {
            let res = app.gql(None, PREVIEW, json!({ "t": token })).await;
            match res.code() {
                None => res.data("invitation")["status"] == "PENDING",
                Some(code) => {
                    assert_eq!(code, "NOT_FOUND");
                    false
                }
            }
        }
    };
    assert!(
        opens(first.clone()).await,
        "the first emailed link still works"
    );
    assert!(opens(second.clone()).await);

    app.gql(ada.token(), RESEND, json!({ "ws": ws, "id": id }))
        .await
        .data("resendInvitation");
    let third = app
        .mail
        .wait_for("ida@example.com", "invitations/accept", 3)
        .await[2]
        .token();
    assert!(!opens(first).await, "a resend ends the earlier links");
    assert!(!opens(second).await);
    assert!(opens(third).await);
}

/// A send counts toward the limits for a day; the scheduled round forgets older ones, in
/// every workspace, and keeps the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_past_the_limits_window_are_forgotten_in_every_workspace() {
    use crate::lifecycle::sql_bool;
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let bob = app.sign_up("Bob").await;
    let mut conn = app.db.conn().await;
    for (who, address) in [(&ada, "pat@example.com"), (&bob, "sam@example.com")] {
        let id = app.invite(who, &who.own_workspace, address, "MEMBER").await;
        diesel::sql_query(format!(
            "INSERT INTO invitation_sends (invitation_id, workspace_id, email_lower, sent_at)
             SELECT '{id}'::uuid, '{ws}'::uuid, '{address}', now() - interval '25 hours'
             FROM generate_series(1, 3)
             UNION ALL SELECT '{id}', '{ws}', '{address}', now() - interval '23 hours'",
            ws = who.own_workspace
        ))
        .execute(&mut conn)
        .await
        .expect("old sends");
    }
    let mut round = app.pool.conn_outside_tenancy().await.expect("a connection");
    let forgotten = linkai::invitations::forget_old_sends(&mut round, chrono::Utc::now())
        .await
        .expect("forgets");
    assert_eq!(forgotten, 6);
    // Each invitation's own send, made just now, and the one of 23 hours ago still count.
    let kept = "(SELECT count(*) FROM invitation_sends) = 4
        AND NOT EXISTS (SELECT 1 FROM invitation_sends WHERE sent_at < now() - interval '1 day')";
    assert!(sql_bool(&mut conn, kept).await);
    // However far ahead the round is told to forget, a send that counts stays.
    let later = chrono::Utc::now() + chrono::Duration::days(30);
    let forgotten = linkai::invitations::model::forget_sends_before(&mut round, later)
        .await
        .expect("forgets");
    assert_eq!(forgotten, 0);
}
