use super::{Ctx, exit};
use clap::Args;
use serde::Serialize;
use std::time::Instant;

/// `wharf health`: every configured backend, checked at once.
#[derive(Args)]
pub(crate) struct Health {
    /// A backend that has not answered within this is down.
    #[arg(long, default_value = "10s", value_parser = wharf::config::parse_duration)]
    timeout: std::time::Duration,
}

#[derive(Serialize)]
struct Row {
    backend: String,
    ok: bool,
    latency_ms: f64,
    detail: String,
    capabilities: Option<wharf::Capabilities>,
    /// What the backend may reach (`http https://...`, `tcp host:port`,
    /// `dir /host -> /guest`).
    grants: Vec<String>,
    /// Where each secret config value came from (never the value).
    credentials: std::collections::BTreeMap<String, String>,
}

/// The grants and credential sources of a configured backend.
fn access(ctx: &Ctx, name: &str) -> (Vec<String>, std::collections::BTreeMap<String, String>) {
    let Some(b) = ctx.host.config().backends.get(name) else {
        return Default::default();
    };
    let g = &b.grants;
    let grants = g
        .http
        .iter()
        .map(|h| format!("http {h}"))
        .chain(g.tcp.iter().map(|t| format!("tcp {t}")))
        .chain(
            g.tls
                .iter()
                .map(|t| format!("tls {} (verify {})", t.address, t.verify.as_str())),
        )
        .chain(
            g.dirs
                .iter()
                .map(|d| format!("dir {} -> {}", d.host.display(), d.guest)),
        )
        .collect();
    let credentials = b
        .config
        .iter()
        .filter_map(|(k, v)| {
            let secret = match v {
                wharf::config::ConfigValue::Secret(_) => true,
                wharf::config::ConfigValue::String(s) => s.contains("${"),
                _ => false,
            };
            let source = b.sources.get(k).cloned().or_else(|| match v {
                wharf::config::ConfigValue::String(s) => Some(format!("wharf.toml `{s}`")),
                _ => None,
            })?;
            secret.then(|| (k.clone(), source))
        })
        .chain(
            b.sources
                .get("credentials")
                .map(|s| ("credentials".to_string(), s.clone())),
        )
        .collect();
    (grants, credentials)
}

impl Health {
    pub async fn execute(self, ctx: &Ctx) -> wharf::Result<u8> {
        // Build (compile, or read from the cache) every adapter before any
        // check is timed: compiling is CPU work that would stall the other
        // backends' timed checks, and a first run after installing a plugin
        // would report its compile time as latency. A backend that fails
        // to build is reported by its check below.
        let timeout = self.timeout;
        let builds = ctx.host.backend_names().into_iter().map(|name| async move {
            let _ = tokio::time::timeout(timeout, ctx.host.adapter(&name)).await;
        });
        futures::future::join_all(builds).await;
        let checks = ctx.host.backend_names().into_iter().map(|name| async move {
            let started = Instant::now();
            let mut row = match tokio::time::timeout(self.timeout, check(ctx, name.clone())).await {
                Ok(row) => row,
                Err(_) => Row {
                    backend: name,
                    ok: false,
                    latency_ms: started.elapsed().as_secs_f64() * 1e3,
                    detail: format!("no answer within {:?}", self.timeout),
                    capabilities: None,
                    grants: Vec::new(),
                    credentials: Default::default(),
                },
            };
            (row.grants, row.credentials) = access(ctx, &row.backend);
            row
        });
        let rows = futures::future::join_all(checks).await;
        if ctx.json {
            super::print_json(&rows);
        } else {
            println!(
                "{:<20} {:<6} {:>10}  {:<28} detail",
                "backend", "status", "latency", "capabilities"
            );
            for r in &rows {
                let status = if r.ok { "up" } else { "DOWN" };
                let caps = r.capabilities.as_ref().map_or_else(|| "-".to_string(), summary);
                println!(
                    "{:<20} {:<6} {:>8.1}ms  {:<28} {}",
                    r.backend, status, r.latency_ms, caps, r.detail
                );
                if !r.grants.is_empty() {
                    println!("{:<20} grants: {}", "", r.grants.join(", "));
                }
                for (key, source) in &r.credentials {
                    println!("{:<20} {key}: from {source}", "");
                }
            }
        }
        Ok(if rows.iter().all(|r| r.ok) {
            exit::OK
        } else {
            exit::UNHEALTHY
        })
    }
}

/// `range,create,update,copy` for what the backend can do, `-` for none.
fn summary(c: &wharf::Capabilities) -> String {
    let names = [
        (c.read_range, "range"),
        (c.write_create, "create"),
        (c.write_update, "update"),
        (c.copy, "copy"),
    ];
    let on: Vec<&str> = names.iter().filter(|(b, _)| *b).map(|(_, n)| *n).collect();
    if on.is_empty() { "-".into() } else { on.join(",") }
}

/// Builds the backend's adapter, then asks its `health()`.
/// Leaves `grants` and `credentials` empty for the caller to fill in.
async fn check(ctx: &Ctx, name: String) -> Row {
    let (grants, credentials) = (Vec::new(), std::collections::BTreeMap::new());
    match ctx.host.adapter(&name).await {
        Err(e) => Row {
            backend: name,
            ok: false,
            latency_ms: 0.0,
            detail: e.to_string(),
            capabilities: None,
            grants,
            credentials,
        },
        Ok(a) => {
            let caps = Some(a.capabilities());
            let start = Instant::now();
            let r = a.health().await;
            let latency_ms = start.elapsed().as_secs_f64() * 1e3;
            match r {
                Ok(d) => Row {
                    backend: name,
                    ok: true,
                    latency_ms,
                    detail: d,
                    capabilities: caps,
                    grants,
                    credentials,
                },
                Err(e) => Row {
                    backend: name,
                    ok: false,
                    latency_ms,
                    detail: e.to_string(),
                    capabilities: caps,
                    grants,
                    credentials,
                },
            }
        }
    }
}
