//! Listing members, changing roles, removing members and transferring ownership.

use diesel_async::{AsyncConnection, RunQueryDsl};
use serde_json::{json, Value};

use crate::harness::{Team, TestApp};

const MEMBERS: &str = "query($id: ID!, $first: Int, $after: String) {
  workspace(id: $id) { members(first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { role joinedAt user { id email name activeWorkspace { id } } } }
  } }
}";
const CHANGE_ROLE: &str = "mutation($ws: ID!, $user: ID!, $role: Role!) {
  changeMemberRole(workspaceId: $ws, userId: $user, role: $role) { role user { id } }
}";
const REMOVE: &str =
    "mutation($ws: ID!, $user: ID!) { removeMember(workspaceId: $ws, userId: $user) }";
const TRANSFER: &str = "mutation($ws: ID!, $user: ID!) {
  transferOwnership(workspaceId: $ws, userId: $user) { id viewerRole }
}";

fn role_of<'a>(roles: &'a [(String, String)], user_id: &str) -> Option<&'a str> {
    roles
        .iter()
        .find(|(id, _)| id == user_id)
        .map(|(_, role)| role.as_str())
}

async fn members(app: &TestApp, team: &Team, first: Option<i64>, after: Option<&str>) -> Value {
    app.gql(
        team.viewer.token(),
        MEMBERS,
        json!({ "id": team.workspace, "first": first, "after": after }),
    )
    .await
    .data("workspace")["members"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_lists_members_page_by_page() {
    let app = TestApp::new().await;
    let team = app.team().await;
    let all = members(&app, &team, None, None).await;
    assert_eq!(all["totalCount"], 4);
    let roles: Vec<&str> = all["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["role"].as_str().expect("role"))
        .collect();
    assert_eq!(roles, ["OWNER", "ADMIN", "MEMBER", "VIEWER"]);
    assert_eq!(
        all["edges"][1]["node"]["user"]["email"],
        team.admin.email.as_str()
    );
    // Another user's last-used workspace is theirs to know.
    assert!(all["edges"][0]["node"]["user"]["activeWorkspace"].is_null());

    let first = members(&app, &team, Some(3), None).await;
    assert_eq!(first["edges"].as_array().expect("edges").len(), 3);
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    let cursor = first["pageInfo"]["endCursor"].as_str().expect("cursor");
    let rest = members(&app, &team, Some(3), Some(cursor)).await;
    assert_eq!(rest["edges"].as_array().expect("edges").len(), 1);
    assert_eq!(
        rest["edges"][0]["node"]["user"]["id"],
        team.viewer.id.as_str()
    );
    assert_eq!(rest["pageInfo"]["hasNextPage"], false);
    assert_eq!(rest["totalCount"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_sizes_over_100_and_foreign_cursors_are_bad_input() {
    let app = TestApp::new().await;
    let team = app.team().await;
    for (first, after) in [
        (Some(101), None),
        (Some(-1), None),
        (Some(5), Some("bm90LWEtY3Vyc29y")),
    ] {
        app.gql(
            team.owner.token(),
            MEMBERS,
            json!({ "id": team.workspace, "first": first, "after": after }),
        )
        .await
        .assert_code("BAD_USER_INPUT");
    }
    let ok = members(&app, &team, Some(100), None).await;
    assert_eq!(ok["totalCount"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_changes_roles_and_promoting_to_owner_transfers_ownership() {
    let app = TestApp::new().await;
    let team = app.team().await;
    let res = app
        .gql(
            team.owner.token(),
            CHANGE_ROLE,
            json!({ "ws": team.workspace, "user": team.viewer.id, "role": "MEMBER" }),
        )
        .await;
    assert_eq!(res.data("changeMemberRole")["role"], "MEMBER");
    let roles = app.roles_in(&team.workspace).await;
    assert_eq!(role_of(&roles, &team.viewer.id), Some("member"));

    app.gql(
        team.owner.token(),
        CHANGE_ROLE,
        json!({ "ws": team.workspace, "user": team.stranger.id, "role": "ADMIN" }),
    )
    .await
    .assert_code("NOT_FOUND");
    let demote_self = app
        .gql(
            team.owner.token(),
            CHANGE_ROLE,
            json!({ "ws": team.workspace, "user": team.owner.id, "role": "ADMIN" }),
        )
        .await;
    demote_self.assert_code("FORBIDDEN");

    let res = app
        .gql(
            team.owner.token(),
            CHANGE_ROLE,
            json!({ "ws": team.workspace, "user": team.member.id, "role": "OWNER" }),
        )
        .await;
    assert_eq!(res.data("changeMemberRole")["role"], "OWNER");
    let roles = app.roles_in(&team.workspace).await;
    assert_eq!(role_of(&roles, &team.member.id), Some("owner"));
    assert_eq!(role_of(&roles, &team.owner.id), Some("admin"));
    assert_eq!(roles.iter().filter(|(_, r)| r == "owner").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_makes_the_old_owner_an_admin_atomically() {
    let app = TestApp::new().await;
    let team = app.team().await;
    let res = app
        .gql(
            team.owner.token(),
            TRANSFER,
            json!({ "ws": team.workspace, "user": team.admin.id }),
        )
        .await;
    assert_eq!(res.data("transferOwnership")["viewerRole"], "ADMIN");
    let roles = app.roles_in(&team.workspace).await;
    assert_eq!(role_of(&roles, &team.admin.id), Some("owner"));
    assert_eq!(role_of(&roles, &team.owner.id), Some("admin"));

    // The old owner has lost the owner's powers; the new one has them.
    app.gql(
        team.owner.token(),
        TRANSFER,
        json!({ "ws": team.workspace, "user": team.owner.id }),
    )
    .await
    .assert_code("FORBIDDEN");
    app.gql(
        team.admin.token(),
        TRANSFER,
        json!({ "ws": team.workspace, "user": team.admin.id }),
    )
    .await
    .assert_code("BAD_USER_INPUT");
    app.gql(
        team.admin.token(),
        TRANSFER,
        json!({ "ws": team.workspace, "user": team.stranger.id }),
    )
    .await
    .assert_code("NOT_FOUND");
    let leave = "mutation($id: ID!) { leaveWorkspace(workspaceId: $id) }";
    let res = app
        .gql(team.owner.token(), leave, json!({ "id": team.workspace }))
        .await;
    assert_eq!(res.data("leaveWorkspace"), true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_remove_members_but_nobody_removes_the_owner() {
    let app = TestApp::new().await;
    let team = app.team().await;
    let second_admin = app.sign_up("Second").await;
    app.add_member(&team.workspace, &second_admin, "admin")
        .await;

    let res = app
        .gql(
            team.admin.token(),
            REMOVE,
            json!({ "ws": team.workspace, "user": team.member.id }),
        )
        .await;
    assert_eq!(res.data("removeMember"), true);
    app.gql(
        team.member.token(),
        MEMBERS,
        json!({ "id": team.workspace }),
    )
    .await
    .assert_code("NOT_FOUND");
    let res = app
        .gql(
            team.admin.token(),
            REMOVE,
            json!({ "ws": team.workspace, "user": second_admin.id }),
        )
        .await;
    assert_eq!(res.data("removeMember"), true);

    for remover in [&team.owner, &team.admin] {
        app.gql(
            remover.token(),
            REMOVE,
            json!({ "ws": team.workspace, "user": team.owner.id }),
        )
        .await
        .assert_code("FORBIDDEN");
    }
    app.gql(
        team.admin.token(),
        REMOVE,
        json!({ "ws": team.workspace, "user": team.stranger.id }),
    )
    .await
    .assert_code("NOT_FOUND");
    let roles = app.roles_in(&team.workspace).await;
    assert_eq!(roles.len(), 3);
    assert_eq!(role_of(&roles, &team.owner.id), Some("owner"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_itself_refuses_zero_or_two_owners() {
    let app = TestApp::new().await;
    let team = app.team().await;
    let mut conn = app.db.conn().await;
    let ws = team.workspace.clone();
    let second_owner = diesel::sql_query(format!(
        "UPDATE memberships SET role = 'owner' WHERE workspace_id = '{ws}' AND user_id = '{}'",
        team.admin.id
    ))
    .execute(&mut conn)
    .await;
    assert!(second_owner.is_err(), "a second owner must be refused");

    let owner_id = team.owner.id.clone();
    let no_owner = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            diesel::sql_query(format!(
                "UPDATE memberships SET role = 'admin' WHERE workspace_id = '{ws}' AND user_id = '{owner_id}'"
            ))
            .execute(conn)
            .await?;
            Ok(())
        })
        .await;
    let err = no_owner.expect_err("zero owners must be refused at commit");
    assert!(err.to_string().contains("exactly one owner"), "{err}");
    let delete_owner = diesel::sql_query(format!(
        "DELETE FROM memberships WHERE workspace_id = '{ws}' AND user_id = '{owner_id}'"
    ))
    .execute(&mut conn)
    .await;
    assert!(delete_owner.is_err());
    let roles = app.roles_in(&team.workspace).await;
    assert_eq!(role_of(&roles, &team.owner.id), Some("owner"));
}
