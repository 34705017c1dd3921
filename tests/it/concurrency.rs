//! Parallel transfers, role changes and departures never leave a workspace with zero or
//! two Owners, and never surface an internal error.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::harness::{Actor, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_membership_changes_keep_exactly_one_owner() {
    let app = TestApp::new().await;
    let mut workspaces: Vec<(String, Vec<Actor>)> = Vec::new();
    for w in 0..3 {
        let owner = app.sign_up(&format!("Owner{w}")).await;
        let mut people = vec![owner.clone()];
        for i in 0..5 {
            let person = app.sign_up(&format!("P{w}x{i}")).await;
            app.add_member(
                &owner.own_workspace,
                &person,
                if i % 2 == 0 { "admin" } else { "member" },
            )
            .await;
            people.push(person);
        }
        workspaces.push((owner.own_workspace.clone(), people));
    }

    let app = &app;
    let mut rng = StdRng::seed_from_u64(7);
    let mut calls = Vec::new();
    for _ in 0..150 {
        let (ws, people) = &workspaces[rng.random_range(0..workspaces.len())];
        let actor = &people[rng.random_range(0..people.len())];
        let target = &people[rng.random_range(0..people.len())];
        let (query, vars) = match rng.random_range(0..3) {
            0 => (
                "mutation($ws: ID!, $u: ID!) { transferOwnership(workspaceId: $ws, userId: $u) { id } }",
                json!({ "ws": ws, "u": target.id }),
            ),
            1 => {
                let role = ["OWNER", "ADMIN", "MEMBER", "VIEWER"][rng.random_range(0..4)];
                (
                    "mutation($ws: ID!, $u: ID!, $r: Role!) { changeMemberRole(workspaceId: $ws, userId: $u, role: $r) { role } }",
                    json!({ "ws": ws, "u": target.id, "r": role }),
                )
            }
            _ => ("mutation($ws: ID!) { leaveWorkspace(workspaceId: $ws) }", json!({ "ws": ws })),
        };
        calls.push(async move { app_call(app, actor, query, vars).await });
    }
    let results = futures::future::join_all(calls).await;
    let successes = results.iter().filter(|code| code.is_none()).count();
    assert!(
        successes > 10,
        "the test must exercise real changes, got {successes}"
    );
    for code in results.iter().flatten() {
        assert!(
            ["FORBIDDEN", "NOT_FOUND", "BAD_USER_INPUT"].contains(&code.as_str()),
            "unexpected error code {code}"
        );
    }
    for (ws, _) in &workspaces {
        let owners = app
            .roles_in(ws)
            .await
            .into_iter()
            .filter(|(_, r)| r == "owner")
            .count();
        assert_eq!(owners, 1, "workspace {ws}");
    }
}

async fn app_call(
    app: &TestApp,
    actor: &Actor,
    query: &str,
    vars: serde_json::Value,
) -> Option<String> {
    app.gql(actor.token(), query, vars)
        .await
        .code()
        .map(str::to_owned)
}
