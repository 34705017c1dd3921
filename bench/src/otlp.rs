//! A trace receiver for bench/run's slowest requests: OTLP over HTTP (protobuf, as the
//! server exports, src/traces.rs), decoded with OpenTelemetry's own message types. Each span
//! becomes one JSON line in the output file, flushed per batch, until SIGTERM or Ctrl-C,
//! after the batch being written.

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;

type Out = Arc<Mutex<std::io::BufWriter<std::fs::File>>>;

pub async fn receive(addr: &str, out_file: &str) -> anyhow::Result<serde_json::Value> {
    let out: Out = Arc::new(Mutex::new(std::io::BufWriter::new(std::fs::File::create(
        out_file,
    )?)));
    let routes = Router::new()
        .route(
            "/v1/traces",
            post(move |body: Bytes| {
                let out = out.clone();
                async move { batch(&out, &body) }
            }),
        )
        // The server's batches are sized by OTEL_BSP_MAX_EXPORT_BATCH_SIZE (bench/run sets it).
        .layer(DefaultBodyLimit::max(64 << 20));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, routes)
        .with_graceful_shutdown(linkai::http::shutdown_signal())
        .await?;
    Ok(serde_json::json!({ "received": addr }))
}

fn batch(out: &Out, body: &[u8]) -> (StatusCode, [(header::HeaderName, &'static str); 1], Vec<u8>) {
    let protobuf = [(header::CONTENT_TYPE, "application/x-protobuf")];
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, protobuf, Vec::new());
    };
    let mut out = out.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut spans = request
        .resource_spans
        .iter()
        .flat_map(|resource| &resource.scope_spans)
        .flat_map(|scope| &scope.spans);
    let written = spans
        .try_for_each(|span| writeln!(out, "{}", line(span)))
        .and_then(|()| out.flush());
    if let Err(err) = written {
        // Lost spans would bias the slowest 1 %: stop, and bench/run stops on the count.
        eprintln!("linkai-bench otlp: writing spans failed: {err}");
        std::process::exit(1);
    }
    // An empty ExportTraceServiceResponse: everything accepted.
    (StatusCode::OK, protobuf, Vec::new())
}

/// The span as bench/run reads it: ids, name, times, and the attributes it splits time by.
fn line(span: &Span) -> serde_json::Value {
    let mut attributes = serde_json::Map::new();
    for pair in &span.attributes {
        let value = match pair.value.as_ref().and_then(|value| value.value.as_ref()) {
            Some(Value::StringValue(text)) => serde_json::json!(text),
            Some(Value::IntValue(number)) => serde_json::json!(number),
            Some(Value::DoubleValue(number)) => serde_json::json!(number),
            Some(Value::BoolValue(flag)) => serde_json::json!(flag),
            _ => continue,
        };
        attributes.insert(pair.key.clone(), value);
    }
    serde_json::json!({
        "trace": hex(&span.trace_id),
        "span": hex(&span.span_id),
        "parent": hex(&span.parent_span_id),
        "name": span.name,
        "start_ns": span.start_time_unix_nano,
        "end_ns": span.end_time_unix_nano,
        "attributes": attributes,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
