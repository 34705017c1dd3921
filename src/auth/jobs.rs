//! The account's emails: links (verification, reset, address change, finishing a sign-up)
//! and notices (password changed, account deleted, address change asked, sign-up tried,
//! many wrong passwords).
//!
//! Delivery is at least once: a link's token is minted (only its hash stored) right before
//! its email is sent, and the send recorded after, so a later duplicate of the job is
//! skipped; a crash between the two sends a second email with a second link, and both work
//! (migration 000040).

use chrono::Utc;
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use linkai_jobs::email::{messages, render, when, Email};
use uuid::Uuid;

use super::model::{self as accounts, LinkPurpose};
use super::token::{self, TokenKind};
use super::{
    ProcessPasswordReset, ProcessSignUp, SendAccountNotice, SendEmailChange, SendEmailVerification,
};
use crate::jobs::{Handlers, JobContext};

pub fn register(handlers: Handlers) -> Handlers {
    handlers
        .on(|job: SendEmailVerification, cx| {
            account_link(job.token_id, LinkPurpose::VerifyEmail, cx)
        })
        .on(|job: SendEmailChange, cx| account_link(job.token_id, LinkPurpose::ChangeEmail, cx))
        .on(process_password_reset)
        .on(process_sign_up)
        .on(send_account_notice)
}

/// Sends an account link unless it was sent, used or expired already.
async fn account_link(token_id: Uuid, purpose: LinkPurpose, cx: JobContext) -> anyhow::Result<()> {
    let mut conn = cx.db.conn().await?;
    let email = conn
        .transaction(async |conn| link_email(conn, &cx, token_id, purpose).await)
        .await?;
    if let Some(email) = email {
        cx.deliver(&email).await?;
        accounts::mark_account_token_sent(&mut conn, token_id, Utc::now()).await?;
    }
    Ok(())
}

/// On its first run, makes the reset link if an account has the address and its hourly cap
/// allows; a later run finds the link it made. Then sends it like any account link.
async fn process_password_reset(job: ProcessPasswordReset, cx: JobContext) -> anyhow::Result<()> {
    let mut conn = cx.db.conn().await?;
    let sent = conn
        .transaction(async |conn| {
            let Some(token_id) = reset_link(conn, job.request_id).await? else {
                return anyhow::Ok(None);
            };
            let email = link_email(conn, &cx, token_id, LinkPurpose::ResetPassword).await?;
            Ok(email.map(|email| (token_id, email)))
        })
        .await?;
    if let Some((token_id, email)) = sent {
        cx.deliver(&email).await?;
        accounts::mark_account_token_sent(&mut conn, token_id, Utc::now()).await?;
    }
    Ok(())
}

async fn process_sign_up(job: ProcessSignUp, cx: JobContext) -> anyhow::Result<()> {
    let mut conn = cx.db.conn().await?;
    let email = conn
        .transaction(async |conn| sign_up_email(conn, &cx, job.request_id).await)
        .await?;
    if let Some(email) = email {
        cx.deliver(&email).await?;
        accounts::mark_sign_up_sent(&mut conn, job.request_id, Utc::now()).await?;
    }
    Ok(())
}

/// Sends a recorded notice, then forgets it (with the address it was sent to).
async fn send_account_notice(job: SendAccountNotice, cx: JobContext) -> anyhow::Result<()> {
    let mut conn = cx.db.conn().await?;
    let Some((kind, to, name, detail)) = accounts::unsent_notice(&mut conn, job.notice_id).await?
    else {
        return Ok(());
    };
    let link = cx.page("reset-password");
    let email = match kind.as_str() {
        "password_changed" => render(&to, &messages::PasswordChanged { name, link }),
        "account_deleted" => render(&to, &messages::AccountDeleted { name }),
        "sign_in_failures" => render(&to, &messages::SignInFailures { name, link }),
        "email_change_requested" => render(
            &to,
            &messages::EmailChangeRequested {
                name,
                link,
                address: detail.unwrap_or_default(),
            },
        ),
        other => anyhow::bail!("unknown account notice `{other}`"),
    };
    cx.deliver(&email).await?;
    accounts::forget_notice(&mut conn, job.notice_id).await?;
    Ok(())
}

