//! Tenant isolation you can prove: a randomized, model-checked run of every resource
//! operation by several users in several workspaces with several roles, using ids from
//! their own workspace, a foreign one, deleted and never-existing ones. Each response is
//! compared with an in-memory model of DESIGN.md's rules, and each tenant's names carry a
//! marker that must never show up in another tenant's answers.
//!
//! Conversations join the run (issue 23): the agent runtime starts them and appends
//! messages carrying the workspace's marker, members list, search, read and delete them,
//! with the same mix of ids.
//!
//! The same run with the application's own workspace filter switched off for one kind
//! proves that row-level security alone keeps tenants apart.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::{Actor, TestApp};

/// Operations per world; four worlds run at once, so a run is 4 × this.
const OPS_PER_WORLD: usize = 5_000;
const USERS: usize = 5;

#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
enum Role {
    Viewer,
    Member,
    Admin,
    Owner,
}

const ROLES: [(Role, &str); 3] = [
    (Role::Admin, "admin"),
    (Role::Member, "member"),
    (Role::Viewer, "viewer"),
];

struct KindSpec {
    name: &'static str,
    list: &'static str,
    limit: Option<usize>,
}

const KINDS: [KindSpec; 7] = [
    KindSpec {
        name: "Agent",
        list: "agents",
        limit: Some(50),
    },
    KindSpec {
        name: "Contact",
        list: "contacts",
        limit: None,
    },
    KindSpec {
        name: "KnowledgeBase",
        list: "knowledgeBases",
        limit: None,
    },
    KindSpec {
        name: "Form",
        list: "forms",
        limit: None,
    },
    KindSpec {
        name: "PhoneNumber",
        list: "phoneNumbers",
        limit: Some(20),
    },
    KindSpec {
        name: "Calendar",
        list: "calendars",
        limit: None,
    },
    KindSpec {
        name: "Integration",
        list: "integrations",
        limit: None,
    },
];

fn input(kind: usize, name: &str, serial: usize) -> String {
    match KINDS[kind].name {
        "Form" => format!("{{ name: \"{name}\", fields: [{{ label: \"Q\", type: TEXT }}] }}"),
        "PhoneNumber" => format!("{{ name: \"{name}\", number: \"+1415{serial:07}\" }}"),
        "Calendar" => format!("{{ name: \"{name}\", timeZone: \"UTC\" }}"),
        "Integration" => format!("{{ name: \"{name}\", provider: WEBHOOK }}"),
        _ => format!("{{ name: \"{name}\" }}"),
    }
}

#[derive(Clone)]
struct Item {
    id: String,
    kind: usize,
    workspace: usize,
    creator: usize,
}

struct Workspace {
    id: String,
    marker: String,
    deleted: bool,
}

struct World {
    users: Vec<Actor>,
    workspaces: Vec<Workspace>,
    roles: HashMap<(usize, usize), Role>,
    items: Vec<Item>,
    gone: Vec<Item>,
    serial: usize,
    conversations: Vec<Conversation>,
    gone_conversations: Vec<String>,
}

#[derive(Clone)]
struct Conversation {
    id: String,
    workspace: usize,
    messages: usize,
}

impl World {
    fn role(&self, user: usize, workspace: usize) -> Option<Role> {
        if self.workspaces[workspace].deleted {
            return None;
        }
        self.roles.get(&(user, workspace)).copied()
    }

    fn live(&self, workspace: usize, kind: usize) -> Vec<&Item> {
        self.items
            .iter()
            .filter(|i| i.workspace == workspace && i.kind == kind)
            .collect()
    }
}

async fn build_world(app: &TestApp, rng: &mut StdRng) -> World {
    let mut users = Vec::new();
    for i in 0..USERS {
        users.push(app.sign_up(&format!("U{i}")).await);
    }
    let mut roles = HashMap::new();
    let mut workspaces = Vec::new();
    for (owner, user) in users.iter().enumerate() {
        roles.insert((owner, owner), Role::Owner);
        workspaces.push(Workspace {
            id: user.own_workspace.clone(),
            marker: format!("mk{}", Uuid::new_v4().simple()),
            deleted: false,
        });
    }
    for (w, workspace) in workspaces.iter().enumerate() {
        for (u, user) in users.iter().enumerate() {
            if u != w && rng.random_bool(0.5) {
                let (role, db_role) = ROLES[rng.random_range(0..ROLES.len())];
                app.add_member(&workspace.id, user, db_role).await;
                roles.insert((u, w), role);
            }
        }
    }
    World {
        users,
        workspaces,
        roles,
        items: Vec::new(),
        gone: Vec::new(),
        serial: 0,
        conversations: Vec::new(),
        gone_conversations: Vec::new(),
    }
}

