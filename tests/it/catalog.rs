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

/// A GIN index with its pending list makes every search read the whole list, and the write
/// that finds it full empty it before answering (migration 000073).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_gin_index_writes_straight_into_its_tree() {
    let db = TestDatabase::new().await;
    let gin = "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_am a ON a.oid = c.relam
               WHERE n.nspname = 'public' AND c.relkind IN ('i', 'I') AND a.amname = 'gin'";
    let all = names(&db, &format!("SELECT c.relname::text AS name {gin}")).await;
    assert!(all.contains(&"messages_words".to_owned()), "{all:?}");
    // The option as PostgreSQL reads it (`off`, `false`, `0` alike); on when unset.
    let pending = names(
        &db,
        &format!(
            "SELECT c.relname::text AS name {gin}
             AND COALESCE((SELECT o.option_value::boolean FROM pg_options_to_table(c.reloptions) o
                           WHERE o.option_name = 'fastupdate'), true)"
        ),
    )
    .await;
    assert!(
        pending.is_empty(),
        "GIN indexes with a pending list: {pending:?}"
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
    let app_url = linkai::config::app_role_url(&db.url());
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

/// Subplans of the plan run once for the whole statement.
fn init_plans(plan: &serde_json::Value) -> usize {
    let own = usize::from(plan["Parent Relationship"] == "InitPlan");
    own + plan["Plans"]
        .as_array()
        .map_or(0, |plans| plans.iter().map(init_plans).sum())
}

/// `EXPLAIN (ANALYZE, FORMAT JSON)` of a query the service builds, with its binds.
struct ExplainAnalyze<Q>(Q);

impl<Q: diesel::query_builder::QueryFragment<diesel::pg::Pg>>
    diesel::query_builder::QueryFragment<diesel::pg::Pg> for ExplainAnalyze<Q>
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        out.push_sql("EXPLAIN (ANALYZE, FORMAT JSON) ");
        self.0.walk_ast(out.reborrow())
    }
}

impl<Q> diesel::query_builder::QueryId for ExplainAnalyze<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q> diesel::query_builder::Query for ExplainAnalyze<Q> {
    type SqlType = diesel::sql_types::Text;
}

/// Rows the plan read from `table`, over all its scans and loops, leaving out the
/// subplans run once for the whole statement (a page's count of its list).
fn rows_read_from(plan: &serde_json::Value, table: &str) -> f64 {
    if plan["Parent Relationship"] == "InitPlan" {
        return 0.0;
    }
    let own = if plan["Relation Name"] == table {
        plan["Actual Rows"].as_f64().unwrap_or(0.0) * plan["Actual Loops"].as_f64().unwrap_or(1.0)
    } else {
        0.0
    };
    let children = plan["Plans"].as_array().map_or(0.0, |plans| {
        plans.iter().map(|child| rows_read_from(child, table)).sum()
    });
    own + children
}

