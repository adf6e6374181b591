//! `wharf metrics`: the running totals of every command's storage
//! operations, in the Prometheus text format.
//!
//! Each `wharf` command adds what its backends did to a file when it ends
//! (the textfile-collector pattern for batch jobs): `metrics_file` in
//! `wharf.toml`, else `$WHARF_METRICS_FILE`, else
//! `$XDG_STATE_HOME/wharf/metrics.json` (`~/.local/state/wharf/...`).
//! Processes running at once take turns through a lock file.

use super::Ctx;
use clap::Args;
use std::path::{Path, PathBuf};
use wharf::layers::Snapshot;
use wharf::{Error, ErrorKind};

/// `wharf metrics`.
#[derive(Args)]
pub(crate) struct MetricsCmd {
    /// Print the totals, then start again from zero.
    #[arg(long)]
    reset: bool,
}

impl MetricsCmd {
    pub async fn execute(self, ctx: &Ctx) -> wharf::Result<u8> {
        let file = metrics_file(&ctx.host);
        let snapshot = update(&file, |total| {
            let shown = total.clone();
            if self.reset {
                *total = Snapshot::default();
            }
            shown
        })?;
        if ctx.json {
            super::print_json(&snapshot);
        } else {
            print!("{}", snapshot.render());
        }
        Ok(super::exit::OK)
    }
}

/// Where the totals live.
pub(crate) fn metrics_file(host: &wharf::Host) -> PathBuf {
    if let Some(p) = &host.config().metrics_file {
        return host.base().join(p);
    }
    if let Some(p) = std::env::var_os("WHARF_METRICS_FILE") {
        return PathBuf::from(p);
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    state.join("wharf").join("metrics.json")
}

/// Adds `snapshot` to the totals in `file`.
pub(crate) fn record(file: &Path, snapshot: &Snapshot) -> wharf::Result<()> {
    update(file, |total| total.merge(snapshot))
}

/// Runs `f` on the totals under the lock and writes them back.
fn update<T>(file: &Path, f: impl FnOnce(&mut Snapshot) -> T) -> wharf::Result<T> {
    let io = |what: &str, e: std::io::Error| Error::io(format!("metrics file `{}`: {what}", file.display()), e);
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io("creating its directory", e))?;
    }
    let lock = std::fs::File::create(file.with_extension("lock")).map_err(|e| io("opening the lock", e))?;
    lock.lock().map_err(|e| io("locking", e))?;
    let mut total = match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("metrics file `{}` is not wharf's ({e}); remove it", file.display()),
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Snapshot::default(),
        Err(e) => return Err(io("reading", e)),
    };
    let out = f(&mut total);
    let tmp = file.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&total).expect("serializable")).map_err(|e| io("writing", e))?;
    std::fs::rename(&tmp, file).map_err(|e| io("replacing", e))?;
    Ok(out)
}
