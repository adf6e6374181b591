//! `wharf plugins verify <file.wasm>`: the conformance suite against a
//! third-party component, with the grants given on the command line.

use super::{exit, print_json};
use clap::Args;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use wharf::config::{BackendConfig, ConfigValue, DirGrantConfig, GrantsConfig, LimitsConfig};
use wharf::conformance::{self, Outcome, SuiteOptions};
use wharf::{Adapter, Error, ErrorKind, Host, WasmAdapter};

/// Options of `wharf plugins verify`.
#[derive(Args)]
pub(crate) struct Verify {
    /// The component to check.
    file: PathBuf,
    /// A value for the adapter's `open` (repeatable): `-c root=/data`. With
    /// `--backend NAME`, added to (or replacing) that backend's own values.
    // Not named `config`: that id is the global `--config`'s.
    #[arg(long = "config-value", short = 'c', value_name = "KEY=VALUE", value_parser = key_value)]
    values: Vec<(String, String)>,
    /// A directory to grant (repeatable): `HOST:GUEST`. With no grant at all,
    /// a fresh scratch directory is granted at `/data`.
    #[arg(long = "dir", value_name = "HOST:GUEST")]
    dirs: Vec<String>,
    /// An HTTP destination to allow (repeatable): `http://127.0.0.1:9000`.
    #[arg(long = "http", value_name = "URL")]
    http: Vec<String>,
    /// A TCP address to allow (repeatable): `127.0.0.1:6379`.
    #[arg(long = "tcp", value_name = "HOST:PORT")]
    tcp: Vec<String>,
    /// Size of the large streamed round trip.
    #[arg(long, default_value = "1GiB")]
    large_object: String,
    /// Run only the cases whose name contains this.
    #[arg(long)]
    only: Option<String>,
    /// Per-call memory limit of the adapter, e.g. `512MiB`.
    #[arg(long)]
    memory: Option<String>,
    /// Per-call wall-clock limit of the adapter, e.g. `300s`.
    #[arg(long)]
    call_timeout: Option<String>,
    /// Per-call CPU budget of the adapter, e.g. `60s`.
    #[arg(long)]
    cpu_time: Option<String>,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

#[derive(Serialize)]
struct Row {
    case: &'static str,
    outcome: &'static str,
    reason: String,
    millis: f64,
}

impl Verify {
    /// Verifies the component; with `backend` (`--backend NAME`), under
    /// that configured backend's config values, grants and limits (its
    /// layers are left out: the component itself is checked), to which the
    /// flags add.
    pub async fn execute(self, host: &Host, backend: Option<&str>, json: bool) -> wharf::Result<u8> {
        let bytes =
            std::fs::read(&self.file).map_err(|e| Error::io(format!("reading `{}`", self.file.display()), e))?;
        let name = self
            .file
            .file_stem()
            .map(|s| s.to_string_lossy().replace(['-', '.'], "_"))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "plugin".into());
        let plugin = host
            .runtime()
            .load_plugin(&name, &bytes, &self.file.display().to_string())?;
        let configured = match backend {
            Some(b) => Some(host.config().backends.get(b).cloned().ok_or_else(|| {
                Error::new(
                    ErrorKind::Config,
                    format!(
                        "--backend `{b}` is not configured (configured: {})",
                        host.backend_names().join(", ")
                    ),
                )
            })?),
            None => None,
        };
        // The file's directory grants are relative to the file; the flags'
        // to the working directory.
        let configured = configured.map(|mut b| {
            for d in &mut b.grants.dirs {
                if d.host.is_relative() {
                    d.host = host.base().join(&d.host);
                }
            }
            b
        });
        let (backend, scratch) = self.backend_config(configured)?;
        let cwd = std::env::current_dir().map_err(|e| Error::io("the current directory", e))?;
        let spec = backend.resolve(&name, &cwd)?;
        let adapter: Arc<dyn Adapter> = Arc::new(WasmAdapter::new(host.runtime(), &plugin, spec).await?);
        let large_object = wharf::config::parse_size(&self.large_object)
            .map_err(|why| Error::new(ErrorKind::Config, format!("--large-object: {why}")))?;
        if !json {
            eprintln!(
                "verifying `{}` ({} bytes, sha256 {}){}",
                self.file.display(),
                plugin.size(),
                &plugin.sha256()[..16],
                scratch
                    .as_ref()
                    .map(|s| format!(", scratch directory {} granted at /data", s.path().display()))
                    .unwrap_or_default()
            );
        }
        let report = conformance::run(
            adapter,
            SuiteOptions {
                large_object,
                filter: self.only.clone(),
                ..Default::default()
            },
        )
        .await?;
        if json {
            let rows: Vec<Row> = report
                .cases
                .iter()
                .map(|c| {
                    let (outcome, reason) = match &c.outcome {
                        Outcome::Passed => ("pass", String::new()),
                        Outcome::Failed(r) => ("fail", r.clone()),
                        Outcome::NotApplicable(r) => ("n/a", (*r).to_string()),
                    };
                    Row {
                        case: c.name,
                        outcome,
                        reason,
                        millis: c.elapsed.as_secs_f64() * 1e3,
                    }
                })
                .collect();
            print_json(&rows);
        } else {
            println!("{report}");
        }
        Ok(if report.failures().is_empty() {
            exit::OK
        } else {
            exit::VERIFY_FAILED
        })
    }

    fn backend_config(
        &self,
        configured: Option<BackendConfig>,
    ) -> wharf::Result<(BackendConfig, Option<tempfile::TempDir>)> {
        let base = configured.unwrap_or_default();
        let mut dirs = base.grants.dirs.clone();
        for d in &self.dirs {
            let (host, guest) = d
                .rsplit_once(':')
                .ok_or_else(|| Error::new(ErrorKind::Config, format!("--dir `{d}` is not HOST:GUEST")))?;
            dirs.push(DirGrantConfig {
                host: PathBuf::from(host),
                guest: guest.to_string(),
                read_only: false,
                create: false,
            });
        }
        let http: Vec<String> = base.grants.http.iter().chain(&self.http).cloned().collect();
        let tcp: Vec<String> = base.grants.tcp.iter().chain(&self.tcp).cloned().collect();
        let tls = base.grants.tls.clone();
        let scratch = if dirs.is_empty() && http.is_empty() && tcp.is_empty() && tls.is_empty() {
            // A fresh directory with a random name, 0700, created here (never
            // one that already exists, which someone else could have planted);
            // removed when verification ends.
            let dir = tempfile::Builder::new()
                .prefix("wharf-verify-")
                .tempdir()
                .map_err(|e| Error::io("creating a scratch directory", e))?;
            dirs.push(DirGrantConfig {
                host: dir.path().to_path_buf(),
                guest: "/data".into(),
                read_only: false,
                create: false,
            });
            Some(dir)
        } else {
            None
        };
        let mut config: BTreeMap<String, ConfigValue> = base.config.clone();
        config.extend(
            self.values
                .iter()
                .map(|(k, v)| (k.clone(), ConfigValue::String(v.clone()))),
        );
        let backend = BackendConfig {
            plugin: None,
            sha256: None,
            config,
            grants: GrantsConfig { dirs, http, tcp, tls },
            limits: LimitsConfig {
                memory: self.memory.clone().or(base.limits.memory.clone()),
                cpu_time: self.cpu_time.clone().or(base.limits.cpu_time.clone()),
                call_timeout: self.call_timeout.clone().or(base.limits.call_timeout.clone()),
            },
            pool: base.pool.clone(),
            layers: Vec::new(),
            ..Default::default()
        };
        Ok((backend, scratch))
    }
}
