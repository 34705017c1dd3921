//! Snapshot tests of every email (subject, text, HTML), including HTML escaping of names.
//! `UPDATE_SNAPSHOTS=1 cargo test -p linkai-jobs` rewrites the snapshots after a deliberate
//! change; review the diff.

use std::path::PathBuf;

use chrono::{TimeZone, Utc};

use super::messages::*;
use super::*;

/// The moment links in the token emails expire.
fn expires() -> String {
    when(
        Utc.with_ymd_and_hms(2026, 12, 5, 9, 30, 0)
            .single()
            .expect("valid"),
    )
}

/// The trial's end in the notices.
fn trial_ends() -> String {
    when(
        Utc.with_ymd_and_hms(2026, 12, 12, 8, 0, 0)
            .single()
            .expect("valid"),
    )
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
        "client@example.com",
        &Invitation {
            workspace: "Tom & Jerry's <Agency>".into(),
            inviter: "Ada \"The\" Admin".into(),
            role: "Owner".into(),
            link: token_link("https://app.example.com", "invitations/accept", "lki_TOKEN"),
            expires: expires(),
        },
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
        "client@example.com",
        &VerifyEmail {
            name: "Ada".into(),
            link: token_link("http://localhost:3000", "verify-email", "lki_TOKEN"),
            expires: expires(),
        },
    );
    check_snapshot("verify_email", &rendered);
    assert!(rendered
        .html
        .contains("href=\"http://localhost:3000/verify-email?token=lki_TOKEN\""));
}

#[test]
fn password_reset_email() {
    let rendered = render(
        "client@example.com",
        &ResetPassword {
            name: "<b>Ada</b>".into(),
            link: token_link("http://localhost:3000", "reset-password", "lki_TOKEN"),
            expires: expires(),
        },
    );
    check_snapshot("reset_password", &rendered);
    assert!(rendered.html.contains("Hi &lt;b&gt;Ada&lt;/b&gt;,"));
}

