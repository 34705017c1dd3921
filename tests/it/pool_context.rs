//! Pooled connections keep their row-level-security context between checkouts, and a
//! checkout skips setting a context the connection already has. These tests hold the record
//! of that context exact: whatever a connection did before, a checkout sees exactly the
//! workspace it asked for. One connection in the pool, so every checkout gets the same one.

use diesel_async::{AsyncConnection, RunQueryDsl};
use uuid::Uuid;

use crate::harness::TestDatabase;
use linkai::config::{DatabaseConfig, Secret};
use linkai::db::Db;

#[derive(diesel::QueryableByName)]
struct Name {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

/// The contacts a connection can see, whatever its workspace.
async fn visible(conn: &mut diesel_async::AsyncPgConnection) -> Vec<String> {
    let rows: Vec<Name> = diesel::sql_query("SELECT name FROM resources ORDER BY name")
        .load(conn)
        .await
        .expect("query");
    rows.into_iter().map(|row| row.name).collect()
}

struct World {
    _db: TestDatabase,
    db: Db,
    a: Uuid,
    b: Uuid,
    c: Uuid,
}

async fn world() -> World {
    let database = TestDatabase::new().await;
    let mut owner = database.conn().await;
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    for statement in [
        format!("INSERT INTO workspaces (id, name, trial_ends_at) VALUES ('{a}', 'A', now()), ('{b}', 'B', now()), ('{c}', 'C', now())"),
        format!("INSERT INTO resources (id, workspace_id, kind, name) VALUES (gen_random_uuid(), '{a}', 'contact', 'a'), (gen_random_uuid(), '{b}', 'contact', 'b'), (gen_random_uuid(), '{c}', 'contact', 'c')"),
    ] {
        diesel::sql_query(statement).execute(&mut owner).await.expect("seeded");
    }
    let pool = linkai::db::pool(&DatabaseConfig {
        url: Secret::new(database.url()),
        app_url: Secret::new(linkai::config::app_role_url(&database.url())),
        pool_size: 1,
        statement_timeout: std::time::Duration::from_secs(5),
        lock_timeout: std::time::Duration::from_secs(2),
        pool_wait: std::time::Duration::from_secs(3),
    })
    .expect("pool");
    World {
        _db: database,
        db: Db::new(pool).acting_as(Some(Uuid::new_v4())),
        a,
        b,
        c,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_sees_its_workspace_and_skips_setting_a_context_it_has() {
    let w = world().await;
    let mut conn = w.db.conn_in(w.a).await.expect("checkout");
    assert_eq!(visible(&mut conn).await, ["a"]);
    drop(conn);
    assert_eq!(w.db.context_statements(), 1);

    let mut conn = w.db.conn_in(w.a).await.expect("checkout");
    assert_eq!(w.db.context_statements(), 1, "A again: already set");
    assert_eq!(visible(&mut conn).await, ["a"]);
    drop(conn);

    let mut conn = w.db.conn_in(w.b).await.expect("checkout");
    assert_eq!(w.db.context_statements(), 2);
    assert_eq!(visible(&mut conn).await, ["b"]);
    drop(conn);

    // Another user on the same connection: a new context, though the workspace is the same.
    let other = w.db.acting_as(Some(Uuid::new_v4()));
    let conn = other.conn_in(w.b).await.expect("checkout");
    assert_eq!(other.context_statements(), 3);
    drop(conn);

    // No workspace: nothing visible.
    let mut conn = w.db.conn().await.expect("checkout");
    assert!(visible(&mut conn).await.is_empty());
    assert_eq!(w.db.statements(), 4, "the work is counted apart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entering_a_workspace_lasts_only_for_its_transaction_committed_or_not() {
    let w = world().await;
    for commit in [true, false] {
        let mut conn = w.db.conn_in(w.a).await.expect("checkout");
        let inside: Result<Vec<String>, diesel::result::Error> = conn
            .transaction(async |conn| {
                linkai::db::enter_workspace(conn, w.c).await?;
                let seen = visible(conn).await;
                if commit {
                    Ok(seen)
                } else {
                    Err(diesel::result::Error::RollbackTransaction)
                }
            })
            .await;
        if commit {
            assert_eq!(inside.expect("committed"), ["c"]);
        }
        assert_eq!(
            visible(&mut conn).await,
            ["a"],
            "back in A after the transaction"
        );
        drop(conn);
        // The record says A, and A it is: the checkout sets nothing and sees A only.
        let before = w.db.context_statements();
        let mut conn = w.db.conn_in(w.a).await.expect("checkout");
        assert_eq!(w.db.context_statements(), before);
        assert_eq!(visible(&mut conn).await, ["a"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entering_a_workspace_outside_a_transaction_is_refused() {
    let w = world().await;
    let mut conn = w.db.conn_in(w.a).await.expect("checkout");
    let outside = linkai::db::enter_workspace(&mut conn, w.b).await;
    assert!(matches!(
        outside,
        Err(diesel::result::Error::NotInTransaction)
    ));
    assert_eq!(visible(&mut conn).await, ["a"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_that_read_no_workspace_keep_the_connections_context() {
    let w = world().await;
    drop(w.db.conn_in(w.b).await.expect("checkout"));
    let set = w.db.context_statements();
    // The same user: any workspace will do for the caller's own lookups.
    drop(w.db.conn_for_caller().await.expect("checkout"));
    drop(w.db.conn_outside_tenancy().await.expect("checkout"));
    assert_eq!(w.db.context_statements(), set);
    // Another user: their own context, in no workspace.
    let other = w.db.acting_as(Some(Uuid::new_v4()));
    let mut conn = other.conn_for_caller().await.expect("checkout");
    assert_eq!(other.context_statements(), set + 1);
    assert!(visible(&mut conn).await.is_empty());
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[derive(diesel::QueryableByName)]
struct Pid {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
}

async fn backend_pid(conn: &mut diesel_async::AsyncPgConnection) -> i32 {
    diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result::<Pid>(conn)
        .await
        .expect("pid")
        .pid
}

/// Where a request is when its client hangs up.
#[derive(Clone, Copy, PartialEq)]
enum Midway {
    /// Between two statements of its transaction, holding A's row lock.
    BetweenStatements,
    /// Inside a statement PostgreSQL is still running (half a second), holding A's lock.
    InsideStatement,
    /// Inside a savepoint (a transaction inside the transaction), holding A's lock.
    InsideSavepoint,
    /// After switching its transaction into workspace B (`enter_workspace`) and setting
    /// the session's workspace to C, holding A's lock.
    InOtherWorkspaces,
    /// Inside the `COMMIT` of a transaction that wrote a contact named `committing` (the
    /// test makes commits take half a second).
    InsideCommit,
}

/// What the request does before it is dropped `midway`; `started` fires when it is there.
async fn work_until(
    conn: &mut diesel_async::AsyncPgConnection,
    midway: Midway,
    w: (Uuid, Uuid, Uuid),
    started: tokio::sync::oneshot::Sender<()>,
) -> diesel::QueryResult<()> {
    let (a, b, c) = w;
    if midway == Midway::InsideCommit {
        diesel::sql_query(format!(
            "INSERT INTO resources (id, workspace_id, kind, name) \
             VALUES (gen_random_uuid(), '{a}', 'contact', 'committing')"
        ))
        .execute(conn)
        .await?;
        // Returning starts the COMMIT, which runs the deferred trigger.
        let _ = started.send(());
        return Ok(());
    }
    linkai::workspaces::model::lock_row(conn, a).await?;
    match midway {
        Midway::InsideStatement => {
            let _ = started.send(());
            diesel::sql_query("SELECT pg_sleep(0.5)")
                .execute(conn)
                .await?;
        }
        Midway::InsideSavepoint => {
            return conn
                .transaction(async move |conn| {
                    diesel::sql_query("SELECT 1").execute(conn).await?;
                    let _ = started.send(());
                    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                    diesel::QueryResult::Ok(())
                })
                .await;
        }
        Midway::InOtherWorkspaces => {
            linkai::db::enter_workspace(conn, b).await?;
            diesel::sql_query(format!(
                "SELECT set_config('app.workspace_id', '{c}', false)"
            ))
            .execute(conn)
            .await?;
            assert_eq!(visible(conn).await, ["c"], "moved out of A");
            let _ = started.send(());
        }
        _ => {
            let _ = started.send(());
        }
    }
    // The request would go on here, but its client hangs up.
    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    Ok(())
}

/// Runs a transaction on workspace A's connection as a request would, and drops the
/// request once it is `midway`. Returns the connection's backend and when it was dropped.
async fn abandon(w: &World, midway: Midway) -> (i32, std::time::Instant) {
    let (db, ids) = (w.db.clone(), (w.a, w.b, w.c));
    let (started, told) = tokio::sync::oneshot::channel::<()>();
    let (pid_tx, pid_rx) = tokio::sync::oneshot::channel();
    let request = tokio::spawn(async move {
        let mut conn = db.conn_in(ids.0).await.expect("conn");
        let _ = pid_tx.send(backend_pid(&mut conn).await);
        conn.transaction(async move |conn| work_until(conn, midway, ids, started).await)
            .await
    });
    let pid = pid_rx.await.expect("the request's backend");
    told.await.expect("the request got there");
    if let Midway::InsideStatement | Midway::InsideCommit = midway {
        // Well inside the half-second statement or commit.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    request.abort();
    let dropped = std::time::Instant::now();
    assert!(
        request.await.is_err_and(|e| e.is_cancelled()),
        "dropped midway"
    );
    (pid, dropped)
}

/// After a request was dropped inside its transaction: its session leaves the transaction
/// (waits for it are returned), the next checkout gets the same connection back (the pool
/// does not make a new one in some later request's path), that connection sees A's
/// `contacts` and nothing else, runs transactions, and takes A's lock at once.
async fn assert_rolled_back_and_kept(w: &World, pid: i32, contacts: &[&str]) -> std::time::Instant {
    let mut admin = w._db.conn().await;
    let mut open = -1;
    for _ in 0..100 {
        open = diesel::sql_query(format!(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE pid = {pid} AND state <> 'idle'"
        ))
        .get_result::<Count>(&mut admin)
        .await
        .expect("activity")
        .n;
        if open == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let idle = std::time::Instant::now();
    assert_eq!(
        open, 0,
        "the session is still inside the dropped transaction"
    );
    let mut conn = w.db.conn_in(w.a).await.expect("conn");
    assert_eq!(
        backend_pid(&mut conn).await,
        pid,
        "the same connection, kept"
    );
    assert_eq!(visible(&mut conn).await, contacts);
    conn.transaction(async |conn| {
        diesel::sql_query("SET LOCAL lock_timeout = '100ms'")
            .execute(conn)
            .await?;
        linkai::workspaces::model::lock_row(conn, w.a).await
    })
    .await
    .expect("the row is free, and the connection's transactions work");
    idle
}

/// Found by bench/run: a request dropped inside its transaction (wrk hung up on it) put its
/// connection back in the pool with the transaction open, and the workspace row it had
/// locked stayed locked until that connection's next checkout. Closing such connections
/// freed the lock but made the pool open new ones inside later requests (BENCHMARKS.md,
/// twenty-eighth round: 4 to 15 per bench phase, each a spike). Now it is rolled back and
/// kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_between_statements_is_rolled_back_and_kept() {
    let w = world().await;
    let (pid, _) = abandon(&w, Midway::BetweenStatements).await;
    assert_rolled_back_and_kept(&w, pid, &["a"]).await;
}

/// Dropped while PostgreSQL runs one of its statements: the rollback waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_inside_a_statement_is_rolled_back_and_kept() {
    let w = world().await;
    let (pid, dropped) = abandon(&w, Midway::InsideStatement).await;
    let idle = assert_rolled_back_and_kept(&w, pid, &["a"]).await;
    assert!(
        idle - dropped >= std::time::Duration::from_millis(250),
        "the statement was still running when the request was dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_inside_a_savepoint_is_rolled_back_and_kept() {
    let w = world().await;
    let (pid, _) = abandon(&w, Midway::InsideSavepoint).await;
    assert_rolled_back_and_kept(&w, pid, &["a"]).await;
}

/// Row-level security after a rescue: the transaction had moved into workspace B, and set
/// the session's workspace to C. The rollback puts the session back in A, where its next
/// checkout, even one that sets nothing, finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_in_another_workspace_is_back_in_its_own() {
    let w = world().await;
    let (pid, _) = abandon(&w, Midway::InOtherWorkspaces).await;
    // The pool's one connection, once the rescue hands it back.
    let mut conn = w.db.conn_outside_tenancy().await.expect("conn");
    assert_eq!(backend_pid(&mut conn).await, pid);
    assert_eq!(visible(&mut conn).await, ["a"]);
    drop(conn);
    assert_rolled_back_and_kept(&w, pid, &["a"]).await;
}

/// Dropped inside diesel-async's own `COMMIT`, whose outcome the request never learns: the
/// connection is kept all the same (diesel-async would mark it broken for good), and the
/// commit's outcome is PostgreSQL's, here a commit, since it ran to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_inside_its_commit_is_rolled_back_and_kept() {
    let w = world().await;
    let mut owner = w._db.conn().await;
    for statement in [
        "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql \
         AS $$ BEGIN PERFORM pg_sleep(0.5); RETURN NULL; END $$",
        "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON resources \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()",
    ] {
        diesel::sql_query(statement)
            .execute(&mut owner)
            .await
            .expect("a commit that takes half a second");
    }
    let (pid, _) = abandon(&w, Midway::InsideCommit).await;
    assert_rolled_back_and_kept(&w, pid, &["a", "committing"]).await;
}

/// `one_at_a_time` holds its advisory lock in a transaction across another system's call
/// (Stripe's). A run dropped during that call frees the lock at once for the next run, on
/// the same connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_dropped_while_one_at_a_time_frees_its_lock() {
    let w = world().await;
    let (started, told) = tokio::sync::oneshot::channel::<()>();
    let db = w.db.clone();
    let run = tokio::spawn(async move {
        linkai::db::one_at_a_time(&db, "the key", async move {
            let _ = started.send(());
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            anyhow::Ok(())
        })
        .await
    });
    told.await.expect("the first run holds the lock");
    run.abort();
    let _ = run.await;
    let next = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        linkai::db::one_at_a_time(&w.db, "the key", async { anyhow::Ok(()) }),
    )
    .await;
    assert!(
        matches!(next, Ok(Ok(()))),
        "the next run takes the lock at once: {next:?}"
    );
}
