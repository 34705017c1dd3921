//! Ready to shard by `workspace_id` (issue 24, part 5): the plan, when one PostgreSQL is not
//! enough, is Citus, distributing every tenant table by `workspace_id`. Citus needs the
//! distribution column in each such table's primary key and unique indexes, and in the
//! foreign keys between them; tables without it are reference tables, copied to every node.
//!
//! This checks the catalog: a new table must be ready, or be named a reference table. The
//! tables made before this check are not all ready yet: they are listed in [`NOT_YET`], and
//! the test fails as soon as one of them is fixed, so the list only shrinks.

use std::collections::BTreeSet;

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

/// What is not ready yet, as this test words it. Fixing one fails the test until it is
/// taken off the list.
const NOT_YET: &[&str] = &[
    "billing_accounts: unique index billing_accounts_stripe_customer_id_key lacks workspace_id",
    "billing_accounts: unique index billing_accounts_subscription_id_key lacks workspace_id",
    "billing_operations: primary key lacks workspace_id",
    "card_notices: primary key lacks workspace_id",
    "card_notices: unique index card_notices_payment_method_id_exp_month_exp_year_notice_key lacks workspace_id",
    "conversations: foreign key conversations_agent_id_fkey lacks workspace_id",
    "conversations: foreign key conversations_contact_id_fkey lacks workspace_id",
    "conversations: primary key lacks workspace_id",
    "invitation_sends: foreign key invitation_sends_invitation_id_fkey lacks workspace_id",
    "invitation_sends: no primary key",
    "invitations: primary key lacks workspace_id",
    "invitations: unique index invitations_token_hash_key lacks workspace_id",
    "invoices: primary key lacks workspace_id",
    "messages: foreign key messages_conversation_id_fkey lacks workspace_id",
    "messages: primary key lacks workspace_id",
    "messages: unique index messages_conversation_id_external_id_key lacks workspace_id",
    "payment_methods: primary key lacks workspace_id",
    "resources: primary key lacks workspace_id",
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
           EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = t.oid
                   AND a.attname = 'workspace_id' AND a.attnum = ANY (i.indkey)) AS has
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
WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = t.oid
                  AND a.attname = 'workspace_id' AND a.attnum = ANY (f.conkey))
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
    let found: BTreeSet<String> = found.into_iter().map(|f| f.finding).collect();
    let known: BTreeSet<String> = NOT_YET.iter().map(|f| (*f).to_owned()).collect();
    let new: Vec<_> = found.difference(&known).collect();
    let fixed: Vec<_> = known.difference(&found).collect();
    assert!(
        new.is_empty(),
        "not ready to shard by workspace_id (or name the table in REFERENCE_TABLES): {new:#?}"
    );
    assert!(fixed.is_empty(), "fixed: take them off NOT_YET: {fixed:#?}");
}
