//! `TestApp`: a database cloned from a migrated template, the app served on a free port,
//! typed helpers per operation and ready-made actors, so tests read like the spec.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use linkai::config::Config;
use linkai::App;
use serde_json::{json, Value};
use tokio::sync::OnceCell;

use crate::smtp::SmtpSink;
use uuid::Uuid;

pub const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const PASSWORD: &str = "correct horse battery";

fn database_url(name: &str) -> String {
    format!("postgres://postgres@127.0.0.1:5432/{name}")
}

async fn admin_execute(sql: &str) {
    let mut conn = AsyncPgConnection::establish(ADMIN_URL)
        .await
        .expect("PostgreSQL runs on 127.0.0.1:5432");
    diesel::sql_query(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
}

/// Name of a template database holding the current migrations, created once per run.
async fn template() -> &'static str {
    static TEMPLATE: OnceCell<String> = OnceCell::const_new();
    TEMPLATE
        .get_or_init(|| async {
            // `_s2`: the seed below is part of the template.
            let name = format!("linkai_tpl_{:016x}_s2", migrations_fingerprint());
            let mut conn = AsyncPgConnection::establish(ADMIN_URL)
                .await
                .expect("connects");
            // Several test processes may start at once: one builds, the others wait.
            diesel::sql_query("SELECT pg_advisory_lock(72700002)")
                .execute(&mut conn)
                .await
                .expect("lock");
            let exists = diesel::sql_query(format!(
                "SELECT 1 FROM pg_database WHERE datname = '{name}'"
            ))
            .execute(&mut conn)
            .await
            .expect("query")
                == 1;
            if !exists {
                let building = format!("{name}_building");
                admin_execute(&format!("DROP DATABASE IF EXISTS {building}")).await;
                admin_execute(&format!("CREATE DATABASE {building}")).await;
                linkai::db::migrate(&database_url(&building))
                    .await
                    .expect("migrations apply");
                // The agent runtime's token, as `linkai service-token add` stores it.
                let mut seeding = AsyncPgConnection::establish(&database_url(&building))
                    .await
                    .expect("connects");
                diesel::sql_query(format!(
                    "INSERT INTO service_tokens (id, name, token_hash) VALUES \
                     (gen_random_uuid(), '{}', sha256(convert_to('{}', 'UTF8')))",
                    crate::usage::SERVICE_NAME,
                    crate::usage::SERVICE_TOKEN
                ))
                .execute(&mut seeding)
                .await
                .expect("service token");
                drop(seeding);
                admin_execute(&format!("ALTER DATABASE {building} RENAME TO {name}")).await;
            }
            name
        })
        .await
}

fn migrations_fingerprint() -> u64 {
    let mut hasher = DefaultHasher::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut entries: Vec<_> = walk(&dir);
    entries.sort();
    for path in entries {
        path.hash(&mut hasher);
        std::fs::read(&path).expect("readable").hash(&mut hasher);
    }
    hasher.finish()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("migrations dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

pub const STRIPE_KEY: &str = "sk_test_linkai";
pub const WEBHOOK_SECRET: &str = "whsec_linkai_test";

/// The local Stripe fake: `LOCALSTRIPE_URL` (started by `.ci/run`), or one started from
/// `.venv/bin/localstripe` for this test process. Its plans are created once.
pub async fn stripe_fake() -> &'static str {
    static URL: OnceCell<String> = OnceCell::const_new();
    URL.get_or_init(|| async {
        let url = match std::env::var("LOCALSTRIPE_URL") {
            Ok(url) => url,
            Err(_) => {
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .expect("port")
                    .port();
                let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/localstripe");
                // Lives as long as this test process; `.ci/run` installs it.
                static FAKE: std::sync::OnceLock<std::process::Child> = std::sync::OnceLock::new();
                let child = std::process::Command::new(&bin)
                    .args(["--port", &port.to_string()])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap_or_else(|err| {
                        panic!("{} ({err}): run .ci/run once to install it", bin.display())
                    });
                let _ = FAKE.set(child);
                format!("http://127.0.0.1:{port}")
            }
        };
        let client = reqwest::Client::new();
        for _ in 0..100 {
            let up = client
                .get(format!("{url}/v1/plans"))
                .basic_auth(STRIPE_KEY, Some(""))
                .send()
                .await;
            if up.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        for (plan, cents) in [("starter", 4900), ("growth", 14900), ("scale", 49900)] {
            let product: Value = client
                .post(format!("{url}/v1/products"))
                .basic_auth(STRIPE_KEY, Some(""))
                .form(&[("name", plan), ("metadata[linkai_plan]", plan)])
                .send()
                .await
                .expect("product")
                .json()
                .await
                .expect("json");
            client
                .post(format!("{url}/v1/plans"))
                .basic_auth(STRIPE_KEY, Some(""))
                .form(&[
                    ("amount", cents.to_string()),
                    ("currency", "usd".into()),
                    ("interval", "month".into()),
                    ("product", product["id"].as_str().expect("id").to_owned()),
                ])
                .send()
                .await
                .expect("plan");
        }
        url
    })
    .await
}

/// A fresh database cloned from the template, dropped when this value is dropped.
pub struct TestDatabase {
    pub name: String,
}

impl TestDatabase {
    pub async fn new() -> Self {
        let template = template().await;
        let name = format!("linkai_it_{}", Uuid::new_v4().simple());
        admin_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}")).await;
        Self { name }
    }

    pub fn url(&self) -> String {
        database_url(&self.name)
    }

    pub async fn conn(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.url())
            .await
            .expect("connects")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop runs outside async; a short-lived runtime on its own thread does the work.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(admin_execute(&sql));
        })
        .join();
    }
}

