//! Cost flat as data grows (issue 24, part 5): every statement the API and its workers
//! issue is served by an index on the tables that grow with customers.
//!
//! The test runs the service's operations against an app that writes down the text of each
//! statement it runs (`Db::logging_statements`): every workspace operation and every
//! resource operation of the role matrix, the agent runtime's conversation writes, the
//! conversation reads, analytics and search, invitations, account emails, billing (a plan
//! bought with a card, changed, and the billing page, with the Stripe fake), and the
//! worker's jobs. It then loads bench/seed.sql (2,000 workspaces, 126,000 resources) and analyzes,
//! so that the main tables carry realistic statistics, and asks PostgreSQL for each
//! statement's generic plan (the plan a prepared statement settles on, whatever its
//! parameters), as the application role, with sequential scans priced out
//! (`enable_seqscan = off`): a sequential scan left in such a plan, or an index read from
//! end to end (no `Index Cond`) on a table the seed filled, means no index can serve the
//! statement, and the test names it. Row-level security adds `workspace_id = ...` to every tenant table's reads, so there
//! the check is that the statement narrows further than the workspace only where an index
//! leads with `workspace_id`; statements planned on each run (`planned_each_run`) are
//! judged by their generic plan, which they do not use.
//!
//! A statement's parameters are typed as the app's connections prepared them. One that no
//! connection holds any more (closed since) is typed by PostgreSQL's inference, so a
//! parameter it cannot infer (such as `$1 + interval`) must say its type with a cast.
//!
//! Not covered: the statements inside SQL functions (a plan shows the call, not its body;
//! search and purge run in functions), and the statements of jobs this flow does not queue.

use std::collections::{BTreeMap, BTreeSet};

use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use serde_json::{json, Value};

use crate::conversations as talk;
use crate::harness::TestApp;
use crate::role_matrix::{resource_operations, workspace_operations, Who};
use crate::usage::SERVICE_TOKEN;

/// Tables whose size does not grow with customers: a sequential scan of them is fine.
const FIXED_SIZE: &[&str] = &[
    "__diesel_schema_migrations",
    "plans",
    "plan_prices",
    "scheduled_rounds",
    "service_tokens",
];

/// Growing tables this flow's statements do not name (only SQL functions, or jobs it does
/// not queue, read them).
const NOT_REACHED: &[&str] = &[
    // The expiring-card notices' scan, months before a card expires.
    "card_notices",
    // The purge round's, 30 days after a deletion, in SQL functions.
    "purged_workspaces",
    // The trial scan's, days before a trial ends.
    "trial_notices",
];

/// Whether `sql` names `table` (as diesel quotes it, or bare).
fn names(sql: &str, table: &str) -> bool {
    sql.contains(&format!("\"{table}\"")) || {
        let bare = format!(" {table} ");
        sql.replace(['(', ')', ','], " ").contains(&bare)
    }
}

/// Statements that read a whole table on purpose, with the reason.
const WHOLE_TABLE: &[(&str, &str)] = &[];

