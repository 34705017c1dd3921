//! Live updates (issue 25), two measures:
//!
//! - `hold`: opens `CONNECTIONS` sockets (graphql-transport-ws), each signed in as the Owner
//!   of a seeded workspace (user n owns workspace n, at most 20 sockets per account) and
//!   subscribed to it; reports how long that took, then keeps them open and read (which
//!   answers the server's pings) until stdin closes, so the driver can read the server's
//!   memory meanwhile; then reports how many the server closed while they were held.
//! - `latency`: `WORKSPACES` workspaces with `FANOUT` subscribers each; audit events are
//!   written straight into the database at `RATE` per second (open loop, spread over the
//!   workspaces), each carrying the time it was sent; each subscriber records when it
//!   received it. Each writer then publishes the event's wake on Redis, as the server does
//!   once a mutation is over (src/live/wakes.rs). Reports the latency from the insert's start
//!   to each delivery, and from its commit (when the writer had the answer) to each delivery:
//!   the first includes waiting to write, the second only what the servers do after the
//!   commit. The measured events start once every subscriber has received an unmeasured
//!   one, so that subscriptions still starting are not counted as latency.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::stats::quantile;

const SUBSCRIBE: &str = "subscription($ws: ID!) { workspaceEvents(workspaceId: $ws) { \
    cursor auditEvent { changes } } }";
const PER_ACCOUNT: usize = 20;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn workspace_id(n: usize) -> String {
    format!("00000000-0000-4000-9000-{n:012}")
}

/// A socket signed in as user `owner` and subscribed to their workspace, once the server
/// has acknowledged both (the first `next` is not waited for).
async fn subscribed(ws_url: &str, owner: usize) -> anyhow::Result<Socket> {
    let mut request = ws_url.into_client_request()?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .context("upgrade")?;
    let init = json!({"type": "connection_init",
                      "payload": {"authorization": format!("Bearer lks_bench_{owner}")}});
    socket.send(Message::Text(init.to_string().into())).await?;
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) if text.contains("connection_ack") => break,
            Some(Ok(Message::Text(text))) => anyhow::bail!("before the ack: {text}"),
            Some(Ok(_)) => continue,
            other => anyhow::bail!("closed before the ack: {other:?}"),
        }
    }
    let subscribe = json!({"id": "1", "type": "subscribe", "payload": {
        "query": SUBSCRIBE, "variables": {"ws": workspace_id(owner)}}});
    socket
        .send(Message::Text(subscribe.to_string().into()))
        .await?;
    Ok(socket)
}

/// Opens `count` sockets, `per_workspace` on each of the first workspaces.
async fn open(ws_url: &str, count: usize, per_workspace: usize) -> anyhow::Result<Vec<Socket>> {
    let mut opening = tokio::task::JoinSet::new();
    let mut sockets = Vec::with_capacity(count);
    for i in 0..count {
        let (url, owner) = (ws_url.to_owned(), 1 + i / per_workspace);
        opening.spawn(async move { subscribed(&url, owner).await });
        // A few hundred handshakes at a time: the listen backlog is finite.
        while opening.len() >= 256 {
            if let Some(done) = opening.join_next().await {
                sockets.push(done??);
            }
        }
    }
    while let Some(done) = opening.join_next().await {
        sockets.push(done??);
    }
    Ok(sockets)
}

pub async fn hold(ws_url: &str, count: usize) -> anyhow::Result<Value> {
    let started = Instant::now();
    let per_workspace = count.div_ceil(2000).clamp(1, PER_ACCOUNT);
    let sockets = open(ws_url, count, per_workspace).await?;
    let opened = started.elapsed();
    // Each socket is read, as a client's is: tungstenite answers the server's pings while
    // it reads, and a socket that answers none is closed as idle (75 s).
    let sockets: Vec<_> = sockets
        .into_iter()
        .map(|mut socket| {
            tokio::spawn(async move { while let Some(Ok(_)) = socket.next().await {} })
        })
        .collect();
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{}",
            json!({"sockets": sockets.len(), "open_seconds": opened.as_secs_f64()})
        )?;
        out.flush()?;
    }
    // The driver reads the server's memory, then closes stdin.
    let mut line = String::new();
    let _ = tokio::io::AsyncBufReadExt::read_line(
        &mut tokio::io::BufReader::new(tokio::io::stdin()),
        &mut line,
    )
    .await;
    // A socket whose reading ended was closed by the server while held.
    let ended = sockets.iter().filter(|socket| socket.is_finished()).count();
    for socket in sockets {
        socket.abort();
    }
    Ok(json!({"closed": true, "ended_while_held": ended}))
}

