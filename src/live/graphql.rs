//! `Subscription.workspaceEvents`: what changes in a workspace, as it happens, for the
//! members who may see it.
//!
//! Each subscriber reads the log itself ([`Feed`]): after its own cursor, inside the
//! workspace (row-level security holds on the read), with its membership read again before
//! every batch and after any event that changes its own membership. So the role it has
//! when an event is delivered decides what it sees, a removed member's stream ends with
//! `NOT_FOUND`, and so does a deleted workspace's. A slow reader only falls behind in the
//! log: nothing is buffered for it beyond one batch.

use std::collections::VecDeque;
use std::time::Duration;

use async_graphql::{Context, Object, Subscription, ID};
use futures_util::Stream;
use uuid::Uuid;

use super::model::{self, Position, StreamRow};
use super::{Hub, Wake};
use crate::audit::graphql::{AuditAction, AuditEvent};
use crate::audit::Action;
use crate::db::Db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::graphql::context::{parse_id, request};
use crate::graphql::guard::membership;
use crate::graphql::scalars::Timestamp;
use crate::roles::{self, Role};
use crate::workspaces::graphql::Workspace;
use crate::workspaces::loader::Memberships;

/// Events read per statement.
const BATCH: i64 = 100;
/// How soon to look again when an event waits behind a transaction still running.
const PENDING_RETRY: Duration = Duration::from_millis(20);

#[derive(Default)]
pub struct LiveSubscription;

#[Subscription]
impl LiveSubscription {
    /// What changes in the workspace, as it happens: members, invitations, resources,
    /// settings; billing and usage alerts for the roles that manage billing. Events come in
    /// the order their changes committed, each once, from now or, with `after`, from just
    /// after that event's `cursor` (what a reconnecting client missed, then live).
    /// `NOT_FOUND` ends the stream when the caller leaves or is removed, or the workspace is
    /// deleted; `CURSOR_EXPIRED` refuses a cursor older than the log keeps (refetch, then
    /// subscribe without one).
    async fn workspace_events(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<WorkspaceEvent>> + use<>>
    {
        let workspace_id = parse_id(&workspace_id)?;
        let after = after.as_deref().map(Position::decode).transpose()?;
        let request = request(ctx);
        let caller = request.caller()?;
        let hub = ctx
            .data::<Hub>()
            .map_err(|_| ApiError::bad_input("Subscriptions are served over WebSocket."))?;
        let mut feed = Feed {
            db: request.db.clone(),
            user_id: caller.user_id,
            scope: caller.workspaces.clone(),
            workspace_id,
            // Before the start is read: a change committed meanwhile still wakes this feed.
            wake: hub.watch(workspace_id),
            position: Position {
                xid: 0,
                id: Uuid::nil(),
            },
            role: Role::Viewer,
            queue: VecDeque::new(),
            pending: false,
            ended: false,
        };
        feed.role = feed.membership().await?;
        feed.position = feed.start(after).await?;
        Ok(futures_util::stream::unfold(feed, Feed::next))
    }
}

/// One change to a workspace ([`LiveSubscription`]).
pub struct WorkspaceEvent {
    row: crate::audit::model::AuditRow,
    workspace_id: Uuid,
    cursor: String,
    /// Whether the subscriber may read the audit log (the event's full record).
    full: bool,
}

/// One change to a workspace, with the workspace as queries return it now.
#[Object]
impl WorkspaceEvent {
    /// This event's place in the stream: subscribe again with it as `after` to receive what
    /// came after it.
    async fn cursor(&self) -> &str {
        &self.cursor
    }

    /// What happened.
    async fn action(&self) -> AuditAction {
        action_of(&self.row).into()
    }

    /// When it happened.
    async fn at(&self) -> Timestamp {
        self.row.at.into()
    }

    /// What it happened to: `user`, `invitation`, `agent`, ...
    async fn target_kind(&self) -> &str {
        &self.row.target_kind
    }

    /// The id of what it happened to.
    async fn target_id(&self) -> &str {
        &self.row.target_id
    }

    /// The event as the audit log records it (who acted, from where, what changed), for
    /// roles that read the audit log; null for the others.
    async fn audit_event(&self) -> Option<AuditEvent> {
        self.full
            .then(|| crate::audit::graphql::event(self.row.clone()))
    }

