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
//! The statements inside SQL functions (search, the purge, the scans) do not show in a
//! statement's plan, which shows the call. So the test also runs every SQL function of the
//! schema over the seed, each by a statement in [`FUNCTION_CALLS`] (a trigger's by one that
//! fires it), with `auto_explain` reporting the plan of each statement the function runs
//! (`log_nested_statements`), and holds those plans to the same rule. A branch a call does
//! not take is not planned, and so not checked.

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
    // A queue: a row lives until the relay hands its job to Redis, so its size follows
    // the relay's lag, not the customers. (The purge reads it whole, once per purged
    // workspace, for the workspace's jobs; during a Redis outage that read grows.)
    "outbox",
    "plans",
    "plan_prices",
    "scheduled_rounds",
    "service_tokens",
];

/// The functions that visit every tenant table (the purge's): the tables they read do not
/// count as reached by the flow.
const EVERY_TENANT_TABLE: &[&str] = &[
    "purge_workspace_batch",
    "purge_workspace_finish",
    "tenant_tables",
];

/// Partial indexes read whole on purpose, with the reason: such an index holds only the
/// rows its predicate keeps.
const PARTIAL_READS: &[(&str, &str)] = &[(
    "workspaces_with_retention",
    "the conversation pruner visits every workspace that set a retention",
)];

