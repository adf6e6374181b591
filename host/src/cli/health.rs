use super::{Ctx, exit};
use clap::Args;
use serde::Serialize;
use std::time::Instant;

/// `wharf health`.
#[derive(Args)]
pub(crate) struct Health {}

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
        let mut rows = Vec::new();
        for name in ctx.host.backend_names() {
            let row = match ctx.host.adapter(&name).await {
                Err(e) => Row {
                    backend: name,
                    ok: false,
                    latency_ms: 0.0,
                    detail: e.to_string(),
                    capabilities: None,
                },
                Ok(a) => {
                    let caps = a.capabilities().await.ok();
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
            };
            rows.push(row);
        }
        if ctx.json {
            super::print_json(&rows);
        } else {
            println!("{:<20} {:<6} {:>10}  detail", "backend", "status", "latency");
            for r in &rows {
                let status = if r.ok { "up" } else { "DOWN" };
                println!("{:<20} {:<6} {:>8.1}ms  {}", r.backend, status, r.latency_ms, r.detail);
            }
        }
        Ok(if rows.iter().all(|r| r.ok) {
            exit::OK
        } else {
            exit::UNHEALTHY
        })
    }
}
