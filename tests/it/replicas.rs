//! Replicas (issue 24): two `serve --no-workers` processes and two `worker` processes on one
//! PostgreSQL and one Redis, as docs/deploy.md runs them. A person signs up on one replica
//! and finishes on the other, invites and is accepted across them, Stripe's webhook reaches
//! either, and the trial scan runs once. Then a worker is killed in the middle of a batch of
//! invitations, and PostgreSQL drops out in the middle of another: every invitee gets an
//! email, and every link emailed still works.

use std::time::Duration;

use diesel_async::RunQueryDsl;
use serde_json::json;
use uuid::Uuid;

use crate::harness::{gql_at as gql, TestApp, PASSWORD, WEBHOOK_SECRET};
use crate::processes::{self, Process};
use crate::smtp::SmtpSink;
use crate::tcp_proxy::TcpProxy;

const INVITE: &str =
    "mutation($ws: ID!, $e: String!) { inviteMember(workspaceId: $ws, email: $e, role: MEMBER) { id } }";

/// Invites `count` new addresses, alternating replicas; returns them.
async fn invite_batch(apis: &[&str; 2], owner: &str, ws: &str, batch: &str) -> Vec<String> {
    let mut addresses = Vec::new();
    for i in 0..12 {
        let email = format!("{batch}-{i}-{}@example.com", Uuid::new_v4().simple());
        gql(
            apis[i % 2],
            Some(owner),
            INVITE,
            json!({ "ws": ws, "e": email }),
        )
        .await;
        addresses.push(email);
    }
    addresses
}

