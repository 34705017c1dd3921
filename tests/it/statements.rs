//! SQL statements per request, counted by the server (`extensions.sqlStatements`): list
//! queries cost the same whatever their page size, and a request reads only what it answers.
//! Each request looks its token up (`without_token_cache`): a token used in the last second
//! spares one more statement (tests/it/bearers.rs).

use diesel_async::RunQueryDsl;
use serde_json::json;

use crate::harness::TestApp;

/// Adds `n` members to `workspace_id` straight in the database (no password hashing).
async fn add_many_members(app: &TestApp, workspace_id: &str, n: usize) {
    let mut conn = app.db.conn().await;
    diesel::sql_query(format!(
        "WITH new_users AS (
           INSERT INTO users (id, email, name, password_hash)
           SELECT gen_random_uuid(), 'bulk' || i || '@example.com', 'Bulk ' || i, 'x'
           FROM generate_series(1, {n}) AS i
           RETURNING id
         )
         INSERT INTO memberships (workspace_id, user_id, role, joined_at)
         SELECT '{workspace_id}', id, 'member', clock_timestamp() FROM new_users"
    ))
    .execute(&mut conn)
    .await
    .expect("members added");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_100_members_costs_the_same_statements_as_listing_1() {
    let app = TestApp::builder().without_token_cache().start().await;
    let ada = app.sign_up("Ada").await;
    add_many_members(&app, &ada.own_workspace, 120).await;
    let query = "query($id: ID!, $first: Int) { workspace(id: $id) {
        id viewerRole members(first: $first) { totalCount pageInfo { hasNextPage endCursor }
          edges { cursor node { role joinedAt user { id email name emailVerified } } } } } }";
    let one = app
        .gql(
            ada.token(),
            query,
            json!({ "id": ada.own_workspace, "first": 1 }),
        )
        .await;
    let hundred = app
        .gql(
            ada.token(),
            query,
            json!({ "id": ada.own_workspace, "first": 100 }),
        )
        .await;
    assert_eq!(
        one.data("workspace")["members"]["edges"]
            .as_array()
            .expect("edges")
            .len(),
        1
    );
    assert_eq!(
        hundred.data("workspace")["members"]["edges"]
            .as_array()
            .expect("edges")
            .len(),
        100
    );
    assert_eq!(one.sql_statements(), hundred.sql_statements());
    // Token lookup; membership (shared by the role check and `workspace`); the page, whose
    // rows carry the count.
    assert_eq!(hundred.sql_statements(), 3);
    // Three checkouts, and a checked-out connection only gets a context it lacks.
    assert!(hundred.sql_context_statements() <= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_role_lookup_is_done_once_per_workspace_per_request() {
    let app = TestApp::builder().without_token_cache().start().await;
    let ada = app.sign_up("Ada").await;
    let query = "query($id: ID!) {
      a: workspace(id: $id) { id } b: workspace(id: $id) { name } c: workspace(id: $id) { viewerRole }
      me { activeWorkspace { id } }
    }";
    let res = app
        .gql(ada.token(), query, json!({ "id": ada.own_workspace }))
        .await;
    res.data("a");
    // token lookup, me, one membership load for a, b, c and activeWorkspace
    assert_eq!(res.sql_statements(), 3);
    assert!(res.sql_context_statements() <= 3);
}

/// Workspaces named side by side are looked up together, in one statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memberships_of_several_workspaces_are_read_in_one_statement() {
    let app = TestApp::builder().without_token_cache().start().await;
    let ada = app.sign_up("Ada").await;
    let second = app
        .gql(
            ada.token(),
            "mutation { createWorkspace(name: \"Second\") { id } }",
            json!({}),
        )
        .await;
    let second = second.data("createWorkspace")["id"].clone();
    let query = "query($a: ID!, $b: ID!) {
      a: workspace(id: $a) { id } b: workspace(id: $b) { name viewerRole }
    }";
    let vars = json!({ "a": ada.own_workspace, "b": second });
    let res = app.gql(ada.token(), query, vars).await;
    assert_eq!(res.data("a")["id"], ada.own_workspace);
    assert_eq!(res.data("b")["name"], "Second");
    assert_eq!(res.data("b")["viewerRole"], "OWNER");
    // The token lookup and one membership statement for both workspaces.
    assert_eq!(res.sql_statements(), 2);
}