/// The id an operation targets: usually a live item of the workspace, else a foreign,
/// deleted, other-kind or never-existing one.
fn pick_id(world: &World, rng: &mut StdRng, workspace: usize, kind: usize) -> String {
    let own = world.live(workspace, kind);
    match rng.random_range(0..10) {
        0..=5 if !own.is_empty() => own[rng.random_range(0..own.len())].id.clone(),
        6 if !world.items.is_empty() => world.items[rng.random_range(0..world.items.len())]
            .id
            .clone(),
        7 if !world.gone.is_empty() => world.gone[rng.random_range(0..world.gone.len())].id.clone(),
        _ => Uuid::new_v4().to_string(),
    }
}

fn markers_ok(world: &World, allowed: Option<usize>, body: &Value) -> Result<(), String> {
    let text = body.to_string();
    for (index, workspace) in world.workspaces.iter().enumerate() {
        if Some(index) != allowed && text.contains(&workspace.marker) {
            return Err(format!("marker of workspace {index} leaked into {text}"));
        }
    }
    Ok(())
}

async fn run_world(app: &TestApp, seed: u64) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut world = build_world(app, &mut rng).await;
    let mut divergences = Vec::new();
    for step in 0..OPS_PER_WORLD {
        if step == OPS_PER_WORLD / 3 {
            // A workspace goes away mid-run: its ids become "deleted workspace" ids.
            let victim = USERS - 1;
            app.gql(
                world.users[victim].token(),
                "mutation($ws: ID!) { deleteWorkspace(workspaceId: $ws) }",
                json!({ "ws": world.workspaces[victim].id }),
            )
            .await
            .data("deleteWorkspace");
            world.workspaces[victim].deleted = true;
            let (kept, gone): (Vec<Item>, Vec<Item>) =
                world.items.drain(..).partition(|i| i.workspace != victim);
            world.items = kept;
            world.gone.extend(gone);
            let (kept, gone): (Vec<Conversation>, Vec<Conversation>) = world
                .conversations
                .drain(..)
                .partition(|c| c.workspace != victim);
            world.conversations = kept;
            world
                .gone_conversations
                .extend(gone.into_iter().map(|c| c.id));
        }
        if rng.random_range(0..4) == 0 {
            if let Err(divergence) = conversation_step(app, &mut world, &mut rng).await {
                divergences.push(format!("seed {seed} step {step}: {divergence}"));
                if divergences.len() > 10 {
                    return divergences;
                }
            }
            continue;
        }
        let anonymous = rng.random_range(0..50) == 0;
        let user = rng.random_range(0..USERS);
        let token = (!anonymous).then(|| world.users[user].token.clone());
        let workspace = rng.random_range(0..USERS);
        let (workspace_id, target_workspace) = if rng.random_range(0..30) == 0 {
            (Uuid::new_v4().to_string(), None)
        } else {
            (world.workspaces[workspace].id.clone(), Some(workspace))
        };
        let kind = rng.random_range(0..KINDS.len());
        let spec = &KINDS[kind];
        let role = target_workspace.and_then(|w| world.role(user, w));
        let op = rng.random_range(0..4);
        let (query, vars) = match op {
            0 => (
                format!("query($ws: ID!, $n: Int) {{ workspace(id: $ws) {{ {}(first: $n) {{ totalCount edges {{ node {{ id name }} }} }} }} }}", spec.list),
                json!({ "ws": workspace_id, "n": rng.random_range(1..40) }),
            ),
            1 => {
                world.serial += 1;
                let marker = target_workspace.map_or("none".to_owned(), |w| world.workspaces[w].marker.clone());
                let name = format!("{marker} n{}", world.serial);
                (
                    format!("mutation($ws: ID!) {{ create{}(workspaceId: $ws, input: {}) {{ id name }} }}", spec.name, input(kind, &name, world.serial)),
                    json!({ "ws": workspace_id }),
                )
            }
            2 => {
                world.serial += 1;
                let marker = target_workspace.map_or("none".to_owned(), |w| world.workspaces[w].marker.clone());
                let name = format!("{marker} u{}", world.serial);
                let id = pick_id(&world, &mut rng, workspace, kind);
                (
                    format!("mutation($ws: ID!, $id: ID!) {{ update{}(workspaceId: $ws, id: $id, input: {}) {{ id name }} }}", spec.name, input(kind, &name, world.serial)),
                    json!({ "ws": workspace_id, "id": id }),
                )
            }
            _ => {
                let id = pick_id(&world, &mut rng, workspace, kind);
                (
                    format!("mutation($ws: ID!, $id: ID!) {{ delete{}(workspaceId: $ws, id: $id) }}", spec.name),
                    json!({ "ws": workspace_id, "id": id }),
                )
            }
        };
        let target_id = vars.get("id").and_then(Value::as_str).map(str::to_owned);
        let existing = target_workspace.and_then(|w| {
            world.items.iter().position(|i| {
                Some(i.id.as_str()) == target_id.as_deref() && i.workspace == w && i.kind == kind
            })
        });

        // What DESIGN.md says should happen.
        let expected: Option<&str> = if anonymous {
            Some("UNAUTHENTICATED")
        } else {
            match role {
                None => Some("NOT_FOUND"),
                Some(_) if op == 0 => None,
                Some(Role::Viewer) => Some("FORBIDDEN"),
                Some(role) => match op {
                    1 => {
                        let w = target_workspace.expect("member of a real workspace");
                        match spec.limit {
                            Some(limit) if world.live(w, kind).len() >= limit => {
                                Some("USAGE_LIMIT_REACHED")
                            }
                            _ => None,
                        }
                    }
                    2 => existing.is_none().then_some("NOT_FOUND"),
                    _ => match existing {
                        None => Some("NOT_FOUND"),
                        Some(i) if role < Role::Admin && world.items[i].creator != user => {
                            Some("FORBIDDEN")
                        }
                        Some(_) => None,
                    },
                },
            }
        };

        let res = app.gql(token.as_deref(), &query, vars.clone()).await;
        let got = res.code();
        if got != expected {
            divergences.push(format!("seed {seed} step {step}: {query} {vars} as user {user} ({role:?}): expected {expected:?}, got {:?}: {}", got, res.body));
            if divergences.len() > 10 {
                return divergences;
            }
            continue;
        }
        let allowed = if got.is_none() {
            target_workspace
        } else {
            None
        };
        if let Err(leak) = markers_ok(&world, allowed, &res.body) {
            divergences.push(format!("seed {seed} step {step}: {leak}"));
        }
        if got.is_some() {
            continue;
        }
        let w = target_workspace.expect("succeeded in a real workspace");
        match op {
            0 => {
                let list = &res.body["data"]["workspace"][spec.list];
                let live = world.live(w, kind);
                let first = vars["n"].as_u64().expect("n") as usize;
                let expected_ids: Vec<&str> =
                    live.iter().take(first).map(|i| i.id.as_str()).collect();
                let got_ids: Vec<&str> = list["edges"]
                    .as_array()
                    .expect("edges")
                    .iter()
                    .map(|e| e["node"]["id"].as_str().expect("id"))
                    .collect();
                if list["totalCount"].as_u64() != Some(live.len() as u64) || got_ids != expected_ids
                {
                    divergences.push(format!("seed {seed} step {step}: list of {} in {w}: expected {} {expected_ids:?}, got {list}", spec.list, live.len()));
                }
            }
            1 => {
                let id = res.body["data"][format!("create{}", spec.name)]["id"]
                    .as_str()
                    .expect("id")
                    .to_owned();
                world.items.push(Item {
                    id,
                    kind,
                    workspace: w,
                    creator: user,
                });
            }
            2 => {}
            _ => {
                let item = world
                    .items
                    .remove(existing.expect("deleted an existing item"));
                world.gone.push(item);
            }
        }
    }
    divergences
}