/// Each SQL function of the schema, with a statement that runs it over the seed (a
/// trigger's, a statement that fires it). `$ws` is a seeded workspace and `$user` its
/// first member. Each runs in a transaction that is rolled back.
const FUNCTION_CALLS: &[(&str, &str)] = &[
    (
        "add_conversation_total",
        "SELECT add_conversation_total($ws, 'sms', 'open', 1)",
    ),
    (
        "add_usage",
        "SELECT * FROM add_usage($ws, now(), ARRAY['messages', 'sms'], ARRAY[1, 2], \
           ARRAY[1000, 1000])",
    ),
    (
        "append_messages",
        "INSERT INTO conversations (id, workspace_id, external_id, channel, started_at, \
           last_activity_at) VALUES (gen_random_uuid(), $ws, 'plans-a', 'sms', now(), now()); \
         SELECT * FROM append_messages($ws, (SELECT id FROM conversations \
             WHERE workspace_id = $ws AND external_id = 'plans-a'), \
           ARRAY[gen_random_uuid(), gen_random_uuid()], ARRAY['a', 'b'], \
           ARRAY['inbound', 'outbound'], ARRAY['Hi', 'Hello'], ARRAY[now(), now()], \
           ARRAY[NULL, 2]::int2[], now(), ARRAY[1000000, 1000000], '{}', '{}', NULL, ''); \
         DO $$ BEGIN \
           BEGIN \
             PERFORM * FROM append_messages($ws, (SELECT id FROM conversations \
                 WHERE workspace_id = $ws AND external_id = 'plans-a'), \
               ARRAY[gen_random_uuid()], ARRAY['a'], ARRAY['outbound'], ARRAY['Other'], \
               ARRAY[now()], ARRAY[NULL]::int2[], now(), ARRAY[1000000, 1000000], '{}', \
               '{}', NULL, ''); \
           EXCEPTION WHEN OTHERS THEN NULL; END; \
           PERFORM * FROM append_messages($ws, (SELECT id FROM conversations \
               WHERE workspace_id = $ws AND external_id = 'plans-a'), \
             ARRAY[gen_random_uuid()], ARRAY['c'], ARRAY['outbound'], ARRAY['Bye'], \
             ARRAY[now()], ARRAY[NULL]::int2[], now(), ARRAY[1000000, 1000000], '{5}', '{5}', \
             '-infinity', 'plans.never'); \
         EXCEPTION WHEN OTHERS THEN NULL; END $$",
    ),
    ("app_user_id", "SELECT app_user_id()"),
    ("app_workspace_id", "SELECT app_workspace_id()"),
    (
        "caller_memberships",
        "SELECT set_config('app.user_id', $user::text, true); \
         SELECT * FROM caller_memberships(ARRAY[$ws]); SELECT * FROM caller_memberships(NULL)",
    ),
    (
        "cards_needing_notice",
        "SELECT * FROM cards_needing_notice(now(), 30)",
    ),
    (
        "conversation_search_hits",
        "SELECT * FROM conversation_search_hits($ws, 'refund')",
    ),
    (
        "count_conversations",
        "INSERT INTO conversations (id, workspace_id, external_id, channel, started_at, \
           last_activity_at) VALUES (gen_random_uuid(), $ws, 'plans', 'sms', now(), now()); \
         UPDATE conversations SET status = 'closed', closed_at = now() \
           WHERE workspace_id = $ws AND external_id = 'plans'; \
         DELETE FROM conversations WHERE workspace_id = $ws AND external_id = 'plans'",
    ),
    (
        "conversation_seconds",
        "INSERT INTO conversations (id, workspace_id, external_id, channel, started_at, \
           last_activity_at) VALUES (gen_random_uuid(), $ws, 'plans-s', 'sms', now(), now()); \
         UPDATE conversations SET status = 'closed', closed_at = now() \
           WHERE workspace_id = $ws AND external_id = 'plans-s'",
    ),
    ("forget_expired_exports", "SELECT forget_expired_exports()"),
    (
        "notify_token_revoked",
        "UPDATE access_tokens SET revoked_at = now() \
         WHERE id = (SELECT id FROM access_tokens WHERE user_id = $user LIMIT 1)",
    ),
    (
        "notify_viewer",
        "UPDATE access_tokens SET revoked_at = now() WHERE id = (SELECT id FROM access_tokens \
         WHERE user_id = $user AND revoked_at IS NULL LIMIT 1)",
    ),
    (
        "notify_workspace_members",
        "UPDATE workspaces SET deleted_at = now() WHERE id = $ws; \
         UPDATE workspaces SET deleted_at = NULL WHERE id = $ws",
    ),
    (
        "number_workspace_event",
        "INSERT INTO audit_events (workspace_id, at, actor_kind, action, target_kind, target_id) \
         VALUES ($ws, now(), 'system', 'workspace.renamed', 'workspace', 'plans-n')",
    ),
    (
        "workspace_event_heads",
        "SELECT * FROM workspace_event_heads(ARRAY[$ws, gen_random_uuid()])",
    ),
    (
        "forget_old_invitation_sends",
        "SELECT forget_old_invitation_sends(now() - interval '1 day')",
    ),
    (
        "graces_needing_notice",
        "SELECT * FROM graces_needing_notice(now(), interval '7 days', interval '3 days')",
    ),
    (
        "invitation_workspace_by_id",
        "SELECT invitation_workspace_by_id(gen_random_uuid())",
    ),
    (
        "invitation_workspace_by_token",
        "SELECT invitation_workspace_by_token('\\x00')",
    ),
    (
        "keep_link_hashes",
        "UPDATE invitations SET token_hash = '\\x01' WHERE workspace_id = $ws",
    ),
    (
        "memberships_check_exactly_one_owner",
        "UPDATE memberships SET role = role WHERE workspace_id = $ws",
    ),
    (
        "note_contact_days",
        "INSERT INTO conversations (id, workspace_id, external_id, contact_id, channel, \
           started_at, last_activity_at) \
         SELECT gen_random_uuid(), $ws, 'plans-d', id, 'sms', now(), now() FROM resources \
         WHERE workspace_id = $ws AND kind = 'contact' LIMIT 1",
    ),
    ("outbox_notify", "INSERT INTO outbox (job) VALUES ('{}')"),
    (
        "prune_audit_events",
        "SELECT prune_audit_events(now() - interval '400 days')",
    ),
    (
        "record_conversation_event",
        // Deferred to the commit, which the call's transaction never reaches: at once here.
        "SET CONSTRAINTS conversation_events IMMEDIATE; \
         INSERT INTO conversations (id, workspace_id, external_id, channel, started_at, \
           last_activity_at) VALUES (gen_random_uuid(), $ws, 'plans-e', 'sms', now(), now()); \
         UPDATE conversations SET message_count = message_count + 1 \
           WHERE workspace_id = $ws AND external_id = 'plans-e'; \
         UPDATE conversations SET status = 'closed', closed_at = now() \
           WHERE workspace_id = $ws AND external_id = 'plans-e'",
    ),
    (
        "prune_conversations",
        "SELECT prune_conversations(now(), 100)",
    ),
    (
        "prune_conversation_events",
        "SELECT prune_conversation_events(now(), 100)",
    ),
    (
        "prune_contact_days",
        "UPDATE workspaces SET conversation_retention_days = 1 WHERE id = $ws; \
         SELECT prune_contact_days(now(), 100)",
    ),
    (
        "prune_security_events",
        "SELECT prune_security_events(now() - interval '400 days')",
    ),
    ("purge_window", "SELECT purge_window(interval '30 days')"),
    (
        "purge_workspace_start",
        "UPDATE workspaces SET deleted_at = now() - interval '31 days' WHERE id = $ws; \
         SELECT purge_workspace_start($ws, interval '30 days')",
    ),
    (
        "purge_workspace_batch",
        "UPDATE workspaces SET deleted_at = now() - interval '31 days', purge_started_at = now() \
           WHERE id = $ws; \
         SELECT purge_workspace_batch($ws, 1000)",
    ),
    (
        "purge_workspace_finish",
        "UPDATE workspaces SET deleted_at = now() - interval '31 days', purge_started_at = now() \
           WHERE id = $ws; \
         DO $$ BEGIN WHILE purge_workspace_batch($ws, 1000) > 0 LOOP END LOOP; END $$; \
         SELECT purge_workspace_finish($ws, 0, 'cus_plans')",
    ),
    (
        "report_buckets",
        "SELECT report_buckets(now() - interval '90 days', now(), 'America/New_York', 'week')",
    ),
    (
        "report_day_masks",
        "SELECT * FROM report_day_masks(report_buckets(now() - interval '9 days', now(), \
           'Asia/Kolkata', 'day'), now() - interval '9 days', now())",
    ),
    (
        "roll_up_conversation_hours",
        "SELECT roll_up_conversation_hours($ws, gen_random_uuid(), 'sms', ARRAY[now()], \
           ARRAY[1], ARRAY[0], ARRAY[0], ARRAY[0], ARRAY[0], ARRAY[0], ARRAY[0::int8])",
    ),
    (
        "roll_up_workspace_hours",
        "INSERT INTO conversation_hours (workspace_id, hour, agent_id, channel, started) \
           VALUES ($ws, date_trunc('hour', now()), gen_random_uuid(), 'sms', 1); \
         UPDATE conversation_hours SET closed = 1 WHERE workspace_id = $ws",
    ),
    (
        "scrub_events_of_purged_customers",
        "INSERT INTO stripe_events (id, type, payload, stripe_customer_id) \
           VALUES ('evt_plans', 'customer.updated', '{}', 'cus_plans')",
    ),
    (
        "scrub_stripe_events_of",
        "SELECT scrub_stripe_events_of($ws)",
    ),
    ("tenant_tables", "SELECT * FROM tenant_tables()"),
    (
        "trials_needing_notice",
        "SELECT * FROM trials_needing_notice(now(), interval '7 days')",
    ),
    (
        "workspace_for_writes",
        "SELECT * FROM workspace_for_writes($ws, 'trial', now())",
    ),
    (
        "workspace_export_by_token",
        "SELECT * FROM workspace_export_by_token('\\x00')",
    ),
    (
        "workspace_export_document",
        "SELECT workspace_export_document($ws)",
    ),
    (
        "workspace_of_payment_method",
        "SELECT workspace_of_payment_method('pm_plans')",
    ),
    (
        "workspace_of_stripe_customer",
        "SELECT workspace_of_stripe_customer('cus_plans')",
    ),
    (
        "workspace_query",
        "SELECT workspace_query($ws, to_tsquery('refund'))",
    ),
    (
        "workspace_words",
        "SELECT workspace_words($ws, to_tsvector('refund'))",
    ),
    (
        "workspaces_to_purge",
        "SELECT * FROM workspaces_to_purge(interval '30 days', 10)",
    ),
    (
        "workspaces_with_billing",
        "SELECT * FROM workspaces_with_billing()",
    ),
];

