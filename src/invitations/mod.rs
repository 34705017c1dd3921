//! Invitations: Owners and Admins invite by email with a role; the invitee accepts with
//! the link token from the email.
//!
//! Rules: only the Owner invites an Owner (accepting such an invitation transfers ownership,
//! the previous Owner becoming Admin). The link token is minted when the email is sent,
//! stored only as a hash, single use and valid [`VALIDITY`]; a resend rotates it (the old
//! link dies at once) and restarts the expiry. Accepting needs a signed-in account whose
//! email equals the invited one (case-insensitive); invalid, expired, revoked, used and
//! foreign tokens all get the same answer. Inviting a member or an address with a pending
//! invitation is a `CONFLICT`.
//!
//! Rate limits (sends = invitations created plus resends, over the last 24 hours; numbers
//! from peers: Twenty allows 500 per workspace and 10 per address per week):
//! [`SENDS_PER_WORKSPACE_PER_DAY`] per workspace, [`SENDS_PER_ADDRESS_PER_DAY`] to one
//! address from one workspace, [`SENDS_PER_INVITATION_PER_DAY`] of one invitation, and
//! [`SENDS_PER_INVITER_PER_DAY`] by one person across all their workspaces. Every cap is
//! counted only from the sender's side, so no tenant can spend another's: there is no cap
//! per address across workspaces. Each aliased send in one operation counts.

pub mod graphql;
pub mod jobs;
pub mod model;

use chrono::{DateTime, Duration, Utc};
use diesel_async::AsyncPgConnection;
use linkai_jobs::Payload;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use self::model::InvitationRow;
use crate::audit::{self, Event, PrincipalKind, Target, Trail};
use crate::auth::token;
use crate::db::is_unique_violation;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::outbox;
use crate::roles::{self, Role};
use crate::text::EmailAddress;
use crate::workspaces::lock_caller_role;

pub const VALIDITY: Duration = Duration::days(7);
/// How long a send counts toward the limits below; older ones are forgotten.
pub const SENDS_COUNT_FOR: Duration = Duration::days(1);
pub const SENDS_PER_WORKSPACE_PER_DAY: i64 = 100;
pub const SENDS_PER_ADDRESS_PER_DAY: i64 = 5;
pub const SENDS_PER_INVITATION_PER_DAY: i64 = 5;
pub const SENDS_PER_INVITER_PER_DAY: crate::throttle::Window = crate::throttle::Window {
    name: "invite:inviter",
    limit: 200,
    window: std::time::Duration::from_secs(24 * 3600),
};

/// Where an invitation stands (GraphQL's `InvitationStatus` is its mirror in
/// `invitations::graphql`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvitationStatus {
    /// Waiting for the invitee.
    Pending,
    /// The invitee joined.
    Accepted,
    /// The invitee said no.
    Declined,
    /// An Owner or Admin withdrew it.
    Revoked,
    /// It ran out; it can be resent.
    Expired,
}

/// Job: email the invitation link ([`jobs`]). `delivery` counts sends (1 at creation, +1
/// per resend), so a duplicate of an old delivery is skipped.
#[derive(Debug, Serialize, Deserialize)]
pub struct SendInvitation {
    pub invitation_id: Uuid,
    pub delivery: i32,
}

impl Payload for SendInvitation {
    const KIND: &'static str = "send_invitation";
}