/// Writes an event with `changes` to `workspace`'s log, then publishes its wake as the
/// server does once a mutation is over (src/live/wakes.rs); returns when the commit
/// answered (microseconds). The insert is prepared once per connection (`static_sql`), as
/// the server's own audit insert is: `sql_query` text is parsed and planned at every run,
/// and that cost fell on the server's core (BENCHMARKS.md, thirty-first round).
async fn write(
    conn: &mut AsyncPgConnection,
    wakes: &mut redis::aio::MultiplexedConnection,
    channel: &str,
    workspace: &str,
    changes: &Value,
) -> anyhow::Result<i64> {
    use diesel::sql_types::Text;
    use linkai::db::{bind, static_sql};
    let Seq { seq } = static_sql(
        "INSERT INTO audit_events (workspace_id, at, actor_kind, action, target_kind, \
         target_id, changes) VALUES ($1::uuid, now(), 'system', \
         'workspace.settings_changed', 'workspace', $1, $2::jsonb) RETURNING seq",
        (
            bind::<Text, _>(workspace),
            bind::<Text, _>(changes.to_string()),
        ),
    )
    .get_result(conn)
    .await?;
    let committed = micros_now();
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg(format!("{workspace}:{seq}"))
        .exec_async(wakes)
        .await?;
    Ok(committed)
}

#[derive(diesel::QueryableByName)]
struct Seq {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    seq: i64,
}

fn micros_now() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
}

/// Where `latency` finds the server, its database and its Redis.
pub struct Urls<'a> {
    pub socket: &'a str,
    pub admin: &'a str,
    pub redis: &'a str,
}

