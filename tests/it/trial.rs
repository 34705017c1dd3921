//! Trial reminders (7, 3, 1 days before the end) and the expiry notice: to the Owner and
//! Admins, each exactly once, with the time passed in and with two workers at once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel_async::RunQueryDsl;
use linkai::config::Config;
use linkai::App;

use crate::harness::{Team, TestApp};

fn another_process(app: &TestApp) -> App {
    let url = app.db.url();
    let config =
        Config::from_lookup(|name| (name == "DATABASE_URL").then(|| url.clone())).expect("config");
    App::connect(config).expect("app")
}

async fn trial_end(app: &TestApp, workspace: &str) -> DateTime<Utc> {
    #[derive(diesel::QueryableByName)]
    struct End {
        #[diesel(sql_type = diesel::sql_types::Timestamptz)]
        trial_ends_at: DateTime<Utc>,
    }
    let mut conn = app.db.conn().await;
    diesel::sql_query(format!(
        "SELECT trial_ends_at FROM workspaces WHERE id = '{workspace}'"
    ))
    .get_result::<End>(&mut conn)
    .await
    .expect("workspace")
    .trial_ends_at
}

/// Notices about the team's workspace ("Owner's Workspace") received by owner, admin,
/// member and viewer. (Each of them also owns a workspace of their own, on its own trial.)
fn count(app: &TestApp, team: &Team, subject_part: &str) -> [usize; 4] {
    [&team.owner, &team.admin, &team.member, &team.viewer].map(|actor| {
        app.mail
            .to(&actor.email)
            .iter()
            .filter(|m| {
                m.decoded.contains("/settings/billing")
                    && m.subject().contains(subject_part)
                    && m.subject().contains("Owner's Workspace")
            })
            .count()
    })
}

fn subjects(app: &TestApp) -> Vec<String> {
    app.mail
        .all()
        .iter()
        .map(|m| format!("{:?} {}", m.to, m.subject()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_and_admins_get_each_notice_exactly_once_whoever_scans() {
    let app = TestApp::builder().with_workers().start().await;
    let team = app.team().await;
    let ends = trial_end(&app, &team.workspace).await;
    let (first, second) = (another_process(&app), another_process(&app));
    let steps = [
        (chrono::Duration::days(8), "", 0),
        (
            chrono::Duration::days(7) - chrono::Duration::minutes(1),
            "7 days left",
            1,
        ),
        (
            chrono::Duration::days(3) - chrono::Duration::minutes(1),
            "3 days left",
            1,
        ),
        (chrono::Duration::hours(23), "1 day left", 1),
        (-chrono::Duration::minutes(1), "trial has ended", 1),
    ];
    for (before_end, subject, expected) in steps {
        let now = ends - before_end;
        for _ in 0..2 {
            let (a, b) = tokio::join!(
                linkai::billing::trial::scan(&first.db, now),
                linkai::billing::trial::scan(&second.db, now)
            );
            a.expect("scan");
            b.expect("scan");
        }
        if expected > 0 {
            app.mail
                .wait_until(
                    |_| count(&app, &team, subject)[1] >= 1,
                    Duration::from_secs(20),
                )
                .await
                .unwrap_or_else(|| panic!("no {subject:?} email: {:#?}", subjects(&app)));
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(count(&app, &team, subject), [1, 1, 0, 0], "{subject}");
        }
    }
    // Scanning again later changes nothing.
    linkai::billing::trial::scan(&first.db, ends + chrono::Duration::days(3))
        .await
        .expect("scan");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let billing_mails = app
        .mail
        .to(&team.owner.email)
        .iter()
        .filter(|m| m.decoded.contains("/settings/billing"))
        .count();
    assert_eq!(billing_mails, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_that_missed_days_sends_only_the_most_urgent_notice() {
    let app = TestApp::builder().with_workers().start().await;
    let team = app.team().await;
    let ends = trial_end(&app, &team.workspace).await;
    let scanner = another_process(&app);
    linkai::billing::trial::scan(&scanner.db, ends - chrono::Duration::hours(12))
        .await
        .expect("scan");
    app.mail
        .wait_until(
            |_| count(&app, &team, "1 day left")[0] == 1,
            Duration::from_secs(20),
        )
        .await
        .unwrap_or_else(|| panic!("the 1-day reminder: {:#?}", subjects(&app)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&app, &team, "7 days left"), [0, 0, 0, 0]);
    assert_eq!(count(&app, &team, "3 days left"), [0, 0, 0, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_reminders_once_a_plan_is_chosen() {
    let app = TestApp::builder().with_workers().start().await;
    let team = app.team().await;
    let ends = trial_end(&app, &team.workspace).await;
    let mut conn = app.db.conn().await;
    diesel::sql_query(format!(
        "UPDATE workspaces SET plan = 'growth' WHERE id = '{}'",
        team.workspace
    ))
    .execute(&mut conn)
    .await
    .expect("plan");
    let scanner = another_process(&app);
    for days in [7, 3, 1, 0] {
        let now = ends - chrono::Duration::days(days) + chrono::Duration::minutes(1);
        linkai::billing::trial::scan(&scanner.db, now)
            .await
            .expect("scan");
    }
    // The other members' own workspaces (no plan) get theirs; the team's gets none.
    app.mail
        .wait_until(
            |sink| {
                sink.to(&team.admin.email)
                    .iter()
                    .any(|m| m.subject().contains("Admin's Workspace"))
            },
            Duration::from_secs(20),
        )
        .await
        .unwrap_or_else(|| panic!("the admin's own workspace notices: {:#?}", subjects(&app)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    for subject in [
        "7 days left",
        "3 days left",
        "1 day left",
        "trial has ended",
    ] {
        assert_eq!(count(&app, &team, subject), [0, 0, 0, 0], "{subject}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_scanning_on_their_own_send_one_reminder() {
    let app = TestApp::new().await;
    let team = app.team().await;
    let mut conn = app.db.conn().await;
    diesel::sql_query(format!(
        "UPDATE workspaces SET trial_ends_at = now() + interval '6 days 23 hours' WHERE id = '{}'",
        team.workspace
    ))
    .execute(&mut conn)
    .await
    .expect("trial ends in under 7 days");
    let workers: Vec<_> = (0..2)
        .map(|i| {
            crate::processes::worker(&app, &format!("scanner-{i}"), &[("TRIAL_SCAN_SECS", "1")])
        })
        .collect();
    app.mail
        .wait_until(
            |_| count(&app, &team, "7 days left")[..2] == [1, 1],
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|| panic!("the 7-day reminder: {:#?}", subjects(&app)));
    // Several more scans by both workers.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count(&app, &team, "7 days left"), [1, 1, 0, 0]);
    drop(workers);
}
