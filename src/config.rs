//! Configuration, read once from environment variables at start and passed down explicitly.
//!
//! | variable | meaning | local default |
//! |---|---|---|
//! | `DATABASE_URL` | PostgreSQL (the database is created if missing) | [`DEFAULT_DATABASE_URL`] |
//! | `DATABASE_APP_URL` | how the app connects: as the `linkai_app` role, which cannot bypass row-level security | `DATABASE_URL` with the user `linkai_app` |
//! | `DATABASE_POOL_SIZE` | connections per process | [`DEFAULT_POOL_SIZE`] |
//! | `REDIS_URL` | Redis for the job queues | [`DEFAULT_REDIS_URL`] |
//! | `BIND_ADDR` | where the API listens | [`DEFAULT_BIND_ADDR`] |
//! | `APP_URL` | base of links in emails, never taken from request headers | [`DEFAULT_APP_URL`] |
//! | `SMTP_URL` | SMTP relay; unset: emails go to `OUTBOX_DIR` | unset |
//! | `OUTBOX_DIR` | folder for emails when there is no SMTP | [`DEFAULT_OUTBOX_DIR`] |
//! | `MAIL_FROM` | sender address | [`DEFAULT_MAIL_FROM`] |
//! | `STRIPE_SECRET_KEY` | unset: billing mutations answer `BILLING_NOT_CONFIGURED` | unset |
//! | `STRIPE_API_BASE` | Stripe API base URL | Stripe's |
//! | `STRIPE_WEBHOOK_SECRET` | verifies `Stripe-Signature` | unset |
//! | `STRIPE_PLAN_METADATA_KEY` | product metadata key naming our plan (`starter`, `growth`, `scale`) | [`DEFAULT_PLAN_METADATA_KEY`] |
//! | `SERVICE_TOKENS` | comma-separated tokens allowed to call `reportUsage` | unset |
//! | `JOBS_QUEUE` | Redis key prefix of the job queue | [`DEFAULT_JOBS_QUEUE`] |
//! | `WORKER_NAME` | unique name of this worker process | `linkai-<pid>-<random>` |
//! | `WORKER_HEARTBEAT_SECS` | worker heartbeat; a worker silent for 3 beats is presumed dead and its jobs re-run | [`DEFAULT_HEARTBEAT_SECS`] |
//! | `TRIAL_SCAN_SECS` | how often workers look for due trial reminders and expiries | [`DEFAULT_TRIAL_SCAN_SECS`] |
//! | `BILLING_SYNC_SECS` | how often workers re-sync every workspace's billing from Stripe | [`DEFAULT_BILLING_SYNC_SECS`] |
//! | `CORS_ORIGINS` | comma-separated browser origins allowed to call `/graphql` (`https://app.example.com`) | the origin of `APP_URL` |
//! | `INTROSPECTION` | `false`: no `__schema`/`__type` and no playground | `true` |
//! | `GRAPHQL_SQL_STATS` | `true`: responses carry `extensions.sqlStatements` and `sqlContextStatements` (tests, benchmarks) | `false` |

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/linkai";
pub const DEFAULT_POOL_SIZE: usize = 16;
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const DEFAULT_BIND_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_APP_URL: &str = "http://localhost:3000";
pub const DEFAULT_OUTBOX_DIR: &str = "./var/mail";
pub const DEFAULT_MAIL_FROM: &str = "Link AI <no-reply@localhost>";
pub const DEFAULT_JOBS_QUEUE: &str = "linkai:jobs";
pub const DEFAULT_HEARTBEAT_SECS: u64 = 5;
pub const MISSED_HEARTBEATS: usize = 3;
pub const DEFAULT_TRIAL_SCAN_SECS: u64 = 600;
pub const DEFAULT_PLAN_METADATA_KEY: &str = "linkai_plan";
pub const DEFAULT_BILLING_SYNC_SECS: u64 = 3_600;

/// A value that must not appear in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub database: DatabaseConfig,
    pub redis_url: String,
    pub http: HttpConfig,
    pub email: EmailConfig,
    pub stripe: Option<StripeConfig>,
    pub service_tokens: Vec<Secret>,
    pub workers: WorkerConfig,
    /// Tests only: a resource kind whose application-level workspace filter is switched
    /// off (`UNSAFE_UNFILTERED_KIND`), to prove row-level security alone isolates tenants.
    pub unfiltered_kind: Option<String>,
}

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// How often each worker scans for due trial notices.
    pub trial_scan_interval: std::time::Duration,
    /// How often each worker re-syncs every workspace's billing from Stripe.
    pub billing_sync_interval: std::time::Duration,
    pub queue: String,
    pub name: String,
    pub heartbeat: std::time::Duration,
}

