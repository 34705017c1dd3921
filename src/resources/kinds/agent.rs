//! Agents: the AI agents that talk to the workspace's customers. An agent may answer one of
//! the workspace's phone numbers and draw on up to 20 of its knowledge bases; deleting
//! either takes it off the agents that named it.

use async_graphql::{SimpleObject, ID};
use diesel_async::AsyncPgConnection;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{fields, ids_of, optional_text, parts, references};
use crate::auth::model::UserRow;
use crate::conversations::graphql::{ConversationsOf, OfAgent};
use crate::billing::plans::CountLimit;
use crate::error::{ApiError, ApiResult};
use crate::resources::model::{ResourceRow, Scope};
use crate::resources::{Fields, Kind, Reference};

const MAX_LINKED_KNOWLEDGE_BASES: usize = 20;
const PHONE_NUMBER: Reference = Reference::one("phone_number_id", "phone_number");
const KNOWLEDGE_BASES: Reference = Reference::many("knowledge_base_ids", "knowledge_base");

input_and_patch!(
/// What an agent is made of.
    AgentInput, AgentPatch, "an agent" {
        /// 1-100 characters.
        name: required String,
        /// Up to 2,000 characters.
        description: optional String,
        /// A phone number of this workspace the agent answers.
        phone_number_id: optional ID,
        /// Knowledge bases of this workspace the agent draws on (up to 20).
        knowledge_base_ids: optional Vec<ID>,
    }
);

#[derive(Serialize, Deserialize, Default)]
pub struct AgentData {
    description: Option<String>,
    phone_number_id: Option<Uuid>,
    #[serde(default)]
    knowledge_base_ids: Vec<Uuid>,
}

/// An agent's own fields.
#[derive(SimpleObject)]
pub struct AgentFields {
    /// What it is for.
    description: Option<String>,
    /// The phone number it answers, if any.
    phone_number_id: Option<ID>,
    /// The knowledge bases it draws on.
    knowledge_base_ids: Vec<ID>,
}

node!(
    /// An AI agent that talks to the workspace's customers.
    Agent(AgentFields, ConversationsOf<OfAgent>)
);

pub struct AgentKind;

impl Kind for AgentKind {
    const KIND: &'static str = "agent";
    const LABEL: &'static str = "Agent";
    const LIMIT: Option<CountLimit> = Some(CountLimit::Agents);
    const REFERENCES: &'static [Reference] = &[PHONE_NUMBER, KNOWLEDGE_BASES];
    type Input = AgentInput;
    type Patch = AgentPatch;
    type Node = Agent;

    async fn validate(
        conn: &mut AsyncPgConnection,
        scope: Scope,
        input: &AgentInput,
    ) -> ApiResult<Fields> {
        let phone_number_id = match &input.phone_number_id {
            Some(id) => references(conn, scope, PHONE_NUMBER, std::slice::from_ref(id))
                .await?
                .pop(),
            None => None,
        };
        let knowledge_base_ids = input.knowledge_base_ids.as_deref().unwrap_or_default();
        if knowledge_base_ids.len() > MAX_LINKED_KNOWLEDGE_BASES {
            return Err(ApiError::bad_input(format!(
                "An agent draws on at most {MAX_LINKED_KNOWLEDGE_BASES} knowledge bases."
            )));
        }
        let knowledge_base_ids =
            references(conn, scope, KNOWLEDGE_BASES, knowledge_base_ids).await?;
        fields(
            &input.name,
            AgentData {
                description: optional_text(&input.description, "description")?,
                phone_number_id,
                knowledge_base_ids,
            },
        )
    }

    fn node(row: ResourceRow, created_by: Option<UserRow>) -> Agent {
        let conversations = ConversationsOf::agent(row.workspace_id, row.id);
        let (common, data): (_, AgentData) = parts(row, created_by);
        Agent(
            common,
            AgentFields {
                description: data.description,
                phone_number_id: data.phone_number_id.map(|id| ID(id.to_string())),
                knowledge_base_ids: ids_of(&data.knowledge_base_ids),
            },
            conversations,
        )
    }
}

surface!(AgentKind {
    mutations: AgentMutation { create_agent, update_agent, delete_agent },
    list: AgentList { agents },
    docs: [
        "Creates an agent; past the plan's agent limit, USAGE_LIMIT_REACHED.",
        "Replaces an agent's fields.",
        "Members may delete only what they created; Owners and Admins anything.",
        "The workspace's agents, oldest first.",
    ],
});
