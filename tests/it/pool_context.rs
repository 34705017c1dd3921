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
#[derive(Clone, Copy)]
enum Midway {
    /// Between two statements of its transaction, holding A's row lock.
    BetweenStatements,
    /// Inside a statement PostgreSQL is still running, holding A's row lock.
    InsideStatement,
    /// Inside the `COMMIT` of a transaction that wrote a contact named `committing` (the
    /// test makes commits slow).
    InsideCommit,
}

/// Runs a transaction on workspace A's connection as a request would, and drops the
/// request once it is `midway`. Returns the connection's backend.
async fn abandon(w: &World, midway: Midway) -> i32 {
    let (db, a) = (w.db.clone(), w.a);
    let (started, told) = tokio::sync::oneshot::channel::<()>();
    let (pid_tx, pid_rx) = tokio::sync::oneshot::channel();
    let request = tokio::spawn(async move {
        let mut conn = db.conn_in(a).await.expect("conn");
        let _ = pid_tx.send(backend_pid(&mut conn).await);
        conn.transaction(async move |conn| {
            if let Midway::InsideCommit = midway {
                diesel::sql_query(format!(
                    "INSERT INTO resources (id, workspace_id, kind, name) \
                     VALUES (gen_random_uuid(), '{a}', 'contact', 'committing')"
                ))
                .execute(conn)
                .await?;
                // Returning starts the COMMIT, which runs the deferred trigger.
                let _ = started.send(());
                return diesel::QueryResult::Ok(());
            }
            linkai::workspaces::model::lock_row(conn, a).await?;
            let _ = started.send(());
            if let Midway::InsideStatement = midway {
                diesel::sql_query("SELECT pg_sleep(0.5)")
                    .execute(conn)
                    .await?;
            }
            // The request would go on here, but its client hangs up.
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            Ok(())
        })
        .await
    });
    let pid = pid_rx.await.expect("the request's backend");
    told.await.expect("the transaction started");
    if !matches!(midway, Midway::BetweenStatements) {
        // Well inside the half-second statement or commit.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    request.abort();
    assert!(
        request.await.is_err_and(|e| e.is_cancelled()),
        "dropped midway"
    );
    pid
}

/// After a request was dropped inside its transaction: no pooled session stays inside it,
/// the next checkout gets the same connection back (the pool does not make a new one in
/// some later request's path), and that connection runs transactions and takes A's lock.
async fn assert_rolled_back_and_kept(w: &World, pid: i32) {
    let mut admin = w._db.conn().await;
    let mut open = -1;
    for _ in 0..100 {
        open = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE usename = 'linkai_app' AND state <> 'idle'",
        )
        .get_result::<Count>(&mut admin)
        .await
        .expect("activity")
        .n;
        if open == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        open, 0,
        "a pooled session is still inside the dropped transaction"
    );
    let mut conn = w.db.conn_in(w.a).await.expect("conn");
    assert_eq!(
        backend_pid(&mut conn).await,
        pid,
        "the same connection, kept"
    );
    let rows = visible(&mut conn).await;
    assert_eq!(rows[0], "a", "in workspace A");
    conn.transaction(async |conn| {
        diesel::sql_query("SET LOCAL lock_timeout = '100ms'")
            .execute(conn)
            .await?;
        linkai::workspaces::model::lock_row(conn, w.a).await
    })
    .await
    .expect("the row is free, and the connection's transactions work");
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
    let pid = abandon(&w, Midway::BetweenStatements).await;
    assert_rolled_back_and_kept(&w, pid).await;
}

/// Dropped while PostgreSQL runs one of its statements: the rollback waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_inside_a_statement_is_rolled_back_and_kept() {
    let w = world().await;
    let pid = abandon(&w, Midway::InsideStatement).await;
    assert_rolled_back_and_kept(&w, pid).await;
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
    let pid = abandon(&w, Midway::InsideCommit).await;
    assert_rolled_back_and_kept(&w, pid).await;
    let mut conn = w.db.conn_in(w.a).await.expect("conn");
    assert_eq!(visible(&mut conn).await, ["a", "committing"]);
}
