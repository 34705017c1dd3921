//! Live updates (issue 25) with a graphql-transport-ws client over a real socket: events
//! arrive with the new state, each role sees what it may, removal ends the stream, a cursor
//! replays the gap, a change made on another server arrives, and the socket's bounds hold
//! (token, origin, subscriptions only, shutdown).

use std::time::Duration;

use diesel_async::RunQueryDsl;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{gql_at, Actor, TestApp};
use crate::processes;

const EVENTS: &str = "subscription($ws: ID!, $after: String) { \
    workspaceEvents(workspaceId: $ws, after: $after) { \
      cursor action targetKind targetId workspace { id name viewerRole } \
      auditEvent { actorId changes } } }";
const WAIT: Duration = Duration::from_secs(10);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A graphql-transport-ws client: one socket, its messages in order.
struct Client {
    socket: Socket,
}

/// How a stream or socket ended.
#[derive(Debug, PartialEq)]
enum End {
    Closed(u16),
}

impl Client {
    async fn open(base_url: &str, origin: Option<&str>) -> Result<Client, u16> {
        let url = format!("{}/graphql", base_url.replace("http://", "ws://"));
        let mut request = url.into_client_request().expect("request");
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", HeaderValue::from_str(origin).expect("origin"));
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, response)) => {
                assert_eq!(
                    response.headers()["sec-websocket-protocol"],
                    "graphql-transport-ws"
                );
                Ok(Client { socket })
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(err) => panic!("upgrade failed: {err}"),
        }
    }

    /// Opens a socket and initialises it with `token`.
    async fn connect(base_url: &str, token: &str) -> Client {
        let mut client = Client::open(base_url, None).await.expect("upgraded");
        client
            .send(json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}}))
            .await;
        assert_eq!(client.next().await.expect("ack")["type"], "connection_ack");
        client
    }

    /// Opens a socket whose receive window is a few kilobytes, and initialises it: a client
    /// that stops reading stops the server's sends soon after.
    async fn connect_narrow(base_url: &str, token: &str) -> Client {
        let address: std::net::SocketAddr = base_url
            .trim_start_matches("http://")
            .parse()
            .expect("address");
        let tcp = tokio::net::TcpSocket::new_v4().expect("socket");
        tcp.set_recv_buffer_size(4096).expect("buffer");
        let stream = tcp.connect(address).await.expect("connected");
        let url = format!("{}/graphql", base_url.replace("http://", "ws://"));
        let mut request = url.into_client_request().expect("request");
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
        let (socket, _) = tokio_tungstenite::client_async(
            request,
            tokio_tungstenite::MaybeTlsStream::Plain(stream),
        )
        .await
        .expect("upgraded");
        let mut client = Client { socket };
        client
            .send(json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}}))
            .await;
        assert_eq!(client.next().await.expect("ack")["type"], "connection_ack");
        client
    }

    /// The code the server closes the socket with, within 15 seconds; meanwhile, with
    /// `pinging`, a protocol `ping` and a WebSocket ping every second.
    async fn close_code(&mut self, pinging: bool) -> Option<u16> {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        let closed = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                tokio::select! {
                    message = self.socket.next() => match message {
                        Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                        Some(Ok(_)) => continue,
                        _ => return None,
                    },
                    _ = every.tick(), if pinging => {
                        self.send(json!({"type": "ping"})).await;
                        let _ = self.socket.send(Message::Ping(Default::default())).await;
                    }
                }
            }
        });
        closed.await.expect("closed in time")
    }

    async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("sent");
    }

    async fn subscribe(&mut self, id: &str, workspace: &str, after: Option<&str>) {
        self.send(json!({"id": id, "type": "subscribe", "payload": {
            "query": EVENTS, "variables": {"ws": workspace, "after": after}}}))
            .await;
    }

    /// The next protocol message (pings answered), or how the socket closed.
    async fn next(&mut self) -> Result<Value, End> {
        loop {
            let message = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("a message in time");
            match message {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(&text).expect("json");
                    if value["type"] == "ping" {
                        self.send(json!({"type": "pong"})).await;
                        continue;
                    }
                    return Ok(value);
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(End::Closed(frame.map_or(1005, |f| u16::from(f.code))));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(End::Closed(1006)),
            }
        }
    }

    /// The next event of subscription `id`.
    async fn event(&mut self, id: &str) -> Value {
        let message = self.next().await.expect("open");
        assert_eq!(message["id"], id, "{message}");
        assert_eq!(message["type"], "next", "{message}");
        assert!(message["payload"]["errors"].is_null(), "{message}");
        message["payload"]["data"]["workspaceEvents"].clone()
    }

    /// Nothing arrives for a while (the server's pings apart).
    async fn quiet(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(400);
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(next) => panic!("unexpected: {next:?}"),
            }
        }
    }
}

/// A GraphQL request to `base_url` as `actor`, whose answer has no errors.
async fn post(base_url: &str, actor: &Actor, query: &str, variables: Value) -> Value {
    gql_at(base_url, actor.token(), query, variables).await
}

/// The workspace's stream as `actor` reads it now: subscribing after it misses nothing.
async fn cursor(base_url: &str, actor: &Actor, workspace: &str) -> String {
    let data = post(
        base_url,
        actor,
        "query($ws: ID!) { workspace(id: $ws) { eventsCursor } }",
        json!({"ws": workspace}),
    )
    .await;
    data["workspace"]["eventsCursor"]
        .as_str()
        .expect("a cursor")
        .to_owned()
}

/// A socket of `actor`'s subscribed as `id` to the workspace's events from now on.
async fn watching(base_url: &str, actor: &Actor, workspace: &str, id: &str) -> Client {
    let from = cursor(base_url, actor, workspace).await;
    let mut client = Client::connect(base_url, &actor.token).await;
    client.subscribe(id, workspace, Some(&from)).await;
    client
}

/// The code of the error that refuses or ends subscription `id`: graphql-transport-ws's
/// `error` message, its payload the errors, and nothing after it for that id.
async fn refusal(client: &mut Client, id: &str) -> String {
    let refused = client.next().await.expect("an answer");
    assert_eq!(refused["id"], id, "{refused}");
    assert_eq!(refused["type"], "error", "{refused}");
    let errors = refused["payload"].as_array().expect("the errors");
    assert_eq!(errors.len(), 1, "{refused}");
    assert!(errors[0]["message"].is_string(), "{refused}");
    // The server's own mark of a failed operation stays on the server.
    assert!(!refused.to_string().contains("linkai."), "{refused}");
    let code = errors[0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("coded: {refused}"))
        .to_owned();
    // The socket goes on. (A `complete` for `id` would come at any time: the tests that use
    // `id` again after a refusal would see it.)
    client.send(json!({"type": "ping"})).await;
    assert_eq!(client.next().await, Ok(json!({"type": "pong"})));
    code
}

