//! Contacts: the people the workspace's agents talk to.

use async_graphql::SimpleObject;
use diesel_async::AsyncPgConnection;
use serde::{Deserialize, Serialize};

use super::{e164, fields, parts};
use crate::auth::model::UserRow;
use crate::conversations::graphql::{ConversationsOf, OfContact};
use crate::error::ApiResult;
use crate::resources::model::{ResourceRow, Scope};
use crate::resources::{Fields, Kind};
use crate::text::EmailAddress;

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

/// The kind's own fields: stored in `data` and shown to clients as they are.
#[derive(Serialize, Deserialize, Default, SimpleObject)]
pub struct ContactData {
    /// Their email address.
    email: Option<String>,
    /// Their phone number, E.164.
    phone: Option<String>,
}

node!(
    /// A person the workspace's agents talk to.
    Contact(ContactData, ConversationsOf<OfContact>)
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
        let given = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let email = match given(&input.email) {
            Some(email) => Some(EmailAddress::parse(&email)?.as_str().to_owned()),
            None => None,
        };
        let phone = match given(&input.phone) {
            Some(phone) => Some(e164(&phone, "phone")?),
            None => None,
        };
        fields(&input.name, ContactData { email, phone })
    }

    fn node(row: ResourceRow, created_by: Option<UserRow>) -> Contact {
        let conversations = ConversationsOf::contact(row.workspace_id, row.id);
        let (common, data) = parts(row, created_by);
        Contact(common, data, conversations)
    }
}

surface!(ContactKind {
    mutations: ContactMutation { create_contact, update_contact, delete_contact },
    list: ContactList { contacts },
    docs: [
        "Creates a contact.",
        "Replaces a contact's fields.",
        "Members may delete only what they created; Owners and Admins anything.",
        "The workspace's contacts, oldest first.",
    ],
});
