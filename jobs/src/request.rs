//! The request a piece of work is done for: its id (and its trace, when traces are
//! exported) is in scope while the server handles the request (src/http/request_id.rs) and
//! while a worker runs a job it queued ([`crate::queue`]), so a job queued in either carries
//! them on ([`crate::Job::of`]): every log line of the request, its jobs and their emails
//! names the same id, and their spans are one trace.

use std::collections::HashMap;
use std::future::Future;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

/// Whom work is done for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub request_id: Uuid,
    /// W3C `traceparent` of the span the work continues, if traces are exported.
    pub trace_parent: Option<String>,
}

tokio::task_local! {
    static ORIGIN: Origin;
}

/// What the work running now is done for, if anything.
pub fn current() -> Option<Origin> {
    ORIGIN.try_with(Clone::clone).ok()
}

/// Runs `work` for `origin`. Not an `async fn`: one would keep `work` twice (its argument
/// and the scope it awaits) in a future every request boxes (BENCHMARKS.md, fortieth round).
pub fn scope<F: Future>(origin: Origin, work: F) -> impl Future<Output = F::Output> {
    ORIGIN.scope(origin, work)
}

/// The W3C `traceparent` naming `span`, when traces are exported (without an OpenTelemetry
/// layer a span has no trace).
pub fn trace_parent(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    propagator().inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` a child of the span `trace_parent` names (ignored when malformed).
pub fn continue_trace(span: &tracing::Span, trace_parent: &str) {
    let carrier = HashMap::from([("traceparent".to_owned(), trace_parent.to_owned())]);
    let parent = propagator().extract(&carrier);
    if parent.span().span_context().is_valid() {
        // Fails only without an OpenTelemetry layer, where there is nothing to continue.
        let _ = span.set_parent(parent);
    }
}

/// W3C Trace Context, the propagation every OpenTelemetry SDK speaks.
fn propagator() -> opentelemetry_sdk::propagation::TraceContextPropagator {
    opentelemetry_sdk::propagation::TraceContextPropagator::new()
}