async fn rename(app: &TestApp, actor: &Actor, workspace: &str, name: &str) {
    rename_at(&app.base_url, actor, workspace, name).await;
}

async fn rename_at(base_url: &str, actor: &Actor, workspace: &str, name: &str) {
    post(
        base_url,
        actor,
        "mutation($ws: ID!, $n: String!) { renameWorkspace(workspaceId: $ws, name: $n) { id } }",
        json!({"ws": workspace, "n": name}),
    )
    .await;
}

async fn create_agent(base_url: &str, actor: &Actor, workspace: &str, name: &str) {
    post(
        base_url,
        actor,
        "mutation($ws: ID!, $n: String!) { createAgent(workspaceId: $ws, input: {name: $n}) { id } }",
        json!({"ws": workspace, "n": name}),
    )
    .await;
}

/// A subscription from the start and one resumed from its cursor: every statement the
/// stream runs (its start, its reads, the cursor's check), for tests/it/plans.rs.
pub async fn subscribe_and_resume(app: &TestApp) {
    let owner = app.sign_up("Live").await;
    let mut client = Client::connect(&app.base_url, &owner.token).await;
    let from = cursor(&app.base_url, &owner, &owner.own_workspace).await;
    client
        .subscribe("1", &owner.own_workspace, Some(&from))
        .await;
    rename(app, &owner, &owner.own_workspace, "Live renamed").await;
    let event = client.event("1").await;
    client
        .subscribe("2", &owner.own_workspace, event["cursor"].as_str())
        .await;
    client.quiet().await;
}

#[tokio::test]
async fn a_change_arrives_with_the_new_state_and_billing_only_for_billing_roles() {
    let app = TestApp::new().await;
    let team = app.team().await;
    let mut owner = Client::connect(&app.base_url, &team.owner.token).await;
    let mut viewer = Client::connect(&app.base_url, &team.viewer.token).await;
    // From the stream's place when the screen was read: nothing is missed in between.
    let from = cursor(&app.base_url, &team.viewer, &team.workspace).await;
    owner.subscribe("1", &team.workspace, Some(&from)).await;
    viewer.subscribe("1", &team.workspace, Some(&from)).await;

    rename(&app, &team.admin, &team.workspace, "Renamed live").await;
    for (client, role, full) in [(&mut owner, "OWNER", true), (&mut viewer, "VIEWER", false)] {
        let event = client.event("1").await;
        assert_eq!(event["action"], "WORKSPACE_RENAMED");
        assert_eq!(
            event["workspace"]["name"], "Renamed live",
            "the new state, no refetch"
        );
        assert_eq!(event["workspace"]["viewerRole"], role);
        assert_eq!(event["auditEvent"].is_object(), full, "{role}: {event}");
        if full {
            assert_eq!(event["auditEvent"]["actorId"], team.admin.id.as_str());
        }
    }

    // A billing event (as Stripe's webhook writes one), then another rename: the Viewer
    // gets only the rename.
    let mut conn = app.db.conn().await;
    diesel::sql_query(format!(
        "INSERT INTO audit_events (workspace_id, at, actor_kind, action, target_kind, target_id, changes) \
         VALUES ('{}', now(), 'stripe', 'billing.status_changed', 'workspace', '{}', \
                 '{{\"status\": {{\"from\": \"trialing\", \"to\": \"active\"}}}}')",
        team.workspace, team.workspace
    ))
    .execute(&mut conn)
    .await
    .expect("event written");
    rename(&app, &team.owner, &team.workspace, "Renamed again").await;
    assert_eq!(
        owner.event("1").await["action"],
        "SUBSCRIPTION_STATUS_CHANGED"
    );
    assert_eq!(owner.event("1").await["action"], "WORKSPACE_RENAMED");
    let seen = viewer.event("1").await;
    assert_eq!(seen["action"], "WORKSPACE_RENAMED");
    assert_eq!(seen["workspace"]["name"], "Renamed again");
    viewer.quiet().await;

    // A stranger cannot subscribe: the workspace is not found.
    let mut stranger = Client::connect(&app.base_url, &team.stranger.token).await;
    stranger.subscribe("9", &team.workspace, None).await;
    assert_eq!(refusal(&mut stranger, "9").await, "NOT_FOUND");
}

#[tokio::test]
async fn removal_ends_the_stream_and_a_cursor_replays_what_was_missed() {
    let app = TestApp::new().await;
    let team = app.team().await;
    let mut member = watching(&app.base_url, &team.member, &team.workspace, "m").await;
    let mut owner = watching(&app.base_url, &team.owner, &team.workspace, "o").await;

    // A reconnecting client: its last cursor, two changes while away, then live.
    rename(&app, &team.owner, &team.workspace, "First").await;
    let first = owner.event("o").await;
    assert_eq!(member.event("m").await["action"], "WORKSPACE_RENAMED");
    drop(owner);
    create_agent(&app.base_url, &team.admin, &team.workspace, "While away").await;
    rename(&app, &team.owner, &team.workspace, "Second").await;
    let mut owner = Client::connect(&app.base_url, &team.owner.token).await;
    owner
        .subscribe("o", &team.workspace, first["cursor"].as_str())
        .await;
    let missed = owner.event("o").await;
    assert_eq!(missed["action"], "RESOURCE_CREATED");
    assert_eq!(missed["targetKind"], "agent");
    assert_eq!(owner.event("o").await["workspace"]["name"], "Second");
    assert_eq!(member.event("m").await["action"], "RESOURCE_CREATED");
    assert_eq!(member.event("m").await["action"], "WORKSPACE_RENAMED");

    // The member is removed: their stream ends with NOT_FOUND (an `error` message); the
    // owner sees the removal.
    let removed = app
        .gql(
            team.owner.token(),
            "mutation($ws: ID!, $u: ID!) { removeMember(workspaceId: $ws, userId: $u) }",
            json!({"ws": team.workspace, "u": team.member.id}),
        )
        .await;
    assert_eq!(removed.data("removeMember"), true);
    assert_eq!(refusal(&mut member, "m").await, "NOT_FOUND");
    assert_eq!(owner.event("o").await["action"], "MEMBER_REMOVED");

    // A forged cursor is bad input; one whose event the log no longer holds has expired.
    owner
        .subscribe("x", &team.workspace, Some("not-a-cursor"))
        .await;
    assert_eq!(refusal(&mut owner, "x").await, "BAD_USER_INPUT");
    let mut conn = app.db.conn().await;
    diesel::sql_query(format!(
        "DELETE FROM audit_events WHERE workspace_id = '{}'",
        team.workspace
    ))
    .execute(&mut conn)
    .await
    .expect("pruned");
    owner
        .subscribe("y", &team.workspace, first["cursor"].as_str())
        .await;
    assert_eq!(refusal(&mut owner, "y").await, "CURSOR_EXPIRED");
}

