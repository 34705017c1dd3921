//! A TCP proxy in front of the test PostgreSQL that a test can cut and restore: to the
//! service behind it, an outage as it sees one (its connections drop, and new ones are
//! closed as soon as they open), without stopping the PostgreSQL every other test uses.
//! The proxy keeps its port throughout, so no other test can take it meanwhile.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

pub struct TcpProxy {
    pub port: u16,
    target: String,
    state: Arc<Mutex<State>>,
    accepting: AbortHandle,
}

#[derive(Default)]
struct State {
    cut: bool,
    /// Each open connection's copying, aborted by [`TcpProxy::cut`].
    connections: Vec<AbortHandle>,
}

impl TcpProxy {
    /// A proxy on a free loopback port to `target` (`127.0.0.1:5432`).
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("port");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let (to, shared) = (target.to_owned(), Arc::clone(&state));
        let accepting = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut state = shared.lock().expect("state");
                // Cut: the connection is closed as it opens (dropped here).
                if state.cut {
                    continue;
                }
                let to = to.clone();
                let copying = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&to).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                state.connections.push(copying.abort_handle());
            }
        })
        .abort_handle();
        TcpProxy {
            port,
            target: target.to_owned(),
            state,
            accepting,
        }
    }

    /// Drops every open connection, and closes new ones as they open.
    pub async fn cut(&self) {
        {
            let mut state = self.state.lock().expect("state");
            state.cut = true;
            for connection in state.connections.drain(..) {
                connection.abort();
            }
        }
        // Aborted tasks drop their sockets at their next poll.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// Lets connections through again.
    pub async fn restore(&self) {
        self.state.lock().expect("state").cut = false;
    }

    /// `url` (a `postgres://…@127.0.0.1:5432/…` URL) through this proxy.
    pub fn route(&self, url: &str) -> String {
        url.replacen(&self.target, &format!("127.0.0.1:{}", self.port), 1)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accepting.abort();
        for connection in self.state.lock().expect("state").connections.drain(..) {
            connection.abort();
        }
    }
}
