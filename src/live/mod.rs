//! Live updates (issue 25): GraphQL subscriptions ([`graphql`]) over graphql-transport-ws
//! on `/graphql` (src/http/socket.rs), fed by the audit log ([`model`], migration 000069).
//!
//! Between processes, PostgreSQL and Redis. After a commit that wrote a workspace's events,
//! the process that made it publishes a wake on Redis ([`wakes`]); each server hears them on
//! one Redis connection and keeps one PostgreSQL connection listening ([`Hub::listen`]),
//! however many sockets it serves. A wake only wakes the subscribers of that workspace;
//! they read the events after their own cursors through what they share on this server
//! ([`recent`]: one read serves them all), inside the workspace, each judging them by its
//! role at that point in the stream ([`graphql`]). A wake that never comes (a crash after
//! the commit, Redis away) is found by the listening connection's poll of the streams'
//! heads, once a second. What changes about a person's own access, and revoked tokens,
//! come by NOTIFY on that connection (migrations 000069 and 000071): rare writes, where a
//! transactional notification costs nothing that matters ([`viewer`]). A revoked token is
//! also forgotten from the server's cache of looked-up tokens (src/auth/bearers.rs).

pub mod graphql;
pub mod model;
pub mod recent;
pub mod viewer;
pub mod wakes;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::StreamExt as _;
use tokio::sync::watch;
use uuid::Uuid;

use crate::auth::bearers::Bearers;

/// The channels migration 000069's triggers notify: a token revoked or deleted; and
/// 000071's: a person's workspaces, roles or tokens changed.
const REVOKED: &str = "tokens_revoked";
const VIEWER: &str = "viewer_changed";
/// The listening connection's `application_name`.
pub const LISTENER_NAME: &str = "linkai-live";
/// How long connecting, or a check that a connection is alive, may take; and how often the
/// Redis connection is checked.
const LISTENER_CHECK: Duration = Duration::from_secs(5);
/// How often the listening connection reads the heads of the watched streams, for wakes
/// that never came. The read also proves the connection alive.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Workspaces whose heads one statement of the poll reads.
const POLL_CHUNK: usize = 5_000;
/// After losing the listening connection, try again this soon.
const LISTENER_RETRY: Duration = Duration::from_secs(1);
/// How soon a stream reads again after the database could not answer (an outage, a
/// timeout): it waits rather than ends.
const UNAVAILABLE_RETRY: Duration = Duration::from_secs(1);
/// Sockets one account may hold open on one server.
pub const SOCKETS_PER_ACCOUNT: usize = 20;
/// Sockets one server holds open, initialised or not: each is a file descriptor.
pub const MAX_SOCKETS: usize = 16_384;
/// Subscribers reading the log at once on one server: a change that wakes thousands waits
/// its turn rather than take the pool from the requests.
const READS_AT_ONCE: usize = 4;

/// The server's subscribers by workspace, and the listening connection that wakes them.
#[derive(Clone, Default)]
pub struct Hub(Arc<Inner>);

/// What a socket or subscription watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Topic {
    /// A workspace's events.
    Workspace(Uuid),
    /// A token a socket signed in with.
    Token(Uuid),
    /// A person's workspaces, roles and tokens.
    Viewer(Uuid),
}

struct Inner {
    /// What is kept per topic someone watches.
    topics: Mutex<HashMap<Topic, Watched>>,
    /// Open sockets per account ([`SOCKETS_PER_ACCOUNT`]).
    sockets: Mutex<HashMap<Uuid, usize>>,
    /// Turns true when the server shuts down: sockets close with "going away".
    closing: watch::Sender<bool>,
    /// Sockets open on this server ([`MAX_SOCKETS`]).
    open: watch::Sender<usize>,
    /// Turns to read the log ([`READS_AT_ONCE`]).
    reads: tokio::sync::Semaphore,
    /// Sends wakes after this process's commits (none in unit tests).
    publisher: Option<wakes::Publisher>,
    /// The tokens this server looked up lately: it forgets each revoked one it hears of
    /// (unit tests': one that keeps none).
    bearers: Bearers,
}

