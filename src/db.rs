//! PostgreSQL access: the connection pool and the row-level-security context of each
//! connection it hands out, hand-written SQL that is prepared once ([`StaticSql`]),
//! embedded migrations, creating the database when it is missing, and counting the SQL
//! statements each request runs.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use deadpool::managed::{Metrics, Object, Pool, QueueMode, RecycleResult};
use diesel::connection::InstrumentationEvent;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::PoolError;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, TransactionManager};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use uuid::Uuid;

use crate::config::DatabaseConfig;

pub mod page;
mod static_sql;
pub use static_sql::{bind, static_sql, Bind, BindList, StaticSql};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub type PgPool = Pool<ContextManager>;
/// A connection from the pool, which goes back to it when dropped. A request dropped inside
/// its transaction (its client hung up, its deadline passed) leaves the transaction open:
/// such a connection is rolled back first, by [`roll_back_abandoned`], so that neither the
/// rows it locked stay locked nor the pool has to make a connection in some later request's
/// path (bench/run found those: BENCHMARKS.md, twenty-eighth round).
pub struct PooledConnection(Option<Object<ContextManager>>);

impl Deref for PooledConnection {
    type Target = ContextConnection;

    fn deref(&self) -> &ContextConnection {
        self.0.as_ref().expect("present until dropped")
    }
}

impl DerefMut for PooledConnection {
    fn deref_mut(&mut self) -> &mut ContextConnection {
        self.0.as_mut().expect("present until dropped")
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        let Some(mut object) = self.0.take() else {
            return;
        };
        let conn: &mut AsyncPgConnection = &mut object.conn;
        if !diesel_async::pooled_connection::PoolableConnection::is_broken(conn) {
            return;
        }
        type Transactions = <AsyncPgConnection as AsyncConnection>::TransactionManager;
        if !Transactions::is_broken_transaction_manager(conn) {
            // No transaction, but the session is gone (PostgreSQL restarted, or closed it).
            return drop(Object::take(object));
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(roll_back_abandoned(object))),
            // No runtime to roll back on (it is shutting down): closing rolls back too.
            Err(_) => close_abandoned(object),
        }
    }
}

/// Ends the transaction a dropped request left open on `object`, then puts the connection
/// back in the pool; closes it instead when that fails or does not end within a statement
/// timeout and a connect timeout. Until then the connection counts as in use.
///
/// A plain `ROLLBACK` is right wherever the request was dropped. Inside a statement, it runs
/// once that one ends (tokio-postgres answers requests in order and skips the answers
/// nobody waits for). Inside diesel-async's own `BEGIN`, `COMMIT` or `ROLLBACK`, whose
/// outcome is unknown, it ends whatever is open; on an idle session it only warns. It also
/// puts back the session's settings as they were before the transaction, which is what
/// [`ContextConnection`]'s record says.
async fn roll_back_abandoned(mut object: Object<ContextManager>) {
    use diesel_async::SimpleAsyncConnection;
    let limit = Object::pool(&object).map_or(CONNECT_TIMEOUT, |pool| {
        pool.manager().statement_timeout + CONNECT_TIMEOUT
    });
    // Not the dropped request's statement: out of its counts, its log and its trace.
    object
        .conn
        .set_instrumentation(|_: InstrumentationEvent<'_>| {});
    let rolled_back = tokio::time::timeout(limit, object.conn.batch_execute("ROLLBACK")).await;
    if !matches!(rolled_back, Ok(Ok(()))) {
        return close_abandoned(object);
    }
    // The session is idle: diesel-async's record of it starts over, including the flag it
    // sets when a `BEGIN`/`COMMIT` was dropped midway, which would otherwise mark the
    // connection broken for good (`AnsiTransactionManager::is_broken`, diesel-async 0.9).
    *object.conn.transaction_state() = diesel_async::AnsiTransactionManager::default();
    debug_assert!(
        !diesel_async::pooled_connection::PoolableConnection::is_broken(&mut object.conn),
        "a rolled-back connection is whole again"
    );
    // Unknown for one checkout's statement: cheap insurance for row-level security, should
    // some transaction ever change a session-level setting.
    object.context = None;
    metrics::counter!("linkai_db_abandoned_transactions_total", "outcome" => "rolled_back")
        .increment(1);
}

/// Closes a connection whose transaction could not be ended; PostgreSQL rolls it back.
fn close_abandoned(object: Object<ContextManager>) {
    tracing::warn!(
        "a dropped request's transaction could not be rolled back: closing its connection"
    );
    metrics::counter!("linkai_db_abandoned_transactions_total", "outcome" => "closed").increment(1);
    drop(Object::take(object));
}

/// Who a session acts for and which workspace it works in (`app.user_id`,
/// `app.workspace_id`), as row-level security reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SessionContext {
    user: Option<Uuid>,
    workspace: Option<Uuid>,
}

