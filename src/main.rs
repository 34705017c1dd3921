//! `linkai`: `serve [--no-workers]`, `worker`, `migrate`, `schema`, `service-token`.

use std::process::ExitCode;

use anyhow::Context as _;
use linkai::config::Config;
use linkai::App;
use tracing_subscriber::EnvFilter;

/// GraphQL responses are many small allocations; mimalloc serves them faster than glibc's
/// malloc, which led the server's profile (see BENCHMARKS.md). Not in a build for heaptrack,
/// which sees only what goes through `malloc` (feature `system-allocator`).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: linkai <command>

commands:
  serve [--no-workers]  run the API (and, unless --no-workers, the background workers)
  worker                run only the background workers
  migrate               create the database if missing and apply pending migrations
  schema                print the GraphQL SDL
  service-token add NAME      add a service token (printed once) for the agent runtime
  service-token revoke NAME   revoke it: its next request fails
  service-token list          the tokens, with when each was added and revoked";

enum Command {
    Serve { workers: bool },
    Worker,
    Migrate,
    Schema,
    ServiceToken(TokenCommand),
}

enum TokenCommand {
    Add(String),
    Revoke(String),
    List,
}

fn parse(args: &[String]) -> Option<Command> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["serve"] => Some(Command::Serve { workers: true }),
        ["serve", "--no-workers"] => Some(Command::Serve { workers: false }),
        ["worker"] => Some(Command::Worker),
        ["migrate"] => Some(Command::Migrate),
        ["schema"] => Some(Command::Schema),
        ["service-token", "add", name] => {
            Some(Command::ServiceToken(TokenCommand::Add((*name).to_owned())))
        }
        ["service-token", "revoke", name] => Some(Command::ServiceToken(TokenCommand::Revoke(
            (*name).to_owned(),
        ))),
        ["service-token", "list"] => Some(Command::ServiceToken(TokenCommand::List)),
        _ => None,
    }
}

fn main() -> ExitCode {
    without_huge_pages();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = parse(&args) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if let Command::Schema = command {
        use std::io::Write as _;
        // The SDL is this command's output, not a log line.
        return match std::io::stdout().write_all(linkai::graphql::sdl().as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        };
    }
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let traces = {
        let _inside = runtime.enter();
        linkai::traces::from_env().map_err(|err| format!("{err:#}"))
    };
    let traces = match traces.and_then(|traces| init_logs(traces.as_ref()).map(|()| traces)) {
        Ok(traces) => traces,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(2);
        }
    };
    let finished = runtime.block_on(async {
        let finished = run(command).await;
        if let Some(traces) = traces {
            traces.flush().await;
        }
        finished
    });
    match finished {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Transparent huge pages off for this process. mimalloc asked for them on its segments
/// (`MADV_HUGEPAGE`; no longer, with its `no_thp` feature), and the kernel's khugepaged then
/// backed each sparse 2 MiB region with a huge page, filling its untouched pages with zeros:
/// with 10,000 idle sockets, 11 KiB a socket after two minutes against 8.6 without
/// (BENCHMARKS.md, thirty-seventh round). This covers hosts that give them unasked
/// (`/sys/kernel/mm/transparent_hugepage/enabled` at `always`). A kernel that refuses
/// changes nothing else, so its error is ignored.
fn without_huge_pages() {
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}

async fn run(command: Command) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    match command {
        Command::Schema => Ok(()),
        Command::Migrate => {
            let url = config.database.url.expose();
            linkai::db::create_database_if_missing(url).await?;
            linkai::db::migrate(url).await
        }
        Command::ServiceToken(command) => service_token(&config, command).await,
        Command::Serve { workers } => {
            let bind_addr = config.http.bind_addr;
            let deadline = config.http.limits.shutdown_timeout;
            let app = App::start(config).await?;
            let listener = tokio::net::TcpListener::bind(bind_addr)
                .await
                .with_context(|| format!("cannot listen on {bind_addr}"))?;
            // The address bound: with port 0, the one the system chose.
            let bound = listener.local_addr()?;
            tracing::info!("API on http://{bound}/graphql (GraphiQL in a browser)");
            let (stop, stopped) = tokio::sync::watch::channel(false);
            serve_metrics(&app, stop.subscribe()).await?;
            let background = workers.then(|| {
                let (config, db) = (app.config.clone(), app.db.clone());
                let wakes = app.live.publisher().cloned().expect("an app publishes");
                tokio::spawn(async move { linkai::worker::run(&config, db, wakes, stopped).await })
            });
            let mut http_stopped = stop.subscribe();
            let api = linkai::http::serve(listener, app, async move {
                let _ = http_stopped.wait_for(|stop| *stop).await;
            });
            let signal = async {
                linkai::http::shutdown_signal().await;
                let _ = stop.send(true);
            };
            let (served, ()) = tokio::join!(api, signal);
            served?;
            if let Some(background) = background {
                // The workers stop with the API; one stuck on a job does not hold the exit.
                match tokio::time::timeout(deadline, background).await {
                    Ok(done) => done??,
                    Err(_) => tracing::warn!("workers still busy at the shutdown deadline"),
                }
            }
            Ok(())
        }
        Command::Worker => {
            let app = App::start(config).await?;
            let (stop, stopped) = tokio::sync::watch::channel(false);
            serve_metrics(&app, stop.subscribe()).await?;
            let deadline = app.config.http.limits.shutdown_timeout;
            let (config, db) = (app.config.clone(), app.db.clone());
            let wakes = app.live.publisher().cloned().expect("an app publishes");
            let mut background =
                tokio::spawn(async move { linkai::worker::run(&config, db, wakes, stopped).await });
            tokio::select! {
                done = &mut background => return done?,
                () = linkai::http::shutdown_signal() => {}
            }
            let _ = stop.send(true);
            // A job or a round still running at the deadline is left to run again elsewhere:
            // handlers and rounds are written to run twice.
            match tokio::time::timeout(deadline, background).await {
                Ok(done) => done?,
                Err(_) => {
                    tracing::warn!("workers still busy at the shutdown deadline");
                    Ok(())
                }
            }
        }
    }
}

