//! Configuration, read once from environment variables at start and passed down explicitly.
//!
//! | variable | meaning | local default |
//! |---|---|---|
//! | `DATABASE_URL` | PostgreSQL (the database is created if missing) | [`DEFAULT_DATABASE_URL`] |
//! | `DATABASE_APP_URL` | how the app connects: as the `linkai_app` role, which cannot bypass row-level security | `DATABASE_URL` with the user `linkai_app` |
//! | `DATABASE_POOL_SIZE` | connections per process | [`DEFAULT_POOL_SIZE`] |
//! | `REDIS_URL` | Redis for the job queues | [`DEFAULT_REDIS_URL`] |
//! | `BIND_ADDR` | where the API listens | [`DEFAULT_BIND_ADDR`] |
//! | `METRICS_ADDR` | where `GET /metrics` (Prometheus) listens, off the public port; each process (`serve`, `worker`) needs its own | unset: no metrics |
//! | `APP_URL` | base of links in emails, never taken from request headers | [`DEFAULT_APP_URL`] |
//! | `SMTP_URL` | SMTP relay; unset: emails go to `OUTBOX_DIR` | unset |
//! | `OUTBOX_DIR` | folder for emails when there is no SMTP | [`DEFAULT_OUTBOX_DIR`] |
//! | `MAIL_FROM` | sender address | [`DEFAULT_MAIL_FROM`] |
//! | `STRIPE_SECRET_KEY` | unset: billing mutations answer `BILLING_NOT_CONFIGURED` | unset |
//! | `STRIPE_API_BASE` | Stripe API base URL | Stripe's |
//! | `STRIPE_WEBHOOK_SECRET` | verifies `Stripe-Signature` | unset |
//! | `STRIPE_TIMEOUT_SECS` | each attempt of a Stripe call is abandoned after this long (and retried where that is safe: src/billing/transport.rs) | [`DEFAULT_STRIPE_TIMEOUT_SECS`] |
//! | `STRIPE_PLAN_METADATA_KEY` | product metadata key naming our plan (`starter`, `growth`, `scale`) | [`DEFAULT_PLAN_METADATA_KEY`] |
//! | `JOBS_QUEUE` | Redis key prefix of the job queue and of the live updates' channel | [`DEFAULT_JOBS_QUEUE`] |
//! | `WORKER_NAME` | unique name of this worker process | `linkai-<pid>-<random>` |
//! | `WORKER_HEARTBEAT_SECS` | worker heartbeat; a worker silent for 3 beats is presumed dead and its jobs re-run | [`DEFAULT_HEARTBEAT_SECS`] |
//! | `JOBS_FIRST_RETRY_MS` | a failed job's first retry waits this long, each later one about twice as long (8 retries, then the job is dropped) | 500 |
//! | `TRIAL_SCAN_SECS` | how often workers look for due trial reminders and expiries | [`DEFAULT_TRIAL_SCAN_SECS`] |
//! | `BILLING_SYNC_SECS` | how often workers re-sync every workspace's billing from Stripe | [`DEFAULT_BILLING_SYNC_SECS`] |
//! | `PAST_DUE_GRACE_DAYS` | how long a past-due workspace stays writable (src/billing/grace.rs) | [`DEFAULT_PAST_DUE_GRACE_DAYS`] |
//! | `STRIPE_EVENT_RETENTION_DAYS` | how long Stripe webhook events are kept | [`DEFAULT_STRIPE_EVENT_RETENTION_DAYS`] |
//! | `AUDIT_RETENTION_DAYS` | how long audit events are kept (pruned by the scheduled scan) | [`DEFAULT_AUDIT_RETENTION_DAYS`] |
//! | `WORKSPACE_RESTORE_DAYS` | how long the Owner can restore a deleted workspace; then it is purged | [`DEFAULT_WORKSPACE_RESTORE_DAYS`] |
//! | `CORS_ORIGINS` | comma-separated browser origins allowed to call `/graphql` (`https://app.example.com`) | the origin of `APP_URL` |
//! | `INTROSPECTION` | `false`: no `__schema`/`__type` and no playground | `true` |
//! | `HTTP_HEADER_TIMEOUT_SECS` | a connection must send a request's headers within this long, counted from when it opens or its previous response ends (so it also closes idle keep-alive connections) | [`DEFAULT_HEADER_TIMEOUT_SECS`] |
//! | `HTTP_BODY_TIMEOUT_SECS` | a request's whole body must arrive within this long after its headers (else 408) | [`DEFAULT_BODY_TIMEOUT_SECS`] |
//! | `HTTP_REQUEST_TIMEOUT_SECS` | a request is answered within this long, or with 503 `SERVICE_UNAVAILABLE`: its work rolled back, unless the deadline fell while its commit ran (then, as with any answer lost on the way, the work may be done) | [`DEFAULT_REQUEST_TIMEOUT_SECS`] |
//! | `HTTP_MAX_CONNECTIONS` | open connections per process; past it, new ones wait in the listen backlog | [`DEFAULT_MAX_CONNECTIONS`] |
//! | `SHUTDOWN_TIMEOUT_SECS` | after SIGTERM, how long requests in flight get before the process exits anyway | [`DEFAULT_SHUTDOWN_TIMEOUT_SECS`] |
//! | `TRUSTED_PROXIES` | comma-separated proxy addresses (`10.0.0.5`, `10.0.0.0/8`) whose `X-Forwarded-For` names the client, and whose `X-Request-Id` (a UUID) names the request | unset: the peer is the client |
//! | `DATABASE_STATEMENT_TIMEOUT_MS` | PostgreSQL `statement_timeout` of the app's sessions | [`DEFAULT_STATEMENT_TIMEOUT_MS`] |
//! | `DATABASE_LOCK_TIMEOUT_MS` | PostgreSQL `lock_timeout` of the app's sessions | [`DEFAULT_LOCK_TIMEOUT_MS`] |
//! | `DATABASE_POOL_WAIT_MS` | how long a request waits for a free connection before 503 `SERVICE_UNAVAILABLE` | [`DEFAULT_POOL_WAIT_MS`] |
//! | `SESSION_IDLE_DAYS` | a session unused this long stops working | [`DEFAULT_SESSION_IDLE_DAYS`] |
//! | `SESSION_MAX_DAYS` | a session stops working this long after sign-in, however used | [`DEFAULT_SESSION_MAX_DAYS`] |
//! | `TOKEN_CACHE_MS` | how long a server reuses a live token's lookup (0: never; at most 1000, the second in which every server refuses a revoked token) | [`DEFAULT_TOKEN_CACHE_MS`] |
//! | `GRAPHQL_SQL_STATS` | `true`: responses carry `extensions.sqlStatements` and `sqlContextStatements` (tests, benchmarks) | `false` |

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

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
pub const DEFAULT_SESSION_IDLE_DAYS: u64 = 7;
pub const DEFAULT_SESSION_MAX_DAYS: u64 = 30;
/// A second: src/auth/bearers.rs says why it is safe, and why not longer.
pub const DEFAULT_TOKEN_CACHE_MS: u64 = 1000;
/// The longest `TOKEN_CACHE_MS`: the second in which every server must refuse a revoked
/// token (docs/security.md).
pub const MAX_TOKEN_CACHE_MS: u64 = 1000;
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;
pub const DEFAULT_BODY_TIMEOUT_SECS: u64 = 10;
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;
/// Beyond the request timeout, how long a Stripe call sent by a request that died may take
/// to land in Stripe's list: a billing operation's lease is the two together
/// (src/billing/operations.rs).
pub const STRIPE_CALL_LANDING: Duration = Duration::from_secs(15);
/// How long a past-due workspace stays writable (src/billing/grace.rs).
pub const DEFAULT_PAST_DUE_GRACE_DAYS: u64 = 7;
/// How long Stripe webhook events are kept: longer than Stripe's 3 days of redelivery, so
/// a redelivered event is still known.
pub const DEFAULT_STRIPE_EVENT_RETENTION_DAYS: u64 = 30;
/// How long one attempt of a Stripe call may take.
pub const DEFAULT_STRIPE_TIMEOUT_SECS: u64 = 20;
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECS: u64 = 5;
pub const DEFAULT_STATEMENT_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_LOCK_TIMEOUT_MS: u64 = 2_000;
pub const DEFAULT_POOL_WAIT_MS: u64 = 10_000;

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
    /// May carry a password: never printed.
    pub redis_url: Secret,
    pub http: HttpConfig,
    pub email: EmailConfig,
    pub stripe: Option<StripeConfig>,
    pub sessions: SessionPolicy,
    pub workers: WorkerConfig,
    pub billing: BillingPolicy,
    /// How long a deleted workspace can be restored before it is purged
    /// (`WORKSPACE_RESTORE_DAYS`, src/workspaces/lifecycle.rs).
    pub workspace_restore: chrono::Duration,
    /// Tests only (the `rls-proof` feature; a release build has no such switch): a
    /// resource kind whose application-level workspace filter is switched off
    /// (`UNSAFE_UNFILTERED_KIND`), to prove row-level security alone isolates tenants.
    #[cfg(feature = "rls-proof")]
    pub unfiltered_kind: Option<String>,
}

