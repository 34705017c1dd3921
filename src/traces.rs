//! Traces: OpenTelemetry export over OTLP/HTTP (protobuf), off unless the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and
//! `OTEL_SDK_DISABLED` is not `true`. The SDK reads the other standard variables itself:
//! `OTEL_SERVICE_NAME` (`linkai` when unset), `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_*`.
//!
//! The spans: each HTTP request (`request`, src/http/request_id.rs, continuing a trusted
//! proxy's `traceparent`); within it, each wait for a pooled connection (`connection`) and
//! each SQL statement (`statement`, both src/db.rs; a statement's text, whose values are
//! bound parameters and never in it), the GraphQL execution (`execute`, with
//! `graphql.operation.type` and `.name`) and the answer's serialisation (`serialize`, both
//! src/http.rs); and each job (`job`, jobs/src/queue.rs), which continues the trace of the
//! request or job that queued it (`linkai_jobs::request`). Every span carries `busy_ns`
//! (polled) and `idle_ns` (waiting: for I/O, or to be scheduled), so a slow request's time
//! splits into where it went. Spans go in batches from a task of the process' runtime; an
//! unreachable collector costs dropped spans, never a request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::registry::LookupSpan;

static EXPORTED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported: what only a trace needs is skipped otherwise (a span per
/// statement, a request's `traceparent`).
pub fn exported() -> bool {
    EXPORTED.load(Ordering::Relaxed)
}

/// The exporter the environment configures. Its spans are sampled as the standard
/// `OTEL_TRACES_SAMPLER` says (by default all, and a trusted proxy's sampled flag is kept).
pub struct Traces {
    provider: SdkTracerProvider,
}

/// The exporter, if the environment asks for one. Call inside the runtime: the batches are
/// sent by a task of it.
pub fn from_env() -> anyhow::Result<Option<Traces>> {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    if disabled
        || !(set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    {
        return Ok(None);
    }
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Ok(protocol) = std::env::var(name) {
            anyhow::ensure!(
                protocol == "http/protobuf",
                "{name}: only `http/protobuf` is supported, not `{protocol}`"
            );
        }
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()?;
    let batches = BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
    let mut resource = opentelemetry_sdk::Resource::builder();
    let named = set("OTEL_SERVICE_NAME")
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|a| a.contains("service.name="));
    if !named {
        resource = resource.with_service_name("linkai");
    }
    let provider = SdkTracerProvider::builder()
        .with_span_processor(batches)
        .with_resource(resource.build())
        .build();
    EXPORTED.store(true, Ordering::Relaxed);
    Ok(Some(Traces { provider }))
}

impl Traces {
    /// The layer that turns the process' spans into OpenTelemetry's.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        // Tracked inactivity (the default, said here because the spans' docs rely on it)
        // gives each span its `busy_ns` and `idle_ns`.
        tracing_opentelemetry::layer()
            .with_tracked_inactivity(true)
            .with_tracer(self.provider.tracer("linkai"))
    }

    /// Sends the spans still buffered, for at most 5 s: call before the process exits.
    pub async fn flush(self) {
        // Shutting down waits for the runtime's batch task, so not on the runtime's thread.
        let provider = self.provider;
        let done = tokio::task::spawn_blocking(move || provider.shutdown());
        match tokio::time::timeout(Duration::from_secs(5), done).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => tracing::warn!("sending the last spans failed: {err}"),
            Ok(Err(_)) | Err(_) => tracing::warn!("spans still unsent at exit were dropped"),
        }
    }
}
