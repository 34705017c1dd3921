//! Knowledge bases: documents agents draw answers from.

use async_graphql::SimpleObject;
use diesel_async::AsyncPgConnection;
use serde::{Deserialize, Serialize};

use super::{fields, optional_text, parts};
use crate::auth::model::UserRow;
use crate::error::ApiResult;
use crate::resources::model::{ResourceRow, Scope};
use crate::resources::{Fields, Kind};

input_and_patch!(
/// Documents agents draw answers from.
    KnowledgeBaseInput, KnowledgeBasePatch, "a knowledge base" {
        /// 1-100 characters.
        name: required String,
        /// Up to 2,000 characters.
        description: optional String,
    }
);

/// The kind's own fields: stored in `data` and shown to clients as they are.
#[derive(Serialize, Deserialize, Default, SimpleObject)]
pub struct KnowledgeBaseData {
    /// What it holds.
    description: Option<String>,
}

node!(
    /// Documents agents draw answers from.
    KnowledgeBase(KnowledgeBaseData)
);

pub struct KnowledgeBaseKind;

impl Kind for KnowledgeBaseKind {
    const KIND: &'static str = "knowledge_base";
    const LABEL: &'static str = "Knowledge base";
    type Input = KnowledgeBaseInput;
    type Patch = KnowledgeBasePatch;
    type Node = KnowledgeBase;

    async fn validate(
        _: &mut AsyncPgConnection,
        _: Scope,
        input: &KnowledgeBaseInput,
    ) -> ApiResult<Fields> {
        let description = optional_text(&input.description, "description")?;
        fields(&input.name, KnowledgeBaseData { description })
    }

    fn node(row: ResourceRow, created_by: Option<UserRow>) -> KnowledgeBase {
        let (common, data) = parts(row, created_by);
        KnowledgeBase(common, data)
    }
}

surface!(KnowledgeBaseKind {
    mutations: KnowledgeBaseMutation {
        create_knowledge_base,
        update_knowledge_base,
        delete_knowledge_base
    },
    list: KnowledgeBaseList { knowledge_bases },
    docs: [
        "Creates a knowledge base.",
        "Replaces a knowledge base's fields.",
        "Members may delete only what they created; Owners and Admins anything. Agents drawing on it let go of it.",
        "The workspace's knowledge bases, oldest first.",
    ],
});
