//! The binary as a new user runs it: `linkai serve` on an empty machine creates the
//! database, serves GraphiQL, answers the README's example operations and stops cleanly
//! on SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

/// The ```graphql blocks of the README's example session, in order.
/// What the README's `completeSignUp` example holds where the emailed token goes.
const README_LINK_TOKEN: &str = "TOKEN_FROM_THE_EMAIL";

fn readme_operations() -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let mut operations = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim()) {
            (None, "```graphql") => current = Some(String::new()),
            (Some(op), "```") => {
                operations.push(std::mem::take(op));
                current = None;
            }
            (Some(op), _) => {
                op.push_str(line);
                op.push('\n');
            }
            (None, _) => {}
        }
    }
    operations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_on_an_empty_database_and_answers_the_readme_examples() {
    serve_end_to_end(false).await;
}

/// On one core the binary runs tokio's single-threaded scheduler (`main.rs`): the same
/// session works there, password hashing, the workers' email and a clean shutdown included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_pinned_to_one_core_works_the_same() {
    serve_end_to_end(true).await;
}

async fn serve_end_to_end(on_one_core: bool) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let database = format!("linkai_cli_{}", Uuid::new_v4().simple());
    // `taskset` sets the CPU set and then becomes the server: the pid stays the server's.
    let mut command = if on_one_core {
        let mut taskset = tokio::process::Command::new("taskset");
        taskset.args(["-c", "0", env!("CARGO_BIN_EXE_linkai")]);
        taskset
    } else {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_linkai"))
    };
    let mut child = command
        .arg("serve")
        .env(
            "DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:5432/{database}"),
        )
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        // Its own queue: the two servers of this file run at once, and one's worker must
        // not take the other's jobs (it would not find their rows and drop them).
        .env("JOBS_QUEUE", format!("linkai:jobs:{database}"))
        .env("OUTBOX_DIR", std::env::temp_dir().join(&database))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("linkai starts");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..200 {
        if let Ok(res) = client.get(format!("{base}/readyz")).send().await {
            if res.status() == 200 {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the service became ready");
    // With transparent huge pages, the kernel's khugepaged fills idle sockets' sparse pages
    // up to 2 MiB ones: the binary turns them off for itself (`main.rs`; BENCHMARKS.md's
    // thirty-seventh round). This machine kind leaves them on for other processes.
    let pid = child.id().expect("the server runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("its status");
    assert!(
        status
            .lines()
            .any(|line| line.split_whitespace().eq(["THP_enabled:", "0"])),
        "transparent huge pages are off for the server: {status}"
    );
    let page = client
        .get(format!("{base}/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .expect("graphiql");
    assert!(page
        .text()
        .await
        .expect("html")
        .to_lowercase()
        .contains("graphiql"));

    let operations = readme_operations();
    assert!(operations.len() >= 4, "the README shows an example session");
    // With no SMTP configured, emails become files whose links work.
    let outbox = std::env::temp_dir().join(&database);
    let mut token: Option<String> = None;
    for operation in operations {
        // The README's reader pastes the token of the emailed link that finishes sign-up.
        let operation = if operation.contains(README_LINK_TOKEN) {
            let link = wait_for_outbox_token(&outbox, "complete-sign-up").await;
            operation.replace(README_LINK_TOKEN, &link)
        } else {
            operation
        };
        let mut request = client
            .post(format!("{base}/graphql"))
            .json(&json!({ "query": operation }));
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        let body: Value = request
            .send()
            .await
            .expect("answer")
            .json()
            .await
            .expect("json");
        assert!(
            body.get("errors").is_none(),
            "README operation failed:\n{operation}\n{body:#}"
        );
        if let Some(t) = body["data"]["completeSignUp"]["token"].as_str() {
            token = Some(t.to_owned());
        }
    }
    assert!(token.is_some(), "the README's session signs in");

    // An invitation's link works the same way.
    let gql = |token: Option<String>, query: &'static str, variables: Value| {
        let mut request = client
            .post(format!("{base}/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            request
                .send()
                .await
                .expect("answer")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let owner = gql(
        token.clone(),
        "{ me { activeWorkspace { id } } }",
        json!({}),
    )
    .await;
    let workspace = owner["data"]["me"]["activeWorkspace"]["id"].clone();
    let invited = gql(
        token.clone(),
        "mutation($ws: ID!) { inviteMember(workspaceId: $ws, email: \"grace@example.com\", role: ADMIN) { id } }",
        json!({ "ws": workspace }),
    )
    .await;
    assert!(invited.get("errors").is_none(), "{invited:#}");
    let link_token = wait_for_outbox_token(&outbox, "invitations/accept").await;
    let grace = gql(
        None,
        "mutation($t: String) { signUp(email: \"grace@example.com\", password: \"correct horse battery\", name: \"Grace\", invitationToken: $t) { session { token } } }",
        json!({ "t": link_token }),
    )
    .await;
    assert!(grace.get("errors").is_none(), "{grace:#}");
    let members = gql(
        token.clone(),
        "query($ws: ID!) { workspace(id: $ws) { members { totalCount } } }",
        json!({ "ws": workspace }),
    )
    .await;
    assert_eq!(members["data"]["workspace"]["members"]["totalCount"], 2);

    // Issue 15: one half-sent request kept the server running 60 s after SIGTERM. Leave
    // one open (headers promise a body that never comes), and one whose headers never end.
    let mut half_sent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connects");
    tokio::io::AsyncWriteExt::write_all(
        &mut half_sent,
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"query\":",
    )
    .await
    .expect("writes");
    let mut unfinished = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connects");
    tokio::io::AsyncWriteExt::write_all(&mut unfinished, b"GET /healthz HTTP/1.1\r\n")
        .await
        .expect("writes");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let pid = child.id().expect("running");
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("stops")
        .expect("status");
    assert!(exit.success(), "graceful shutdown exits 0, got {exit}");
    drop((half_sent, unfinished));
    drop(crate::harness::TestDatabase { name: database });
    let _ = std::fs::remove_dir_all(outbox);
}

/// Waits for an `.eml` file in `dir` linking to `path` and returns its token.
async fn wait_for_outbox_token(dir: &std::path::Path, path: &str) -> String {
    for _ in 0..100 {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let raw = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let message = crate::smtp::Received {
                to: Vec::new(),
                decoded: crate::smtp::decode_quoted_printable(&raw),
            };
            if message.links_to(path) {
                return message.token();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {path} email appeared in {}", dir.display());
}