fn rand_u16() -> u16 {
    (Uuid::new_v4().as_u128() & 0xffff) as u16
}

/// The app served on a free loopback port over its own fresh database.
pub struct TestApp {
    pub db: TestDatabase,
    pub base_url: String,
    /// The job queue's Redis key prefix, unique to this app.
    pub jobs_queue: String,
    /// Where the app's emails go.
    pub mail: SmtpSink,
    /// The server's password hasher, to see how many hashes ran at once.
    pub passwords: linkai::auth::password::Passwords,
    client: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
    stop_workers: tokio::sync::watch::Sender<bool>,
    /// The app's own pool, for tests that call the service's functions directly (or read
    /// what its connections prepared, tests/it/plans.rs).
    pub pool: linkai::db::Db,
    /// The app's Stripe client, if it has Stripe.
    pub stripe: Option<linkai::billing::stripe::StripeApi>,
    /// The app's own Stripe proxy, while it runs.
    _stripe_proxy: Option<crate::stripe_proxy::StripeProxy>,
}

/// Settings a test may change before the app starts.
pub struct TestAppBuilder {
    stripe: bool,
    /// Stripe's base URL when not the fake itself (a proxy in front of it).
    stripe_base: Option<String>,
    plan_key: Option<String>,
    workers: bool,
    unfiltered_kind: Option<String>,
    /// Where the app writes each statement's text, if anywhere.
    statement_log: Option<linkai::db::StatementLog>,
    redis_url: String,
    smtp_port: u16,
    /// Configuration set by the test, over the harness's own.
    env: Vec<(&'static str, String)>,
}

impl TestAppBuilder {
    /// Sets one more configuration variable (`CORS_ORIGINS`, `INTROSPECTION`, ...).
    pub fn with_env(mut self, name: &'static str, value: &str) -> Self {
        self.env.push((name, value.to_owned()));
        self
    }

    /// Looks every token up on every request (`TOKEN_CACHE_MS=0`), for tests that count a
    /// request's statements exactly: otherwise the count depends on whether the same token
    /// came less than a second before (tests/it/bearers.rs).
    pub fn without_token_cache(self) -> Self {
        self.with_env("TOKEN_CACHE_MS", "0")
    }

    /// Writes the text of every statement the app (and its workers) runs to `log`.
    pub fn logging_statements(mut self, log: linkai::db::StatementLog) -> Self {
        self.statement_log = Some(log);
        self
    }

    /// Runs the outbox relay and a job worker in-process, mailing to the test's SMTP server.
    pub fn with_workers(mut self) -> Self {
        self.workers = true;
        self
    }

    /// Bills through the local Stripe fake (see [`stripe_fake`]).
    pub fn with_stripe(mut self) -> Self {
        self.stripe = true;
        self
    }