/// Serves `GET /metrics` on `METRICS_ADDR`, when set, until `stop` turns true. A taken
/// address fails the start, as `BIND_ADDR` does.
async fn serve_metrics(
    app: &App,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let Some(addr) = app.config.http.metrics_addr else {
        return Ok(());
    };
    let handle = linkai::metrics::install()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for metrics"))?;
    // The address bound: with port 0, the one the system chose.
    let bound = listener.local_addr()?;
    tracing::info!("metrics on http://{bound}/metrics");
    let stopped = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    let db = app.db.clone();
    tokio::spawn(async move {
        if let Err(err) = linkai::metrics::serve(listener, handle, db, stopped).await {
            tracing::error!("metrics stopped: {err}");
        }
    });
    Ok(())
}

/// Logs to stdout, filtered by `RUST_LOG`, as text or (`LOG_FORMAT=json`) one JSON object
/// per line with the spans it is in: `request` (its `request_id`) and `job` (its `kind` and
/// the `request_id` that queued it), and while traces are exported also `execute` (the
/// operation's type and name), `connection` and `serialize` (src/traces.rs).
fn init_logs(traces: Option<&linkai::traces::Traces>) -> Result<(), String> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match traces {
        // `RUST_LOG` filters everything, so what it leaves out costs nothing.
        None => tracing_subscriber::registry()
            .with(filter())
            .with(log_lines()?)
            .init(),
        // `RUST_LOG` filters the log lines; traces take the `info` spans whatever its level.
        Some(traces) => tracing_subscriber::registry()
            .with(
                traces
                    .layer()
                    .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
            )
            .with(log_lines()?.with_filter(filter()))
            .init(),
    }
    Ok(())
}

/// The log lines, as `LOG_FORMAT` asks.
fn log_lines<S>() -> Result<Box<dyn tracing_subscriber::Layer<S> + Send + Sync>, String>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    use tracing_subscriber::Layer as _;
    match std::env::var("LOG_FORMAT").as_deref() {
        Err(_) | Ok("text") => Ok(tracing_subscriber::fmt::layer().boxed()),
        Ok("json") => Ok(tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .boxed()),
        Ok(other) => Err(format!(
            "LOG_FORMAT: `{other}` is neither `text` nor `json`"
        )),
    }
}

/// On one core (a container's CPU set, `taskset`), the single-threaded scheduler: it has no
/// other worker to steal from or wake. On more, one worker per core.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let mut builder = if cores == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build()
}

/// `service-token`: as the database's owner (`DATABASE_URL`), since the application role
/// only reads the tokens. The new token is this command's output.
async fn service_token(config: &Config, command: TokenCommand) -> anyhow::Result<()> {
    use diesel_async::AsyncConnection as _;
    use linkai::auth::service_tokens;
    use std::io::Write as _;
    let url = config.database.url.expose();
    linkai::db::migrate(url).await?;
    let mut conn = diesel_async::AsyncPgConnection::establish(url).await?;
    let mut out = std::io::stdout();
    match command {
        TokenCommand::Add(name) => {
            let name = name.trim();
            anyhow::ensure!(
                (1..=100).contains(&name.chars().count()),
                "a service token's name is 1 to 100 characters"
            );
            let token = service_tokens::add(&mut conn, name)
                .await
                .with_context(|| format!("cannot add `{name}` (is the name taken?)"))?;
            writeln!(out, "{token}")?;
        }
        TokenCommand::Revoke(name) => {
            let name = name.trim();
            let revoked = service_tokens::revoke(&mut conn, name, chrono::Utc::now()).await?;
            anyhow::ensure!(revoked, "no live service token is named `{name}`");
        }
        TokenCommand::List => {
            for token in service_tokens::list(&mut conn).await? {
                let revoked = token
                    .revoked_at
                    .map_or_else(|| "live".to_owned(), |at| format!("revoked {at}"));
                writeln!(out, "{}\tadded {}\t{revoked}", token.name, token.created_at)?;
            }
        }
    }
    Ok(())
}
