//! `Subscription.workspaceEvents`: what changes in a workspace, as it happens, for the
//! members who may see it.
//!
//! Each subscriber follows the log from its own cursor ([`Feed`]), reading through what the
//! workspace's subscribers on this server share ([`Recent`]: one read serves them all),
//! inside the workspace (row-level security holds on the read). Its membership is read
//! again at any event that changes it and every one to two [`ROLE_FRESH`], so the role it has
//! when an event comes in the stream decides what it sees; a removed member's stream ends
//! with one `NOT_FOUND`, and so does a deleted workspace's. A slow reader only falls behind
//! in the log: nothing is buffered for it beyond one batch.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::{Context, Object, Subscription, Union, ID};
use futures_util::Stream;
use uuid::Uuid;

use super::model::{self, Position, Resume, StreamRow};
use super::recent::Recent;
use super::{Hub, Wake, UNAVAILABLE_RETRY};
use crate::audit::graphql::{AuditAction, AuditEvent};
use crate::audit::model::AuditRow;
use crate::audit::Action;
use crate::conversations::graphql::Conversation;
use crate::db::Db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::graphql::context::{parse_id, request};
use crate::graphql::errors::ending;
use crate::graphql::guard::membership;
use crate::graphql::scalars::Timestamp;
use crate::invitations::graphql::Invitation;
use crate::members::graphql::Member;
use crate::resources::kinds::AnyResource;
use crate::roles::{self, Role};
use crate::workspaces::graphql::Workspace;
use crate::workspaces::loader::Memberships;
use crate::workspaces::model::WorkspaceRow;

/// How long a subscriber's role is taken as read between the events that change it (one to
/// two of these, spread so subscribers that started together do not read together): every
/// change through the API writes such an event, so this only bounds how long a change
/// made around the API (by hand, in the database) goes unseen.
const ROLE_FRESH: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct LiveSubscription;

#[Subscription]
impl LiveSubscription {
    /// What changes in the workspace, as it happens: members, invitations, resources,
    /// settings, conversations (started, closed, messages added); billing and usage alerts
    /// for the roles that manage billing. Events come in the order their changes committed,
    /// each once, from now or, with `after`, from just after that event's `cursor` (what a
    /// reconnecting client missed, then live).
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
        // A refusal ends the operation as the feed's own ending does. Boxed while it runs:
        // async-graphql keeps room for this future beside the stream for the
        // subscription's whole life.
        let feed = Box::pin(Feed::begin(ctx, &workspace_id, after.as_deref()))
            .await
            .map_err(ending)?;
        let events = futures_util::stream::unfold(feed, Feed::next);
        Ok(crate::graphql::handoff::hand_off(ctx, events))
    }
}

/// One change to a workspace ([`LiveSubscription`]).
pub struct WorkspaceEvent {
    row: Arc<StreamRow>,
    workspace_id: Uuid,
    /// The subscriber's role when the event came in the stream.
    role: Role,
}

/// What an event happened to, as queries return it.
#[derive(Union)]
pub enum EventTarget {
    Member(Member),
    Invitation(Invitation),
    /// Boxed: it carries its agent and contact, three times the others' size.
    Conversation(Box<Conversation>),
    #[graphql(flatten)]
    Resource(AnyResource),
}

/// One change to a workspace, with the workspace as queries return it now.
#[Object]
impl WorkspaceEvent {
    /// This event's place in the stream: subscribe again with it as `after` to receive what
    /// came after it.
    async fn cursor(&self) -> String {
        Position {
            workspace_id: self.workspace_id,
            seq: self.row.seq,
        }
        .encode()
    }

    /// What happened.
    async fn action(&self) -> AuditAction {
        // Only audit-log readers see actions this server does not know (`needed_to_see`),
        // as the closest the schema has.
        Action::from_db(&self.row.event.action)
            .unwrap_or(Action::ResourceUpdated)
            .into()
    }

    /// When it happened.
    async fn at(&self) -> Timestamp {
        self.row.event.at.into()
    }

    /// What it happened to: `user`, `invitation`, `agent`, ...
    async fn target_kind(&self) -> &str {
        &self.row.event.target_kind
    }

    /// The id of what it happened to.
    async fn target_id(&self) -> &str {
        &self.row.event.target_id
    }