    /// Stripe through `proxy` (in front of the fake), for the fault tests.
    pub fn with_stripe_proxy(mut self, proxy: &crate::stripe_proxy::StripeProxy) -> Self {
        self.stripe = true;
        self.stripe_base = Some(proxy.url.clone());
        self
    }

    /// Names our plans in Stripe product metadata under `key` instead of `linkai_plan`.
    pub fn with_plan_key(mut self, key: &str) -> Self {
        self.plan_key = Some(key.to_owned());
        self
    }

    /// Mails to this port; the test starts (or not) the SMTP server there itself.
    pub fn with_smtp_port(mut self, port: u16) -> Self {
        self.smtp_port = port;
        self
    }

    /// Switches off the application's own workspace filter for one resource kind, leaving
    /// only row-level security between tenants.
    pub fn without_app_filter_for(mut self, kind: &str) -> Self {
        self.unfiltered_kind = Some(kind.to_owned());
        self
    }

    pub fn with_redis(mut self, url: &str) -> Self {
        self.redis_url = url.to_owned();
        self
    }

    pub async fn start(self) -> TestApp {
        TestApp::start(self).await
    }
}

impl TestApp {
    pub async fn new() -> Self {
        Self::builder().start().await
    }

    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            workers: false,
            redis_url: "redis://127.0.0.1:6379".into(),
            smtp_port: 0,
            unfiltered_kind: None,
            statement_log: None,
            stripe: false,
            stripe_base: None,
            plan_key: None,
            env: Vec::new(),
        }
    }

    /// Environment for this app's database, queue and mail, for child processes too.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DATABASE_URL", self.db.url()),
            ("JOBS_QUEUE", self.jobs_queue.clone()),
            ("SMTP_URL", self.mail.url()),
            ("WORKER_HEARTBEAT_SECS", "1".into()),
        ]
    }

    async fn start(builder: TestAppBuilder) -> Self {
        // `RUST_LOG=error cargo test ...` shows the server's logs of a failing test.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let db = TestDatabase::new().await;
        let mail = SmtpSink::start().await;
        let smtp_url = match builder.smtp_port {
            0 => mail.url(),
            port => format!("smtp://127.0.0.1:{port}"),
        };
        let jobs_queue = format!("linkai-test:{}", Uuid::new_v4().simple());
        let url = db.url();
        let smtp = smtp_url;
        let redis = builder.redis_url.clone();
        let queue = jobs_queue.clone();
        // Stripe is always reached through a proxy that refuses any call not naming the
        // pinned API version: the test's own, or one of the app's.
        let own_proxy = match (builder.stripe, &builder.stripe_base) {
            (true, None) => Some(crate::stripe_proxy::StripeProxy::start(false).await),
            _ => None,
        };
        let stripe_base = match (builder.stripe, builder.stripe_base.clone()) {
            (true, Some(proxy)) => Some(proxy),
            (true, None) => own_proxy.as_ref().map(|proxy| proxy.url.clone()),
            (false, _) => None,
        };
        let config = Config::from_lookup(|name| {
            if let Some((_, value)) = builder.env.iter().find(|(set, _)| *set == name) {
                return Some(value.clone());
            }
            match name {
                "DATABASE_URL" => Some(url.clone()),
                "DATABASE_POOL_SIZE" => Some("20".into()),
                // The tests play the load balancer: see `TestApp::gql`.
                "TRUSTED_PROXIES" => Some("127.0.0.1".into()),
                "GRAPHQL_SQL_STATS" => Some("true".into()),
                "SMTP_URL" => Some(smtp.clone()),
                "REDIS_URL" => Some(redis.clone()),
                "JOBS_QUEUE" => Some(queue.clone()),
                "WORKER_HEARTBEAT_SECS" => Some("1".into()),
                "UNSAFE_UNFILTERED_KIND" => builder.unfiltered_kind.clone(),
                "STRIPE_SECRET_KEY" => stripe_base.as_ref().map(|_| STRIPE_KEY.to_owned()),
                "STRIPE_API_BASE" => stripe_base.clone(),
                "STRIPE_PLAN_METADATA_KEY" => builder.plan_key.clone(),
                "STRIPE_WEBHOOK_SECRET" => stripe_base.as_ref().map(|_| WEBHOOK_SECRET.to_owned()),
                _ => None,
            }
        })
        .expect("config");
        let mut app = App::connect(config).expect("app");
        if let Some(log) = builder.statement_log.clone() {
            app.db = app.db.logging_statements(log);
        }
        let (pool, stripe) = (app.db.clone(), app.stripe.as_deref().cloned());
        let (stop_workers, stopped) = tokio::sync::watch::channel(false);
        if builder.workers {
            let (config, db) = (app.config.clone(), app.db.clone());
            let wakes = app.live.publisher().cloned().expect("an app publishes");
            tokio::spawn(async move { linkai::worker::run(&config, db, wakes, stopped).await });
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("port");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let passwords = app.passwords.clone();
        let server = tokio::spawn(async move {
            linkai::http::serve(listener, app, std::future::pending())
                .await
                .expect("serves");
        });
        Self {
            db,
            base_url,
            jobs_queue,
            mail,
            passwords,
            // Idle connections are dropped well before the server's header timeout closes
            // them (10 s): a request sent on one as the server closes it fails with
            // `IncompleteMessage`, as a client that keeps them longer would see.
            client: reqwest::Client::builder()
                .pool_idle_timeout(std::time::Duration::from_secs(5))
                .build()
                .expect("client"),
            server,
            stop_workers,
            pool,
            stripe,
            _stripe_proxy: own_proxy,
        }
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Runs one GraphQL operation, as `token` when given. The app sits behind a trusted proxy
    /// (the test, on loopback) and each call comes from its own client address, so only the
    /// tests about per-address limits meet them ([`TestApp::gql_from`]).
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Gql {
        let client = format!("2001:db8:{:x}:{:x}::1", rand_u16(), rand_u16());
        self.gql_from(&client, token, query, variables).await
    }

    /// Runs one GraphQL operation from the client address `client`, as a trusted proxy
    /// forwards it.
    pub async fn gql_from(
        &self,
        client: &str,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> Gql {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.base_url))
            .header("x-forwarded-for", client)
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("JSON body");
        assert_spec_shape(&body);
        Gql { status, body }
    }

    /// Signs in as `email` with `password` from a client address of its own: the new
    /// session's token.
    pub async fn session(&self, email: &str, password: &str) -> String {
        let res = self
            .gql(
                None,
                "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }",
                json!({ "e": email, "p": password }),
            )
            .await;
        res.data("signIn")["token"]
            .as_str()
            .expect("a session")
            .to_owned()
    }

    /// Makes `actor` an account from before sign-ups were confirmed by email: its address
    /// unproven, for the tests of what such accounts may do and how they are proven.
    pub async fn unprove_email(&self, actor: &Actor) {
        let id = Uuid::parse_str(&actor.id).expect("user id");
        diesel::sql_query(format!(
            "UPDATE users SET email_verified_at = NULL WHERE id = '{id}'"
        ))
        .execute(&mut self.db.conn().await)
        .await
        .expect("unverified");
    }

    /// Signs up `name` (email derived from it) and returns the new account: `signUp`, then
    /// `completeSignUp` with the link [`TestApp::sign_up_link`] stands in for.
    /// Asks to sign up `email` as `name`: the sign-up email goes out through the outbox.
    pub async fn request_sign_up(&self, email: &str, name: &str) -> Gql {
        self.gql(
            None,
            "mutation($email: String!, $name: String!, $password: String!) {
               signUp(email: $email, password: $password, name: $name) { email session { token } }
             }",
            json!({ "email": email, "name": name, "password": PASSWORD }),
        )
        .await
    }

    pub async fn sign_up(&self, name: &str) -> Actor {
        let email = format!(
            "{}-{}@example.com",
            name.to_lowercase(),
            Uuid::new_v4().simple()
        );
        let res = self.request_sign_up(&email, name).await;
        assert_eq!(res.data("signUp")["session"], Value::Null);
        let link = self.sign_up_link(&email).await;
        let res = self
            .gql(
                None,
                "mutation($t: String!) {
                   completeSignUp(token: $t) { token user { id activeWorkspace { id } } }
                 }",
                json!({ "t": link }),
            )
            .await;
        let payload = res.data("completeSignUp");
        Actor {
            email,
            token: payload["token"].as_str().expect("token").to_owned(),
            id: payload["user"]["id"].as_str().expect("id").to_owned(),
            own_workspace: payload["user"]["activeWorkspace"]["id"]
                .as_str()
                .expect("first workspace")
                .to_owned(),
        }
    }

    /// The token of the link that finishes `email`'s latest sign-up, as its email would
    /// carry it, for tests whose subject is not that email (account_emails.rs follows the
    /// real one). Minted here and stored as the worker stores it, the request marked sent so
    /// a running worker sends nothing more (a link it minted meanwhile works too).
    pub async fn sign_up_link(&self, email: &str) -> String {
        let minted = linkai::auth::token::mint(linkai::auth::token::TokenKind::AccountLink);
        let hash: String = minted.hash.iter().map(|b| format!("{b:02x}")).collect();
        let updated = diesel::sql_query(format!(
            "UPDATE sign_up_requests
             SET token_hash = decode('{hash}', 'hex'), claimed_at = now(), sent_at = now()
             WHERE id = (SELECT id FROM sign_up_requests WHERE lower(email) = lower('{}')
                         ORDER BY requested_at DESC LIMIT 1)",
            email.replace('\'', "''")
        ))
        .execute(&mut self.db.conn().await)
        .await
        .expect("sign-up link");
        assert_eq!(updated, 1, "no sign-up for {email}");
        minted.plaintext
    }

    /// Creates a workspace named `name` as `actor` (`createWorkspace`); returns its id.
    pub async fn create_workspace(&self, actor: &Actor, name: &str) -> String {
        self.gql(
            actor.token(),
            "mutation($n: String!) { createWorkspace(name: $n) { id } }",
            json!({ "n": name }),
        )
        .await
        .data("createWorkspace")["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    /// Adds `actor` to `workspace_id` with `role` directly in the database (invitations
    /// are tested on their own).
    pub async fn add_member(&self, workspace_id: &str, actor: &Actor, role: &str) {
        let mut conn = self.db.conn().await;
        diesel::sql_query(format!(
            "INSERT INTO memberships (workspace_id, user_id, role, joined_at)
             VALUES ('{workspace_id}', '{}', '{role}', clock_timestamp())",
            actor.id
        ))
        .execute(&mut conn)
        .await
        .expect("membership inserted");
    }

    /// Invites `email` to `workspace_id` as `inviter`; returns the invitation id.
    pub async fn invite(
        &self,
        inviter: &Actor,
        workspace_id: &str,
        email: &str,
        role: &str,
    ) -> String {
        let res = self
            .gql(
                inviter.token(),
                "mutation($ws: ID!, $email: String!, $role: Role!) {
                   inviteMember(workspaceId: $ws, email: $email, role: $role) { id }
                 }",
                json!({ "ws": workspace_id, "email": email, "role": role }),
            )
            .await;
        res.data("inviteMember")["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    /// A workspace with one actor per role, plus a stranger who belongs elsewhere.
    pub async fn team(&self) -> Team {
        let owner = self.sign_up("Owner").await;
        let admin = self.sign_up("Admin").await;
        let member = self.sign_up("Member").await;
        let viewer = self.sign_up("Viewer").await;
        let stranger = self.sign_up("Stranger").await;
        let workspace = owner.own_workspace.clone();
        self.add_member(&workspace, &admin, "admin").await;
        self.add_member(&workspace, &member, "member").await;
        self.add_member(&workspace, &viewer, "viewer").await;
        Team {
            workspace,
            owner,
            admin,
            member,
            viewer,
            stranger,
        }
    }

    /// Roles in `workspace_id` straight from the database, by user id.
    pub async fn roles_in(&self, workspace_id: &str) -> Vec<(String, String)> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            user_id: String,
            #[diesel(sql_type = diesel::sql_types::Text)]
            role: String,
        }
        let mut conn = self.db.conn().await;
        let rows: Vec<Row> = diesel::sql_query(format!(
            "SELECT user_id::text, role FROM memberships WHERE workspace_id = '{workspace_id}' ORDER BY user_id"
        ))
        .load(&mut conn)
        .await
        .expect("roles");
        rows.into_iter().map(|r| (r.user_id, r.role)).collect()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.stop_workers.send(true);
        self.server.abort();
    }
}

