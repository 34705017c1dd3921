//! How an [`ApiError`] reaches a GraphQL response (`extensions.code`, `retryAfter`), and
//! the pass that codes every error of a response before it leaves the server, so nothing
//! uncoded, and no internal message, reaches a client.

use async_graphql::{ErrorExtensionValues, Response, ServerError, Value};

use crate::error::{ApiError, ErrorCode, INTERNAL_MESSAGE};

impl From<ApiError> for async_graphql::Error {
    fn from(err: ApiError) -> Self {
        let (code, message, retry_after) = err.into_parts();
        let mut extensions = ErrorExtensionValues::default();
        extensions.set("code", code.as_str());
        if let Some(seconds) = retry_after {
            extensions.set("retryAfter", seconds);
        }
        async_graphql::Error {
            message: message.into_owned(),
            source: None,
            extensions: Some(extensions),
        }
    }
}

impl ApiError {
    /// The error as a request error in a response: no path, no location.
    pub fn to_server_error(&self) -> ServerError {
        let mut err = with_code(ServerError::new(self.message(), None), self.code());
        if let Some(seconds) = self.retry_after() {
            err.extensions
                .get_or_insert_with(Default::default)
                .set("retryAfter", seconds);
        }
        err
    }
}

/// The extension marking an error that ends its subscription: the socket sends it as
/// graphql-transport-ws's `error` message (src/http/socket.rs). It never reaches a client.
const ENDS: &str = "linkai.ends";

/// `err` as the last item of a subscription's stream, or the refusal of its start. A
/// subscription's refusals go through this, guards included: an error async-graphql raises
/// on its own with a path (a `#[graphql(guard)]`) would go out as a `next`, then `complete`.
pub fn ending(err: ApiError) -> async_graphql::Error {
    let mut err = async_graphql::Error::from(err);
    err.extensions
        .get_or_insert_with(Default::default)
        .set(ENDS, true);
    err
}

/// Whether an error of `response` was an [`ending`]; takes the mark off every error.
pub fn take_ending(response: &mut Response) -> bool {
    let mut ends = false;
    for err in &mut response.errors {
        if let Some(extensions) = &mut err.extensions {
            ends |= extensions.get(ENDS).is_some();
            extensions.unset(ENDS);
        }
    }
    ends
}

/// Each error's code (every error has one after [`code_errors`]).
pub fn codes(response: &Response) -> impl Iterator<Item = &str> {
    response.errors.iter().filter_map(code_of)
}

/// The code an error already carries, if any.
fn code_of(err: &ServerError) -> Option<&str> {
    match err.extensions.as_ref()?.get("code")? {
        Value::String(code) => Some(code.as_str()),
        _ => None,
    }
}

fn with_code(mut err: ServerError, code: ErrorCode) -> ServerError {
    err.extensions
        .get_or_insert_with(Default::default)
        .set("code", code.as_str());
    err
}

/// Codes every error of a response before it leaves the server. A response whose `data`
/// is null and whose errors all lack a path never started executing: those are request
/// errors (validation, or the depth and complexity limits the library checks while
/// validating). Input coercion while resolving becomes `BAD_USER_INPUT`; anything else still
/// uncoded is an internal error whose message is replaced.
///
/// This runs on the finished response rather than as a schema extension: any extension
/// sends every field of every response through async-graphql's slow resolve path.
pub fn code_errors(response: &mut Response) {
    let request_error = is_request_error(response);
    let errors = std::mem::take(&mut response.errors);
    response.errors = errors
        .into_iter()
        .map(|err| code_error(err, request_error))
        .collect();
}

/// Nothing was executed: the document was refused as a whole, so the answer has no `data`
/// (GraphQL over HTTP) and, with `application/graphql-response+json`, a 400.
pub fn is_request_error(response: &Response) -> bool {
    !response.errors.is_empty()
        && response.data == Value::Null
        && response.errors.iter().all(|err| err.path.is_empty())
}

fn code_error(err: ServerError, request_error: bool) -> ServerError {
    if code_of(&err).is_some() {
        return code_uncoded(err);
    }
    if is_input_coercion_error(&err) {
        return with_code(err, ErrorCode::BadUserInput);
    }
    if request_error {
        let code = if is_limit_error(&err) {
            ErrorCode::QueryTooComplex
        } else {
            ErrorCode::GraphqlValidationFailed
        };
        return with_code(err, code);
    }
    code_uncoded(err)
}

/// The library's own limits (depth, complexity, recursion, directives), reported as
/// validation errors.
fn is_limit_error(err: &ServerError) -> bool {
    const LIMIT_MESSAGES: [&str; 4] = [
        "Query is nested too deep",
        "Query is too complex",
        "The recursion depth of the query cannot be greater than",
        "The number of directives on the field",
    ];
    LIMIT_MESSAGES
        .iter()
        .any(|prefix| err.message.starts_with(prefix))
}

/// A document that does not parse, as a client sees it: `GRAPHQL_PARSE_FAILED`, the
/// position as `locations`, and the parser's expectation without its ASCII-art excerpt.
pub fn parse_error(err: &async_graphql::parser::Error) -> ServerError {
    use async_graphql::parser::Error as ParseError;
    let detail = match err {
        // pest's rendering: ` --> 1:2`, the source line, a caret, then `= expected ...`.
        ParseError::Syntax { message, .. } => message
            .lines()
            .rev()
            .find_map(|line| line.trim().strip_prefix("= "))
            .unwrap_or("unexpected input")
            .to_owned(),
        other => other.to_string(),
    };
    let mut server = ServerError::new(format!("Syntax error: {detail}."), None);
    server.locations = err.positions().collect();
    with_code(server, ErrorCode::GraphqlParseFailed)
}

