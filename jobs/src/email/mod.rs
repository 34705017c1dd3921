//! Emails: templates embedded at compile time (subject, text and HTML over one layout),
//! rendering with HTML escaping, and the transport chosen once at start.

mod transport;

pub use transport::Mailer;

use crate::store::{AccountEmail, AccountNotice, Notice, NoticeEmail, TokenEmail, TokenEmailKind};
use crate::{CardNotice, TrialNotice};

/// A rendered email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

struct Template {
    subject: &'static str,
    text: &'static str,
    html: &'static str,
}

macro_rules! template {
    ($name:literal) => {
        Template {
            subject: include_str!(concat!("templates/", $name, "/subject.txt")),
            text: include_str!(concat!("templates/", $name, "/body.txt")),
            html: include_str!(concat!("templates/", $name, "/body.html")),
        }
    };
}

const LAYOUT: &str = include_str!("templates/layout.html");

/// Renders a token email; links are built from `app_url`.
pub fn render(email: &TokenEmail, app_url: &str) -> Email {
    let expires = email
        .expires_at
        .format("%B %-d, %Y at %H:%M UTC")
        .to_string();
    let link = |path: &str| format!("{app_url}/{path}?token={}", email.token);
    let (template, link, mut vars) = match &email.kind {
        TokenEmailKind::Invitation {
            workspace_name,
            inviter_name,
            role,
        } => (
            template!("invitation"),
            link("invitations/accept"),
            vec![
                ("workspace", workspace_name.as_str()),
                ("inviter", inviter_name.as_str()),
                ("role", role.as_str()),
            ],
        ),
        TokenEmailKind::VerifyEmail { name } => (
            template!("verify_email"),
            link("verify-email"),
            vec![("name", name.as_str())],
        ),
        TokenEmailKind::CompleteSignUp { name } => (
            template!("complete_sign_up"),
            link("complete-sign-up"),
            vec![("name", name.as_str())],
        ),
        TokenEmailKind::ResetPassword { name } => (
            template!("reset_password"),
            link("reset-password"),
            vec![("name", name.as_str())],
        ),
        TokenEmailKind::ConfirmEmailChange { name } => (
            template!("confirm_email_change"),
            link("confirm-email-change"),
            vec![("name", name.as_str()), ("address", email.to.as_str())],
        ),
    };
    vars.push(("link", &link));
    vars.push(("expires", &expires));
    // Subjects are one line whatever a name holds.
    let subject = fill(template.subject.trim(), &vars, Escape::None).replace(['\r', '\n'], " ");
    let content = fill(template.html, &vars, Escape::Html);
    let html = fill(
        LAYOUT,
        &[("subject", &subject), ("content", &content)],
        Escape::Layout,
    );
    Email {
        to: email.to.clone(),
        text: fill(template.text, &vars, Escape::None),
        html,
        subject,
    }
}

/// Renders a trial notice for one recipient.
pub fn render_notice(notice: &NoticeEmail, app_url: &str) -> Email {
    let ends = notice
        .trial_ends_at
        .format("%B %-d, %Y at %H:%M UTC")
        .to_string();
    let days = match notice.notice {
        Notice::Trial(trial) => trial.days_before_end().to_string(),
        Notice::PaymentFailed | Notice::Card(_) => String::new(),
    };
    let plural = if days == "1" { "" } else { "s" };
    let link = format!("{app_url}/settings/billing");
    let template = match notice.notice {
        Notice::Trial(TrialNotice::Expired) => template!("trial_expired"),
        Notice::Trial(_) => template!("trial_reminder"),
        Notice::PaymentFailed => template!("payment_failed"),
        Notice::Card(CardNotice::ExpiresSoon) => template!("card_expires_soon"),
        Notice::Card(CardNotice::Expired) => template!("card_expired"),
    };
    let vars = [
        ("name", notice.name.as_str()),
        ("workspace", notice.workspace_name.as_str()),
        ("days", days.as_str()),
        ("plural", plural),
        ("ends", ends.as_str()),
        ("link", link.as_str()),
        ("card", notice.card.as_str()),
    ];
    let subject = fill(template.subject.trim(), &vars, Escape::None).replace(['\r', '\n'], " ");
    let content = fill(template.html, &vars, Escape::Html);
    Email {
        to: notice.to.clone(),
        text: fill(template.text, &vars, Escape::None),
        html: fill(
            LAYOUT,
            &[("subject", &subject), ("content", &content)],
            Escape::Layout,
        ),
        subject,
    }
}

/// Renders a notice about the recipient's own account.
pub fn render_account(email: &AccountEmail, app_url: &str) -> Email {
    let template = match email.notice {
        AccountNotice::PasswordChanged => template!("password_changed"),
        AccountNotice::AccountDeleted => template!("account_deleted"),
        AccountNotice::EmailChangeRequested => template!("email_change_requested"),
        AccountNotice::SignUpAttempted => template!("sign_up_attempted"),
    };
    let link = format!("{app_url}/reset-password");
    let vars = [
        ("name", email.name.as_str()),
        ("link", link.as_str()),
        ("address", email.detail.as_str()),
    ];
    let subject = fill(template.subject.trim(), &vars, Escape::None).replace(['\r', '\n'], " ");
    let content = fill(template.html, &vars, Escape::Html);
    Email {
        to: email.to.clone(),
        text: fill(template.text, &vars, Escape::None),
        html: fill(
            LAYOUT,
            &[("subject", &subject), ("content", &content)],
            Escape::Layout,
        ),
        subject,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Escape {
    None,
    Html,
    /// The layout: escape the subject, keep the already-escaped content as is.
    Layout,
}

/// Replaces `{{key}}` placeholders with `vars`.
fn fill(template: &str, vars: &[(&str, &str)], escape: Escape) -> String {
    let mut out = String::with_capacity(template.len() + 128);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let key = after[..end].trim();
        let value = vars.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        // A placeholder its email gives no value for is a misspelling: every email is
        // rendered by a snapshot test (`every_template_has_a_snapshot`), which fails here.
        debug_assert!(value.is_some(), "template variable `{key}` has no value");
        let value = value.unwrap_or_default();
        match escape {
            Escape::Html => out.push_str(&escape_html(value)),
            Escape::Layout if key != "content" => out.push_str(&escape_html(value)),
            _ => out.push_str(value),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn escape_html(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `ada@example.com` → `a**@e******.com`, for logs.
pub fn mask_address(address: &str) -> String {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return "***".into();
    };
    let mask = |part: &str| {
        let mut chars = part.chars();
        chars.next().map_or_else(String::new, |first| {
            format!("{first}{}", "*".repeat(chars.count()))
        })
    };
    let (host, tld) = domain.rsplit_once('.').unwrap_or((domain, ""));
    format!("{}@{}.{}", mask(local), mask(host), tld)
}

#[cfg(test)]
mod tests;