/// A watched topic: its wake-ups ([`Signal`]: `reads` counts those that call for a read of
/// the log; a wake that leaves it as it is only asks watchers to look at what was read) and, for a
/// workspace, its latest events as this server read them. Forgotten with the last watcher,
/// so a count and the events read at it always belong together.
struct Watched {
    /// Each of its [`Wake`]s holds a clone, made and dropped under the topics' lock.
    wakes: Arc<Signal>,
    recent: Option<Arc<recent::Recent>>,
    /// For a workspace: the highest event number a published wake announced (-1: none), so
    /// that the poll can count what no wake announced.
    published_through: i64,
    /// For a workspace: a wake for events numbered at their commit ([`wakes::AT_COMMIT`])
    /// came since the last poll, which counts the head's move as announced.
    announced_at_commit: bool,
}

impl Watched {
    /// Wakes the watchers to read what is new.
    fn read_due(&self) {
        self.wakes.send(true);
    }

    /// Wakes the watchers to look at what was read, without a read: the count stays.
    fn look(&self) {
        self.wakes.send(false);
    }
}

/// A topic's wake-ups, as tokio's `watch` of a count would keep them, in 64 bytes with its
/// `Arc`'s counts rather than its 352 (a lock for the value, eight `Notify`s for many
/// watchers): one per token and per workspace that sockets watch, each watched by one or a
/// few (BENCHMARKS.md, thirty-sixth round).
#[derive(Default)]
struct Signal {
    /// The wake-ups that call for a read of the log.
    reads: AtomicU64,
    /// Moves at every wake-up, after `reads`.
    version: AtomicU64,
    notify: tokio::sync::Notify,
}

impl Signal {
    fn send(&self, read: bool) {
        if read {
            self.reads.fetch_add(1, Ordering::SeqCst);
        }
        self.version.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            topics: Mutex::default(),
            sockets: Mutex::default(),
            closing: watch::Sender::new(false),
            open: watch::Sender::new(0),
            reads: tokio::sync::Semaphore::new(READS_AT_ONCE),
            publisher: None,
            bearers: Bearers::new(Duration::ZERO),
        }
    }
}

impl Hub {
    /// Wakes whoever watches `topic`.
    fn wake(&self, topic: Topic) {
        if let Some(watched) = lock(&self.0.topics).get(&topic) {
            watched.read_due();
        }
    }

    /// Wakes the subscribers of `workspace_id`, as a published wake for its event `seq`
    /// asks. Always: a wake may have come before its commit (src/live/wakes.rs), so none
    /// makes a later one for the same number old news.
    fn wake_published(&self, workspace_id: Uuid, seq: i64) {
        let mut topics = lock(&self.0.topics);
        if let Some(watched) = topics.get_mut(&Topic::Workspace(workspace_id)) {
            watched.published_through = watched.published_through.max(seq);
            watched.announced_at_commit |= seq == wakes::AT_COMMIT;
            watched.read_due();
            crate::metrics::woken("published");
        }
    }

    /// Wakes the subscribers of `workspace_id`, whose head the poll found at `seq`, moved
    /// since the last poll (`seen`: the poll had seen the workspace before). Past what this
    /// server read, they read the log; otherwise they only look at what was read, which a
    /// subscriber behind it may not have (a read for a starting subscriber took an event
    /// whose wake never came), and those at its end need no read.
    fn wake_polled(&self, workspace_id: Uuid, seq: i64, seen: bool) {
        let mut topics = lock(&self.0.topics);
        if let Some(watched) = topics.get_mut(&Topic::Workspace(workspace_id)) {
            let read = watched.recent.as_ref().and_then(|recent| recent.head());
            if read.is_none_or(|read| seq > read) {
                watched.read_due();
            } else {
                watched.look();
            }
            // Counted when no wake announced it (a workspace new to the poll is not).
            let announced = std::mem::take(&mut watched.announced_at_commit);
            if seen && seq > watched.published_through && !announced {
                crate::metrics::woken("polled");
            }
        }
    }

