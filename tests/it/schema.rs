//! The published SDL: up to date, described, and role-annotated.

use async_graphql::parser::parse_schema;
use async_graphql::parser::types::{FieldDefinition, TypeKind, TypeSystemDefinition};

/// Mutations that carry no `@requireRole`: public, or self-service on the caller's own
/// account or membership (their checks live in the resolver and the role-matrix test).
const SELF_SERVICE_MUTATIONS: &[&str] = &[
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