#[derive(Debug, thiserror::Error)]
pub enum InvitationError {
    #[error("This invitation link is invalid or has expired.")]
    InvalidLink,
    #[error("Invitation not found.")]
    NotFound,
    #[error("This person is already a member of the workspace.")]
    AlreadyMember,
    #[error("This address already has a pending invitation: resend it instead.")]
    AlreadyInvited,
    #[error("This invitation is no longer pending.")]
    NotPending,
    #[error("Only the Owner can invite someone as Owner.")]
    OwnerOnly,
    #[error("{0}")]
    RateLimited(&'static str),
}

impl From<InvitationError> for ApiError {
    fn from(err: InvitationError) -> Self {
        let code = match err {
            InvitationError::InvalidLink | InvitationError::NotFound => ErrorCode::NotFound,
            InvitationError::AlreadyMember
            | InvitationError::AlreadyInvited
            | InvitationError::NotPending => ErrorCode::Conflict,
            InvitationError::OwnerOnly => ErrorCode::Forbidden,
            InvitationError::RateLimited(_) => ErrorCode::RateLimited,
        };
        ApiError::new(code, err.to_string())
    }
}

/// Forgets the sends that no longer count toward a limit, in every workspace (the
/// scheduled round, `src/worker.rs`); returns how many.
pub async fn forget_old_sends(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
) -> diesel::QueryResult<usize> {
    model::forget_sends_before(conn, now - SENDS_COUNT_FOR).await
}

/// Refuses a send past any of the limits.
async fn check_rate_limits(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    inviter: Uuid,
    email: &str,
    invitation_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let (by_workspace, to_address, of_invitation) = model::sends_since(
        conn,
        workspace_id,
        email,
        invitation_id,
        now - SENDS_COUNT_FOR,
    )
    .await?;
    let limited = if by_workspace >= SENDS_PER_WORKSPACE_PER_DAY {
        Some("This workspace has sent too many invitations today. Try again tomorrow.")
    } else if to_address >= SENDS_PER_ADDRESS_PER_DAY {
        Some("This workspace has invited this address too often today. Try again tomorrow.")
    } else if of_invitation >= SENDS_PER_INVITATION_PER_DAY {
        Some("This invitation has been sent too often today. Try again tomorrow.")
    } else {
        None
    };
    if let Some(message) = limited {
        return Err(InvitationError::RateLimited(message).into());
    }
    SENDS_PER_INVITER_PER_DAY
        .hit(conn, &inviter.to_string(), now)
        .await??;
    Ok(())
}

/// Records a send and enqueues its email, in the caller's transaction.
async fn send(
    conn: &mut AsyncPgConnection,
    invitation: &InvitationRow,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    model::record_send(conn, invitation, now).await?;
    let job = SendInvitation {
        invitation_id: invitation.id,
        delivery: invitation.delivery,
    };
    outbox::enqueue(conn, &job).await?;
    Ok(())
}

/// Appends the invitation's audit event, in the caller's transaction.
async fn logged(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    action: audit::Action,
    invitation: &InvitationRow,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let mut changes = serde_json::json!({ "email": invitation.email });
    if matches!(
        action,
        audit::Action::InvitationSent | audit::Action::InvitationAccepted
    ) {
        changes["role"] = invitation.role().as_db().into();
    }
    let event = Event {
        action,
        target: Target::invitation(invitation.id),
        changes,
    };
    audit::record(conn, invitation.workspace_id, trail, event, now).await?;
    Ok(())
}

/// Creates an invitation and enqueues its email; writes `invitation.sent`. Call inside a
/// transaction.
pub async fn invite(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    workspace_id: Uuid,
    email: &EmailAddress,
    role: Role,
    now: DateTime<Utc>,
) -> ApiResult<InvitationRow> {
    let actor = trail.person()?;
    let actor_role = lock_caller_role(conn, workspace_id, actor).await?;
    if !roles::allows(actor_role, roles::Action::ManageMembers) {
        return Err(ApiError::forbidden("Only Owners and Admins invite."));
    }
    if !roles::may_invite_as(actor_role, role) {
        return Err(InvitationError::OwnerOnly.into());
    }
    if model::is_member_email(conn, workspace_id, email.as_str()).await? {
        return Err(InvitationError::AlreadyMember.into());
    }
    model::expire_lapsed(conn, workspace_id, email.as_str(), now).await?;
    check_rate_limits(conn, workspace_id, actor, email.as_str(), None, now).await?;
    let invitation = model::insert(conn, workspace_id, email.as_str(), role, actor, now)
        .await
        .map_err(|err| {
            if is_unique_violation(&err, model::ONE_PENDING_PER_EMAIL) {
                InvitationError::AlreadyInvited.into()
            } else {
                ApiError::from(err)
            }
        })?;
    send(conn, &invitation, now).await?;
    logged(conn, trail, audit::Action::InvitationSent, &invitation, now).await?;
    Ok(invitation)
}

/// What an Owner or Admin can do to a pending (or expired) invitation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingChange {
    /// Send it again with a new link (the old one dies) and a fresh expiry.
    Resend,
    /// Withdraw it; its link stops working.
    Revoke,
}

