//! Schema invariants checked against the live catalog, and migrations that reverse.

use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use diesel_migrations::MigrationHarness;

use crate::harness::TestDatabase;

#[derive(diesel::QueryableByName, Debug)]
struct Name {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

async fn names(db: &TestDatabase, sql: &str) -> Vec<String> {
    let mut conn = db.conn().await;
    let rows: Vec<Name> = diesel::sql_query(sql)
        .load(&mut conn)
        .await
        .expect("catalog query");
    rows.into_iter().map(|r| r.name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workspace_id_column_has_a_foreign_key_and_a_leading_index() {
    let db = TestDatabase::new().await;
    let tables = names(
        &db,
        "SELECT table_name::text AS name FROM information_schema.columns
         WHERE table_schema = 'public' AND column_name = 'workspace_id'",
    )
    .await;
    assert!(tables.contains(&"memberships".to_owned()));
    let without_fk = names(
        &db,
        "SELECT c.table_name::text AS name FROM information_schema.columns c
         WHERE c.table_schema = 'public' AND c.column_name = 'workspace_id' AND NOT EXISTS (
           SELECT 1 FROM pg_constraint k
           JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey)
           WHERE k.contype = 'f' AND k.conrelid = (quote_ident(c.table_name))::regclass
             AND a.attname = 'workspace_id' AND k.confrelid = 'workspaces'::regclass)",
    )
    .await;
    assert!(
        without_fk.is_empty(),
        "workspace_id without foreign key: {without_fk:?}"
    );
    let without_index = names(
        &db,
        "SELECT c.table_name::text AS name FROM information_schema.columns c
         WHERE c.table_schema = 'public' AND c.column_name = 'workspace_id' AND NOT EXISTS (
           SELECT 1 FROM pg_index i
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
           WHERE i.indrelid = (quote_ident(c.table_name))::regclass AND a.attname = 'workspace_id')",
    )
    .await;
    assert!(
        without_index.is_empty(),
        "workspace_id without index: {without_index:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_table_is_documented() {
    let db = TestDatabase::new().await;
    let undocumented = names(
        &db,
        "SELECT c.relname::text AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname NOT LIKE '\\_\\_%'
           AND obj_description(c.oid, 'pg_class') IS NULL",
    )
    .await;
    assert!(
        undocumented.is_empty(),
        "tables without COMMENT: {undocumented:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_migration_reverses_and_reapplies() {
    let db = TestDatabase::new().await;
    let url = db.url();
    let tables = tokio::task::spawn_blocking(move || {
        use diesel::Connection;
        let mut conn = <AsyncConnectionWrapper<AsyncPgConnection> as Connection>::establish(&url)
            .expect("connects");
        conn.revert_all_migrations(linkai::db::MIGRATIONS)
            .expect("every down.sql runs");
        conn.run_pending_migrations(linkai::db::MIGRATIONS)
            .expect("up again");
        conn.revert_all_migrations(linkai::db::MIGRATIONS)
            .expect("and down again");
    })
    .await;
    tables.expect("migration task");
    let left = names(
        &db,
        "SELECT c.relname::text AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'S') AND c.relname NOT LIKE '\\_\\_%'
         UNION ALL SELECT proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'public'",
    )
    .await;
    assert!(
        left.is_empty(),
        "left behind after reverting everything: {left:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_table_with_a_workspace_id_forces_row_level_security() {
    let db = TestDatabase::new().await;
    let unprotected = names(
        &db,
        "SELECT c.relname::text AS name FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind = 'r'
           AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'workspace_id')
           AND NOT (c.relrowsecurity AND c.relforcerowsecurity
                    AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid))",
    )
    .await;
    assert!(
        unprotected.is_empty(),
        "tables without forced RLS: {unprotected:?}"
    );
    let role = names(
        &db,
        "SELECT (rolsuper OR rolbypassrls)::text AS name FROM pg_roles WHERE rolname = 'linkai_app'",
    )
    .await;
    assert_eq!(role, ["false"], "linkai_app must not bypass RLS");
    let owned = names(
        &db,
        "SELECT c.relname::text AS name FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
         WHERE r.rolname = 'linkai_app'",
    )
    .await;
    assert!(owned.is_empty(), "linkai_app must own nothing: {owned:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_role_sees_and_writes_only_the_workspace_it_names() {
    use diesel_async::AsyncConnection;
    let db = TestDatabase::new().await;
    let mut owner = db.conn().await;
    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    for statement in [
        format!("INSERT INTO workspaces (id, name, trial_ends_at) VALUES ('{a}', 'A', now()), ('{b}', 'B', now())"),
        format!("INSERT INTO resources (id, workspace_id, kind, name) VALUES (gen_random_uuid(), '{a}', 'contact', 'a1'), (gen_random_uuid(), '{a}', 'contact', 'a2'), (gen_random_uuid(), '{b}', 'contact', 'b1')"),
    ] {
        diesel::sql_query(statement).execute(&mut owner).await.expect("seeded");
    }
    let app_url = linkai::db::app_role_url(&db.url());
    let mut app = AsyncPgConnection::establish(&app_url)
        .await
        .expect("linkai_app connects");
    let visible = "SELECT name FROM resources ORDER BY name";
    assert!(
        names_on(&mut app, visible).await.is_empty(),
        "no workspace named: nothing visible"
    );
    linkai::db::set_context(&mut app, None, Some(a))
        .await
        .expect("context");
    assert_eq!(names_on(&mut app, visible).await, ["a1", "a2"]);
    // No filter in the query, yet B's row stays hidden; and it cannot be written into B.
    let write_into_b = diesel::sql_query(format!(
        "INSERT INTO resources (id, workspace_id, kind, name) VALUES (gen_random_uuid(), '{b}', 'contact', 'x')"
    ))
    .execute(&mut app)
    .await;
    assert!(
        write_into_b.is_err(),
        "writing into another workspace must fail"
    );
    let stolen = diesel::sql_query("UPDATE resources SET name = 'stolen'")
        .execute(&mut app)
        .await
        .expect("runs");
    assert_eq!(stolen, 2, "only A's rows are reachable");
    linkai::db::set_context(&mut app, None, Some(b))
        .await
        .expect("context");
    assert_eq!(names_on(&mut app, visible).await, ["b1"]);
}

async fn names_on(conn: &mut AsyncPgConnection, sql: &str) -> Vec<String> {
    let rows: Vec<Name> = diesel::sql_query(sql).load(conn).await.expect("query");
    rows.into_iter().map(|r| r.name).collect()
}
