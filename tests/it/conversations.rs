//! Conversations: the agent runtime writes them (retried, duplicated, concurrent), every
//! role reads them, Owners and Admins delete them, and search stays in its workspace.

use futures::future::join_all;
use serde_json::{json, Value};

use crate::harness::{Actor, TestApp};
use crate::usage::{SERVICE_NAME, SERVICE_TOKEN};

pub const START: &str = "mutation($ws: ID!, $input: StartConversationInput!) {
  startConversation(workspaceId: $ws, input: $input) {
    id externalId channel status messageCount agent { id name } contact { id name phone email } } }";
pub const APPEND: &str = "mutation($ws: ID!, $c: ID!, $m: [MessageInput!]!) {
  appendMessages(workspaceId: $ws, conversationId: $c, messages: $m) {
    conversation { id messageCount lastActivityAt }
    messages { id externalId direction text segments } } }";
pub const CLOSE: &str = "mutation($ws: ID!, $c: ID!, $d: Int) {
  closeConversation(workspaceId: $ws, conversationId: $c, durationSeconds: $d) {
    id status closedAt durationSeconds } }";
const LIST: &str = "query($ws: ID!, $f: ConversationFilter, $first: Int, $after: String) {
  workspace(id: $ws) { conversations(first: $first, after: $after, filter: $f) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { id externalId channel status messageCount snippet } } } } }";
const USAGE: &str = "query($ws: ID!) { workspace(id: $ws) { usage { messages sms } } }";

pub async fn agent(app: &TestApp, owner: &Actor, workspace: &str) -> String {
    let made = app
        .gql(
            owner.token(),
            "mutation($ws: ID!) { createAgent(workspaceId: $ws, input: { name: \"Receptionist\" }) { id } }",
            json!({ "ws": workspace }),
        )
        .await;
    made.data("createAgent")["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

pub async fn start(app: &TestApp, ws: &str, input: Value) -> crate::harness::Gql {
    app.gql(
        Some(SERVICE_TOKEN),
        START,
        json!({ "ws": ws, "input": input }),
    )
    .await
}

fn sms_start(id: &str, agent: &str, phone: &str) -> Value {
    json!({ "externalId": id, "agentId": agent, "channel": "SMS",
            "contact": { "phone": phone, "name": "Grace" } })
}

pub fn message(id: &str, direction: &str, text: &str, minute: u32) -> Value {
    json!({ "externalId": id, "direction": direction, "text": text,
            "sentAt": format!("2026-12-01T10:{minute:02}:00Z") })
}

async fn usage(app: &TestApp, actor: &Actor, ws: &str) -> Value {
    app.gql(actor.token(), USAGE, json!({ "ws": ws }))
        .await
        .data("workspace")["usage"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_writes_a_conversation_once_however_often_it_retries() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let ws = ada.own_workspace.clone();
    let agent = agent(&app, &ada, &ws).await;

    // Only a service token writes conversations.
    app.gql(
        None,
        START,
        json!({ "ws": ws, "input": sms_start("c", &agent, "+14155550123") }),
    )
    .await
    .assert_code("UNAUTHENTICATED");
    app.gql(
        ada.token(),
        START,
        json!({ "ws": ws, "input": sms_start("c", &agent, "+14155550123") }),
    )
    .await
    .assert_code("FORBIDDEN");

    // Started twice (a retry), concurrently: one conversation, one contact, in E.164.
    let starts =
        join_all((0..4).map(|_| start(&app, &ws, sms_start("sms-1", &agent, "+1 (415) 555-0123"))))
            .await;
    let first = starts[0].data("startConversation").clone();
    for again in &starts {
        assert_eq!(again.data("startConversation")["id"], first["id"]);
    }
    assert_eq!(first["contact"]["phone"], "+14155550123");
    assert_eq!(first["contact"]["name"], "Grace");
    assert_eq!(first["agent"]["id"], json!(agent));
    // Another conversation from the same number finds the same contact.
    let other = start(&app, &ws, sms_start("sms-2", &agent, "+14155550123")).await;
    assert_eq!(
        other.data("startConversation")["contact"]["id"],
        first["contact"]["id"]
    );
    // The same id for another channel is not the same start.
    let mut changed = sms_start("sms-1", &agent, "+14155550123");
    changed["channel"] = json!("WEB_CHAT");
    start(&app, &ws, changed).await.assert_code("CONFLICT");

    let conversation = first["id"].as_str().expect("id").to_owned();
    let append = |messages: Value| {
        app.gql(
            Some(SERVICE_TOKEN),
            APPEND,
            json!({ "ws": ws, "c": conversation, "m": messages }),
        )
    };
    let batch = json!([
        message("m1", "INBOUND", "Hi, can I book a table for two?", 0),
        message("m2", "OUTBOUND", "Of course! What time suits you?", 1),
    ]);
    // The same batch sent four times at once, as a runtime retrying after timeouts would.
    let answers = join_all((0..4).map(|_| append(batch.clone()))).await;
    for answer in &answers {
        let payload = answer.data("appendMessages");
        assert_eq!(payload["conversation"]["messageCount"], 2);
        assert_eq!(payload["messages"][0]["externalId"], "m1");
        assert_eq!(payload["messages"][1]["segments"], 1);
    }
    // The agent and contact are read when the answer asks for them (through a fragment).
    let asked = app
        .gql(
            Some(SERVICE_TOKEN),
            "mutation($ws: ID!, $c: ID!, $m: [MessageInput!]!) {
               appendMessages(workspaceId: $ws, conversationId: $c, messages: $m) {
                 conversation { ...parties } } }
             fragment parties on Conversation { agent { id } contact { phone } }",
            json!({ "ws": ws, "c": conversation, "m": batch }),
        )
        .await;
    let parties = &asked.data("appendMessages")["conversation"];
    assert_eq!(parties["agent"]["id"], json!(agent));
    assert_eq!(parties["contact"]["phone"], "+14155550123");
    // Five sends of one batch roll up once, in the agent's hours and the workspace's.
    for agent_id in [Value::Null, json!(agent)] {
        let rolled = app
            .gql(
                ada.token(),
                "query($ws: ID!, $agent: ID) { workspace(id: $ws) {
                   analytics(since: \"2026-12-01T00:00:00Z\", until: \"2026-12-02T00:00:00Z\", agentId: $agent) {
                     totals { messagesIn messagesOut smsSegments } } } }",
                json!({ "ws": ws, "agent": agent_id }),
            )
            .await;
        assert_eq!(
            rolled.data("workspace")["analytics"]["totals"],
            json!({ "messagesIn": 1, "messagesOut": 1, "smsSegments": 2 }),
            "agent {agent_id}"
        );
    }
    let ids = |answer: &crate::harness::Gql| answer.data("appendMessages")["messages"].clone();
    assert_eq!(
        ids(&answers[0]),
        ids(&answers[3]),
        "a retry answers the same messages"
    );
    // Counted once: one outbound message, its one SMS segment.
    assert_eq!(
        usage(&app, &ada, &ws).await,
        json!({ "messages": 1, "sms": 1 })
    );

    // A batch mixing a seen message with a new one writes only the new one.
    let mut three = message("m3", "OUTBOUND", "We have a table at seven.", 2);
    three["segments"] = json!(2);
    let mixed = append(json!([
        message("m2", "OUTBOUND", "Of course! What time suits you?", 1),
        three
    ]))
    .await;
    assert_eq!(
        mixed.data("appendMessages")["conversation"]["messageCount"],
        3
    );
    assert_eq!(
        usage(&app, &ada, &ws).await,
        json!({ "messages": 2, "sms": 3 })
    );
    // A seen id with other words is refused, and nothing of its batch is written.
    append(json!([
        message("m4", "INBOUND", "Great", 3),
        message("m1", "INBOUND", "Something else", 0)
    ]))
    .await
    .assert_code("CONFLICT");
    append(json!([
        message("m5", "INBOUND", "x", 4),
        message("m5", "INBOUND", "y", 4)
    ]))
    .await
    .assert_code("BAD_USER_INPUT");
    let too_many: Vec<Value> = (0..101)
        .map(|n| message(&format!("b{n}"), "INBOUND", "hi", 5))
        .collect();
    append(json!(too_many)).await.assert_code("BAD_USER_INPUT");

    let closed = app
        .gql(
            Some(SERVICE_TOKEN),
            CLOSE,
            json!({ "ws": ws, "c": conversation, "d": 95 }),
        )
        .await;
    assert_eq!(closed.data("closeConversation")["status"], "CLOSED");
    let again = app
        .gql(
            Some(SERVICE_TOKEN),
            CLOSE,
            json!({ "ws": ws, "c": conversation, "d": 5 }),
        )
        .await;
    assert_eq!(
        again.data("closeConversation"),
        closed.data("closeConversation")
    );
    append(json!([message("m6", "INBOUND", "Thanks!", 9)]))
        .await
        .assert_code("CONFLICT");

    let read = app
        .gql(
            ada.token(),
            "query($ws: ID!, $id: ID!) { workspace(id: $ws) { conversation(id: $id) {
               messageCount durationSeconds who: contact { phone } ... on Conversation { agent { id } }
               messages(first: 2) { totalCount pageInfo { hasNextPage endCursor }
                 edges { node { externalId direction text } } } } } }",
            json!({ "ws": ws, "id": conversation }),
        )
        .await;
    let read = &read.data("workspace")["conversation"];
    assert_eq!(read["who"]["phone"], "+14155550123");
    assert_eq!(read["agent"]["id"], json!(agent));
    assert_eq!(read["messageCount"], 3);
    assert_eq!(read["durationSeconds"], 95);
    assert_eq!(read["messages"]["totalCount"], 3);
    assert_eq!(read["messages"]["pageInfo"]["hasNextPage"], true);
    assert_eq!(read["messages"]["edges"][0]["node"]["externalId"], "m1");
    assert_eq!(
        read["messages"]["edges"][1]["node"]["direction"],
        "OUTBOUND"
    );

    // Which service token wrote it is recorded.
    let mut conn = app.db.conn().await;
    let writer: Vec<String> = names(
        &mut conn,
        &format!("SELECT t.name FROM conversations c JOIN service_tokens t ON t.id = c.service_token_id WHERE c.id = '{conversation}'"),
    )
    .await;
    assert_eq!(writer, [SERVICE_NAME]);
}

