//! The published SDL: up to date, described, and role-annotated.

use async_graphql::parser::parse_schema;
use async_graphql::parser::types::{FieldDefinition, TypeKind, TypeSystemDefinition};

/// Mutations that carry no `@requireRole`: public, or self-service on the caller's own
/// account or membership (their checks live in the resolver and the role-matrix test).
const SELF_SERVICE_MUTATIONS: &[&str] = &[
    // The Owner's own deleted workspace: no live membership for the guard to read, so the
    // resolver checks the role (tests/it/lifecycle.rs).
    "restoreWorkspace",
    "signUp",
    "completeSignUp",
    "signIn",
    "signOut",
    "createAccessToken",
    "revokeAccessToken",
    "revokeSession",
    "changePassword",
    "deleteAccount",
    "changeEmail",
    "confirmEmailChange",
    "revokeOtherSessions",
    "createWorkspace",
    "switchWorkspace",
    "leaveWorkspace",
    "verifyEmail",
    "requestPasswordReset",
    "resendVerificationEmail",
    "resetPassword",
    "acceptInvitation",
    "declineInvitation",
    // Need a service token, not a role.
    "reportUsage",
    "startConversation",
    "appendMessages",
    "closeConversation",
];

/// Every field of every object type in the published SDL, as `(type name, field)`.
pub fn object_fields() -> Vec<(String, FieldDefinition)> {
    let doc = parse_schema(linkai::graphql::sdl()).expect("SDL parses");
    let mut fields = Vec::new();
    for definition in doc.definitions {
        let TypeSystemDefinition::Type(ty) = definition else {
            continue;
        };
        let name = ty.node.name.node.to_string();
        if let TypeKind::Object(object) = ty.node.kind {
            fields.extend(object.fields.into_iter().map(|f| (name.clone(), f.node)));
        }
    }
    fields
}

/// `(mutation name, role in its @requireRole)` for every mutation.
pub fn mutations(sdl: &str) -> Vec<(String, Option<String>)> {
    let doc = parse_schema(sdl).expect("SDL parses");
    let mut out = Vec::new();
    for definition in doc.definitions {
        let TypeSystemDefinition::Type(ty) = definition else {
            continue;
        };
        if ty.node.name.node != "Mutation" {
            continue;
        }
        let TypeKind::Object(object) = &ty.node.kind else {
            continue;
        };
        for field in &object.fields {
            let role = field
                .node
                .directives
                .iter()
                .find(|d| d.node.name.node == "requireRole")
                .and_then(|d| d.node.get_argument("role").map(|v| v.node.to_string()));
            out.push((field.node.name.node.to_string(), role));
        }
    }
    out
}

#[test]
fn schema_graphql_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let published = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = linkai::graphql::sdl();
    assert!(
        published == generated,
        "schema.graphql is out of date: run `cargo run -q -- schema > schema.graphql`"
    );
}

#[test]
fn every_mutation_declares_its_role_or_is_self_service() {
    let sdl = linkai::graphql::sdl();
    let unguarded: Vec<String> = mutations(&sdl)
        .into_iter()
        .filter(|(name, role)| role.is_none() && !SELF_SERVICE_MUTATIONS.contains(&name.as_str()))
        .map(|(name, _)| name)
        .collect();
    assert!(
        unguarded.is_empty(),
        "mutations without @requireRole: {unguarded:?}"
    );
}

#[test]
fn every_type_and_field_is_described() {
    let doc = parse_schema(linkai::graphql::sdl()).expect("SDL parses");
    let mut missing = Vec::new();
    for definition in doc.definitions {
        let TypeSystemDefinition::Type(ty) = definition else {
            continue;
        };
        let name = ty.node.name.node.to_string();
        if ty.node.description.is_none() {
            missing.push(name.clone());
        }
        match &ty.node.kind {
            TypeKind::Object(object) => {
                for field in &object.fields {
                    if field.node.description.is_none() {
                        missing.push(format!("{name}.{}", field.node.name.node));
                    }
                }
            }
            TypeKind::Enum(e) => {
                for value in &e.values {
                    if value.node.description.is_none() {
                        missing.push(format!("{name}.{}", value.node.value.node));
                    }
                }
            }
            TypeKind::InputObject(input) => {
                for field in &input.fields {
                    if field.node.description.is_none() {
                        missing.push(format!("{name}.{}", field.node.name.node));
                    }
                }
            }
            _ => {}
        }
    }
    assert!(missing.is_empty(), "undescribed: {missing:?}");
}

