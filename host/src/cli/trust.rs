//! `wharf config show|trust|untrust`: the effective configuration, and
//! approving a `./wharf.toml` for implicit use (the rules are
//! [`wharf::trust`]'s).

use super::exit;
use clap::Subcommand;
use std::path::{Path, PathBuf};
use wharf::config::{BackendConfig, Config, ConfigValue};

/// `wharf config ...`.
#[derive(Subcommand)]
pub(crate) enum ConfigCmd {
    /// Print the effective backends (those of `--backend` if given, a URL
    /// included): plugin, config values with where each came from
    /// (secrets redacted), grants and layers.
    Show,
    /// Approve a `wharf.toml` (default: `./wharf.toml`) for use when it is
    /// found in the working directory. Review it first: it decides where
    /// credentials are sent. An edit to the file needs a new approval.
    Trust {
        /// The file to approve.
        #[arg(default_value = "wharf.toml")]
        file: PathBuf,
    },
    /// Withdraw the approval of a `wharf.toml`.
    Untrust {
        /// The file.
        #[arg(default_value = "wharf.toml")]
        file: PathBuf,
    },
}

impl ConfigCmd {
    /// Runs without a host: approving must work while the file is refused.
    pub fn execute(self, json: bool, config: Option<&Path>, backend: Option<&str>) -> wharf::Result<u8> {
        let (done, add) = match self {
            ConfigCmd::Show => return show(json, config, backend),
            ConfigCmd::Trust { file } => (wharf::trust::approve(&file)?, true),
            ConfigCmd::Untrust { file } => (wharf::trust::withdraw(&file)?, false),
        };
        let (abs, digest) = (done.file.display(), &done.sha256);
        if json {
            super::print_json(&serde_json::json!({ "file": done.file, "sha256": digest, "trusted": add }));
        } else if add {
            eprintln!("trusted `{abs}` (sha256 {digest})");
        } else {
            eprintln!("no longer trusted: `{abs}`");
        }
        Ok(exit::OK)
    }
}

/// `wharf config show`.
fn show(json: bool, config: Option<&Path>, backend: Option<&str>) -> wharf::Result<u8> {
    let (mut cfg, base) = Config::discover(config)?;
    let only = backend.map(|b| cfg.backend_arg(b)).transpose()?;
    if let Some(b) = &only
        && !cfg.backends.contains_key(b)
    {
        return Err(wharf::Error::new(
            wharf::ErrorKind::Config,
            format!("unknown backend `{b}`"),
        ));
    }
    let shown: Vec<(&String, &BackendConfig)> = cfg
        .backends
        .iter()
        .filter(|(n, _)| only.as_ref().is_none_or(|o| o == *n))
        .collect();
    let items: Vec<serde_json::Value> = shown.iter().map(|(n, b)| describe(n, b, &base)).collect();
    if json {
        super::print_json(&serde_json::json!({
            "default_backend": cfg.default_backend(),
            "backends": items,
        }));
        return Ok(exit::OK);
    }
    println!("default backend: {}", cfg.default_backend());
    for item in &items {
        println!();
        println!(
            "[{}] plugin {}",
            item["name"].as_str().unwrap_or(""),
            item["plugin"].as_str().unwrap_or("")
        );
        if let Some(u) = item["url"].as_str() {
            println!("  url: {u}");
        }
        for c in item["config"].as_array().into_iter().flatten() {
            let source = c["source"].as_str().map(|s| format!("  ({s})")).unwrap_or_default();
            println!(
                "  {} = {}{source}",
                c["key"].as_str().unwrap_or(""),
                c["value"].as_str().unwrap_or("")
            );
        }
        if let Some(s) = item["credentials"].as_str() {
            println!("  credentials: {s}");
        }
        for e in item["credential_endpoints"].as_array().into_iter().flatten() {
            println!(
                "  credentials from (the host, not the adapter): {}",
                e.as_str().unwrap_or("")
            );
        }
        let list = |k: &str| -> Vec<String> {
            item["grants"][k]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        };
        for (k, label) in [("http", "http"), ("tcp", "tcp"), ("tls", "tls"), ("dirs", "dir")] {
            for g in list(k) {
                println!("  grant {label}: {g}");
            }
        }
        let layers: Vec<&str> = item["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        if !layers.is_empty() {
            println!("  layers: {}", layers.join(", "));
        }
    }
    Ok(exit::OK)
}

/// One backend as `config show` prints it; secrets never appear.
fn describe(name: &str, b: &BackendConfig, base: &Path) -> serde_json::Value {
    let config: Vec<serde_json::Value> = b
        .config
        .iter()
        .map(|(k, v)| {
            let value = match v {
                ConfigValue::Secret(_) => "(secret)".to_string(),
                // A reference is shown as written; what it resolves to is
                // not.
                ConfigValue::String(s) => s.clone(),
                ConfigValue::Integer(i) => i.to_string(),
                ConfigValue::Bool(x) => x.to_string(),
            };
            serde_json::json!({ "key": k, "value": value, "source": b.sources.get(k) })
        })
        .collect();
    let dirs: Vec<String> = b
        .grants
        .dirs
        .iter()
        .map(|d| {
            let host = if d.host.is_absolute() {
                d.host.clone()
            } else {
                base.join(&d.host)
            };
            let mode = if d.read_only { "read-only" } else { "read-write" };
            format!("{} -> {} ({mode})", host.display(), d.guest)
        })
        .collect();
    // The host terminates TLS: the adapter reaches each peer through a
    // loopback relay and is granted that, never the peer.
    let tls: Vec<String> = b
        .grants
        .tls
        .iter()
        .map(|t| {
            let roots = t
                .ca_file
                .as_ref()
                .map_or("system roots".to_string(), |f| format!("CA {}", base.join(f).display()));
            format!("{} (verify {}, {roots}, by the host)", t.address, t.verify.as_str())
        })
        .collect();
    let layers: Vec<String> = b.layers.iter().map(|l| l.kind().to_string()).collect();
    serde_json::json!({
        "name": name,
        "plugin": b.plugin_name(name),
        "url": b.url.as_deref().map(wharf::url::redact_url),
        "config": config,
        "credentials": b.sources.get("credentials"),
        "tls": b.sources.get("tls"),
        // Contacted by the host for exchanged credentials; never granted.
        "credential_endpoints": b.credentials.as_ref().map(|p| p.endpoints()).unwrap_or_default(),
        "grants": { "http": b.grants.http, "tcp": b.grants.tcp, "tls": tls, "dirs": dirs },
        "layers": layers,
    })
}
