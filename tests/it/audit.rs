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

/// The actions of a page of events (audit or security log), newest first.
pub fn actions(page: &Value) -> Vec<String> {
    page["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| edge["node"]["action"].as_str().expect("action").to_owned())
        .collect()
}

/// What a docs/security.md table documents for a mutation: the events it may write, and whether it
/// may write none of them (`none: ...` rows, or `..., or none (...)`).
#[derive(Debug, Clone)]
pub struct Documented {
    pub events: Vec<String>,
    pub may_write_none: bool,
}

/// A resource kind's name in mutations: `phone_number` → `PhoneNumber`.
pub fn pascal_case(kind: &str) -> String {
    let camel = linkai::text::camel_case(kind);
    let mut chars = camel.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// The docs/security.md table between `<!-- {marker} -->` and its end: mutation → events. A row for
/// `create<Kind>` (or `update<Kind>`, `delete<Kind>`) stands for that mutation of every
/// resource kind.
fn table(marker: &str) -> BTreeMap<String, Documented> {
    let readme = include_str!("../../docs/security.md");
    let start = readme
        .find(&format!("<!-- {marker} -->"))
        .unwrap_or_else(|| panic!("the {marker} table"));
    let end = readme
        .find(&format!("<!-- /{marker} -->"))
        .expect("its end");
    readme[start..end]
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let mutation = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let cell = cells.get(2)?;
            let events = cell
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect();
            let may_write_none = cell.starts_with("none") || cell.contains(", or none");
            let documented = Documented {
                events,
                may_write_none,
            };
            let names: Vec<String> = if mutation.contains("<Kind>") {
                linkai::resources::kinds::KINDS
                    .iter()
                    .map(|kind| mutation.replace("<Kind>", &pascal_case(kind)))
                    .collect()
            } else {
                vec![mutation.to_owned()]
            };
            Some(
                names
                    .into_iter()
                    .map(move |name| (name, documented.clone()))
                    .collect::<Vec<_>>(),
            )
        })
        .flatten()
        .collect()
}

/// docs/security.md's audit table: mutation → the workspace events it writes.
pub fn documented() -> BTreeMap<String, Documented> {
    table("audit:events")
}

/// docs/security.md's security table: mutation → the account's security events it writes.
pub fn documented_security() -> BTreeMap<String, Documented> {
    table("security:events")
}

/// The values of a GraphQL enum in the SDL.
fn enum_values(sdl: &str, name: &str) -> Vec<String> {
    sdl.split(&format!("enum {name} {{"))
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .unwrap_or_else(|| panic!("the {name} enum"))
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('"'))
        .map(str::to_owned)
        .collect()
}

