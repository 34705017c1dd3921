//! End-to-end email latency: invitations sent over GraphQL at a steady rate (open loop: a
//! slow answer does not delay the next request), each timed from its request to the moment
//! a loopback SMTP server accepts its email. The request commits the invitation before it
//! answers, so this is an upper bound on the latency from commit to acceptance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::stats::quantile;

/// When each recipient's email was accepted.
type Accepted = Arc<Mutex<HashMap<String, Instant>>>;

const INVITE: &str = "mutation($ws: ID!, $email: String!) {
  inviteMember(workspaceId: $ws, email: $email, role: MEMBER) { id email status } }";

pub async fn run(
    api_url: &str,
    smtp_addr: &str,
    tokens_file: &str,
    rate: f64,
    count: usize,
) -> anyhow::Result<serde_json::Value> {
    let owners: Vec<(String, String)> = std::fs::read_to_string(tokens_file)?
        .lines()
        .filter_map(|line| {
            let (token, workspace) = line.split_once(' ')?;
            Some((token.to_owned(), workspace.to_owned()))
        })
        .collect();
    anyhow::ensure!(!owners.is_empty(), "no tokens in {tokens_file}");
    let accepted: Accepted = Arc::default();
    let listener = TcpListener::bind(smtp_addr)
        .await
        .with_context(|| format!("cannot listen on {smtp_addr}"))?;
    tokio::spawn(smtp_server(listener, Arc::clone(&accepted)));

    let http = reqwest::Client::new();
    let run_id = std::process::id();
    let start = Instant::now();
    let mut requests = Vec::with_capacity(count);
    for i in 0..count {
        tokio::time::sleep_until((start + Duration::from_secs_f64(i as f64 / rate)).into()).await;
        let (token, workspace) = &owners[i % owners.len()];
        let email = format!("invitee-{run_id}-{i}@bench.example.com");
        let request = http
            .post(api_url)
            .bearer_auth(token)
            .json(&json!({ "query": INVITE, "variables": { "ws": workspace, "email": email } }));
        requests.push(tokio::spawn(async move {
            let sent = Instant::now();
            let answer: serde_json::Value = request.send().await?.json().await?;
            anyhow::ensure!(
                answer["data"]["inviteMember"]["status"] == "PENDING",
                "inviteMember failed: {answer}"
            );
            Ok((email, sent))
        }));
    }
    let mut sent = Vec::with_capacity(count);
    let mut failed = 0usize;
    for request in requests {
        match request.await? {
            Ok(ok) => sent.push(ok),
            Err(err) => {
                failed += 1;
                eprintln!("{err:#}");
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while accepted_count(&accepted, &sent) < sent.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let accepted = accepted.lock().expect("not poisoned").clone();
    let mut latencies_ms: Vec<f64> = sent
        .iter()
        .filter_map(|(email, sent)| Some(accepted.get(email)?.duration_since(*sent)))
        .map(|latency| latency.as_secs_f64() * 1000.0)
        .collect();
    latencies_ms.sort_by(f64::total_cmp);
    anyhow::ensure!(!latencies_ms.is_empty(), "no email arrived");
    Ok(json!({
        "rate_per_sec": rate,
        "invitations": count,
        "failed_requests": failed,
        "emails_accepted": latencies_ms.len(),
        "p50_ms": quantile(&latencies_ms, 0.5),
        "p99_ms": quantile(&latencies_ms, 0.99),
        "max_ms": quantile(&latencies_ms, 1.0),
    }))
}

fn accepted_count(accepted: &Accepted, sent: &[(String, Instant)]) -> usize {
    let accepted = accepted.lock().expect("not poisoned");
    sent.iter()
        .filter(|(email, _)| accepted.contains_key(email))
        .count()
}

async fn smtp_server(listener: TcpListener, accepted: Accepted) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(smtp_session(stream, Arc::clone(&accepted)));
    }
}

/// Just enough SMTP for lettre: no extensions, every message accepted.
async fn smtp_session(stream: TcpStream, accepted: Accepted) -> std::io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    writer.write_all(b"220 bench ESMTP\r\n").await?;
    let mut recipients: Vec<String> = Vec::new();
    while let Some(line) = lines.next_line().await? {
        let verb = line.get(..4).unwrap_or(&line).to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 bench\r\n",
            "RCPT" => {
                let address = line
                    .split_once('<')
                    .and_then(|(_, rest)| rest.split_once('>'))
                    .map(|(address, _)| address.to_owned());
                recipients.extend(address);
                b"250 OK\r\n"
            }
            "DATA" => {
                writer.write_all(b"354 go on\r\n").await?;
                while let Some(body) = lines.next_line().await? {
                    if body == "." {
                        break;
                    }
                }
                let now = Instant::now();
                let mut accepted = accepted.lock().expect("not poisoned");
                for recipient in recipients.drain(..) {
                    accepted.insert(recipient, now);
                }
                b"250 accepted\r\n"
            }
            "QUIT" => {
                writer.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"250 OK\r\n",
        };
        writer.write_all(reply).await?;
    }
    Ok(())
}