    /// The workspace as `Query.workspace` returns it now, with the caller's role now: a
    /// client's normalized cache takes the change without a refetch.
    async fn workspace(&self, ctx: &Context<'_>) -> ApiResult<Workspace> {
        request(ctx).forget_membership(self.workspace_id);
        Ok(membership(ctx, self.workspace_id).await?.into())
    }
}

fn action_of(row: &crate::audit::model::AuditRow) -> Action {
    // Rows are written from the enum; an unknown one is a newer server's.
    Action::from_db(&row.action).unwrap_or(Action::ResourceUpdated)
}

/// The least a role needs to see an event of `action`: billing and usage go to those who
/// manage billing (as `Workspace.billing`), the rest of what only the audit log tells to
/// its readers, everything else to every member.
fn needed_to_see(action: Action) -> Option<roles::Action> {
    use Action::*;
    match action {
        PlanSelected
        | SubscriptionCanceled
        | SubscriptionResumed
        | SubscriptionStatusChanged
        | SubscriptionAdopted
        | DefaultPaymentMethodChanged
        | PaymentMethodRemoved
        | BillingDetailsUpdated
        | UsageLimitReached
        | UsageNearingLimit => Some(roles::Action::ManageBilling),
        ServiceAccessed | WorkspaceExportRequested => Some(roles::Action::ReadAuditLog),
        _ => None,
    }
}

/// Whether `row` changes the subscriber's own membership: their role and what they may see
/// are read again after it.
fn moves(row: &crate::audit::model::AuditRow, user_id: Uuid) -> bool {
    use Action::*;
    matches!(
        action_of(row),
        MemberRoleChanged | MemberRemoved | MemberLeft | OwnershipTransferred
    ) && (row.target_id == user_id.to_string() || action_of(row) == OwnershipTransferred)
}

/// One subscriber's reading of its workspace's stream.
struct Feed {
    db: Db,
    user_id: Uuid,
    scope: Option<Vec<Uuid>>,
    workspace_id: Uuid,
    wake: Wake,
    position: Position,
    role: Role,
    /// Read and not yet delivered: at most one batch.
    queue: VecDeque<StreamRow>,
    /// The last read met an event behind a transaction still running.
    pending: bool,
    ended: bool,
}

impl Feed {
    async fn next(mut self) -> Option<(async_graphql::Result<WorkspaceEvent>, Feed)> {
        loop {
            if self.ended {
                return None;
            }
            while let Some(row) = self.queue.pop_front() {
                self.position = row.position();
                if moves(&row.event, self.user_id) {
                    // Read from here on with the membership as it now is.
                    self.queue.clear();
                }
                if let Some(event) = self.event(row) {
                    return Some((Ok(event), self));
                }
            }
            match self.read().await {
                Ok(true) => {}
                Ok(false) => self.wait().await,
                Err(err) => {
                    self.ended = true;
                    return Some((Err(err.into()), self));
                }
            }
        }
    }

    /// The caller's role in the workspace now, or `NOT_FOUND`.
    async fn membership(&self) -> ApiResult<Role> {
        Memberships::new(self.db.clone(), Some(self.user_id), self.scope.clone())
            .get(self.workspace_id)
            .await?
            .map(|membership| membership.role)
            .ok_or_else(|| ApiError::not_found("Workspace"))
    }

    /// Where the stream starts: after `after` if the log still holds it, else now.
    async fn start(&self, after: Option<Position>) -> ApiResult<Position> {
        let mut conn = self.db.conn_in(self.workspace_id).await?;
        let Some(after) = after else {
            return Ok(model::horizon(&mut conn).await?);
        };
        if model::holds(&mut conn, self.workspace_id, after).await? {
            return Ok(after);
        }
        Err(ApiError::new(
            ErrorCode::CursorExpired,
            "The log no longer holds this cursor's event: refetch, then subscribe without one.",
        ))
    }

    /// Reads the next batch with the membership as it is now; whether it found any.
    async fn read(&mut self) -> ApiResult<bool> {
        self.role = self.membership().await?;
        let mut conn = self.db.conn_in(self.workspace_id).await?;
        let rows = model::after(&mut conn, self.workspace_id, self.position, BATCH).await?;
        self.pending = rows.iter().any(|row| row.pending);
        self.queue
            .extend(rows.into_iter().take_while(|row| !row.pending));
        Ok(!self.queue.is_empty())
    }

    /// Until something may have changed: a wake-up, or soon if an event was pending.
    async fn wait(&mut self) {
        if self.pending {
            tokio::select! {
                () = self.wake.changed() => {}
                () = tokio::time::sleep(PENDING_RETRY) => {}
            }
        } else {
            self.wake.changed().await;
        }
    }

    fn event(&self, row: StreamRow) -> Option<WorkspaceEvent> {
        let action = action_of(&row.event);
        if needed_to_see(action).is_some_and(|needed| !roles::allows(self.role, needed)) {
            return None;
        }
        Some(WorkspaceEvent {
            cursor: row.position().encode(),
            full: roles::allows(self.role, roles::Action::ReadAuditLog),
            workspace_id: self.workspace_id,
            row: row.event,
        })
    }
}