/// Issue 17: every mutation of schema.graphql says what it writes to the audit log or the
/// security log, or that it writes nothing and why; every event named is one of the
/// schema's, and a row that writes nothing says so.
#[test]
fn every_mutation_is_documented() {
    let sdl = linkai::graphql::sdl();
    let mutations: Vec<String> = crate::schema::mutations(&sdl)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let audit = documented();
    let security = documented_security();
    let missing: Vec<&String> = mutations
        .iter()
        .filter(|m| !audit.contains_key(*m) && !security.contains_key(*m))
        .collect();
    assert!(
        missing.is_empty(),
        "mutations with no documented event: {missing:?}"
    );
    for (rows, actions) in [
        (&audit, enum_values(&sdl, "AuditAction")),
        (&security, enum_values(&sdl, "SecurityAction")),
    ] {
        for (mutation, documented) in rows {
            assert!(mutations.contains(mutation), "{mutation} is not a mutation");
            assert!(
                !documented.events.is_empty() || documented.may_write_none,
                "{mutation} documents no event and does not say none"
            );
            for event in &documented.events {
                assert!(
                    actions.contains(event),
                    "{event} is not an action of the schema"
                );
            }
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

/// The billing actions of the log: who chose the plan, changed and removed cards, set the
/// details, cancelled and resumed; a refused choice writes nothing; and a status Stripe
/// changed (its documented event through the signed endpoint, applied by the worker) is
/// written with Stripe as the actor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_changes_are_logged_and_stripe_acts_for_its_own() {
    use crate::billing::{add_card, stripe_subscription_of, subscribe};
    use crate::webhooks::{deliver, documented_subscription, signed, subscription_event};
    let app = TestApp::builder()
        .with_stripe()
        .with_workers()
        .start()
        .await;
    let team = app.team().await;
    let ws = team.workspace.clone();
    let billing_actions = json!({ "filter": { "actions": [
        "PLAN_SELECTED", "SUBSCRIPTION_CANCELED", "SUBSCRIPTION_RESUMED",
        "SUBSCRIPTION_STATUS_CHANGED", "DEFAULT_PAYMENT_METHOD_CHANGED",
        "PAYMENT_METHOD_REMOVED", "BILLING_DETAILS_UPDATED"] } });
    app.gql(
        team.member.token(),
        "mutation($ws: ID!) { selectPlan(workspaceId: $ws, plan: GROWTH) { billing { status } } }",
        json!({ "ws": ws }),
    )
    .await
    .assert_code("FORBIDDEN");
    assert_eq!(
        log(&app, &team.owner, &ws, billing_actions.clone()).await["totalCount"],
        0
    );

    let customer = subscribe(&app, &team.admin, &ws, "GROWTH").await;
    let cards =
        "query($ws: ID!) { workspace(id: $ws) { billing { paymentMethods { id isDefault } } } }";
    let first = app
        .gql(team.admin.token(), cards, json!({ "ws": ws }))
        .await;
    let first = first.data("workspace")["billing"]["paymentMethods"][0]["id"]
        .as_str()
        .expect("the first card")
        .to_owned();
    let second = add_card(&customer).await;
    let card = |field: &str, pm: &str| {
        (
            format!("mutation($ws: ID!, $pm: String!) {{ {field}(workspaceId: $ws, paymentMethodId: $pm) {{ status }} }}"),
            json!({ "ws": ws, "pm": pm }),
        )
    };
    let (query, vars) = card("setDefaultPaymentMethod", &second);
    app.gql(team.admin.token(), &query, vars)
        .await
        .data("setDefaultPaymentMethod");
    let (query, vars) = card("removePaymentMethod", &first);
    app.gql(team.admin.token(), &query, vars)
        .await
        .data("removePaymentMethod");
    app.gql(
        team.owner.token(),
        "mutation($ws: ID!) { updateBillingDetails(workspaceId: $ws, details: { companyName: \"Acme Ltd\" }) { status } }",
        json!({ "ws": ws }),
    )
    .await
    .data("updateBillingDetails");
    for field in ["cancelSubscription", "resumeSubscription"] {
        app.gql(
            team.admin.token(),
            &format!("mutation($ws: ID!) {{ {field}(workspaceId: $ws) {{ status }} }}"),
            json!({ "ws": ws }),
        )
        .await
        .data(field);
    }

    // Stripe says the subscription is past due.
    let subscription = stripe_subscription_of(&customer).await["id"]
        .as_str()
        .expect("subscription")
        .to_owned();
    let copy = documented_subscription(&subscription, &customer, "past_due", None);
    let body = subscription_event(
        "customer.subscription.updated",
        chrono::Utc::now().timestamp() + 5,
        &copy,
    );
    assert_eq!(deliver(&app, &body, signed(&body)).await, 200);
    let mut page = Value::Null;
    for _ in 0..150 {
        page = log(&app, &team.owner, &ws, billing_actions.clone()).await;
        if page["totalCount"] == 8 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        actions(&page),
        [
            "SUBSCRIPTION_STATUS_CHANGED",
            "SUBSCRIPTION_RESUMED",
            "SUBSCRIPTION_CANCELED",
            "BILLING_DETAILS_UPDATED",
            "PAYMENT_METHOD_REMOVED",
            "DEFAULT_PAYMENT_METHOD_CHANGED",
            "PLAN_SELECTED",
            "DEFAULT_PAYMENT_METHOD_CHANGED",
        ]
    );
    let node = |i: usize| page["edges"][i]["node"].clone();
    assert_eq!(node(0)["actorKind"], "STRIPE");
    assert_eq!(node(0)["actorId"], Value::Null);
    assert_eq!(node(0)["targetId"], subscription.as_str());
    assert_eq!(
        node(0)["changes"],
        json!({ "status": { "from": "trialing", "to": "past_due" } })
    );
    for i in 1..8 {
        assert_eq!(node(i)["actorKind"], "USER", "{}", node(i));
        let by = if i == 3 { &team.owner } else { &team.admin };
        assert_eq!(node(i)["actorId"], by.id.as_str(), "{}", node(i));
    }
    assert_eq!(node(1)["targetId"], subscription.as_str());
    assert!(node(2)["changes"]["periodEnd"].is_string(), "{}", node(2));
    assert_eq!(node(3)["changes"], json!({ "fields": ["companyName"] }));
    assert_eq!(node(4)["targetId"], first.as_str());
    assert_eq!(node(4)["changes"], json!({ "card": "visa 4242" }));
    assert_eq!(node(5)["targetId"], second.as_str());
    assert_eq!(
        node(6)["changes"],
        json!({ "plan": { "from": Value::Null, "to": "growth" },
                "status": { "from": Value::Null, "to": "trialing" } })
    );
}

/// The agent runtime's reports: the day's first counted report says a service reached
/// the workspace, a report that brings a counter to its limit says so (once), and a report
/// refused for passing the limit, or repeated, writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_access_and_reached_limits_are_logged() {
    use crate::usage::SERVICE_TOKEN;
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let ws = ada.own_workspace.clone();
    let report = "mutation($ws: ID!, $q: Int!, $k: String!) {
      reportUsage(workspaceId: $ws, metric: SMS, quantity: $q, idempotencyKey: $k) { sms limits { sms } } }";
    let send = |q: i64, k: &str| json!({ "ws": ws, "q": q, "k": k });
    let first = app.gql(Some(SERVICE_TOKEN), report, send(1, "a")).await;
    let limit = first.data("reportUsage")["limits"]["sms"]
        .as_i64()
        .expect("limit");
    app.gql(Some(SERVICE_TOKEN), report, send(1, "a"))
        .await
        .data("reportUsage");
    app.gql(Some(SERVICE_TOKEN), report, send(limit - 2, "b"))
        .await
        .data("reportUsage");
    app.gql(Some(SERVICE_TOKEN), report, send(2, "c"))
        .await
        .assert_code("USAGE_LIMIT_REACHED");
    app.gql(Some(SERVICE_TOKEN), report, send(1, "d"))
        .await
        .data("reportUsage");
    app.gql(Some(SERVICE_TOKEN), report, send(1, "e"))
        .await
        .assert_code("USAGE_LIMIT_REACHED");

    let filter = json!({ "filter": { "actions": ["SERVICE_ACCESSED", "USAGE_LIMIT_REACHED"] } });
    let page = log(&app, &ada, &ws, filter).await;
    assert_eq!(actions(&page), ["USAGE_LIMIT_REACHED", "SERVICE_ACCESSED"]);
    let node = |i: usize| page["edges"][i]["node"].clone();
    for i in 0..2 {
        assert_eq!(node(i)["actorKind"], "SERVICE");
        assert_eq!(node(i)["actorId"], Value::Null);
        assert_eq!(node(i)["targetId"], ws.as_str());
    }
    assert_eq!(node(0)["changes"]["metric"], "sms");
    assert_eq!(node(0)["changes"]["limit"], limit);
    assert!(node(0)["changes"]["periodStart"].is_string());
    assert_eq!(node(1)["changes"], json!({ "metric": "sms" }));
}

/// An account deleted while a member of someone else's workspace: that workspace's log
/// says they left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_account_leaves_the_workspaces_it_joined_on_the_record() {
    let app = TestApp::new().await;
    let team = app.team().await;
    app.gql(
        team.member.token(),
        "mutation($p: String!) { deleteAccount(password: $p) }",
        json!({ "p": crate::harness::PASSWORD }),
    )
    .await
    .data("deleteAccount");
    let page = log(
        &app,
        &team.owner,
        &team.workspace,
        json!({ "filter": { "actions": ["MEMBER_LEFT"] } }),
    )
    .await;
    assert_eq!(actions(&page), ["MEMBER_LEFT"]);
    let node = &page["edges"][0]["node"];
    assert_eq!(node["actorId"], team.member.id.as_str());
    assert_eq!(node["targetId"], team.member.id.as_str());
    assert_eq!(node["changes"], json!({ "role": "member" }));
    let members = app
        .gql(
            team.owner.token(),
            "query($ws: ID!) { workspace(id: $ws) { members { totalCount } } }",
            json!({ "ws": team.workspace }),
        )
        .await;
    assert_eq!(members.data("workspace")["members"]["totalCount"], 3);
}