/// The email a sign-up request gets: the link that finishes it (minted now), or, when an
/// account has the address, a note to that account's owner. Nothing if it was sent or
/// followed already; a request that expired or whose address had its hourly share is
/// forgotten instead.
async fn sign_up_email(
    conn: &mut AsyncPgConnection,
    cx: &JobContext,
    request_id: Uuid,
) -> anyhow::Result<Option<Email>> {
    let Some(pending) = accounts::lock_sign_up_request(conn, request_id).await? else {
        return Ok(None);
    };
    let now = Utc::now();
    if pending.sent_at.is_some() {
        return Ok(None);
    }
    // A retry of a request already taken on (its send failed) goes ahead without counting
    // twice.
    let taken_on = pending.expires_at > now
        && (pending.claimed_at.is_some()
            || accounts::claim_sign_up_email(
                conn,
                request_id,
                &pending.email,
                now - chrono::Duration::hours(1),
                super::SIGN_UP_EMAILS_PER_HOUR,
                now,
            )
            .await?);
    if !taken_on {
        accounts::forget_sign_up(conn, request_id).await?;
        return Ok(None);
    }
    if let Some((user_id, _)) = accounts::find_credentials(conn, &pending.email).await? {
        let Some(owner) = accounts::find_user(conn, user_id).await? else {
            return Ok(None);
        };
        let message = messages::SignUpAttempted {
            name: owner.name,
            link: cx.page("reset-password"),
        };
        return Ok(Some(render(&owner.email, &message)));
    }
    let minted = token::mint(TokenKind::AccountLink);
    accounts::set_sign_up_token(conn, request_id, &minted.hash).await?;
    let message = messages::CompleteSignUp {
        name: pending.name,
        link: cx.token_link("complete-sign-up", &minted.plaintext),
        expires: when(pending.expires_at),
    };
    Ok(Some(render(&pending.email, &message)))
}

/// The link a reset request makes: on its first run, if an account has the address and
/// its hourly cap allows, a new reset token; later runs find the one it made.
async fn reset_link(
    conn: &mut AsyncPgConnection,
    request_id: Uuid,
) -> anyhow::Result<Option<Uuid>> {
    let Some((email, processed, made)) = accounts::lock_reset_request(conn, request_id).await?
    else {
        return Ok(None);
    };
    if processed.is_some() {
        return Ok(made);
    }
    let now = Utc::now();
    let mut made = None;
    if let Some((user_id, _)) = accounts::find_credentials(conn, &email).await? {
        let recent = accounts::account_tokens_since(
            conn,
            user_id,
            LinkPurpose::ResetPassword,
            now - chrono::Duration::hours(1),
        )
        .await?;
        if recent < super::RESETS_PER_HOUR {
            let expires = now + super::RESET_PASSWORD_VALIDITY;
            made = Some(
                accounts::insert_account_token(
                    conn,
                    user_id,
                    LinkPurpose::ResetPassword,
                    expires,
                    None,
                )
                .await?,
            );
        }
    }
    accounts::finish_reset_request(conn, request_id, made, now).await?;
    Ok(made)
}

/// The email for an account link, minting its token, unless it was sent, used or expired
/// already. A retry after a send whose record was lost mints another; the link emailed
/// first keeps working too (migration 000040). An address change is confirmed at the new address; the other links go to the
/// account's.
async fn link_email(
    conn: &mut AsyncPgConnection,
    cx: &JobContext,
    token_id: Uuid,
    purpose: LinkPurpose,
) -> anyhow::Result<Option<Email>> {
    let Some((link, user)) = accounts::lock_account_token(conn, token_id).await? else {
        return Ok(None);
    };
    let due = link.sent_at.is_none() && link.used_at.is_none() && link.expires_at > Utc::now();
    if !due {
        return Ok(None);
    }
    let minted = token::mint(TokenKind::AccountLink);
    accounts::set_account_token_hash(conn, token_id, &minted.hash).await?;
    let expires = when(link.expires_at);
    let name = user.name;
    let to = link.new_email.unwrap_or(user.email);
    let email = match purpose {
        LinkPurpose::ResetPassword => render(
            &to,
            &messages::ResetPassword {
                name,
                link: cx.token_link("reset-password", &minted.plaintext),
                expires,
            },
        ),
        LinkPurpose::VerifyEmail => render(
            &to,
            &messages::VerifyEmail {
                name,
                link: cx.token_link("verify-email", &minted.plaintext),
                expires,
            },
        ),
        LinkPurpose::ChangeEmail => {
            let message = messages::ConfirmEmailChange {
                name,
                address: to.clone(),
                link: cx.token_link("confirm-email-change", &minted.plaintext),
                expires,
            };
            render(&to, &message)
        }
    };
    Ok(Some(email))
}
