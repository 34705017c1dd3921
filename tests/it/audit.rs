//! The audit log (issue 17, item 6, first part): member changes append their event in the
//! same transaction, a refused change writes nothing, Owners and Admins read the log with
//! filters and pages, and old events are pruned.

use std::collections::BTreeMap;

use diesel_async::RunQueryDsl;
use serde_json::{json, Value};

use crate::harness::{Actor, TestApp};

const LOG: &str = "query($ws: ID!, $first: Int, $after: String, $filter: AuditLogFilter) {
  workspace(id: $ws) { auditLog(first: $first, after: $after, filter: $filter) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { action actorKind actorId targetKind targetId changes requestId clientAddress at } } } } }";

async fn log(app: &TestApp, actor: &Actor, ws: &str, vars: Value) -> Value {
    let mut vars = vars;
    vars["ws"] = json!(ws);
    app.gql(actor.token(), LOG, vars).await.data("workspace")["auditLog"].clone()
}

fn actions(page: &Value) -> Vec<String> {
    page["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| edge["node"]["action"].as_str().expect("action").to_owned())
        .collect()
}

/// The events the README's audit table documents: mutation → event.
pub fn documented() -> BTreeMap<String, Vec<String>> {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("<!-- audit:events -->")
        .expect("the audit table");
    let end = readme.find("<!-- /audit:events -->").expect("its end");
    readme[start..end]
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let mutation = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let events = cells
                .get(2)?
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect();
            Some((mutation.to_owned(), events))
        })
        .collect()
}

#[test]
fn every_documented_event_names_a_mutation_and_an_action_of_the_schema() {
    let sdl = linkai::graphql::sdl();
    let mutations: Vec<String> = crate::schema::mutations(&sdl)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let actions = sdl
        .split("enum AuditAction {")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .expect("the AuditAction enum");
    let documented = documented();
    assert!(documented.len() >= 4, "{documented:?}");
    for (mutation, events) in &documented {
        assert!(mutations.contains(mutation), "{mutation} is not a mutation");
        assert!(!events.is_empty(), "{mutation} documents no event");
        for event in events {
            assert!(
                actions.lines().any(|line| line.trim() == event),
                "{event} is not an AuditAction"
            );
        }
    }
}