/// A pooled connection with the context its session holds, so a checkout that wants the
/// context the connection already has skips setting it.
///
/// The record stays exact because the session-level settings change only in
/// [`Db::checkout`]: inside transactions, [`enter_workspace`] changes them for that
/// transaction only, so they are back to the recorded values once it ends, committed
/// or not (and a connection left inside a transaction gets an unknown context when it is
/// rolled back: [`roll_back_abandoned`]).
pub struct ContextConnection {
    conn: AsyncPgConnection,
    /// `None` while unknown: new, or a setting statement did not finish.
    context: Option<SessionContext>,
}

impl Deref for ContextConnection {
    type Target = AsyncPgConnection;

    fn deref(&self) -> &AsyncPgConnection {
        &self.conn
    }
}

impl DerefMut for ContextConnection {
    fn deref_mut(&mut self) -> &mut AsyncPgConnection {
        &mut self.conn
    }
}

/// The pool's manager: diesel-async's, with a context record on each connection, and the
/// statement and lock timeouts set on each new session.
pub struct ContextManager {
    inner: AsyncDieselConnectionManager<AsyncPgConnection>,
    statement_timeout: std::time::Duration,
    lock_timeout: std::time::Duration,
}

impl deadpool::managed::Manager for ContextManager {
    type Type = ContextConnection;
    type Error = diesel_async::pooled_connection::PoolError;

    async fn create(&self) -> Result<ContextConnection, Self::Error> {
        let mut conn = self.inner.create().await?;
        // No request holds a connection or a lock longer than this: a locked table makes
        // its requests fail fast (SERVICE_UNAVAILABLE) instead of filling the pool.
        diesel::select((
            set_config("statement_timeout", millis(self.statement_timeout), false),
            set_config("lock_timeout", millis(self.lock_timeout), false),
        ))
        .execute(&mut conn)
        .await
        .map_err(diesel_async::pooled_connection::PoolError::QueryError)?;
        note_reachable();
        metrics::counter!("linkai_db_connections_opened_total").increment(1);
        Ok(ContextConnection {
            conn,
            context: None,
        })
    }