#[derive(Clone, Debug)]
pub struct Actor {
    pub email: String,
    pub token: String,
    pub id: String,
    /// The workspace created at sign-up.
    pub own_workspace: String,
}

impl Actor {
    pub fn token(&self) -> Option<&str> {
        Some(&self.token)
    }
}

pub struct Team {
    pub workspace: String,
    pub owner: Actor,
    pub admin: Actor,
    pub member: Actor,
    pub viewer: Actor,
    pub stranger: Actor,
}

/// What the GraphQL spec says of every response, checked on each one the suite receives:
/// a request error (errors without a path) has no `data`; a field error's path leads, key by
/// key, to a `null` (the failed field, or the nearest nullable ancestor it propagated to),
/// never to a missing key.
#[track_caller]
pub fn assert_spec_shape(body: &Value) {
    let Some(errors) = body.get("errors").and_then(Value::as_array) else {
        assert!(
            body.get("data").is_some(),
            "no data and no errors: {body:#}"
        );
        return;
    };
    assert!(!errors.is_empty(), "an empty `errors` list: {body:#}");
    let field_errors: Vec<&Vec<Value>> = errors
        .iter()
        .filter_map(|err| err.get("path").and_then(Value::as_array))
        .collect();
    if field_errors.is_empty() {
        assert!(
            body.get("data").is_none(),
            "a request error must not carry `data`: {body:#}"
        );
        return;
    }
    for path in field_errors {
        let mut node = body.get("data").expect("field errors come with `data`");
        for segment in path {
            if node.is_null() {
                break;
            }
            let next = match segment {
                Value::String(key) => node.get(key.as_str()),
                Value::Number(index) => node.get(index.as_u64().expect("index") as usize),
                other => panic!("path segment {other}"),
            };
            node = next.unwrap_or_else(|| {
                panic!("error path {path:?} leads to a missing key, not null: {body:#}")
            });
        }
        assert!(
            node.is_null(),
            "error path {path:?} does not end in null: {body:#}"
        );
    }
}

