//! Creating, listing, switching, renaming, deleting and leaving workspaces.

use diesel_async::RunQueryDsl;
use serde_json::json;
use uuid::Uuid;

use crate::harness::TestApp;

const WORKSPACE: &str = "query($id: ID!) { workspace(id: $id) { id name viewerRole } }";
const LIST: &str = "{ workspaces { id name viewerRole } }";
const ACTIVE: &str = "{ me { activeWorkspace { id } } }";

fn ids(list: &serde_json::Value) -> Vec<&str> {
    list.as_array()
        .expect("list")
        .iter()
        .map(|w| w["id"].as_str().expect("id"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_workspaces_have_their_own_trial_and_list_alongside_the_first() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let res = app
        .gql(
            ada.token(),
            "mutation { createWorkspace(name: \"  Client Co  \") { id name viewerRole billingStatus trialEndsAt } }",
            json!({}),
        )
        .await;
    let created = res.data("createWorkspace").clone();
    assert_eq!(created["name"], "Client Co");
    assert_eq!(created["viewerRole"], "OWNER");
    assert_eq!(created["billingStatus"], "TRIALING");
    let list = app.gql(ada.token(), LIST, json!({})).await;
    assert_eq!(
        ids(list.data("workspaces")),
        [
            ada.own_workspace.as_str(),
            created["id"].as_str().expect("id")
        ]
    );

    for bad in ["", "   ", &"x".repeat(101)] {
        app.gql(
            ada.token(),
            "mutation($n: String!) { createWorkspace(name: $n) { id } }",
            json!({ "n": bad }),
        )
        .await
        .assert_code("BAD_USER_INPUT");
    }
    assert_eq!(
        ids(app
            .gql(ada.token(), LIST, json!({}))
            .await
            .data("workspaces"))
        .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_workspace_is_indistinguishable_from_a_missing_one() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let bob = app.sign_up("Bob").await;
    let foreign = app
        .gql(bob.token(), WORKSPACE, json!({ "id": ada.own_workspace }))
        .await;
    let missing = app
        .gql(bob.token(), WORKSPACE, json!({ "id": Uuid::new_v4() }))
        .await;
    foreign.assert_code("NOT_FOUND");
    assert_eq!(
        foreign.body["errors"][0]["message"],
        missing.body["errors"][0]["message"]
    );
    assert!(!foreign.body.to_string().contains("Ada"));
    app.gql(bob.token(), WORKSPACE, json!({ "id": "not-a-uuid" }))
        .await
        .assert_code("BAD_USER_INPUT");
    assert_eq!(
        ids(app
            .gql(bob.token(), LIST, json!({}))
            .await
            .data("workspaces")),
        [bob.own_workspace.as_str()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_active_workspace_is_remembered_per_user() {
    let app = TestApp::new().await;
    let ada = app.sign_up("Ada").await;
    let bob = app.sign_up("Bob").await;
    let second = app
        .gql(
            ada.token(),
            "mutation { createWorkspace(name: \"Second\") { id } }",
            json!({}),
        )
        .await
        .data("createWorkspace")["id"]
        .clone();
    let switch = "mutation($id: ID!) { switchWorkspace(workspaceId: $id) { id name } }";
    let res = app.gql(ada.token(), switch, json!({ "id": second })).await;
    assert_eq!(res.data("switchWorkspace")["name"], "Second");
    assert_eq!(
        app.gql(ada.token(), ACTIVE, json!({})).await.data("me")["activeWorkspace"]["id"],
        second
    );

    app.gql(ada.token(), switch, json!({ "id": bob.own_workspace }))
        .await
        .assert_code("NOT_FOUND");
    assert_eq!(
        app.gql(ada.token(), ACTIVE, json!({})).await.data("me")["activeWorkspace"]["id"],
        second
    );
    // Bob's own choice is untouched.
    let bob_active = app.gql(bob.token(), ACTIVE, json!({})).await;
    assert_eq!(
        bob_active.data("me")["activeWorkspace"]["id"],
        bob.own_workspace.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_rename_with_the_same_name_rules() {
    let app = TestApp::new().await;
    let team = app.team().await;
    let rename = "mutation($id: ID!, $name: String!) { renameWorkspace(workspaceId: $id, name: $name) { id name } }";
    let res = app
        .gql(
            team.admin.token(),
            rename,
            json!({ "id": team.workspace, "name": " Renamed " }),
        )
        .await;
    assert_eq!(res.data("renameWorkspace")["name"], "Renamed");
    let seen = app
        .gql(
            team.viewer.token(),
            WORKSPACE,
            json!({ "id": team.workspace }),
        )
        .await;
    assert_eq!(seen.data("workspace")["name"], "Renamed");
    app.gql(
        team.owner.token(),
        rename,
        json!({ "id": team.workspace, "name": "" }),
    )
    .await
    .assert_code("BAD_USER_INPUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_workspaces_vanish_for_everyone_at_once_but_their_rows_stay() {
    let app = TestApp::new().await;
    let team = app.team().await;
    let switch = "mutation($id: ID!) { switchWorkspace(workspaceId: $id) { id } }";
    app.gql(team.member.token(), switch, json!({ "id": team.workspace }))
        .await
        .data("switchWorkspace");

    let delete = "mutation($id: ID!) { deleteWorkspace(workspaceId: $id) }";
    let res = app
        .gql(team.owner.token(), delete, json!({ "id": team.workspace }))
        .await;
    assert_eq!(res.data("deleteWorkspace"), true);

    for actor in [&team.owner, &team.admin, &team.member, &team.viewer] {
        let list = app.gql(actor.token(), LIST, json!({})).await;
        assert!(!ids(list.data("workspaces")).contains(&team.workspace.as_str()));
        app.gql(actor.token(), WORKSPACE, json!({ "id": team.workspace }))
            .await
            .assert_code("NOT_FOUND");
    }
    let active = app.gql(team.member.token(), ACTIVE, json!({})).await;
    assert!(active.data("me")["activeWorkspace"].is_null());
    app.gql(team.owner.token(), delete, json!({ "id": team.workspace }))
        .await
        .assert_code("NOT_FOUND");

    #[derive(diesel::QueryableByName)]
    struct Kept {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        members: i64,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        deleted: bool,
    }
    let mut conn = app.db.conn().await;
    let kept: Kept = diesel::sql_query(format!(
        "SELECT (SELECT count(*) FROM memberships WHERE workspace_id = w.id) AS members,
                deleted_at IS NOT NULL AS deleted
         FROM workspaces w WHERE id = '{}'",
        team.workspace
    ))
    .get_result(&mut conn)
    .await
    .expect("row kept");
    assert!(kept.deleted);
    assert_eq!(kept.members, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_leave_keeping_the_data_and_the_owner_cannot_leave() {
    let app = TestApp::new().await;
    let team = app.team().await;
    let leave = "mutation($id: ID!) { leaveWorkspace(workspaceId: $id) }";
    let switch = "mutation($id: ID!) { switchWorkspace(workspaceId: $id) { id } }";
    app.gql(team.member.token(), switch, json!({ "id": team.workspace }))
        .await
        .data("switchWorkspace");

    let res = app
        .gql(team.member.token(), leave, json!({ "id": team.workspace }))
        .await;
    assert_eq!(res.data("leaveWorkspace"), true);
    let list = app.gql(team.member.token(), LIST, json!({})).await;
    assert_eq!(
        ids(list.data("workspaces")),
        [team.member.own_workspace.as_str()]
    );
    let active = app.gql(team.member.token(), ACTIVE, json!({})).await;
    assert!(active.data("me")["activeWorkspace"].is_null());
    app.gql(team.member.token(), leave, json!({ "id": team.workspace }))
        .await
        .assert_code("NOT_FOUND");

    let owner_leaves = app
        .gql(team.owner.token(), leave, json!({ "id": team.workspace }))
        .await;
    owner_leaves.assert_code("FORBIDDEN");
    assert!(owner_leaves.message().contains("transfer ownership"));
    let roles = app.roles_in(&team.workspace).await;
    assert_eq!(roles.len(), 3);
    assert!(roles.contains(&(team.owner.id.clone(), "owner".into())));
    let still = app
        .gql(
            team.viewer.token(),
            WORKSPACE,
            json!({ "id": team.workspace }),
        )
        .await;
    assert_eq!(still.data("workspace")["id"], team.workspace.as_str());
}
