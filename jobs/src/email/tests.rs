//! Snapshot tests of every email (subject, text, HTML), including HTML escaping of names.
//! `UPDATE_SNAPSHOTS=1 cargo test -p linkai-jobs` rewrites the snapshots after a deliberate
//! change; review the diff.

use std::path::PathBuf;

use chrono::{TimeZone, Utc};

use super::*;

fn email(kind: TokenEmailKind) -> TokenEmail {
    TokenEmail {
        to: "client@example.com".into(),
        token: "lki_TOKEN".into(),
        expires_at: Utc
            .with_ymd_and_hms(2026, 12, 5, 9, 30, 0)
            .single()
            .expect("valid"),
        kind,
    }
}

fn check_snapshot(name: &str, rendered: &Email) {
    let actual = format!(
        "To: {}\nSubject: {}\n----- text -----\n{}----- html -----\n{}",
        rendered.to, rendered.subject, rendered.text, rendered.html
    );
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/email/snapshots")
        .join(format!("{name}.snap"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &actual).expect("snapshot written");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "{name} changed; rerun with UPDATE_SNAPSHOTS=1 and review.\n--- actual ---\n{actual}"
    );
}

#[test]
fn invitation_email_escapes_names_in_html_only() {
    let rendered = render(
        &email(TokenEmailKind::Invitation {
            workspace_name: "Tom & Jerry's <Agency>".into(),
            inviter_name: "Ada \"The\" Admin".into(),
            role: "Owner".into(),
        }),
        "https://app.example.com",
    );
    check_snapshot("invitation", &rendered);
    assert!(rendered
        .html
        .contains("Tom &amp; Jerry&#39;s &lt;Agency&gt;"));
    assert!(!rendered.html.contains("<Agency>"));
    assert!(rendered.text.contains("Tom & Jerry's <Agency>"));
    assert!(rendered
        .text
        .contains("https://app.example.com/invitations/accept?token=lki_TOKEN"));
    assert_eq!(
        rendered.subject,
        "Ada \"The\" Admin invited you to Tom & Jerry's <Agency> on Link AI"
    );
}

#[test]
fn verification_email() {
    let rendered = render(
        &email(TokenEmailKind::VerifyEmail { name: "Ada".into() }),
        "http://localhost:3000",
    );
    check_snapshot("verify_email", &rendered);
    assert!(rendered
        .html
        .contains("href=\"http://localhost:3000/verify-email?token=lki_TOKEN\""));
}

#[test]
fn password_reset_email() {
    let rendered = render(
        &email(TokenEmailKind::ResetPassword {
            name: "<b>Ada</b>".into(),
        }),
        "http://localhost:3000",
    );
    check_snapshot("reset_password", &rendered);
    assert!(rendered.html.contains("Hi &lt;b&gt;Ada&lt;/b&gt;,"));
}

#[test]
fn subjects_stay_on_one_line() {
    let rendered = render(
        &email(TokenEmailKind::Invitation {
            workspace_name: "Evil\r\nBcc: x@y.z".into(),
            inviter_name: "Ada".into(),
            role: "Admin".into(),
        }),
        "http://localhost:3000",
    );
    assert!(!rendered.subject.contains('\n') && !rendered.subject.contains('\r'));
}

#[test]
fn addresses_are_masked_for_logs() {
    assert_eq!(mask_address("ada@example.com"), "a**@e******.com");
    assert_eq!(mask_address("nope"), "***");
}

#[test]
fn trial_emails() {
    let notice = |notice| NoticeEmail {
        notice: Notice::Trial(notice),
        ..notice_base()
    };
    let reminder = render_notice(&notice(TrialNotice::Reminder3), "http://localhost:3000");
    check_snapshot("trial_reminder", &reminder);
    assert_eq!(reminder.subject, "3 days left in the Acme <Support> trial");
    assert!(reminder.html.contains("Acme &lt;Support&gt;"));
    let last_day = render_notice(&notice(TrialNotice::Reminder1), "http://localhost:3000");
    assert_eq!(last_day.subject, "1 day left in the Acme <Support> trial");
    let expired = render_notice(&notice(TrialNotice::Expired), "http://localhost:3000");
    check_snapshot("trial_expired", &expired);
    assert!(expired.text.contains("read-only"));
    let failed = render_notice(
        &NoticeEmail {
            notice: Notice::PaymentFailed,
            ..notice(TrialNotice::Expired)
        },
        "http://localhost:3000",
    );
    check_snapshot("payment_failed", &failed);
    assert_eq!(failed.subject, "A payment for Acme <Support> failed");
    let card = |notice| NoticeEmail {
        notice: Notice::Card(notice),
        card: "Visa ending in 4242 (expires 12/2026)".into(),
        ..notice_base()
    };
    let soon = render_notice(&card(CardNotice::ExpiresSoon), "http://localhost:3000");
    check_snapshot("card_expires_soon", &soon);
    assert_eq!(soon.subject, "The card for Acme <Support> expires soon");
    assert!(soon.text.contains("Visa ending in 4242 (expires 12/2026)"));
    assert!(soon.text.contains("http://localhost:3000/settings/billing"));
    let expired = render_notice(&card(CardNotice::Expired), "http://localhost:3000");
    check_snapshot("card_expired", &expired);
    assert_eq!(expired.subject, "The card for Acme <Support> has expired");
}