#[derive(diesel::QueryableByName)]
struct Plan {
    #[diesel(sql_type = diesel::sql_types::Json, column_name = "QUERY PLAN")]
    plan: Value,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_statement_is_served_by_an_index_on_tables_that_grow() {
    let log = linkai::db::StatementLog::default();
    let app = TestApp::builder()
        .with_workers()
        .logging_statements(log.clone())
        .start()
        .await;
    let mut failures = workspace_operations(&app, &[Who::Owner, Who::Viewer]).await;
    failures.extend(resource_operations(&app, &[Who::Owner, Who::Member]).await);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    conversations(&app).await;
    accounts(&app).await;
    // Billing's statements, from an app with Stripe (the fake) logging to the same place.
    let billed = TestApp::builder()
        .with_stripe()
        .with_workers()
        .logging_statements(log.clone())
        .start()
        .await;
    billing(&billed).await;

    let statements: Vec<String> = log.lock().expect("log").iter().cloned().collect();
    let mut types = parameter_types(&app.pool).await;
    types.extend(parameter_types(&billed.pool).await);
    let mut conn = app.db.conn().await;
    seed(&mut conn).await;
    conn.batch_execute(
        "SET enable_seqscan = off; SET plan_cache_mode = force_generic_plan; \
         SET ROLE linkai_app; \
         SELECT set_config('app.user_id', gen_random_uuid()::text, false), \
                set_config('app.workspace_id', gen_random_uuid()::text, false)",
    )
    .await
    .expect("session");
    let growing = growing_tables(&mut conn).await;
    let seeded = seeded_tables(&mut conn).await;
    let mut explained = 0;
    let mut scans = Vec::new();
    for sql in statements.iter().filter(|sql| plannable(sql)) {
        let plan = match generic_plan(&mut conn, sql, types.get(sql)).await {
            Ok(plan) => plan,
            Err(unexplained) => {
                scans.push(unexplained);
                continue;
            }
        };
        explained += 1;
        for table in whole_reads(&plan, &seeded) {
            let allowed = WHOLE_TABLE.iter().any(|(start, _)| sql.starts_with(start));
            if growing.contains(&table) && !allowed {
                scans.push(format!("{table}: {sql}"));
            }
        }
    }
    assert!(
        scans.is_empty(),
        "{} statements scan a growing table with no index to serve them, or cannot be \
         explained:\n{}",
        scans.len(),
        scans.join("\n\n")
    );
    // The flow reaches the tables that grow, but for those named as not reached.
    let unread: BTreeSet<&String> = growing
        .iter()
        .filter(|table| !statements.iter().any(|sql| names(sql, table)))
        .filter(|table| !NOT_REACHED.contains(&table.as_str()))
        .collect();
    assert!(
        unread.is_empty(),
        "no statement of the flow reads {unread:?}"
    );
    assert!(
        explained >= 100,
        "only {explained} statements were explained"
    );
}

/// The agent runtime's writes, and every reading of conversations.
async fn conversations(app: &TestApp) {
    let team = app.team().await;
    let ws = team.workspace.as_str();
    let agent = talk::agent(app, &team.owner, ws).await;
    for (id, channel, contact) in [
        (
            "sms-1",
            "SMS",
            json!({ "phone": "+14155550142", "name": "Grace" }),
        ),
        ("chat-1", "WEB_CHAT", json!({ "email": "ada@example.com" })),
    ] {
        let input =
            json!({ "externalId": id, "agentId": agent, "channel": channel, "contact": contact });
        let started = talk::start(app, ws, input).await;
        let conversation = started.data("startConversation")["id"].clone();
        let messages: Vec<Value> = (0..3)
            .map(|n| {
                let direction = if n % 2 == 0 { "INBOUND" } else { "OUTBOUND" };
                talk::message(
                    &format!("m{n}"),
                    direction,
                    &format!("refund request number {n}"),
                    n,
                )
            })
            .collect();
        for _ in 0..2 {
            // The second is a retry: it reads what the first wrote.
            let variables = json!({ "ws": ws, "c": conversation, "m": messages });
            app.gql(Some(SERVICE_TOKEN), talk::APPEND, variables)
                .await
                .data("appendMessages");
        }
        let variables = json!({ "ws": ws, "c": conversation, "d": 60 });
        app.gql(Some(SERVICE_TOKEN), talk::CLOSE, variables)
            .await
            .data("closeConversation");
        app.gql(
            team.viewer.token(),
            "query($ws: ID!, $c: ID!) { workspace(id: $ws) { conversation(id: $c) {
               id agent { name conversations(first: 5) { totalCount } }
               contact { name conversations(first: 5) { totalCount } }
               messages(first: 2) { totalCount edges { cursor node { text } } } } } }",
            json!({ "ws": ws, "c": conversation }),
        )
        .await
        .data("workspace");
    }
    let reads = "query($ws: ID!, $agent: ID!) { workspace(id: $ws) {
        all: conversations(first: 10) { totalCount edges { cursor node { id status } } }
        found: conversations(filter: { search: \"refund\" }) { edges { node { id snippet } } }
        filtered: conversations(filter: { agentId: $agent, channel: SMS, status: CLOSED,
          since: \"2026-11-01T00:00:00Z\", until: \"2026-12-31T00:00:00Z\" }) { totalCount }
        days: analytics(since: \"2026-11-01T00:00:00Z\", until: \"2026-12-31T00:00:00Z\",
          interval: DAY) { totals { conversationsStarted uniqueContacts }
          firstResponseMedianSeconds firstResponseP90Seconds timeToCloseMedianSeconds
          usage { messages sms } }
        months: analytics(since: \"2026-11-01T00:00:00Z\", until: \"2026-12-31T00:00:00Z\",
          interval: MONTH, agentId: $agent, channel: SMS) { series { start } } } }";
    app.gql(
        team.viewer.token(),
        reads,
        json!({ "ws": ws, "agent": agent }),
    )
    .await
    .data("workspace");
}

/// What accounts do besides the role matrix: signing in, the account's workspaces, the
/// audit log.
async fn accounts(app: &TestApp) {
    let team = app.team().await;
    let email = app
        .gql(team.member.token(), "{ me { email } }", json!({}))
        .await
        .data("me")["email"]
        .as_str()
        .expect("email")
        .to_owned();
    app.session(&email, crate::harness::PASSWORD).await;
    app.gql(
        team.owner.token(),
        "query($ws: ID!) { me { id } workspaces { id name }
           workspace(id: $ws) { auditLog(first: 20) { edges { node { action } } } } }",
        json!({ "ws": team.workspace }),
    )
    .await
    .data("workspace");
    // Usage the runtime reports, past 80 % of the plan's messages: an alert.
    let limits = app
        .gql(
            team.owner.token(),
            "query($ws: ID!) { workspace(id: $ws) { usage { limits { messages } } } }",
            json!({ "ws": team.workspace }),
        )
        .await;
    let limit = limits.data("workspace")["usage"]["limits"]["messages"]
        .as_i64()
        .expect("a limit");
    app.gql(
        Some(SERVICE_TOKEN),
        "mutation($ws: ID!, $q: Int!) { reportUsage(workspaceId: $ws, metric: MESSAGES,
           quantity: $q, idempotencyKey: \"plans-1\") { messages } }",
        json!({ "ws": team.workspace, "q": limit * 9 / 10 }),
    )
    .await
    .data("reportUsage");
    // The account's own changes, each with its email.
    let new_password = "a different horse battery";
    for (query, variables) in [
        (
            "mutation($p: String!, $n: String!) { changePassword(currentPassword: $p,
               newPassword: $n) { user { id } } }",
            json!({ "p": crate::harness::PASSWORD, "n": new_password }),
        ),
        (
            "mutation($p: String!) { changeEmail(newEmail: \"moved@example.com\", password: $p) }",
            json!({ "p": new_password }),
        ),
    ] {
        app.gql(team.member.token(), query, variables)
            .await
            .answer();
    }
    app.gql(
        None,
        "mutation($e: String!) { requestPasswordReset(email: $e) }",
        json!({ "e": email }),
    )
    .await
    .data("requestPasswordReset");
}

