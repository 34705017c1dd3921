//! `Subscription.viewerEvents`, over the feed in [`super`].

use async_graphql::{Context, Enum, Object, Subscription, ID};
use futures_util::{Stream, StreamExt as _};
use uuid::Uuid;

use super::{Change, ChangeKind, ViewerFeed};
use crate::error::{ApiResult, ErrorCode};
use crate::graphql::context::request;
use crate::graphql::errors::ending;
use crate::graphql::guard::membership;
use crate::workspaces::graphql::Workspace;

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
        let start = async {
            let request = request(ctx);
            let caller = request.caller()?.clone();
            let hub = crate::live::graphql::hub(ctx)?;
            ViewerFeed::start(request.db.clone(), hub.clone(), caller).await
        };
        // A refusal ends the operation (src/graphql/errors.rs, `ending`). Boxed, as
        // `workspaceEvents`' start is (src/live/graphql.rs).
        let feed = Box::pin(start).await.map_err(ending)?;
        let events = futures_util::stream::unfold(feed, ViewerFeed::next)
            .map(|change| change.map(ViewerEvent).map_err(Into::into));
        Ok(crate::graphql::handoff::hand_off(ctx, events))
    }
}

/// What changed about the caller's access.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(
    name = "ViewerEventKind",
    remote = "ChangeKind",
    rename_items = "SCREAMING_SNAKE_CASE"
)]
pub enum GqlChangeKind {
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
pub struct ViewerEvent(Change);

/// One change to the caller's own access.
#[Object]
impl ViewerEvent {
    /// What changed.
    async fn kind(&self) -> GqlChangeKind {
        self.0.kind.into()
    }

    /// The workspace it changed in, for workspace kinds.
    async fn workspace_id(&self) -> Option<ID> {
        self.0.workspace_id.map(id)
    }

    /// The workspace as `Query.workspace` returns it now, with the caller's role now: a
    /// client's normalized cache takes the change without a refetch. Null when the caller
    /// no longer belongs to it.
    async fn workspace(&self, ctx: &Context<'_>) -> ApiResult<Option<Workspace>> {
        let Some(workspace_id) = self.0.workspace_id else {
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
        self.0.token_id.map(id)
    }
}

fn id(id: Uuid) -> ID {
    ID(id.to_string())
}
