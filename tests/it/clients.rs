//! The client conformance suite in `clients/` (graphql-http's audit, urql, Apollo Client,
//! graphql-codegen + tsc, headless Chromium), run against this server: the API as its users'
//! own tools meet it. `.ci/run` installs its npm packages and Debian's chromium.

use std::path::Path;
use std::process::Stdio;

use crate::harness::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_libraries_and_a_browser_use_the_api_as_they_expect() -> Result<(), Failing> {
    let clients = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients");
    assert!(
        clients.join("node_modules/graphql-http").exists(),
        "clients/node_modules is missing: run .ci/run once (it runs `npm ci` in clients/)"
    );
    let mail = tempdir();
    let page_port = page_port();
    let app = TestApp::builder()
        .with_workers()
        // Emails as `.eml` files, as in local development: the suite reads the links.
        .with_env("SMTP_URL", "")
        .with_env("OUTBOX_DIR", mail.to_str().expect("utf-8 path"))
        .with_env("CORS_ORIGINS", &format!("http://localhost:{page_port}"))
        .start()
        .await;
    let output = tokio::process::Command::new("node")
        .args([
            "--test",
            "--test-concurrency=1",
            "--test-reporter=spec",
            "tests/",
        ])
        .current_dir(&clients)
        .env("LINKAI_BASE_URL", &app.base_url)
        .env("LINKAI_MAIL_DIR", &mail)
        .env("LINKAI_PAGE_PORT", page_port.to_string())
        .env("LINKAI_SERVICE_TOKEN", crate::usage::SERVICE_TOKEN)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("node runs (Node 20 is on the machine)");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_dir_all(&mail);
    if !output.status.success() {
        eprintln!("{report}");
        // Returned, not panicked: with no backtrace after it, the failing tests' own lines
        // end the output, where a CI log's tail shows them.
        return Err(failing_tests(&report));
    }
    // Each file ran: a suite that silently skipped would pass with nothing checked.
    for suite in [
        "graphql-http audit",
        "urql: sign up",
        "urql: a Viewer reads the conversations",
        "Apollo Client: a Viewer reads the conversations",
        "Apollo Client: sign up",
        "graphql-codegen",
        "allowed origin",
        "playground works offline",
    ] {
        assert!(report.contains(suite), "`{suite}` did not run:\n{report}");
    }
    assert!(report.contains("fail 0"), "{report}");
    Ok(())
}

/// What node's spec reporter says of the failing tests, at most its last 2,000 characters.
fn failing_tests(report: &str) -> Failing {
    let failing = report
        .split_once("failing tests:")
        .map_or(report, |(_, after)| after);
    let start = failing
        .char_indices()
        .rev()
        .nth(1_999)
        .map_or(0, |(at, _)| at);
    Failing(format!("client suite failed:\n{}", &failing[start..]))
}

/// A test's error is printed with `Debug`: this one prints its lines as they are.
struct Failing(String);

impl std::fmt::Debug for Failing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A free port below the kernel's ephemeral range, which the page's server binds later: a
/// socket another test binds to port 0 meanwhile cannot take it.
fn page_port() -> u16 {
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let below = u128::from(ephemeral.saturating_sub(10_000).max(1_024));
    (0..1000)
        .filter_map(|_| u16::try_from(below + uuid::Uuid::new_v4().as_u128() % 8_000).ok())
        .find(|port| *port < ephemeral && std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port below the ephemeral range")
}

fn tempdir() -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("linkai-clients-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
