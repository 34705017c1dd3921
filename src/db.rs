//! PostgreSQL access: the connection pool, embedded migrations, creating the database when it
//! is missing, and counting the SQL statements each request runs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use diesel::connection::InstrumentationEvent;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Object, Pool, PoolError};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use uuid::Uuid;

use crate::config::DatabaseConfig;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub type PgPool = Pool<AsyncPgConnection>;
pub type PooledConnection = Object<AsyncPgConnection>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("could not get a database connection: {0}")]
    Pool(#[from] PoolError),
    #[error("could not set the connection's context: {0}")]
    Context(#[from] diesel::result::Error),
}

diesel::define_sql_function! {
    /// PostgreSQL's `set_config(setting, value, is_local)`. As a typed function (not raw SQL)
    /// its statements are prepared once per connection and cached, like every other query.
    fn set_config(setting: diesel::sql_types::Text, value: diesel::sql_types::Text, is_local: diesel::sql_types::Bool) -> diesel::sql_types::Text;
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

/// Switches the connection into `workspace_id`, keeping its user.
pub async fn enter_workspace(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
) -> diesel::QueryResult<()> {
    diesel::select(set_config(
        WORKSPACE_SETTING,
        workspace_id.to_string(),
        false,
    ))
    .execute(conn)
    .await
    .map(drop)
}

/// Sets the connection's user, keeping its workspace.
pub async fn act_as(conn: &mut AsyncPgConnection, user: Uuid) -> diesel::QueryResult<()> {
    diesel::select(set_config(USER_SETTING, user.to_string(), false))
        .execute(conn)
        .await
        .map(drop)
}

/// A handle on the pool that counts the statements run through it and sets the
/// row-level-security context of every connection it hands out.
///
/// Each GraphQL request gets its own handle (see [`Db::for_request`]) so the count is the
/// request's, whichever DataLoader or resolver ran the statement.
#[derive(Clone)]
pub struct Db {
    pool: PgPool,
    statements: Arc<AtomicUsize>,
    /// The signed-in user the request acts for (`app.user_id`).
    user: Option<Uuid>,
}

impl Db {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            statements: Arc::default(),
            user: None,
        }
    }

    /// A handle sharing the pool with a fresh statement counter.
    pub fn for_request(&self) -> Self {
        Self::new(self.pool.clone())
    }

    /// The same handle acting for `user`.
    pub fn acting_as(&self, user: Option<Uuid>) -> Self {
        Self {
            user,
            ..self.clone()
        }
    }

    pub fn statements(&self) -> usize {
        AtomicUsize::load(&self.statements, Ordering::Relaxed)
    }

    /// A connection acting for the handle's user, in no workspace.
    pub async fn conn(&self) -> Result<PooledConnection, DbError> {
        self.checkout(None).await
    }

    /// A connection acting for the handle's user inside `workspace_id`.
    pub async fn conn_in(&self, workspace_id: Uuid) -> Result<PooledConnection, DbError> {
        self.checkout(Some(workspace_id)).await
    }

    async fn checkout(&self, workspace_id: Option<Uuid>) -> Result<PooledConnection, DbError> {
        let mut conn = self.pool.get().await?;
        let statements = Arc::clone(&self.statements);
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::StartQuery { .. } = event {
                statements.fetch_add(1, Ordering::Relaxed);
            }
        });
        // Pooled connections keep session settings: every checkout sets both anew.
        set_context(&mut conn, self.user, workspace_id).await?;
        Ok(conn)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

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
    Ok(Pool::builder(manager).max_size(config.pool_size).build()?)
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

/// `postgres://owner:secret@host/db` → `postgres://linkai_app@host/db`: the application
/// role on the same server and database (local trust authentication; set
/// `DATABASE_APP_URL` where the role has a password).
pub fn app_role_url(owner_url: &str) -> String {
    match owner_url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{APP_ROLE}@{host}")
        }
        None => owner_url.to_owned(),
    }
}

pub const APP_ROLE: &str = "linkai_app";

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
    fn the_app_role_url_swaps_only_the_user() {
        assert_eq!(
            app_role_url("postgres://postgres@127.0.0.1:5432/linkai"),
            "postgres://linkai_app@127.0.0.1:5432/linkai"
        );
        assert_eq!(
            app_role_url("postgres://o:p%40ss@db:5432/x?sslmode=require"),
            "postgres://linkai_app@db:5432/x?sslmode=require"
        );
        assert_eq!(app_role_url("postgres://h/x"), "postgres://linkai_app@h/x");
    }

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