/// Whether `sql` names `table` (as diesel quotes it, or bare).
fn names(sql: &str, table: &str) -> bool {
    sql.contains(&format!("\"{table}\"")) || {
        let bare = format!(" {table} ");
        sql.replace(['(', ')', ','], " ").contains(&bare)
    }
}

/// Statements that read a whole table on purpose, with the reason.
const WHOLE_TABLE: &[(&str, &str)] = &[(
    "SELECT workspace_id FROM billing_accounts ORDER BY synced_at NULLS FIRST",
    "the reconciliation round (workspaces_with_billing) lists every billing account, least \
     recently synced first, and counts those its deadline leaves for the next round",
)];

/// Whether the statement reads a whole table on purpose ([`WHOLE_TABLE`]).
fn whole_on_purpose(sql: &str) -> bool {
    WHOLE_TABLE
        .iter()
        .any(|(start, _)| sql.trim_start().starts_with(start))
}

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
    crate::live::subscribe_and_resume(&app).await;
    // Billing's statements, from an app with Stripe (the fake) logging to the same place.
    let billed = TestApp::builder()
        .with_stripe()
        .with_workers()
        .logging_statements(log.clone())
        .start()
        .await;
    billing(&billed).await;
    rounds(&app, &billed).await;

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
    let sizes = Sizes::read(&mut conn).await;
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
        for table in sizes.whole_reads(&plan) {
            if growing.contains(&table) && !whole_on_purpose(sql) {
                scans.push(format!("{table}: {sql}"));
            }
        }
    }
    let nested = function_plans(&app.db.url(), &mut scans).await;
    // Each call's own statement is planned too: fewer plans mean auto_explain said nothing.
    assert!(
        nested.len() > FUNCTION_CALLS.len(),
        "auto_explain reported {} plans",
        nested.len()
    );
    let mut in_functions = BTreeSet::new();
    for (function, sql, plan) in &nested {
        if !EVERY_TENANT_TABLE.contains(&function.as_str()) {
            in_functions.extend(relations(plan));
        }
        for table in sizes.whole_reads(plan) {
            if growing.contains(&table) && !whole_on_purpose(sql) {
                scans.push(format!("{table} (in {function}): {sql}"));
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
    // The flow reaches every table that grows, by its statements or its functions'.
    let unread: BTreeSet<&String> = growing
        .iter()
        .filter(|table| !statements.iter().any(|sql| names(sql, table)))
        .filter(|table| !in_functions.contains(*table))
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

/// The scheduled rounds, at moments they find work: the trial reminders, the expiring
/// card's notices (and their emails), a failed payment's grace, and the purge of a
/// workspace deleted longer ago than the window.
async fn rounds(app: &TestApp, billed: &TestApp) {
    // A trial ending in two days: its reminder is due now, so its job sends it.
    let trial = app.team().await;
    diesel::sql_query(format!(
        "UPDATE workspaces SET trial_ends_at = now() + interval '2 days' WHERE id = '{}'",
        trial.workspace
    ))
    .execute(&mut app.db.conn().await)
    .await
    .expect("a trial ending");
    let now = chrono::Utc::now();
    let reminded = linkai::billing::trial::scan(&app.pool, now)
        .await
        .expect("the trial scan");
    assert!(reminded > 0, "no trial reminder was due");
    let years = now + chrono::Duration::days(3650);
    let noticed = linkai::billing::cards::scan(&billed.pool, years)
        .await
        .expect("the card scan");
    assert!(noticed > 0, "no card notice was due");
    // Their jobs' last statements, once the emails went out.
    let emailed = format!(
        "EXISTS (SELECT 1 FROM trial_notices WHERE workspace_id = '{}' AND emailed_at IS NOT NULL)",
        trial.workspace
    );
    crate::lifecycle::until(app, &emailed).await;
    let emailed = "EXISTS (SELECT 1 FROM card_notices WHERE emailed_at IS NOT NULL)";
    crate::lifecycle::until(billed, emailed).await;
    // A payment that failed a month ago: its grace notice is due.
    diesel::sql_query(
        "UPDATE workspaces SET subscription_status = 'past_due',
           payment_failed_at = now() - interval '30 days'
         WHERE id = (SELECT id FROM workspaces ORDER BY created_at LIMIT 1)",
    )
    .execute(&mut billed.db.conn().await)
    .await
    .expect("a failed payment");
    let told = linkai::billing::grace::scan(&billed.pool, chrono::Utc::now())
        .await
        .expect("the grace scan");
    assert!(told > 0, "no grace notice was due");
    crate::lifecycle::until(billed, "NOT EXISTS (SELECT 1 FROM outbox)").await;
    let team = app.team().await;
    app.gql(
        team.owner.token(),
        "mutation($ws: ID!) { deleteWorkspace(workspaceId: $ws) }",
        json!({ "ws": team.workspace }),
    )
    .await
    .data("deleteWorkspace");
    diesel::sql_query(format!(
        "UPDATE workspaces SET deleted_at = now() - interval '31 days' WHERE id = '{}'",
        team.workspace
    ))
    .execute(&mut app.db.conn().await)
    .await
    .expect("deleted a month ago");
    let purged = linkai::workspaces::lifecycle::purge_due(&app.pool, None)
        .await
        .expect("the purge round");
    assert!(purged > 0, "nothing was purged");
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
    conn.batch_execute(MORE_ROWS).await.expect("seeds more");
    conn.batch_execute("ANALYZE").await.expect("analyzes");
}

/// Thousands of conversations, messages, invitations and sends, in the seed's first 200
/// workspaces: enough that their statistics price a whole read as what it is, so that a
/// plan reading one of them end to end with no condition fails as on the seed's tables.
const MORE_ROWS: &str = "
INSERT INTO conversations (id, workspace_id, external_id, channel, status, started_at,
                           last_activity_at, closed_at, message_count)
SELECT gen_random_uuid(), w.id, 'plans-' || i, 'web_chat', 'closed',
       now() - i * interval '1 hour', now() - i * interval '1 hour',
       now() - i * interval '1 hour' + interval '1 minute', 5
FROM (SELECT id FROM workspaces ORDER BY id LIMIT 200) AS w, generate_series(1, 20) AS i;
INSERT INTO messages (id, workspace_id, conversation_id, external_id, direction, body, sent_at)
SELECT gen_random_uuid(), c.workspace_id, c.id, 'm' || k,
       CASE WHEN k % 2 = 1 THEN 'inbound' ELSE 'outbound' END,
       'a refund for booking ' || k, c.started_at + k * interval '1 second'
FROM conversations c, generate_series(1, 5) AS k WHERE c.external_id LIKE 'plans-%';
INSERT INTO invitations (id, workspace_id, email, role, expires_at)
SELECT gen_random_uuid(), w.id, 'guest' || i || '@example.com', 'member',
       now() + interval '7 days'
FROM (SELECT id FROM workspaces ORDER BY id LIMIT 200) AS w, generate_series(1, 10) AS i;
INSERT INTO invitation_sends (invitation_id, workspace_id, email_lower, sent_at)
SELECT id, workspace_id, lower(email), now() - interval '1 hour' FROM invitations;
";

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

/// Runs [`FUNCTION_CALLS`] as the superuser, with auto_explain sending the plan of every
/// statement run (nested ones included) as a notice; answers each plan with its statement.
/// A call that fails, and a function with no call, go to `failures`.
async fn function_plans(url: &str, failures: &mut Vec<String>) -> Vec<(String, String, Value)> {
    use futures::StreamExt;
    let (client, mut connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connects");
    let (notices, mut received) = tokio::sync::mpsc::unbounded_channel();
    // A notice comes before the end of its statement's answer, so each call's plans have
    // arrived when the call returns.
    tokio::spawn(
        futures::stream::poll_fn(move |cx| connection.poll_message(cx)).for_each(move |m| {
            if let Ok(tokio_postgres::AsyncMessage::Notice(notice)) = m {
                let _ = notices.send(notice.message().to_owned());
            }
            futures::future::ready(())
        }),
    );
    let functions: BTreeSet<String> = client
        .query(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             JOIN pg_language l ON l.oid = p.prolang
             WHERE n.nspname = 'public' AND l.lanname IN ('sql', 'plpgsql')",
            &[],
        )
        .await
        .expect("functions")
        .iter()
        .map(|row| row.get(0))
        .collect();
    let called: BTreeSet<String> = FUNCTION_CALLS
        .iter()
        .map(|(f, _)| (*f).to_owned())
        .collect();
    for missing in functions.difference(&called) {
        failures.push(format!("function {missing}: no call in FUNCTION_CALLS"));
    }
    for gone in called.difference(&functions) {
        failures.push(format!(
            "FUNCTION_CALLS names {gone}, which is not in the schema"
        ));
    }
    let seeded = client
        .query_one(
            "SELECT workspace_id::text, user_id::text FROM memberships
             WHERE workspace_id = (SELECT id FROM workspaces ORDER BY id LIMIT 1)
             ORDER BY user_id LIMIT 1",
            &[],
        )
        .await
        .expect("a seeded workspace");
    let (ws, user): (String, String) = (seeded.get(0), seeded.get(1));
    client
        .batch_execute(
            "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0;
             SET auto_explain.log_nested_statements = on; SET auto_explain.log_format = json;
             SET auto_explain.log_level = notice; SET client_min_messages = notice;
             SET enable_seqscan = off",
        )
        .await
        .expect("auto_explain");
    let mut plans = Vec::new();
    for (function, call) in FUNCTION_CALLS {
        let call = call
            .replace("$ws", &format!("'{ws}'::uuid"))
            .replace("$user", &format!("'{user}'::uuid"));
        while received.try_recv().is_ok() {}
        if let Err(err) = client
            .batch_execute(&format!("BEGIN; {call}; ROLLBACK"))
            .await
        {
            failures.push(format!("{function}: {call}: {err:?}"));
        }
        client.batch_execute("ROLLBACK").await.expect("rolls back");
        while let Ok(notice) = received.try_recv() {
            let Some(json) = notice.find('{').map(|at| &notice[at..]) else {
                continue;
            };
            let explained: Value = serde_json::from_str(json).expect("auto_explain's JSON");
            let text = explained["Query Text"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            plans.push(((*function).to_owned(), text, explained["Plan"].clone()));
        }
    }
    plans
}

/// Whether an index condition takes its value from the other side of a join: it names a
/// column of another relation (`d.id`), which a plan writes qualified.
fn joined(condition: &str) -> bool {
    let identifier = |c: char| c.is_ascii_alphanumeric() || c == '_';
    condition.char_indices().any(|(at, c)| {
        c == '.'
            && condition[..at].ends_with(identifier)
            && condition[at + 1..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
    })
}

/// The relations a plan reads or writes.
fn relations(plan: &Value) -> Vec<String> {
    relation_nodes(plan)
        .into_iter()
        .map(|(table, _)| table)
        .collect()
}

/// Each node of the plan that reads or writes a relation, with the relation's name. A
/// bitmap index scan names only its index: it reads for the bitmap heap scan above it, and
/// is charged to that scan's relation.
fn relation_nodes(plan: &Value) -> Vec<(String, &serde_json::Map<String, Value>)> {
    let mut found = Vec::new();
    let mut nodes: Vec<(&Value, Option<&str>)> = vec![(plan, None)];
    while let Some((node, above)) = nodes.pop() {
        match node {
            Value::Array(items) => nodes.extend(items.iter().map(|item| (item, above))),
            Value::Object(fields) => {
                let named = fields.get("Relation Name").and_then(Value::as_str);
                let bitmap =
                    fields.get("Node Type").and_then(Value::as_str) == Some("Bitmap Index Scan");
                if let Some(table) = named.or(above.filter(|_| bitmap)) {
                    found.push((table.to_owned(), fields));
                }
                nodes.extend(fields.values().map(|value| (value, named.or(above))));
            }
            _ => {}
        }
    }
    found
}

/// What the plans are judged by.
struct Sizes {
    /// Tables with at least a thousand rows by their statistics: those bench/seed.sql and
    /// [`MORE_ROWS`] fill.
    seeded: BTreeSet<String>,
    /// Each index's first key column (none for an expression), by index name.
    leading: BTreeMap<String, Option<String>>,
}

impl Sizes {
    async fn read(conn: &mut AsyncPgConnection) -> Self {
        #[derive(diesel::QueryableByName)]
        struct Leading {
            #[diesel(sql_type = Text)]
            index: String,
            #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
            column: Option<String>,
        }
        let leading: Vec<Leading> = diesel::sql_query(
            "SELECT c.relname AS index, a.attname AS column FROM pg_index i
             JOIN pg_class c ON c.oid = i.indexrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
             LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]",
        )
        .load(conn)
        .await
        .expect("indexes");
        Sizes {
            seeded: table_names(conn, "c.relkind = 'r' AND c.reltuples >= 1000").await,
            leading: leading.into_iter().map(|l| (l.index, l.column)).collect(),
        }
    }

    /// The tables the plan reads whole:
    /// - a sequential scan (pricing them out leaves one only where no index applies);
    /// - an index scan whose condition does not bound the index's first column, which
    ///   reads the index from end to end: on a seeded table, or once per row of the other
    ///   side of a join (`id = d.id` on a key led by `workspace_id`), whatever the size;
    /// - on a seeded table, an index scan with no condition at all, unless it is one of
    ///   [`PARTIAL_READS`]. (On a nearly empty table every plan costs about nothing, and
    ///   the planner may pick any index to read through.)
    fn whole_reads(&self, plan: &Value) -> Vec<String> {
        relation_nodes(plan)
            .into_iter()
            .filter(|(table, node)| {
                let index = node.get("Index Name").and_then(Value::as_str);
                let condition = node.get("Index Cond").and_then(Value::as_str);
                match node.get("Node Type").and_then(Value::as_str) {
                    Some("Seq Scan") => true,
                    Some("Index Scan" | "Index Only Scan" | "Bitmap Index Scan") => match condition
                    {
                        Some(condition) => {
                            !self.bounds_first_column(index, condition)
                                && (self.seeded.contains(table) || joined(condition))
                        }
                        None => {
                            self.seeded.contains(table)
                                && !PARTIAL_READS.iter().any(|(name, _)| index == Some(name))
                        }
                    },
                    _ => false,
                }
            })
            .map(|(table, _)| table)
            .collect()
    }

    /// Whether an index condition names the index's first column (an expression index's
    /// first key is taken as bounded).
    fn bounds_first_column(&self, index: Option<&str>, condition: &str) -> bool {
        match index.and_then(|index| self.leading.get(index)) {
            Some(Some(column)) => condition.contains(&format!("({column} ")),
            _ => true,
        }
    }
}