/// async-graphql reports a variable or argument of the wrong type with no code, while
/// validating or while resolving the field. Our resolvers always code their errors, so an
/// uncoded error with one of the library's input-coercion messages is the client's. (Checked
/// by a unit test, in case a library upgrade rewords them.)
fn is_input_coercion_error(err: &ServerError) -> bool {
    const INPUT_COERCION_PREFIXES: [&str; 4] = [
        "Variable ",
        "Failed to parse \"",
        "Expected input type \"",
        "Invalid value for argument",
    ];
    INPUT_COERCION_PREFIXES
        .iter()
        .any(|prefix| err.message.starts_with(prefix))
        // Unused or undeclared variables are mistakes in the document, not in a value.
        && !(err.message.starts_with("Variable \"$")
            && (err.message.contains("is not used") || err.message.contains("is not defined")))
}

fn code_uncoded(err: ServerError) -> ServerError {
    if code_of(&err).is_some_and(|code| ErrorCode::ALL.iter().any(|c| c.as_str() == code)) {
        return err;
    }
    tracing::error!(message = %err.message, path = ?err.path, "uncoded GraphQL error");
    let mut coded = ServerError::new(INTERNAL_MESSAGE, None);
    coded.path = err.path;
    coded.locations = err.locations;
    with_code(coded, ErrorCode::Internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(err: &ServerError) -> &str {
        code_of(err).expect("coded")
    }

    #[test]
    fn api_errors_carry_their_code_and_message() {
        for code_value in ErrorCode::ALL {
            let err: async_graphql::Error = ApiError::new(code_value, "why").into();
            let server = err.into_server_error(Default::default());
            assert_eq!(code(&server), code_value.as_str());
            assert_eq!(server.message, "why");
        }
    }

    #[test]
    fn uncoded_errors_become_internal_without_leaking_their_message() {
        let leaked = ServerError::new("duplicate key value violates unique constraint", None);
        let coded = code_uncoded(leaked);
        assert_eq!(code(&coded), "INTERNAL");
        assert_eq!(coded.message, INTERNAL_MESSAGE);
    }

    #[test]
    fn unknown_codes_are_replaced() {
        let err = with_code(ServerError::new("x", None), ErrorCode::Forbidden);
        assert_eq!(code(&code_uncoded(err)), "FORBIDDEN");
        let mut odd = ServerError::new("secret detail", None);
        odd.extensions
            .get_or_insert_with(Default::default)
            .set("code", "SOMETHING_ELSE");
        let coded = code_uncoded(odd);
        assert_eq!(code(&coded), "INTERNAL");
        assert!(!coded.message.contains("secret"));
    }

    #[tokio::test]
    async fn library_errors_get_codes() {
        use async_graphql::{EmptyMutation, EmptySubscription, Object, Request, Schema, Variables};
        struct Query;
        #[Object]
        impl Query {
            async fn double(&self, n: i32) -> i32 {
                n * 2
            }
            async fn maybe(&self, n: Option<i32>) -> i32 {
                n.unwrap_or_default()
            }
            async fn broken(&self) -> async_graphql::Result<i32> {
                Err("connection refused to db at 10.0.0.3".into())
            }
        }
        let schema = Schema::build(Query, EmptyMutation, EmptySubscription)
            .limit_depth(2)
            .finish();
        let run = |query: &'static str, vars: serde_json::Value| {
            let schema = schema.clone();
            async move {
                let request = Request::new(query).variables(Variables::from_json(vars));
                let mut response = schema.execute(request).await;
                code_errors(&mut response);
                let err = response.errors.into_iter().next().expect("an error");
                (code_of(&err).map(str::to_owned), err.message)
            }
        };
        let cases = [
            (
                "query($n: Int!) { double(n: $n) }",
                serde_json::json!({ "n": "ten" }),
                "BAD_USER_INPUT",
            ),
            (
                "query($n: Int) { maybe(n: $n) }",
                serde_json::json!({ "n": "ten" }),
                "BAD_USER_INPUT",
            ),
            (
                "query($n: Int!) { double(n: $n) }",
                serde_json::json!({}),
                "BAD_USER_INPUT",
            ),
            (
                "{ double(n: \"ten\") }",
                serde_json::json!({}),
                "BAD_USER_INPUT",
            ),
            (
                "{ nope }",
                serde_json::json!({}),
                "GRAPHQL_VALIDATION_FAILED",
            ),
            (
                "query($unused: Int) { double(n: 1) }",
                serde_json::json!({}),
                "GRAPHQL_VALIDATION_FAILED",
            ),
            (
                "{ __schema { types { fields { name } } } }",
                serde_json::json!({}),
                "QUERY_TOO_COMPLEX",
            ),
            ("{ broken }", serde_json::json!({}), "INTERNAL"),
        ];
        for (query, vars, expected) in cases {
            let (code, message) = run(query, vars).await;
            assert_eq!(code.as_deref(), Some(expected), "{query}: {message}");
            assert!(!message.contains("10.0.0.3"));
        }
    }

    #[test]
    fn parse_errors_are_coded_without_the_parsers_drawing() {
        let err = async_graphql::parser::parse_query("{ me { id ").expect_err("broken");
        let server = parse_error(&err);
        assert_eq!(code(&server), "GRAPHQL_PARSE_FAILED");
        assert!(
            server.message.starts_with("Syntax error: expected "),
            "{}",
            server.message
        );
        assert!(!server.message.contains('|') && !server.message.contains("-->"));
        assert_eq!(server.locations.len(), 1);
    }
}
