//! `wharf`: put, get, list, inspect and delete models on any backend.

mod cat;
mod cp;
mod gc;
mod get;
mod health;
mod ls;
mod metrics;
mod plugins;
mod put;
mod registry;
mod rm;
mod stat;
mod trust;
mod verify;

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use wharf::{Config, ErrorKind, Host};

/// Exit codes, also listed in the README.
pub(crate) mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const NOT_FOUND: u8 = 3;
    pub const CONFLICT: u8 = 4;
    pub const INTEGRITY: u8 = 5;
    pub const CONFIG: u8 = 6;
    pub const UNHEALTHY: u8 = 7;
    pub const DENIED: u8 = 8;
    pub const VERIFY_FAILED: u8 = 9;
}

#[derive(Parser)]
#[command(
    name = "wharf",
    version,
    about = "Store ML model artifacts in any storage through sandboxed Wasm adapters"
)]
struct Cli {
    /// Config file; default `./wharf.toml` if present and approved with
    /// `wharf config trust`, else the built-in local_filesystem backend
    /// storing into `$WHARF_DATA_DIR` or `./wharf-data`.
    #[arg(long, global = true, env = "WHARF_CONFIG")]
    config: Option<PathBuf>,
    /// Backend to use: a configured name, or a URL (`s3://bucket/prefix`,
    /// `gs://`, `az://`, `abfss://`, `hf://`, `mlflow-artifacts:`,
    /// `redis://`, `postgresql://`, `file:///dir`) with credentials from
    /// the environment; default: the config's `default_backend`.
    #[arg(long, short, global = true)]
    backend: Option<String>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Save a model file or folder; prints its ModelStorageInfo.
    Put(put::Put),
    /// Load a model back, verified by sha256.
    Get(get::Get),
    /// Write one object (or a byte range of it) to stdout.
    Cat(cat::Cat),
    /// Copy one object between a local file and a backend.
    Cp(cp::Cp),
    /// List objects under a prefix.
    Ls(ls::Ls),
    /// Show a model's ModelStorageInfo (or an object's metadata).
    Stat(stat::Stat),
    /// Delete a model version (a storage path or MODEL@N / @ALIAS).
    Rm(rm::Rm),
    /// List the models with versions.
    Models(registry::Models),
    /// List a model's versions (number, created_at, size, format, aliases).
    Versions(registry::Versions),
    /// Set, remove and list a model's aliases.
    #[command(subcommand)]
    Alias(registry::Alias),
    /// Remove what crashed saves and abandoned transactions left behind.
    Gc(gc::Gc),
    /// Check every configured backend.
    Health(health::Health),
    /// Print the storage operations of all commands so far (Prometheus text).
    Metrics(metrics::MetricsCmd),
    /// List and inspect adapter plugins.
    #[command(subcommand)]
    Plugins(plugins::Plugins),
    /// Show the effective configuration; approve a `./wharf.toml` for
    /// implicit use.
    #[command(subcommand, name = "config")]
    ConfigFile(trust::ConfigCmd),
}

/// What every subcommand gets.
pub(crate) struct Ctx {
    pub host: Host,
    pub backend: String,
    /// `--backend`, when given.
    pub explicit_backend: Option<String>,
    pub json: bool,
}

impl Ctx {
    pub async fn service(&self) -> wharf::Result<wharf::StorageService> {
        self.host.service(&self.backend).await
    }
}

pub(crate) fn main() -> ExitCode {
    restore_sigpipe();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wharf: cannot start the async runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // Messages carry text from storage and adapters: no escapes.
            eprintln!("wharf: {}", printable(&e.to_string()));
            ExitCode::from(code_of(&e))
        }
    }
}

/// `s` with control characters (terminal escapes, carriage returns...)
/// shown as `\u{..}` escapes, so text from storage cannot drive the terminal.
pub(crate) fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return s.into();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// Rust ignores SIGPIPE, so printing into a closed pipe (`wharf ls | head`)
/// panics; a command-line tool should end quietly instead.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists;
    // resetting a signal to its default disposition has no other effect.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn code_of(e: &wharf::Error) -> u8 {
    match e.kind() {
        ErrorKind::NotFound => exit::NOT_FOUND,
        ErrorKind::AlreadyExists | ErrorKind::PreconditionFailed => exit::CONFLICT,
        ErrorKind::Integrity => exit::INTEGRITY,
        ErrorKind::Config => exit::CONFIG,
        // The adapter's `open` judged the backend's config invalid.
        ErrorKind::Invalid if e.operation() == Some("open") => exit::CONFIG,
        ErrorKind::Denied => exit::DENIED,
        _ => exit::ERROR,
    }
}

async fn run(cli: Cli) -> wharf::Result<u8> {
    let command = match cli.command {
        Command::ConfigFile(c) => return c.execute(cli.json, cli.config.as_deref(), cli.backend.as_deref()),
        c => c,
    };
    let (mut config, base) = Config::discover(cli.config.as_deref())?;
    // A URL names a backend of its own, resolved from the environment.
    let explicit = cli.backend.map(|b| config.backend_arg(&b)).transpose()?;
    let backend = explicit.clone().unwrap_or_else(|| config.default_backend().to_string());
    let host = Host::new(config, &base)?;
    let ctx = Ctx {
        host,
        backend,
        explicit_backend: explicit,
        json: cli.json,
    };
    let result = match command {
        Command::Put(c) => c.execute(&ctx).await,
        Command::Get(c) => c.execute(&ctx).await,
        Command::Cat(c) => c.execute(&ctx).await,
        Command::Cp(c) => c.execute(&ctx).await,
        Command::Ls(c) => c.execute(&ctx).await,
        Command::Stat(c) => c.execute(&ctx).await,
        Command::Rm(c) => c.execute(&ctx).await,
        Command::Models(c) => c.execute(&ctx).await,
        Command::Versions(c) => c.execute(&ctx).await,
        Command::Alias(c) => c.execute(&ctx).await,
        Command::Gc(c) => c.execute(&ctx).await,
        Command::Health(c) => c.execute(&ctx).await,
        Command::Metrics(c) => return c.execute(&ctx).await,
        Command::Plugins(c) => c.execute(&ctx).await,
        Command::ConfigFile(_) => unreachable!("handled before the host is built"),
    };
    // Failed commands count too; not being able to count is only a warning.
    let done = ctx.host.metrics().snapshot();
    if !done.is_empty()
        && let Err(e) = metrics::record(&metrics::metrics_file(&ctx.host), &done)
    {
        eprintln!("wharf: warning: metrics not recorded: {e}");
    }
    result
}

/// Runs `transfer` on `service` with a progress bar on stderr for
/// transfers over 8 MiB when stderr is a terminal, cleared at the end.
pub(crate) async fn with_bar<T>(
    total: u64,
    service: wharf::StorageService,
    transfer: impl AsyncFnOnce(wharf::StorageService) -> T,
) -> T {
    if total < (8 << 20) || !std::io::stderr().is_terminal() {
        return transfer(service).await;
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("a valid template"),
    );
    let b = bar.clone();
    let out = transfer(service.with_progress(std::sync::Arc::new(move |n| b.set_position(n)))).await;
    bar.finish_and_clear();
    out
}

pub(crate) fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).expect("serializable"));
}
