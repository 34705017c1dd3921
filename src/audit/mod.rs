//! The audit log: what changed in a workspace, who changed it, and from where.
//!
//! Rules:
//! - The domain function that changes a workspace appends the change's event with
//!   [`record`], inside its own transaction: the event exists exactly when the change does,
//!   and a refused or failed change writes nothing. One event is one statement.
//! - An event names its actor ([`Trail`]: the principal's kind and id, the request id and
//!   the client's address), its [`Action`], its target, and the values that matter (the old
//!   and the new role, say). Events are only ever appended.
//! - Owners and Admins read them (`Workspace.auditLog`), newest first, filtered by
//!   actions, actor and time. Events older than the retention (`AUDIT_RETENTION_DAYS`,
//!   365 by default) are deleted by the scheduled scan ([`prune`]).

pub mod graphql;
pub mod model;

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use serde_json::Value;
use uuid::Uuid;

/// Who acts: the kind of principal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A person, signed in (a session).
    User,
    /// A person's personal access token.
    AccessToken,
    /// A service holding a service token (the agent runtime).
    Service,
    /// Stripe, through its webhooks.
    Stripe,
    /// The server itself (scheduled work).
    System,
}

impl PrincipalKind {
    pub const ALL: [PrincipalKind; 5] = [
        PrincipalKind::User,
        PrincipalKind::AccessToken,
        PrincipalKind::Service,
        PrincipalKind::Stripe,
        PrincipalKind::System,
    ];

    pub fn as_db(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::AccessToken => "access_token",
            PrincipalKind::Service => "service",
            PrincipalKind::Stripe => "stripe",
            PrincipalKind::System => "system",
        }
    }

    pub fn from_db(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_db() == text)
    }
}

/// The actor of a change and the request it came with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trail {
    pub kind: PrincipalKind,
    /// The person, for a session or an access token.
    pub actor_id: Option<Uuid>,
    pub request_id: Option<Uuid>,
    pub client: Option<IpAddr>,
}

impl Trail {
    /// The server's own work (a deleted workspace's subscription ended by the worker).
    pub fn system() -> Self {
        Trail {
            kind: PrincipalKind::System,
            actor_id: None,
            request_id: None,
            client: None,
        }
    }

    /// Stripe, telling us through a webhook or the reconciliation what changed.
    pub fn stripe() -> Self {
        Trail {
            kind: PrincipalKind::Stripe,
            actor_id: None,
            request_id: None,
            client: None,
        }
    }

    /// The person acting: a change only a person may make is UNAUTHENTICATED without one.
    pub fn person(&self) -> crate::error::ApiResult<Uuid> {
        self.actor_id
            .ok_or_else(crate::error::ApiError::unauthenticated)
    }
}

/// Every action, once: its name, what its `changes` hold, and its database name. The enum
/// below and its GraphQL mirror (`audit/graphql.rs`) are both made from this list, so a
/// feature's new action is one entry here (with its row in docs/security.md's audit table).
macro_rules! with_actions {
    ($then:ident) => {
        $then! {
            /// A member's role changed (`changes`: `role` from, to).
            MemberRoleChanged = "member.role_changed",
            /// A member was removed by an Owner or Admin (`changes`: their `role`).
            MemberRemoved = "member.removed",
            /// A member left (`changes`: their `role`).
            MemberLeft = "member.left",
            /// Ownership moved to the target (`changes`: `owner` from, to).
            OwnershipTransferred = "workspace.ownership_transferred",
            /// A resource (agent, contact, ...; the target's kind) was created (`changes`: `name`).
            ResourceCreated = "resource.created",
            /// A resource was changed (`changes`: `name` from, to, and `fields`, the fields set).
            ResourceUpdated = "resource.updated",
            /// A resource was deleted (`changes`: `name`).
            ResourceDeleted = "resource.deleted",
            /// Someone was invited (`changes`: `email`, `role`).
            InvitationSent = "invitation.sent",
            /// An invitation was sent again with a new link (`changes`: `email`).
            InvitationResent = "invitation.resent",
            /// An invitation was withdrawn (`changes`: `email`).
            InvitationRevoked = "invitation.revoked",
            /// The invitee joined (`changes`: `email`, `role`); the actor is the invitee.
            InvitationAccepted = "invitation.accepted",
            /// The invitee said no, through the link (`changes`: `email`).
            InvitationDeclined = "invitation.declined",
            /// The workspace was made (`changes`: `name`).
            WorkspaceCreated = "workspace.created",
            /// The workspace was renamed (`changes`: `name` from, to).
            WorkspaceRenamed = "workspace.renamed",
            /// The workspace was deleted (`changes`: `name`).
            WorkspaceDeleted = "workspace.deleted",
            /// The deleted workspace was restored by its Owner (`changes`: `name`).
            WorkspaceRestored = "workspace.restored",
            /// The Owner asked for an export of the workspace's data (`changes`: `export`,
            /// its id).
            WorkspaceExportRequested = "workspace.export_requested",
            /// The workspace's settings changed (`changes`: `timeZone`, `conversationRetentionDays`,
            /// each from, to, for those that changed).
            WorkspaceSettingsChanged = "workspace.settings_changed",
            /// A plan was chosen or changed (`changes`: `plan` from, to; `status` from, to).
            PlanSelected = "billing.plan_selected",
            /// The subscription was set to end with its period (`changes`: `periodEnd`).
            SubscriptionCanceled = "billing.subscription_canceled",
            /// A cancellation was undone (`changes`: `periodEnd`).
            SubscriptionResumed = "billing.subscription_resumed",
            /// Stripe changed the subscription's status (`changes`: `status` from, to); the actor
            /// is Stripe, or the person whose request learnt it.
            SubscriptionStatusChanged = "billing.status_changed",
            /// Reconciliation found in Stripe a subscription of the workspace's customer that the
            /// mirror did not hold, and adopted it (`changes`: `replaced`, the one held before;
            /// `ended`, duplicates ended, `refunded` those of them refunded).
            SubscriptionAdopted = "billing.subscription_adopted",
            /// Another saved card became the default (`changes`: `card`, its brand and last four
            /// digits).
            DefaultPaymentMethodChanged = "billing.default_card_changed",
            /// A saved card was removed (`changes`: `card`, and `default` when another card took
            /// its place).
            PaymentMethodRemoved = "billing.card_removed",
            /// The billing details were changed (`changes`: `fields`, the fields set).
            BillingDetailsUpdated = "billing.details_updated",
            /// A usage reached the plan's limit in the period (`changes`: `metric`, `threshold`
            /// 100, `used`, `limit`, `periodStart`).
            UsageLimitReached = "usage.limit_reached",
            /// A usage passed 80 % of the plan's limit in the period (`changes` as above, with
            /// `threshold` 80).
            UsageNearingLimit = "usage.nearing_limit",
            /// A service (the agent runtime) reported usage, first time in the day (`changes`:
            /// `metric`).
            ServiceAccessed = "service.accessed",
            /// A conversation was deleted with its messages (`changes`: `channel`, `messages`).
            ConversationDeleted = "conversation.deleted",
            /// A conversation started (`changes`: `channel`). In the workspace's event stream
            /// only: the runtime's writes are not in the audit log.
            ConversationStarted = "conversation.started",
            /// Messages were added to a conversation (`changes`: `messages`, how many). In the
            /// event stream only.
            ConversationMessagesAdded = "conversation.messages_added",
            /// A conversation ended (`changes`: `channel`). In the event stream only.
            ConversationClosed = "conversation.closed",
        }
    };
}
pub(crate) use with_actions;