/// Applies `change` to a pending invitation of the workspace; writes `invitation.resent`
/// or `invitation.revoked`. Call inside a transaction.
pub async fn change_pending(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    workspace_id: Uuid,
    invitation_id: Uuid,
    change: PendingChange,
    now: DateTime<Utc>,
) -> ApiResult<InvitationRow> {
    let actor = trail.person()?;
    let actor_role = lock_caller_role(conn, workspace_id, actor).await?;
    let invitation = model::find_in_workspace(conn, workspace_id, invitation_id)
        .await?
        .ok_or(InvitationError::NotFound)?;
    if change == PendingChange::Resend && !roles::may_invite_as(actor_role, invitation.role()) {
        return Err(InvitationError::OwnerOnly.into());
    }
    if invitation.status != "pending" {
        return Err(InvitationError::NotPending.into());
    }
    match change {
        PendingChange::Resend => {
            check_rate_limits(
                conn,
                workspace_id,
                actor,
                &invitation.email,
                Some(invitation.id),
                now,
            )
            .await?;
            let invitation = model::rotate_for_resend(conn, &invitation, now).await?;
            send(conn, &invitation, now).await?;
            logged(
                conn,
                trail,
                audit::Action::InvitationResent,
                &invitation,
                now,
            )
            .await?;
            Ok(invitation)
        }
        PendingChange::Revoke => {
            let invitation = model::set_status(conn, &invitation, "revoked", now).await?;
            logged(
                conn,
                trail,
                audit::Action::InvitationRevoked,
                &invitation,
                now,
            )
            .await?;
            Ok(invitation)
        }
    }
}

/// The pending, unexpired invitation a token opens, locked; every other case is the same
/// `InvalidLink`.
async fn open(
    conn: &mut AsyncPgConnection,
    token: &str,
    now: DateTime<Utc>,
) -> ApiResult<InvitationRow> {
    model::find_by_token_for_update(conn, &token::hash(token))
        .await?
        .filter(|invitation| invitation.status(now) == InvitationStatus::Pending)
        .ok_or_else(|| InvitationError::InvalidLink.into())
}

/// Joins `user_id` (whose email is `user_email`) to the invitation's workspace; an OWNER
/// invitation transfers ownership. Writes `invitation.accepted`, the invitee acting
/// through the request of `trail`. Returns the workspace id. Call inside a transaction.
pub async fn accept(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    token: &str,
    user_id: Uuid,
    user_email: &str,
    now: DateTime<Utc>,
) -> ApiResult<Uuid> {
    let invitation = open(conn, token, now).await?;
    if invitation.email.to_lowercase() != user_email.to_lowercase() {
        return Err(InvitationError::InvalidLink.into());
    }
    let workspace_id = invitation.workspace_id;
    let current =
        crate::workspaces::model::lock_for_membership_change(conn, workspace_id, user_id).await?;
    let role = invitation.role();
    match (current, role) {
        (Some(Role::Owner), _) => {}
        (_, Role::Owner) => {
            if current.is_none() {
                crate::members::model::add(conn, workspace_id, user_id, Role::Admin, now).await?;
            }
            let owner = crate::members::model::owner_of(conn, workspace_id)
                .await?
                .ok_or_else(|| ApiError::internal(&"workspace without owner"))?;
            crate::members::hand_over(conn, workspace_id, owner, user_id).await?;
        }
        (Some(_), _) => {}
        (None, role) => crate::members::model::add(conn, workspace_id, user_id, role, now).await?,
    }
    let invitation = model::set_status(conn, &invitation, "accepted", now).await?;
    // The token came by email to this address: that proves it.
    crate::auth::model::mark_email_verified(conn, user_id, now).await?;
    let invitee = Trail {
        kind: PrincipalKind::User,
        actor_id: Some(user_id),
        ..trail.clone()
    };
    logged(
        conn,
        &invitee,
        audit::Action::InvitationAccepted,
        &invitation,
        now,
    )
    .await?;
    Ok(workspace_id)
}

/// The invitee says no, through the link alone (the actor is whoever holds it); writes
/// `invitation.declined`. Call inside a transaction.
pub async fn decline(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    token: &str,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let invitation = open(conn, token, now).await?;
    let invitation = model::set_status(conn, &invitation, "declined", now).await?;
    logged(
        conn,
        trail,
        audit::Action::InvitationDeclined,
        &invitation,
        now,
    )
    .await?;
    Ok(())
}