    async fn recycle(
        &self,
        connection: &mut ContextConnection,
        metrics: &Metrics,
    ) -> RecycleResult<Self::Error> {
        self.inner.recycle(&mut connection.conn, metrics).await
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("could not get a database connection: {0}")]
    Pool(#[from] PoolError),
    #[error("could not set the connection's context: {0}")]
    Context(#[from] diesel::result::Error),
}

impl DbError {
    /// Whether PostgreSQL could not be reached or dropped the connection (see
    /// [`is_outage`]), rather than the pool being full or the statement wrong.
    pub fn is_outage(&self) -> bool {
        use diesel::ConnectionError::{BadConnection, CouldntSetupConfiguration};
        use diesel_async::pooled_connection::PoolError as Backend;
        match self {
            // A password refused or a database missing is a mistake in the configuration,
            // not an outage.
            DbError::Pool(PoolError::Backend(Backend::ConnectionError(err))) => match err {
                CouldntSetupConfiguration(err) => is_outage(err),
                BadConnection(message) => LOST_CONNECTION_MESSAGES
                    .iter()
                    .any(|m| message.starts_with(m)),
                _ => false,
            },
            DbError::Pool(PoolError::Timeout(deadpool::managed::TimeoutType::Create)) => true,
            DbError::Pool(PoolError::Backend(Backend::QueryError(err))) | DbError::Context(err) => {
                is_outage(err)
            }
            DbError::Pool(_) => false,
        }
    }
}

diesel::define_sql_function! {
    /// PostgreSQL's `set_config(setting, value, is_local)`. As a typed function (not raw SQL)
    /// its statements are prepared once per connection and cached, like every other query.
    fn set_config(setting: diesel::sql_types::Text, value: diesel::sql_types::Text, is_local: diesel::sql_types::Bool) -> diesel::sql_types::Text;
}

fn millis(duration: std::time::Duration) -> String {
    // 0 would mean "no timeout" to PostgreSQL.
    duration.as_millis().max(1).to_string()
}

/// Whether a statement was cancelled by `statement_timeout` or `lock_timeout` (SQLSTATE
/// 57014 and 55P03). diesel-async keeps only the message of such errors, so their text is
/// matched; the server's messages are PostgreSQL's English ones (`lc_messages` is not set
/// per session by this app).
pub fn is_timeout(err: &diesel::result::Error) -> bool {
    match err {
        diesel::result::Error::DatabaseError(_, info) => {
            let message = info.message();
            message.starts_with("canceling statement due to statement timeout")
                || message.starts_with("canceling statement due to lock timeout")
        }
        _ => false,
    }
}

/// How PostgreSQL (15, English messages) words the errors of a server that is stopping,
/// starting, recovering or full (SQLSTATE class 57P and 53300): an outage, not a bad
/// statement. Errors with no SQLSTATE at all (the connection closed, refused or broken)
/// reach diesel as `UnableToSendCommand`.
const OUTAGE_MESSAGES: [&str; 5] = [
    "terminating connection due to administrator command",
    "terminating connection because of crash of another server process",
    "the database system is",
    "sorry, too many clients already",
    "remaining connection slots are reserved",
];

/// How tokio-postgres words a connection that closed, broke, could not be made, or timed
/// out (its errors without a SQLSTATE; the others, such as too many bind parameters, are
/// ours).
const LOST_CONNECTION_MESSAGES: [&str; 4] = [
    "connection closed",
    "error communicating with the server",
    "error connecting to server",
    "timeout waiting for server",
];

/// Whether `err` says PostgreSQL is out of reach (down, restarting, its connection lost)
/// rather than that the statement was wrong.
pub fn is_outage(err: &diesel::result::Error) -> bool {
    use diesel::result::DatabaseErrorKind::{ClosedConnection, UnableToSendCommand};
    let diesel::result::Error::DatabaseError(kind, info) = err else {
        return false;
    };
    let message = info.message();
    match kind {
        ClosedConnection => true,
        UnableToSendCommand => LOST_CONNECTION_MESSAGES
            .iter()
            .any(|m| message.starts_with(m)),
        _ => OUTAGE_MESSAGES.iter().any(|m| message.starts_with(m)),
    }
}

/// [`is_outage`] for an error a job or the webhook carries as `anyhow`.
pub fn is_outage_of(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<DbError>()
            .is_some_and(DbError::is_outage)
            || cause
                .downcast_ref::<diesel::result::Error>()
                .is_some_and(is_outage)
    })
}

/// Whether the process last found PostgreSQL out of reach, so an outage is logged once
/// when it starts and once when it ends, not once per request.
static OUT_OF_REACH: AtomicBool = AtomicBool::new(false);

/// Records that PostgreSQL is out of reach; logs it if it was not already known.
pub fn note_outage(err: &dyn std::fmt::Display) {
    if !OUT_OF_REACH.swap(true, Ordering::Relaxed) {
        tracing::error!(
            "PostgreSQL is out of reach ({err}): answering SERVICE_UNAVAILABLE until it is back"
        );
    }
}

/// Records that PostgreSQL answered; logs the end of an outage.
pub fn note_reachable() {
    if AtomicBool::load(&OUT_OF_REACH, Ordering::Relaxed)
        && OUT_OF_REACH.swap(false, Ordering::Relaxed)
    {
        tracing::info!("PostgreSQL is reachable again");
    }
}

const USER_SETTING: &str = "app.user_id";
const WORKSPACE_SETTING: &str = "app.workspace_id";

fn setting_value(id: Option<Uuid>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}

/// Sets who the connection acts for and which workspace it works in; row-level security
/// shows tenant tables' rows of that workspace only (and the user's own memberships).
pub async fn set_context(
    conn: &mut AsyncPgConnection,
    user: Option<Uuid>,
    workspace_id: Option<Uuid>,
) -> diesel::QueryResult<()> {
    diesel::select((
        set_config(USER_SETTING, setting_value(user), false),
        set_config(WORKSPACE_SETTING, setting_value(workspace_id), false),
    ))
    .execute(conn)
    .await
    .map(drop)
}