/// A plan bought with a card, then changed, and what the billing page reads.
async fn billing(app: &TestApp) {
    let team = app.team().await;
    let ws = team.workspace.as_str();
    crate::billing::subscribe(app, &team.owner, ws, "STARTER").await;
    app.gql(
        team.owner.token(),
        "mutation($ws: ID!) { selectPlan(workspaceId: $ws, plan: GROWTH) { billing { status } } }",
        json!({ "ws": ws }),
    )
    .await
    .data("selectPlan");
    app.gql(
        team.admin.token(),
        "query($ws: ID!) { workspace(id: $ws) { billing { status plan { id } cancelAtPeriodEnd
           currentPeriodEnd paymentMethods { id } invoices(first: 5) { edges { node { id } } }
           details { email } } } }",
        json!({ "ws": ws }),
    )
    .await
    .data("workspace");
}

/// bench/seed.sql, so that workspaces, memberships, users, tokens and resources have the
/// statistics of a service in use.
async fn seed(conn: &mut AsyncPgConnection) {
    let seed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/bench/seed.sql"))
        .expect("bench/seed.sql");
    let (load, _vacuum) = seed
        .split_once("VACUUM")
        .expect("the seed ends with VACUUM");
    conn.batch_execute(load).await.expect("seeds");
    conn.batch_execute("ANALYZE").await.expect("analyzes");
}

async fn growing_tables(conn: &mut AsyncPgConnection) -> BTreeSet<String> {
    let all = table_names(conn, "c.relkind IN ('r', 'p')").await;
    all.into_iter()
        .filter(|name| !FIXED_SIZE.contains(&name.as_str()))
        .collect()
}