/// A GraphQL response.
#[derive(Debug)]
pub struct Gql {
    pub status: u16,
    pub body: Value,
}

impl Gql {
    /// The field's data, failing the test with the errors if there are any.
    #[track_caller]
    pub fn data(&self, field: &str) -> &Value {
        assert!(
            self.body.get("errors").is_none(),
            "unexpected errors: {:#}",
            self.body["errors"]
        );
        assert_eq!(self.status, 200);
        &self.body["data"][field]
    }

    /// The `extensions.code` of the first error, if any.
    pub fn code(&self) -> Option<&str> {
        self.body["errors"][0]["extensions"]["code"].as_str()
    }

    /// Asserts the operation failed with `code`.
    #[track_caller]
    pub fn assert_code(&self, code: &str) {
        assert_eq!(self.code(), Some(code), "response: {:#}", self.body);
    }

    pub fn message(&self) -> &str {
        self.body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
    }

    /// The answer a client gets: the body without the test-only statement counts.
    pub fn answer(&self) -> Value {
        let mut body = self.body.clone();
        if let Some(body) = body.as_object_mut() {
            body.remove("extensions");
        }
        body
    }

    pub fn sql_statements(&self) -> u64 {
        self.body["extensions"]["sqlStatements"]
            .as_u64()
            .expect("sqlStatements reported")
    }

    /// Statements that set a connection's row-level-security context (at most one per
    /// checkout; none when the pooled connection had that context already).
    pub fn sql_context_statements(&self) -> u64 {
        self.body["extensions"]["sqlContextStatements"]
            .as_u64()
            .expect("sqlContextStatements reported")
    }
}

/// A GraphQL request to the server at `base` (any replica or process, not only a
/// [`TestApp`]'s), with `token` if any; the answer's `data`, which must come without errors.
pub async fn gql_at(base: &str, token: Option<&str>, query: &str, variables: Value) -> Value {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let body: Value = request
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    assert!(body["errors"].is_null(), "{query}: {body}");
    body["data"].clone()
}