    /// The workspaces this server's subscribers watch.
    fn watched_workspaces(&self) -> Vec<Uuid> {
        let topics = lock(&self.0.topics);
        topics
            .keys()
            .filter_map(|topic| match topic {
                Topic::Workspace(id) => Some(*id),
                _ => None,
            })
            .collect()
    }

    /// A hub whose process publishes its wakes with `publisher`, and forgets revoked tokens
    /// from `bearers`.
    pub fn new(publisher: wakes::Publisher, bearers: Bearers) -> Hub {
        Hub(Arc::new(Inner {
            publisher: Some(publisher),
            bearers,
            ..Inner::default()
        }))
    }

    /// What publishes this process's wakes.
    pub fn publisher(&self) -> Option<&wakes::Publisher> {
        self.0.publisher.as_ref()
    }

    /// Runs `work` (a mutation), then wakes every server's subscribers of the workspaces
    /// whose events it wrote ([`wakes`]).
    pub async fn publishing<F: std::future::Future>(&self, work: F) -> F::Output {
        match self.publisher() {
            Some(publisher) => wakes::scope(publisher, work).await,
            None => work.await,
        }
    }

    /// Wakes every watcher: after the listener was away, any of them may have missed one
    /// (subscribers read the log again, sockets check their tokens again).
    fn wake_all(&self) {
        for watched in lock(&self.0.topics).values() {
            watched.read_due();
        }
    }

    /// A turn to read the log, held while the read runs.
    pub async fn read_turn(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.0
            .reads
            .acquire()
            .await
            .expect("the semaphore is never closed")
    }

    /// A handle woken whenever `workspace_id` may have new events, and the workspace's
    /// latest events as this server read them.
    pub fn watch(&self, workspace_id: Uuid) -> (Wake, Arc<recent::Recent>) {
        let (wake, recent) = self.watch_topic(Topic::Workspace(workspace_id));
        (wake, recent.unwrap_or_default())
    }

    /// A handle woken whenever the token `token_id` may have been revoked.
    pub fn watch_token(&self, token_id: Uuid) -> Wake {
        self.watch_topic(Topic::Token(token_id)).0
    }

    /// A handle woken whenever `user_id`'s workspaces, roles or tokens may have changed.
    pub fn watch_viewer(&self, user_id: Uuid) -> Wake {
        self.watch_topic(Topic::Viewer(user_id)).0
    }

    fn watch_topic(&self, topic: Topic) -> (Wake, Option<Arc<recent::Recent>>) {
        let mut topics = lock(&self.0.topics);
        let watched = topics.entry(topic).or_insert_with(|| Watched {
            wakes: Arc::default(),
            recent: matches!(topic, Topic::Workspace(_)).then(Arc::default),
            published_through: -1,
            announced_at_commit: false,
        });
        let wake = Wake {
            hub: self.clone(),
            topic,
            seen: watched.wakes.version.load(Ordering::SeqCst),
            signal: Arc::clone(&watched.wakes),
        };
        (wake, watched.recent.clone())
    }

    /// A socket, counted until the returned guard drops; `None` at [`MAX_SOCKETS`].
    pub fn open_socket(&self) -> Option<OpenSocket> {
        let mut taken = false;
        self.0.open.send_if_modified(|open| {
            taken = *open < MAX_SOCKETS;
            *open += usize::from(taken);
            taken
        });
        taken.then(|| OpenSocket(self.clone()))
    }

    /// Resolves once every socket has closed (after [`Hub::close`], each says goodbye).
    pub async fn drained(&self) {
        let mut open = self.0.open.subscribe();
        let _ = open.wait_for(|open| *open == 0).await;
    }

    /// A socket of `user_id`'s, counted until the returned guard drops; `None` at
    /// [`SOCKETS_PER_ACCOUNT`].
    pub fn sign_in_socket(&self, user_id: Uuid) -> Option<SocketGuard> {
        let mut sockets = lock(&self.0.sockets);
        let open = sockets.entry(user_id).or_default();
        if *open >= SOCKETS_PER_ACCOUNT {
            return None;
        }
        *open += 1;
        Some(SocketGuard {
            hub: self.clone(),
            user_id,
        })
    }

    /// Tells every socket the server is going away.
    pub fn close(&self) {
        self.0.closing.send_replace(true);
    }