/// Switches the connection into `workspace_id` for the rest of the current transaction,
/// keeping its user. Outside a transaction it fails: the change would outlive the work it is
/// for (see [`ContextConnection`]).
pub async fn enter_workspace(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
) -> diesel::QueryResult<()> {
    let depth =
        <AsyncPgConnection as AsyncConnection>::TransactionManager::transaction_manager_status_mut(
            conn,
        )
        .transaction_depth()?;
    if depth.is_none() {
        return Err(diesel::result::Error::NotInTransaction);
    }
    diesel::select(set_config(
        WORKSPACE_SETTING,
        workspace_id.to_string(),
        true,
    ))
    .execute(conn)
    .await
    .map(drop)
}

/// Runs `work` while no other run under the same `key` does, in any process. For work that
/// calls another system between its statements (Stripe), which a row lock cannot span: a
/// transaction-scoped advisory lock, taken on a connection of its own that stays open
/// across `work` (whose statements use other connections). A crash ends the transaction and
/// frees the lock. Another run waits for it up to `lock_timeout`, then fails (its job runs
/// again later).
pub async fn one_at_a_time<T, E>(
    db: &Db,
    key: &str,
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E>
where
    E: From<DbError> + From<diesel::result::Error>,
{
    use diesel_async::AnsiTransactionManager;
    let mut pooled = db.conn_outside_tenancy().await?;
    let conn: &mut AsyncPgConnection = &mut pooled;
    AnsiTransactionManager::begin_transaction(conn).await?;
    static_sql(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        (bind::<diesel::sql_types::Text, _>(key),),
    )
    .execute(conn)
    .await?;
    let done = work.await;
    // Nothing was written here: ending the transaction only frees the lock. If it cannot
    // end, the connection is rolled back or closed when dropped, which frees it too.
    AnsiTransactionManager::commit_transaction(conn).await?;
    done
}

/// A handle on the pool that counts the statements run through it and sets the
/// row-level-security context of every connection it hands out.
///
/// Each GraphQL request gets its own handle (see [`Db::for_request`]) so the counts are the
/// request's, whichever loader or resolver ran the statement.
#[derive(Clone)]
pub struct Db {
    pool: PgPool,
    counts: Arc<StatementCounts>,
    /// The signed-in user the request acts for (`app.user_id`).
    user: Option<Uuid>,
    /// Where each statement's text goes, when something studies them (the catalog test of
    /// query plans, tests/it/plans.rs); kept by every handle made from this one.
    log: Option<StatementLog>,
}

/// The distinct texts of the statements run through a [`Db`] and the handles made from it.
pub type StatementLog = Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>;

impl Db {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            counts: Arc::default(),
            user: None,
            log: None,
        }
    }

    /// The same handle, and every handle made from it, writing each statement's text to
    /// `log`.
    pub fn logging_statements(self, log: StatementLog) -> Self {
        Self {
            log: Some(log),
            ..self
        }
    }

    /// The pool's connections and waiters now (src/metrics.rs reads it at each scrape).
    pub fn pool_status(&self) -> deadpool::Status {
        self.pool.status()
    }

    /// A handle sharing the pool with a fresh statement counter.
    pub fn for_request(&self) -> Self {
        Self {
            log: self.log.clone(),
            ..Self::new(self.pool.clone())
        }
    }

    /// The same handle acting for `user`.
    pub fn acting_as(&self, user: Option<Uuid>) -> Self {
        Self {
            user,
            ..self.clone()
        }
    }

    /// Statements the handle's work ran, not counting [`Db::context_statements`]: the same
    /// for the same work, whatever the pool's connections did before.
    pub fn statements(&self) -> usize {
        AtomicUsize::load(&self.counts.work, Ordering::Relaxed)
    }

    /// Statements that gave a checked-out connection its context: at most one per checkout,
    /// none when the connection had it already.
    pub fn context_statements(&self) -> usize {
        AtomicUsize::load(&self.counts.context, Ordering::Relaxed)
    }

    /// A connection acting for the handle's user, in no workspace.
    pub async fn conn(&self) -> Result<PooledConnection, DbError> {
        self.checkout(Wanted::Exactly(SessionContext {
            user: self.user,
            workspace: None,
        }))
        .await
    }

    /// A connection acting for the handle's user inside `workspace_id`.
    pub async fn conn_in(&self, workspace_id: Uuid) -> Result<PooledConnection, DbError> {
        self.checkout(Wanted::Exactly(SessionContext {
            user: self.user,
            workspace: Some(workspace_id),
        }))
        .await
    }

    /// A connection acting for the handle's user, in whichever workspace it was last used:
    /// only for queries that read no workspace's rows (tables without row-level security, and
    /// owner-run functions of the caller's own, such as `caller_memberships`). It saves
    /// switching workspaces back and forth when a request checks the caller's membership
    /// between the queries of a page.
    pub async fn conn_for_caller(&self) -> Result<PooledConnection, DbError> {
        self.checkout(Wanted::User(self.user)).await
    }

    /// A connection in whatever context it was last used: only for queries that read neither
    /// setting: tables without row-level security, owner-run functions that ignore the
    /// caller (finding the caller by token, an invitation's workspace by its token).
    pub async fn conn_outside_tenancy(&self) -> Result<PooledConnection, DbError> {
        self.checkout(Wanted::Any).await
    }

    async fn checkout(&self, wanted: Wanted) -> Result<PooledConnection, DbError> {
        let waiting = std::time::Instant::now();
        let pooled = if crate::traces::exported() {
            // A span of its own in a trace: a slow request shows its wait for a connection.
            let span = tracing::info_span!("connection", db.system.name = "postgresql");
            tracing::Instrument::instrument(self.pool.get(), span).await
        } else {
            self.pool.get().await
        };
        metrics::histogram!("linkai_db_pool_wait_seconds").record(waiting.elapsed());
        let mut conn = PooledConnection(Some(pooled?));
        let target = wanted.resolve(conn.context);
        if conn.context != target {
            // Unknown until the statement is known to have run (this future may be dropped).
            conn.context = None;
            if let Some(target) = target {
                conn.set_instrumentation(self.counter(|counts| &counts.context));
                set_context(&mut conn.conn, target.user, target.workspace).await?;
                conn.context = Some(target);
            }
        }
        conn.set_instrumentation(self.counter(|counts| &counts.work));
        note_reachable();
        Ok(conn)
    }

    /// Instrumentation adding each statement a connection starts to one of the counts.
    fn counter(
        &self,
        count: fn(&StatementCounts) -> &AtomicUsize,
    ) -> impl diesel::connection::Instrumentation {
        let counts = Arc::clone(&self.counts);
        let log = self.log.clone();
        // The running statement's span, when traces are exported (src/traces.rs): made when
        // it starts, in the span of the work that runs it, and ended when it finishes.
        let mut running: Option<tracing::Span> = None;
        move |event: InstrumentationEvent<'_>| match event {
            InstrumentationEvent::StartQuery { query, .. } => {
                count(&counts).fetch_add(1, Ordering::Relaxed);
                let traced = crate::traces::exported();
                if log.is_none() && !traced {
                    return;
                }
                // Diesel shows the statement as its SQL, then ` -- binds: [...]`.
                let shown = query.to_string();
                // The first marker: a bound value may hold the same text.
                let sql = shown
                    .split_once(" -- binds: ")
                    .map_or(&*shown, |(sql, _)| sql);
                if traced {
                    running = Some(tracing::info_span!(
                        "statement",
                        otel.kind = "client",
                        otel.status_code = tracing::field::Empty,
                        db.system.name = "postgresql",
                        db.query.text = sql,
                    ));
                }
                if let Some(log) = &log {
                    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                    log.insert(sql.to_owned());
                }
            }
            InstrumentationEvent::FinishQuery { error, .. } => {
                if let (Some(span), Some(_)) = (&running, error) {
                    span.record("otel.status_code", "ERROR");
                }
                running = None;
            }
            _ => {}
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[derive(Default)]
struct StatementCounts {
    work: AtomicUsize,
    context: AtomicUsize,
}

/// What a checkout needs the session's context to be.
#[derive(Clone, Copy)]
enum Wanted {
    Exactly(SessionContext),
    /// This user, any workspace.
    User(Option<Uuid>),
    Any,
}

impl Wanted {
    /// The context to give a connection that has `current` (`None`: unknown): the current
    /// one whenever it will do.
    fn resolve(self, current: Option<SessionContext>) -> Option<SessionContext> {
        match (self, current) {
            (Wanted::Exactly(wanted), _) => Some(wanted),
            (Wanted::User(user), Some(current)) if current.user == user => Some(current),
            (Wanted::User(user), _) => Some(SessionContext {
                user,
                workspace: None,
            }),
            (Wanted::Any, current) => current,
        }
    }
}

/// How long making a connection may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The pool the application uses: it connects as the application role, which owns nothing
/// and cannot bypass row-level security.
pub fn pool(config: &DatabaseConfig) -> anyhow::Result<PgPool> {
    // `Fast` recycling: no test query on every checkout (a broken connection fails its
    // first statement and is dropped), which also keeps per-request statement counts exact.
    let mut manager_config = ManagerConfig::default();
    manager_config.recycling_method = RecyclingMethod::Fast;
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
        config.app_url.expose(),
        manager_config,
    );
    // Last in, first out: a request's next checkout gets the connection it just returned,
    // which usually has the context it wants already. A request waits at most `pool_wait`
    // for a connection, then answers SERVICE_UNAVAILABLE.
    let manager = ContextManager {
        inner: manager,
        statement_timeout: config.statement_timeout,
        lock_timeout: config.lock_timeout,
    };
    Ok(Pool::builder(manager)
        .max_size(config.pool_size)
        .queue_mode(QueueMode::Lifo)
        .wait_timeout(Some(config.pool_wait))
        // A PostgreSQL that drops packets instead of refusing: the outage is found within
        // this, not at the pool wait.
        .create_timeout(Some(CONNECT_TIMEOUT))
        .runtime(deadpool::Runtime::Tokio1)
        .build()?)
}

