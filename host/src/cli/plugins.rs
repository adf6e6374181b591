use super::{Ctx, exit, print_json};
use clap::Subcommand;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// `wharf plugins ...`.
#[derive(Subcommand)]
pub(crate) enum Plugins {
    /// Every plugin this host can load: built-in and from the plugin directory.
    List,
    /// Compile and check one plugin: by backend name, or a `.wasm` file.
    Inspect {
        /// A plugin name (`local_filesystem`) or a path to a `.wasm` file.
        plugin: String,
    },
    /// Run the conformance suite against a component; a pass/fail table,
    /// non-zero exit when any case fails.
    Verify(Box<super::verify::Verify>),
}

#[derive(Serialize)]
struct Listed {
    name: String,
    origin: String,
    size: usize,
    sha256: String,
}

#[derive(Serialize)]
struct Inspected {
    name: String,
    origin: String,
    contract: &'static str,
    /// `wharf:storage/maintenance` (pending uploads), when it exports it.
    maintenance: Option<&'static str>,
    /// `wharf:storage/reuse` (warm instances), when it exports it.
    reuse: Option<&'static str>,
    size: usize,
    sha256: String,
    needs_filesystem: bool,
    needs_http: bool,
    needs_sockets: bool,
    imports: Vec<String>,
}

impl Plugins {
    pub async fn execute(self, ctx: &Ctx) -> wharf::Result<u8> {
        match self {
            Plugins::Verify(v) => return v.execute(&ctx.host, ctx.explicit_backend.as_deref(), ctx.json).await,
            Plugins::List => {
                let mut rows = Vec::new();
                for (name, source) in ctx.host.plugins().iter() {
                    let bytes = source.bytes()?;
                    rows.push(Listed {
                        name: name.to_string(),
                        origin: source.describe(),
                        size: bytes.len(),
                        sha256: hex::encode(Sha256::digest(&bytes)),
                    });
                }
                if ctx.json {
                    print_json(&rows);
                } else {
                    for r in rows {
                        println!("{:<20} {:>9} B  {}  {}", r.name, r.size, &r.sha256[..16], r.origin);
                    }
                }
            }
            Plugins::Inspect { plugin } => {
                let file = PathBuf::from(&plugin);
                let p = if plugin.ends_with(".wasm") || file.is_file() {
                    let bytes = std::fs::read(&file)
                        .map_err(|e| wharf::Error::io(format!("reading `{}`", file.display()), e))?;
                    let name = file
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    ctx.host
                        .runtime()
                        .load_plugin(&name, &bytes, &file.display().to_string())?
                } else {
                    ctx.host.plugins().load(ctx.host.runtime(), &plugin, None)?
                };
                let imports = p.imports().to_vec();
                let has = |pfx: &str| imports.iter().any(|i| i.starts_with(pfx));
                let out = Inspected {
                    name: p.name().to_string(),
                    origin: p.origin().to_string(),
                    contract: wharf::runtime::CONTRACT_EXPORT,
                    maintenance: p.has_maintenance().then_some(wharf::runtime::MAINTENANCE_EXPORT),
                    reuse: p.is_reusable().then_some(wharf::runtime::REUSE_EXPORT),
                    size: p.size(),
                    sha256: p.sha256().to_string(),
                    needs_filesystem: has("wasi:filesystem"),
                    needs_http: has("wasi:http"),
                    needs_sockets: has("wasi:sockets"),
                    imports,
                };
                if ctx.json {
                    print_json(&out);
                } else {
                    println!(
                        "name:      {}\norigin:    {}\nexports:   {}{}{}",
                        out.name,
                        out.origin,
                        out.contract,
                        out.maintenance.map(|m| format!(", {m}")).unwrap_or_default(),
                        out.reuse.map(|m| format!(", {m}")).unwrap_or_default()
                    );
                    println!("size:      {} bytes\nsha256:    {}", out.size, out.sha256);
                    println!(
                        "needs:     filesystem={} http={} sockets={}",
                        out.needs_filesystem, out.needs_http, out.needs_sockets
                    );
                    println!("imports:\n  {}", out.imports.join("\n  "));
                }
            }
        }
        Ok(exit::OK)
    }
}