/// How long billing waits and keeps.
#[derive(Clone, Debug)]
pub struct BillingPolicy {
    /// How long a past-due workspace stays writable.
    pub past_due_grace: chrono::Duration,
    /// How long Stripe webhook events are kept (pruned by the scheduled scan).
    pub stripe_event_retention: chrono::Duration,
}

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// How often each worker scans for due trial notices.
    pub trial_scan_interval: Duration,
    /// How often each worker re-syncs every workspace's billing from Stripe.
    pub billing_sync_interval: Duration,
    /// How long audit events are kept.
    pub audit_retention: chrono::Duration,
    pub queue: String,
    pub name: String,
    pub heartbeat: Duration,
    /// A failed job's first retry waits this long (`linkai_jobs::queue::retry_policy`).
    pub first_retry: Duration,
}

#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    /// The owner: creates the database and runs migrations.
    pub url: Secret,
    /// The application role.
    pub app_url: Secret,
    pub pool_size: usize,
    pub statement_timeout: Duration,
    pub lock_timeout: Duration,
    /// How long a checkout waits for a free connection.
    pub pool_wait: Duration,
}

#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub bind_addr: SocketAddr,
    /// Where `GET /metrics` listens (src/metrics.rs); `None`: nowhere.
    pub metrics_addr: Option<SocketAddr>,
    pub app_url: String,
    /// Exact origins (`scheme://host[:port]`) whose pages may call `/graphql` from a browser.
    pub cors_origins: Vec<String>,
    /// Introspection and the playground (on unless `INTROSPECTION=false`).
    pub introspection: bool,
    /// Report the SQL statements each request ran in `extensions.sqlStatements` and
    /// `extensions.sqlContextStatements`.
    pub expose_sql_stats: bool,
    pub limits: HttpLimits,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
}