    /// The event as the audit log records it (who acted, from where, what changed), for
    /// roles that read the audit log; null for the others, and for what the audit log does
    /// not hold (the runtime's writes: conversations started and closed, messages added).
    async fn audit_event(&self) -> Option<AuditEvent> {
        (self.row.audited && roles::allows(self.role, roles::Action::ReadAuditLog))
            .then(|| crate::audit::graphql::event(self.row.event.clone()))
    }

    /// What it happened to, as queries return it now, when that is a member, an invitation
    /// (for roles that manage members, as `Workspace.invitations`), a resource or a
    /// conversation: a client's normalized cache takes the change without a refetch. Null
    /// when it is gone (a member removed, a resource or conversation deleted) or something
    /// else (`targetKind` says what).
    async fn target(&self, ctx: &Context<'_>) -> ApiResult<Option<EventTarget>> {
        let (workspace_id, kind) = (self.workspace_id, self.row.event.target_kind.as_str());
        let Ok(id) = Uuid::parse_str(&self.row.event.target_id) else {
            return Ok(None);
        };
        Ok(match kind {
            "user" => crate::members::graphql::member(ctx, workspace_id, id)
                .await?
                .map(EventTarget::Member),
            "invitation" if roles::allows(self.role, roles::Action::ManageMembers) => {
                crate::invitations::graphql::invitation(ctx, workspace_id, id)
                    .await?
                    .map(EventTarget::Invitation)
            }
            "conversation" => {
                crate::conversations::graphql::conversation_by_id(ctx, workspace_id, id)
                    .await?
                    .map(|conversation| EventTarget::Conversation(Box::new(conversation)))
            }
            kind if crate::resources::kinds::KINDS.contains(&kind) => {
                let mut conn = request(ctx).db.conn_in(workspace_id).await?;
                crate::resources::kinds::any_resource(&mut conn, workspace_id, id)
                    .await?
                    .map(EventTarget::Resource)
            }
            _ => None,
        })
    }

    /// The workspace as `Query.workspace` returns it now, with the caller's role now: a
    /// client's normalized cache takes the change without a refetch.
    async fn workspace(&self, ctx: &Context<'_>) -> ApiResult<Workspace> {
        // Read again at an audited change, which may be the workspace's own. The runtime's
        // writes change none of it, and come at its rate: the subscription's last read
        // serves (any change to the workspace is an audited event of its own).
        if self.row.audited {
            request(ctx).forget_membership(self.workspace_id);
        }
        Ok(membership(ctx, self.workspace_id).await?.into())
    }
}

/// The least a role needs to see an event: billing and usage go to those who manage
/// billing (as `Workspace.billing`), invitations to those who manage members (as
/// `Workspace.invitations`), what only the audit log tells (and any action this server does
/// not know, a newer server's) to its readers, everything else to every member.
fn needed_to_see(row: &AuditRow) -> Option<roles::Action> {
    use Action::*;
    let Some(action) = Action::from_db(&row.action) else {
        return Some(roles::Action::ReadAuditLog);
    };
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
        InvitationSent | InvitationResent | InvitationRevoked | InvitationDeclined => {
            Some(roles::Action::ManageMembers)
        }
        ServiceAccessed | WorkspaceExportRequested => Some(roles::Action::ReadAuditLog),
        _ => None,
    }
}

/// Whether `row` changes the subscriber's own membership: their role is read again at it.
fn moves(row: &AuditRow, user_id: Uuid) -> bool {
    use Action::*;
    let targets_them = row.target_id == user_id.to_string();
    match Action::from_db(&row.action) {
        Some(MemberRoleChanged | MemberRemoved | MemberLeft) => targets_them,
        // The new Owner is the target; the old one, now Admin, is the actor.
        Some(OwnershipTransferred) => targets_them || row.actor_id == Some(user_id),
        // Accepting an invitation to be Owner makes the old Owner an Admin.
        Some(InvitationAccepted) => row.changes["role"] == "owner",
        Some(WorkspaceDeleted) => true,
        _ => false,
    }
}

/// Whether `row` adds messages to a conversation that a later event of the same batch adds
/// messages to again. Delivered, both would carry the conversation as it is now: the later
/// one alone tells the same, and a busy conversation costs each subscriber one event per
/// batch read, not one per append. Its cursor is passed with it.
fn superseded(row: &StreamRow, queue: &VecDeque<Arc<StreamRow>>) -> bool {
    let added = Action::ConversationMessagesAdded.as_db();
    row.event.action == added
        && queue.iter().any(|later| {
            later.event.action == added && later.event.target_id == row.event.target_id
        })
}

