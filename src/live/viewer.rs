//! `Subscription.viewerEvents`: what changes about the caller's own access, whoever changed
//! it and on whichever server: a workspace added or removed (joined, left, removed,
//! deleted, restored), a new role in one, a session or token of theirs revoked.
//!
//! Each subscriber keeps what it last read ([`Access`]: its workspaces with its roles, its
//! live tokens) and, woken by migration 000071's notifications, reads them again and tells
//! what differs. Nothing is replayed, because the state is small: a client that reconnects
//! reads `workspaces` (and `sessions`) again, then subscribes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use async_graphql::{Context, Enum, Object, Subscription, ID};
use futures_util::Stream;
use uuid::Uuid;

use super::{Hub, Wake};
use crate::auth::Caller;
use crate::db::Db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::graphql::context::request;
use crate::graphql::guard::membership;
use crate::roles::Role;
use crate::workspaces::graphql::Workspace;

/// How soon to read again after the database could not answer.
const UNAVAILABLE_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Default)]
pub struct ViewerSubscription;

#[Subscription]
impl ViewerSubscription {
    /// What changes about the caller's own access, from now on: a workspace added or
    /// removed, a new role in one, and (with a signed-in session) a session or token of
    /// theirs revoked. A token limited to some workspaces hears of those only. Nothing is
    /// replayed: after reconnecting, read `workspaces` again, then subscribe.
    async fn viewer_events(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<ViewerEvent>> + use<>> {
        let request = request(ctx);
        let caller = request.caller()?.clone();
        let hub = ctx
            .data::<Hub>()
            .map_err(|_| ApiError::bad_input("Subscriptions are served over WebSocket."))?;
        let mut feed = ViewerFeed {
            db: request.db.clone(),
            hub: hub.clone(),
            // Before the start is read: a change committed meanwhile still wakes this feed.
            wake: hub.watch_viewer(caller.user_id),
            caller,
            seen: Access::default(),
            queue: VecDeque::new(),
            stale: false,
        };
        feed.seen = feed.read().await?;
        Ok(futures_util::stream::unfold(feed, ViewerFeed::next))
    }
}

/// What changed about the caller's access.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewerEventKind {
    /// The caller now belongs to a workspace (`workspace`): they joined, created it, or it
    /// was restored.
    WorkspaceAdded,
    /// The caller no longer belongs to a workspace (`workspaceId`): they left or were
    /// removed, or it was deleted.
    WorkspaceRemoved,
    /// The caller's role in a workspace changed (`workspace.viewerRole`).
    RoleChanged,
    /// A session or personal access token of the caller's was revoked (`tokenId`). A
    /// socket signed in with it closes (4403).
    TokenRevoked,
}

/// One change to the caller's access ([`ViewerSubscription`]).
#[derive(Debug, PartialEq)]
pub struct ViewerEvent {
    kind: ViewerEventKind,
    workspace_id: Option<Uuid>,
    token_id: Option<Uuid>,
}

/// One change to the caller's own access.
#[Object]
impl ViewerEvent {
    /// What changed.
    async fn kind(&self) -> ViewerEventKind {
        self.kind
    }

    /// The workspace it changed in, for workspace kinds.
    async fn workspace_id(&self) -> Option<ID> {
        self.workspace_id.map(|id| ID(id.to_string()))
    }

    /// The workspace as `Query.workspace` returns it now, with the caller's role now: a
    /// client's normalized cache takes the change without a refetch. Null when the caller
    /// no longer belongs to it.
    async fn workspace(&self, ctx: &Context<'_>) -> ApiResult<Option<Workspace>> {
        let Some(workspace_id) = self.workspace_id else {
            return Ok(None);
        };
        request(ctx).forget_membership(workspace_id);
        match membership(ctx, workspace_id).await {
            Ok(membership) => Ok(Some(membership.into())),
            Err(err) if err.code() == ErrorCode::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The session or token revoked, for `TOKEN_REVOKED`.
    async fn token_id(&self) -> Option<ID> {
        self.token_id.map(|id| ID(id.to_string()))
    }
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
    fn changes_to(&self, now: &Access) -> Vec<ViewerEvent> {
        let workspace = |kind, id: &Uuid| ViewerEvent {
            kind,
            workspace_id: Some(*id),
            token_id: None,
        };
        let mut changes = Vec::new();
        for (id, role) in &now.workspaces {
            match self.workspaces.get(id) {
                None => changes.push(workspace(ViewerEventKind::WorkspaceAdded, id)),
                Some(before) if before != role => {
                    changes.push(workspace(ViewerEventKind::RoleChanged, id));
                }
                Some(_) => {}
            }
        }
        for id in self.workspaces.keys() {
            if !now.workspaces.contains_key(id) {
                changes.push(workspace(ViewerEventKind::WorkspaceRemoved, id));
            }
        }
        for id in self.tokens.difference(&now.tokens) {
            changes.push(ViewerEvent {
                kind: ViewerEventKind::TokenRevoked,
                workspace_id: None,
                token_id: Some(*id),
            });
        }
        changes
    }
}

/// One subscriber's view of its own access.
struct ViewerFeed {
    db: Db,
    hub: Hub,
    caller: Caller,
    wake: Wake,
    seen: Access,
    /// Told and not yet delivered: one read's changes.
    queue: VecDeque<ViewerEvent>,
    /// The last read failed: read again without waiting for a wake-up.
    stale: bool,
}

impl ViewerFeed {
    async fn next(mut self) -> Option<(async_graphql::Result<ViewerEvent>, ViewerFeed)> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some((Ok(event), self));
            }
            if !std::mem::take(&mut self.stale) {
                self.wake.changed().await;
            }
            match self.read().await {
                Ok(now) => {
                    self.queue.extend(self.seen.changes_to(&now));
                    self.seen = now;
                }
                Err(err) if err.code() == ErrorCode::ServiceUnavailable => {
                    self.stale = true;
                    tokio::time::sleep(UNAVAILABLE_RETRY).await;
                }
                Err(err) => return Some((Err(err.into()), self)),
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
            (ViewerEventKind::RoleChanged, Some(promoted)),
            (ViewerEventKind::WorkspaceAdded, Some(joined)),
        ];
        // Workspaces come in id order; then removals, then tokens.
        expected.sort_by_key(|(_, id)| *id);
        expected.push((ViewerEventKind::WorkspaceRemoved, Some(left)));
        expected.push((ViewerEventKind::TokenRevoked, Some(revoked)));
        assert_eq!(kinds, expected);
        assert!(now.changes_to(&now).is_empty());
    }
}
