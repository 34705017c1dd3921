//! GraphQL assembly: the root types merged from the features, limits, and the
//! pure `schema()` builder used by the server, the `schema` subcommand and the SDL test.

pub mod context;
pub mod documents;
pub mod errors;
pub mod guard;
pub mod handoff;
pub mod nulls;
pub mod pagination;
pub mod scalars;
pub mod shape;

use async_graphql::{MergedObject, MergedSubscription, Schema, SchemaBuilder, ValidationMode};

use crate::auth::graphql::{AuthMutation, AuthQuery};
use crate::billing::graphql::BillingMutation;
use crate::billing::graphql::BillingQuery;
use crate::conversations::graphql::ConversationMutation;
use crate::exports::graphql::ExportMutation;
use crate::invitations::graphql::{InvitationMutation, InvitationQuery};
use crate::members::graphql::MemberMutation;
use crate::resources::graphql::ResourceMutation;
use crate::usage::graphql::UsageMutation;
use crate::workspaces::graphql::{WorkspaceMutation, WorkspaceQuery};

pub use shape::MAX_DEPTH;

/// Complexity budget per operation; a list field counts its page size times its children.
pub const MAX_COMPLEXITY: usize = 5_000;

/// Queries. Everything but `invitation` needs a bearer token.
#[derive(MergedObject, Default)]
pub struct Query(AuthQuery, WorkspaceQuery, InvitationQuery, BillingQuery);

/// Mutations. Those acting inside a workspace take `workspaceId`; `@requireRole` states
/// the least role they need.
#[derive(MergedObject, Default)]
pub struct Mutation(
    AuthMutation,
    WorkspaceMutation,
    MemberMutation,
    InvitationMutation,
    ResourceMutation,
    UsageMutation,
    ConversationMutation,
    BillingMutation,
    ExportMutation,
);

/// Subscriptions, over WebSocket on `/graphql` with the graphql-transport-ws protocol (the
/// `graphql-ws` library's); the token goes in `connection_init`'s payload as
/// `authorization`.
#[derive(MergedSubscription, Default)]
pub struct Subscription(
    crate::live::graphql::LiveSubscription,
    crate::live::viewer::graphql::ViewerSubscription,
);

pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// The schema with its limits and no data: request data is added per request.
/// `introspection: false` (`INTROSPECTION=false`) answers `__schema` and `__type` as unknown
/// fields.
pub fn schema(introspection: bool) -> AppSchema {
    finish(builder(), introspection)
}

/// The same schema for documents it has validated before, when the variables cannot change
/// the verdict ([`documents::values_pass`]): async-graphql's fast mode skips the rules and
/// still measures complexity and depth against the same limits.
pub fn validated_schema(introspection: bool) -> AppSchema {
    finish(
        builder().validation_mode(ValidationMode::Fast),
        introspection,
    )
}

fn finish(builder: SchemaBuilder<Query, Mutation, Subscription>, introspection: bool) -> AppSchema {
    match introspection {
        true => builder.finish(),
        false => builder.disable_introspection().finish(),
    }
}

/// No schema extensions: one sends every field through async-graphql's slow resolve path
/// (BENCHMARKS.md), and pages resolve their items without the per-item hook
/// ([`pagination::Items`]). Depth is measured by [`shape`] before this schema sees the
/// document (introspection apart); the library's own limit is a backstop.
fn builder() -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .limit_depth(shape::BACKSTOP_DEPTH)
    .limit_complexity(MAX_COMPLEXITY)
    .limit_recursive_depth(32)
    .limit_directives(8)
}

/// The SDL as published in `schema.graphql`.
pub fn sdl() -> String {
    schema(true).sdl_with_options(
        async_graphql::SDLExportOptions::new()
            .sorted_fields()
            .include_specified_by(),
    )
}