#[test]
fn subjects_stay_on_one_line() {
    let rendered = render(
        "client@example.com",
        &Invitation {
            workspace: "Evil\r\nBcc: x@y.z".into(),
            inviter: "Ada".into(),
            role: "Admin".into(),
            ..Invitation::default()
        },
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
    let link = || "http://localhost:3000/settings/billing".to_owned();
    let reminder = |days: &str, plural: &str| TrialReminder {
        name: "Olivia".into(),
        workspace: "Acme <Support>".into(),
        days: days.into(),
        plural: plural.into(),
        ends: trial_ends(),
        link: link(),
    };
    let rendered = render("owner@example.com", &reminder("3", "s"));
    check_snapshot("trial_reminder", &rendered);
    assert_eq!(rendered.subject, "3 days left in the Acme <Support> trial");
    assert!(rendered.html.contains("Acme &lt;Support&gt;"));
    let last_day = render("owner@example.com", &reminder("1", ""));
    assert_eq!(last_day.subject, "1 day left in the Acme <Support> trial");
    let expired = render(
        "owner@example.com",
        &TrialExpired {
            name: "Olivia".into(),
            workspace: "Acme <Support>".into(),
            ends: trial_ends(),
            link: link(),
        },
    );
    check_snapshot("trial_expired", &expired);
    assert!(expired.text.contains("read-only"));
    let failed = render(
        "owner@example.com",
        &PaymentFailed {
            name: "Olivia".into(),
            workspace: "Acme <Support>".into(),
            read_only_on: trial_ends(),
            link: link(),
        },
    );
    check_snapshot("payment_failed", &failed);
    assert_eq!(failed.subject, "A payment for Acme <Support> failed");
    assert!(failed.text.contains(&trial_ends()));
    let ending = render(
        "owner@example.com",
        &GraceEnding {
            name: "Olivia".into(),
            workspace: "Acme <Support>".into(),
            read_only_on: trial_ends(),
            link: link(),
        },
    );
    check_snapshot("grace_ending", &ending);
    assert!(ending.subject.contains("becomes read-only on"));
    let card = "Visa ending in 4242 (expires 12/2026)";
    let soon = render(
        "owner@example.com",
        &CardExpiresSoon {
            name: "Olivia".into(),
            workspace: "Acme <Support>".into(),
            card: card.into(),
            link: link(),
        },
    );
    check_snapshot("card_expires_soon", &soon);
    assert_eq!(soon.subject, "The card for Acme <Support> expires soon");
    assert!(soon.text.contains(card));
    assert!(soon.text.contains("http://localhost:3000/settings/billing"));
    let expired = render(
        "owner@example.com",
        &CardExpired {
            name: "Olivia".into(),
            workspace: "Acme <Support>".into(),
            card: card.into(),
            link: link(),
        },
    );
    check_snapshot("card_expired", &expired);
    assert_eq!(expired.subject, "The card for Acme <Support> has expired");
}

#[test]
fn password_changed_email_says_what_to_do_if_it_was_not_you() {
    let rendered = render(
        "ada@example.com",
        &PasswordChanged {
            name: "Ada <Admin>".into(),
            link: "https://app.example.com/reset-password".into(),
        },
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
    let rendered = render("ada@example.com", &AccountDeleted { name: "Ada".into() });
    check_snapshot("account_deleted", &rendered);
    assert_eq!(rendered.subject, "Your Link AI account was deleted");
    assert!(rendered
        .text
        .contains("Workspaces you\nshared with others keep their data."));
}

#[test]
fn an_address_change_is_confirmed_at_the_new_address_and_told_to_the_old() {
    let rendered = render(
        "ada@new.example.com",
        &ConfirmEmailChange {
            name: "Ada".into(),
            address: "ada@new.example.com".into(),
            link: token_link(
                "https://app.example.com",
                "confirm-email-change",
                "lka_TOKEN",
            ),
            expires: expires(),
        },
    );
    check_snapshot("confirm_email_change", &rendered);
    assert!(rendered
        .text
        .contains("https://app.example.com/confirm-email-change?token=lka_TOKEN"));
    assert!(rendered.text.contains("ada@new.example.com is your new"));
    let told = render(
        "ada@old.example.com",
        &EmailChangeRequested {
            name: "Ada".into(),
            address: "ada@new.example.com".into(),
            link: "https://app.example.com/reset-password".into(),
        },
    );
    check_snapshot("email_change_requested", &told);
    assert!(told.text.contains("move it to ada@new.example.com"));
}

#[test]
fn a_sign_up_is_finished_from_its_email_and_a_taken_address_is_told_instead() {
    let rendered = render(
        "client@example.com",
        &CompleteSignUp {
            name: "Ada".into(),
            link: token_link("https://app.example.com", "complete-sign-up", "lki_TOKEN"),
            expires: expires(),
        },
    );
    check_snapshot("complete_sign_up", &rendered);
    assert!(rendered
        .html
        .contains("href=\"https://app.example.com/complete-sign-up?token=lki_TOKEN\""));
    assert!(rendered.text.contains("no account is made without it"));
    let told = render(
        "ada@example.com",
        &SignUpAttempted {
            name: "Ada".into(),
            link: "https://app.example.com/reset-password".into(),
        },
    );
    check_snapshot("sign_up_attempted", &told);
    assert!(told.text.contains("which already has an account"));
    assert!(told.text.contains("https://app.example.com/reset-password"));
}

/// Every template, a new one too, renders each of its values somewhere, escaped in HTML,
/// and leaves no placeholder behind; its sample (each value `<key>`) is pinned by a
/// snapshot, so its wording changes only on purpose.
#[test]
fn every_template_renders_each_value() {
    let samples = samples();
    assert!(samples.len() >= 14, "found {} templates", samples.len());
    assert_eq!(samples.len(), ALL.len());
    for (name, keys, email) in samples {
        check_snapshot(&format!("samples/{name}"), &email);
        for part in [&email.subject, &email.text, &email.html] {
            assert!(
                !part.contains("{{"),
                "{name}: a placeholder is left: {part}"
            );
        }
        for key in keys {
            let shown = email.subject.contains(&format!("<{key}>"))
                || email.text.contains(&format!("<{key}>"))
                || email.html.contains(&format!("&lt;{key}&gt;"));
            assert!(shown, "{name}: `{key}` is not shown");
        }
        assert!(
            !email.html.contains("<name>"),
            "{name}: HTML is not escaped"
        );
    }
}

/// A template's struct holds exactly its placeholders (so a misspelt `{{workspce}}` is a
/// field no handler fills: a compile error); every value it gives is used.
#[test]
fn a_message_gives_every_placeholder_and_nothing_else() {
    let rendered = render(
        "client@example.com",
        &TrialReminder {
            name: "N".into(),
            workspace: "W".into(),
            days: "D".into(),
            plural: "P".into(),
            ends: "E".into(),
            link: "L".into(),
        },
    );
    let keys: Vec<&str> = TrialReminder::default()
        .values()
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(
        keys,
        ["days", "ends", "link", "name", "plural", "workspace"]
    );
    assert!(!rendered.text.contains("{{") && !rendered.html.contains("{{"));
}

#[test]
#[should_panic(expected = "template variable `workspce` has no value")]
fn a_misspelt_placeholder_fails() {
    fill("Join {{workspce}}", &[("workspace", "Acme")], Escape::None);
}
