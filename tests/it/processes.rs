//! The service as the separate processes an operator runs (`linkai serve --no-workers`,
//! `linkai worker`) on a test app's database, queue and mail, each logging JSON
//! (`LOG_FORMAT=json`) into lines the test reads.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncBufReadExt as _;
use uuid::Uuid;

use crate::harness::TestApp;

/// One running process (killed when dropped) and its log lines so far.
pub struct Process {
    child: tokio::process::Child,
    logs: Arc<Mutex<Vec<Value>>>,
    /// `http://127.0.0.1:<port>` of a `serve` process.
    pub base_url: String,
}

/// `linkai serve --no-workers` on `app`'s database, with `env` over its settings; returns
/// once it serves. It binds a port the system chooses and logs it, so two tests never race
/// for one.
pub async fn serve(app: &TestApp, env: &[(&str, &str)]) -> Process {
    let mut env = env.to_vec();
    env.insert(0, ("BIND_ADDR", "127.0.0.1:0"));
    let mut process = spawn(app, &["serve", "--no-workers"], &env);
    process.base_url = process.announced("API on ").await;
    process
}

/// `linkai worker` on `app`'s database, queue and mail, named `name`, with `env` over its
/// settings.
pub fn worker(app: &TestApp, name: &str, env: &[(&str, &str)]) -> Process {
    let name = format!("{name}-{}", Uuid::new_v4().simple());
    let mut env = env.to_vec();
    env.insert(0, ("WORKER_NAME", &name));
    spawn(app, &["worker"], &env)
}

fn spawn(app: &TestApp, args: &[&str], env: &[(&str, &str)]) -> Process {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_linkai"));
    command.args(args);
    for (key, value) in app.env() {
        command.env(key, value);
    }
    // A small pool: many of these run beside the rest of the suite on one PostgreSQL.
    command
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env("DATABASE_POOL_SIZE", "4");
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("linkai starts");
    let logs = Arc::new(Mutex::new(Vec::new()));
    let stdout = child.stdout.take().expect("piped");
    let kept = Arc::clone(&logs);
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let entry = serde_json::from_str(&line).unwrap_or(Value::String(line));
            kept.lock().expect("logs").push(entry);
        }
    });
    Process {
        child,
        logs,
        base_url: String::new(),
    }
}

impl Process {
    /// Every log line so far, each a JSON object (`LOG_FORMAT=json`).
    pub fn logs(&self) -> Vec<Value> {
        self.logs.lock().expect("logs").clone()
    }

    /// The log lines whose message contains `text`.
    pub fn logged(&self, text: &str) -> Vec<Value> {
        self.logs()
            .into_iter()
            .filter(|line| line["message"].as_str().is_some_and(|m| m.contains(text)))
            .collect()
    }

    /// The `http://address` the process logged after `prefix` (`API on `, `metrics on `)
    /// once it listened: with port 0, the port the system chose.
    pub async fn announced(&mut self, prefix: &str) -> String {
        for _ in 0..600 {
            let line = self.logs().into_iter().find(|line| {
                line["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(prefix))
            });
            if let Some(line) = line {
                let message = line["message"].as_str().expect("message");
                let url = message.trim_start_matches(prefix);
                let end = url["http://".len()..]
                    .find('/')
                    .map_or(url.len(), |i| i + "http://".len());
                return url[..end].to_owned();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("`linkai` exited ({status}): {:?}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("`linkai` never logged `{prefix}`: {:?}", self.logs());
    }

    /// Asks it to stop (SIGTERM), as an orchestrator does, and waits up to `within` for it
    /// to exit; whether it did.
    pub async fn terminate(&mut self, within: Duration) -> bool {
        let pid = self.child.id().expect("running");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        tokio::time::timeout(within, self.child.wait())
            .await
            .is_ok()
    }

    /// Kills it at once (SIGKILL), as a crash would.
    pub async fn kill(&mut self) {
        self.child.start_kill().expect("SIGKILL");
        let _ = self.child.wait().await;
    }
}

/// The value of `field` in the span named `span` that `line` was logged in, if any.
pub fn span_field<'a>(line: &'a Value, span: &str, field: &str) -> Option<&'a str> {
    line["spans"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == span)?
        .get(field)?
        .as_str()
}