/// One subscriber's reading of its workspace's stream.
struct Feed {
    db: Db,
    hub: Hub,
    user_id: Uuid,
    scope: Option<Vec<Uuid>>,
    wake: Wake,
    recent: Arc<Recent>,
    position: Position,
    role: Role,
    /// When `role` is read again, if no event changes it before.
    role_due: Instant,
    /// Read and not yet delivered: at most one batch.
    queue: VecDeque<Arc<StreamRow>>,
    ended: bool,
}

/// Where a step of a [`Feed`] stopped.
enum Step {
    Event(WorkspaceEvent),
    Ended(ApiError),
    /// Nothing new: wait for a wake-up.
    Wait,
    /// The database could not answer: try again after [`UNAVAILABLE_RETRY`].
    Retry,
}

/// This server's hub, which only a socket's operations carry (src/http/socket.rs).
pub(crate) fn hub<'a>(ctx: &Context<'a>) -> ApiResult<&'a Hub> {
    ctx.data::<Hub>()
        .map_err(|_| ApiError::bad_input("Subscriptions are served over WebSocket."))
}

impl Feed {
    /// The feed of `workspace_id`'s stream for the caller, from just after `after`.
    async fn begin(ctx: &Context<'_>, workspace_id: &ID, after: Option<&str>) -> ApiResult<Feed> {
        let workspace_id = parse_id(workspace_id)?;
        let after = after
            .map(|raw| Position::decode(raw, workspace_id))
            .transpose()?;
        let request = request(ctx);
        let caller = request.caller()?;
        let hub = hub(ctx)?;
        // Before the start is read: a change committed meanwhile still wakes this feed.
        let (wake, recent) = hub.watch(workspace_id);
        let mut feed = Feed {
            db: request.db.clone(),
            hub: hub.clone(),
            user_id: caller.user_id,
            scope: caller.workspaces.clone(),
            wake,
            recent,
            position: Position {
                workspace_id,
                seq: 0,
            },
            role: Role::Viewer,
            role_due: Instant::now(),
            queue: VecDeque::new(),
            ended: false,
        };
        // NOT_FOUND for a stranger before anything about the cursor; the role again once the
        // start is known, so a change committed between the two is not missed.
        feed.membership().await?;
        feed.position = feed.start(after).await?;
        feed.set_role(feed.membership().await?);
        Ok(feed)
    }

    /// The next event. An idle subscriber waits here holding only its feed and the wait:
    /// the step's own state (a read of the log, a membership check) is boxed while it runs.
    /// Inlined, it was kept by each of 10,000 idle subscribers (BENCHMARKS.md, thirty-third
    /// round).
    async fn next(mut self) -> Option<(async_graphql::Result<WorkspaceEvent>, Feed)> {
        loop {
            if self.ended {
                return None;
            }
            match Box::pin(self.step()).await {
                Step::Event(event) => return Some((Ok(event), self)),
                Step::Ended(err) => return self.end(err),
                Step::Wait => self.wake.changed().await,
                Step::Retry => tokio::time::sleep(UNAVAILABLE_RETRY).await,
            }
        }
    }

    /// Delivers what was read, reading the log when nothing is left, up to the next event
    /// the subscriber may see, or until it has to wait.
    async fn step(&mut self) -> Step {
        loop {
            let Some(row) = self.queue.pop_front() else {
                match self.read().await {
                    Ok(true) => continue,
                    Ok(false) => return Step::Wait,
                    Err(err) if err.code() == ErrorCode::ServiceUnavailable => return Step::Retry,
                    Err(err) => return Step::Ended(err),
                }
            };
            if moves(&row.event, self.user_id) {
                // Judged with the membership it leaves: a removal ends the stream.
                match self.membership().await {
                    Ok(role) => self.set_role(role),
                    Err(err) if err.code() == ErrorCode::ServiceUnavailable => {
                        self.queue.push_front(row);
                        return Step::Retry;
                    }
                    Err(err) => return Step::Ended(err),
                }
                self.queue.clear();
            }
            self.position.seq = row.seq;
            if superseded(&row, &self.queue) {
                continue;
            }
            if let Some(event) = self.event(row) {
                return Step::Event(event);
            }
        }
    }

    fn end(mut self, err: ApiError) -> Option<(async_graphql::Result<WorkspaceEvent>, Feed)> {
        self.ended = true;
        Some((Err(ending(err)), self))
    }

