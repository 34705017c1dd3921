//! `Subscription.viewerEvents`: what changes about the caller's own access, whoever changed
//! it and on whichever server: a workspace added or removed (joined, left, removed,
//! deleted, restored), a new role in one, a session or token of theirs revoked.
//!
//! Each subscriber keeps what it last read ([`Access`]: its workspaces with its roles, its
//! live tokens) and, woken by migration 000071's notifications, reads them again and tells
//! what differs. Nothing is replayed, because the state is small: a client that reconnects
//! reads `workspaces` (and `sessions`) again, then subscribes. The subscription itself is
//! in [`graphql`].

pub mod graphql;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use uuid::Uuid;

use super::{Hub, Wake, UNAVAILABLE_RETRY};
use crate::auth::Caller;
use crate::db::Db;
use crate::error::{ApiResult, ErrorCode};
use crate::roles::Role;

/// What changed about a person's access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    WorkspaceAdded,
    WorkspaceRemoved,
    RoleChanged,
    TokenRevoked,
}

/// One change to a person's access: in a workspace, or to a token.
#[derive(Debug, PartialEq)]
pub struct Change {
    pub kind: ChangeKind,
    pub workspace_id: Option<Uuid>,
    pub token_id: Option<Uuid>,
}

/// The caller's access as last read: their workspaces (those the token reaches) with their
/// roles, and their live tokens (for a session only: a personal token cannot list them).
#[derive(Default, Debug, PartialEq)]
struct Access {
    workspaces: BTreeMap<Uuid, Role>,
    tokens: BTreeSet<Uuid>,
}

impl Access {
    /// What differs from `self` to `now`, workspaces first.
    fn changes_to(&self, now: &Access) -> Vec<Change> {
        let workspace = |kind, id: &Uuid| Change {
            kind,
            workspace_id: Some(*id),
            token_id: None,
        };
        let mut changes = Vec::new();
        for (id, role) in &now.workspaces {
            match self.workspaces.get(id) {
                None => changes.push(workspace(ChangeKind::WorkspaceAdded, id)),
                Some(before) if before != role => {
                    changes.push(workspace(ChangeKind::RoleChanged, id));
                }
                Some(_) => {}
            }
        }
        for id in self.workspaces.keys() {
            if !now.workspaces.contains_key(id) {
                changes.push(workspace(ChangeKind::WorkspaceRemoved, id));
            }
        }
        for id in self.tokens.difference(&now.tokens) {
            changes.push(Change {
                kind: ChangeKind::TokenRevoked,
                workspace_id: None,
                token_id: Some(*id),
            });
        }
        changes
    }
}

/// One subscriber's view of its own access.
pub struct ViewerFeed {
    db: Db,
    hub: Hub,
    caller: Caller,
    wake: Wake,
    seen: Access,
    /// Told and not yet delivered: one read's changes.
    queue: VecDeque<Change>,
    /// The last read failed: read again without waiting for a wake-up.
    stale: bool,
}

impl ViewerFeed {
    /// Follows `caller`'s access from now on.
    pub async fn start(db: Db, hub: Hub, caller: Caller) -> ApiResult<ViewerFeed> {
        let mut feed = ViewerFeed {
            db,
            // Before the start is read: a change committed meanwhile still wakes this feed.
            wake: hub.watch_viewer(caller.user_id),
            hub,
            caller,
            seen: Access::default(),
            queue: VecDeque::new(),
            stale: false,
        };
        feed.seen = feed.read().await?;
        Ok(feed)
    }

    /// The next change, once there is one.
    pub async fn next(mut self) -> Option<(ApiResult<Change>, ViewerFeed)> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some((Ok(event), self));
            }
            if !std::mem::take(&mut self.stale) {
                self.wake.changed().await;
            }
            // Boxed while it runs: an idle subscriber holds only its wait (src/live/graphql.rs,
            // `Feed::next`).
            match Box::pin(self.read()).await {
                Ok(now) => {
                    self.queue.extend(self.seen.changes_to(&now));
                    self.seen = now;
                }
                Err(err) if err.code() == ErrorCode::ServiceUnavailable => {
                    self.stale = true;
                    tokio::time::sleep(UNAVAILABLE_RETRY).await;
                }
                Err(err) => return Some((Err(err), self)),
            }
        }
    }

    /// The caller's access now: two statements.
    async fn read(&self) -> ApiResult<Access> {
        let _turn = self.hub.read_turn().await;
        let mut conn = self.db.conn_for_caller().await?;
        let workspaces = crate::workspaces::model::memberships_of_caller(&mut conn, None)
            .await?
            .into_iter()
            .filter(|(workspace, _)| self.caller.reaches(workspace.id))
            .map(|(workspace, role)| (workspace.id, role))
            .collect();
        let tokens = match self.caller.session {
            true => crate::auth::model::live_token_ids(&mut conn, self.caller.user_id)
                .await?
                .into_iter()
                .collect(),
            false => BTreeSet::new(),
        };
        Ok(Access { workspaces, tokens })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(workspaces: &[(Uuid, Role)], tokens: &[Uuid]) -> Access {
        Access {
            workspaces: workspaces.iter().copied().collect(),
            tokens: tokens.iter().copied().collect(),
        }
    }

    #[test]
    fn the_difference_tells_each_change_once() {
        let (kept, promoted, left, joined) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        let (session, revoked) = (Uuid::now_v7(), Uuid::now_v7());
        let before = access(
            &[
                (kept, Role::Member),
                (promoted, Role::Member),
                (left, Role::Viewer),
            ],
            &[session, revoked],
        );
        let now = access(
            &[
                (kept, Role::Member),
                (promoted, Role::Admin),
                (joined, Role::Viewer),
            ],
            &[session, Uuid::now_v7()],
        );
        let kinds: Vec<_> = before
            .changes_to(&now)
            .into_iter()
            .map(|event| (event.kind, event.workspace_id.or(event.token_id)))
            .collect();
        let mut expected = vec![
            (ChangeKind::RoleChanged, Some(promoted)),
            (ChangeKind::WorkspaceAdded, Some(joined)),
        ];
        // Workspaces come in id order; then removals, then tokens.
        expected.sort_by_key(|(_, id)| *id);
        expected.push((ChangeKind::WorkspaceRemoved, Some(left)));
        expected.push((ChangeKind::TokenRevoked, Some(revoked)));
        assert_eq!(kinds, expected);
        assert!(now.changes_to(&now).is_empty());
    }
}
