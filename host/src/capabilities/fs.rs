use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// A host directory made visible to an adapter at `guest` path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirGrant {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the adapter sees it (an absolute guest path such as `/data`).
    pub guest: String,
    /// Whether the adapter may only read.
    pub read_only: bool,
}

impl DirGrant {
    /// Grants `host` read-write at `guest`.
    pub fn new(host: impl Into<PathBuf>, guest: impl Into<String>) -> Self {
        DirGrant {
            host: host.into(),
            guest: guest.into(),
            read_only: false,
        }
    }

    /// Makes the grant read-only.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Checks the grant: the host directory exists and the guest path is
    /// absolute with no `..`.
    pub(crate) fn validate(&self, backend: &str) -> Result<()> {
        if !self.guest.starts_with('/') || self.guest.split('/').any(|s| s == "..") {
            return Err(Error::config(format!(
                "backend `{backend}`: guest path `{}` of a directory grant must be absolute, without `..`",
                self.guest
            )));
        }
        if !Path::new(&self.host).is_dir() {
            return Err(Error::config(format!(
                "backend `{backend}`: granted directory `{}` does not exist or is not a directory",
                self.host.display()
            )));
        }
        Ok(())
    }
}