    /// Resolves when the server is going away.
    pub async fn closed(&self) {
        let mut closing = self.0.closing.subscribe();
        let _ = closing.wait_for(|closing| *closing).await;
    }

    /// Keeps one PostgreSQL connection listening on [`REVOKED`] and [`VIEWER`] and polling
    /// the watched streams' heads, and one Redis connection hearing the publisher's channel,
    /// each reconnecting when lost. Never returns (the server drops it when it stops).
    pub async fn listen(self, database_url: String, redis_url: String) {
        let listening = async {
            let (mut down, mut polled) = (false, HashMap::new());
            loop {
                let lost = self
                    .listen_once(&database_url, &mut down, &mut polled)
                    .await;
                self.lost("listener", lost, &mut down).await;
            }
        };
        let hearing = async {
            let Some(channel) = self.publisher().map(|p| p.channel().to_owned()) else {
                return;
            };
            let mut down = false;
            loop {
                let lost = self.hear_once(&redis_url, &channel, &mut down).await;
                self.lost("wakes' subscriber", lost, &mut down).await;
            }
        };
        tokio::join!(listening, hearing);
    }

    /// Says so once per outage, not once per retry, and waits before the next.
    async fn lost(&self, what: &str, err: String, down: &mut bool) {
        if !*down {
            tracing::warn!(%err, "the live-updates {what} lost its connection");
            *down = true;
        }
        tokio::time::sleep(LISTENER_RETRY).await;
    }

    /// Hears published wakes until the Redis connection fails; says why.
    async fn hear_once(&self, url: &str, channel: &str, down: &mut bool) -> String {
        let subscribed = tokio::time::timeout(LISTENER_CHECK, async {
            let client = redis::Client::open(url)?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            redis::RedisResult::Ok(pubsub)
        });
        let (mut sink, mut stream) = match subscribed.await {
            Ok(Ok(pubsub)) => pubsub.split(),
            Ok(Err(err)) => return err.to_string(),
            Err(_) => return "subscribing timed out".into(),
        };
        if std::mem::take(down) {
            tracing::info!("the live-updates wakes' subscriber is back");
        }
        // What was published meanwhile, the poll finds.
        let mut check = tokio::time::interval(LISTENER_CHECK);
        check.tick().await;
        let mut warned = false;
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => match wakes::parse(message.get_payload_bytes()) {
                        Some((workspace_id, seq)) => self.wake_published(workspace_id, seq),
                        // Once per connection: whoever sends them may send many.
                        None if !std::mem::replace(&mut warned, true) => {
                            tracing::warn!(%channel, "an unexpected message on the wakes' channel");
                        }
                        None => {}
                    },
                    None => return "the subscription ended".into(),
                },
                _ = check.tick() => {
                    // A half-open connection would hear nothing until its kernel gave up.
                    match tokio::time::timeout(LISTENER_CHECK, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(err)) => return err.to_string(),
                        Err(_) => return "the check timed out".into(),
                    }
                }
            }
        }
    }

    /// Listens until the connection fails; says why. `polled`: each watched workspace's
    /// head at the last poll.
    async fn listen_once(
        &self,
        url: &str,
        down: &mut bool,
        polled: &mut HashMap<Uuid, i64>,
    ) -> String {
        let connected = tokio::time::timeout(LISTENER_CHECK, async {
            let mut conn = AsyncPgConnection::establish(url)
                .await
                .map_err(|err| err.to_string())?;
            // Named, so an operator sees it in pg_stat_activity.
            conn.batch_execute(&format!(
                "SET application_name = '{LISTENER_NAME}'; LISTEN {REVOKED}; LISTEN {VIEWER}"
            ))
            .await
            .map_err(|err| err.to_string())?;
            Ok::<_, String>(conn)
        });
        let mut conn = match connected.await {
            Ok(Ok(conn)) => conn,
            Ok(Err(err)) => return err,
            Err(_) => return "connecting timed out".into(),
        };
        if std::mem::take(down) {
            tracing::info!("the live-updates listener is back");
        }
        // Anything committed while nobody listened is in the log: everyone reads again, and
        // any token may have been revoked meanwhile.
        self.0.bearers.forget_all();
        self.wake_all();
        match self.notify_until_lost(&mut conn, polled).await {
            Ok(()) => "the notifications ended".into(),
            Err(err) => err.to_string(),
        }
    }

    async fn notify_until_lost(
        &self,
        conn: &mut AsyncPgConnection,
        polled: &mut HashMap<Uuid, i64>,
    ) -> diesel::QueryResult<()> {
        loop {
            {
                let notifications = conn.notifications_stream();
                tokio::pin!(notifications);
                let deadline = tokio::time::sleep(POLL_EVERY);
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        () = &mut deadline => break,
                        next = notifications.next() => match next {
                            Some(Ok(note)) => match (note.channel.as_str(), note.payload.parse::<Uuid>()) {
                                (REVOKED, Ok(id)) => {
                                    self.0.bearers.forget_token(id);
                                    self.wake(Topic::Token(id));
                                }
                                (VIEWER, Ok(id)) => self.wake(Topic::Viewer(id)),
                                _ => tracing::warn!(channel = %note.channel, payload = %note.payload, "an unexpected notification"),
                            },
                            Some(Err(err)) => return Err(err),
                            None => return Ok(()), // diesel-async: never; reconnect if so
                        },
                    }
                }
            }
            self.poll(conn, polled).await?;
        }
    }

    /// Wakes the subscribers of every watched workspace whose head moved since the last
    /// poll, or that is new to the poll: a wake may have been lost, or have come before its
    /// commit. Also proves the connection alive: a half-open one would wait for its kernel's
    /// timeout, minutes away.
    async fn poll(
        &self,
        conn: &mut AsyncPgConnection,
        polled: &mut HashMap<Uuid, i64>,
    ) -> diesel::QueryResult<()> {
        let watched = self.watched_workspaces();
        let mut heads = HashMap::with_capacity(watched.len());
        for chunk in watched
            .chunks(POLL_CHUNK)
            .chain(watched.is_empty().then_some(&[][..]))
        {
            let read = tokio::time::timeout(LISTENER_CHECK, model::heads(conn, chunk))
                .await
                .map_err(|_| {
                    diesel::result::Error::QueryBuilderError("the poll timed out".into())
                })??;
            heads.extend(read);
        }
        for (&workspace_id, &seq) in &heads {
            let before = polled.get(&workspace_id);
            if before != Some(&seq) {
                self.wake_polled(workspace_id, seq, before.is_some());
            }
        }
        *polled = heads;
        Ok(())
    }
}

