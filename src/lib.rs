//! Link AI Workspaces: the multi-tenant backend of workspaces, members, roles and billing.
//!
//! Features live in their own folders (`auth`, `workspaces`, `members`, `billing`); the thin
//! shared core is `config`, `db`, `error`, `graphql` (assembly), `http`, `metrics`, `roles` and
//! `text`.

// The root `Mutation` merges the resource kinds' merged mutations: the compiler's layout of
// the nested resolver futures needs more than the default 128 levels.
#![recursion_limit = "256"]

pub mod audit;
pub mod auth;
pub mod billing;
pub mod config;
pub mod conversations;
pub mod db;
pub mod error;
pub mod exports;
pub mod graphql;
pub mod http;
pub mod invitations;
pub mod jobs;
pub mod live;
pub mod members;
pub mod metrics;
pub mod outbox;
pub mod resources;
pub mod roles;
pub mod schedule;
pub mod schema;
pub mod text;
pub mod throttle;
pub mod traces;
pub mod usage;
pub mod worker;
pub mod workspaces;

use std::sync::Arc;

use config::Config;
use db::Db;
use graphql::AppSchema;

/// Everything a request handler needs. Handlers share one behind an `Arc` (`http::router`),
/// so it is not `Clone`: a copy per request cost a reference count per field.
pub struct App {
    /// Stripe, when `STRIPE_SECRET_KEY` is set.
    pub stripe: Option<Arc<billing::stripe::StripeApi>>,
    pub config: Arc<Config>,
    pub db: Db,
    pub schema: AppSchema,
    /// The schema for documents `schema` validated before (src/graphql/documents.rs).
    pub validated_schema: AppSchema,
    /// The schema's output types, to place `null`s where fields failed.
    pub output_types: graphql::nulls::OutputTypes,
    /// Parsed documents of the queries clients send, shared by all requests.
    pub documents: graphql::documents::DocumentCache,
    /// This server's password hasher (one hash per core at a time).
    pub passwords: auth::password::Passwords,
    /// This server's subscribers, the connections that wake them, and what publishes this
    /// process's wakes (src/live/mod.rs).
    pub live: live::Hub,
    /// Live tokens this server looked up in the last second (src/auth/bearers.rs).
    pub bearers: auth::bearers::Bearers,
}

impl App {
    /// Creates the database if missing, applies migrations and opens the pool.
    pub async fn start(config: Config) -> anyhow::Result<App> {
        let url = config.database.url.expose().to_owned();
        db::create_database_if_missing(&url).await?;
        db::migrate(&url).await?;
        Self::connect(config)
    }

    /// Opens the pool without touching the schema (for already-migrated databases).
    pub fn connect(config: Config) -> anyhow::Result<App> {
        let pool = db::pool(&config.database)?;
        billing::grace::configure(config.billing.past_due_grace);
        workspaces::lifecycle::configure(config.workspace_restore);
        let stripe = config
            .stripe
            .as_ref()
            .map(billing::stripe::StripeApi::new)
            .transpose()?
            .map(Arc::new);
        let introspection = config.http.introspection;
        let schema = graphql::schema(introspection);
        let wakes = live::wakes::Publisher::start(
            config.redis_url.expose().to_owned(),
            live::wakes::channel(&config.workers.queue),
        );
        let bearers = auth::bearers::Bearers::new(config.sessions.token_cache);
        Ok(App {
            stripe,
            output_types: graphql::nulls::OutputTypes::from_sdl(&schema.sdl()),
            config: Arc::new(config),
            db: Db::new(pool),
            schema,
            validated_schema: graphql::validated_schema(introspection),
            documents: Default::default(),
            passwords: Default::default(),
            live: live::Hub::new(wakes, bearers.clone()),
            bearers,
        })
    }
}
