//! `wharf config trust|untrust`: approve a `./wharf.toml` for implicit use
//! (the rules are [`wharf::trust`]'s).

use super::exit;
use clap::Subcommand;
use std::path::PathBuf;

/// `wharf config ...`.
#[derive(Subcommand)]
pub(crate) enum ConfigCmd {
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
    pub fn execute(self, json: bool) -> wharf::Result<u8> {
        let (done, add) = match self {
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