#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    /// The owner: creates the database and runs migrations.
    pub url: Secret,
    /// The application role.
    pub app_url: Secret,
    pub pool_size: usize,
}

#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub bind_addr: SocketAddr,
    pub app_url: String,
    /// Exact origins (`scheme://host[:port]`) whose pages may call `/graphql` from a browser.
    pub cors_origins: Vec<String>,
    /// Introspection and the playground (on unless `INTROSPECTION=false`).
    pub introspection: bool,
    /// Report the SQL statements each request ran in `extensions.sqlStatements` and
    /// `extensions.sqlContextStatements`.
    pub expose_sql_stats: bool,
}

#[derive(Clone, Debug)]
pub struct EmailConfig {
    pub smtp_url: Option<Secret>,
    pub outbox_dir: PathBuf,
    pub from: String,
}

#[derive(Clone, Debug)]
pub struct StripeConfig {
    /// The product metadata key naming our plan (`STRIPE_PLAN_METADATA_KEY`), so several
    /// environments can share one Stripe account.
    pub plan_key: String,
    pub secret_key: Secret,
    pub api_base: Option<String>,
    pub webhook_secret: Option<Secret>,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let or = |name: &str, default: &str| get(name).unwrap_or_else(|| default.to_owned());

        let pool_size = get("DATABASE_POOL_SIZE")
            .map(|v| v.parse().context("DATABASE_POOL_SIZE must be a number"))
            .transpose()?
            .unwrap_or(DEFAULT_POOL_SIZE);
        let bind_addr = or("BIND_ADDR", DEFAULT_BIND_ADDR)
            .parse()
            .context("BIND_ADDR must look like 127.0.0.1:8080")?;
        let expose_sql_stats = get("GRAPHQL_SQL_STATS")
            .map(|v| v.parse().context("GRAPHQL_SQL_STATS must be true or false"))
            .transpose()?
            .unwrap_or(false);
        let introspection = get("INTROSPECTION")
            .map(|v| v.parse().context("INTROSPECTION must be true or false"))
            .transpose()?
            .unwrap_or(true);
        let app_url = or("APP_URL", DEFAULT_APP_URL)
            .trim_end_matches('/')
            .to_owned();
        let cors_origins = match get("CORS_ORIGINS") {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|origin| !origin.is_empty())
                .map(|origin| {
                    origin_of(origin)
                        .filter(|parsed| parsed == &origin.trim_end_matches('/').to_ascii_lowercase())
                        .with_context(|| {
                            format!("CORS_ORIGINS: `{origin}` is not an origin like https://app.example.com")
                        })
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
            None => vec![origin_of(&app_url)
                .context("APP_URL must be an http(s) URL like https://app.example.com")?],
        };
        let stripe = get("STRIPE_SECRET_KEY").map(|key| StripeConfig {
            plan_key: or("STRIPE_PLAN_METADATA_KEY", DEFAULT_PLAN_METADATA_KEY),
            secret_key: Secret::new(key),
            api_base: get("STRIPE_API_BASE"),
            webhook_secret: get("STRIPE_WEBHOOK_SECRET").map(Secret::new),
        });
        let service_tokens = get("SERVICE_TOKENS")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(Secret::new)
                    .collect()
            })
            .unwrap_or_default();

        let heartbeat_secs = get("WORKER_HEARTBEAT_SECS")
            .map(|v| v.parse().context("WORKER_HEARTBEAT_SECS must be a number"))
            .transpose()?
            .unwrap_or(DEFAULT_HEARTBEAT_SECS)
            .max(1);
        let trial_scan_secs = get("TRIAL_SCAN_SECS")
            .map(|v| v.parse().context("TRIAL_SCAN_SECS must be a number"))
            .transpose()?
            .unwrap_or(DEFAULT_TRIAL_SCAN_SECS)
            .max(1);
        let billing_sync_secs = get("BILLING_SYNC_SECS")
            .map(|v| v.parse().context("BILLING_SYNC_SECS must be a number"))
            .transpose()?
            .unwrap_or(DEFAULT_BILLING_SYNC_SECS)
            .max(1);
        let worker_name = get("WORKER_NAME").unwrap_or_else(|| {
            format!(
                "linkai-{}-{:04x}",
                std::process::id(),
                rand::random::<u16>()
            )
        });

        Ok(Config {
            database: DatabaseConfig {
                app_url: Secret::new(get("DATABASE_APP_URL").unwrap_or_else(|| {
                    crate::db::app_role_url(&or("DATABASE_URL", DEFAULT_DATABASE_URL))
                })),
                url: Secret::new(or("DATABASE_URL", DEFAULT_DATABASE_URL)),
                pool_size,
            },
            redis_url: or("REDIS_URL", DEFAULT_REDIS_URL),
            http: HttpConfig {
                bind_addr,
                app_url,
                cors_origins,
                introspection,
                expose_sql_stats,
            },
            email: EmailConfig {
                smtp_url: get("SMTP_URL").map(Secret::new),
                outbox_dir: PathBuf::from(or("OUTBOX_DIR", DEFAULT_OUTBOX_DIR)),
                from: or("MAIL_FROM", DEFAULT_MAIL_FROM),
            },
            stripe,
            service_tokens,
            workers: WorkerConfig {
                trial_scan_interval: std::time::Duration::from_secs(trial_scan_secs),
                billing_sync_interval: std::time::Duration::from_secs(billing_sync_secs),
                queue: or("JOBS_QUEUE", DEFAULT_JOBS_QUEUE),
                name: worker_name,
                heartbeat: std::time::Duration::from_secs(heartbeat_secs),
            },
            unfiltered_kind: get("UNSAFE_UNFILTERED_KIND"),
        })
    }
}

