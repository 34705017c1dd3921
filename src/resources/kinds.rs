//! The seven resource kinds: for each, its input, the fields it stores in `data`, its
//! validation and its GraphQL type. Everything else is shared (see `mod.rs`).

use async_graphql::{Enum, InputObject, MaybeUndefined, MergedObject, SimpleObject, ID};
use diesel_async::AsyncPgConnection;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::model::{self, ResourceRow, Scope};
use super::{Fields, Kind, ResourceCommon, ResourceNode};
use crate::auth::graphql::User;
use crate::auth::model::UserRow;
use crate::billing::plans::Limits;
use crate::error::{ApiError, ApiResult};
use crate::text::{EmailAddress, Name};

const MAX_TEXT: usize = 2_000;
const MAX_LINKED_KNOWLEDGE_BASES: usize = 20;
const MAX_FORM_FIELDS: usize = 50;
const MAX_SELECT_OPTIONS: usize = 50;

/// A kind's create input and its update patch, from one list of fields. `required` fields
/// must be given on create; `optional` ones may be left out. In the patch every field is
/// optional: left out, it stays as it is; `null` clears it (or is refused where the field
/// is required). The patch serialises only what it sets, under the same names the stored
/// `data` uses, so [`super::patched`] merges it over the stored fields for every kind alike.
macro_rules! input_and_patch {
    ($(#[$doc:meta])* $input:ident, $patch:ident, $what:literal {
        $( $(#[$field_doc:meta])* $field:ident : $presence:ident $ty:ty ),* $(,)?
    }) => {
        $(#[$doc])*
        #[derive(InputObject, Deserialize)]
        pub struct $input {
            $( $(#[$field_doc])* $field: input_type!($presence $ty), )*
        }

        #[doc = concat!("Changes to ", $what, ": a field left out stays as it is; `null` clears it ")]
        #[doc = "where it may be empty."]
        #[derive(InputObject, Serialize)]
        pub struct $patch {
            $(
                $(#[$field_doc])*
                #[serde(skip_serializing_if = "MaybeUndefined::is_undefined")]
                $field: MaybeUndefined<$ty>,
            )*
        }
    };
}

macro_rules! input_type {
    (required $ty:ty) => { $ty };
    (optional $ty:ty) => { Option<$ty> };
}

macro_rules! node {
    ($(#[$doc:meta])* $node:ident($fields:ty)) => {
        $(#[$doc])*
        #[derive(MergedObject)]
        #[graphql(serial)]
        pub struct $node(pub ResourceCommon, pub $fields);

        impl ResourceNode for $node {
            fn common(&self) -> &ResourceCommon {
                &self.0
            }
        }
    };
}

/// Builds a node from a row: the common part plus the kind's fields parsed from `data`.
fn parts<D>(row: ResourceRow, created_by: Option<UserRow>) -> (ResourceCommon, D)
where
    D: serde::de::DeserializeOwned + Default,
{
    let data = row.data.parse();
    let common = ResourceCommon {
        row,
        created_by: created_by.map(User::new),
    };
    (common, data)
}

fn fields(name: &str, data: impl Serialize) -> ApiResult<Fields> {
    Ok(Fields {
        name: Name::parse(name, "name")?,
        data: serde_json::to_value(data).map_err(|err| ApiError::internal(&err))?,
    })
}

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

/// Parses ids that must name resources of `kind` in the workspace; anything else,
/// including another workspace's ids, is the same `BAD_USER_INPUT`.
async fn references(
    conn: &mut AsyncPgConnection,
    scope: Scope,
    kind: &'static str,
    ids: &[ID],
    field: &str,
) -> ApiResult<Vec<Uuid>> {
    let invalid = || {
        ApiError::bad_input(format!(
            "`{field}` must name {} in this workspace.",
            kind.replace('_', " ")
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
    let found = model::existing(conn, Scope { kind, ..scope }, &parsed).await?;
    if found.len() != parsed.len() {
        return Err(invalid());
    }
    Ok(parsed)
}

// ----- Agent -----

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
    Agent(AgentFields)
);

pub struct AgentKind;

impl Kind for AgentKind {
    const KIND: &'static str = "agent";
    const LABEL: &'static str = "Agent";
    const LIMIT: Option<fn(&Limits) -> i32> = Some(|limits| limits.agents);
    type Input = AgentInput;
    type Patch = AgentPatch;
    type Node = Agent;

    async fn validate(
        conn: &mut AsyncPgConnection,
        scope: Scope,
        input: &AgentInput,
    ) -> ApiResult<Fields> {
        let phone_number_id = match &input.phone_number_id {
            Some(id) => references(
                conn,
                scope,
                "phone_number",
                std::slice::from_ref(id),
                "phoneNumberId",
            )
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
        let knowledge_base_ids = references(
            conn,
            scope,
            "knowledge_base",
            knowledge_base_ids,
            "knowledgeBaseIds",
        )
        .await?;
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
        let (common, data): (_, AgentData) = parts(row, created_by);
        Agent(
            common,
            AgentFields {
                description: data.description,
                phone_number_id: data.phone_number_id.map(|id| ID(id.to_string())),
                knowledge_base_ids: ids_of(&data.knowledge_base_ids),
            },
        )
    }
}

// ----- Contact -----

input_and_patch!(
/// A person the workspace talks to.
    ContactInput, ContactPatch, "a contact" {
        /// 1-100 characters.
        name: required String,
        /// Their email address.
        email: optional String,
        /// Their phone number, E.164.
        phone: optional String,
    }
);

#[derive(Serialize, Deserialize, Default)]
pub struct ContactData {
    email: Option<String>,
    phone: Option<String>,
}

/// A contact's own fields.
#[derive(SimpleObject)]
pub struct ContactFields {
    /// Their email address.
    email: Option<String>,
    /// Their phone number, E.164.
    phone: Option<String>,
}

node!(
    /// A person the workspace's agents talk to.
    Contact(ContactFields)
);

pub struct ContactKind;

impl Kind for ContactKind {
    const KIND: &'static str = "contact";
    const LABEL: &'static str = "Contact";
    type Input = ContactInput;
    type Patch = ContactPatch;
    type Node = Contact;

    async fn validate(
        _: &mut AsyncPgConnection,
        _: Scope,
        input: &ContactInput,
    ) -> ApiResult<Fields> {
        let email = match input
            .email
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            Some(email) => Some(EmailAddress::parse(email)?.as_str().to_owned()),
            None => None,
        };
        let phone = match input
            .phone
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            Some(phone) => Some(e164(phone, "phone")?),
            None => None,
        };
        fields(&input.name, ContactData { email, phone })
    }

    fn node(row: ResourceRow, created_by: Option<UserRow>) -> Contact {
        let (common, data): (_, ContactData) = parts(row, created_by);
        Contact(
            common,
            ContactFields {
                email: data.email,
                phone: data.phone,
            },
        )
    }
}

// ----- Knowledge base -----

input_and_patch!(
/// Documents agents draw answers from.
    KnowledgeBaseInput, KnowledgeBasePatch, "a knowledge base" {
        /// 1-100 characters.
        name: required String,
        /// Up to 2,000 characters.
        description: optional String,
    }
);

#[derive(Serialize, Deserialize, Default)]
pub struct DescriptionData {
    description: Option<String>,
}

/// A knowledge base's own fields.
#[derive(SimpleObject)]
pub struct KnowledgeBaseFields {
    /// What it holds.
    description: Option<String>,
}

node!(
    /// Documents agents draw answers from.
    KnowledgeBase(KnowledgeBaseFields)
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
        fields(&input.name, DescriptionData { description })
    }

    fn node(row: ResourceRow, created_by: Option<UserRow>) -> KnowledgeBase {
        let (common, data): (_, DescriptionData) = parts(row, created_by);
        KnowledgeBase(
            common,
            KnowledgeBaseFields {
                description: data.description,
            },
        )
    }
}

// ----- Form -----

/// The kind of answer a form field takes.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "snake_case")]
pub enum FormFieldType {
    /// Free text.
    #[default]
    Text,
    /// An email address.
    Email,
    /// A phone number.
    Phone,
    /// A number.
    Number,
    /// A date.
    Date,
    /// One of `options`.
    Select,
}

/// One question of a form.
#[derive(InputObject, Serialize, Deserialize)]
pub struct FormFieldInput {
    /// The question, 1-100 characters, unique in the form.
    label: String,
    /// The kind of answer.
    #[graphql(name = "type")]
    #[serde(rename = "type")]
    field_type: FormFieldType,
    /// Whether an answer is needed.
    #[graphql(default)]
    #[serde(default)]
    required: bool,
    /// The choices of a SELECT field (1 to 50); none otherwise.
    #[graphql(default)]
    #[serde(default)]
    options: Vec<String>,
}

/// One question of a form.
#[derive(SimpleObject, Clone, Serialize, Deserialize, Default)]
pub struct FormField {
    /// The question.
    label: String,
    /// The kind of answer.
    #[serde(rename = "type")]
    #[graphql(name = "type")]
    field_type: FormFieldType,
    /// Whether an answer is needed.
    required: bool,
    /// The choices of a SELECT field.
    options: Vec<String>,
}

input_and_patch!(
/// A form agents fill in with customers.
    FormInput, FormPatch, "a form" {
        /// 1-100 characters.
        name: required String,
        /// The questions, 1 to 50.
        fields: required Vec<FormFieldInput>,
    }
);

#[derive(Serialize, Deserialize, Default)]
pub struct FormData {
    fields: Vec<FormField>,
}

/// A form's own fields.
#[derive(SimpleObject)]
pub struct FormFields {
    /// The questions, in order.
    fields: Vec<FormField>,
}

node!(
    /// A form agents fill in with customers.
    Form(FormFields)
);

pub struct FormKind;

impl Kind for FormKind {
    const KIND: &'static str = "form";
    const LABEL: &'static str = "Form";
    type Input = FormInput;
    type Patch = FormPatch;
    type Node = Form;

    async fn validate(_: &mut AsyncPgConnection, _: Scope, input: &FormInput) -> ApiResult<Fields> {
        if input.fields.is_empty() || input.fields.len() > MAX_FORM_FIELDS {
            return Err(ApiError::bad_input(format!(
                "A form has 1 to {MAX_FORM_FIELDS} fields."
            )));
        }
        let mut labels = std::collections::HashSet::new();
        let mut checked = Vec::with_capacity(input.fields.len());
        for field in &input.fields {
            let label = Name::parse(&field.label, "label")?.into_inner();
            if !labels.insert(label.to_lowercase()) {
                return Err(ApiError::bad_input(format!(
                    "The label `{label}` is used twice."
                )));
            }
            let options: Vec<String> = field
                .options
                .iter()
                .map(|o| Name::parse(o, "options").map(Name::into_inner))
                .collect::<ApiResult<_>>()?;
            let is_select = field.field_type == FormFieldType::Select;
            if is_select && !(1..=MAX_SELECT_OPTIONS).contains(&options.len()) {
                return Err(ApiError::bad_input(format!(
                    "The SELECT field `{label}` needs 1 to {MAX_SELECT_OPTIONS} options."
                )));
            }
            if !is_select && !options.is_empty() {
                return Err(ApiError::bad_input(format!(
                    "Only SELECT fields take options; `{label}` is not one."
                )));
            }
            checked.push(FormField {
                label,
                field_type: field.field_type,
                required: field.required,
                options,
            });
        }
        fields(&input.name, FormData { fields: checked })
    }

    fn node(row: ResourceRow, created_by: Option<UserRow>) -> Form {
        let (common, data): (_, FormData) = parts(row, created_by);
        Form(
            common,
            FormFields {
                fields: data.fields,
            },
        )
    }
}

// ----- Phone number -----

input_and_patch!(
/// A phone number agents answer and call from.
    PhoneNumberInput, PhoneNumberPatch, "a phone number" {
        /// A label, 1-100 characters.
        name: required String,
        /// E.164, unique in the workspace.
        number: required String,
    }
);

#[derive(Serialize, Deserialize, Default)]
pub struct PhoneNumberData {
    number: String,
}

/// A phone number's own fields.
#[derive(SimpleObject)]
pub struct PhoneNumberFields {
    /// E.164.
    number: String,
}

node!(
    /// A phone number agents answer and call from.
    PhoneNumber(PhoneNumberFields)
);

pub struct PhoneNumberKind;

impl Kind for PhoneNumberKind {
    const KIND: &'static str = "phone_number";
    const LABEL: &'static str = "Phone number";
    const LIMIT: Option<fn(&Limits) -> i32> = Some(|limits| limits.phone_numbers);
    const BILLED: bool = true;
    type Input = PhoneNumberInput;
    type Patch = PhoneNumberPatch;
    type Node = PhoneNumber;

    async fn validate(
        _: &mut AsyncPgConnection,
        _: Scope,
        input: &PhoneNumberInput,
    ) -> ApiResult<Fields> {
        let number = e164(&input.number, "number")?;
        fields(&input.name, PhoneNumberData { number })
    }

    fn node(row: ResourceRow, created_by: Option<UserRow>) -> PhoneNumber {
        let (common, data): (_, PhoneNumberData) = parts(row, created_by);
        PhoneNumber(
            common,
            PhoneNumberFields {
                number: data.number,
            },
        )
    }
}

// ----- Calendar -----

input_and_patch!(
/// A calendar agents book meetings in.
    CalendarInput, CalendarPatch, "a calendar" {
        /// 1-100 characters.
        name: required String,
        /// An IANA time zone such as `Europe/Paris`, or `UTC`.
        time_zone: required String,
    }
);

#[derive(Serialize, Deserialize, Default)]
pub struct CalendarData {
    time_zone: String,
}

/// A calendar's own fields.
#[derive(SimpleObject)]
pub struct CalendarFields {
    /// IANA time zone.
    time_zone: String,
}

node!(
    /// A calendar agents book meetings in.
    Calendar(CalendarFields)
);

const TIME_ZONE_AREAS: [&str; 11] = [
    "Africa",
    "America",
    "Antarctica",
    "Arctic",
    "Asia",
    "Atlantic",
    "Australia",
    "Etc",
    "Europe",
    "Indian",
    "Pacific",
];

/// `UTC` or `Area/Location[/Sub]` with a known IANA area (a shape check: the server ships
/// no time-zone database).
fn time_zone(value: &str) -> ApiResult<String> {
    let zone = value.trim();
    let mut parts = zone.split('/');
    let area = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    let well_formed = rest.len() <= 2
        && rest.iter().all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-+".contains(c))
        });
    let valid =
        zone == "UTC" || (TIME_ZONE_AREAS.contains(&area) && !rest.is_empty() && well_formed);
    if !valid {
        return Err(ApiError::bad_input(
            "`timeZone` must be an IANA time zone such as Europe/Paris, or UTC.",
        ));
    }
    Ok(zone.to_owned())
}

pub struct CalendarKind;

impl Kind for CalendarKind {
    const KIND: &'static str = "calendar";
    const LABEL: &'static str = "Calendar";
    type Input = CalendarInput;
    type Patch = CalendarPatch;
    type Node = Calendar;

    async fn validate(
        _: &mut AsyncPgConnection,
        _: Scope,
        input: &CalendarInput,
    ) -> ApiResult<Fields> {
        let time_zone = time_zone(&input.time_zone)?;
        fields(&input.name, CalendarData { time_zone })
    }

    fn node(row: ResourceRow, created_by: Option<UserRow>) -> Calendar {
        let (common, data): (_, CalendarData) = parts(row, created_by);
        Calendar(
            common,
            CalendarFields {
                time_zone: data.time_zone,
            },
        )
    }
}

// ----- Integration -----

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

#[derive(Serialize, Deserialize, Default)]
pub struct IntegrationData {
    provider: IntegrationProvider,
    status: IntegrationStatus,
}

/// An integration's own fields.
#[derive(SimpleObject)]
pub struct IntegrationFields {
    /// The service.
    provider: IntegrationProvider,
    /// Whether it works.
    status: IntegrationStatus,
}

node!(
    /// A connection to another service.
    Integration(IntegrationFields)
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
        let (common, data): (_, IntegrationData) = parts(row, created_by);
        Integration(
            common,
            IntegrationFields {
                provider: data.provider,
                status: data.status,
            },
        )
    }
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
    fn time_zones_need_an_iana_shape() {
        for good in [
            "UTC",
            "Europe/Paris",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+5",
        ] {
            assert!(time_zone(good).is_ok(), "{good}");
        }
        for bad in ["Paris", "Mars/Olympus", "Europe/", "Europe/Par is", ""] {
            assert!(time_zone(bad).is_err(), "{bad}");
        }
    }
}