pub async fn latency(
    urls: Urls<'_>,
    workspaces: usize,
    fanout: usize,
    rate: f64,
    seconds: f64,
) -> anyhow::Result<Value> {
    anyhow::ensure!(
        fanout <= PER_ACCOUNT,
        "at most {PER_ACCOUNT} sockets per account"
    );
    let sockets = open(urls.socket, workspaces * fanout, fanout).await?;
    let redis = redis::Client::open(urls.redis)?;
    // The server's: bench/run leaves `JOBS_QUEUE` at its default.
    let channel = linkai::live::wakes::channel(linkai::config::DEFAULT_JOBS_QUEUE);
    let count = (rate * seconds) as usize;
    // Per event: when its writer had the commit's answer (microseconds; 0 until then).
    let committed: Arc<Vec<AtomicI64>> = Arc::new((0..count).map(|_| AtomicI64::new(0)).collect());
    // Per delivery: the event's number, when it was sent, when it was received.
    let receipts: Arc<Mutex<Vec<(usize, i64, i64)>>> = Arc::default();
    // Sockets that received their first event: their subscription has started.
    let started_sockets = Arc::new(AtomicUsize::new(0));
    let mut readers = tokio::task::JoinSet::new();
    for mut socket in sockets {
        let (receipts, started_sockets) = (Arc::clone(&receipts), Arc::clone(&started_sockets));
        readers.spawn(async move {
            let mut first = true;
            while let Some(Ok(message)) = socket.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let received = micros_now();
                if std::mem::take(&mut first) {
                    started_sockets.fetch_add(1, Ordering::Relaxed);
                }
                let value: Value = serde_json::from_str(&text).unwrap_or_default();
                let changes = &value["payload"]["data"]["workspaceEvents"]["auditEvent"]["changes"];
                if let (Some(sent), Some(n)) = (changes["sent"].as_i64(), changes["n"].as_u64()) {
                    receipts
                        .lock()
                        .expect("receipts")
                        .push((n as usize, sent, received));
                }
            }
        });
    }
    // Subscriptions start after their `subscribe`, each reading its membership and place,
    // and one that starts after an event does not get it: so one unmeasured event per
    // workspace every half second, until every socket has received one (on a loaded host,
    // starting a thousand takes seconds), and the measured ones after.
    let mut conn = AsyncPgConnection::establish(urls.admin).await?;
    let mut wakes = redis.get_multiplexed_async_connection().await?;
    let all_started =
        || AtomicUsize::load(&started_sockets, Ordering::Relaxed) >= workspaces * fanout;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !all_started() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "subscriptions did not start in 60 s"
        );
        for n in 1..=workspaces {
            let workspace = workspace_id(n);
            write(&mut conn, &mut wakes, &channel, &workspace, &json!({})).await?;
        }
        let round = Instant::now() + Duration::from_millis(500);
        while !all_started() && Instant::now() < round {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Enough writers that commits' WAL flushes overlap (group commit) at the rate.
    let writers = 32;
    let mut writing = tokio::task::JoinSet::new();
    let started = Instant::now();
    for writer in 0..writers {
        let admin_url = urls.admin.to_owned();
        let committed = Arc::clone(&committed);
        let (redis, channel) = (redis.clone(), channel.clone());
        writing.spawn(async move {
            let mut conn = AsyncPgConnection::establish(&admin_url).await?;
            let mut wakes = redis.get_multiplexed_async_connection().await?;
            let mut late = 0usize;
            for i in (writer..count).step_by(writers) {
                let due = started + Duration::from_secs_f64(i as f64 / rate);
                if Instant::now() > due + Duration::from_millis(5) {
                    late += 1;
                }
                tokio::time::sleep_until(due.into()).await;
                let workspace = workspace_id(1 + i % workspaces);
                let changes = json!({"sent": micros_now(), "n": i});
                let at = write(&mut conn, &mut wakes, &channel, &workspace, &changes).await?;
                committed[i].store(at, Ordering::Relaxed);
            }
            anyhow::Ok(late)
        });
    }
    let mut late = 0;
    while let Some(done) = writing.join_next().await {
        late += done??;
    }
    let written = started.elapsed();
    // The last events' deliveries.
    tokio::time::sleep(Duration::from_secs(1)).await;
    readers.abort_all();
    let receipts = std::mem::take(&mut *receipts.lock().expect("receipts"));
    anyhow::ensure!(!receipts.is_empty(), "no event was delivered");
    let millis = |from: i64, to: i64| (to - from) as f64 / 1000.0;
    let mut latencies: Vec<f64> = receipts
        .iter()
        .map(|&(_, sent, received)| millis(sent, received))
        .collect();
    latencies.sort_by(f64::total_cmp);
    // A delivery may beat its writer to the commit's answer: that counts as no time.
    let mut after_commit: Vec<f64> = receipts
        .iter()
        .filter_map(|&(n, _, received)| {
            let at = committed.get(n)?.load(Ordering::Relaxed);
            (at > 0).then(|| millis(at, received).max(0.0))
        })
        .collect();
    after_commit.sort_by(f64::total_cmp);
    // Whether a queue builds up: each second's median, by when the event was sent.
    let start = receipts
        .iter()
        .map(|&(_, sent, _)| sent)
        .min()
        .unwrap_or_default();
    let mut by_second: Vec<Vec<f64>> = Vec::new();
    for &(_, sent, received) in &receipts {
        let second = usize::try_from((sent - start) / 1_000_000).unwrap_or_default();
        if by_second.len() <= second {
            by_second.resize_with(second + 1, Vec::new);
        }
        by_second[second].push(millis(sent, received));
    }
    let p50_by_second: Vec<f64> = by_second
        .iter_mut()
        .map(|second| {
            second.sort_by(f64::total_cmp);
            if second.is_empty() {
                0.0
            } else {
                quantile(second, 0.5)
            }
        })
        .collect();
    Ok(json!({
        "events": count,
        "events_per_second": count as f64 / written.as_secs_f64(),
        "late_writes": late,
        "subscribers_per_event": fanout,
        "deliveries": latencies.len(),
        "expected_deliveries": count * fanout,
        "p50_ms": quantile(&latencies, 0.5),
        "p99_ms": quantile(&latencies, 0.99),
        "max_ms": latencies.last().copied().unwrap_or_default(),
        "commit_p50_ms": quantile(&after_commit, 0.5),
        "commit_p99_ms": quantile(&after_commit, 0.99),
        "p50_ms_by_second": p50_by_second,
    }))
}