/// Wakes one watcher when its topic may have changed; forgets the topic when its last
/// watcher goes.
pub struct Wake {
    hub: Hub,
    topic: Topic,
    signal: Arc<Signal>,
    /// The signal's version last seen.
    seen: u64,
}

impl Wake {
    /// Resolves at the next wake-up since the last one seen.
    pub async fn changed(&mut self) {
        loop {
            // Registered before the version is read: a wake-up in between still wakes it.
            let notified = self.signal.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let version = self.signal.version.load(Ordering::SeqCst);
            if version != self.seen {
                self.seen = version;
                return;
            }
            notified.await;
        }
    }

    /// The wake-ups that called for a read so far, all wake-ups seen from now on. The
    /// version is read first: a read-due wake-up that the count misses moves the version
    /// after it, so the next `changed` sees it.
    pub fn seen(&mut self) -> u64 {
        self.seen = self.signal.version.load(Ordering::SeqCst);
        self.signal.reads.load(Ordering::SeqCst)
    }
}

impl Drop for Wake {
    fn drop(&mut self) {
        let mut topics = lock(&self.hub.0.topics);
        // This wake's clone and the topic's own: no other watcher.
        let last = topics
            .get(&self.topic)
            .is_some_and(|watched| Arc::strong_count(&watched.wakes) == 2);
        if last {
            topics.remove(&self.topic);
        }
    }
}

/// One open socket ([`Hub::open_socket`]).
pub struct OpenSocket(Hub);

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0
             .0
            .open
            .send_modify(|open| *open = open.saturating_sub(1));
    }
}