async fn names(conn: &mut diesel_async::AsyncPgConnection, sql: &str) -> Vec<String> {
    use diesel_async::RunQueryDsl as _;
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let rows: Vec<Name> = diesel::sql_query(sql).load(conn).await.expect("query");
    rows.into_iter().map(|r| r.name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_count_every_message_once_and_never_pass_the_limit() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let ws = ada.own_workspace.clone();
    let agent = agent(&app, &ada, &ws).await;
    // Close to the trial's SMS limit (the Scale plan's 10,000): 9,990 reported already.
    app.gql(
        Some(SERVICE_TOKEN),
        "mutation($ws: ID!) { reportUsage(workspaceId: $ws, metric: SMS, quantity: 9990, idempotencyKey: \"earlier\") { sms } }",
        json!({ "ws": ws }),
    )
    .await
    .data("reportUsage");
    let mut conversations = Vec::new();
    for n in 0..3 {
        let phone = format!("+1415555010{n}");
        let made = start(&app, &ws, sms_start(&format!("conv-{n}"), &agent, &phone)).await;
        conversations.push(
            made.data("startConversation")["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    // 3 conversations × 3 batches of one outbound SMS of 2 segments = 18 segments wanted,
    // 10 left: exactly 5 batches fit, whatever the order.
    let calls = conversations
        .iter()
        .flat_map(|c| (0..3).map(move |b| (c.clone(), b)));
    let answers = join_all(calls.map(|(c, b)| {
        let mut m = message(&format!("out-{b}"), "OUTBOUND", "Your table is booked.", b);
        m["segments"] = json!(2);
        app.gql(
            Some(SERVICE_TOKEN),
            APPEND,
            json!({ "ws": ws, "c": c, "m": [m] }),
        )
    }))
    .await;
    let written = answers.iter().filter(|a| a.code().is_none()).count();
    assert_eq!(written, 5);
    for refused in answers.iter().filter(|a| a.code().is_some()) {
        refused.assert_code("USAGE_LIMIT_REACHED");
    }
    assert_eq!(
        usage(&app, &ada, &ws).await,
        json!({ "messages": 5, "sms": 10000 })
    );
    // Nothing of a refused batch was written: the counts are the messages that exist.
    let mut conn = app.db.conn().await;
    let stored = names(
        &mut conn,
        &format!("SELECT count(*)::text AS name FROM messages WHERE workspace_id = '{ws}'"),
    )
    .await;
    assert_eq!(stored, ["5"]);
    let counted = names(
        &mut conn,
        &format!(
        "SELECT sum(message_count)::text AS name FROM conversations WHERE workspace_id = '{ws}'"
    ),
    )
    .await;
    assert_eq!(counted, ["5"]);
    // The append that reached the limit recorded its alert, once, in its transaction.
    let alerts = names(
        &mut conn,
        &format!(
            "SELECT metric || ' ' || threshold AS name FROM usage_alerts \
             WHERE workspace_id = '{ws}' ORDER BY 1"
        ),
    )
    .await;
    assert_eq!(alerts, ["sms 100", "sms 80"]);
    let reached = names(
        &mut conn,
        &format!(
            "SELECT count(*)::text AS name FROM audit_events \
             WHERE workspace_id = '{ws}' AND action = 'usage.limit_reached'"
        ),
    )
    .await;
    assert_eq!(reached, ["1"]);
    // Inbound messages count toward no limit: they still arrive.
    let inbound = app
        .gql(
            Some(SERVICE_TOKEN),
            APPEND,
            json!({ "ws": ws, "c": conversations[0], "m": [message("in-1", "INBOUND", "Thanks", 30)] }),
        )
        .await;
    assert!(inbound.code().is_none(), "{:?}", inbound.answer());
}

/// An append is three statements (the token, the workspace with its limits, the append),
/// none to set a connection's context; one that crosses an alert threshold, or is the
/// day's first counted write, is made in a transaction that records those, once however
/// many race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_is_three_statements_and_alerts_still_go_out_once() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let ws = ada.own_workspace.clone();
    let agent = agent(&app, &ada, &ws).await;
    let mut conversations = Vec::new();
    for n in 0..4 {
        let input = json!({ "externalId": format!("chat-{n}"), "agentId": agent,
                            "channel": "WEB_CHAT", "contact": { "email": format!("v{n}@example.com") } });
        let made = start(&app, &ws, input).await;
        conversations.push(
            made.data("startConversation")["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    let append = |c: &str, id: &str| {
        app.gql(
            Some(SERVICE_TOKEN),
            APPEND,
            json!({ "ws": ws, "c": c, "m": [message(id, "OUTBOUND", "On it.", 1)] }),
        )
    };
    let mut conn = app.db.conn().await;
    let count_of = |action: &str| {
        format!(
            "SELECT count(*)::text AS name FROM audit_events \
             WHERE workspace_id = '{ws}' AND action = '{action}'"
        )
    };
    // The day's first counted write records the service's access; the next needs no
    // transaction.
    append(&conversations[0], "first")
        .await
        .data("appendMessages");
    assert_eq!(names(&mut conn, &count_of("service.accessed")).await, ["1"]);
    let steady = append(&conversations[0], "steady").await;
    steady.data("appendMessages");
    assert_eq!(
        (steady.sql_statements(), steady.sql_context_statements()),
        (3, 0)
    );
    assert_eq!(names(&mut conn, &count_of("service.accessed")).await, ["1"]);

    // One short of 80 % of the messages limit: four appends race across it, one crosses.
    let limit = app
        .gql(
            ada.token(),
            "query($ws: ID!) { workspace(id: $ws) { usage { limits { messages } } } }",
            json!({ "ws": ws }),
        )
        .await
        .data("workspace")["usage"]["limits"]["messages"]
        .as_i64()
        .expect("limit");
    let level = (limit * 80 + 99) / 100;
    app.gql(
        Some(SERVICE_TOKEN),
        "mutation($ws: ID!, $q: Int!) { reportUsage(workspaceId: $ws, metric: MESSAGES, quantity: $q, idempotencyKey: \"bulk\") { messages } }",
        json!({ "ws": ws, "q": level - 1 - 2 }),
    )
    .await
    .data("reportUsage");
    let answers = join_all(conversations.iter().map(|c| append(c, "race"))).await;
    for answer in &answers {
        answer.data("appendMessages");
    }
    assert_eq!(
        usage(&app, &ada, &ws).await["messages"],
        json!(level - 1 + 4)
    );
    let alerts = names(
        &mut conn,
        &format!(
            "SELECT metric || ' ' || threshold || ' ' || used AS name FROM usage_alerts \
             WHERE workspace_id = '{ws}'"
        ),
    )
    .await;
    assert_eq!(alerts, [format!("messages 80 {level}")]);
    assert_eq!(
        names(&mut conn, &count_of("usage.nearing_limit")).await,
        ["1"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_reads_conversations_and_only_owners_and_admins_delete_them() {
    let app = TestApp::new().await;
    let team = app.team().await;
    let ws = team.workspace.clone();
    let agent = agent(&app, &team.owner, &ws).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let made = start(
            &app,
            &ws,
            json!({ "externalId": format!("chat-{n}"), "agentId": agent,
            "channel": "WEB_CHAT", "contact": { "email": format!("Visitor{n}@Example.com") } }),
        )
        .await;
        let made = made.data("startConversation");
        assert_eq!(made["contact"]["email"], format!("visitor{n}@example.com"));
        ids.push(made["id"].as_str().expect("id").to_owned());
    }
    for actor in [&team.owner, &team.admin, &team.member, &team.viewer] {
        let page = app
            .gql(actor.token(), LIST, json!({ "ws": ws, "first": 2 }))
            .await;
        let list = &page.data("workspace")["conversations"];
        assert_eq!(list["totalCount"], 3);
        assert_eq!(list["pageInfo"]["hasNextPage"], true);
        // Newest activity first.
        assert_eq!(list["edges"][0]["node"]["id"], json!(ids[2]));
        let rest = app
            .gql(
                actor.token(),
                LIST,
                json!({ "ws": ws, "first": 2, "after": list["pageInfo"]["endCursor"] }),
            )
            .await;
        let rest = &rest.data("workspace")["conversations"];
        assert_eq!(rest["edges"][0]["node"]["id"], json!(ids[0]));
        assert_eq!(rest["pageInfo"]["hasNextPage"], false);
    }
    // The agent shows all three; each contact shows its own one.
    let owners = app
        .gql(
            team.viewer.token(),
            "query($ws: ID!, $c: ID!) { workspace(id: $ws) { conversation(id: $c) {
               agent { conversations(first: 5) { totalCount } }
               contact { conversations { edges { node { id } } } } } } }",
            json!({ "ws": ws, "c": ids[1] }),
        )
        .await;
    let conversation = &owners.data("workspace")["conversation"];
    assert_eq!(conversation["agent"]["conversations"]["totalCount"], 3);
    assert_eq!(
        conversation["contact"]["conversations"]["edges"],
        json!([{ "node": { "id": ids[1] } }])
    );
    // A stranger sees no such workspace.
    app.gql(team.stranger.token(), LIST, json!({ "ws": ws }))
        .await
        .assert_code("NOT_FOUND");

    const DELETE: &str =
        "mutation($ws: ID!, $id: ID!) { deleteConversation(workspaceId: $ws, id: $id) }";
    for actor in [&team.member, &team.viewer, &team.stranger] {
        let refused = app
            .gql(actor.token(), DELETE, json!({ "ws": ws, "id": ids[0] }))
            .await;
        let code = refused.code().expect("refused");
        assert!(code == "FORBIDDEN" || code == "NOT_FOUND", "{code}");
    }
    app.gql(
        Some(SERVICE_TOKEN),
        DELETE,
        json!({ "ws": ws, "id": ids[0] }),
    )
    .await
    .code()
    .expect("the runtime does not delete");
    for (actor, id) in [(&team.owner, &ids[0]), (&team.admin, &ids[1])] {
        let deleted = app
            .gql(actor.token(), DELETE, json!({ "ws": ws, "id": id }))
            .await;
        assert_eq!(deleted.data("deleteConversation"), true);
    }
    app.gql(
        team.admin.token(),
        DELETE,
        json!({ "ws": ws, "id": ids[0] }),
    )
    .await
    .assert_code("NOT_FOUND");
    let left = app
        .gql(team.viewer.token(), LIST, json!({ "ws": ws }))
        .await;
    assert_eq!(left.data("workspace")["conversations"]["totalCount"], 1);
    let log = app
        .gql(
            team.owner.token(),
            "query($ws: ID!) { workspace(id: $ws) { auditLog(first: 5, filter: { actions: [CONVERSATION_DELETED] }) {
               edges { node { targetKind targetId actorId } } } } }",
            json!({ "ws": ws }),
        )
        .await;
    let events = log.data("workspace")["auditLog"]["edges"]
        .as_array()
        .expect("events")
        .clone();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["node"]["targetKind"], "conversation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_ranks_what_matches_and_never_crosses_workspaces() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let bob = app.sign_up("Bob").await;
    let mut seeded = Vec::new();
    for (actor, texts) in [
        (
            &ada,
            [
                "I need to cancel my booking",
                "Do you have parking?",
                "Cancel, cancel, cancel the cancellation!",
            ],
        ),
        (
            &bob,
            ["Please cancel my order", "Where is my parcel?", "Thanks"],
        ),
    ] {
        let ws = actor.own_workspace.clone();
        let agent = agent(&app, actor, &ws).await;
        for (n, text) in texts.iter().enumerate() {
            let made = start(
                &app,
                &ws,
                json!({ "externalId": format!("s-{n}"), "agentId": agent,
                "channel": "EMAIL", "contact": { "email": format!("c{n}@example.com") } }),
            )
            .await;
            let id = made.data("startConversation")["id"]
                .as_str()
                .expect("id")
                .to_owned();
            app.gql(Some(SERVICE_TOKEN), APPEND, json!({ "ws": ws, "c": id,
                "m": [message("q", "INBOUND", text, 0), message("a", "OUTBOUND", "Happy to help.", 1)] }))
                .await
                .data("appendMessages");
            seeded.push((ws.clone(), n, id));
        }
    }
    let search = |ws: &str, words: &str| {
        app.gql(
            ada.token(),
            LIST,
            json!({ "ws": ws, "f": { "search": words } }),
        )
    };
    let found = search(&ada.own_workspace, "cancelled").await;
    let list = &found.data("workspace")["conversations"];
    // Stemmed ("cancelled" finds "cancel"), ranked (three mentions first), and only Ada's.
    assert_eq!(list["totalCount"], 2);
    assert_eq!(list["edges"][0]["node"]["externalId"], "s-2");
    assert_eq!(list["edges"][1]["node"]["externalId"], "s-0");
    let snippet = list["edges"][1]["node"]["snippet"]
        .as_str()
        .expect("snippet");
    assert!(snippet.contains("<b>cancel</b>"), "{snippet}");
    let none = search(&ada.own_workspace, "parcel").await;
    assert_eq!(none.data("workspace")["conversations"]["totalCount"], 0);
    search(&bob.own_workspace, "cancel")
        .await
        .assert_code("NOT_FOUND");
    // Filters combine with the search, and hostile text is only words.
    let filtered = app
        .gql(
            ada.token(),
            LIST,
            json!({ "ws": ada.own_workspace, "f": { "search": "parking", "channel": "SMS" } }),
        )
        .await;
    assert_eq!(filtered.data("workspace")["conversations"]["totalCount"], 0);
    let kept = app
        .gql(
            ada.token(),
            LIST,
            json!({ "ws": ada.own_workspace, "f": { "search": "cancel", "channel": "EMAIL" } }),
        )
        .await;
    let kept = &kept.data("workspace")["conversations"];
    assert_eq!(kept["totalCount"], 2);
    assert_eq!(kept["edges"][0]["node"]["externalId"], "s-2");
    // Phrases, "or" and words left out mean what they say (each word is indexed under its
    // workspace, migration 000036).
    for (words, found) in [
        ("\"cancel my booking\"", vec!["s-0"]),
        ("\"booking my cancel\"", vec![]),
        ("cancel -booking", vec!["s-2"]),
        ("parking or booking", vec!["s-1", "s-0"]),
    ] {
        let answer = search(&ada.own_workspace, words).await;
        let edges = answer.data("workspace")["conversations"]["edges"]
            .as_array()
            .expect("edges")
            .clone();
        let ids: Vec<&str> = edges
            .iter()
            .map(|e| e["node"]["externalId"].as_str().expect("id"))
            .collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        let mut expected = found.clone();
        expected.sort_unstable();
        assert_eq!(sorted, expected, "{words}");
    }
    // Nothing to look up in an index (only words left out, or `or` with one, which
    // matches nearly every message): refused, not ranked over every message.
    for words in [
        "-cancel",
        "-cancel or -parking",
        "parking or -booking",
        "the -cancel",
    ] {
        search(&ada.own_workspace, words)
            .await
            .assert_code("BAD_USER_INPUT");
    }
    for words in ["' OR 1=1 --", "!!!(&|", "\"unterminated"] {
        let odd = search(&ada.own_workspace, words).await;
        assert!(odd.code().is_none(), "{words}: {:?}", odd.answer());
    }
    search(&ada.own_workspace, &"x".repeat(201))
        .await
        .assert_code("BAD_USER_INPUT");

    // The search function reads through the index as the owner: it answers only for the
    // workspace the session is in, whatever workspace it is asked about.
    use diesel_async::{AsyncConnection as _, RunQueryDsl as _};
    let mut conn = app.db.conn().await;
    let hits = |inside: String, asked: String| {
        format!(
            "SELECT count(*)::text AS name FROM (SELECT set_config('app.workspace_id', '{inside}', true)) s, \
             conversation_search_hits('{asked}', 'cancel')"
        )
    };
    let (a, b) = (ada.own_workspace.clone(), bob.own_workspace.clone());
    let (own, foreign) = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            diesel::sql_query("SET LOCAL ROLE linkai_app")
                .execute(conn)
                .await?;
            let own = names(conn, &hits(a.clone(), a.clone())).await;
            let foreign = names(conn, &hits(a.clone(), b.clone())).await;
            Ok((own, foreign))
        })
        .await
        .expect("as the app role");
    assert_eq!((own, foreign), (vec!["2".to_owned()], vec!["0".to_owned()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_service_token_fails_on_its_next_request() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let ws = ada.own_workspace.clone();
    let agent = agent(&app, &ada, &ws).await;
    let made = start(&app, &ws, sms_start("r-1", &agent, "+14155550199")).await;
    made.data("startConversation");
    let mut conn = app.db.conn().await;
    let revoked = linkai::auth::service_tokens::revoke(&mut conn, SERVICE_NAME, chrono::Utc::now())
        .await
        .expect("revokes");
    assert!(revoked);
    start(&app, &ws, sms_start("r-2", &agent, "+14155550199"))
        .await
        .assert_code("UNAUTHENTICATED");
    // A new token works at once, no restart.
    let token = linkai::auth::service_tokens::add(&mut conn, "runtime-2")
        .await
        .expect("adds");
    assert!(token.starts_with("lksvc_"));
    let again = app
        .gql(
            Some(&token),
            START,
            json!({ "ws": ws, "input": sms_start("r-2", &agent, "+14155550199") }),
        )
        .await;
    again.data("startConversation");
}

/// A small deterministic generator, so a failure replays (the seed is in the message).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

const ANALYTICS: &str = "query($ws: ID!, $since: DateTime!, $until: DateTime!, $i: AnalyticsInterval, $agent: ID) {
  workspace(id: $ws) { analytics(since: $since, until: $until, interval: $i, agentId: $agent) {
    timeZone
    series { start counts { conversationsStarted conversationsClosed messagesIn messagesOut smsSegments calls callMinutes uniqueContacts } }
    totals { conversationsStarted conversationsClosed messagesIn messagesOut smsSegments calls callMinutes uniqueContacts }
    firstResponseMedianSeconds firstResponseP90Seconds timeToCloseMedianSeconds
    usage { messages sms } } } }";

/// The same figures counted straight from the raw rows, in the workspace's days: the series,
/// and the totals with the times.
async fn counted_from_rows(
    conn: &mut diesel_async::AsyncPgConnection,
    ws: &str,
    (since, until): (&str, &str),
    interval: &str,
    agent: Option<&str>,
) -> (Value, Value) {
    use diesel_async::RunQueryDsl as _;
    #[derive(diesel::QueryableByName)]
    struct Json {
        #[diesel(sql_type = diesel::sql_types::Text)]
        json: String,
    }
    let agent = agent.map_or("NULL".to_owned(), |a| format!("'{a}'::uuid"));
    let tz = "'America/New_York'";
    let bucket = |column: &str| {
        format!("date_trunc('{interval}', {column} AT TIME ZONE {tz}) AT TIME ZONE {tz}")
    };
    let sql = format!(
        "WITH c AS (SELECT * FROM conversations WHERE workspace_id = '{ws}' AND ({agent} IS NULL OR agent_id = {agent})),
              m AS (SELECT m.*, c.channel FROM messages m JOIN c ON c.id = m.conversation_id),
              -- An hour counts when it starts in the range: an event at t when t's hour does.
              r AS (SELECT date_trunc('hour', timestamptz '{since}' - interval '1 microsecond', 'UTC') + interval '1 hour' AS since,
                           date_trunc('hour', timestamptz '{until}' - interval '1 microsecond', 'UTC') + interval '1 hour' AS until),
              events AS (
                SELECT {sa} AS start, 'started' AS what, 1 AS n, c.contact_id FROM c, r WHERE c.started_at >= r.since AND c.started_at < r.until
                UNION ALL SELECT {sa}, 'calls', 1, NULL FROM c, r WHERE c.channel = 'phone_call' AND c.started_at >= r.since AND c.started_at < r.until
                UNION ALL SELECT {ca}, 'closed', 1, NULL FROM c, r WHERE c.closed_at >= r.since AND c.closed_at < r.until
                UNION ALL SELECT {ca}, 'call_seconds', COALESCE(c.duration_seconds, 0), NULL FROM c, r WHERE c.closed_at >= r.since AND c.closed_at < r.until
                UNION ALL SELECT {ma}, 'messages_' || CASE m.direction WHEN 'inbound' THEN 'in' ELSE 'out' END, 1, NULL FROM m, r WHERE m.sent_at >= r.since AND m.sent_at < r.until
                UNION ALL SELECT {ma}, 'sms_segments', COALESCE(m.segments, 0), NULL FROM m, r WHERE m.sent_at >= r.since AND m.sent_at < r.until),
              points AS (SELECT start, {counts} AS counts FROM events GROUP BY start),
              firsts AS (
                SELECT c.id, c.started_at, c.closed_at,
                  (SELECT min(sent_at) FROM m WHERE m.conversation_id = c.id AND m.direction = 'inbound') AS first_in
                FROM c, r WHERE c.started_at >= r.since AND c.started_at < r.until),
              times AS (
                SELECT f.*, (SELECT min(sent_at) FROM m WHERE m.conversation_id = f.id AND m.direction = 'outbound' AND m.sent_at >= f.first_in) AS first_reply
                FROM firsts f)
         SELECT json_build_object(
           'series', (SELECT json_agg(json_build_object('start', start, 'counts', counts) ORDER BY start) FROM points),
           'totals', (SELECT {counts} FROM events),
           'times', (SELECT json_build_object(
              'firstResponseMedianSeconds', percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_reply - first_in)::float8) FILTER (WHERE first_reply IS NOT NULL),
              'firstResponseP90Seconds', percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM first_reply - first_in)::float8) FILTER (WHERE first_reply IS NOT NULL),
              'timeToCloseMedianSeconds', percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM closed_at - started_at)::float8) FILTER (WHERE closed_at IS NOT NULL))
              FROM times))::text AS json",
        counts = "json_build_object('conversationsStarted', COALESCE(sum(n) FILTER (WHERE what = 'started'), 0),
                    'conversationsClosed', COALESCE(sum(n) FILTER (WHERE what = 'closed'), 0),
                    'messagesIn', COALESCE(sum(n) FILTER (WHERE what = 'messages_in'), 0),
                    'messagesOut', COALESCE(sum(n) FILTER (WHERE what = 'messages_out'), 0),
                    'smsSegments', COALESCE(sum(n) FILTER (WHERE what = 'sms_segments'), 0),
                    'calls', COALESCE(sum(n) FILTER (WHERE what = 'calls'), 0),
                    'callMinutes', COALESCE(sum(n) FILTER (WHERE what = 'call_seconds'), 0) / 60.0,
                    'uniqueContacts', count(DISTINCT contact_id))",
        sa = bucket("c.started_at"),
        ca = bucket("c.closed_at"),
        ma = bucket("m.sent_at"),
    );
    let rows: Vec<Json> = diesel::sql_query(sql).load(conn).await.expect("counted");
    let value: Value = serde_json::from_str(&rows[0].json).expect("json");
    let times = value["times"].clone();
    (
        value["series"].clone(),
        json!({ "totals": value["totals"], "times": times }),
    )
}