#[tokio::test]
async fn a_change_made_on_another_server_reaches_this_one_and_shutdown_says_going_away() {
    let app = TestApp::new().await;
    let team = app.team().await;
    let other = processes::serve(&app, &[]).await;
    let mut here = watching(&app.base_url, &team.viewer, &team.workspace, "1").await;
    let mut there = watching(&other.base_url, &team.viewer, &team.workspace, "1").await;

    create_agent(&other.base_url, &team.member, &team.workspace, "Made there").await;
    let event = here.event("1").await;
    assert_eq!(event["action"], "RESOURCE_CREATED");
    assert_eq!(there.event("1").await["cursor"], event["cursor"]);

    // SIGTERM: the socket is told the server is going away, then the process exits.
    let stopped = tokio::spawn(async move {
        let mut other = other;
        other.terminate(Duration::from_secs(30)).await
    });
    assert_eq!(there.next().await, Err(End::Closed(1001)));
    assert!(stopped.await.expect("joined"), "exited");
}

#[tokio::test]
async fn a_socket_needs_a_live_token_an_allowed_origin_and_carries_subscriptions_only() {
    let app = TestApp::new().await;
    let team = app.team().await;

    assert_eq!(
        Client::open(&app.base_url, Some("https://evil.example"))
            .await
            .err(),
        Some(403)
    );
    // The API's own origin (the playground's) may.
    assert!(Client::open(&app.base_url, Some(&app.base_url))
        .await
        .is_ok());
    let mut anonymous = Client::open(&app.base_url, None).await.expect("upgraded");
    anonymous
        .send(json!({"type": "connection_init", "payload": {"authorization": "Bearer lk_nope"}}))
        .await;
    assert_eq!(anonymous.next().await, Err(End::Closed(4403)));

    // A subscription over HTTP is refused as a request: it is served over the socket.
    let over_http = app
        .gql(team.owner.token(), EVENTS, json!({"ws": team.workspace}))
        .await;
    over_http.assert_code("BAD_USER_INPUT");
    assert!(
        over_http.answer().get("data").is_none(),
        "{:?}",
        over_http.answer()
    );

    let mut client = Client::connect(&app.base_url, &team.owner.token).await;
    client
        .send(json!({"id": "q", "type": "subscribe", "payload": {"query": "{ me { id } }"}}))
        .await;
    assert_eq!(refusal(&mut client, "q").await, "BAD_USER_INPUT");

    // One root field per subscription (the spec's rule): aliases would multiply streams.
    client
        .send(
            json!({"id": "two", "type": "subscribe", "payload": {"query":
            "subscription($ws: ID!) { a: workspaceEvents(workspaceId: $ws) { cursor } \
             b: workspaceEvents(workspaceId: $ws) { cursor } }",
            "variables": {"ws": team.workspace}}}),
        )
        .await;
    assert_eq!(
        refusal(&mut client, "two").await,
        "GRAPHQL_VALIDATION_FAILED"
    );

    // Subscriptions per socket are capped; the first ones keep running.
    for n in 0..linkai::http::socket::SUBSCRIPTIONS_PER_SOCKET {
        client
            .subscribe(&format!("s{n}"), &team.workspace, None)
            .await;
    }
    client.subscribe("over", &team.workspace, None).await;
    assert_eq!(refusal(&mut client, "over").await, "RATE_LIMITED");
}

