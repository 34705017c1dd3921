//! Members of a workspace and their roles: listing, changing roles, removing, and
//! transferring ownership.
//!
//! Rules: exactly one Owner per workspace, always (a partial unique index allows at most one;
//! a deferred constraint trigger requires one at every commit). Only the Owner changes
//! roles; promoting someone to Owner is a transfer, and the old Owner becomes Admin in the
//! same transaction. Owners and Admins remove members; nobody removes the Owner. Every
//! change takes the workspace's row lock first (`lock_for_membership_change`), so concurrent
//! changes serialise and re-check the rules against the current roles.
//!
//! Each change below runs in its own transaction and appends its audit event there
//! ([`crate::audit`]); a refused change writes nothing.

pub mod graphql;
pub mod model;

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use uuid::Uuid;

use self::model::MemberRow;
use crate::audit::{self, Event, Target, Trail};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::roles::{self, Action, Role};
use crate::workspaces::lock_caller_role;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MemberError {
    #[error("Member not found.")]
    NotFound,
    #[error("Only the Owner can change roles.")]
    OnlyOwnerChangesRoles,
    #[error("The Owner keeps the OWNER role until ownership is transferred to someone else.")]
    OwnerKeepsRole,
    #[error("Only Owners and Admins remove members.")]
    OnlyAdminsRemove,
    #[error("Nobody can remove the Owner.")]
    OwnerStays,
    #[error("Only the Owner can transfer ownership.")]
    OnlyOwnerTransfers,
    #[error("You already own this workspace.")]
    AlreadyOwner,
    #[error("The Owner cannot leave: transfer ownership or delete the workspace first.")]
    OwnerCannotLeave,
}

impl From<MemberError> for ApiError {
    fn from(err: MemberError) -> Self {
        let code = match err {
            MemberError::NotFound => ErrorCode::NotFound,
            MemberError::AlreadyOwner => ErrorCode::BadUserInput,
            _ => ErrorCode::Forbidden,
        };
        ApiError::new(code, err.to_string())
    }
}

/// Gives `target` the role `role`; `OWNER` transfers ownership (the Owner becomes Admin).
/// Writes `member.role_changed`, or `workspace.ownership_transferred` for a transfer.
pub async fn change_role(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    workspace_id: Uuid,
    target: Uuid,
    role: Role,
    now: DateTime<Utc>,
) -> ApiResult<MemberRow> {
    conn.transaction(async |conn| {
        let actor = trail.person()?;
        let actor_role = lock_caller_role(conn, workspace_id, actor).await?;
        if !roles::allows(actor_role, Action::ChangeRoles) {
            return Err(MemberError::OnlyOwnerChangesRoles.into());
        }
        let target_role = model::role_of(conn, workspace_id, target)
            .await?
            .ok_or(MemberError::NotFound)?;
        let event = match (target_role, role) {
            (Role::Owner, Role::Owner) => None,
            (Role::Owner, _) => return Err(MemberError::OwnerKeepsRole.into()),
            (_, Role::Owner) => {
                hand_over(conn, workspace_id, actor, target).await?;
                Some(transferred(actor, target))
            }
            (from, to) if from == to => None,
            (from, to) => {
                model::set_role(conn, workspace_id, target, to).await?;
                Some(Event {
                    action: audit::Action::MemberRoleChanged,
                    target: Target::user(target),
                    changes: audit::changed("role", from.as_db(), to.as_db()),
                })
            }
        };
        if let Some(event) = event {
            audit::record(conn, workspace_id, trail, event, now).await?;
        }
        Ok(model::find(conn, workspace_id, target)
            .await?
            .ok_or(MemberError::NotFound)?)
    })
    .await
}

fn transferred(from: Uuid, to: Uuid) -> Event {
    Event {
        action: audit::Action::OwnershipTransferred,
        target: Target::user(to),
        changes: audit::changed("owner", from.to_string(), to.to_string()),
    }
}

/// Removes `target` (their work stays); nobody removes the Owner. Writes `member.removed`.
pub async fn remove(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    workspace_id: Uuid,
    target: Uuid,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    conn.transaction(async |conn| {
        let actor_role = lock_caller_role(conn, workspace_id, trail.person()?).await?;
        if !roles::allows(actor_role, Action::ManageMembers) {
            return Err(MemberError::OnlyAdminsRemove.into());
        }
        let target_role = model::role_of(conn, workspace_id, target)
            .await?
            .ok_or(MemberError::NotFound)?;
        if !roles::may_remove(actor_role, target_role) {
            return Err(MemberError::OwnerStays.into());
        }
        let gone = Departure {
            action: audit::Action::MemberRemoved,
            user: target,
            role: target_role,
        };
        depart(conn, trail, workspace_id, gone, now).await
    })
    .await
}

/// Someone leaving the workspace, removed or by their own choice.
struct Departure {
    action: audit::Action,
    user: Uuid,
    role: Role,
}

/// Takes the member out (their work stays), and writes the departure's event.
async fn depart(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    workspace_id: Uuid,
    gone: Departure,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    model::remove(conn, workspace_id, gone.user).await?;
    crate::auth::model::clear_active_workspace(conn, gone.user, workspace_id).await?;
    let event = Event {
        action: gone.action,
        target: Target::user(gone.user),
        changes: serde_json::json!({ "role": gone.role.as_db() }),
    };
    audit::record(conn, workspace_id, trail, event, now).await?;
    Ok(())
}

/// Hands ownership to another member; the Owner becomes Admin. Writes
/// `workspace.ownership_transferred`.
pub async fn transfer_ownership(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    workspace_id: Uuid,
    target: Uuid,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    conn.transaction(async |conn| {
        let actor = trail.person()?;
        if !roles::allows(
            lock_caller_role(conn, workspace_id, actor).await?,
            Action::TransferOwnership,
        ) {
            return Err(MemberError::OnlyOwnerTransfers.into());
        }
        if target == actor {
            return Err(MemberError::AlreadyOwner.into());
        }
        model::role_of(conn, workspace_id, target)
            .await?
            .ok_or(MemberError::NotFound)?;
        hand_over(conn, workspace_id, actor, target).await?;
        audit::record(conn, workspace_id, trail, transferred(actor, target), now).await?;
        Ok(())
    })
    .await
}

/// The actor leaves the workspace; the Owner cannot. Writes `member.left`.
pub async fn leave(
    conn: &mut AsyncPgConnection,
    trail: &Trail,
    workspace_id: Uuid,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    conn.transaction(async |conn| {
        let actor = trail.person()?;
        let role = lock_caller_role(conn, workspace_id, actor).await?;
        if !roles::allows(role, Action::Leave) {
            return Err(MemberError::OwnerCannotLeave.into());
        }
        let gone = Departure {
            action: audit::Action::MemberLeft,
            user: actor,
            role,
        };
        depart(conn, trail, workspace_id, gone, now).await
    })
    .await
}

/// Makes `new_owner` the Owner and the current one an Admin, and queues the update of the
/// Stripe customer's email to the new Owner's, in the caller's transaction.
pub async fn hand_over(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    current_owner: Uuid,
    new_owner: Uuid,
) -> diesel::QueryResult<()> {
    model::transfer_ownership(conn, workspace_id, current_owner, new_owner).await?;
    crate::outbox::enqueue(
        conn,
        &crate::billing::sync::UpdateBillingEmail { workspace_id },
    )
    .await
}