macro_rules! action_enum {
    ($($(#[$doc:meta])* $variant:ident = $db:literal,)*) => {
        /// What happened. docs/security.md's audit table lists, for each mutation, the action it
        /// writes.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Action {
            $($(#[$doc])* $variant,)*
        }

        impl Action {
            pub const ALL: &'static [Action] = &[$(Action::$variant),*];

            pub fn as_db(self) -> &'static str {
                match self {
                    $(Action::$variant => $db,)*
                }
            }

            pub fn from_db(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|action| action.as_db() == text)
            }
        }
    };
}

with_actions!(action_enum);

/// What an event is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `user`, `invitation`, `agent`, ...
    pub kind: &'static str,
    pub id: String,
}

impl Target {
    pub fn user(id: Uuid) -> Self {
        Target {
            kind: "user",
            id: id.to_string(),
        }
    }

    pub fn workspace(id: Uuid) -> Self {
        Target {
            kind: "workspace",
            id: id.to_string(),
        }
    }

    /// A subscription or a card: Stripe's id.
    pub fn stripe(kind: &'static str, id: &str) -> Self {
        Target {
            kind,
            id: id.to_owned(),
        }
    }

    pub fn invitation(id: Uuid) -> Self {
        Target {
            kind: "invitation",
            id: id.to_string(),
        }
    }

    /// A resource of `kind` (`resources.kind`: `agent`, `phone_number`, ...).
    pub fn resource(kind: &'static str, id: Uuid) -> Self {
        Target {
            kind,
            id: id.to_string(),
        }
    }
}

/// One change, as recorded.
#[derive(Clone, Debug)]
pub struct Event {
    pub action: Action,
    pub target: Target,
    /// The values that matter, as `{ "field": { "from": .., "to": .. } }` or `{ "field": .. }`.
    pub changes: Value,
}

/// `{ field: { from, to } }`.
pub fn changed(field: &str, from: impl Into<Value>, to: impl Into<Value>) -> Value {
    serde_json::json!({ field: { "from": from.into(), "to": to.into() } })
}

/// Appends `event` to the workspace's log; call inside the transaction that makes the change.
/// Its subscribers are woken once the work that called this is over (src/live/wakes.rs).
pub async fn record(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    trail: &Trail,
    event: Event,
    now: DateTime<Utc>,
) -> diesel::QueryResult<()> {
    if let Some(seq) = model::insert(conn, workspace_id, trail, &event, now).await? {
        crate::live::wakes::note(workspace_id, seq);
    }
    Ok(())
}

/// How long events are kept by default.
pub const DEFAULT_RETENTION_DAYS: i64 = crate::config::DEFAULT_AUDIT_RETENTION_DAYS;

/// Deletes events older than `retention` before `now`, in every workspace; returns how many.
pub async fn prune(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    retention: chrono::Duration,
) -> diesel::QueryResult<usize> {
    model::prune(conn, now - retention).await
}
