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
