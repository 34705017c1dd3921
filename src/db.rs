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

use crate::config::DatabaseConfig;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub type PgPool = Pool<AsyncPgConnection>;
pub type PooledConnection = Object<AsyncPgConnection>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("could not get a database connection: {0}")]
    Pool(#[from] PoolError),
}

/// A handle on the pool that counts the statements run through it.
///
/// Each GraphQL request gets its own handle (see [`Db::for_request`]) so the count is the
/// request's, whichever DataLoader or resolver ran the statement.
#[derive(Clone)]
pub struct Db {
    pool: PgPool,
    statements: Arc<AtomicUsize>,
}

impl Db {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            statements: Arc::default(),
        }
    }

    /// A handle sharing the pool with a fresh statement counter.
    pub fn for_request(&self) -> Self {
        Self::new(self.pool.clone())
    }

    pub fn statements(&self) -> usize {
        AtomicUsize::load(&self.statements, Ordering::Relaxed)
    }

    pub async fn conn(&self) -> Result<PooledConnection, DbError> {
        let mut conn = self.pool.get().await?;
        let statements = Arc::clone(&self.statements);
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::StartQuery { .. } = event {
                statements.fetch_add(1, Ordering::Relaxed);
            }
        });
        Ok(conn)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

pub fn pool(config: &DatabaseConfig) -> anyhow::Result<PgPool> {
    // `Fast` recycling: no test query on every checkout (a broken connection fails its
    // first statement and is dropped), which also keeps per-request statement counts exact.
    let mut manager_config = ManagerConfig::default();
    manager_config.recycling_method = RecyclingMethod::Fast;
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
        config.url.expose(),
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
