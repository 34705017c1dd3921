//! The invitation email: minted, sent, then recorded as delivered.

use chrono::Utc;
use diesel_async::AsyncConnection as _;
use linkai_jobs::email::{messages, when};

use super::{model, InvitationStatus, SendInvitation};
use crate::auth::token::{self, TokenKind};
use crate::jobs::{Handlers, JobContext};

pub fn register(handlers: Handlers) -> Handlers {
    handlers.on(send_invitation)
}

/// Sends the link of a pending invitation's current delivery: the token is minted right
/// before the email goes, and the delivery recorded after, so a duplicate job or a resend's
/// older job sends nothing. A retry after a send whose record was lost sends a second
/// link; the first keeps working (migration 000040 keeps every link of the delivery).
async fn send_invitation(job: SendInvitation, cx: JobContext) -> anyhow::Result<()> {
    let mut conn = cx.db.conn().await?;
    let email = conn
        .transaction(async |conn| {
            let Some(preview) = model::lock_for_delivery(conn, job.invitation_id).await? else {
                return anyhow::Ok(None);
            };
            let invitation = &preview.invitation;
            let due = invitation.status(Utc::now()) == InvitationStatus::Pending
                && invitation.delivery == job.delivery
                && invitation.delivered < job.delivery;
            if !due {
                return Ok(None);
            }
            let minted = token::mint(TokenKind::Invitation);
            model::set_token(conn, invitation, &minted.hash).await?;
            let message = messages::Invitation {
                workspace: preview.workspace_name.clone(),
                inviter: preview
                    .inviter_name
                    .clone()
                    .unwrap_or_else(|| "A teammate".into()),
                role: invitation.role().title().into(),
                link: cx.token_link("invitations/accept", &minted.plaintext),
                expires: when(invitation.expires_at),
            };
            Ok(Some((
                invitation.email.clone(),
                invitation.workspace_id,
                message,
            )))
        })
        .await?;
    let Some((to, workspace_id, message)) = email else {
        tracing::debug!("invitation no longer due");
        return Ok(());
    };
    drop(conn);
    cx.send(&to, &message).await?;
    let mut conn = cx.db.conn_in(workspace_id).await?;
    model::mark_delivered(&mut conn, workspace_id, job.invitation_id, job.delivery).await?;
    Ok(())
}
