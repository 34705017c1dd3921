//! The one error type at the API's edge and its closed set of codes. How it reaches a
//! GraphQL response, and the pass that makes sure nothing uncoded does, is
//! `graphql::errors`.
//!
//! Which error type belongs where:
//! - model functions (`*/model.rs`) return diesel's `QueryResult`;
//! - a feature's rules return its own `thiserror` enum, next to the rules, converted once
//!   into [`ApiError`] with a `From` impl;
//! - resolvers return [`ApiResult`]. `ApiError` deliberately has no `Display`, so `?` on
//!   any other error only compiles through one of the `From` impls below;
//! - `anyhow` is for start-up and background tasks, outside the request path.

use std::borrow::Cow;

/// The stable `extensions.code` values clients may rely on (DESIGN.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    Unauthenticated,
    NotFound,
    Forbidden,
    BadUserInput,
    Conflict,
    UsageLimitReached,
    TrialExpired,
    RateLimited,
    BillingNotConfigured,
    /// The document is not GraphQL (a request error: nothing ran).
    GraphqlParseFailed,
    /// The document does not fit the schema (a request error: nothing ran).
    GraphqlValidationFailed,
    /// The document is over the depth, complexity or introspection budget (nothing ran).
    QueryTooComplex,
    /// The server is too busy, a dependency too slow, or PostgreSQL out of reach right now;
    /// retry after `extensions.retryAfter` seconds.
    ServiceUnavailable,
    /// A subscription's `after` cursor names an event the log no longer keeps: refetch,
    /// then subscribe without one.
    CursorExpired,
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::Unauthenticated,
        ErrorCode::NotFound,
        ErrorCode::Forbidden,
        ErrorCode::BadUserInput,
        ErrorCode::Conflict,
        ErrorCode::UsageLimitReached,
        ErrorCode::TrialExpired,
        ErrorCode::RateLimited,
        ErrorCode::BillingNotConfigured,
        ErrorCode::GraphqlParseFailed,
        ErrorCode::GraphqlValidationFailed,
        ErrorCode::QueryTooComplex,
        ErrorCode::ServiceUnavailable,
        ErrorCode::CursorExpired,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::BadUserInput => "BAD_USER_INPUT",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::UsageLimitReached => "USAGE_LIMIT_REACHED",
            ErrorCode::TrialExpired => "TRIAL_EXPIRED",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::BillingNotConfigured => "BILLING_NOT_CONFIGURED",
            ErrorCode::GraphqlParseFailed => "GRAPHQL_PARSE_FAILED",
            ErrorCode::GraphqlValidationFailed => "GRAPHQL_VALIDATION_FAILED",
            ErrorCode::QueryTooComplex => "QUERY_TOO_COMPLEX",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            ErrorCode::CursorExpired => "CURSOR_EXPIRED",
            ErrorCode::Internal => "INTERNAL",
        }
    }
}

/// The retry hint of `SERVICE_UNAVAILABLE`.
pub const UNAVAILABLE_RETRY_SECS: u64 = 2;

/// The retry hint while the database is out of reach: a restart takes seconds.
pub const OUTAGE_RETRY_SECS: u64 = 5;