/// Waits until the workers have recorded every invitation to `addresses` as delivered (so
/// no retry is still to come); then checks that each address has an email, and that every
/// link each one received still opens its invitation. Answers how many emails went.
async fn assert_every_link_works(
    app: &TestApp,
    mail: &SmtpSink,
    api: &str,
    addresses: &[String],
) -> usize {
    let list = addresses
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let undelivered =
        format!("SELECT 1 FROM invitations WHERE email IN ({list}) AND delivered < delivery");
    let mut settled = false;
    for _ in 0..900 {
        let waiting = diesel::sql_query(&undelivered)
            .execute(&mut app.db.conn().await)
            .await
            .expect("invitations");
        if waiting == 0 {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(settled, "invitations still undelivered after 90 s");
    let missing: Vec<_> = addresses
        .iter()
        .filter(|a| mail.links(a, "invitations/accept").is_empty())
        .collect();
    assert!(
        missing.is_empty(),
        "no invitation email reached {missing:?}"
    );
    let mut sent = 0;
    for address in addresses {
        for email in mail.links(address, "invitations/accept") {
            sent += 1;
            let preview = gql(
                api,
                None,
                "query($t: String!) { invitation(token: $t) { email status } }",
                json!({ "t": email.token() }),
            )
            .await;
            assert_eq!(
                preview["invitation"],
                json!({ "email": address, "status": "PENDING" }),
                "a link emailed to {address} no longer works"
            );
        }
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_and_two_workers_share_the_work_and_lose_nothing() {
    let app = TestApp::new().await;
    let proxy = TcpProxy::start("127.0.0.1:5432").await;
    let database = proxy.route(&app.db.url());
    // A slow mail server keeps a batch's emails in flight when a worker dies or PostgreSQL
    // drops out.
    let mail = SmtpSink::start_on(0, Duration::from_millis(1500)).await;
    let smtp = mail.url();
    let env = [
        ("DATABASE_URL", database.as_str()),
        ("SMTP_URL", smtp.as_str()),
        ("TRIAL_SCAN_SECS", "1"),
    ];
    // The replicas verify Stripe's signature; nothing here calls Stripe.
    let mut api_env = env.to_vec();
    api_env.extend([
        ("STRIPE_SECRET_KEY", "sk_test_replicas"),
        ("STRIPE_API_BASE", "http://127.0.0.1:9"),
        ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
    ]);
    let (a, b) = (
        processes::serve(&app, &api_env).await,
        processes::serve(&app, &api_env).await,
    );
    let apis = [a.base_url.as_str(), b.base_url.as_str()];
    let mut workers: Vec<Process> = (0..2)
        .map(|i| processes::worker(&app, &format!("replica-{i}"), &env))
        .collect();

    // Sign up on one replica, finish on the other.
    let email = format!("ada-{}@example.com", Uuid::new_v4().simple());
    gql(
        apis[0],
        None,
        "mutation($e: String!, $p: String!) { signUp(email: $e, password: $p, name: \"Ada\") { email } }",
        json!({ "e": email, "p": PASSWORD }),
    )
    .await;
    let link = mail.wait_for(&email, "complete-sign-up", 1).await[0].token();
    let done = gql(
        apis[1],
        None,
        "mutation($t: String!) { completeSignUp(token: $t) { token user { activeWorkspace { id } } } }",
        json!({ "t": link }),
    )
    .await;
    let owner = done["completeSignUp"]["token"]
        .as_str()
        .expect("session")
        .to_owned();
    let ws = done["completeSignUp"]["user"]["activeWorkspace"]["id"]
        .as_str()
        .expect("workspace")
        .to_owned();

    // An invitation made on one replica, emailed by whichever worker, accepted on the other.
    let ida = app.sign_up("Ida").await;
    gql(
        apis[0],
        Some(&owner),
        INVITE,
        json!({ "ws": ws, "e": ida.email }),
    )
    .await;
    let token = mail.wait_for(&ida.email, "invitations/accept", 1).await[0].token();
    let joined = gql(
        apis[1],
        Some(&ida.token),
        "mutation($t: String!) { acceptInvitation(token: $t) { id viewerRole } }",
        json!({ "t": token }),
    )
    .await;
    assert_eq!(joined["acceptInvitation"]["viewerRole"], "MEMBER");

    // Stripe delivers an event to one replica, then again to the other: recorded once.
    let event = json!({
        "id": format!("evt_{}", Uuid::new_v4().simple()),
        "object": "event",
        "type": "customer.updated",
        "created": chrono::Utc::now().timestamp(),
        "data": { "object": { "object": "customer", "id": "cus_nobody" } },
    })
    .to_string();
    for api in apis {
        let status = reqwest::Client::new()
            .post(format!("{api}/webhooks/stripe"))
            .header(
                "stripe-signature",
                crate::webhooks::signed(&event).expect("signed"),
            )
            .body(event.clone())
            .send()
            .await
            .expect("delivered")
            .status();
        assert_eq!(status, 200);
    }
    let recorded = diesel::sql_query("SELECT 1 FROM stripe_events")
        .execute(&mut app.db.conn().await)
        .await
        .expect("events");
    assert_eq!(recorded, 1);

    // Both workers scan every second; the seven-day reminder goes out once.
    diesel::sql_query(format!(
        "UPDATE workspaces SET trial_ends_at = now() + interval '6 days 23 hours' WHERE id = '{ws}'"
    ))
    .execute(&mut app.db.conn().await)
    .await
    .expect("trial ending");
    let reminders = |sink: &SmtpSink| {
        sink.to(&email)
            .iter()
            .filter(|m| m.subject().contains("7 days left"))
            .count()
    };
    mail.wait_until(|sink| reminders(sink) == 1, Duration::from_secs(30))
        .await
        .expect("the reminder");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(reminders(&mail), 1, "both workers scanned: one reminder");

    // A worker killed in the middle of a batch.
    let batch = invite_batch(&apis, &owner, &ws, "killed").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    workers[0].kill().await;
    workers[0] = processes::worker(&app, "replica-2", &env);
    assert_every_link_works(&app, &mail, apis[0], &batch).await;

    // PostgreSQL drops out for two seconds in the middle of another.
    let batch = invite_batch(&apis, &owner, &ws, "outage").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.cut().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.restore().await;
    let sent = assert_every_link_works(&app, &mail, apis[1], &batch).await;
    // Sends that went out while PostgreSQL was away were not recorded, so they went again:
    // the case whose first link must keep working.
    assert!(
        sent > batch.len(),
        "the outage caught sends in flight ({sent} emails to {} invitees)",
        batch.len()
    );
}