/// The benchmark's shape: one workspace of 300 members among 1,999 small ones, and an
/// agency's user (the caller, user 0) who is an Admin of every small workspace too. Returns
/// the app role's connection acting as the caller in the big workspace, the caller and the
/// big workspace.
async fn agency_workspaces(db: &TestDatabase) -> (AsyncPgConnection, uuid::Uuid, uuid::Uuid) {
    use diesel_async::AsyncConnection;
    let mut owner = db.conn().await;
    let big = uuid::Uuid::new_v4();
    for statement in [
        "INSERT INTO users (id, email, name, password_hash)
         SELECT ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid, 'u' || n || '@example.com', 'U' || n, 'x'
         FROM generate_series(0, 10299) n".to_owned(),
        "INSERT INTO workspaces (id, name, trial_ends_at)
         SELECT ('00000000-0000-4000-9000-' || lpad(n::text, 12, '0'))::uuid, 'W' || n, now()
         FROM generate_series(1, 1999) n".to_owned(),
        format!("INSERT INTO workspaces (id, name, trial_ends_at) VALUES ('{big}', 'Big', now())"),
        "INSERT INTO memberships (workspace_id, user_id, role)
         SELECT ('00000000-0000-4000-9000-' || lpad(n::text, 12, '0'))::uuid,
                ('00000000-0000-4000-8000-' || lpad((300 + n * 5 + k)::text, 12, '0'))::uuid,
                CASE k WHEN 0 THEN 'owner' ELSE 'member' END
         FROM generate_series(1, 1999) n, generate_series(0, 4) k".to_owned(),
        format!("INSERT INTO memberships (workspace_id, user_id, role, joined_at)
         SELECT '{big}', ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid,
                CASE n WHEN 0 THEN 'owner' ELSE 'member' END, now() + n * interval '1 second'
         FROM generate_series(0, 299) n"),
        "INSERT INTO memberships (workspace_id, user_id, role)
         SELECT ('00000000-0000-4000-9000-' || lpad(n::text, 12, '0'))::uuid,
                '00000000-0000-4000-8000-000000000000', 'admin'
         FROM generate_series(1, 1999) n".to_owned(),
        "ANALYZE users, workspaces, memberships".to_owned(),
    ] {
        diesel::sql_query(statement).execute(&mut owner).await.expect("seeded");
    }
    let app_url = linkai::config::app_role_url(&db.url());
    let mut app = AsyncPgConnection::establish(&app_url)
        .await
        .expect("linkai_app connects");
    let caller: uuid::Uuid = "00000000-0000-4000-8000-000000000000"
        .parse()
        .expect("uuid");
    linkai::db::set_context(&mut app, Some(caller), Some(big))
        .await
        .expect("context");
    (app, caller, big)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_page_reads_one_page_of_memberships_however_big_the_workspace() {
    let db = TestDatabase::new().await;
    let (mut app, caller, big) = agency_workspaces(&db).await;
    let first_page = linkai::db::page::Page::parse(Some(10), None).expect("valid");
    // The service prepares each statement once and soon runs it with a generic plan, which
    // cannot know how big this workspace is: look at that plan as well as the custom one.
    let page = linkai::members::model::page_query(big, &first_page);
    let sql = diesel::debug_query::<diesel::pg::Pg, _>(&page).to_string();
    let sql = sql.split(" -- binds").next().expect("sql");
    diesel::sql_query(format!("PREPARE members_page AS {sql}"))
        .execute(&mut app)
        .await
        .expect("prepared");
    for plan_cache_mode in ["force_custom_plan", "force_generic_plan"] {
        diesel::sql_query(format!("SET plan_cache_mode = {plan_cache_mode}"))
            .execute(&mut app)
            .await
            .expect("set");
        // The count's workspace and its LIMIT 1 come first, then the page's.
        let execute = diesel::sql_query(format!(
            "EXECUTE members_page('{big}', 1, '{big}', {})",
            first_page.limit()
        ));
        let plan: String = ExplainAnalyze(execute)
            .get_result(&mut app)
            .await
            .expect("explained");
        let plan: serde_json::Value = serde_json::from_str(&plan).expect("json plan");
        assert_eq!(
            init_plans(&plan[0]["Plan"]),
            1,
            "the count runs once per page: {plan:#}"
        );
        let read = rows_read_from(&plan[0]["Plan"], "memberships");
        assert!(
            read <= 11.0,
            "{plan_cache_mode}: a page of 10 read {read} membership rows (of 300): {plan:#}"
        );
    }

    // The caller's own memberships stay listable from inside another workspace, and only theirs.
    let small = "00000000-0000-4000-9000-000000000001"
        .parse()
        .expect("uuid");
    linkai::db::set_context(&mut app, Some(caller), Some(small))
        .await
        .expect("context");
    let mine = linkai::workspaces::model::memberships_of_caller(&mut app, None)
        .await
        .expect("listed");
    let ids: Vec<_> = mine.iter().map(|(workspace, _)| workspace.id).collect();
    assert_eq!(ids.len(), 2000);
    assert!(ids.contains(&big) && ids.contains(&small));
}

#[derive(diesel::QueryableByName)]
struct RowsRead {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    memberships: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    workspaces: i64,
}

/// Rows this transaction has read so far from memberships and workspaces (index entries
/// and heap rows, by any scan, including inside owner-run functions).
async fn rows_read(conn: &mut AsyncPgConnection) -> RowsRead {
    diesel::sql_query(
        "SELECT pg_stat_get_xact_tuples_returned('memberships'::regclass)
              + pg_stat_get_xact_tuples_fetched('memberships'::regclass) AS memberships,
                pg_stat_get_xact_tuples_returned('workspaces'::regclass)
              + pg_stat_get_xact_tuples_fetched('workspaces'::regclass) AS workspaces",
    )
    .get_result(conn)
    .await
    .expect("counters")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looking_up_one_workspace_of_an_agency_user_reads_only_its_rows() {
    let db = TestDatabase::new().await;
    let (mut app, _caller, _big) = agency_workspaces(&db).await;
    let small: uuid::Uuid = "00000000-0000-4000-9000-000000000007"
        .parse()
        .expect("uuid");
    diesel::sql_query("BEGIN")
        .execute(&mut app)
        .await
        .expect("begin");
    // The connection prepares the lookup once; from the sixth run PostgreSQL may plan it
    // generically, so look past that.
    for run in 1..=8 {
        let before = rows_read(&mut app).await;
        let found = linkai::workspaces::model::memberships_of_caller(&mut app, Some(&[small]))
            .await
            .expect("looked up");
        let after = rows_read(&mut app).await;
        assert_eq!(found.len(), 1, "run {run}");
        assert_eq!(found[0].0.id, small, "run {run}");
        let memberships = after.memberships - before.memberships;
        let workspaces = after.workspaces - before.workspaces;
        // One index entry and one row of each; the user's 2,000 memberships or a scan of
        // the 2,000 workspaces would show here.
        assert!(
            memberships <= 2 && workspaces <= 2,
            "run {run}: read {memberships} memberships and {workspaces} workspaces for one"
        );
    }
    // One statement, prepared once by the connection and run eight times.
    #[derive(diesel::QueryableByName)]
    struct Prepared {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        runs: i64,
    }
    let prepared: Vec<Prepared> = diesel::sql_query(
        "SELECT generic_plans + custom_plans AS runs FROM pg_prepared_statements
         WHERE statement LIKE '%FROM caller_memberships(%'
           AND statement NOT LIKE '%pg_prepared_statements%'",
    )
    .load(&mut app)
    .await
    .expect("prepared statements");
    let runs: Vec<i64> = prepared.iter().map(|p| p.runs).collect();
    assert_eq!(runs, [8]);
    diesel::sql_query("ROLLBACK")
        .execute(&mut app)
        .await
        .expect("rollback");
}