fn whole_seconds(wait: std::time::Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

pub(crate) const INTERNAL_MESSAGE: &str = "Something went wrong on our side. Please try again.";

/// An error a client sees: a code and a human message. Build it with the constructors.
#[derive(Clone, Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: Cow<'static, str>,
    /// Seconds after which trying again may succeed (`extensions.retryAfter`).
    retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// Seconds after which the same request may succeed, when the error says.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// Too many attempts: `RATE_LIMITED`, with the wait in whole seconds (at least one).
    pub fn rate_limited(message: impl Into<Cow<'static, str>>, wait: std::time::Duration) -> Self {
        Self {
            retry_after: Some(whole_seconds(wait)),
            ..Self::new(ErrorCode::RateLimited, message)
        }
    }

    /// The server cannot take the request now (pool exhausted, a statement or lock timed
    /// out): `SERVICE_UNAVAILABLE` with a short retry hint. Whatever ran was rolled back.
    pub fn unavailable() -> Self {
        Self {
            retry_after: Some(UNAVAILABLE_RETRY_SECS),
            ..Self::new(
                ErrorCode::ServiceUnavailable,
                "The service is busy right now; nothing was changed. Please retry shortly.",
            )
        }
    }

    /// A service we depend on (Stripe) could not answer: `SERVICE_UNAVAILABLE` with a short
    /// retry hint and `message`, which says what a retry does (unlike [`Self::unavailable`],
    /// the other service may have acted).
    pub fn upstream_unavailable(message: &'static str) -> Self {
        Self {
            retry_after: Some(UNAVAILABLE_RETRY_SECS),
            ..Self::new(ErrorCode::ServiceUnavailable, message)
        }
    }

    /// PostgreSQL is out of reach: `SERVICE_UNAVAILABLE` with a retry hint. Logged once per
    /// outage ([`crate::db::note_outage`]), not per request. A change whose connection
    /// dropped may or may not have been made, so the message claims nothing either way.
    pub fn database_out_of_reach(cause: &dyn std::fmt::Display) -> Self {
        crate::db::note_outage(cause);
        Self {
            retry_after: Some(OUTAGE_RETRY_SECS),
            ..Self::new(
                ErrorCode::ServiceUnavailable,
                "The service cannot reach its database right now. Please retry shortly.",
            )
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Code, message and wait, for the edge that answers with them.
    pub fn into_parts(self) -> (ErrorCode, Cow<'static, str>, Option<u64>) {
        (self.code, self.message, self.retry_after)
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            ErrorCode::Unauthenticated,
            "Sign in first: send `Authorization: Bearer <token>` with a valid token.",
        )
    }

    /// The same answer for "does not exist" and "exists but is not yours".
    pub fn not_found(what: &'static str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found."))
    }

    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn bad_input(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::BadUserInput, message)
    }

    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// Logs the cause once, server side, and answers a generic message.
    pub fn internal(cause: &dyn std::fmt::Debug) -> Self {
        tracing::error!(?cause, "internal error");
        Self::new(ErrorCode::Internal, INTERNAL_MESSAGE)
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(err: diesel::result::Error) -> Self {
        if crate::db::is_timeout(&err) {
            tracing::warn!(%err, "statement or lock timeout");
            return ApiError::unavailable();
        }
        if crate::db::is_outage(&err) {
            return ApiError::database_out_of_reach(&err);
        }
        ApiError::internal(&err)
    }
}

impl From<crate::throttle::Limited> for ApiError {
    fn from(crate::throttle::Limited(wait): crate::throttle::Limited) -> Self {
        ApiError::rate_limited(
            format!(
                "Too many attempts; try again in {} seconds.",
                whole_seconds(wait)
            ),
            wait,
        )
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(err: crate::db::DbError) -> Self {
        match err {
            err if err.is_outage() => ApiError::database_out_of_reach(&err),
            crate::db::DbError::Pool(deadpool::managed::PoolError::Timeout(_)) => {
                tracing::warn!("no database connection free within the pool wait");
                ApiError::unavailable()
            }
            crate::db::DbError::Context(err) => err.into(),
            err => ApiError::internal(&err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_connection_is_an_outage_and_our_own_mistake_is_not() {
        use diesel::result::{DatabaseErrorKind, Error};
        let lost = |kind, message: &str| Error::DatabaseError(kind, Box::new(message.to_owned()));
        for outage in [
            lost(DatabaseErrorKind::UnableToSendCommand, "connection closed"),
            lost(
                DatabaseErrorKind::UnableToSendCommand,
                "error connecting to server: Connection refused (os error 111)",
            ),
            lost(
                DatabaseErrorKind::Unknown,
                "terminating connection due to administrator command",
            ),
            lost(
                DatabaseErrorKind::Unknown,
                "the database system is starting up",
            ),
        ] {
            let err: ApiError = outage.into();
            assert_eq!(err.code(), ErrorCode::ServiceUnavailable);
            assert_eq!(err.retry_after(), Some(OUTAGE_RETRY_SECS));
        }
        for ours in [
            lost(
                DatabaseErrorKind::UnableToSendCommand,
                "number of parameters must be between 0 and 65535",
            ),
            lost(
                DatabaseErrorKind::Unknown,
                "password authentication failed for user \"linkai_app\"",
            ),
        ] {
            let err: ApiError = ours.into();
            assert_eq!(err.code(), ErrorCode::Internal);
        }
    }

    #[test]
    fn database_errors_are_internal() {
        let err: ApiError = diesel::result::Error::NotFound.into();
        assert_eq!(err.code(), ErrorCode::Internal);
        assert_eq!(err.message(), INTERNAL_MESSAGE);
    }
}
