//! OpenTelemetry traces (issue 24): with `OTEL_EXPORTER_OTLP_ENDPOINT` set, a `serve` and a
//! `worker` process send their spans over OTLP/HTTP to a collector, here a local one that
//! decodes them with the protocol's own generated types (`opentelemetry-proto`). The
//! request, each statement it ran, and the job it queued (run by the other process) are
//! one trace.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::json;

use crate::harness::TestApp;
use crate::processes;

/// A span as received, with the service that sent it.
#[derive(Clone, Debug)]
struct Received {
    service: String,
    span: Span,
}

impl Received {
    fn attribute(&self, key: &str) -> Option<String> {
        let found = self.span.attributes.iter().find(|kv| kv.key == key)?;
        match found.value.as_ref()?.value.as_ref()? {
            Any::StringValue(text) => Some(text.clone()),
            other => Some(format!("{other:?}")),
        }
    }
}

/// An OTLP/HTTP receiver on loopback: `POST /v1/traces`, protobuf.
struct Collector {
    endpoint: String,
    spans: Arc<Mutex<Vec<Received>>>,
}

impl Collector {
    async fn start() -> Self {
        let spans: Arc<Mutex<Vec<Received>>> = Arc::default();
        let kept = Arc::clone(&spans);
        let routes = axum::Router::new().route(
            "/v1/traces",
            post(move |body: Bytes| async move {
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                let mut kept = kept.lock().expect("spans");
                for resource in request.resource_spans {
                    let service = resource
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|kv| kv.key == "service.name")
                        .and_then(|kv| kv.value.as_ref()?.value.clone())
                        .map(|v| match v {
                            Any::StringValue(name) => name,
                            other => format!("{other:?}"),
                        })
                        .unwrap_or_default();
                    for scope in resource.scope_spans {
                        kept.extend(scope.spans.into_iter().map(|span| Received {
                            service: service.clone(),
                            span,
                        }));
                    }
                }
                ExportTraceServiceResponse::default().encode_to_vec()
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("port");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, routes).await.expect("serves") });
        Self { endpoint, spans }
    }

    fn spans(&self) -> Vec<Received> {
        self.spans.lock().expect("spans").clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_its_statements_and_the_job_it_queued_are_one_trace() {
    let app = TestApp::new().await;
    let collector = Collector::start().await;
    let env = |service| {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.as_str()),
            ("OTEL_SERVICE_NAME", service),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ]
    };
    let api = processes::serve(&app, &env("linkai-api")).await;
    let _worker = processes::worker(&app, "traces", &env("linkai-worker"));
    let owner = app.sign_up("Owner").await;

    let invitee = "ida@example.com";
    // The test is a client, not a trusted proxy: its trace is not continued.
    let chosen = "0af7651916cd43dd8448eb211c80319c";
    let res = reqwest::Client::new()
        .post(format!("{}/graphql", api.base_url))
        .bearer_auth(owner.token().expect("token"))
        .header("traceparent", format!("00-{chosen}-b7ad6b7169203331-01"))
        .json(&json!({
            "query": "mutation($ws: ID!, $e: String!) { inviteMember(workspaceId: $ws, email: $e, role: MEMBER) { id } }",
            "variables": { "ws": owner.own_workspace, "e": invitee },
        }))
        .send()
        .await
        .expect("sent");
    let request_id = res.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let body: serde_json::Value = res.json().await.expect("json");
    assert!(body["errors"].is_null(), "{body}");
    app.mail.wait_for(invitee, "invitations/accept", 1).await;

    // The request's span, then the job's, arrive in the batches that follow.
    let mut spans = Vec::new();
    let mut request = None;
    let mut job = None;
    for _ in 0..100 {
        spans = collector.spans();
        request = spans.iter().find(|s| {
            s.span.name == "request" && s.attribute("request_id").as_deref() == Some(&request_id)
        });
        job = request.and_then(|request| {
            spans.iter().find(|s| {
                s.span.name == "job"
                    && s.span.trace_id == request.span.trace_id
                    && s.attribute("kind").as_deref() == Some("send_invitation")
            })
        });
        if job.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let request = request.unwrap_or_else(|| panic!("no request span: {spans:#?}"));
    let job = job.unwrap_or_else(|| panic!("no job span in the request's trace: {spans:#?}"));
    assert_eq!(request.service, "linkai-api");
    assert!(request.span.parent_span_id.is_empty(), "a root span");
    assert_ne!(
        hex(&request.span.trace_id),
        chosen,
        "a client chose the trace"
    );
    assert_eq!(
        request.attribute("http.request.method").as_deref(),
        Some("POST")
    );
    assert_eq!(request.attribute("url.path").as_deref(), Some("/graphql"));
    // The job ran in the other process, as a child of the request.
    assert_eq!(job.service, "linkai-worker");
    assert_eq!(job.span.parent_span_id, request.span.span_id);
    assert_eq!(job.attribute("request_id").as_deref(), Some(&*request_id));

    // The statements: the request's own (the invitation's insert among them) and the job's.
    let in_trace = |parent: &Received| -> Vec<String> {
        spans
            .iter()
            .filter(|s| s.span.name == "statement" && s.span.trace_id == parent.span.trace_id)
            .filter(|s| descends_from(&spans, s, &parent.span.span_id))
            .filter_map(|s| s.attribute("db.query.text"))
            .collect()
    };
    let requests = in_trace(request);
    assert!(
        requests
            .iter()
            .any(|sql| sql.starts_with("INSERT INTO \"invitations\"")),
        "{requests:#?}"
    );
    let jobs = in_trace(job);
    assert!(!jobs.is_empty(), "the job's statements: {spans:#?}");

    // Where the request's time went: its waits for a connection, the execution (named for
    // the operation) and the serialisation, each a span below it, each with its time
    // polled and its time waiting.
    let below = |name: &str| -> Vec<&Received> {
        spans
            .iter()
            .filter(|s| s.span.name == name && s.span.trace_id == request.span.trace_id)
            .filter(|s| descends_from(&spans, s, &request.span.span_id))
            .collect()
    };
    assert!(
        !below("connection").is_empty(),
        "no connection wait: {spans:#?}"
    );
    let execute = below("execute");
    assert_eq!(execute.len(), 1, "{spans:#?}");
    assert_eq!(
        execute[0].attribute("graphql.operation.type").as_deref(),
        Some("mutation")
    );
    let statements_in_execution = spans
        .iter()
        .filter(|s| s.span.name == "statement")
        .filter(|s| descends_from(&spans, s, &execute[0].span.span_id))
        .count();
    assert!(statements_in_execution > 0, "{spans:#?}");
    assert_eq!(below("serialize").len(), 1, "{spans:#?}");
    for timing in ["busy_ns", "idle_ns"] {
        assert!(
            request.attribute(timing).is_some(),
            "{timing}: {request:#?}"
        );
    }
    // Statements carry their text, never their values.
    assert!(
        spans
            .iter()
            .flat_map(|s| &s.span.attributes)
            .all(|kv| !format!("{:?}", kv.value).contains(invitee)),
        "a value reached a span"
    );
}

/// Whether `span` is `ancestor` or below it.
fn descends_from(spans: &[Received], span: &Received, ancestor: &[u8]) -> bool {
    let mut current = span;
    for _ in 0..50 {
        if current.span.span_id == ancestor {
            return true;
        }
        let Some(parent) = spans
            .iter()
            .find(|s| s.span.span_id == current.span.parent_span_id)
        else {
            return false;
        };
        current = parent;
    }
    false
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