/// Creates the database named in `url` when it does not exist yet.
pub async fn create_database_if_missing(url: &str) -> anyhow::Result<()> {
    if AsyncPgConnection::establish(url).await.is_ok() {
        return Ok(());
    }
    let (admin_url, name) = split_database_name(url)?;
    let mut admin = AsyncPgConnection::establish(&admin_url).await?;
    let exists: i64 = diesel::sql_query(format!(
        "SELECT 1 AS one FROM pg_database WHERE datname = {}",
        quote_literal(name)
    ))
    .execute(&mut admin)
    .await? as i64;
    if exists == 0 {
        tracing::info!(database = name, "creating database");
        match diesel::sql_query(format!("CREATE DATABASE {}", quote_ident(name)))
            .execute(&mut admin)
            .await
        {
            Ok(_) => {}
            // Another process created it meanwhile.
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// Applies pending migrations; safe to run from several processes at once.
pub async fn migrate(url: &str) -> anyhow::Result<()> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        let mut conn = <AsyncConnectionWrapper<AsyncPgConnection> as Connection>::establish(&url)?;
        // Serialise concurrent starters: the lock is released with the session.
        conn.batch_execute("SELECT pg_advisory_lock(72700001)")?;
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map_err(|err| anyhow::anyhow!("migration failed: {err}"))?;
        for version in applied {
            tracing::info!(%version, "applied migration");
        }
        Ok(())
    })
    .await?
}

