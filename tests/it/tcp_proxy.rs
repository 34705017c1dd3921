//! A TCP proxy in front of the test PostgreSQL that a test can cut and restore: to the
//! service behind it, an outage as it sees one (its connections drop, new ones are
//! refused), without stopping the PostgreSQL every other test uses.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

pub struct TcpProxy {
    pub port: u16,
    target: String,
    /// The accept loop and every connection's copying, aborted by [`TcpProxy::cut`].
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl TcpProxy {
    /// A proxy on a free loopback port to `target` (`127.0.0.1:5432`).
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("port");
        let port = listener.local_addr().expect("addr").port();
        let proxy = TcpProxy {
            port,
            target: target.to_owned(),
            tasks: Arc::default(),
        };
        proxy.accept(listener);
        proxy
    }

    fn accept(&self, listener: TcpListener) {
        let (target, tasks) = (self.target.clone(), Arc::clone(&self.tasks));
        let accepting = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let target = target.clone();
                let copying = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().expect("tasks").push(copying.abort_handle());
            }
        });
        self.tasks
            .lock()
            .expect("tasks")
            .push(accepting.abort_handle());
    }

    /// Drops every open connection and refuses new ones (the port is closed).
    pub async fn cut(&self) {
        for task in self.tasks.lock().expect("tasks").drain(..) {
            task.abort();
        }
        // Aborted tasks drop their sockets at their next poll.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// Accepts again, on the same port.
    pub async fn restore(&self) {
        for _ in 0..100 {
            if let Ok(listener) = TcpListener::bind(("127.0.0.1", self.port)).await {
                self.accept(listener);
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("port {} could not be taken again", self.port);
    }

    /// `url` (a `postgres://…@127.0.0.1:5432/…` URL) through this proxy.
    pub fn route(&self, url: &str) -> String {
        url.replacen(&self.target, &format!("127.0.0.1:{}", self.port), 1)
    }
}