/// Owners and Admins see who changed what, from which request and address; a refused
/// change writes nothing; Members are refused the log and strangers do not see the
/// workspace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_changes_are_logged_with_their_actor_and_refused_ones_are_not() {
    let app = TestApp::new().await;
    let team = app.team().await;
    let ws = team.workspace.clone();
    let change = "mutation($ws: ID!, $u: ID!, $r: Role!) { changeMemberRole(workspaceId: $ws, userId: $u, role: $r) { role } }";
    let remove = "mutation($ws: ID!, $u: ID!) { removeMember(workspaceId: $ws, userId: $u) }";

    // Refused: an Admin changing a role, anyone removing the Owner.
    app.gql(
        team.admin.token(),
        change,
        json!({ "ws": ws, "u": team.member.id, "r": "VIEWER" }),
    )
    .await
    .assert_code("FORBIDDEN");
    app.gql(
        team.admin.token(),
        remove,
        json!({ "ws": ws, "u": team.owner.id }),
    )
    .await
    .assert_code("FORBIDDEN");
    // Only the workspace's creation, from the Owner's sign-up.
    let before = log(&app, &team.owner, &ws, json!({})).await;
    assert_eq!(actions(&before), ["WORKSPACE_CREATED"]);
    assert_eq!(
        before["edges"][0]["node"]["actorId"],
        team.owner.id.as_str()
    );

    app.gql(
        team.owner.token(),
        change,
        json!({ "ws": ws, "u": team.member.id, "r": "ADMIN" }),
    )
    .await
    .data("changeMemberRole");
    app.gql(
        team.admin.token(),
        remove,
        json!({ "ws": ws, "u": team.viewer.id }),
    )
    .await
    .data("removeMember");
    app.gql(
        team.member.token(),
        "mutation($ws: ID!) { leaveWorkspace(workspaceId: $ws) }",
        json!({ "ws": ws }),
    )
    .await
    .data("leaveWorkspace");
    app.gql(
        team.owner.token(),
        "mutation($ws: ID!, $u: ID!) { transferOwnership(workspaceId: $ws, userId: $u) { id } }",
        json!({ "ws": ws, "u": team.admin.id }),
    )
    .await
    .data("transferOwnership");

    // The new Owner reads the log, newest first.
    let page = log(&app, &team.admin, &ws, json!({})).await;
    assert_eq!(page["totalCount"], 5);
    assert_eq!(
        actions(&page),
        [
            "OWNERSHIP_TRANSFERRED",
            "MEMBER_LEFT",
            "MEMBER_REMOVED",
            "MEMBER_ROLE_CHANGED",
            "WORKSPACE_CREATED"
        ]
    );
    let node = |i: usize| page["edges"][i]["node"].clone();
    assert_eq!(node(3)["actorKind"], "USER");
    assert_eq!(node(3)["actorId"], team.owner.id.as_str());
    assert_eq!(node(3)["targetKind"], "user");
    assert_eq!(node(3)["targetId"], team.member.id.as_str());
    assert_eq!(
        node(3)["changes"],
        json!({ "role": { "from": "member", "to": "admin" } })
    );
    assert_eq!(node(2)["actorId"], team.admin.id.as_str());
    assert_eq!(node(2)["changes"], json!({ "role": "viewer" }));
    assert_eq!(node(1)["actorId"], team.member.id.as_str());
    assert_eq!(
        node(0)["changes"],
        json!({ "owner": { "from": team.owner.id, "to": team.admin.id } })
    );
    for i in 0..4 {
        assert!(node(i)["requestId"]
            .as_str()
            .is_some_and(|id| id.len() == 36));
        assert!(node(i)["clientAddress"].is_string(), "{}", node(i));
    }
    let requests: std::collections::BTreeSet<String> = (0..4)
        .map(|i| node(i)["requestId"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(requests.len(), 4, "one request id per request");

    // Filters and pages.
    let filtered = log(
        &app,
        &team.admin,
        &ws,
        json!({ "filter": { "actions": ["MEMBER_REMOVED", "MEMBER_LEFT"] } }),
    )
    .await;
    assert_eq!(actions(&filtered), ["MEMBER_LEFT", "MEMBER_REMOVED"]);
    let by_owner = log(
        &app,
        &team.admin,
        &ws,
        json!({ "filter": { "actorId": team.owner.id } }),
    )
    .await;
    assert_eq!(
        actions(&by_owner),
        [
            "OWNERSHIP_TRANSFERRED",
            "MEMBER_ROLE_CHANGED",
            "WORKSPACE_CREATED"
        ]
    );
    let later = log(
        &app,
        &team.admin,
        &ws,
        json!({ "filter": { "since": node(1)["at"] } }),
    )
    .await;
    assert_eq!(actions(&later), ["OWNERSHIP_TRANSFERRED", "MEMBER_LEFT"]);
    let first = log(&app, &team.admin, &ws, json!({ "first": 3 })).await;
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    let rest = log(
        &app,
        &team.admin,
        &ws,
        json!({ "first": 3, "after": first["pageInfo"]["endCursor"] }),
    )
    .await;
    assert_eq!(actions(&rest), ["MEMBER_ROLE_CHANGED", "WORKSPACE_CREATED"]);
    assert_eq!(rest["pageInfo"]["hasNextPage"], false);

    // The old Owner is an Admin now and still reads it; a Viewer-turned-stranger does not.
    assert_eq!(
        log(&app, &team.owner, &ws, json!({})).await["totalCount"],
        5
    );
    for outsider in [&team.stranger, &team.viewer] {
        let res = app.gql(outsider.token(), LOG, json!({ "ws": ws })).await;
        res.assert_code("NOT_FOUND");
        assert_eq!(res.body["data"]["workspace"], Value::Null);
    }
}

/// A Member's workspace screen gets `auditLog: null` with FORBIDDEN, and the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_and_viewers_are_refused_the_log() {
    let app = TestApp::new().await;
    let team = app.team().await;
    for actor in [&team.member, &team.viewer] {
        let res = app
            .gql(
                actor.token(),
                "query($ws: ID!) { workspace(id: $ws) { name auditLog { totalCount } } }",
                json!({ "ws": team.workspace }),
            )
            .await;
        res.assert_code("FORBIDDEN");
        assert_eq!(res.body["data"]["workspace"]["auditLog"], Value::Null);
        assert!(res.body["data"]["workspace"]["name"].is_string());
    }
}

