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
    wharf::config::state_dir()
        .unwrap_or_else(|| PathBuf::from(".wharf-state"))
        .join("metrics.json")
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
    // Never truncate or follow a link: the path may be anything a config says.
    let lock = open_new_or_existing(&file.with_extension("lock")).map_err(|e| io("opening the lock", e))?;
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
    wharf::ownership::write_private(file, &[&serde_json::to_vec(&total).expect("serializable")])
        .map_err(|e| io("writing", e))?;
    Ok(out)
}

fn no_follow(o: &mut std::fs::OpenOptions) -> &mut std::fs::OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW).mode(0o600);
    }
    o
}

/// The lock file, as it is (never truncated), or a new one; not a link.
fn open_new_or_existing(path: &Path) -> std::io::Result<std::fs::File> {
    no_follow(std::fs::OpenOptions::new().write(true).create(true)).open(path)
}
