//! A workspace's billing details: the billing email (the Owner's unless one is set), the
//! company name, the postal address and a tax id. They live on the Stripe customer, where
//! invoices take them from; `billing_accounts.details` mirrors what was set, so reading them
//! makes no Stripe call.
//!
//! Rules: an update sets the fields it names and keeps the others (Stripe cannot unset an
//! address through the fake, so nothing is unset); text is trimmed, 1 to 200 characters,
//! without control characters; a country is two ASCII letters (ISO 3166-1); a tax id's type
//! is Stripe's (`eu_vat`, ...) and Stripe checks its value.

use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::text::EmailAddress;

const MAX_CHARS: usize = 200;

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct BillingDetails {
    /// Where invoices and billing emails go; `None`: the Owner's address.
    pub email: Option<String>,
    pub company_name: Option<String>,
    pub address: Option<Address>,
    pub tax_id: Option<TaxId>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    pub state: Option<String>,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TaxId {
    /// Stripe's tax id type, e.g. `eu_vat`.
    pub kind: String,
    pub value: String,
}

/// One text field: trimmed, 1 to 200 characters, no control characters.
pub fn text(raw: &str, field: &'static str) -> ApiResult<String> {
    crate::text::line(raw, field, MAX_CHARS)
}

pub fn email(raw: &str) -> ApiResult<String> {
    Ok(EmailAddress::parse(raw)?.as_str().to_owned())
}

pub fn country(raw: &str) -> ApiResult<String> {
    let code = raw.trim().to_ascii_uppercase();
    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ApiError::bad_input(
            "`country` must be a two-letter ISO 3166-1 code, e.g. DE.",
        ));
    }
    Ok(code)
}

pub fn tax_id(kind: &str, value: &str) -> ApiResult<TaxId> {
    let kind = kind.trim().to_ascii_lowercase();
    let known_shape =
        (2..=16).contains(&kind.len()) && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if !known_shape {
        return Err(ApiError::bad_input(
            "`taxId.type` must be one of Stripe's tax id types, e.g. eu_vat.",
        ));
    }
    let value = text(value, "taxId.value")?;
    Ok(TaxId { kind, value })
}

impl BillingDetails {
    /// These details with the fields `update` sets replaced.
    pub fn merged(&self, update: BillingDetails) -> BillingDetails {
        BillingDetails {
            email: update.email.or_else(|| self.email.clone()),
            company_name: update.company_name.or_else(|| self.company_name.clone()),
            address: update.address.or_else(|| self.address.clone()),
            tax_id: update.tax_id.or_else(|| self.tax_id.clone()),
        }
    }

    /// The fields set, by their GraphQL names (what an update changed, for the audit log).
    pub fn fields(&self) -> Vec<&'static str> {
        [
            ("email", self.email.is_some()),
            ("companyName", self.company_name.is_some()),
            ("address", self.address.is_some()),
            ("taxId", self.tax_id.is_some()),
        ]
        .into_iter()
        .filter_map(|(field, set)| set.then_some(field))
        .collect()
    }

    /// From the mirrored column (absent or unreadable: none set).
    pub fn from_column(value: Option<&serde_json::Value>) -> BillingDetails {
        value
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_checked_and_an_update_keeps_what_it_does_not_name() {
        assert_eq!(country(" de ").expect("valid"), "DE");
        for bad in ["", "DEU", "D1", "ü!"] {
            assert!(country(bad).is_err(), "{bad}");
        }
        assert!(text("Acme\u{0}", "companyName").is_err());
        assert!(text(&"x".repeat(201), "companyName").is_err());
        assert!(tax_id("eu vat", "DE123456789").is_err());
        assert_eq!(
            tax_id("EU_VAT", " DE123456789 ").expect("valid").kind,
            "eu_vat"
        );
        let before = BillingDetails {
            email: Some("billing@acme.test".into()),
            company_name: Some("Acme".into()),
            ..BillingDetails::default()
        };
        let after = before.merged(BillingDetails {
            company_name: Some("Acme GmbH".into()),
            ..BillingDetails::default()
        });
        assert_eq!(after.email.as_deref(), Some("billing@acme.test"));
        assert_eq!(after.company_name.as_deref(), Some("Acme GmbH"));
        let column = serde_json::to_value(&after).expect("json");
        assert_eq!(BillingDetails::from_column(Some(&column)), after);
        assert_eq!(BillingDetails::from_column(None), BillingDetails::default());
    }
}
