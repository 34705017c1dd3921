//! User-typed text, parsed once at the edge into types that are valid by construction.

use crate::error::{ApiError, ApiResult};

pub const MAX_NAME_CHARS: usize = 100;
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 256;
const MAX_EMAIL_CHARS: usize = 254;

/// A display name (person, workspace, token): 1-100 characters after trimming.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name(String);

/// One line of text: trimmed, 1 to `max` characters, no control characters.
pub fn line(raw: &str, field: &'static str, max: usize) -> ApiResult<String> {
    let trimmed = raw.trim();
    let chars = trimmed.chars().count();
    if chars == 0 || chars > max {
        return Err(ApiError::bad_input(format!(
            "`{field}` must be 1 to {max} characters long."
        )));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(ApiError::bad_input(format!(
            "`{field}` must not contain control characters."
        )));
    }
    Ok(trimmed.to_owned())
}

impl Name {
    pub fn parse(raw: &str, field: &'static str) -> ApiResult<Name> {
        line(raw, field, MAX_NAME_CHARS).map(Name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// An email address, trimmed; compared case-insensitively by the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> ApiResult<EmailAddress> {
        let email = raw.trim();
        let invalid = || ApiError::bad_input("`email` is not a valid email address.");
        if email.chars().count() > MAX_EMAIL_CHARS
            || email.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid());
        }
        let (local, domain) = email.rsplit_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && !domain.contains('@');
        if local.is_empty() || local.contains('@') || !domain_ok {
            return Err(invalid());
        }
        Ok(EmailAddress(email.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password: at least 8 characters.
pub struct NewPassword(String);

impl NewPassword {
    pub fn parse(raw: &str) -> ApiResult<NewPassword> {
        let chars = raw.chars().count();
        if chars < MIN_PASSWORD_CHARS {
            return Err(ApiError::bad_input(format!(
                "`password` must be at least {MIN_PASSWORD_CHARS} characters long."
            )));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(ApiError::bad_input(format!(
                "`password` must be at most {MAX_PASSWORD_CHARS} characters long."
            )));
        }
        Ok(NewPassword(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A Rust field name as GraphQL spells it: `knowledge_base_ids` -> `knowledgeBaseIds`.
pub fn camel_case(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn field_names_are_spelt_as_graphql_spells_them() {
        assert_eq!(camel_case("knowledge_base_ids"), "knowledgeBaseIds");
        assert_eq!(camel_case("name"), "name");
    }

    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(Name::parse("  Ada  ", "name").expect("ok").as_str(), "Ada");
        assert!(Name::parse("   ", "name").is_err());
        assert!(Name::parse(&"x".repeat(101), "name").is_err());
        assert!(Name::parse(&"é".repeat(100), "name").is_ok());
        assert!(Name::parse("a\u{0}b", "name").is_err());
    }

    #[test]
    fn emails_are_checked_for_shape() {
        assert_eq!(
            EmailAddress::parse(" Ada@Example.com ")
                .expect("ok")
                .as_str(),
            "Ada@Example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@x.io",
            "a@b..io",
            "a@.b.io",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_need_eight_characters() {
        assert!(NewPassword::parse("1234567").is_err());
        assert!(NewPassword::parse("12345678").is_ok());
    }
}
