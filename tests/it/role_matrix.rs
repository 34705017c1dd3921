//! Every workspace-scoped operation run as Owner, Admin, Member, Viewer, a non-member and
//! anonymously, against DESIGN.md's role table. Denied calls must change nothing.

use serde_json::{json, Value};

use crate::harness::{Actor, Team, TestApp};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Who {
    Owner,
    Admin,
    Member,
    Viewer,
    Stranger,
    Anonymous,
}

const EVERYONE: [Who; 6] = [
    Who::Owner,
    Who::Admin,
    Who::Member,
    Who::Viewer,
    Who::Stranger,
    Who::Anonymous,
];

/// What the table says: `None` allowed, else the error code.
type Expect = [Option<&'static str>; 6];

const OK: Option<&str> = None;
const FORBIDDEN: Option<&str> = Some("FORBIDDEN");
const NOT_FOUND: Option<&str> = Some("NOT_FOUND");
const UNAUTH: Option<&str> = Some("UNAUTHENTICATED");

const OWNER_ONLY: Expect = [OK, FORBIDDEN, FORBIDDEN, FORBIDDEN, NOT_FOUND, UNAUTH];
const ADMINS: Expect = [OK, OK, FORBIDDEN, FORBIDDEN, NOT_FOUND, UNAUTH];
const MEMBERS: Expect = [OK, OK, OK, OK, NOT_FOUND, UNAUTH];
/// Allowed for Owners and Admins, who then hear that this server has no Stripe.
const BILLING_ADMINS: Expect = [
    Some("BILLING_NOT_CONFIGURED"),
    Some("BILLING_NOT_CONFIGURED"),
    FORBIDDEN,
    FORBIDDEN,
    NOT_FOUND,
    UNAUTH,
];
const ALL_BUT_OWNER: Expect = [FORBIDDEN, OK, OK, OK, NOT_FOUND, UNAUTH];

struct Case {
    name: &'static str,
    /// Set when the field carries `@requireRole`; must match the schema.
    guarded: bool,
    query: &'static str,
    expect: Expect,
}

const CASES: &[Case] = &[
    Case {
        name: "renameWorkspace",
        guarded: true,
        query: "mutation($ws: ID!) { renameWorkspace(workspaceId: $ws, name: \"Renamed\") { id } }",
        expect: ADMINS,
    },
    Case {
        name: "exportWorkspace",
        guarded: true,
        query: "mutation($ws: ID!) { exportWorkspace(workspaceId: $ws) }",
        expect: OWNER_ONLY,
    },
    Case {
        name: "deleteWorkspace",
        guarded: true,
        query: "mutation($ws: ID!) { deleteWorkspace(workspaceId: $ws) }",
        expect: OWNER_ONLY,
    },
    Case {
        name: "changeMemberRole",
        guarded: true,
        query: "mutation($ws: ID!, $target: ID!) { changeMemberRole(workspaceId: $ws, userId: $target, role: ADMIN) { role } }",
        expect: OWNER_ONLY,
    },
    Case {
        name: "removeMember",
        guarded: true,
        query: "mutation($ws: ID!, $target: ID!) { removeMember(workspaceId: $ws, userId: $target) }",
        expect: ADMINS,
    },
    Case {
        name: "transferOwnership",
        guarded: true,
        query: "mutation($ws: ID!, $target: ID!) { transferOwnership(workspaceId: $ws, userId: $target) { id } }",
        expect: OWNER_ONLY,
    },
    Case {
        name: "inviteMember",
        guarded: true,
        query: "mutation($ws: ID!) { inviteMember(workspaceId: $ws, email: \"newcomer@example.com\", role: MEMBER) { id } }",
        expect: ADMINS,
    },
    Case {
        name: "resendInvitation",
        guarded: true,
        query: "mutation($ws: ID!, $inv: ID!) { resendInvitation(workspaceId: $ws, invitationId: $inv) { id } }",
        expect: ADMINS,
    },
    Case {
        name: "revokeInvitation",
        guarded: true,
        query: "mutation($ws: ID!, $inv: ID!) { revokeInvitation(workspaceId: $ws, invitationId: $inv) { id } }",
        expect: ADMINS,
    },
    Case {
        name: "workspace.invitations",
        guarded: false,
        query: "query($ws: ID!) { workspace(id: $ws) { invitations { totalCount } } }",
        expect: ADMINS,
    },
    Case {
        name: "createSetupIntent",
        guarded: true,
        query: "mutation($ws: ID!) { createSetupIntent(workspaceId: $ws) { clientSecret } }",
        expect: BILLING_ADMINS,
    },
    Case {
        name: "setDefaultPaymentMethod",
        guarded: true,
        query: "mutation($ws: ID!) { setDefaultPaymentMethod(workspaceId: $ws, paymentMethodId: \"pm_x\") { status } }",
        expect: BILLING_ADMINS,
    },
    Case {
        name: "selectPlan",
        guarded: true,
        query: "mutation($ws: ID!) { selectPlan(workspaceId: $ws, plan: GROWTH) { billing { status } } }",
        expect: BILLING_ADMINS,
    },
    Case {
        name: "cancelSubscription",
        guarded: true,
        query: "mutation($ws: ID!) { cancelSubscription(workspaceId: $ws) { status } }",
        expect: BILLING_ADMINS,
    },
    Case {
        name: "resumeSubscription",
        guarded: true,
        query: "mutation($ws: ID!) { resumeSubscription(workspaceId: $ws) { status } }",
        expect: BILLING_ADMINS,
    },
    Case {
        name: "removePaymentMethod",
        guarded: true,
        query: "mutation($ws: ID!) { removePaymentMethod(workspaceId: $ws, paymentMethodId: \"pm_x\") { status } }",
        expect: BILLING_ADMINS,
    },
    Case {
        name: "updateBillingDetails",
        guarded: true,
        query: "mutation($ws: ID!) { updateBillingDetails(workspaceId: $ws, details: { companyName: \"Acme\" }) { status } }",
        expect: BILLING_ADMINS,
    },
    Case {
        name: "workspace.billing",
        guarded: false,
        query: "query($ws: ID!) { workspace(id: $ws) { billing { status } } }",
        expect: ADMINS,
    },
    Case {
        name: "switchWorkspace",
        guarded: false,
        query: "mutation($ws: ID!) { switchWorkspace(workspaceId: $ws) { id } }",
        expect: MEMBERS,
    },
    Case {
        name: "leaveWorkspace",
        guarded: false,
        query: "mutation($ws: ID!) { leaveWorkspace(workspaceId: $ws) }",
        expect: ALL_BUT_OWNER,
    },
    Case {
        name: "workspace.members",
        guarded: false,
        query: "query($ws: ID!) { workspace(id: $ws) { members { totalCount } } }",
        expect: MEMBERS,
    },
    Case {
        name: "workspace.conversations",
        guarded: false,
        query: "query($ws: ID!) { workspace(id: $ws) { conversations(filter: { search: \"hello\" }) { totalCount } } }",
        expect: MEMBERS,
    },
    Case {
        name: "workspace.conversation.messages",
        guarded: false,
        query: "query($ws: ID!, $conv: ID!) { workspace(id: $ws) { conversation(id: $conv) { messages { totalCount } } } }",
        expect: MEMBERS,
    },
    Case {
        name: "workspace.analytics",
        guarded: false,
        query: "query($ws: ID!) { workspace(id: $ws) { analytics(since: \"2026-11-01T00:00:00Z\", until: \"2026-11-08T00:00:00Z\") { totals { messagesIn } usage { messages } } } }",
        expect: MEMBERS,
    },
    Case {
        name: "updateWorkspaceSettings",
        guarded: true,
        query: "mutation($ws: ID!) { updateWorkspaceSettings(workspaceId: $ws, input: { timeZone: \"Asia/Kolkata\", conversationRetentionDays: 30 }) { timeZone } }",
        expect: ADMINS,
    },
    Case {
        name: "deleteConversation",
        guarded: true,
        query: "mutation($ws: ID!, $conv: ID!) { deleteConversation(workspaceId: $ws, id: $conv) }",
        expect: ADMINS,
    },
];

/// A conversation in the team's workspace, written as the agent runtime writes one.
async fn conversation(app: &TestApp, team: &Team) -> String {
    let agent = app
        .gql(
            team.owner.token(),
            "mutation($ws: ID!) { createAgent(workspaceId: $ws, input: { name: \"Bot\" }) { id } }",
            json!({ "ws": team.workspace }),
        )
        .await
        .data("createAgent")["id"]
        .clone();
    let started = app
        .gql(
            Some(crate::usage::SERVICE_TOKEN),
            "mutation($ws: ID!, $agent: ID!) { startConversation(workspaceId: $ws, input: {
               externalId: \"chat-1\", agentId: $agent, channel: WEB_CHAT,
               contact: { email: \"visitor@example.com\" } }) { id } }",
            json!({ "ws": team.workspace, "agent": agent }),
        )
        .await;
    started.data("startConversation")["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

fn actor(team: &Team, who: Who) -> Option<&Actor> {
    match who {
        Who::Owner => Some(&team.owner),
        Who::Admin => Some(&team.admin),
        Who::Member => Some(&team.member),
        Who::Viewer => Some(&team.viewer),
        Who::Stranger => Some(&team.stranger),
        Who::Anonymous => None,
    }
}

/// What a denied call must leave as it was.
async fn snapshot(app: &TestApp, team: &Team) -> Value {
    let workspace = app
        .gql(
            team.owner.token(),
            "query($ws: ID!) { workspace(id: $ws) { name timeZone conversationRetentionDays } }",
            json!({ "ws": team.workspace }),
        )
        .await
        .answer();
    let invitations = app
        .gql(
            team.owner.token(),
            "query($ws: ID!) { workspace(id: $ws) { invitations { edges { node { id status email expiresAt } } } } }",
            json!({ "ws": team.workspace }),
        )
        .await
        .answer();
    let conversations = app
        .gql(
            team.owner.token(),
            "query($ws: ID!) { workspace(id: $ws) { conversations { edges { node { id } } } } }",
            json!({ "ws": team.workspace }),
        )
        .await
        .answer();
    json!({ "workspace": workspace, "roles": app.roles_in(&team.workspace).await,
            "invitations": invitations, "conversations": conversations })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workspace_operation_follows_the_role_table() {
    let app = TestApp::new().await;
    let failures = workspace_operations(&app, &EVERYONE).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Runs every workspace-scoped operation as each of `whom`, and answers where the role
/// table was not followed (tests/it/plans.rs runs them too, for their statements).
pub async fn workspace_operations(app: &TestApp, whom: &[Who]) -> Vec<String> {
    let mut failures = Vec::new();
    for case in CASES {
        for (who, expected) in EVERYONE.into_iter().zip(case.expect) {
            if !whom.contains(&who) {
                continue;
            }
            // A fresh team per call: allowed calls change roles and membership.
            let team = app.team().await;
            let target = app.sign_up("Target").await;
            app.add_member(&team.workspace, &target, "viewer").await;
            let pending = format!("pending-{}@example.com", uuid::Uuid::new_v4().simple());
            let invitation = app
                .invite(&team.owner, &team.workspace, &pending, "VIEWER")
                .await;
            let conv = match case.query.contains("$conv") {
                true => conversation(app, &team).await,
                false => String::new(),
            };
            let before = snapshot(app, &team).await;
            let vars = json!({ "ws": team.workspace, "target": target.id, "inv": invitation, "conv": conv });
            let vars = match case.query.contains("$conv") {
                true => vars,
                false => json!({ "ws": vars["ws"], "target": vars["target"], "inv": vars["inv"] }),
            };
            let res = app
                .gql(
                    actor(&team, who).map(|a| a.token.as_str()),
                    case.query,
                    vars,
                )
                .await;
            let got = res.code();
            if got != expected {
                failures.push(format!(
                    "{} as {who:?}: expected {expected:?}, got {got:?} ({})",
                    case.name, res.body
                ));
            }
            if expected.is_some() && snapshot(app, &team).await != before {
                failures.push(format!(
                    "{} as {who:?} was denied but changed state",
                    case.name
                ));
            }
        }
    }
    failures
}

/// Per kind: its name in mutations, and a valid input.
pub const KINDS: [(&str, &str); 7] = [
    (
        "Agent",
        "{ name: \"Support bot\", description: \"Answers FAQs\" }",
    ),
    (
        "Contact",
        "{ name: \"Pat\", email: \"pat@example.com\", phone: \"+14155550100\" }",
    ),
    ("KnowledgeBase", "{ name: \"Docs\" }"),
    (
        "Form",
        "{ name: \"Lead\", fields: [{ label: \"Email\", type: EMAIL, required: true }] }",
    ),
    (
        "PhoneNumber",
        "{ name: \"Main line\", number: \"+14155550123\" }",
    ),
    (
        "Calendar",
        "{ name: \"Sales\", timeZone: \"Europe/Paris\" }",
    ),
    ("Integration", "{ name: \"Slack\", provider: SLACK }"),
];

const WRITERS: Expect = [OK, OK, OK, FORBIDDEN, NOT_FOUND, UNAUTH];
/// Deleting an item someone else (the Owner) created.
const DELETE_OTHERS: Expect = [OK, OK, FORBIDDEN, FORBIDDEN, NOT_FOUND, UNAUTH];

fn lower_first(kind: &str) -> String {
    let mut chars = kind.chars();
    chars
        .next()
        .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// Resource writes don't change who is who, so one team serves every call; each call gets
/// its own target, created by the Owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_resource_operation_follows_the_role_table() {
    let app = TestApp::new().await;
    let failures = resource_operations(&app, &EVERYONE).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Runs every resource operation of every kind as each of `whom`, and answers where the
/// role table was not followed.
pub async fn resource_operations(app: &TestApp, whom: &[Who]) -> Vec<String> {
    let team = app.team().await;
    let mut failures = Vec::new();
    for (kind, input) in KINDS {
        let list = format!(
            "query($ws: ID!) {{ workspace(id: $ws) {{ {}s {{ totalCount edges {{ node {{ id name updatedAt }} }} }} }} }}",
            lower_first(kind)
        );
        let create = format!(
            "mutation($ws: ID!) {{ create{kind}(workspaceId: $ws, input: {input}) {{ id }} }}"
        );
        let update = format!("mutation($ws: ID!, $id: ID!) {{ update{kind}(workspaceId: $ws, id: $id, input: {input}) {{ id }} }}");
        let delete =
            format!("mutation($ws: ID!, $id: ID!) {{ delete{kind}(workspaceId: $ws, id: $id) }}");
        for (op, query, expected_row) in [
            ("create", &create, WRITERS),
            ("update", &update, WRITERS),
            ("delete", &delete, DELETE_OTHERS),
        ] {
            for (who, expected) in EVERYONE.into_iter().zip(expected_row) {
                if !whom.contains(&who) {
                    continue;
                }
                if kind == "PhoneNumber" {
                    // A number is unique in a workspace: clear the way first.
                    clear_phone_numbers(app, &team).await;
                }
                let target = app
                    .gql(team.owner.token(), &create, json!({ "ws": team.workspace }))
                    .await
                    .data(&format!("create{kind}"))["id"]
                    .clone();
                if kind == "PhoneNumber" && op == "create" {
                    clear_phone_numbers(app, &team).await;
                }
                let before = app
                    .gql(team.owner.token(), &list, json!({ "ws": team.workspace }))
                    .await
                    .answer();
                let res = app
                    .gql(
                        actor(&team, who).map(|a| a.token.as_str()),
                        query,
                        json!({ "ws": team.workspace, "id": target }),
                    )
                    .await;
                if res.code() != expected {
                    failures.push(format!(
                        "{op}{kind} as {who:?}: expected {expected:?}, got {:?} ({})",
                        res.code(),
                        res.body
                    ));
                }
                let after = app
                    .gql(team.owner.token(), &list, json!({ "ws": team.workspace }))
                    .await
                    .answer();
                if expected.is_some() && before != after {
                    failures.push(format!(
                        "{op}{kind} as {who:?} was denied but changed state"
                    ));
                }
            }
        }
    }
    failures
}

async fn clear_phone_numbers(app: &TestApp, team: &Team) {
    use diesel_async::RunQueryDsl;
    let mut conn = app.db.conn().await;
    diesel::sql_query(format!(
        "DELETE FROM resources WHERE kind = 'phone_number' AND workspace_id = '{}'",
        team.workspace
    ))
    .execute(&mut conn)
    .await
    .expect("cleared");
}

#[test]
fn the_matrix_covers_every_guarded_mutation_in_the_schema() {
    let sdl = linkai::graphql::sdl();
    let guarded = crate::schema::mutations(&sdl)
        .into_iter()
        .filter(|(_, role)| role.is_some())
        .map(|(name, _)| name)
        .collect::<std::collections::BTreeSet<_>>();
    let covered =
        CASES
            .iter()
            .filter(|case| case.guarded)
            .map(|case| case.name.to_owned())
            .chain(KINDS.iter().flat_map(|(kind, _)| {
                ["create", "update", "delete"].map(|op| format!("{op}{kind}"))
            }))
            .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(guarded, covered, "add the new guarded mutations to CASES");
}

/// A kind added to the product must join this list (and through it the statement budgets'
/// run and the resources tests) with a valid input, or this fails.
#[test]
fn the_matrix_covers_every_resource_kind() {
    let listed: Vec<&str> = KINDS.iter().map(|(kind, _)| *kind).collect();
    let product: Vec<String> = linkai::resources::kinds::KINDS
        .iter()
        .map(|kind| crate::audit::pascal_case(kind))
        .collect();
    assert_eq!(listed, product);
}
