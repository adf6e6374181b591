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
}

impl Health {
    pub async fn execute(self, ctx: &Ctx) -> wharf::Result<u8> {
        let checks = ctx.host.backend_names().into_iter().map(|name| async move {
            let started = Instant::now();
            match tokio::time::timeout(self.timeout, check(ctx, name.clone())).await {
                Ok(row) => row,
                Err(_) => Row {
                    backend: name,
                    ok: false,
                    latency_ms: started.elapsed().as_secs_f64() * 1e3,
                    detail: format!("no answer within {:?}", self.timeout),
                    capabilities: None,
                },
            }
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
async fn check(ctx: &Ctx, name: String) -> Row {
    match ctx.host.adapter(&name).await {
        Err(e) => Row {
            backend: name,
            ok: false,
            latency_ms: 0.0,
            detail: e.to_string(),
            capabilities: None,
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
                },
                Err(e) => Row {
                    backend: name,
                    ok: false,
                    latency_ms,
                    detail: e.to_string(),
                    capabilities: caps,
                },
            }
        }
    }
}
