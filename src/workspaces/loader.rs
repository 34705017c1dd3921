//! The caller's membership per workspace for one request: each workspace is read at most
//! once however many fields ask, and the workspaces asked for in the same pass of the
//! executor are read together, in one statement.
//!
//! A batch closes when the executor has polled every field that was ready to ask: the
//! first asker yields once, and sibling fields ask while it waits. This is the batching
//! window of the original DataLoader (one tick of the event loop). async-graphql's
//! DataLoader, used here before, slept 1 ms on a timer run by a thread of its own (async-io)
//! on every request that names a workspace: the median members page at 750 requests/s took
//! 3.3 ms with it and 0.7 ms without (BENCHMARKS.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::OnceCell;
use uuid::Uuid;

use super::model::{self, WorkspaceRow};
use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::roles::Role;

/// A live workspace the caller belongs to, with their role there.
#[derive(Clone, Debug)]
pub struct CallerMembership {
    pub workspace: WorkspaceRow,
    pub role: Role,
}

type Found = HashMap<Uuid, CallerMembership>;
type Cell = Arc<OnceCell<Option<CallerMembership>>>;

/// Workspaces asked for together, and what one statement found for them.
#[derive(Default)]
struct Batch {
    keys: Mutex<Vec<Uuid>>,
    found: OnceCell<ApiResult<Found>>,
}

#[derive(Default)]
struct State {
    /// One cell per workspace: later askers share the first one's answer.
    cells: HashMap<Uuid, Cell>,
    /// The batch still taking workspaces, if any.
    open: Option<Arc<Batch>>,
}

pub struct Memberships {
    db: Db,
    caller_id: Option<Uuid>,
    /// The only workspaces the caller's token reaches, when it is scoped.
    scope: Option<Vec<Uuid>>,
    state: Mutex<State>,
}

impl Memberships {
    pub fn new(db: Db, caller_id: Option<Uuid>, scope: Option<Vec<Uuid>>) -> Self {
        Self {
            db,
            caller_id,
            scope,
            state: Mutex::default(),
        }
    }

    /// The caller's membership in `workspace_id`, if it is live and they belong to it.
    pub async fn get(&self, workspace_id: Uuid) -> ApiResult<Option<CallerMembership>> {
        let cell = self.lock().cells.entry(workspace_id).or_default().clone();
        cell.get_or_try_init(|| self.load(workspace_id))
            .await
            .cloned()
    }

    /// Forgets what was read for `workspace_id`: the next [`Memberships::get`] reads it
    /// again.
    pub fn forget(&self, workspace_id: Uuid) {
        self.lock().cells.remove(&workspace_id);
    }

    async fn load(&self, workspace_id: Uuid) -> ApiResult<Option<CallerMembership>> {
        // Outside a scoped token's workspaces the caller belongs nowhere: every guard and
        // lookup goes through here, so they all answer NOT_FOUND.
        let in_scope = self
            .scope
            .as_ref()
            .is_none_or(|only| only.contains(&workspace_id));
        if self.caller_id.is_none() || !in_scope {
            return Ok(None);
        }
        let batch = {
            let mut state = self.lock();
            let batch = state.open.get_or_insert_with(Arc::default).clone();
            // Under the state lock: nobody joins a batch once it is closed.
            lock(&batch.keys).push(workspace_id);
            batch
        };
        // Sibling fields ask while this one waits; the first to come back closes the batch.
        tokio::task::yield_now().await;
        {
            let mut state = self.lock();
            if state
                .open
                .as_ref()
                .is_some_and(|open| Arc::ptr_eq(open, &batch))
            {
                state.open = None;
            }
        }
        let found = batch
            .found
            .get_or_init(|| async {
                // Copied, not taken: if this asker is dropped mid-fetch (a failing sibling
                // field cancels it), the next one runs the fetch again with every key.
                let keys = lock(&batch.keys).clone();
                self.fetch(&keys).await
            })
            .await;
        match found {
            Ok(found) => Ok(found.get(&workspace_id).cloned()),
            Err(err) => Err(err.clone()),
        }
    }

    async fn fetch(&self, keys: &[Uuid]) -> ApiResult<Found> {
        let mut conn = self.db.conn_for_caller().await.map_err(ApiError::from)?;
        let rows = model::memberships_of_caller(&mut conn, Some(keys))
            .await
            .map_err(ApiError::from)?;
        Ok(rows
            .into_iter()
            .map(|(workspace, role)| (workspace.id, CallerMembership { workspace, role }))
            .collect())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

/// A panic while holding one of these locks leaves valid data: keep using it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
