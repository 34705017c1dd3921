//! Emails: templates embedded at compile time (subject, text and HTML over one layout),
//! each with its typed values ([`messages`], generated from the templates by `build.rs`),
//! rendering with HTML escaping, and the transport chosen once at start.
//!
//! Adding an email: a folder under `templates/` (its struct appears in [`messages`]), the
//! handler that fills the struct and sends it, and the place that enqueues the handler's job.

mod transport;

pub use transport::Mailer;

use chrono::{DateTime, Utc};

/// A rendered email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
    /// Its template's name, for logs.
    pub template: &'static str,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// One email's three files.
pub struct Template {
    pub name: &'static str,
    pub subject: &'static str,
    pub text: &'static str,
    pub html: &'static str,
}

/// An email's values, typed by its template: see [`messages`].
pub trait Message {
    const TEMPLATE: Template;
    /// Each placeholder with its value.
    fn values(&self) -> Vec<(&'static str, &str)>;
}

/// One struct per template, with exactly the placeholders it uses.
pub mod messages {
    use super::{Message, Template};

    include!(concat!(env!("OUT_DIR"), "/messages.rs"));
}

const LAYOUT: &str = include_str!("templates/layout.html");

/// Renders `message` for `to`.
pub fn render<M: Message>(to: &str, message: &M) -> Email {
    let template = M::TEMPLATE;
    let vars = message.values();
    // Subjects are one line whatever a name holds.
    let subject = fill(template.subject.trim(), &vars, Escape::None).replace(['\r', '\n'], " ");
    let content = fill(template.html, &vars, Escape::Html);
    let html = fill(
        LAYOUT,
        &[("subject", &subject), ("content", &content)],
        Escape::Layout,
    );
    Email {
        template: template.name,
        to: to.to_owned(),
        text: fill(template.text, &vars, Escape::None),
        html,
        subject,
    }
}

/// A link into the app carrying a one-time token; `app_url` is configured, never a
/// request's.
pub fn token_link(app_url: &str, path: &str, token: &str) -> String {
    format!("{app_url}/{path}?token={token}")
}

/// A moment as emails write it: "December 5, 2026 at 09:30 UTC".
pub fn when(at: DateTime<Utc>) -> String {
    at.format("%B %-d, %Y at %H:%M UTC").to_string()
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
        // Cannot happen for a template's own struct (`build.rs` gives it every placeholder);
        // only the layout is filled by hand.
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