/// One open socket of an account's ([`Hub::sign_in_socket`]).
pub struct SocketGuard {
    hub: Hub,
    user_id: Uuid,
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let mut sockets = lock(&self.hub.0.sockets);
        if let Some(open) = sockets.get_mut(&self.user_id) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                sockets.remove(&self.user_id);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing holding these locks can leave them half-changed.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wake_reaches_its_workspace_only_and_the_last_subscriber_cleans_up() {
        let hub = Hub::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let (mut first, _) = hub.watch(a);
        let (second, _) = hub.watch(b);
        let mut token = hub.watch_token(a);
        hub.wake(Topic::Workspace(a));
        tokio::time::timeout(Duration::from_secs(1), first.changed())
            .await
            .expect("woken");
        let still = tokio::time::timeout(Duration::from_millis(50), token.changed()).await;
        assert!(
            still.is_err(),
            "a workspace's wake-up is not its namesake token's"
        );
        assert_eq!(lock(&hub.0.topics).len(), 3);
        drop((second, token));
        assert_eq!(lock(&hub.0.topics).len(), 1);
        drop(first);
        assert!(lock(&hub.0.topics).is_empty());
    }

    #[tokio::test]
    async fn the_poll_asks_for_a_read_only_past_what_was_read() {
        let hub = Hub::default();
        let workspace = Uuid::now_v7();
        let (mut wake, recent) = hub.watch(workspace);
        let first = wake.seen();
        let woken = |wake: &mut Wake| {
            use futures_util::FutureExt as _;
            assert!(wake.changed().now_or_never().is_some(), "woken");
        };
        // Nothing read yet: a read.
        hub.wake_polled(workspace, 3, true);
        woken(&mut wake);
        assert_eq!(wake.seen(), first + 1);
        // Read up to the head already: a look at what was read, no read.
        recent.read_through(5);
        hub.wake_polled(workspace, 5, true);
        woken(&mut wake);
        assert_eq!(wake.seen(), first + 1);
        // Past it: a read.
        hub.wake_polled(workspace, 6, true);
        woken(&mut wake);
        assert_eq!(wake.seen(), first + 2);
    }

    #[tokio::test]
    async fn a_wake_for_events_numbered_at_commit_reads_and_announces_the_next_poll_only() {
        let hub = Hub::default();
        let workspace = Uuid::now_v7();
        let (mut wake, _recent) = hub.watch(workspace);
        let first = wake.seen();
        hub.wake_published(workspace, 4);
        hub.wake_published(workspace, wakes::AT_COMMIT);
        assert_eq!(wake.seen(), first + 2, "each asks for a read");
        let announced =
            |hub: &Hub| lock(&hub.0.topics)[&Topic::Workspace(workspace)].announced_at_commit;
        assert!(announced(&hub));
        hub.wake_polled(workspace, 7, true);
        assert!(
            !announced(&hub),
            "one poll's move is announced, not the next's"
        );
        assert_eq!(
            lock(&hub.0.topics)[&Topic::Workspace(workspace)].published_through,
            4
        );
    }

    #[test]
    fn an_account_holds_at_most_its_sockets() {
        let hub = Hub::default();
        let user = Uuid::now_v7();
        let open: Vec<_> = (0..SOCKETS_PER_ACCOUNT)
            .map(|_| hub.sign_in_socket(user).expect("under the cap"))
            .collect();
        assert!(hub.sign_in_socket(user).is_none());
        assert!(hub.sign_in_socket(Uuid::now_v7()).is_some());
        drop(open);
        assert!(lock(&hub.0.sockets).is_empty());
    }

    #[tokio::test]
    async fn shutdown_waits_for_the_sockets_to_close() {
        let hub = Hub::default();
        let sockets: Vec<_> = (0..3).map(|_| hub.open_socket().expect("room")).collect();
        let drained = hub.drained();
        tokio::pin!(drained);
        assert!(futures_util::poll!(drained.as_mut()).is_pending());
        drop(sockets);
        tokio::time::timeout(Duration::from_secs(1), drained)
            .await
            .expect("drained");
    }
}