/// How long a session (a token made by signing in) lives: `idle` since its last use (sliding)
/// and `max` since sign-in (absolute).
#[derive(Clone, Copy, Debug)]
pub struct SessionPolicy {
    pub idle: chrono::Duration,
    pub max: chrono::Duration,
    /// How long a server reuses a live token's lookup (src/auth/bearers.rs).
    pub token_cache: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle: chrono::Duration::days(DEFAULT_SESSION_IDLE_DAYS as i64),
            max: chrono::Duration::days(DEFAULT_SESSION_MAX_DAYS as i64),
            token_cache: Duration::from_millis(DEFAULT_TOKEN_CACHE_MS),
        }
    }
}

/// How long a connection may take over each part of its life, and how many may be open.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(DEFAULT_HEADER_TIMEOUT_SECS),
            body_timeout: Duration::from_secs(DEFAULT_BODY_TIMEOUT_SECS),
            request_timeout: Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_SECS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_timeout: Duration::from_secs(DEFAULT_SHUTDOWN_TIMEOUT_SECS),
        }
    }
}

/// An address range (`10.0.0.0/8`), or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (canonical(self.addr), ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4 addresses seen through an IPv6 socket (`::ffff:10.0.0.5`) as the IPv4 they are.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
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
    /// How long the request that runs a billing operation may hold it: the request timeout
    /// and time for a Stripe call it sent to land.
    pub operation_lease: Duration,
    /// How long one attempt of a Stripe call may take.
    pub timeout: Duration,
}