/// Splits `postgres://host/db?opts` into a URL for the `postgres` maintenance database and
/// the database name.
pub fn split_database_name(url: &str) -> anyhow::Result<(String, &str)> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let after_scheme = base
        .find("://")
        .map(|i| i + 3)
        .ok_or_else(|| anyhow::anyhow!("DATABASE_URL must start with postgres://"))?;
    let slash = base[after_scheme..]
        .find('/')
        .map(|i| i + after_scheme)
        .ok_or_else(|| anyhow::anyhow!("DATABASE_URL must name a database"))?;
    let name = &base[slash + 1..];
    if name.is_empty() {
        anyhow::bail!("DATABASE_URL must name a database");
    }
    let mut admin = format!("{}/postgres", &base[..slash]);
    if let Some(query) = query {
        admin.push('?');
        admin.push_str(query);
    }
    Ok((admin, name))
}

pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Whether `err` is a violation of the named unique index or constraint.
pub fn is_unique_violation(err: &diesel::result::Error, constraint: &str) -> bool {
    matches!(
        err,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, info)
            if info.constraint_name() == Some(constraint)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_split_into_maintenance_url_and_name() {
        let (admin, name) =
            split_database_name("postgres://postgres@127.0.0.1:5432/linkai").expect("valid");
        assert_eq!(admin, "postgres://postgres@127.0.0.1:5432/postgres");
        assert_eq!(name, "linkai");
        let (admin, name) =
            split_database_name("postgres://u:p@h/app_db?sslmode=disable").expect("valid");
        assert_eq!(admin, "postgres://u:p@h/postgres?sslmode=disable");
        assert_eq!(name, "app_db");
        assert!(split_database_name("postgres://host").is_err());
        assert!(split_database_name("postgres://host/").is_err());
    }

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
