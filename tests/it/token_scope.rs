//! A personal access token scoped to some workspaces reaches nothing else: every operation
//! that names a workspace, found by walking the published SDL, is tried with a token scoped
//! to workspace A against workspace B, where its user is an Admin, and answers NOT_FOUND
//! for the workspace, changing nothing. An operation added later is walked without a new
//! line here.

use async_graphql::parser::types::{BaseType, Type};
use serde_json::json;

use crate::harness::TestApp;
use crate::sdl::{RootField, Sdl};

/// Operations that name a workspace but are not a person's to call: their own check comes
/// first, and they are tried apart below.
const NOT_A_PERSONS: &[&str] = &[
    // The agent runtime's: a service token, never a person's (FORBIDDEN).
    "reportUsage",
    "startConversation",
    "appendMessages",
    "closeConversation",
];

/// A valid literal of type `ty`: the required fields of inputs, the first value of enums,
/// a fresh id for every ID.
fn literal(sdl: &Sdl, ty: &Type) -> String {
    let name = match &ty.base {
        BaseType::List(item) => return format!("[{}]", literal(sdl, item)),
        BaseType::Named(name) => name.as_str(),
    };
    match name {
        "ID" => format!("\"{}\"", uuid::Uuid::new_v4()),
        "String" => "\"x\"".to_owned(),
        "Int" => "1".to_owned(),
        "Float" => "1.5".to_owned(),
        "Boolean" => "true".to_owned(),
        "DateTime" => "\"2030-01-01T00:00:00Z\"".to_owned(),
        "JSON" => "{}".to_owned(),
        other if sdl.enums.contains_key(other) => sdl.enums[other][0].clone(),
        other => {
            let fields = sdl
                .inputs
                .get(other)
                .unwrap_or_else(|| panic!("no sample for the scalar {other}: add one above"));
            let given: Vec<String> = fields
                .iter()
                .filter(|(_, ty)| !ty.nullable)
                .map(|(name, ty)| format!("{name}: {}", literal(sdl, ty)))
                .collect();
            format!("{{ {} }}", given.join(", "))
        }
    }
}

/// The argument naming the workspace the operation acts in: `workspaceId`, or the `id` of
/// `workspace(id:)` itself.
fn names_workspace(field: &RootField, arg: &str) -> bool {
    arg == "workspaceId" || (field.name == "workspace" && arg == "id")
}

/// The operation calling `field` on `workspace`, every other required argument filled.
fn operation(sdl: &Sdl, field: &RootField, workspace: &str) -> String {
    let args: Vec<String> = field
        .args
        .iter()
        .filter_map(|(name, ty)| {
            let value = if names_workspace(field, name) {
                format!("\"{workspace}\"")
            } else if ty.nullable {
                return None;
            } else {
                literal(sdl, ty)
            };
            Some(format!("{name}: {value}"))
        })
        .collect();
    format!(
        "{} {{ {}({}){} }}",
        field.operation,
        field.name,
        args.join(", "),
        sdl.selection(field)
    )
}

/// Issue 27's replay: a token scoped to workspace A took its user out of workspace B with
/// `leaveWorkspace`, which skipped the scope. Now every operation naming a workspace, walked
/// from the schema, answers NOT_FOUND for B with that token, and B is as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_scoped_elsewhere_reaches_no_operation_on_a_workspace() {
    let app = TestApp::new().await;
    let xavier = app.sign_up("Xavier").await;
    let bob = app.sign_up("Bob").await;
    let theirs = bob.own_workspace.clone();
    app.add_member(&theirs, &xavier, "admin").await;
    let created = app
        .gql(
            xavier.token(),
            "mutation($ws: ID!) { createAccessToken(name: \"scoped\", workspaceIds: [$ws]) { token } }",
            json!({ "ws": xavier.own_workspace }),
        )
        .await;
    let scoped = created.data("createAccessToken")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let before = app.roles_in(&theirs).await;

    let sdl = Sdl::published();
    let mut walked = Vec::new();
    for field in &sdl.roots {
        let names_a_workspace = field.args.iter().any(|(a, _)| names_workspace(field, a));
        if !names_a_workspace || NOT_A_PERSONS.contains(&field.name.as_str()) {
            continue;
        }
        let operation = operation(&sdl, field, &theirs);
        let res = app.gql(Some(&scoped), &operation, json!({})).await;
        assert_eq!(res.code(), Some("NOT_FOUND"), "{operation}\n{:#}", res.body);
        assert!(
            res.message().starts_with("Workspace"),
            "{operation}: not the workspace's NOT_FOUND: {:#}",
            res.body
        );
        walked.push(field.name.clone());
    }
    assert!(walked.contains(&"leaveWorkspace".to_owned()));
    assert!(walked.contains(&"workspace".to_owned()));
    assert!(walked.len() >= 30, "only {walked:?}");

    for name in NOT_A_PERSONS {
        let field = sdl
            .roots
            .iter()
            .find(|f| f.name == *name)
            .expect("still in the schema");
        let res = app
            .gql(Some(&scoped), &operation(&sdl, field, &theirs), json!({}))
            .await;
        res.assert_code("FORBIDDEN");
    }

    // Nothing changed in B, and the token still works in A.
    assert_eq!(app.roles_in(&theirs).await, before);
    let me = app
        .gql(
            xavier.token(),
            "{ me { activeWorkspace { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        me.data("me")["activeWorkspace"]["id"],
        xavier.own_workspace.as_str()
    );
    let res = app
        .gql(
            Some(&scoped),
            "query($id: ID!) { workspace(id: $id) { name } }",
            json!({ "id": xavier.own_workspace }),
        )
        .await;
    assert!(res.data("workspace")["name"].is_string(), "{:#}", res.body);
}