/// The origin (`scheme://host[:port]`, lower case) of an http(s) URL, as browsers send it
/// in `Origin`.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    let valid = !authority.is_empty()
        && !authority.contains('@')
        && authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    valid.then(|| format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_environment_gives_the_documented_defaults() {
        let config = Config::from_lookup(|_| None).expect("defaults parse");
        assert_eq!(config.database.url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(config.redis_url, DEFAULT_REDIS_URL);
        assert_eq!(config.http.bind_addr.to_string(), DEFAULT_BIND_ADDR);
        assert_eq!(config.http.app_url, DEFAULT_APP_URL);
        assert!(config.email.smtp_url.is_none());
        assert!(config.stripe.is_none());
        assert!(config.service_tokens.is_empty());
        assert!(!config.http.expose_sql_stats);
        assert_eq!(config.http.cors_origins, ["http://localhost:3000"]);
        assert!(config.http.introspection);
    }

    #[test]
    fn cors_origins_are_exact_origins() {
        let config = Config::from_lookup(|name| match name {
            "APP_URL" => Some("https://App.Example.com/app/".into()),
            _ => None,
        })
        .expect("parses");
        assert_eq!(config.http.cors_origins, ["https://app.example.com"]);
        let config = Config::from_lookup(|name| match name {
            "CORS_ORIGINS" => Some("https://a.example.com, http://localhost:5173/".into()),
            _ => None,
        })
        .expect("parses");
        assert_eq!(
            config.http.cors_origins,
            ["https://a.example.com", "http://localhost:5173"]
        );
        for bad in [
            "*",
            "https://a.example.com/path",
            "ftp://a.example.com",
            "a.example.com",
        ] {
            let err = Config::from_lookup(|name| (name == "CORS_ORIGINS").then(|| bad.into()))
                .expect_err(bad);
            assert!(err.to_string().contains("CORS_ORIGINS"), "{bad}: {err}");
        }
    }

    #[test]
    fn values_are_read_and_secrets_are_not_printed() {
        let config = Config::from_lookup(|name| match name {
            "STRIPE_SECRET_KEY" => Some("sk_test_123".into()),
            "SERVICE_TOKENS" => Some("a, b,,".into()),
            "APP_URL" => Some("https://app.example.com/".into()),
            _ => None,
        })
        .expect("parses");
        assert_eq!(config.service_tokens.len(), 2);
        assert_eq!(config.http.app_url, "https://app.example.com");
        assert!(!format!("{config:?}").contains("sk_test_123"));
    }

    #[test]
    fn a_bad_bind_address_is_a_clear_error() {
        let err = Config::from_lookup(|name| (name == "BIND_ADDR").then(|| "nope".into()))
            .expect_err("must fail");
        assert!(err.to_string().contains("BIND_ADDR"));
    }
}