fn notice_base() -> NoticeEmail {
    NoticeEmail {
        to: "owner@example.com".into(),
        name: "Olivia".into(),
        workspace_name: "Acme <Support>".into(),
        trial_ends_at: Utc
            .with_ymd_and_hms(2026, 12, 12, 8, 0, 0)
            .single()
            .expect("valid"),
        notice: Notice::PaymentFailed,
        card: String::new(),
    }
}

#[test]
fn password_changed_email_says_what_to_do_if_it_was_not_you() {
    let rendered = render_account(
        &AccountEmail {
            to: "ada@example.com".into(),
            name: "Ada <Admin>".into(),
            notice: AccountNotice::PasswordChanged,
            detail: String::new(),
        },
        "https://app.example.com",
    );
    check_snapshot("password_changed", &rendered);
    assert_eq!(rendered.subject, "Your Link AI password was changed");
    assert!(rendered.html.contains("Ada &lt;Admin&gt;"));
    assert!(rendered
        .text
        .contains("https://app.example.com/reset-password"));
}

#[test]
fn account_deleted_email_names_what_went_and_what_stayed() {
    let rendered = render_account(
        &AccountEmail {
            to: "ada@example.com".into(),
            name: "Ada".into(),
            notice: AccountNotice::AccountDeleted,
            detail: String::new(),
        },
        "https://app.example.com",
    );
    check_snapshot("account_deleted", &rendered);
    assert_eq!(rendered.subject, "Your Link AI account was deleted");
    assert!(rendered
        .text
        .contains("Workspaces you\nshared with others keep their data."));
}

#[test]
fn an_address_change_is_confirmed_at_the_new_address_and_told_to_the_old() {
    let mut confirm = email(TokenEmailKind::ConfirmEmailChange { name: "Ada".into() });
    confirm.to = "ada@new.example.com".into();
    confirm.token = "lka_TOKEN".into();
    let rendered = render(&confirm, "https://app.example.com");
    check_snapshot("confirm_email_change", &rendered);
    assert!(rendered
        .text
        .contains("https://app.example.com/confirm-email-change?token=lka_TOKEN"));
    assert!(rendered.text.contains("ada@new.example.com is your new"));
    let told = render_account(
        &AccountEmail {
            to: "ada@old.example.com".into(),
            name: "Ada".into(),
            notice: AccountNotice::EmailChangeRequested,
            detail: "ada@new.example.com".into(),
        },
        "https://app.example.com",
    );
    check_snapshot("email_change_requested", &told);
    assert!(told.text.contains("move it to ada@new.example.com"));
}

#[test]
fn a_sign_up_is_finished_from_its_email_and_a_taken_address_is_told_instead() {
    let rendered = render(
        &email(TokenEmailKind::CompleteSignUp { name: "Ada".into() }),
        "https://app.example.com",
    );
    check_snapshot("complete_sign_up", &rendered);
    assert!(rendered
        .html
        .contains("href=\"https://app.example.com/complete-sign-up?token=lki_TOKEN\""));
    assert!(rendered.text.contains("no account is made without it"));
    let told = render_account(
        &AccountEmail {
            to: "ada@example.com".into(),
            name: "Ada".into(),
            notice: AccountNotice::SignUpAttempted,
            detail: String::new(),
        },
        "https://app.example.com",
    );
    check_snapshot("sign_up_attempted", &told);
    assert!(told.text.contains("which already has an account"));
    assert!(told.text.contains("https://app.example.com/reset-password"));
}

/// Every template is rendered by one of the snapshot tests above, so a placeholder its
/// email gives no value for (a misspelt `{{workspce}}`) fails them instead of rendering
/// empty.
#[test]
fn every_template_has_a_snapshot() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/email");
    let mut missing = Vec::new();
    let mut templates = 0;
    for entry in std::fs::read_dir(root.join("templates")).expect("templates") {
        let path = entry.expect("entry").path();
        if !path.is_dir() {
            continue;
        }
        templates += 1;
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if !root.join("snapshots").join(format!("{name}.snap")).exists() {
            missing.push(name);
        }
    }
    assert!(templates >= 14, "found {templates} templates");
    assert!(missing.is_empty(), "templates no test renders: {missing:?}");
}

#[test]
#[should_panic(expected = "template variable `workspce` has no value")]
fn a_misspelt_placeholder_fails() {
    fill("Join {{workspce}}", &[("workspace", "Acme")], Escape::None);
}