/// Events past the retention are deleted by the scheduled scan's prune; newer ones stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_past_the_retention_are_pruned() {
    let app = TestApp::new().await;
    let team = app.team().await;
    app.gql(
        team.admin.token(),
        "mutation($ws: ID!, $u: ID!) { removeMember(workspaceId: $ws, userId: $u) }",
        json!({ "ws": team.workspace, "u": team.viewer.id }),
    )
    .await
    .data("removeMember");
    let mut conn = app.db.conn().await;
    diesel::sql_query(format!(
        "INSERT INTO audit_events (workspace_id, at, actor_kind, action, target_kind, target_id) \
         VALUES ('{}', now() - interval '400 days', 'system', 'member.removed', 'user', 'old')",
        team.workspace
    ))
    .execute(&mut conn)
    .await
    .expect("an old event");
    assert_eq!(
        log(&app, &team.owner, &team.workspace, json!({})).await["totalCount"],
        3
    );
    let worker = crate::cards::worker_side(&app, None).await;
    let mut conn = worker.db.conn().await.expect("conn");
    let pruned = linkai::audit::prune(
        &mut conn,
        chrono::Utc::now(),
        chrono::Duration::days(linkai::audit::DEFAULT_RETENTION_DAYS),
    )
    .await
    .expect("pruned");
    assert_eq!(pruned, 1);
    let left = log(&app, &team.owner, &team.workspace, json!({})).await;
    assert_eq!(actions(&left), ["MEMBER_REMOVED", "WORKSPACE_CREATED"]);
}

/// Resource writes are logged with the resource's kind and what changed (the fields an
/// update set, not their values); a refused delete writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_writes_are_logged_and_refused_ones_are_not() {
    let app = TestApp::new().await;
    let team = app.team().await;
    let ws = team.workspace.clone();
    let created = app
        .gql(
            team.member.token(),
            "mutation($ws: ID!) { createAgent(workspaceId: $ws, input: { name: \"Bot\" }) { id } }",
            json!({ "ws": ws }),
        )
        .await;
    let agent = created.data("createAgent")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.gql(
        team.member.token(),
        "mutation($ws: ID!, $id: ID!) { updateAgent(workspaceId: $ws, id: $id, input: { name: \"Helper\", description: \"Answers\" }) { id } }",
        json!({ "ws": ws, "id": agent }),
    )
    .await
    .data("updateAgent");
    let delete = "mutation($ws: ID!, $id: ID!) { deleteAgent(workspaceId: $ws, id: $id) }";
    app.gql(
        team.viewer.token(),
        delete,
        json!({ "ws": ws, "id": agent }),
    )
    .await
    .assert_code("FORBIDDEN");
    app.gql(team.admin.token(), delete, json!({ "ws": ws, "id": agent }))
        .await
        .data("deleteAgent");

    app.gql(
        team.admin.token(),
        "mutation($ws: ID!) { renameWorkspace(workspaceId: $ws, name: \"Acme\") { name } }",
        json!({ "ws": ws }),
    )
    .await
    .data("renameWorkspace");
    let renamed = log(
        &app,
        &team.owner,
        &ws,
        json!({ "filter": { "actions": ["WORKSPACE_RENAMED"] } }),
    )
    .await;
    assert_eq!(
        renamed["edges"][0]["node"]["changes"],
        json!({ "name": { "from": "Owner's Workspace", "to": "Acme" } })
    );
    assert_eq!(
        renamed["edges"][0]["node"]["actorId"],
        team.admin.id.as_str()
    );
    let resources = json!({ "filter": { "actions": [
        "RESOURCE_CREATED", "RESOURCE_UPDATED", "RESOURCE_DELETED"] } });
    let page = log(&app, &team.owner, &ws, resources).await;
    assert_eq!(
        actions(&page),
        ["RESOURCE_DELETED", "RESOURCE_UPDATED", "RESOURCE_CREATED"]
    );
    let node = |i: usize| page["edges"][i]["node"].clone();
    for i in 0..3 {
        assert_eq!(node(i)["targetKind"], "agent");
        assert_eq!(node(i)["targetId"], agent.as_str());
    }
    assert_eq!(node(2)["actorId"], team.member.id.as_str());
    assert_eq!(node(2)["changes"], json!({ "name": "Bot" }));
    assert_eq!(
        node(1)["changes"],
        json!({ "name": { "from": "Bot", "to": "Helper" }, "fields": ["description", "name"] })
    );
    assert_eq!(node(0)["actorId"], team.admin.id.as_str());
    assert_eq!(node(0)["changes"], json!({ "name": "Helper" }));
}

