//! Integrations: connections to other services.

use async_graphql::{Enum, SimpleObject};
use diesel_async::AsyncPgConnection;
use serde::{Deserialize, Serialize};

use super::{fields, parts};
use crate::auth::model::UserRow;
use crate::error::ApiResult;
use crate::resources::model::{ResourceRow, Scope};
use crate::resources::{Fields, Kind};

/// A service an integration connects to.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "snake_case")]
pub enum IntegrationProvider {
    /// Slack.
    #[default]
    Slack,
    /// HubSpot CRM.
    Hubspot,
    /// Salesforce CRM.
    Salesforce,
    /// Zapier.
    Zapier,
    /// Google Calendar.
    GoogleCalendar,
    /// A plain HTTPS webhook.
    Webhook,
}

/// Whether an integration works.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "snake_case")]
pub enum IntegrationStatus {
    /// Set up and working.
    Connected,
    /// Not connected yet, or switched off.
    #[default]
    Disconnected,
    /// The provider refused the last call.
    Error,
}

input_and_patch!(
/// A connection to another service.
    IntegrationInput, IntegrationPatch, "an integration" {
        /// 1-100 characters.
        name: required String,
        /// The service.
        provider: required IntegrationProvider,
        /// Defaults to DISCONNECTED.
        status: optional IntegrationStatus,
    }
);

/// The kind's own fields: stored in `data` and shown to clients as they are.
#[derive(Serialize, Deserialize, Default, SimpleObject)]
pub struct IntegrationData {
    /// The service.
    provider: IntegrationProvider,
    /// Whether it works.
    status: IntegrationStatus,
}

node!(
    /// A connection to another service.
    Integration(IntegrationData)
);

pub struct IntegrationKind;

impl Kind for IntegrationKind {
    const KIND: &'static str = "integration";
    const LABEL: &'static str = "Integration";
    type Input = IntegrationInput;
    type Patch = IntegrationPatch;
    type Node = Integration;

    async fn validate(
        _: &mut AsyncPgConnection,
        _: Scope,
        input: &IntegrationInput,
    ) -> ApiResult<Fields> {
        let data = IntegrationData {
            provider: input.provider,
            status: input.status.unwrap_or_default(),
        };
        fields(&input.name, data)
    }

    fn node(row: ResourceRow, created_by: Option<UserRow>) -> Integration {
        let (common, data) = parts(row, created_by);
        Integration(common, data)
    }
}

surface!(IntegrationKind {
    mutations: IntegrationMutation {
        create_integration,
        update_integration,
        delete_integration
    },
    list: IntegrationList { integrations },
    docs: [
        "Adds an integration.",
        "Replaces an integration's fields.",
        "Members may delete only what they created; Owners and Admins anything.",
        "The workspace's integrations, oldest first.",
    ],
});
