//! Nothing is lost: emails survive killed worker processes and a Redis outage.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::process::{Child, Command};

use crate::harness::TestApp;
use crate::processes::{self, Process};
use crate::smtp::SmtpSink;

fn spawn_worker(app: &TestApp, name: &str, redis_url: &str, smtp: &SmtpSink) -> Process {
    let smtp_url = smtp.url();
    processes::worker(
        app,
        name,
        &[("SMTP_URL", &smtp_url), ("REDIS_URL", redis_url)],
    )
}

async fn invite_many(app: &TestApp, count: usize) -> Vec<String> {
    let owner = app.sign_up("Owner").await;
    let mut addresses = Vec::new();
    for i in 0..count {
        let address = format!("invitee{i}@example.com");
        app.invite(&owner, &owner.own_workspace, &address, "MEMBER")
            .await;
        addresses.push(address);
    }
    addresses
}

fn delivered(sink: &SmtpSink, addresses: &[String]) -> usize {
    let received: HashSet<String> = sink.all().into_iter().flat_map(|m| m.to).collect();
    addresses.iter().filter(|a| received.contains(*a)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_workers_mid_batch_loses_no_email() {
    let app = TestApp::new().await;
    // A slow mail server keeps jobs in flight when the worker dies (the worker runs a
    // batch concurrently, so each message takes longer than the gap between kills).
    let slow_smtp = SmtpSink::start_on(0, Duration::from_millis(1200)).await;
    let addresses = invite_many(&app, 30).await;

    let redis = "redis://127.0.0.1:6379";
    let mut worker = spawn_worker(&app, "fault-0", redis, &slow_smtp);
    let mut delivered_at_kills = Vec::new();
    for round in 1..=4 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        worker.kill().await;
        delivered_at_kills.push(delivered(&slow_smtp, &addresses));
        worker = spawn_worker(&app, &format!("fault-{round}"), redis, &slow_smtp);
    }
    assert!(
        delivered_at_kills[0] < addresses.len(),
        "the first kill must land mid-batch: delivered at each kill {delivered_at_kills:?}"
    );
    let all = slow_smtp
        .wait_until(
            |sink| delivered(sink, &addresses) == addresses.len(),
            Duration::from_secs(60),
        )
        .await;
    eprintln!(
        "delivered at each kill: {delivered_at_kills:?}; messages sent in all: {}",
        slow_smtp.all().len()
    );
    assert!(
        all.is_some(),
        "delivered {} of {} after repeated SIGKILLs",
        delivered(&slow_smtp, &addresses),
        addresses.len()
    );
    worker.kill().await;
}

/// A private Redis on a free port that the test can stop and start.
struct OwnRedis {
    port: u16,
    process: Option<Child>,
}

impl OwnRedis {
    async fn start(port: u16) -> Self {
        let mut redis = OwnRedis {
            port,
            process: None,
        };
        redis.restart().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed");
        self.process = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start");
    }

    async fn stop(&mut self) {
        if let Some(mut child) = self.process.take() {
            child.start_kill().expect("kill redis");
            let _ = child.wait().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_made_while_redis_is_down_are_emailed_once_it_is_back() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let mut redis = OwnRedis::start(port).await;
    let app = TestApp::builder()
        .with_workers()
        .with_redis(&redis.url())
        .start()
        .await;
    let ada = app.sign_up("Ada").await;
    // The worker is up and sending before Redis goes.
    app.invite(&ada, &ada.own_workspace, "first@example.com", "VIEWER")
        .await;
    app.mail
        .wait_for("first@example.com", "invitations/accept", 1)
        .await;

    redis.stop().await;
    let mut addresses = Vec::new();
    for i in 0..10 {
        let address = format!("offline{i}@example.com");
        let res = app
            .gql(
                ada.token(),
                "mutation($ws: ID!, $e: String!) { inviteMember(workspaceId: $ws, email: $e, role: VIEWER) { id status } }",
                json!({ "ws": ada.own_workspace, "e": address }),
            )
            .await;
        assert_eq!(res.data("inviteMember")["status"], "PENDING");
        addresses.push(address);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        delivered(&app.mail, &addresses),
        0,
        "nothing can be sent without Redis"
    );

    redis.restart().await;
    let all = app
        .mail
        .wait_until(
            |sink| delivered(sink, &addresses) == addresses.len(),
            Duration::from_secs(60),
        )
        .await;
    assert!(
        all.is_some(),
        "delivered {} of 10 after Redis came back",
        delivered(&app.mail, &addresses)
    );
    redis.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_made_while_smtp_is_down_are_emailed_once_it_is_back() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let app = TestApp::builder()
        .with_workers()
        .with_smtp_port(port)
        .start()
        .await;
    let ada = app.sign_up("Ada").await;
    let id = app
        .invite(&ada, &ada.own_workspace, "patient@example.com", "VIEWER")
        .await;
    assert!(!id.is_empty(), "the invitation is made while mail is down");
    app.gql(
        None,
        "mutation { signUp(email: \"late@example.com\", password: \"correct horse battery\", name: \"Late\") { email } }",
        serde_json::json!({}),
    )
    .await
    .data("signUp");
    tokio::time::sleep(Duration::from_secs(1)).await;

    let smtp = SmtpSink::start_on(port, Duration::ZERO).await;
    let mails = smtp
        .wait_for("patient@example.com", "invitations/accept", 1)
        .await;
    assert_eq!(mails.len(), 1);
    smtp.wait_for("late@example.com", "complete-sign-up", 1)
        .await;
}

/// A row in the outbox that names no job kind (written by some other build, say) stays there
/// for whoever can read it; the jobs behind it are relayed and run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_outbox_row_stays_and_holds_back_nothing() {
    use diesel_async::RunQueryDsl as _;
    let app = TestApp::builder().with_workers().start().await;
    let mut conn = app.db.conn().await;
    diesel::sql_query("INSERT INTO outbox (job) VALUES ('{\"not\": \"a job\"}')")
        .execute(&mut conn)
        .await
        .expect("an unreadable row");
    let email = format!("ada-{}@example.com", uuid::Uuid::new_v4().simple());
    app.request_sign_up(&email, "Ada").await.data("signUp");
    // The sign-up email behind the unreadable row went out.
    app.mail.wait_for(&email, "complete-sign-up", 1).await;
    #[derive(diesel::QueryableByName)]
    struct Left {
        #[diesel(sql_type = diesel::sql_types::Text)]
        job: String,
    }
    let left: Vec<Left> = diesel::sql_query("SELECT job::text AS job FROM outbox")
        .load(&mut conn)
        .await
        .expect("outbox");
    let left: Vec<&str> = left.iter().map(|row| row.job.as_str()).collect();
    assert_eq!(left, [r#"{"not": "a job"}"#]);
}

/// SIGTERM stops a worker within `SHUTDOWN_TIMEOUT_SECS` even while it waits on a mail
/// server that holds its message for two minutes: the job runs again elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stuck_on_a_job_exits_at_its_shutdown_deadline() {
    let app = TestApp::new().await;
    let stuck = SmtpSink::start_on(0, Duration::from_secs(120)).await;
    invite_many(&app, 1).await;
    let smtp = stuck.url();
    let mut worker = processes::worker(
        &app,
        "stuck",
        &[("SMTP_URL", &smtp), ("SHUTDOWN_TIMEOUT_SECS", "1")],
    );
    let held = stuck
        .wait_until(|sink| sink.holding() == 1, Duration::from_secs(30))
        .await;
    assert!(held.is_some(), "the worker's email reached the mail server");
    assert!(
        worker.terminate(Duration::from_secs(20)).await,
        "the worker outlived its shutdown deadline"
    );
}