/// The conversation an operation targets: usually one of the workspace's, else a foreign,
/// deleted or never-existing one.
fn pick_conversation(world: &World, rng: &mut StdRng, workspace: usize) -> String {
    let own: Vec<&Conversation> = world
        .conversations
        .iter()
        .filter(|c| c.workspace == workspace)
        .collect();
    match rng.random_range(0..10) {
        0..=5 if !own.is_empty() => own[rng.random_range(0..own.len())].id.clone(),
        6 if !world.conversations.is_empty() => world.conversations
            [rng.random_range(0..world.conversations.len())]
        .id
        .clone(),
        7 if !world.gone_conversations.is_empty() => {
            world.gone_conversations[rng.random_range(0..world.gone_conversations.len())].clone()
        }
        _ => Uuid::new_v4().to_string(),
    }
}

/// One conversation operation against the model: the runtime's start and append, a
/// member's list, search, read and delete. `Err` names a divergence.
async fn conversation_step(
    app: &TestApp,
    world: &mut World,
    rng: &mut StdRng,
) -> Result<(), String> {
    let w = rng.random_range(0..USERS);
    let workspace_id = world.workspaces[w].id.clone();
    let live = !world.workspaces[w].deleted;
    let marker = world.workspaces[w].marker.clone();
    let user = rng.random_range(0..USERS);
    let role = world.role(user, w);
    let token = world.users[user].token.clone();
    let own = |world: &World, id: &str| {
        world
            .conversations
            .iter()
            .position(|c| c.id == id && c.workspace == w)
    };
    let (res, expected, allowed) = match rng.random_range(0..5) {
        0 => {
            // The runtime starts one with an agent: its own workspace's, or another's.
            let agents: Vec<&Item> = world.items.iter().filter(|i| i.kind == 0).collect();
            let Some(agent) =
                (!agents.is_empty()).then(|| agents[rng.random_range(0..agents.len())].clone())
            else {
                return Ok(());
            };
            world.serial += 1;
            let res = app
                .gql(
                    Some(crate::usage::SERVICE_TOKEN),
                    "mutation($ws: ID!, $agent: ID!, $ext: String!) { startConversation(workspaceId: $ws, input: {
                       externalId: $ext, agentId: $agent, channel: WEB_CHAT, contact: { email: \"v@example.com\" } }) { id agent { name } contact { id } } }",
                    json!({ "ws": workspace_id, "agent": agent.id, "ext": format!("c{}", world.serial) }),
                )
                .await;
            let expected = match (live, agent.workspace == w) {
                (false, _) => Some("NOT_FOUND"),
                (true, false) => Some("BAD_USER_INPUT"),
                (true, true) => None,
            };
            if expected.is_none() && res.code().is_none() {
                let started = &res.body["data"]["startConversation"];
                let id = started["id"].as_str().unwrap_or_default();
                world.conversations.push(Conversation {
                    id: id.to_owned(),
                    workspace: w,
                    messages: 0,
                });
                // The runtime's address made a contact, nobody's (only Admins delete it).
                let contact = started["contact"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                if !world.items.iter().any(|i| i.id == contact) {
                    world.items.push(Item {
                        id: contact,
                        kind: 1,
                        workspace: w,
                        creator: usize::MAX,
                    });
                }
            }
            (res, expected, Some(w))
        }
        1 => {
            let id = pick_conversation(world, rng, w);
            world.serial += 1;
            let res = app
                .gql(
                    Some(crate::usage::SERVICE_TOKEN),
                    "mutation($ws: ID!, $c: ID!, $m: [MessageInput!]!) { appendMessages(workspaceId: $ws, conversationId: $c, messages: $m) { conversation { messageCount } } }",
                    json!({ "ws": workspace_id, "c": id, "m": [{ "externalId": format!("m{}", world.serial),
                        "direction": "INBOUND", "text": format!("{marker} asks"), "sentAt": "2026-12-01T10:00:00Z" }] }),
                )
                .await;
            let found = own(world, &id);
            let expected = if live && found.is_some() {
                None
            } else {
                Some("NOT_FOUND")
            };
            if let (None, Some(i)) = (res.code(), found) {
                world.conversations[i].messages += 1;
            }
            (res, expected, Some(w))
        }
        2 => {
            // A member lists or searches (for this workspace's marker or another's).
            let other = &world.workspaces[rng.random_range(0..USERS)].marker;
            let search = rng.random_bool(0.5).then(|| other.clone());
            let res = app
                .gql(
                    Some(&token),
                    "query($ws: ID!, $f: ConversationFilter) { workspace(id: $ws) { conversations(first: 100, filter: $f) { totalCount edges { node { id snippet messages(first: 3) { edges { node { text } } } } } } } }",
                    json!({ "ws": workspace_id, "f": { "search": search } }),
                )
                .await;
            let expected = if role.is_some() {
                None
            } else {
                Some("NOT_FOUND")
            };
            if expected.is_none() && res.code().is_none() {
                let with_messages = world
                    .conversations
                    .iter()
                    .filter(|c| c.workspace == w && c.messages > 0)
                    .count();
                let all = world
                    .conversations
                    .iter()
                    .filter(|c| c.workspace == w)
                    .count();
                let want = match &search {
                    Some(m) if *m == marker => with_messages,
                    Some(_) => 0,
                    None => all,
                };
                let got = res.body["data"]["workspace"]["conversations"]["totalCount"].as_u64();
                if got != Some(want as u64) {
                    return Err(format!(
                        "conversations of {w} (search {search:?}): expected {want}, got {}",
                        res.body
                    ));
                }
            }
            (res, expected, Some(w))
        }
        3 => {
            let id = pick_conversation(world, rng, w);
            let res = app
                .gql(
                    Some(&token),
                    "query($ws: ID!, $id: ID!) { workspace(id: $ws) { conversation(id: $id) { id messages { totalCount edges { node { text } } } } } }",
                    json!({ "ws": workspace_id, "id": id }),
                )
                .await;
            let expected = if role.is_some() {
                None
            } else {
                Some("NOT_FOUND")
            };
            if expected.is_none() && res.code().is_none() {
                let read = &res.body["data"]["workspace"]["conversation"];
                if read.is_null() != own(world, &id).is_none() {
                    return Err(format!("conversation {id} in {w}: {}", res.body));
                }
            }
            (res, expected, Some(w))
        }
        _ => {
            let id = pick_conversation(world, rng, w);
            let res = app
                .gql(
                    Some(&token),
                    "mutation($ws: ID!, $id: ID!) { deleteConversation(workspaceId: $ws, id: $id) }",
                    json!({ "ws": workspace_id, "id": id }),
                )
                .await;
            let found = own(world, &id);
            let expected = match role {
                None => Some("NOT_FOUND"),
                Some(r) if r < Role::Admin => Some("FORBIDDEN"),
                Some(_) if found.is_none() => Some("NOT_FOUND"),
                Some(_) => None,
            };
            if let (None, Some(i)) = (res.code(), found) {
                let gone = world.conversations.remove(i);
                world.gone_conversations.push(gone.id);
            }
            (res, expected, Some(w))
        }
    };
    if res.code() != expected {
        return Err(format!(
            "expected {expected:?}, got {:?}: {}",
            res.code(),
            res.body
        ));
    }
    markers_ok(
        world,
        if res.code().is_none() { allowed } else { None },
        &res.body,
    )
}

async fn run(app_for_world: impl Fn() -> crate::harness::TestAppBuilder, seeds: [u64; 4]) {
    let apps = futures::future::join_all(seeds.iter().map(|_| app_for_world().start())).await;
    let runs = apps
        .iter()
        .zip(seeds)
        .map(|(app, seed)| run_world(app, seed));
    let divergences: Vec<String> = futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert!(
        divergences.is_empty(),
        "{} divergences:\n{}",
        divergences.len(),
        divergences.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_operations_match_the_model_and_never_cross_tenants() {
    run(TestApp::builder, [1, 2, 3, 4]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_level_security_alone_keeps_tenants_apart() {
    // The switch is compiled only with the `rls-proof` feature, which the tests' dev-
    // dependency on this crate turns on; without it this run would prove nothing.
    const {
        assert!(
            cfg!(feature = "rls-proof"),
            "built without the rls-proof switch"
        );
    }
    run(
        || TestApp::builder().without_app_filter_for("contact"),
        [5, 6, 7, 8],
    )
    .await;
}

/// A kind added to the product must join the isolation run, or this fails.
#[test]
fn the_isolation_run_covers_every_resource_kind() {
    let listed: Vec<&str> = KINDS.iter().map(|spec| spec.name).collect();
    let product: Vec<String> = linkai::resources::kinds::KINDS
        .iter()
        .map(|kind| crate::audit::pascal_case(kind))
        .collect();
    assert_eq!(listed, product);
}