/// The API's series without its empty points, with SQL's nulls as zeros, comparable with
/// the direct count (which has no row for an empty bucket).
fn nonempty(series: &Value) -> Vec<(String, Value)> {
    let zero = |v: &Value| v.is_null() || v.as_f64() == Some(0.0);
    series
        .as_array()
        .map(|points| {
            points
                .iter()
                .filter(|p| !p["counts"].as_object().expect("counts").values().all(zero))
                .map(|p| {
                    let start =
                        chrono::DateTime::parse_from_rfc3339(p["start"].as_str().expect("start"))
                            .expect("time")
                            .with_timezone(&chrono::Utc)
                            .to_rfc3339();
                    let counts = p["counts"]
                        .as_object()
                        .expect("counts")
                        .iter()
                        .map(|(k, v)| (k.clone(), json!(v.as_f64().unwrap_or(0.0))))
                        .collect::<serde_json::Map<_, _>>();
                    (start, Value::Object(counts))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_equal_a_direct_count_of_the_rows_across_a_daylight_saving_change() {
    let app = TestApp::new().await;
    let team = app.team().await;
    let ws = team.workspace.clone();
    let set = "mutation($ws: ID!, $tz: String!) { updateWorkspaceSettings(workspaceId: $ws, input: { timeZone: $tz }) { timeZone } }";
    app.gql(
        team.member.token(),
        set,
        json!({ "ws": ws, "tz": "America/New_York" }),
    )
    .await
    .assert_code("FORBIDDEN");
    app.gql(
        team.admin.token(),
        set,
        json!({ "ws": ws, "tz": "Mars/Olympus_Mons" }),
    )
    .await
    .assert_code("BAD_USER_INPUT");
    let zone = app
        .gql(
            team.admin.token(),
            set,
            json!({ "ws": ws, "tz": "America/New_York" }),
        )
        .await;
    assert_eq!(
        zone.data("updateWorkspaceSettings")["timeZone"],
        "America/New_York"
    );

    let agents = [
        agent(&app, &team.owner, &ws).await,
        agent(&app, &team.owner, &ws).await,
    ];
    let seed = 0x5eed_2026_u64;
    let mut rng = Lcg(seed);
    // New York leaves daylight saving on Sunday 1 November 2026 at 02:00: that day has 25
    // hours. Conversations start from 26 October to 7 November (UTC), some outside the range.
    let base = chrono::DateTime::parse_from_rfc3339("2026-10-26T00:00:00Z")
        .expect("time")
        .with_timezone(&chrono::Utc);
    let channels = ["SMS", "WEB_CHAT", "PHONE_CALL", "EMAIL"];
    for n in 0..40 {
        let started = base + chrono::Duration::minutes(rng.below(12 * 24 * 60) as i64);
        let channel = channels[rng.below(4) as usize];
        let agent_id = &agents[rng.below(2) as usize];
        let contact = format!("+1415555{:04}", rng.below(12));
        let made = start(
            &app,
            &ws,
            json!({ "externalId": format!("a-{n}"), "agentId": agent_id, "channel": channel,
            "contact": { "phone": contact }, "startedAt": started.to_rfc3339() }),
        )
        .await;
        let id = made.data("startConversation")["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let count = 1 + rng.below(8);
        let mut messages: Vec<Value> = (0..count)
            .map(|k| {
                let at = started + chrono::Duration::minutes(rng.below(36 * 60) as i64);
                let direction = if rng.below(2) == 0 {
                    "INBOUND"
                } else {
                    "OUTBOUND"
                };
                let mut m = json!({ "externalId": format!("m{k}"), "direction": direction,
                    "text": "words", "sentAt": at.to_rfc3339() });
                if channel == "SMS" {
                    m["segments"] = json!(1 + rng.below(3));
                }
                m
            })
            .collect();
        // Two batches in either order: the rollups and first replies cannot rely on order.
        let cut = rng.below(count + 1) as usize;
        let later = messages.split_off(cut);
        for batch in [later, messages] {
            if !batch.is_empty() {
                app.gql(
                    Some(SERVICE_TOKEN),
                    APPEND,
                    json!({ "ws": ws, "c": id, "m": batch }),
                )
                .await
                .data("appendMessages");
            }
        }
        if rng.below(3) > 0 {
            let ended = started + chrono::Duration::minutes(30 + rng.below(48 * 60) as i64);
            let duration = (channel == "PHONE_CALL").then(|| rng.below(3600));
            app.gql(
                Some(SERVICE_TOKEN),
                "mutation($ws: ID!, $c: ID!, $e: DateTime, $d: Int) { closeConversation(workspaceId: $ws, conversationId: $c, endedAt: $e, durationSeconds: $d) { status } }",
                json!({ "ws": ws, "c": id, "e": ended.to_rfc3339(), "d": duration }),
            )
            .await
            .data("closeConversation");
        }
    }

    // A contact deleted: its conversations stay, with no contact, counted as none.
    let first = app
        .gql(
            team.viewer.token(),
            "query($ws: ID!) { workspace(id: $ws) { conversations(first: 1) { edges { node { contact { id } } } } } }",
            json!({ "ws": ws }),
        )
        .await;
    let contact =
        first.data("workspace")["conversations"]["edges"][0]["node"]["contact"]["id"].clone();
    let deleted = app
        .gql(
            team.owner.token(),
            "mutation($ws: ID!, $id: ID!) { deleteContact(workspaceId: $ws, id: $id) }",
            json!({ "ws": ws, "id": contact }),
        )
        .await;
    assert_eq!(deleted.data("deleteContact"), true);

    // The range: New York's midnights of 28 October and 4 November; then the same days
    // from 20 minutes past the hour to 40 past, whose first and last hours count whole.
    let range = ("2026-10-28T04:00:00Z", "2026-11-04T05:00:00Z");
    let ragged = ("2026-10-28T04:20:00Z", "2026-11-04T05:40:00Z");
    let mut conn = app.db.conn().await;
    for (range, interval, agent) in [
        (range, "DAY", None),
        (range, "WEEK", None),
        (range, "DAY", Some(agents[1].as_str())),
        (ragged, "DAY", None),
        (ragged, "DAY", Some(agents[0].as_str())),
    ] {
        let answer = app
            .gql(team.viewer.token(), ANALYTICS, json!({ "ws": ws, "since": range.0, "until": range.1, "i": interval, "agent": agent }))
            .await;
        let report = answer.data("workspace")["analytics"].clone();
        assert_eq!(report["timeZone"], "America/New_York");
        let (series, direct) =
            counted_from_rows(&mut conn, &ws, range, &interval.to_lowercase(), agent).await;
        let times = &direct["times"];
        let totals = report["totals"]
            .as_object()
            .expect("totals")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_f64().expect("number")))
            .collect::<std::collections::BTreeMap<_, _>>();
        let want = direct["totals"]
            .as_object()
            .expect("totals")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_f64().expect("number")))
            .collect::<std::collections::BTreeMap<_, _>>();
        assert_eq!(totals, want, "seed {seed:#x}, {interval}, agent {agent:?}");
        // The direct count has no row for an empty point: compare the points with counts.
        let expected = nonempty(&series);
        assert_eq!(
            nonempty(&report["series"]),
            expected,
            "seed {seed:#x}, {interval}, agent {agent:?}"
        );
        for key in [
            "firstResponseMedianSeconds",
            "firstResponseP90Seconds",
            "timeToCloseMedianSeconds",
        ] {
            let (got, want) = (report[key].as_f64(), times[key].as_f64());
            assert!(
                got.zip(want)
                    .map_or(got == want, |(g, w)| (g - w).abs() < 1e-6),
                "seed {seed:#x}, {interval}: {key} {got:?} != {want:?}"
            );
        }
        if interval == "DAY" && agent.is_none() && range.0.ends_with(":00:00Z") {
            // Seven days, the 25-hour one included; each point starts at a New York midnight.
            let starts: Vec<&str> = report["series"]
                .as_array()
                .expect("series")
                .iter()
                .map(|p| p["start"].as_str().expect("start"))
                .collect();
            assert_eq!(starts.len(), 7, "{starts:?}");
            assert!(
                starts.contains(&"2026-11-01T04:00:00.000000Z")
                    && starts.contains(&"2026-11-02T05:00:00.000000Z"),
                "{starts:?}"
            );
        }
    }
    // Ranges are bounded.
    let far = app
        .gql(
            team.viewer.token(),
            ANALYTICS,
            json!({ "ws": ws, "since": "2025-01-01T00:00:00Z", "until": "2026-12-01T00:00:00Z" }),
        )
        .await;
    far.assert_code("BAD_USER_INPUT");
    app.gql(
        team.stranger.token(),
        ANALYTICS,
        json!({ "ws": ws, "since": range.0, "until": range.1 }),
    )
    .await
    .assert_code("NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_conversations_and_keeps_what_they_counted() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let bob = app.sign_up("Bob").await;
    let now = chrono::Utc::now();
    let old = (now - chrono::Duration::days(40)).to_rfc3339();
    let recent = (now - chrono::Duration::days(2)).to_rfc3339();
    let mut made = Vec::new();
    for actor in [&ada, &bob] {
        let ws = actor.own_workspace.clone();
        let agent = agent(&app, actor, &ws).await;
        for (name, at) in [("old", &old), ("recent", &recent)] {
            let started = start(
                &app,
                &ws,
                json!({ "externalId": name, "agentId": agent, "channel": "WEB_CHAT",
                "contact": { "email": "visitor@example.com" }, "startedAt": at }),
            )
            .await;
            let id = started.data("startConversation")["id"]
                .as_str()
                .expect("id")
                .to_owned();
            app.gql(Some(SERVICE_TOKEN), APPEND, json!({ "ws": ws, "c": id,
                "m": [{ "externalId": "1", "direction": "OUTBOUND", "text": "Hello", "sentAt": at }] }))
                .await
                .data("appendMessages");
            made.push((ws.clone(), name, id));
        }
    }
    // Ada keeps conversations 30 days; Bob keeps them forever (the default).
    let kept = app
        .gql(
            ada.token(),
            "mutation($ws: ID!) { updateWorkspaceSettings(workspaceId: $ws, input: { conversationRetentionDays: 30 }) { conversationRetentionDays timeZone } }",
            json!({ "ws": ada.own_workspace }),
        )
        .await;
    assert_eq!(
        kept.data("updateWorkspaceSettings"),
        &json!({ "conversationRetentionDays": 30, "timeZone": "UTC" })
    );
    app.gql(
        ada.token(),
        "mutation($ws: ID!) { updateWorkspaceSettings(workspaceId: $ws, input: { conversationRetentionDays: 0 }) { timeZone } }",
        json!({ "ws": ada.own_workspace }),
    )
    .await
    .assert_code("BAD_USER_INPUT");
    let totals = |ws: String| {
        let app = &app;
        let token = if ws == ada.own_workspace {
            ada.token()
        } else {
            bob.token()
        };
        async move {
            app.gql(token, "query($ws: ID!, $s: DateTime!, $u: DateTime!) { workspace(id: $ws) {
                 analytics(since: $s, until: $u) { totals { conversationsStarted messagesOut } usage { messages } } } }",
                json!({ "ws": ws, "s": (now - chrono::Duration::days(60)).to_rfc3339(), "u": now.to_rfc3339() }))
                .await
                .data("workspace")["analytics"]
                .clone()
        }
    };
    let before = (
        totals(ada.own_workspace.clone()).await,
        totals(bob.own_workspace.clone()).await,
    );

    let mut conn = app.db.conn().await;
    let deleted = linkai::conversations::prune(&mut conn, now)
        .await
        .expect("pruned");
    assert_eq!(deleted, 1);
    assert_eq!(
        linkai::conversations::prune(&mut conn, now)
            .await
            .expect("pruned"),
        0
    );
    for (ws, name, id) in &made {
        let token = if *ws == ada.own_workspace {
            ada.token()
        } else {
            bob.token()
        };
        let read = app
            .gql(
                token,
                "query($ws: ID!, $id: ID!) { workspace(id: $ws) { conversation(id: $id) { id } } }",
                json!({ "ws": ws, "id": id }),
            )
            .await;
        let gone = read.data("workspace")["conversation"].is_null();
        assert_eq!(
            gone,
            *ws == ada.own_workspace && *name == "old",
            "{name} in {ws}"
        );
    }
    let messages = names(
        &mut conn,
        &format!(
            "SELECT count(*)::text AS name FROM messages WHERE workspace_id = '{}'",
            ada.own_workspace
        ),
    )
    .await;
    assert_eq!(messages, ["1"]);
    // Who talked when goes with the conversations: Ada's old contact day, not Bob's (who
    // keeps conversations forever) nor Ada's recent one.
    let days = names(
        &mut conn,
        &format!(
            "SELECT (workspace_id = '{}')::text || ' ' || (day > now() - interval '10 days')::text AS name \
             FROM contact_days WHERE workspace_id IN ('{}', '{}') ORDER BY 1",
            ada.own_workspace, ada.own_workspace, bob.own_workspace
        ),
    )
    .await;
    assert_eq!(days, ["false false", "false true", "true true"]);
    // What the deleted conversation counted stays counted.
    assert_eq!(
        before,
        (
            totals(ada.own_workspace.clone()).await,
            totals(bob.own_workspace.clone()).await
        )
    );
}

/// The review's replays: nested pages bounded by the complexity budget, search pages with
/// tied ranks, retries of times sent to the nanosecond, and the total past the last page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_and_edge_reads_are_bounded_and_pages_are_exact() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let ws = ada.own_workspace.clone();
    let agent = agent(&app, &ada, &ws).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let made = start(
            &app,
            &ws,
            json!({ "externalId": format!("tie-{n}"), "agentId": agent,
            "channel": "WEB_CHAT", "contact": { "email": format!("t{n}@example.com") } }),
        )
        .await;
        let id = made.data("startConversation")["id"]
            .as_str()
            .expect("id")
            .to_owned();
        // The same words everywhere: every rank ties.
        let m = json!({ "externalId": "q", "direction": "INBOUND", "text": "refund please",
                        "sentAt": "2026-12-01T10:00:00.123456789Z" });
        let first = app
            .gql(
                Some(SERVICE_TOKEN),
                APPEND,
                json!({ "ws": ws, "c": id, "m": [m.clone()] }),
            )
            .await;
        first.data("appendMessages");
        // Sent again to the nanosecond (as Go's RFC3339Nano would): the same message.
        let again = app
            .gql(
                Some(SERVICE_TOKEN),
                APPEND,
                json!({ "ws": ws, "c": id, "m": [m] }),
            )
            .await;
        assert_eq!(
            again.data("appendMessages")["messages"],
            first.data("appendMessages")["messages"]
        );
        ids.push(id);
    }
    for filter in [json!({ "search": "refunds" }), json!({})] {
        let mut seen = Vec::new();
        let mut after = Value::Null;
        loop {
            let page = app
                .gql(
                    ada.token(),
                    LIST,
                    json!({ "ws": ws, "first": 2, "after": after, "f": filter }),
                )
                .await;
            let list = page.data("workspace")["conversations"].clone();
            assert_eq!(list["totalCount"], 5, "{filter}");
            for edge in list["edges"].as_array().expect("edges") {
                seen.push(edge["node"]["id"].as_str().expect("id").to_owned());
            }
            if list["pageInfo"]["hasNextPage"] != true {
                // Past the last page, the total still counts the whole list.
                let past = app
                    .gql(ada.token(), LIST, json!({ "ws": ws, "first": 2, "after": list["pageInfo"]["endCursor"], "f": filter }))
                    .await;
                assert_eq!(past.data("workspace")["conversations"]["totalCount"], 5);
                break;
            }
            after = list["pageInfo"]["endCursor"].clone();
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!((seen.len(), unique.len()), (5, 5), "{filter}: {seen:?}");
    }
    // 100 conversations of 100 messages each is 10,000 items: over the budget, nothing runs.
    let nested = app
        .gql(
            ada.token(),
            "query($ws: ID!) { workspace(id: $ws) { conversations(first: 100) { edges { node {
               messages(first: 100) { edges { node { text } } } } } } } }",
            json!({ "ws": ws }),
        )
        .await;
    nested.assert_code("QUERY_TOO_COMPLEX");
    let searches: Vec<String> = (0..12)
        .map(|n| format!("s{n}: conversations(filter: {{ search: \"refund\" }}) {{ totalCount }}"))
        .collect();
    let many = app
        .gql(
            ada.token(),
            &format!(
                "query($ws: ID!) {{ workspace(id: $ws) {{ {} }} }}",
                searches.join(" ")
            ),
            json!({ "ws": ws }),
        )
        .await;
    many.assert_code("QUERY_TOO_COMPLEX");
}

