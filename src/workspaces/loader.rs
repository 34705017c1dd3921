//! The caller's membership per workspace, batched and cached for one request, so role
//! checks and `workspace(id)` cost one query however many fields ask.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use uuid::Uuid;

use super::model::{self, WorkspaceRow};
use crate::db::Db;
use crate::error::ApiError;
use crate::roles::Role;

/// A live workspace the caller belongs to, with their role there.
#[derive(Clone, Debug)]
pub struct CallerMembership {
    pub workspace: WorkspaceRow,
    pub role: Role,
}

pub struct MembershipLoader {
    db: Db,
    caller_id: Option<Uuid>,
}

impl MembershipLoader {
    pub fn new(db: Db, caller_id: Option<Uuid>) -> Self {
        Self { db, caller_id }
    }
}

impl Loader<Uuid> for MembershipLoader {
    type Value = CallerMembership;
    type Error = ApiError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, CallerMembership>, Self::Error> {
        if self.caller_id.is_none() {
            return Ok(HashMap::new());
        }
        let mut conn = self.db.conn_for_caller().await.map_err(ApiError::from)?;
        let rows = model::memberships_of_caller(&mut conn, Some(keys))
            .await
            .map_err(ApiError::from)?;
        Ok(rows
            .into_iter()
            .map(|(workspace, role)| (workspace.id, CallerMembership { workspace, role }))
            .collect())
    }
}
