//! Ready to shard by `workspace_id` (issue 24, part 5): the plan, when one PostgreSQL is not
//! enough, is Citus, distributing every tenant table by `workspace_id`. Citus needs the
//! distribution column in each such table's primary key and unique indexes, and in the
//! foreign keys between them; tables without it are reference tables, copied to every node.
//!
//! This checks the catalog: every table is ready, or is named a reference table. (The
//! tables made before this check were keyed by workspace in migrations 000044 to 000058,
//! but for three old keys kept one release longer: [`UNTIL_NEXT_RELEASE`].)
//! What remains to run on Citus is in docs/deploy.md, "Not covered yet".

use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;

use crate::harness::TestApp;

/// Tables without `workspace_id`: accounts and what the whole service shares. On Citus
/// they are reference tables (`workspaces` itself is distributed by its `id`).
const REFERENCE_TABLES: &[&str] = &[
    "__diesel_schema_migrations",
    "access_tokens",
    "account_notices",
    "account_tokens",
    "outbox",
    "password_reset_requests",
    "plan_prices",
    "purged_workspaces",
    "scheduled_rounds",
    "security_events",
    "service_tokens",
    "sign_in_networks",
    "sign_up_requests",
    "stripe_events",
    "throttles",
    "users",
    "workspaces",
];

/// Old keys kept for one release beside their replacements (migrations 000052, 000053): the
/// binaries of the release before it run beside this schema during a rollout, and their
/// upserts name these (docs/deploy.md, "Migrations during a rollout"). The next release's
/// first migration drops them (the card's becomes a plain index, for webhooks that name
/// only a card).
const UNTIL_NEXT_RELEASE: &[&str] = &[
    "invoices: unique index invoices_id_key lacks workspace_id",
    "messages: unique index messages_conversation_id_external_id_key lacks workspace_id",
    "payment_methods: unique index payment_methods_id_key lacks workspace_id",
];

#[derive(diesel::QueryableByName)]
struct Finding {
    #[diesel(sql_type = Text)]
    finding: String,
}

/// Every way the schema is not ready, one line each.
const FINDINGS: &str = "
WITH tenant AS (
    SELECT c.oid, c.relname FROM pg_class c
    JOIN pg_namespace s ON s.oid = c.relnamespace AND s.nspname = 'public'
    WHERE c.relkind IN ('r', 'p')
      AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                  AND a.attname = 'workspace_id' AND NOT a.attisdropped)
), keyed AS (
    SELECT t.relname, i.indexrelid::regclass::text AS index, i.indisprimary,
           -- Among the key's columns, not its INCLUDE ones.
           EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = t.oid
                   AND a.attname = 'workspace_id'
                   AND a.attnum = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1])) AS has
    FROM tenant t JOIN pg_index i ON i.indrelid = t.oid AND i.indisunique
)
SELECT t.relname || ': no primary key' AS finding FROM tenant t
WHERE NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = t.oid AND i.indisprimary)
UNION ALL
SELECT relname || ': ' || CASE WHEN indisprimary THEN 'primary key' ELSE 'unique index ' || index END
       || ' lacks workspace_id' FROM keyed WHERE NOT has
UNION ALL
SELECT t.relname || ': foreign key ' || f.conname || ' lacks workspace_id'
FROM tenant t JOIN pg_constraint f ON f.conrelid = t.oid AND f.contype = 'f'
JOIN tenant r ON r.oid = f.confrelid
-- workspace_id must reference workspace_id: the referenced row is then on the same shard.
WHERE NOT EXISTS (
    SELECT 1 FROM unnest(f.conkey, f.confkey) AS k (col, ref)
    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.col AND a.attname = 'workspace_id'
    JOIN pg_attribute b ON b.attrelid = r.oid AND b.attnum = k.ref AND b.attname = 'workspace_id')
UNION ALL
-- A reference table is copied to every node: it cannot refer to a row on one shard.
SELECT c.relname || ': foreign key ' || f.conname || ' refers to the distributed table '
       || f.confrelid::regclass::text
FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace AND s.nspname = 'public'
JOIN pg_constraint f ON f.conrelid = c.oid AND f.contype = 'f'
WHERE c.relname = ANY ($1) AND c.relname <> 'workspaces'
  AND (f.confrelid = 'workspaces'::regclass OR f.confrelid IN (SELECT oid FROM tenant))
UNION ALL
SELECT c.relname || ': no workspace_id, and not a reference table' FROM pg_class c
JOIN pg_namespace s ON s.oid = c.relnamespace AND s.nspname = 'public'
WHERE c.relkind IN ('r', 'p') AND c.oid NOT IN (SELECT oid FROM tenant)
  AND c.relname <> ALL ($1)
ORDER BY 1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_table_is_ready_to_shard_by_workspace_or_a_reference_table() {
    let app = TestApp::new().await;
    let references: Vec<String> = REFERENCE_TABLES.iter().map(|t| (*t).to_owned()).collect();
    let found: Vec<Finding> = diesel::sql_query(FINDINGS)
        .bind::<diesel::sql_types::Array<Text>, _>(references)
        .load(&mut app.db.conn().await)
        .await
        .expect("catalog");
    let found: Vec<String> = found.into_iter().map(|f| f.finding).collect();
    let new: Vec<&String> = found
        .iter()
        .filter(|f| !UNTIL_NEXT_RELEASE.contains(&f.as_str()))
        .collect();
    assert!(
        new.is_empty(),
        "not ready to shard by workspace_id (or name the table in REFERENCE_TABLES): {new:#?}"
    );
    let gone: Vec<&&str> = UNTIL_NEXT_RELEASE
        .iter()
        .filter(|f| !found.iter().any(|found| found == *f))
        .collect();
    assert!(
        gone.is_empty(),
        "dropped: take them off UNTIL_NEXT_RELEASE: {gone:#?}"
    );
}