/// `TOKEN_CACHE_MS`: zero switches the cache off; past a second, a revoked token could
/// outlive the promise of docs/security.md, so it is refused.
fn token_cache_ms(value: Option<String>) -> anyhow::Result<u64> {
    let Some(value) = value else {
        return Ok(DEFAULT_TOKEN_CACHE_MS);
    };
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|ms| *ms <= MAX_TOKEN_CACHE_MS)
        .with_context(|| {
            format!("TOKEN_CACHE_MS must be a whole number from 0 to {MAX_TOKEN_CACHE_MS}")
        })
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
        let number = |name: &str, default: u64| -> anyhow::Result<u64> {
            get(name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|n| *n > 0)
                        .with_context(|| format!("{name} must be a whole number above 0"))
                })
                .transpose()
                .map(|n| n.unwrap_or(default))
        };
        let limits = HttpLimits {
            header_timeout: Duration::from_secs(number(
                "HTTP_HEADER_TIMEOUT_SECS",
                DEFAULT_HEADER_TIMEOUT_SECS,
            )?),
            body_timeout: Duration::from_secs(number(
                "HTTP_BODY_TIMEOUT_SECS",
                DEFAULT_BODY_TIMEOUT_SECS,
            )?),
            request_timeout: Duration::from_secs(number(
                "HTTP_REQUEST_TIMEOUT_SECS",
                DEFAULT_REQUEST_TIMEOUT_SECS,
            )?),
            max_connections: number("HTTP_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS as u64)?
                as usize,
            shutdown_timeout: Duration::from_secs(number(
                "SHUTDOWN_TIMEOUT_SECS",
                DEFAULT_SHUTDOWN_TIMEOUT_SECS,
            )?),
        };
        let trusted_proxies = get("TRUSTED_PROXIES")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|net| !net.is_empty())
                    .map(|net| {
                        IpNet::parse(net).with_context(|| {
                            format!("TRUSTED_PROXIES: `{net}` is not an address or range like 10.0.0.0/8")
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()
            })
            .transpose()?
            .unwrap_or_default();

        let pool_size = get("DATABASE_POOL_SIZE")
            .map(|v| v.parse().context("DATABASE_POOL_SIZE must be a number"))
            .transpose()?
            .unwrap_or(DEFAULT_POOL_SIZE);
        let bind_addr = or("BIND_ADDR", DEFAULT_BIND_ADDR)
            .parse()
            .context("BIND_ADDR must look like 127.0.0.1:8080")?;
        let metrics_addr = get("METRICS_ADDR")
            .map(|v| {
                v.parse()
                    .context("METRICS_ADDR must look like 127.0.0.1:9090")
            })
            .transpose()?;
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
        let stripe_timeout =
            Duration::from_secs(number("STRIPE_TIMEOUT_SECS", DEFAULT_STRIPE_TIMEOUT_SECS)?);
        let stripe = get("STRIPE_SECRET_KEY").map(|key| StripeConfig {
            plan_key: or("STRIPE_PLAN_METADATA_KEY", DEFAULT_PLAN_METADATA_KEY),
            secret_key: Secret::new(key),
            api_base: get("STRIPE_API_BASE"),
            webhook_secret: get("STRIPE_WEBHOOK_SECRET").map(Secret::new),
            timeout: stripe_timeout,
            // A billing operation is run by its request: one that died is taken over once
            // no request could still be running it (src/billing/operations.rs).
            operation_lease: limits.request_timeout + STRIPE_CALL_LANDING,
        });
        // Named tokens in the database replaced this list: starting with it set would leave
        // the runtime locked out without saying why.
        if get("SERVICE_TOKENS").is_some() {
            anyhow::bail!(
                "SERVICE_TOKENS is no longer read: add each service's token with \
                 `linkai service-token add NAME` and unset it"
            );
        }

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
                app_url: Secret::new(
                    get("DATABASE_APP_URL")
                        .unwrap_or_else(|| app_role_url(&or("DATABASE_URL", DEFAULT_DATABASE_URL))),
                ),
                url: Secret::new(or("DATABASE_URL", DEFAULT_DATABASE_URL)),
                pool_size,
                statement_timeout: Duration::from_millis(number(
                    "DATABASE_STATEMENT_TIMEOUT_MS",
                    DEFAULT_STATEMENT_TIMEOUT_MS,
                )?),
                lock_timeout: Duration::from_millis(number(
                    "DATABASE_LOCK_TIMEOUT_MS",
                    DEFAULT_LOCK_TIMEOUT_MS,
                )?),
                pool_wait: Duration::from_millis(number(
                    "DATABASE_POOL_WAIT_MS",
                    DEFAULT_POOL_WAIT_MS,
                )?),
            },
            redis_url: Secret::new(or("REDIS_URL", DEFAULT_REDIS_URL)),
            http: HttpConfig {
                bind_addr,
                metrics_addr,
                app_url,
                cors_origins,
                introspection,
                expose_sql_stats,
                limits,
                trusted_proxies,
            },
            email: EmailConfig {
                smtp_url: get("SMTP_URL").map(Secret::new),
                outbox_dir: PathBuf::from(or("OUTBOX_DIR", DEFAULT_OUTBOX_DIR)),
                from: or("MAIL_FROM", DEFAULT_MAIL_FROM),
            },
            stripe,
            sessions: SessionPolicy {
                idle: chrono::Duration::days(
                    number("SESSION_IDLE_DAYS", DEFAULT_SESSION_IDLE_DAYS)?.min(3650) as i64,
                ),
                max: chrono::Duration::days(
                    number("SESSION_MAX_DAYS", DEFAULT_SESSION_MAX_DAYS)?.min(3650) as i64,
                ),
                token_cache: Duration::from_millis(token_cache_ms(get("TOKEN_CACHE_MS"))?),
            },
            workers: WorkerConfig {
                trial_scan_interval: Duration::from_secs(trial_scan_secs),
                billing_sync_interval: Duration::from_secs(billing_sync_secs),
                audit_retention: chrono::Duration::days(
                    // Two days at least: a stream cursor resumes for one, and its check
                    // takes every event after a day-old one to be held (src/live/model.rs).
                    number("AUDIT_RETENTION_DAYS", DEFAULT_AUDIT_RETENTION_DAYS as u64)?
                        .clamp(2, 36_500) as i64,
                ),
                queue: or("JOBS_QUEUE", DEFAULT_JOBS_QUEUE),
                name: worker_name,
                heartbeat: Duration::from_secs(heartbeat_secs),
                first_retry: Duration::from_millis(number(
                    "JOBS_FIRST_RETRY_MS",
                    linkai_jobs::queue::FIRST_RETRY.as_millis() as u64,
                )?),
            },
            workspace_restore: chrono::Duration::days(
                number("WORKSPACE_RESTORE_DAYS", DEFAULT_WORKSPACE_RESTORE_DAYS)?.clamp(1, 3650)
                    as i64,
            ),
            billing: BillingPolicy {
                past_due_grace: chrono::Duration::days(
                    number("PAST_DUE_GRACE_DAYS", DEFAULT_PAST_DUE_GRACE_DAYS)?.min(365) as i64,
                ),
                stripe_event_retention: chrono::Duration::days(
                    number(
                        "STRIPE_EVENT_RETENTION_DAYS",
                        DEFAULT_STRIPE_EVENT_RETENTION_DAYS,
                    )?
                    .clamp(4, 3650) as i64,
                ),
            },
            #[cfg(feature = "rls-proof")]
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

/// How long a deleted workspace can be restored unless `WORKSPACE_RESTORE_DAYS` says.
pub const DEFAULT_WORKSPACE_RESTORE_DAYS: u64 = 30;

/// How long audit and security events are kept unless `AUDIT_RETENTION_DAYS` says.
pub const DEFAULT_AUDIT_RETENTION_DAYS: i64 = 365;

#[cfg(test)]
mod tests {
    use super::*;

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
    fn an_empty_environment_gives_the_documented_defaults() {
        let config = Config::from_lookup(|_| None).expect("defaults parse");
        assert_eq!(config.database.url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(config.redis_url.expose(), DEFAULT_REDIS_URL);
        assert_eq!(config.http.bind_addr.to_string(), DEFAULT_BIND_ADDR);
        assert_eq!(config.http.app_url, DEFAULT_APP_URL);
        assert!(config.email.smtp_url.is_none());
        assert!(config.stripe.is_none());
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
            "APP_URL" => Some("https://app.example.com/".into()),
            "REDIS_URL" => Some("redis://:redis-pass-456@cache:6379".into()),
            _ => None,
        })
        .expect("parses");
        assert_eq!(config.http.app_url, "https://app.example.com");
        let printed = format!("{config:?}");
        assert!(!printed.contains("sk_test_123"));
        assert!(!printed.contains("redis-pass-456"));
    }

    #[test]
    fn the_old_service_token_list_is_refused_with_what_replaced_it() {
        let err = Config::from_lookup(|name| match name {
            "SERVICE_TOKENS" => Some("svc_old".into()),
            _ => None,
        })
        .expect_err("refused");
        assert!(
            err.to_string().contains("linkai service-token add"),
            "{err}"
        );
        assert!(!err.to_string().contains("svc_old"), "{err}");
    }

    #[test]
    fn limits_and_proxies_are_read_and_checked() {
        let config = Config::from_lookup(|name| match name {
            "HTTP_HEADER_TIMEOUT_SECS" => Some("3".into()),
            "DATABASE_POOL_WAIT_MS" => Some("250".into()),
            "TRUSTED_PROXIES" => Some("10.0.0.0/8, ::1".into()),
            _ => None,
        })
        .expect("parses");
        assert_eq!(config.http.limits.header_timeout, Duration::from_secs(3));
        assert_eq!(config.database.pool_wait, Duration::from_millis(250));
        let off = Config::from_lookup(|name| (name == "TOKEN_CACHE_MS").then(|| "0".into()));
        assert_eq!(off.expect("parses").sessions.token_cache, Duration::ZERO);
        let proxies = &config.http.trusted_proxies;
        assert!(proxies[0].contains("10.20.30.40".parse().expect("ip")));
        assert!(proxies[0].contains("::ffff:10.1.2.3".parse().expect("ip")));
        assert!(!proxies[0].contains("11.0.0.1".parse().expect("ip")));
        assert!(proxies[1].contains("::1".parse().expect("ip")));
        assert!(!proxies[1].contains("::2".parse().expect("ip")));
        for (name, bad) in [
            ("HTTP_REQUEST_TIMEOUT_SECS", "0"),
            ("HTTP_MAX_CONNECTIONS", "lots"),
            ("TRUSTED_PROXIES", "10.0.0.0/33"),
            ("TRUSTED_PROXIES", "proxy.local"),
            ("TOKEN_CACHE_MS", "1001"),
            ("TOKEN_CACHE_MS", "-1"),
        ] {
            let err = Config::from_lookup(|n| (n == name).then(|| bad.into())).expect_err(bad);
            assert!(err.to_string().contains(name), "{name}={bad}: {err}");
        }
    }

    #[test]
    fn a_bad_bind_address_is_a_clear_error() {
        let err = Config::from_lookup(|name| (name == "BIND_ADDR").then(|| "nope".into()))
            .expect_err("must fail");
        assert!(err.to_string().contains("BIND_ADDR"));
    }
}
