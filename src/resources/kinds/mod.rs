//! The resource kinds, one file each: its input and patch, the fields it stores in `data`,
//! its validation, its GraphQL type and its three mutations and list. Everything else is
//! shared (`resources/mod.rs` for the rules, `resources/graphql.rs` for the surface).
//!
//! A kind's file is its whole declaration, API shape included, so these files sit at the
//! GraphQL edge (see docs/architecture.md's layering rule). Adding a kind: its file here and its line
//! in [`kinds!`] below, plus the migration that allows its `resources.kind` value.

use std::sync::LazyLock;

use async_graphql::{MergedObject, ID};
use diesel_async::AsyncPgConnection;
use serde::Serialize;
use uuid::Uuid;

use super::model::{self, Scope};
use super::{Fields, Kind, Reference, Referrer};
use crate::billing::plans::CountLimit;
use crate::error::{ApiError, ApiResult};
use crate::text::Name;

const MAX_TEXT: usize = 2_000;

/// A kind's create input and its update patch, from one list of fields. `required` fields
/// must be given on create; `optional` ones may be left out. In the patch every field is
/// optional: left out, it stays as it is; `null` clears it (or is refused where the field
/// is required). The patch serialises only what it sets, under the same names the stored
/// `data` uses, so `resources::patched` merges it over the stored fields for every kind alike.
macro_rules! input_and_patch {
    ($(#[$doc:meta])* $input:ident, $patch:ident, $what:literal {
        $( $(#[$field_doc:meta])* $field:ident : $presence:ident $ty:ty ),* $(,)?
    }) => {
        $(#[$doc])*
        #[derive(async_graphql::InputObject, serde::Deserialize)]
        pub struct $input {
            $( $(#[$field_doc])* $field: input_type!($presence $ty), )*
        }

        #[doc = concat!("Changes to ", $what, ": a field left out stays as it is; `null` clears it ")]
        #[doc = "where it may be empty."]
        #[derive(async_graphql::InputObject, serde::Serialize)]
        pub struct $patch {
            $(
                $(#[$field_doc])*
                #[serde(skip_serializing_if = "async_graphql::MaybeUndefined::is_undefined")]
                $field: async_graphql::MaybeUndefined<$ty>,
            )*
        }
    };
}

macro_rules! input_type {
    (required $ty:ty) => { $ty };
    (optional $ty:ty) => { Option<$ty> };
}

/// A kind's GraphQL type: the common fields merged with its own, and with fields other
/// features add to it (an agent's conversations).
macro_rules! node {
    ($(#[$doc:meta])* $node:ident($fields:ty $(, $extra:ty)*)) => {
        $(#[$doc])*
        #[derive(async_graphql::MergedObject)]
        #[graphql(serial)]
        pub struct $node(pub $crate::resources::graphql::ResourceCommon, pub $fields $(, pub $extra)*);

        impl $crate::resources::graphql::ResourceNode for $node {
            fn common(&self) -> &$crate::resources::graphql::ResourceCommon {
                &self.0
            }
        }
    };
}

/// A kind's `createX`, `updateX` and `deleteX` mutations, and its list on `Workspace`.
macro_rules! surface {
    ($kind:ty {
        mutations: $mutation:ident { $create:ident, $update:ident, $delete:ident },
        list: $list:ident { $field:ident },
        docs: [$create_doc:literal, $update_doc:literal, $delete_doc:literal, $list_doc:literal $(,)?] $(,)?
    }) => {
        #[derive(Default)]
        pub struct $mutation;

        #[async_graphql::Object]
        impl $mutation {
            #[doc = $create_doc]
            #[doc = ""]
            #[doc = "Needs the MEMBER role or higher."]
            #[graphql(
                guard = "crate::graphql::guard::RoleGuard::writer(crate::roles::Action::CreateOrEdit, &workspace_id)",
                directive = crate::graphql::guard::require_role::apply(crate::graphql::guard::least(crate::roles::Action::CreateOrEdit))
            )]
            async fn $create(
                &self,
                ctx: &async_graphql::Context<'_>,
                workspace_id: async_graphql::ID,
                input: <$kind as $crate::resources::Kind>::Input,
            ) -> $crate::error::ApiResult<<$kind as $crate::resources::Kind>::Node> {
                $crate::resources::graphql::create::<$kind>(ctx, &workspace_id, input).await
            }

            #[doc = $update_doc]
            #[doc = ""]
            #[doc = "Needs the MEMBER role or higher."]
            #[graphql(
                guard = "crate::graphql::guard::RoleGuard::writer(crate::roles::Action::CreateOrEdit, &workspace_id)",
                directive = crate::graphql::guard::require_role::apply(crate::graphql::guard::least(crate::roles::Action::CreateOrEdit))
            )]
            async fn $update(
                &self,
                ctx: &async_graphql::Context<'_>,
                workspace_id: async_graphql::ID,
                id: async_graphql::ID,
                #[graphql(desc = "Only the fields to change.")] input: <$kind as $crate::resources::Kind>::Patch,
            ) -> $crate::error::ApiResult<<$kind as $crate::resources::Kind>::Node> {
                $crate::resources::graphql::update::<$kind>(ctx, &workspace_id, &id, input).await
            }

            #[doc = $delete_doc]
            #[doc = ""]
            #[doc = "Needs the MEMBER role or higher."]
            #[graphql(
                guard = "crate::graphql::guard::RoleGuard::writer(crate::roles::Action::DeleteItem { own: true }, &workspace_id)",
                directive = crate::graphql::guard::require_role::apply(crate::graphql::guard::least(crate::roles::Action::DeleteItem { own: true }))
            )]
            async fn $delete(
                &self,
                ctx: &async_graphql::Context<'_>,
                workspace_id: async_graphql::ID,
                id: async_graphql::ID,
            ) -> $crate::error::ApiResult<bool> {
                $crate::resources::graphql::delete::<$kind>(ctx, &workspace_id, &id).await
            }
        }

        /// The kind's list on `Workspace`.
        pub struct $list {
            pub workspace_id: uuid::Uuid,
        }

        #[async_graphql::Object]
        impl $list {
            #[doc = $list_doc]
            #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
            async fn $field(
                &self,
                ctx: &async_graphql::Context<'_>,
                #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
                #[graphql(desc = "Cursor after which the page starts.")] after: Option<String>,
            ) -> $crate::error::ApiResult<
                $crate::graphql::pagination::PageOf<<$kind as $crate::resources::Kind>::Node>,
            > {
                $crate::resources::graphql::page::<$kind>(ctx, self.workspace_id, first, after.as_deref())
                    .await
            }
        }
    };
}

/// Every kind, in the schema's order: its module, its [`Kind`], and the mutations and list
/// its file's `surface!` declares.
macro_rules! kinds {
    ($($module:ident: $kind:ident, $mutation:ident, $list:ident;)*) => {
        $(
            mod $module;
            pub use $module::*;
        )*

        /// Every kind's `resources.kind` value, in the schema's order.
        pub const KINDS: &[&str] = &[$($kind::KIND),*];

        /// Every kind's mutations, merged into the root `Mutation`.
        #[derive(MergedObject, Default)]
        pub struct ResourceMutation($($mutation),*);

        /// Every kind's list, merged into `Workspace`.
        #[derive(MergedObject)]
        pub struct ResourceLists($($list),*);

        impl From<&crate::workspaces::model::WorkspaceRow> for ResourceLists {
            fn from(workspace: &crate::workspaces::model::WorkspaceRow) -> Self {
                let workspace_id = workspace.id;
                Self($($list { workspace_id }),*)
            }
        }

        /// A resource of any kind, as its kind's list shows it.
        #[derive(async_graphql::Union)]
        pub enum AnyResource {
            $($kind(<$kind as Kind>::Node),)*
        }

        /// The workspace's resource `id`, whatever its kind, with its creator; `None` when
        /// it is gone.
        pub async fn any_resource(
            conn: &mut AsyncPgConnection,
            workspace_id: Uuid,
            id: Uuid,
        ) -> ApiResult<Option<AnyResource>> {
            let Some(row) = model::with_ids(conn, workspace_id, &[id]).await?.pop() else {
                return Ok(None);
            };
            let created_by = super::creator(conn, &row, true).await?;
            $(
                if row.kind == $kind::KIND {
                    return Ok(Some(AnyResource::$kind($kind::node(row, created_by))));
                }
            )*
            Ok(None)
        }

        /// The fields of every kind that name another resource.
        pub fn referrers() -> &'static [Referrer] {
            static ALL: LazyLock<Vec<Referrer>> = LazyLock::new(|| {
                let mut all = Vec::new();
                $(
                    all.extend($kind::REFERENCES.iter().map(|&reference| Referrer {
                        from: $kind::KIND,
                        reference,
                    }));
                )*
                all
            });
            &ALL
        }

        /// The kinds a plan limits, each with its limit.
        pub fn limited() -> &'static [(&'static str, CountLimit)] {
            static ALL: LazyLock<Vec<(&'static str, CountLimit)>> = LazyLock::new(|| {
                let mut all = Vec::new();
                $(
                    if let Some(limit) = $kind::LIMIT {
                        all.push(($kind::KIND, limit));
                    }
                )*
                all
            });
            &ALL
        }
    };
}

