//! The GraphQL surface of every kind, generated from one pattern: `createX`, `updateX`,
//! `deleteX` mutations and the `Workspace` list fields.

use async_graphql::{Context, Object, ID};
use uuid::Uuid;

use super::kinds::*;
use crate::error::ApiResult;
use crate::graphql::guard::{least, require_role, RoleGuard};
use crate::graphql::pagination::PageOf;
use crate::roles::Action;

/// Declares one kind's three mutations.
macro_rules! resource_mutations {
    ($mutation:ident, $kind:ty, $create:ident, $update:ident, $delete:ident,
     $create_doc:literal, $update_doc:literal, $delete_doc:literal) => {
        #[derive(Default)]
        pub struct $mutation;

        #[Object]
        impl $mutation {
            #[doc = $create_doc]
            #[doc = ""]
            #[doc = "Needs the MEMBER role or higher."]
            #[graphql(
                                        guard = "RoleGuard::writer(Action::CreateOrEdit, &workspace_id)",
                                        directive = require_role::apply(least(Action::CreateOrEdit))
                                    )]
            async fn $create(
                &self,
                ctx: &Context<'_>,
                workspace_id: ID,
                input: <$kind as super::Kind>::Input,
            ) -> ApiResult<<$kind as super::Kind>::Node> {
                super::create::<$kind>(ctx, &workspace_id, input).await
            }

            #[doc = $update_doc]
            #[doc = ""]
            #[doc = "Needs the MEMBER role or higher."]
            #[graphql(
                                        guard = "RoleGuard::writer(Action::CreateOrEdit, &workspace_id)",
                                        directive = require_role::apply(least(Action::CreateOrEdit))
                                    )]
            async fn $update(
                &self,
                ctx: &Context<'_>,
                workspace_id: ID,
                id: ID,
                #[graphql(desc = "Only the fields to change.")] input: <$kind as super::Kind>::Patch,
            ) -> ApiResult<<$kind as super::Kind>::Node> {
                super::update::<$kind>(ctx, &workspace_id, &id, input).await
            }

            #[doc = $delete_doc]
            #[doc = ""]
            #[doc = "Needs the MEMBER role or higher."]
            #[graphql(
                                        guard = "RoleGuard::writer(Action::DeleteItem { own: true }, &workspace_id)",
                                        directive = require_role::apply(least(Action::DeleteItem { own: true }))
                                    )]
            async fn $delete(
                &self,
                ctx: &Context<'_>,
                workspace_id: ID,
                id: ID,
            ) -> ApiResult<bool> {
                super::delete::<$kind>(ctx, &workspace_id, &id).await
            }
        }
    };
}

resource_mutations!(
    AgentMutation,
    AgentKind,
    create_agent,
    update_agent,
    delete_agent,
    "Creates an agent; past the plan's agent limit, USAGE_LIMIT_REACHED.",
    "Replaces an agent's fields.",
    "Members may delete only what they created; Owners and Admins anything."
);
resource_mutations!(
    ContactMutation,
    ContactKind,
    create_contact,
    update_contact,
    delete_contact,
    "Creates a contact.",
    "Replaces a contact's fields.",
    "Members may delete only what they created; Owners and Admins anything."
);
resource_mutations!(KnowledgeBaseMutation, KnowledgeBaseKind, create_knowledge_base,
    update_knowledge_base, delete_knowledge_base,
    "Creates a knowledge base.",
    "Replaces a knowledge base's fields.",
    "Members may delete only what they created; Owners and Admins anything. Agents drawing on it let go of it.");
resource_mutations!(
    FormMutation,
    FormKind,
    create_form,
    update_form,
    delete_form,
    "Creates a form.",
    "Replaces a form's fields.",
    "Members may delete only what they created; Owners and Admins anything."
);
resource_mutations!(PhoneNumberMutation, PhoneNumberKind, create_phone_number,
    update_phone_number, delete_phone_number,
    "Adds a phone number (E.164, once per workspace); past the plan's limit, USAGE_LIMIT_REACHED.",
    "Replaces a phone number's fields.",
    "Members may delete only what they created; Owners and Admins anything. Agents answering it let go of it.");
resource_mutations!(
    CalendarMutation,
    CalendarKind,
    create_calendar,
    update_calendar,
    delete_calendar,
    "Creates a calendar.",
    "Replaces a calendar's fields.",
    "Members may delete only what they created; Owners and Admins anything."
);
resource_mutations!(
    IntegrationMutation,
    IntegrationKind,
    create_integration,
    update_integration,
    delete_integration,
    "Adds an integration.",
    "Replaces an integration's fields.",
    "Members may delete only what they created; Owners and Admins anything."
);

/// The resource lists of a workspace, merged into `Workspace`.
pub struct ResourceLists {
    pub workspace_id: Uuid,
}

/// Declares the list field of every kind on [`ResourceLists`].
macro_rules! resource_lists {
    ($($field:ident: $kind:ty => $node:ty, $doc:literal;)*) => {
        #[Object]
        impl ResourceLists {
            $(
                #[doc = $doc]
                #[graphql(
                    complexity = "first.unwrap_or(20).max(0) as usize * child_complexity"
                )]
                async fn $field(
                    &self,
                    ctx: &Context<'_>,
                    #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
                    #[graphql(desc = "Cursor after which the page starts.")] after: Option<String>,
                ) -> ApiResult<PageOf<$node>> {
                    super::page::<$kind>(ctx, self.workspace_id, first, after.as_deref()).await
                }
            )*
        }
    };
}

resource_lists! {
    agents: AgentKind => Agent, "The workspace's agents, oldest first.";
    contacts: ContactKind => Contact, "The workspace's contacts, oldest first.";
    knowledge_bases: KnowledgeBaseKind => KnowledgeBase, "The workspace's knowledge bases, oldest first.";
    forms: FormKind => Form, "The workspace's forms, oldest first.";
    phone_numbers: PhoneNumberKind => PhoneNumber, "The workspace's phone numbers, oldest first.";
    calendars: CalendarKind => Calendar, "The workspace's calendars, oldest first.";
    integrations: IntegrationKind => Integration, "The workspace's integrations, oldest first.";
}
