//! Usage: messages and SMS metered per billing period through an idempotent report from
//! the agent runtime (a service token), and agents and phone numbers in use, shown against
//! the plan's limits.
//!
//! Rules: a report with an idempotency key already seen in the workspace counts once (the
//! same key with a different metric or quantity is a `CONFLICT`); a report that would take
//! the period past the plan's limit is refused with `USAGE_LIMIT_REACHED` and counts
//! nothing. The check and the count are one statement, so parallel reports cannot
//! overshoot. The period follows billing ([`crate::billing::usage_period`]): the trial
//! during the trial, then the subscription's current period, so limits reset on the day
//! the invoice does.

pub mod graphql;
pub mod model;

use sha2::{Digest, Sha256};

use crate::config::Secret;

/// Whether `token` is one of the configured service tokens. Compares digests, so the time
/// taken does not depend on how much of a token matched.
pub fn is_service_token(tokens: &[Secret], token: &str) -> bool {
    let digest = Sha256::digest(token.as_bytes());
    tokens.iter().fold(false, |found, candidate| {
        let candidate = Sha256::digest(candidate.expose().as_bytes());
        let same = candidate
            .iter()
            .zip(digest.iter())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0;
        found | same
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_tokens_are_service_tokens() {
        let tokens = vec![Secret::new("svc_one"), Secret::new("svc_two")];
        assert!(is_service_token(&tokens, "svc_two"));
        assert!(!is_service_token(&tokens, "svc_thre"));
        assert!(!is_service_token(&[], "svc_one"));
    }
}