/// Introspection carries no applied directives, so GraphiQL's docs and generated clients
/// learn who may call a field only from its description: each guarded field says its role.
#[test]
fn every_guarded_field_says_its_least_role_in_its_description() {
    let mut guarded = 0;
    let mut silent = Vec::new();
    for (type_name, field) in object_fields() {
        let Some(role) = field
            .directives
            .iter()
            .find(|d| d.node.name.node == "requireRole")
            .and_then(|d| d.node.get_argument("role").map(|v| v.node.to_string()))
        else {
            continue;
        };
        guarded += 1;
        let description = field.description.as_ref().map(|d| d.node.as_str());
        if !description.is_some_and(|d| d.contains(&format!("Needs the {role} role"))) {
            silent.push(format!("{type_name}.{}", field.name.node));
        }
    }
    assert!(guarded > 30, "{guarded} guarded fields");
    assert!(
        silent.is_empty(),
        "guarded fields that do not say their role: {silent:?}"
    );
}

/// Runs `.ci/run`'s schema check (clients/schema-check.mjs, graphql-inspector) on a released
/// and a current schema and a CHANGELOG: whether it passed, and what it printed.
fn schema_check(released: &str, current: &str, changelog: &str) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("schema-check-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let files = [
        ("released.graphql", released),
        ("current.graphql", current),
        ("CHANGELOG.md", changelog),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("written");
    }
    let result = run_schema_check(&files.map(|(name, _)| dir.join(name)));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// `node clients/schema-check.mjs ARGS…`: whether it passed, and what it printed.
fn run_schema_check(args: &[std::path::PathBuf]) -> (bool, String) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = std::process::Command::new("node")
        .arg(root.join("clients/schema-check.mjs"))
        .args(args)
        .output()
        .expect("node runs (`.ci/run` installs clients/node_modules)");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

#[test]
fn the_schema_check_refuses_what_would_break_a_client_of_the_last_release() {
    let released = r#"
        type Query { me: User, legacy: String @deprecated(reason: "Use `me`.") }
        type User { id: ID!, role: Role! }
        enum Role { OWNER ADMIN }
    "#;
    let nothing_new = "# Changelog\n\n## Unreleased\n\n## 2026-12-05\n";
    let (ok, printed) = schema_check(released, released, nothing_new);
    assert!(ok, "{printed}");

    // A field removed without a release that deprecated it first.
    let removed = released.replace("me: User, ", "");
    let (ok, printed) = schema_check(released, &removed, nothing_new);
    assert!(!ok && printed.contains("Query.me"), "{printed}");
    // A deprecated one may go.
    let removed = released.replace(r#", legacy: String @deprecated(reason: "Use `me`.")"#, "");
    let (ok, printed) = schema_check(released, &removed, nothing_new);
    assert!(ok, "{printed}");
    // A type changed under a client.
    let changed = released.replace("id: ID!", "id: Int!");
    let (ok, printed) = schema_check(released, &changed, nothing_new);
    assert!(!ok && printed.contains("User.id"), "{printed}");

    // A new enum value, announced or not.
    let grown = released.replace("OWNER ADMIN", "OWNER ADMIN VIEWER");
    let (ok, printed) = schema_check(released, &grown, nothing_new);
    assert!(!ok && printed.contains("Role.VIEWER"), "{printed}");
    let announced =
        "# Changelog\n\n## Unreleased\n\n- `Role.VIEWER`: read-only.\n\n## 2026-12-05\n";
    let (ok, printed) = schema_check(released, &grown, announced);
    assert!(ok, "{printed}");
    // Announced under an old release is not announced.
    let old_news = "# Changelog\n\n## Unreleased\n\n## 2026-12-05\n\n- `Role.VIEWER`\n";
    let (ok, printed) = schema_check(released, &grown, old_news);
    assert!(!ok, "{printed}");
}

/// What `.ci/run` checks: today's schema against the newest release, with the CHANGELOG.
#[test]
fn schema_graphql_keeps_clients_of_the_last_release_working() {
    let (ok, printed) = run_schema_check(&[]);
    assert!(ok, "{printed}");
}