kinds! {
    agent: AgentKind, AgentMutation, AgentList;
    contact: ContactKind, ContactMutation, ContactList;
    knowledge_base: KnowledgeBaseKind, KnowledgeBaseMutation, KnowledgeBaseList;
    form: FormKind, FormMutation, FormList;
    phone_number: PhoneNumberKind, PhoneNumberMutation, PhoneNumberList;
    calendar: CalendarKind, CalendarMutation, CalendarList;
    integration: IntegrationKind, IntegrationMutation, IntegrationList;
}

/// Builds a node's two parts from a row: the common part plus the kind's fields parsed from
/// `data`.
fn parts<D>(
    row: model::ResourceRow,
    created_by: Option<crate::auth::model::UserRow>,
) -> (super::graphql::ResourceCommon, D)
where
    D: serde::de::DeserializeOwned + Default,
{
    let data = row.data.parse();
    (super::graphql::ResourceCommon::new(row, created_by), data)
}

fn fields(name: &str, data: impl Serialize) -> ApiResult<Fields> {
    Ok(Fields {
        name: Name::parse(name, "name")?,
        data: serde_json::to_value(data).map_err(|err| ApiError::internal(&err))?,
    })
}

/// Trimmed text of at most 2,000 characters, or `None` when empty.
fn optional_text(value: &Option<String>, field: &str) -> ApiResult<Option<String>> {
    let Some(text) = value.as_deref().map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > MAX_TEXT {
        return Err(ApiError::bad_input(format!(
            "`{field}` must be at most {MAX_TEXT} characters long."
        )));
    }
    // Lines and tabs are text; NUL (which PostgreSQL text cannot hold) and the other
    // control characters are not.
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(ApiError::bad_input(format!(
            "`{field}` must not contain control characters other than line breaks and tabs."
        )));
    }
    Ok(Some(text.to_owned()))
}