/// Invitations are logged: the Admin who invites, resends and revokes; the invitee who
/// accepts; the link's holder who declines without signing in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_are_logged_with_who_acted() {
    let app = TestApp::builder().with_workers().start().await;
    let team = app.team().await;
    let ws = team.workspace.clone();
    let bob = app.sign_up("Bob").await;
    let carol = format!("carol-{}@example.com", uuid::Uuid::new_v4().simple());
    let dave = format!("dave-{}@example.com", uuid::Uuid::new_v4().simple());
    let to_bob = app.invite(&team.admin, &ws, &bob.email, "MEMBER").await;
    let to_carol = app.invite(&team.admin, &ws, &carol, "VIEWER").await;
    let to_dave = app.invite(&team.admin, &ws, &dave, "VIEWER").await;
    let change = |field: &str| {
        format!("mutation($ws: ID!, $id: ID!) {{ {field}(workspaceId: $ws, invitationId: $id) {{ id }} }}")
    };
    app.gql(
        team.admin.token(),
        &change("resendInvitation"),
        json!({ "ws": ws, "id": to_dave }),
    )
    .await
    .data("resendInvitation");
    app.gql(
        team.admin.token(),
        &change("revokeInvitation"),
        json!({ "ws": ws, "id": to_dave }),
    )
    .await
    .data("revokeInvitation");
    let bob_link = app.mail.wait_for(&bob.email, "invitations/accept", 1).await[0].token();
    app.gql(
        bob.token(),
        "mutation($t: String!) { acceptInvitation(token: $t) { id } }",
        json!({ "t": bob_link }),
    )
    .await
    .data("acceptInvitation");
    let carol_link = app.mail.wait_for(&carol, "invitations/accept", 1).await[0].token();
    app.gql(
        None,
        "mutation($t: String!) { declineInvitation(token: $t) }",
        json!({ "t": carol_link }),
    )
    .await
    .data("declineInvitation");

    let invitations = json!({ "filter": { "actions": [
        "INVITATION_SENT", "INVITATION_RESENT", "INVITATION_REVOKED",
        "INVITATION_ACCEPTED", "INVITATION_DECLINED"] } });
    let page = log(&app, &team.owner, &ws, invitations).await;
    let events: Vec<(String, Value, Value, Value)> = page["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| {
            let node = &edge["node"];
            (
                node["action"].as_str().expect("action").to_owned(),
                node["actorId"].clone(),
                node["targetId"].clone(),
                node["changes"].clone(),
            )
        })
        .collect();
    let admin = json!(team.admin.id);
    assert_eq!(
        events,
        [
            (
                "INVITATION_DECLINED".to_owned(),
                Value::Null,
                json!(to_carol),
                json!({ "email": carol })
            ),
            (
                "INVITATION_ACCEPTED".to_owned(),
                json!(bob.id),
                json!(to_bob),
                json!({ "email": bob.email, "role": "member" })
            ),
            (
                "INVITATION_REVOKED".to_owned(),
                admin.clone(),
                json!(to_dave),
                json!({ "email": dave })
            ),
            (
                "INVITATION_RESENT".to_owned(),
                admin.clone(),
                json!(to_dave),
                json!({ "email": dave })
            ),
            (
                "INVITATION_SENT".to_owned(),
                admin.clone(),
                json!(to_dave),
                json!({ "email": dave, "role": "viewer" })
            ),
            (
                "INVITATION_SENT".to_owned(),
                admin.clone(),
                json!(to_carol),
                json!({ "email": carol, "role": "viewer" })
            ),
            (
                "INVITATION_SENT".to_owned(),
                admin,
                json!(to_bob),
                json!({ "email": bob.email, "role": "member" })
            ),
        ]
    );
}
