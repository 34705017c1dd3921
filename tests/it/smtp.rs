//! A real SMTP server on loopback for the tests: lettre talks SMTP over TCP to it, and the
//! tests read what it received.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;

#[derive(Clone, Debug)]
pub struct Received {
    pub to: Vec<String>,
    /// The message as sent, with quoted-printable bodies decoded.
    pub decoded: String,
}

impl Received {
    pub fn subject(&self) -> &str {
        self.decoded
            .lines()
            .find_map(|line| line.strip_prefix("Subject: "))
            .unwrap_or_default()
    }

    /// Whether the message links to `path` (e.g. `invitations/accept`).
    pub fn links_to(&self, path: &str) -> bool {
        self.decoded.contains(&format!("/{path}?token="))
    }

    /// The token in the first `?token=` link.
    pub fn token(&self) -> String {
        let start = self.decoded.find("?token=").expect("a link with a token") + "?token=".len();
        self.decoded[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect()
    }
}

#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Notify>,
    /// Messages received and not yet answered (held for the delay).
    holding: Arc<std::sync::atomic::AtomicUsize>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        Self::start_on(0, Duration::ZERO).await
    }

    /// Listens on `port` (0: any free one), answering each message after `delay`.
    pub async fn start_on(port: u16, delay: Duration) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("SMTP port");
        let sink = SmtpSink {
            port: listener.local_addr().expect("addr").port(),
            received: Arc::default(),
            arrived: Arc::default(),
            holding: Arc::default(),
        };
        let server = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move {
                    let _ = server.session(stream, delay).await;
                });
            }
        });
        sink
    }

    /// How many messages it holds now, unanswered: a client is waiting on each.
    pub fn holding(&self) -> usize {
        self.holding.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    async fn session(&self, stream: tokio::net::TcpStream, delay: Duration) -> std::io::Result<()> {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read);
        write.write_all(b"220 localhost test SMTP\r\n").await?;
        let mut to = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let command = line.trim_end().to_ascii_uppercase();
            let reply: &[u8] = if command.starts_with("EHLO") || command.starts_with("HELO") {
                b"250-localhost\r\n250 8BITMIME\r\n"
            } else if command.starts_with("RCPT TO:") {
                to.push(
                    line.trim_end()[8..]
                        .trim()
                        .trim_matches(['<', '>'])
                        .to_lowercase(),
                );
                b"250 OK\r\n"
            } else if command == "DATA" {
                write.write_all(b"354 go ahead\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    data.push_str(
                        line.strip_prefix('.')
                            .filter(|_| line.starts_with(".."))
                            .unwrap_or(&line),
                    );
                }
                let holding = &self.holding;
                holding.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                self.arrived.notify_waiters();
                tokio::time::sleep(delay).await;
                holding.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                // Like a real server, accept the message only if the client is still there
                // to hear the reply: a client killed meanwhile has closed the connection.
                line.clear();
                let probe =
                    tokio::time::timeout(Duration::from_millis(5), lines.read_line(&mut line))
                        .await;
                if matches!(probe, Ok(Ok(0)) | Ok(Err(_))) {
                    return Ok(());
                }
                self.received.lock().expect("lock").push(Received {
                    to: std::mem::take(&mut to),
                    decoded: decode_quoted_printable(&data),
                });
                self.arrived.notify_waiters();
                b"250 queued\r\n"
            } else if command == "QUIT" {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            } else if command == "RSET" {
                to.clear();
                b"250 OK\r\n"
            } else {
                b"250 OK\r\n"
            };
            write.write_all(reply).await?;
        }
    }

    pub fn all(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    pub fn to(&self, address: &str) -> Vec<Received> {
        let address = address.to_lowercase();
        self.all()
            .into_iter()
            .filter(|m| m.to.contains(&address))
            .collect()
    }

    /// Messages to `address` linking to `path`.
    pub fn links(&self, address: &str, path: &str) -> Vec<Received> {
        self.to(address)
            .into_iter()
            .filter(|m| m.links_to(path))
            .collect()
    }

    /// Waits until `address` has received at least `count` messages linking to `path`
    /// (`invitations/accept`, `verify-email`, `reset-password`); returns them in order.
    pub async fn wait_for(&self, address: &str, path: &str, count: usize) -> Vec<Received> {
        self.wait_until(
            |sink| sink.links(address, path).len() >= count,
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|| {
            panic!(
                "{address} did not receive {count} {path} email(s); got {:#?}",
                self.all()
            )
        });
        self.links(address, path)
    }

    /// Waits until `done` holds, up to `timeout`.
    pub async fn wait_until(
        &self,
        done: impl Fn(&SmtpSink) -> bool,
        timeout: Duration,
    ) -> Option<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.arrived.notified();
            if done(self) {
                return Some(());
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return done(self).then_some(());
            }
        }
    }
}

pub fn decode_quoted_printable(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