/// `+` then 2 to 15 digits, the first not zero (ITU-T E.164).
fn e164(value: &str, field: &str) -> ApiResult<String> {
    let number = value.trim();
    let digits = number.strip_prefix('+').unwrap_or_default();
    let valid = (2..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0');
    if !valid {
        return Err(ApiError::bad_input(format!(
            "`{field}` must be an E.164 phone number such as +14155550123."
        )));
    }
    Ok(number.to_owned())
}

fn ids_of(ids: &[Uuid]) -> Vec<ID> {
    ids.iter().map(|id| ID(id.to_string())).collect()
}

/// Parses ids for `reference`: they must name resources of its kind in the workspace;
/// anything else, including another workspace's ids, is the same `BAD_USER_INPUT`.
async fn references(
    conn: &mut AsyncPgConnection,
    scope: Scope,
    reference: Reference,
    ids: &[ID],
) -> ApiResult<Vec<Uuid>> {
    let invalid = || {
        ApiError::bad_input(format!(
            "`{}` must name {} in this workspace.",
            crate::text::camel_case(reference.field),
            reference.to.replace('_', " ")
        ))
    };
    let mut parsed = ids
        .iter()
        .map(|id| Uuid::parse_str(id.as_str()).map_err(|_| invalid()))
        .collect::<ApiResult<Vec<Uuid>>>()?;
    parsed.sort();
    parsed.dedup();
    if parsed.is_empty() {
        return Ok(parsed);
    }
    let found = model::existing(
        conn,
        Scope {
            kind: reference.to,
            ..scope
        },
        &parsed,
    )
    .await?;
    if found.len() != parsed.len() {
        return Err(invalid());
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_must_be_e164() {
        assert_eq!(
            e164(" +14155550123 ", "number").expect("valid"),
            "+14155550123"
        );
        for bad in [
            "14155550123",
            "+0123",
            "+1",
            "+1415555012345678",
            "+1 415 555",
            "+abc",
        ] {
            assert!(e164(bad, "number").is_err(), "{bad}");
        }
    }

    #[test]
    fn references_are_declared_by_the_kinds_that_hold_them() {
        let held: Vec<(&str, &str, &str)> = referrers()
            .iter()
            .map(|r| (r.from, r.reference.field, r.reference.to))
            .collect();
        assert_eq!(
            held,
            [
                ("agent", "phone_number_id", "phone_number"),
                ("agent", "knowledge_base_ids", "knowledge_base"),
            ]
        );
        assert_eq!(
            limited(),
            [
                ("agent", CountLimit::Agents),
                ("phone_number", CountLimit::PhoneNumbers)
            ]
        );
    }
}