/// Memberships are batched without a timer. async-graphql's DataLoader slept on a timer that
/// ran on an `async-io` reactor thread of its own: one more thread to wake on every request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batching_memberships_wakes_no_thread_of_its_own() {
    let app = TestApp::builder().without_token_cache().start().await;
    let ada = app.sign_up("Ada").await;
    let query = "query($id: ID!) { a: workspace(id: $id) { id } b: workspace(id: $id) { name } }";
    let res = app
        .gql(ada.token(), query, json!({ "id": ada.own_workspace }))
        .await;
    assert_eq!(res.data("a")["id"], ada.own_workspace);
    assert!(res.data("b")["name"].is_string());
    let threads: Vec<String> = std::fs::read_dir("/proc/self/task")
        .expect("this process's threads")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect();
    assert!(
        threads.iter().any(|name| name.starts_with("tokio-")),
        "{threads:?}"
    );
    assert!(
        !threads.iter().any(|name| name == "async-io"),
        "{threads:?}"
    );
}

/// A write reads its creator only when its answer selects `createdBy`, directly or through a
/// fragment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_reads_its_creator_only_when_asked() {
    let app = TestApp::builder().without_token_cache().start().await;
    let ada = app.sign_up("Ada").await;
    let create = async |selection: &str, fragments: &str| {
        let query = format!(
            "mutation($ws: ID!) {{ createAgent(workspaceId: $ws, input: {{ name: \"A\" }}) \
             {{ {selection} }} }} {fragments}"
        );
        app.gql(ada.token(), &query, json!({ "ws": ada.own_workspace }))
            .await
    };
    let plain = create("id name", "").await;
    let asked = create("id createdBy { name }", "").await;
    let inline = create("id ... on Agent { createdBy { name } }", "").await;
    let spread = create("id ...Who", "fragment Who on Agent { createdBy { name } }").await;
    assert_eq!(plain.data("createAgent")["name"], "A");
    for answer in [&asked, &inline, &spread] {
        assert_eq!(answer.data("createAgent")["createdBy"]["name"], "Ada");
        assert_eq!(answer.sql_statements(), plain.sql_statements() + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_workspaces_is_flat_in_their_number() {
    let app = TestApp::builder().without_token_cache().start().await;
    let ada = app.sign_up("Ada").await;
    let list = "{ workspaces { id name viewerRole billingStatus trialEndsAt readOnly } }";
    let few = app.gql(ada.token(), list, json!({})).await.sql_statements();
    // More than one account may create (5 a day): seeded.
    diesel::sql_query(format!(
        "WITH w AS (INSERT INTO workspaces (id, name, trial_ends_at)
           SELECT gen_random_uuid(), 'W' || i, now() + interval '14 days'
           FROM generate_series(1, 30) AS i RETURNING id)
         INSERT INTO memberships (workspace_id, user_id, role) SELECT id, '{}', 'owner' FROM w",
        ada.id
    ))
    .execute(&mut app.db.conn().await)
    .await
    .expect("seeded");
    let many = app.gql(ada.token(), list, json!({})).await;
    assert_eq!(many.data("workspaces").as_array().expect("list").len(), 31);
    assert_eq!(many.sql_statements(), few);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_costs_the_same_statements_whatever_its_page_size() {
    let app = TestApp::builder().without_token_cache().start().await;
    let ada = app.sign_up("Ada").await;
    let mut conn = app.db.conn().await;
    let seed = format!(
        "INSERT INTO resources (id, workspace_id, kind, name, data, created_by)
         SELECT gen_random_uuid(), '{ws}', kind, kind || i, '{{}}', '{user}'
         FROM generate_series(1, 110) AS i,
              unnest(ARRAY['agent', 'contact', 'knowledge_base', 'form', 'phone_number', 'calendar', 'integration']) AS kind;
         INSERT INTO invitations (id, workspace_id, email, role, invited_by, expires_at)
         SELECT gen_random_uuid(), '{ws}', 'guest' || i || '@example.com', 'member', '{user}', now() + interval '7 days'
         FROM generate_series(1, 110) AS i",
        ws = ada.own_workspace,
        user = ada.id
    );
    for statement in seed.split(";\n") {
        diesel::sql_query(statement)
            .execute(&mut conn)
            .await
            .expect("seeded");
    }
    add_many_members(&app, &ada.own_workspace, 110).await;
    let lists = [
        ("members", "role user { id name }"),
        ("invitations", "email status invitedBy { name }"),
        ("agents", "name description createdBy { name }"),
        ("contacts", "name email createdBy { name }"),
        ("knowledgeBases", "name createdBy { name }"),
        ("forms", "name fields { label } createdBy { name }"),
        ("phoneNumbers", "name number createdBy { name }"),
        ("calendars", "name timeZone createdBy { name }"),
        ("integrations", "name provider status createdBy { name }"),
    ];
    for (list, fields) in lists {
        let query = format!(
            "query($ws: ID!, $n: Int) {{ workspace(id: $ws) {{ {list}(first: $n) {{ totalCount edges {{ node {{ {fields} }} }} }} }} }}"
        );
        let one = app
            .gql(
                ada.token(),
                &query,
                json!({ "ws": ada.own_workspace, "n": 1 }),
            )
            .await;
        let hundred = app
            .gql(
                ada.token(),
                &query,
                json!({ "ws": ada.own_workspace, "n": 100 }),
            )
            .await;
        assert_eq!(
            hundred.data("workspace")[list]["edges"]
                .as_array()
                .expect("edges")
                .len(),
            100,
            "{list}"
        );
        assert_eq!(one.sql_statements(), hundred.sql_statements(), "{list}");
        // 110 of each, and Ada among the members.
        let total = if list == "members" { 111 } else { 110 };
        assert_eq!(
            hundred.data("workspace")[list]["totalCount"],
            total,
            "{list}"
        );
        assert!(
            hundred.sql_context_statements() <= 3,
            "{list}: three checkouts"
        );
        // token, membership, the page with its count
        assert_eq!(hundred.sql_statements(), 3, "{list}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_page_still_counts_its_list_in_one_more_statement() {
    let app = TestApp::builder().without_token_cache().start().await;
    let ada = app.sign_up("Ada").await;
    add_many_members(&app, &ada.own_workspace, 4).await;
    let members = "query($ws: ID!, $after: String) { workspace(id: $ws) {
        members(first: 5, after: $after) { totalCount pageInfo { endCursor } edges { cursor } } } }";
    let all = app
        .gql(ada.token(), members, json!({ "ws": ada.own_workspace }))
        .await;
    let all = &all.data("workspace")["members"];
    assert_eq!(all["edges"].as_array().expect("edges").len(), 5);
    let past_the_end = app
        .gql(
            ada.token(),
            members,
            json!({ "ws": ada.own_workspace, "after": all["pageInfo"]["endCursor"] }),
        )
        .await;
    let past = &past_the_end.data("workspace")["members"];
    assert_eq!(past["edges"].as_array().expect("edges").len(), 0);
    assert_eq!(past["totalCount"], 5);
    assert_eq!(past_the_end.sql_statements(), 4);

    let no_agents = app
        .gql(
            ada.token(),
            "query($ws: ID!) { workspace(id: $ws) { agents(first: 0) { totalCount } } }",
            json!({ "ws": ada.own_workspace }),
        )
        .await;
    assert_eq!(no_agents.data("workspace")["agents"]["totalCount"], 0);
    assert_eq!(no_agents.sql_statements(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_invoice_list_costs_the_same_statements_whatever_its_page_size() {
    let app = TestApp::builder().without_token_cache().start().await;
    let ada = app.sign_up("Ada").await;
    let mut conn = app.db.conn().await;
    diesel::sql_query(format!(
        "INSERT INTO invoices (id, workspace_id, number, status, amount_due_cents, currency, created_at)
         SELECT 'in_' || i, '{}', 'INV-' || i, 'paid', 4900, 'usd', now() - interval '1 day' * i
         FROM generate_series(1, 110) AS i",
        ada.own_workspace
    ))
    .execute(&mut conn)
    .await
    .expect("invoices seeded");
    let query = "query($ws: ID!, $n: Int) { workspace(id: $ws) { billing {
        invoices(first: $n) { totalCount pageInfo { hasNextPage endCursor }
          edges { cursor node { id number status amountDueCents currency createdAt } } } } } }";
    let page = |n: u64| {
        app.gql(
            ada.token(),
            query,
            json!({ "ws": ada.own_workspace, "n": n }),
        )
    };
    let (one, hundred) = (page(1).await, page(100).await);
    let invoices = |res: &crate::harness::Gql| {
        res.data("workspace")["billing"]["invoices"]["edges"]
            .as_array()
            .expect("invoices")
            .len()
    };
    assert_eq!((invoices(&one), invoices(&hundred)), (1, 100));
    assert_eq!(one.sql_statements(), hundred.sql_statements());
    assert_eq!(
        hundred.data("workspace")["billing"]["invoices"]["totalCount"],
        110
    );
    // The budget: the other lists' three, the billing account the page hangs off, and the
    // count (invoice rows do not carry the total as the other lists' rows do).
    assert!(
        hundred.sql_statements() <= 7,
        "{}",
        hundred.sql_statements()
    );
}