/// The page's `totalCount` by channel and status comes from `conversation_totals`, kept by
/// triggers: after concurrent starts, closes, deletion, the retention round and a
/// workspace's deletion, each equals a count of the rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_match_the_rows_however_conversations_come_and_go() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let ws = ada.own_workspace.clone();
    let agent = agent(&app, &ada, &ws).await;
    let old = (chrono::Utc::now() - chrono::Duration::days(40)).to_rfc3339();
    let channels = ["WEB_CHAT", "SMS", "EMAIL", "PHONE_CALL"];
    let starts = (0..12).map(|n| {
        let mut input = json!({ "externalId": format!("c{n}"), "agentId": agent,
            "channel": channels[n % 4], "contact": { "phone": format!("+1415555{:04}", 100 + n) } });
        if n < 3 {
            input["startedAt"] = json!(old);
        }
        let app = &app;
        let ws = &ws;
        async move { start(app, ws, input).await }
    });
    // Each start twice at once: the retry counts nothing.
    let ids: Vec<String> = join_all(starts.clone().chain(starts))
        .await
        .iter()
        .map(|made| {
            made.data("startConversation")["id"]
                .as_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    // The old ones stay open (closing would make them active now): the round takes them.
    let closes = ids[3..9]
        .iter()
        .map(|id| app.gql(Some(SERVICE_TOKEN), CLOSE, json!({ "ws": ws, "c": id })));
    for closed in join_all(closes.clone().chain(closes)).await {
        assert_eq!(closed.data("closeConversation")["status"], "CLOSED");
    }
    app.gql(
        ada.token(),
        "mutation($ws: ID!, $id: ID!) { deleteConversation(workspaceId: $ws, id: $id) }",
        json!({ "ws": ws, "id": ids[11] }),
    )
    .await
    .data("deleteConversation");
    app.gql(
        ada.token(),
        "mutation($ws: ID!) { updateWorkspaceSettings(workspaceId: $ws, input: { conversationRetentionDays: 30 }) { timeZone } }",
        json!({ "ws": ws }),
    )
    .await
    .data("updateWorkspaceSettings");
    let mut conn = app.db.conn().await;
    let now = chrono::Utc::now();
    assert_eq!(
        linkai::conversations::prune(&mut conn, now)
            .await
            .expect("pruned"),
        3
    );

    let mut filters = vec![json!({})];
    for channel in channels {
        filters.push(json!({ "channel": channel }));
        for status in ["OPEN", "CLOSED"] {
            filters.push(json!({ "channel": channel, "status": status }));
        }
    }
    filters.extend([json!({ "status": "OPEN" }), json!({ "status": "CLOSED" })]);
    for filter in &filters {
        let listed = app
            .gql(
                ada.token(),
                LIST,
                json!({ "ws": ws, "f": filter, "first": 1 }),
            )
            .await;
        let channel = filter["channel"].as_str().map(str::to_lowercase);
        let status = filter["status"].as_str().map(str::to_lowercase);
        let counted = names(
            &mut conn,
            &format!(
                "SELECT count(*)::text AS name FROM conversations WHERE workspace_id = '{ws}' \
                 AND channel = COALESCE({}, channel) AND status = COALESCE({}, status)",
                channel.map_or("NULL".into(), |c| format!("'{c}'")),
                status.map_or("NULL".into(), |s| format!("'{s}'")),
            ),
        )
        .await;
        assert_eq!(
            listed.data("workspace")["conversations"]["totalCount"].to_string(),
            counted[0],
            "{filter}"
        );
    }
    // 12 started, 3 pruned, 1 deleted: 8, of which 6 closed.
    let all = app
        .gql(ada.token(), LIST, json!({ "ws": ws, "first": 1 }))
        .await;
    assert_eq!(all.data("workspace")["conversations"]["totalCount"], 8);
    let closed = app
        .gql(
            ada.token(),
            LIST,
            json!({ "ws": ws, "f": { "status": "CLOSED" }, "first": 1 }),
        )
        .await;
    assert_eq!(closed.data("workspace")["conversations"]["totalCount"], 6);

    // A workspace's own deletion cascades through its conversations and their totals.
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!("DELETE FROM workspaces WHERE id = '{ws}'")),
        &mut conn,
    )
    .await
    .expect("the workspace and everything in it go");
    let left = names(
        &mut conn,
        &format!(
            "SELECT count(*)::text AS name FROM conversation_totals WHERE workspace_id = '{ws}'"
        ),
    )
    .await;
    assert_eq!(left, ["0"]);
}

