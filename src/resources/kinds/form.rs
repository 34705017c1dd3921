//! Forms: questions agents fill in with customers.

use async_graphql::{Enum, InputObject, SimpleObject};
use diesel_async::AsyncPgConnection;
use serde::{Deserialize, Serialize};

use super::{fields, parts};
use crate::auth::model::UserRow;
use crate::error::{ApiError, ApiResult};
use crate::resources::model::{ResourceRow, Scope};
use crate::resources::{Fields, Kind};
use crate::text::Name;

const MAX_FORM_FIELDS: usize = 50;
const MAX_SELECT_OPTIONS: usize = 50;

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

/// The kind's own fields: stored in `data` and shown to clients as they are.
#[derive(Serialize, Deserialize, Default, SimpleObject)]
pub struct FormData {
    /// The questions, in order.
    fields: Vec<FormField>,
}

node!(
    /// A form agents fill in with customers.
    Form(FormData)
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
        let (common, data) = parts(row, created_by);
        Form(common, data)
    }
}

surface!(FormKind {
    mutations: FormMutation { create_form, update_form, delete_form },
    list: FormList { forms },
    docs: [
        "Creates a form.",
        "Replaces a form's fields.",
        "Members may delete only what they created; Owners and Admins anything.",
        "The workspace's forms, oldest first.",
    ],
});