    /// The caller's role in the workspace now, or `NOT_FOUND`.
    async fn membership(&self) -> ApiResult<Role> {
        let _turn = self.hub.read_turn().await;
        Memberships::new(self.db.clone(), Some(self.user_id), self.scope.clone())
            .get(self.position.workspace_id)
            .await?
            .map(|membership| membership.role)
            .ok_or_else(|| ApiError::not_found("Workspace"))
    }

    fn set_role(&mut self, role: Role) {
        self.role = role;
        self.role_due = Instant::now() + ROLE_FRESH.mul_f64(1.0 + rand::random::<f64>());
    }

    /// Where the stream starts: after `after` if the log still holds what follows it, else
    /// now.
    async fn start(&self, after: Option<Position>) -> ApiResult<Position> {
        let workspace_id = self.position.workspace_id;
        let mut conn = self.db.conn_in(workspace_id).await?;
        let Some(after) = after else {
            return Ok(model::now(&mut conn, workspace_id).await?);
        };
        match model::resume(&mut conn, after, chrono::Utc::now()).await? {
            Resume::Whole => Ok(after),
            Resume::Unknown => Err(ApiError::bad_input(
                "`after` is not a cursor of this workspace's stream.",
            )),
            Resume::Expired => Err(ApiError::new(
                ErrorCode::CursorExpired,
                "What followed this cursor is gone from the log or over a day old: refetch, \
                 then subscribe from `Workspace.eventsCursor`.",
            )),
        }
    }

    /// Takes the next batch; whether there was any.
    async fn read(&mut self) -> ApiResult<bool> {
        if Instant::now() >= self.role_due {
            let role = self.membership().await?;
            self.set_role(role);
        }
        let wake = self.wake.seen();
        let rows = self
            .recent
            .after(&self.db, &self.hub, self.position, wake)
            .await?;
        self.queue.extend(rows);
        Ok(!self.queue.is_empty())
    }

    fn event(&self, row: Arc<StreamRow>) -> Option<WorkspaceEvent> {
        let needed = needed_to_see(&row.event);
        if needed.is_some_and(|needed| !roles::allows(self.role, needed)) {
            return None;
        }
        Some(WorkspaceEvent {
            role: self.role,
            workspace_id: self.position.workspace_id,
            row,
        })
    }
}

/// The stream fields of `Workspace`.
pub struct LiveFields {
    workspace_id: Uuid,
}

impl From<&WorkspaceRow> for LiveFields {
    fn from(workspace: &WorkspaceRow) -> Self {
        Self {
            workspace_id: workspace.id,
        }
    }
}

/// Where the workspace's event stream is.
#[Object]
impl LiveFields {
    /// The workspace's event stream as of this read: subscribe to `workspaceEvents` with it
    /// as `after` to receive every change committed after it. Read it in a request before
    /// the one that reads the data a screen shows, so no change falls between the two
    /// (within a request, fields are read in no set order). Every role reads it.
    async fn events_cursor(&self, ctx: &Context<'_>) -> ApiResult<String> {
        let mut conn = request(ctx).db.conn_in(self.workspace_id).await?;
        Ok(model::now(&mut conn, self.workspace_id).await?.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::model::AuditRow;

    fn row(seq: i64, action: Action, conversation: &str) -> Arc<StreamRow> {
        Arc::new(StreamRow {
            event: AuditRow {
                id: Uuid::now_v7(),
                at: chrono::Utc::now(),
                actor_kind: "service".into(),
                actor_id: None,
                action: action.as_db().into(),
                target_kind: "conversation".into(),
                target_id: conversation.into(),
                changes: serde_json::Value::Null,
                request_id: None,
                client: None,
            },
            seq,
            audited: false,
        })
    }

    #[test]
    fn only_messages_added_again_to_the_same_conversation_supersede() {
        use Action::{ConversationClosed, ConversationMessagesAdded as Added};
        let later: VecDeque<_> = [row(2, Added, "a"), row(3, ConversationClosed, "b")].into();
        assert!(superseded(&row(1, Added, "a"), &later));
        assert!(
            !superseded(&row(1, Added, "b"), &later),
            "b is only closed later"
        );
        assert!(!superseded(&row(1, ConversationClosed, "a"), &later));
        assert!(!superseded(&row(1, Added, "a"), &VecDeque::new()));
    }
}
