//! An outage is not a bug (issue 24). While PostgreSQL is out of reach, requests answer
//! `SERVICE_UNAVAILABLE` with `Retry-After` (not `INTERNAL`), `/readyz` fails, and the log
//! says so once per outage, in the span of the request that found it, and once when it is
//! over. The outage is a cut proxy in front of PostgreSQL (tests/it/tcp_proxy.rs): the
//! service's connections drop and new ones are refused, as in a restart.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::TestApp;
use crate::processes::{self, span_field};
use crate::tcp_proxy::TcpProxy;

struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_default()
    }
}

async fn ask(base: &str, token: Option<&str>, request_id: Uuid, query: &str) -> Answer {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .header("x-request-id", request_id.to_string())
        .json(&json!({ "query": query }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let res = request.send().await.expect("answered");
    let retry_after = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("ascii").to_owned());
    Answer {
        status: res.status(),
        retry_after,
        body: res.json().await.expect("json"),
    }
}

async fn ready(base: &str) -> (StatusCode, Value) {
    let res = reqwest::get(format!("{base}/readyz"))
        .await
        .expect("readyz");
    (res.status(), res.json().await.expect("json"))
}

const ME: &str = "{ me { id } }";
const CREATE: &str = r#"mutation { createWorkspace(name: "During") { id } }"#;
const SIGN_IN: &str =
    r#"mutation { signIn(email: "nobody@example.com", password: "wrong horse") { token } }"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_service_unavailable_and_is_logged_once() {
    let app = TestApp::new().await;
    let owner = app.sign_up("Owner").await;
    let token = owner.token();
    let proxy = TcpProxy::start("127.0.0.1:5432").await;
    let url = proxy.route(&app.db.url());
    // Every request checks its token: a token checked in the last second would let `me`
    // on, to meet the outage in its resolver, as `signIn` does below.
    let api = processes::serve(
        &app,
        &[
            ("DATABASE_URL", &url),
            ("TRUSTED_PROXIES", "127.0.0.1"),
            ("TOKEN_CACHE_MS", "0"),
        ],
    )
    .await;
    let base = api.base_url.as_str();
    assert_eq!(ask(base, token, Uuid::new_v4(), ME).await.status, 200);

    let mut finders = Vec::new();
    for _outage in 0..2 {
        proxy.cut().await;
        let finder = Uuid::new_v4();
        finders.push(finder);
        for round in 0..10 {
            let id = if round == 0 { finder } else { Uuid::new_v4() };
            for query in [ME, CREATE] {
                let answer = ask(base, token, id, query).await;
                assert_eq!(answer.status, 503, "{}", answer.body);
                assert_eq!(answer.code(), "SERVICE_UNAVAILABLE", "{}", answer.body);
                assert_eq!(answer.retry_after.as_deref(), Some("5"));
            }
            // No session to check: the resolver finds the outage, in a field error.
            let answer = ask(base, None, Uuid::new_v4(), SIGN_IN).await;
            assert_eq!(answer.code(), "SERVICE_UNAVAILABLE", "{}", answer.body);
            assert_eq!(answer.retry_after.as_deref(), Some("5"));
        }
        let (status, body) = ready(base).await;
        assert_eq!(status, 503);
        assert_eq!(body["postgres"], false);

        proxy.restore().await;
        let mut back = false;
        for _ in 0..100 {
            if ask(base, token, Uuid::new_v4(), ME).await.status == 200 {
                back = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(back, "requests succeed again once PostgreSQL is back");
        assert_eq!(ready(base).await.0, 200);
    }

    // 60 refused requests and two readiness checks, over two outages: two lines each way.
    let out = api.logged("PostgreSQL is out of reach");
    assert_eq!(out.len(), 2, "{out:#?}");
    for (line, finder) in out.iter().zip(&finders) {
        assert_eq!(line["level"], "ERROR");
        let finder = finder.to_string();
        assert_eq!(
            span_field(line, "request", "request_id"),
            Some(finder.as_str())
        );
    }
    assert_eq!(api.logged("PostgreSQL is reachable again").len(), 2);
    assert!(api.logged("internal error").is_empty(), "{:#?}", api.logs());
}
