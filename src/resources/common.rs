//! The fields every resource has, shared by the seven GraphQL types.

use async_graphql::{Object, OutputType, ID};

use super::model::ResourceRow;
use crate::auth::graphql::User;
use crate::db::page::Cursor;
use crate::graphql::scalars::Timestamp;

/// What every resource has.
pub struct ResourceCommon {
    pub row: ResourceRow,
    /// The creator's account. Pages always read it; a write only when its answer selects
    /// `createdBy`, so it is `None` wherever nobody will show it.
    pub created_by: Option<User>,
}

impl ResourceCommon {
    pub fn cursor(&self) -> Cursor {
        Cursor {
            at: self.row.created_at,
            id: self.row.id,
        }
    }
}

/// The fields every resource has.
#[Object]
impl ResourceCommon {
    /// Stable identifier.
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    /// Display name, 1-100 characters.
    async fn name(&self) -> &str {
        &self.row.name
    }

    /// Who created it (null if their account is gone).
    async fn created_by(&self) -> Option<&User> {
        self.created_by.as_ref()
    }

    /// When it was created.
    async fn created_at(&self) -> Timestamp {
        self.row.created_at.into()
    }

    /// When it last changed.
    async fn updated_at(&self) -> Timestamp {
        self.row.updated_at.into()
    }
}

/// A resource's GraphQL type: the common fields merged with its kind's own.
pub trait ResourceNode: OutputType {
    fn common(&self) -> &ResourceCommon;
}