/// The names of the public schema's relations that meet `condition` (on `pg_class c`).
async fn table_names(conn: &mut AsyncPgConnection, condition: &str) -> BTreeSet<String> {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        name: String,
    }
    let names: Vec<Name> = diesel::sql_query(format!(
        "SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND {condition}"
    ))
    .load(conn)
    .await
    .expect("tables");
    names.into_iter().map(|n| n.name).collect()
}

/// Whether the statement has a plan (transaction control and settings have none).
fn plannable(sql: &str) -> bool {
    let first = sql
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    ["SELECT", "WITH", "INSERT", "UPDATE", "DELETE"].contains(&first.as_str())
}

/// The parameter types of the statements the app's connections have prepared, by their
/// text: as the app sent them (PostgreSQL cannot infer some, such as `$5 + interval`).
async fn parameter_types(pool: &linkai::db::Db) -> BTreeMap<String, String> {
    #[derive(diesel::QueryableByName)]
    struct Prepared {
        #[diesel(sql_type = Text)]
        statement: String,
        #[diesel(sql_type = Text)]
        types: String,
    }
    // Every connection at once, so that none is handed out twice.
    let size = pool.pool_status().size.max(1);
    let conns = futures::future::join_all((0..size).map(|_| pool.conn_outside_tenancy())).await;
    let mut types = BTreeMap::new();
    for conn in conns {
        let mut conn = conn.expect("a connection");
        let prepared: Vec<Prepared> = diesel::sql_query(
            "SELECT statement, array_to_string(parameter_types, ', ') AS types
             FROM pg_prepared_statements",
        )
        .load(&mut *conn)
        .await
        .expect("prepared statements");
        types.extend(prepared.into_iter().map(|p| (p.statement, p.types)));
    }
    types
}

/// The statement's generic plan (EXPLAIN's JSON), its parameters typed as the app typed
/// them if known, else as PostgreSQL infers them.
async fn generic_plan(
    conn: &mut AsyncPgConnection,
    sql: &str,
    types: Option<&String>,
) -> Result<Value, String> {
    let parameters = (1..=100)
        .take_while(|n| sql.contains(&format!("${n}")))
        .count();
    let typed = match types {
        Some(types) if !types.is_empty() => format!("({types})"),
        _ => String::new(),
    };
    conn.batch_execute(&format!("PREPARE plan_of{typed} AS {sql}"))
        .await
        .map_err(|e| format!("cannot prepare: {e}: {sql}"))?;
    let nulls = vec!["NULL"; parameters].join(", ");
    let execute = match parameters {
        0 => "EXPLAIN (FORMAT JSON) EXECUTE plan_of".to_owned(),
        _ => format!("EXPLAIN (FORMAT JSON) EXECUTE plan_of({nulls})"),
    };
    let plan: Result<Plan, _> = diesel::sql_query(execute).get_result(conn).await;
    conn.batch_execute("DEALLOCATE plan_of")
        .await
        .expect("deallocates");
    plan.map(|plan| plan.plan)
        .map_err(|e| format!("cannot explain: {e}: {sql}"))
}

/// Tables with at least a thousand rows by their statistics: those bench/seed.sql fills.
async fn seeded_tables(conn: &mut AsyncPgConnection) -> BTreeSet<String> {
    table_names(conn, "c.relkind = 'r' AND c.reltuples >= 1000").await
}

/// The tables the plan reads whole: a sequential scan (pricing them out leaves one only
/// where no index applies), or, on a table whose statistics say it is big (`seeded`), an
/// index read from end to end (no `Index Cond`). On a nearly empty table every plan costs
/// about nothing, and the planner may pick any index to read through.
fn whole_reads(plan: &Value, seeded: &BTreeSet<String>) -> Vec<String> {
    let mut found = Vec::new();
    let mut nodes = vec![plan];
    while let Some(node) = nodes.pop() {
        match node {
            Value::Array(items) => nodes.extend(items),
            Value::Object(fields) => {
                let kind = fields.get("Node Type").and_then(Value::as_str);
                if let Some(Value::String(table)) = fields.get("Relation Name") {
                    let whole = match kind {
                        Some("Seq Scan") => true,
                        Some("Index Scan" | "Index Only Scan") => {
                            seeded.contains(table) && !fields.contains_key("Index Cond")
                        }
                        _ => false,
                    };
                    if whole {
                        found.push(table.clone());
                    }
                }
                nodes.extend(fields.values());
            }
            _ => {}
        }
    }
    found
}