/// Appends count against the plan in force when they are written: a plan chosen in the
/// trial waits for the trial's end (its limits are the trial's), then its own apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_count_against_the_plan_in_force() {
    use diesel_async::RunQueryDsl as _;
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let ws = ada.own_workspace.clone();
    let agent = agent(&app, &ada, &ws).await;
    let started = start(
        &app,
        &ws,
        json!({ "externalId": "busy", "agentId": agent, "channel": "WEB_CHAT",
                "contact": { "email": "busy@example.com" } }),
    )
    .await;
    let id = started.data("startConversation")["id"].clone();
    let mut sent = 0;
    let mut send_100 = async || {
        let batch: Vec<Value> = (0..100)
            .map(|n| {
                json!({ "externalId": format!("m{}", sent + n), "direction": "OUTBOUND",
                        "text": "Counted", "sentAt": "2026-12-01T10:00:00Z" })
            })
            .collect();
        sent += 100;
        app.gql(
            Some(SERVICE_TOKEN),
            APPEND,
            json!({ "ws": ws, "c": id, "m": batch }),
        )
        .await
    };
    let mut conn = app.db.conn().await;
    // Starter (2,000 messages) chosen in the trial: the trial's limits still apply.
    diesel::sql_query(format!(
        "UPDATE workspaces SET plan = 'starter', subscription_status = 'trialing' WHERE id = '{ws}'"
    ))
    .execute(&mut conn)
    .await
    .expect("a plan chosen");
    for _ in 0..21 {
        send_100().await.data("appendMessages");
    }
    assert_eq!(usage(&app, &ada, &ws).await["messages"], 2_100);
    // The trial over and Starter active: a new period, and Starter's limit.
    diesel::sql_query(format!(
        "UPDATE workspaces SET trial_ends_at = now() - interval '1 day', \
         subscription_status = 'active' WHERE id = '{ws}'"
    ))
    .execute(&mut conn)
    .await
    .expect("the trial ended");
    for _ in 0..20 {
        send_100().await.data("appendMessages");
    }
    send_100().await.assert_code("USAGE_LIMIT_REACHED");
    assert_eq!(usage(&app, &ada, &ws).await["messages"], 2_000);
}