/// Whether, within 1.5 s, a backend of the test's database waits for a lock.
async fn a_backend_waits_for_a_lock(app: &TestApp) -> bool {
    let mut watcher = app.db.conn().await;
    for _ in 0..150 {
        let found: Vec<Terminated> = diesel::sql_query(
            "SELECT true AS ended FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock'",
        )
        .load(&mut watcher)
        .await
        .expect("activity");
        if !found.is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// An audit event holding the counter: a transaction of `app`'s database left open.
async fn holding_the_counter(app: &TestApp, ws: &str) -> diesel_async::AsyncPgConnection {
    use diesel_async::SimpleAsyncConnection;
    let mut slow = app.db.conn().await;
    slow.batch_execute(&format!(
        "BEGIN; INSERT INTO audit_events (workspace_id, at, actor_kind, action, target_kind, \
         target_id) VALUES ('{ws}', now(), 'system', 'workspace.settings_changed', 'workspace', '{ws}')"
    ))
    .await
    .expect("open transaction");
    slow
}

#[tokio::test]
async fn events_come_in_commit_order_and_none_is_skipped_behind_a_longer_transaction() {
    use diesel_async::SimpleAsyncConnection;
    let app = TestApp::new().await;
    let team = app.team().await;
    let mut owner = watching(&app.base_url, &team.owner, &team.workspace, "1").await;

    // A transaction writes its event first and holds on; a rename in the same workspace
    // waits for its commit to take the next number, so the stream has them in commit
    // order, and a cursor never passes an event still to commit.
    let mut slow = holding_the_counter(&app, &team.workspace).await;
    let renaming = tokio::spawn({
        let (base, owner, ws) = (
            app.base_url.clone(),
            team.owner.clone(),
            team.workspace.clone(),
        );
        async move { rename_at(&base, &owner, &ws, "Second to commit").await }
    });
    // The rename waits for the counter (before its lock timeout, 2 s): then commit.
    assert!(
        a_backend_waits_for_a_lock(&app).await,
        "the rename waits for the first transaction"
    );
    slow.batch_execute("COMMIT").await.expect("committed");
    renaming.await.expect("renamed");
    assert_eq!(
        owner.event("1").await["action"],
        "WORKSPACE_SETTINGS_CHANGED"
    );
    let renamed = owner.event("1").await;
    assert_eq!(renamed["action"], "WORKSPACE_RENAMED");
    owner.quiet().await;

    // Resuming after the last event delivers nothing twice.
    let mut again = Client::connect(&app.base_url, &team.owner.token).await;
    again
        .subscribe("2", &team.workspace, renamed["cursor"].as_str())
        .await;
    again.quiet().await;
}

#[tokio::test]
async fn a_silent_socket_times_out_and_an_account_holds_at_most_its_sockets() {
    let app = TestApp::new().await;
    let owner = app.sign_up("Owner").await;

    // No `connection_init`: closed after 10 seconds with 4408. Pings are not one: a client
    // that only pings (the protocol's and WebSocket's) is closed the same.
    let mut silent = Client::open(&app.base_url, None).await.expect("upgraded");
    let mut pinging = Client::open(&app.base_url, None).await.expect("upgraded");
    let (silent, pinging) = tokio::join!(silent.close_code(false), pinging.close_code(true));
    assert_eq!(silent, Some(4408));
    assert_eq!(pinging, Some(4408), "pings do not hold the socket open");

    let mut open = Vec::new();
    for _ in 0..linkai::live::SOCKETS_PER_ACCOUNT {
        open.push(Client::connect(&app.base_url, &owner.token).await);
    }
    let mut over = Client::open(&app.base_url, None).await.expect("upgraded");
    over.send(json!({"type": "connection_init", "payload": {"authorization": owner.token}}))
        .await;
    assert_eq!(over.next().await, Err(End::Closed(4403)));
    // One closes: once the server has seen it go, a new one is accepted.
    drop(open.pop());
    let mut accepted = false;
    for _ in 0..50 {
        let mut again = Client::open(&app.base_url, None).await.expect("upgraded");
        again
            .send(json!({"type": "connection_init", "payload": {"authorization": owner.token}}))
            .await;
        if again.next().await.is_ok() {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(accepted, "a closed socket gives its place back");
}

#[tokio::test]
async fn a_revoked_session_closes_its_socket_at_once_and_others_stay() {
    let app = TestApp::new().await;
    let owner = app.sign_up("Owner").await;
    let other_session = app.session(&owner.email, crate::harness::PASSWORD).await;
    let mut revoked = Client::connect(&app.base_url, &other_session).await;
    let from = cursor(&app.base_url, &owner, &owner.own_workspace).await;
    revoked
        .subscribe("1", &owner.own_workspace, Some(&from))
        .await;
    let mut kept = Client::connect(&app.base_url, &owner.token).await;
    kept.subscribe("1", &owner.own_workspace, Some(&from)).await;

    // The owner signs the other session out from this one.
    let sessions = app
        .gql(
            owner.token(),
            "{ sessions { edges { node { id current } } } }",
            json!({}),
        )
        .await;
    let other = sessions.data("sessions")["edges"]
        .as_array()
        .expect("sessions")
        .iter()
        .find(|edge| edge["node"]["current"] == false)
        .expect("the other session")["node"]["id"]
        .clone();
    app.gql(
        owner.token(),
        "mutation($id: ID!) { revokeSession(id: $id) }",
        json!({"id": other}),
    )
    .await
    .data("revokeSession");
    // Within the client's wait (10 s), well before the periodic check (60 s): the
    // revocation's notification closed it.
    assert_eq!(revoked.next().await, Err(End::Closed(4403)));

    rename(&app, &owner, &owner.own_workspace, "Still watched").await;
    assert_eq!(kept.event("1").await["action"], "WORKSPACE_RENAMED");
}

#[tokio::test]
async fn a_change_made_while_the_listener_is_away_arrives_once_it_is_back() {
    let app = TestApp::new().await;
    let owner = app.sign_up("Owner").await;
    let mut client = Client::connect(&app.base_url, &owner.token).await;
    let from = cursor(&app.base_url, &owner, &owner.own_workspace).await;
    client
        .subscribe("1", &owner.own_workspace, Some(&from))
        .await;

    // PostgreSQL drops the listening connection; a change commits before it is back.
    let mut conn = app.db.conn().await;
    let mut ended = Vec::new();
    for _ in 0..100 {
        ended = diesel::sql_query(format!(
            "SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = '{}'",
            linkai::live::LISTENER_NAME
        ))
        .load::<Terminated>(&mut conn)
        .await
        .expect("terminated");
        if !ended.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ended.len(), 1, "one listening connection per server");
    rename(&app, &owner, &owner.own_workspace, "While nobody listened").await;
    let event = client.event("1").await;
    assert_eq!(event["workspace"]["name"], "While nobody listened");
}

#[derive(diesel::QueryableByName)]
struct Terminated {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    #[allow(dead_code)]
    ended: bool,
}

#[tokio::test]
async fn numbering_events_never_deadlocks_a_membership_change() {
    let app = TestApp::new().await;
    let team = app.team().await;
    let agent = post(
        &app.base_url,
        &team.admin,
        "mutation($ws: ID!) { createAgent(workspaceId: $ws, input: {name: \"Racer\"}) { id } }",
        json!({"ws": team.workspace}),
    )
    .await["createAgent"]["id"]
        .clone();
    // The Owner's role changes lock the workspace row, then write their event; the Admin's
    // edits write theirs (and take the counter) while the row is locked: each waits its
    // turn, and none fails.
    let roles = {
        let (base, owner, ws, member) = (
            app.base_url.clone(),
            team.owner.clone(),
            team.workspace.clone(),
            team.member.id.clone(),
        );
        tokio::spawn(async move {
            for round in 0..20 {
                let role = if round % 2 == 0 { "VIEWER" } else { "MEMBER" };
                post(
                    &base,
                    &owner,
                    "mutation($ws: ID!, $u: ID!, $r: Role!) { \
                     changeMemberRole(workspaceId: $ws, userId: $u, role: $r) { role } }",
                    json!({"ws": ws, "u": member, "r": role}),
                )
                .await;
            }
        })
    };
    for round in 0..20 {
        post(
            &app.base_url,
            &team.admin,
            "mutation($ws: ID!, $id: ID!, $d: String!) { \
             updateAgent(workspaceId: $ws, id: $id, input: {description: $d}) { id } }",
            json!({"ws": team.workspace, "id": agent, "d": format!("round {round}")}),
        )
        .await;
    }
    roles.await.expect("every role change went through");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_and_the_others_keep_receiving() {
    use diesel_async::SimpleAsyncConnection;
    // Far more than the stalled socket's buffers hold (the kernel's on both sides, the
    // server's few messages), so its sends stop.
    const BURST: usize = 2_000;
    let app = TestApp::new().await;
    let owner = app.sign_up("Owner").await;
    let ws = owner.own_workspace.clone();
    let mut steady = watching(&app.base_url, &owner, &ws, "1").await;
    let from = cursor(&app.base_url, &owner, &ws).await;
    // Two subscriptions on the stalled socket: while one waits to send, the other may be
    // reading the log, and must not hold up the steady client's reads.
    let mut stalled = Client::connect_narrow(&app.base_url, &owner.token).await;
    stalled.subscribe("1", &ws, Some(&from)).await;
    stalled.subscribe("2", &ws, Some(&from)).await;
    steady.quiet().await;

    // A burst of changes, each with a few kilobytes to tell (written as the server's own
    // work would write them: the stream is the audit log).
    let mut conn = app.db.conn().await;
    conn.batch_execute(&format!(
        "INSERT INTO audit_events (workspace_id, at, actor_kind, action, target_kind, \
         target_id, changes) SELECT '{ws}', now(), 'system', 'workspace.settings_changed', \
         'workspace', '{ws}', jsonb_build_object('n', n, 'note', repeat('x', 5000)) \
         FROM generate_series(1, {BURST}) n"
    ))
    .await
    .expect("burst");

    // The steady client receives every event, in order, while the stalled one reads nothing.
    for n in 1..=BURST {
        let event = steady.event("1").await;
        assert_eq!(event["auditEvent"]["changes"]["n"], n, "in order");
    }

    // Past the server's patience (10 s without a message taken), the stalled client reads
    // again: part of the burst, then the close frame that says it fell behind.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let (mut received, mut last) = (0, None);
    let end = loop {
        match stalled.next().await {
            Ok(message) if message["id"] == "1" => {
                assert_eq!(message["type"], "next", "{message}");
                received += 1;
                last = message["payload"]["data"]["workspaceEvents"]["cursor"]
                    .as_str()
                    .map(str::to_owned);
            }
            Ok(message) => assert_eq!(message["type"], "next", "{message}"),
            Err(end) => break end,
        }
    };
    assert_eq!(end, End::Closed(4499));
    assert!(
        received < BURST,
        "dropped before the end ({received} of {BURST})"
    );

    // It resumes from the last event it got: the next one follows it.
    let mut again = Client::connect(&app.base_url, &owner.token).await;
    again.subscribe("1", &ws, last.as_deref()).await;
    let next = again.event("1").await;
    assert_eq!(next["auditEvent"]["changes"]["n"], received + 1);
}

const VIEWER_EVENTS: &str =
    "subscription { viewerEvents { kind workspaceId tokenId workspace { id viewerRole } } }";

/// A socket of the holder of `token`'s, subscribed as `v` to their own access's changes.
async fn watching_myself(base_url: &str, token: &str) -> Client {
    let mut client = Client::connect(base_url, token).await;
    client
        .send(json!({"id": "v", "type": "subscribe", "payload": {"query": VIEWER_EVENTS}}))
        .await;
    // It reads the access it starts from (two statements) before any change below is
    // made: nothing tells a client when that is done, so give it ample time.
    tokio::time::sleep(Duration::from_secs(1)).await;
    client.quiet().await;
    client
}

impl Client {
    /// The next change to the subscriber's own access.
    async fn viewer_event(&mut self) -> Value {
        let message = self.next().await.expect("open");
        assert_eq!(message["id"], "v", "{message}");
        assert!(message["payload"]["errors"].is_null(), "{message}");
        message["payload"]["data"]["viewerEvents"].clone()
    }
}

#[tokio::test]
async fn viewer_events_tell_a_person_what_changed_about_their_own_access() {
    let app = TestApp::new().await;
    let team = app.team().await;
    let person = &team.member;
    let token = |name: &str, scope: Value| {
        post(
            &app.base_url,
            person,
            "mutation($n: String!, $s: [ID!]) { createAccessToken(name: $n, workspaceIds: $s) { id token } }",
            json!({"n": name, "s": scope}),
        )
    };
    let scoped = token("Team only", json!([team.workspace])).await["createAccessToken"].clone();
    let other = token("Script", Value::Null).await["createAccessToken"].clone();
    let mut session = watching_myself(&app.base_url, &person.token).await;
    let mut partner =
        watching_myself(&app.base_url, scoped["token"].as_str().expect("token")).await;

    // A new role, told with the workspace as it is now.
    post(
        &app.base_url,
        &team.owner,
        "mutation($ws: ID!, $u: ID!) { changeMemberRole(workspaceId: $ws, userId: $u, role: ADMIN) { __typename } }",
        json!({"ws": team.workspace, "u": person.id}),
    )
    .await;
    let promoted = json!({"kind": "ROLE_CHANGED", "workspaceId": team.workspace, "tokenId": null,
        "workspace": {"id": team.workspace, "viewerRole": "ADMIN"}});
    assert_eq!(session.viewer_event().await, promoted);
    assert_eq!(partner.viewer_event().await, promoted);

    // Their own workspace deleted: outside the partner token's workspaces, it hears nothing.
    post(
        &app.base_url,
        person,
        "mutation($ws: ID!) { deleteWorkspace(workspaceId: $ws) }",
        json!({"ws": person.own_workspace}),
    )
    .await;
    assert_eq!(
        session.viewer_event().await,
        json!({"kind": "WORKSPACE_REMOVED", "workspaceId": person.own_workspace,
            "tokenId": null, "workspace": null})
    );

    // A token revoked: told to sessions only.
    post(
        &app.base_url,
        person,
        "mutation($id: ID!) { revokeAccessToken(id: $id) }",
        json!({"id": other["id"]}),
    )
    .await;
    assert_eq!(
        session.viewer_event().await,
        json!({"kind": "TOKEN_REVOKED", "workspaceId": null, "tokenId": other["id"],
            "workspace": null})
    );

    // Removed, then added again.
    post(
        &app.base_url,
        &team.owner,
        "mutation($ws: ID!, $u: ID!) { removeMember(workspaceId: $ws, userId: $u) }",
        json!({"ws": team.workspace, "u": person.id}),
    )
    .await;
    let removed = json!({"kind": "WORKSPACE_REMOVED", "workspaceId": team.workspace,
        "tokenId": null, "workspace": null});
    assert_eq!(session.viewer_event().await, removed);
    assert_eq!(partner.viewer_event().await, removed);
    app.add_member(&team.workspace, person, "viewer").await;
    let added = json!({"kind": "WORKSPACE_ADDED", "workspaceId": team.workspace,
        "tokenId": null, "workspace": {"id": team.workspace, "viewerRole": "VIEWER"}});
    assert_eq!(session.viewer_event().await, added);
    assert_eq!(partner.viewer_event().await, added);

    // Nothing else was told, and nobody else's change reaches them.
    rename(&app, &team.owner, &team.workspace, "Renamed").await;
    app.add_member(&team.stranger.own_workspace, &team.viewer, "member")
        .await;
    session.quiet().await;
    partner.quiet().await;
}

#[tokio::test]
async fn one_read_of_the_log_serves_every_subscriber_of_a_workspace_on_a_server() {
    let app = TestApp::new().await;
    let owner = app.sign_up("Owner").await;
    let mut server = processes::serve(&app, &[("METRICS_ADDR", "127.0.0.1:0")]).await;
    let metrics = server.announced("metrics on ").await;
    let from = cursor(&server.base_url, &owner, &owner.own_workspace).await;
    let mut sockets = Vec::new();
    for _ in 0..10 {
        let mut client = Client::connect(&server.base_url, &owner.token).await;
        client
            .subscribe("1", &owner.own_workspace, Some(&from))
            .await;
        sockets.push(client);
    }
    for client in &mut sockets {
        client.quiet().await;
    }
    rename_at(&server.base_url, &owner, &owner.own_workspace, "Read once").await;
    for client in &mut sockets {
        assert_eq!(client.event("1").await["action"], "WORKSPACE_RENAMED");
    }

    // Ten subscribers each reading for themselves would be twenty reads (one to start, one
    // at the change); shared, it is one of each, give or take a wake-up from the listener
    // connecting and one from its first poll of the workspace.
    let scrape = crate::metrics::scrape(&reqwest::Client::new(), &metrics).await;
    let reads =
        |kind| crate::metrics::counted(&scrape, "linkai_live_log_reads_total", &[("kind", kind)]);
    assert!(
        (2.0..=4.0).contains(&reads("shared")),
        "shared reads: {}",
        reads("shared")
    );
    assert_eq!(reads("own"), 0.0);
    // The rename's wake went through Redis, once the mutation was over.
    let count = |name, label: (&str, &str)| crate::metrics::counted(&scrape, name, &[label]);
    assert_eq!(
        count(
            "linkai_live_wakes_published_total",
            ("outcome", "published")
        ),
        1.0
    );
    assert_eq!(
        count("linkai_live_wakes_total", ("source", "published")),
        1.0
    );
}

#[tokio::test]
async fn with_redis_away_a_change_still_arrives_from_the_poll() {
    let app = TestApp::new().await;
    let owner = app.sign_up("Owner").await;
    // Nothing listens on port 1: no wake is published, none is heard.
    let mut server = processes::serve(
        &app,
        &[
            ("METRICS_ADDR", "127.0.0.1:0"),
            ("REDIS_URL", "redis://127.0.0.1:1"),
        ],
    )
    .await;
    let metrics = server.announced("metrics on ").await;
    let mut client = watching(&server.base_url, &owner, &owner.own_workspace, "1").await;
    client.quiet().await;
    // The first change may come with the poll's first look at the workspace, which wakes
    // its subscribers without counting a lost wake; the second is a move the poll saw.
    for name in ["Found by the poll", "Found again"] {
        rename_at(&server.base_url, &owner, &owner.own_workspace, name).await;
        let event = client.event("1").await;
        assert_eq!(event["workspace"]["name"], name);
    }

    let scrape = crate::metrics::scrape(&reqwest::Client::new(), &metrics).await;
    let count = |name, label: (&str, &str)| crate::metrics::counted(&scrape, name, &[label]);
    assert_eq!(
        count("linkai_live_wakes_published_total", ("outcome", "failed")),
        2.0
    );
    assert_eq!(
        count("linkai_live_wakes_total", ("source", "published")),
        0.0
    );
    assert!(count("linkai_live_wakes_total", ("source", "polled")) >= 1.0);
}

#[derive(diesel::QueryableByName)]
struct Head {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    seq: i64,
}

#[tokio::test]
async fn a_wake_that_came_before_its_commit_holds_nothing_back() {
    use diesel_async::SimpleAsyncConnection;
    let app = TestApp::new().await;
    let owner = app.sign_up("Owner").await;
    let ws = owner.own_workspace.clone();
    let mut client = watching(&app.base_url, &owner, &ws, "1").await;
    client.quiet().await;

    // A wake for the next number, before anything took it: as a transaction that rolled
    // back (its number is given again) or a request abandoned mid-commit would leave one.
    let mut conn = app.db.conn().await;
    let Head { seq } = diesel::sql_query(format!(
        "SELECT seq FROM workspace_event_seqs WHERE workspace_id = '{ws}'"
    ))
    .get_result(&mut conn)
    .await
    .expect("head");
    let redis = redis::Client::open("redis://127.0.0.1:6379").expect("redis");
    let mut redis = redis
        .get_multiplexed_async_connection()
        .await
        .expect("connected");
    redis::cmd("PUBLISH")
        .arg(linkai::live::wakes::channel(&app.jobs_queue))
        .arg(format!("{ws}:{}", seq + 1))
        .exec_async(&mut redis)
        .await
        .expect("published");
    client.quiet().await;

    // Then the event that really takes the number commits, its own wake lost: the poll
    // finds it all the same.
    conn.batch_execute(&format!(
        "INSERT INTO audit_events (workspace_id, at, actor_kind, action, target_kind, \
         target_id) VALUES ('{ws}', now(), 'system', 'workspace.settings_changed', \
         'workspace', '{ws}')"
    ))
    .await
    .expect("event written");
    let event = client.event("1").await;
    assert_eq!(event["action"], "WORKSPACE_SETTINGS_CHANGED");
}

const TARGETS: &str = "subscription($ws: ID!, $after: String) { \
    workspaceEvents(workspaceId: $ws, after: $after) { action targetKind target { \
      __typename ... on Member { id role } ... on Invitation { id email status } \
      ... on Agent { id name } } } }";

#[tokio::test]
async fn an_event_carries_what_it_happened_to_as_queries_return_it() {
    let app = TestApp::new().await;
    let team = app.team().await;
    let mut sockets = Vec::new();
    for actor in [&team.owner, &team.member] {
        let from = cursor(&app.base_url, actor, &team.workspace).await;
        let mut client = Client::connect(&app.base_url, &actor.token).await;
        client
            .send(json!({"id": "t", "type": "subscribe", "payload": {
                "query": TARGETS, "variables": {"ws": team.workspace, "after": from}}}))
            .await;
        sockets.push(client);
    }
    let [owner, member] = &mut sockets[..] else {
        unreachable!()
    };
    let target = |event: Value| event["target"].clone();

    // A resource, as its list shows it.
    let created = post(
        &app.base_url,
        &team.member,
        "mutation($ws: ID!) { createAgent(workspaceId: $ws, input: {name: \"Scout\"}) { id } }",
        json!({"ws": team.workspace}),
    )
    .await;
    let agent = created["createAgent"]["id"].clone();
    let scout = json!({"__typename": "Agent", "id": agent, "name": "Scout"});
    assert_eq!(target(owner.event("t").await), scout);
    assert_eq!(target(member.event("t").await), scout);

    // A member, keyed as `Workspace.members` keys them, with the new role.
    post(
        &app.base_url,
        &team.owner,
        "mutation($ws: ID!, $u: ID!) { changeMemberRole(workspaceId: $ws, userId: $u, role: MEMBER) { id } }",
        json!({"ws": team.workspace, "u": team.viewer.id}),
    )
    .await;
    let promoted = json!({"__typename": "Member",
        "id": format!("{}:{}", team.workspace, team.viewer.id), "role": "MEMBER"});
    assert_eq!(target(owner.event("t").await), promoted);
    assert_eq!(target(member.event("t").await), promoted);

    // An invitation, to those who manage members (the others do not get the event).
    let invitation = app
        .invite(
            &team.owner,
            &team.workspace,
            "newcomer@example.com",
            "MEMBER",
        )
        .await;
    assert_eq!(
        target(owner.event("t").await),
        json!({"__typename": "Invitation", "id": invitation,
            "email": "newcomer@example.com", "status": "PENDING"})
    );

    // Gone: null, and `targetKind` still says what it was.
    post(
        &app.base_url,
        &team.owner,
        "mutation($ws: ID!, $id: ID!) { deleteAgent(workspaceId: $ws, id: $id) }",
        json!({"ws": team.workspace, "id": agent}),
    )
    .await;
    for client in [owner, member] {
        let deleted = client.event("t").await;
        assert_eq!(deleted["action"], "RESOURCE_DELETED");
        assert_eq!(deleted["targetKind"], "agent");
        assert_eq!(deleted["target"], Value::Null);
        client.quiet().await;
    }
}

#[tokio::test]
async fn an_operation_id_in_progress_cannot_be_reused_and_an_ended_one_can() {
    let app = TestApp::new().await;
    let owner = app.sign_up("Owner").await;
    let ws = owner.own_workspace.clone();
    let mut client = Client::connect(&app.base_url, &owner.token).await;
    client.subscribe("1", &ws, None).await;
    // Ended by the client (the server confirms), the id is free again.
    client.send(json!({"id": "1", "type": "complete"})).await;
    assert_eq!(
        client.next().await,
        Ok(json!({"id": "1", "type": "complete"}))
    );
    let from = cursor(&app.base_url, &owner, &ws).await;
    client.subscribe("1", &ws, Some(&from)).await;
    rename(&app, &owner, &ws, "Reused id").await;
    assert_eq!(client.event("1").await["action"], "WORKSPACE_RENAMED");

    // In progress, it closes the socket, as graphql-transport-ws says.
    client.subscribe("1", &ws, None).await;
    assert_eq!(client.next().await, Err(End::Closed(4409)));
}

const CONVERSATION_EVENTS: &str = "subscription($ws: ID!, $after: String) { \
    workspaceEvents(workspaceId: $ws, after: $after) { cursor action targetKind targetId \
      auditEvent { id } target { __typename ... on Conversation { id status messageCount } \
      ... on Agent { id } } } }";

/// A socket of `actor`'s subscribed as `id` with [`CONVERSATION_EVENTS`] from `after`.
async fn watching_conversations(
    base_url: &str,
    actor: &Actor,
    workspace: &str,
    after: &str,
) -> Client {
    let mut client = Client::connect(base_url, &actor.token).await;
    client
        .send(json!({"id": "c", "type": "subscribe", "payload": {
            "query": CONVERSATION_EVENTS, "variables": {"ws": workspace, "after": after}}}))
        .await;
    client
}

/// What a Viewer is for: the agent runtime's conversations, started, added to and closed,
/// reach every role as they happen, woken as their commits end, with the conversation as
/// queries return it; they are in the stream, not in the audit log; a retry adds nothing; a
/// cursor replays them, for the two days they are kept.
#[tokio::test]
async fn the_runtimes_conversations_reach_every_role_live_and_stay_out_of_the_audit_log() {
    use crate::conversations::{message, APPEND, CLOSE, START};
    use crate::usage::SERVICE_TOKEN;
    let app = TestApp::new().await;
    let team = app.team().await;
    let ws = team.workspace.clone();
    // A server of its own, whose metrics count this test's wakes alone.
    let mut server = processes::serve(&app, &[("METRICS_ADDR", "127.0.0.1:0")]).await;
    let metrics = server.announced("metrics on ").await;
    let base_url = server.base_url.clone();
    let from = cursor(&base_url, &team.viewer, &ws).await;
    let mut viewer = watching_conversations(&base_url, &team.viewer, &ws, &from).await;
    let mut owner = watching_conversations(&base_url, &team.owner, &ws, &from).await;
    let made = post(
        &base_url,
        &team.owner,
        "mutation($ws: ID!) { createAgent(workspaceId: $ws, input: {name: \"Host\"}) { id } }",
        json!({"ws": ws}),
    )
    .await;
    let agent = made["createAgent"]["id"].clone();
    let runtime = |query: &'static str, variables: Value| {
        let base_url = base_url.clone();
        async move { gql_at(&base_url, Some(SERVICE_TOKEN), query, variables).await }
    };

    // Each step's events, to the Viewer and the Owner: only the Owner reads the audit
    // log, which holds the agent's creation, and the service's first access of the day
    // (`audited_first`, before the messages that counted it), and nothing of the runtime's.
    let mut cursors = std::collections::HashMap::new();
    let mut step = async |action: &str, target: Value, audited_first: Option<&str>| {
        for (client, reads_log) in [(&mut viewer, false), (&mut owner, true)] {
            if let Some(first) = audited_first.filter(|_| reads_log) {
                let event = client.event("c").await;
                assert_eq!(event["action"], first, "{event}");
                assert!(event["auditEvent"].is_object(), "{event}");
                cursors.insert(first.to_owned(), event["cursor"].clone());
            }
            let event = client.event("c").await;
            assert_eq!(event["action"], action, "{event}");
            assert_eq!(event["target"], target, "{event}");
            let audited = reads_log && action == "RESOURCE_CREATED";
            assert_eq!(event["auditEvent"].is_object(), audited, "{event}");
            if action != "RESOURCE_CREATED" {
                assert_eq!(event["targetKind"], "conversation");
                assert_eq!(event["targetId"], target["id"]);
            }
            cursors.insert(action.to_owned(), event["cursor"].clone());
        }
    };
    step(
        "RESOURCE_CREATED",
        json!({"__typename": "Agent", "id": agent}),
        None,
    )
    .await;

    let started = runtime(
        START,
        json!({"ws": ws, "input": {"externalId": "live-1", "agentId": agent, "channel": "WEB_CHAT",
                "contact": {"email": "guest@example.com"}}}),
    )
    .await;
    let conversation = started["startConversation"]["id"].clone();
    let state = |status: &str, count: i64| {
        json!({"__typename": "Conversation", "id": conversation, "status": status,
               "messageCount": count})
    };
    step("CONVERSATION_STARTED", state("OPEN", 0), None).await;

    let batch = json!([
        message("m1", "INBOUND", "Table for two?", 0),
        message("m2", "OUTBOUND", "Booked.", 1)
    ]);
    let append = json!({"ws": ws, "c": conversation, "m": batch});
    runtime(APPEND, append.clone()).await;
    let added = "CONVERSATION_MESSAGES_ADDED";
    step(added, state("OPEN", 2), Some("SERVICE_ACCESSED")).await;
    runtime(APPEND, append).await; // a retry: nothing new, no event

    runtime(CLOSE, json!({"ws": ws, "c": conversation})).await;
    step("CONVERSATION_CLOSED", state("CLOSED", 2), None).await;
    for client in [&mut viewer, &mut owner] {
        client.quiet().await;
    }
    let cursor_of = |action: &str| cursors[action].as_str().expect("cursor").to_owned();

    // Each write woke the subscribers through Redis once it was over (the poll, once a
    // second, would deliver them too, only later): the agent, the start, the append, its
    // retry (which wrote nothing, but cannot tell) and the close.
    let scrape = crate::metrics::scrape(&reqwest::Client::new(), &metrics).await;
    let published = crate::metrics::counted(
        &scrape,
        "linkai_live_wakes_published_total",
        &[("outcome", "published")],
    );
    assert_eq!(published, 5.0);

    let log = post(
        &base_url,
        &team.owner,
        "query($ws: ID!) { workspace(id: $ws) { auditLog(first: 50) { edges { node { action } } } } }",
        json!({"ws": ws}),
    )
    .await;
    let logged = log["workspace"]["auditLog"]["edges"].to_string();
    assert!(logged.contains("SERVICE_ACCESSED"), "{logged}");
    assert!(!logged.contains("CONVERSATION_"), "{logged}");

    // A cursor replays what followed it.
    let started_cursor = cursor_of("CONVERSATION_STARTED");
    let mut back = watching_conversations(&base_url, &team.member, &ws, &started_cursor).await;
    assert_eq!(back.event("c").await["action"], added);
    assert_eq!(back.event("c").await["action"], "CONVERSATION_CLOSED");

    // Kept two days: events older go in the retention round, younger stay. Everything but
    // the close is made three days old; the close, 20 hours.
    let mut conn = app.db.conn().await;
    for table in ["audit_events", "conversation_events"] {
        diesel::sql_query(format!(
            "UPDATE {table} SET at = at - CASE WHEN action = 'conversation.closed' \
             THEN interval '20 hours' ELSE interval '3 days' END WHERE workspace_id = '{ws}'"
        ))
        .execute(&mut conn)
        .await
        .expect("aged");
    }
    linkai::conversations::prune(&mut conn, chrono::Utc::now())
        .await
        .expect("pruned");
    let actions = async |conn: &mut diesel_async::AsyncPgConnection, table: &str| {
        let rows: Vec<Name> = diesel::sql_query(format!(
            "SELECT action AS name FROM {table} WHERE workspace_id = '{ws}' ORDER BY seq"
        ))
        .load(conn)
        .await
        .expect("read");
        rows.into_iter().map(|row| row.name).collect::<Vec<_>>()
    };
    assert_eq!(
        actions(&mut conn, "conversation_events").await,
        ["conversation.closed"]
    );
    assert!(actions(&mut conn, "audit_events")
        .await
        .contains(&"service.accessed".to_owned()));
    // Whose next event is gone: expired. Whose next event is held and within the day: it
    // replays.
    let mut late = Client::connect(&base_url, &team.owner.token).await;
    late.subscribe("late", &ws, Some(&cursor_of("SERVICE_ACCESSED")))
        .await;
    assert_eq!(refusal(&mut late, "late").await, "CURSOR_EXPIRED");
    let mut recent = watching_conversations(&base_url, &team.owner, &ws, &cursor_of(added)).await;
    assert_eq!(recent.event("c").await["action"], "CONVERSATION_CLOSED");
}

#[derive(diesel::QueryableByName)]
struct Name {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

/// A conversation's event takes its number as its write commits, after an audited change
/// still open in the workspace: it waits for that commit, and the stream has them in commit
/// order.
#[tokio::test]
async fn a_conversations_event_waits_at_its_commit_for_an_audited_change_still_open() {
    use diesel_async::SimpleAsyncConnection;
    let app = TestApp::new().await;
    let team = app.team().await;
    let ws = team.workspace.clone();
    let agent = crate::conversations::agent(&app, &team.owner, &ws).await;
    let from = cursor(&app.base_url, &team.viewer, &ws).await;
    let mut viewer = watching_conversations(&app.base_url, &team.viewer, &ws, &from).await;
    let mut slow = holding_the_counter(&app, &ws).await;
    let starting = tokio::spawn({
        let (base, ws) = (app.base_url.clone(), ws.clone());
        async move {
            gql_at(
                &base,
                Some(crate::usage::SERVICE_TOKEN),
                crate::conversations::START,
                json!({"ws": ws, "input": {"externalId": "second", "agentId": agent,
                        "channel": "SMS", "contact": {"phone": "+14155550123"}}}),
            )
            .await
        }
    });
    assert!(
        a_backend_waits_for_a_lock(&app).await,
        "the start waits at its commit"
    );
    slow.batch_execute("COMMIT").await.expect("committed");
    starting.await.expect("started");
    assert_eq!(
        viewer.event("c").await["action"],
        "WORKSPACE_SETTINGS_CHANGED"
    );
    let started = viewer.event("c").await;
    assert_eq!(started["action"], "CONVERSATION_STARTED");
    assert_eq!(started["target"]["status"], "OPEN");
    viewer.quiet().await;
}

/// An `error` ends its operation: its id is free again at once. An error inside an event (a
/// field's bad argument) is that event's alone: a `next`, and the stream goes on.
#[tokio::test]
async fn a_failed_operations_id_is_free_again_and_an_events_error_does_not_end_its_stream() {
    let app = TestApp::new().await;
    let owner = app.sign_up("Owner").await;
    let ws = owner.own_workspace.clone();
    let mut client = Client::connect(&app.base_url, &owner.token).await;
    client.subscribe("1", &ws, Some("not-a-cursor")).await;
    assert_eq!(refusal(&mut client, "1").await, "BAD_USER_INPUT");
    // The same id at once: not a duplicate (4409), and live.
    let from = cursor(&app.base_url, &owner, &ws).await;
    client.subscribe("1", &ws, Some(&from)).await;
    rename(&app, &owner, &ws, "First").await;
    assert_eq!(client.event("1").await["action"], "WORKSPACE_RENAMED");
    client.send(json!({"id": "1", "type": "complete"})).await;
    assert_eq!(
        client.next().await,
        Ok(json!({"id": "1", "type": "complete"}))
    );

    let from = cursor(&app.base_url, &owner, &ws).await;
    client
        .send(json!({"id": "2", "type": "subscribe", "payload": {
            "query": "subscription($ws: ID!, $after: String) { \
                workspaceEvents(workspaceId: $ws, after: $after) { \
                  action workspace { members(first: 1, after: \"x\") { totalCount } } } }",
            "variables": {"ws": ws, "after": from}}}))
        .await;
    for name in ["Second", "Third"] {
        rename(&app, &owner, &ws, name).await;
        let failed = client.next().await.expect("an event");
        assert_eq!(failed["id"], "2", "{failed}");
        assert_eq!(failed["type"], "next", "{failed}");
        assert_eq!(
            failed["payload"]["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{failed}"
        );
        assert!(!failed.to_string().contains("linkai."), "{failed}");
    }
}
