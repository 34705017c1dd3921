//! Phone numbers: the numbers agents answer and call from, one of each per workspace,
//! limited by the plan and billed each on the subscription.

use async_graphql::SimpleObject;
use diesel_async::AsyncPgConnection;
use serde::{Deserialize, Serialize};

use super::{e164, fields, parts};
use crate::auth::model::UserRow;
use crate::billing::plans::CountLimit;
use crate::error::ApiResult;
use crate::resources::model::{ResourceRow, Scope};
use crate::resources::{Fields, Kind};

input_and_patch!(
/// A phone number agents answer and call from.
    PhoneNumberInput, PhoneNumberPatch, "a phone number" {
        /// A label, 1-100 characters.
        name: required String,
        /// E.164, unique in the workspace.
        number: required String,
    }
);

/// The kind's own fields: stored in `data` and shown to clients as they are.
#[derive(Serialize, Deserialize, Default, SimpleObject)]
pub struct PhoneNumberData {
    /// E.164.
    number: String,
}

node!(
    /// A phone number agents answer and call from.
    PhoneNumber(PhoneNumberData)
);

pub struct PhoneNumberKind;

impl Kind for PhoneNumberKind {
    const KIND: &'static str = "phone_number";
    const LABEL: &'static str = "Phone number";
    const LIMIT: Option<CountLimit> = Some(CountLimit::PhoneNumbers);
    const BILLED: bool = true;
    const UNIQUE: &'static [(&'static str, &'static str)] = &[(
        "resources_phone_number_unique",
        "This phone number is already in this workspace.",
    )];
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
        let (common, data) = parts(row, created_by);
        PhoneNumber(common, data)
    }
}

surface!(PhoneNumberKind {
    mutations: PhoneNumberMutation {
        create_phone_number,
        update_phone_number,
        delete_phone_number
    },
    list: PhoneNumberList { phone_numbers },
    docs: [
        "Adds a phone number (E.164, once per workspace); past the plan's limit, USAGE_LIMIT_REACHED.",
        "Replaces a phone number's fields.",
        "Members may delete only what they created; Owners and Admins anything. Agents answering it let go of it.",
        "The workspace's phone numbers, oldest first.",
    ],
});
