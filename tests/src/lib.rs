//! Shared helpers of wharf's integration tests.

use std::path::{Path, PathBuf};
use wharf::{Config, Host};

/// Paths of the guest fixtures, built by build.rs.
pub mod fixtures {
    include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));
}

/// A compiled-component cache shared by all test processes.
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wharf-test-cache")
}

/// A host whose only backend is the built-in `local_filesystem` storing in `dir`.
pub fn local_host(dir: &Path) -> Host {
    let mut cfg = Config::local_default(dir);
    cfg.cache_dir = Some(cache_dir());
    Host::new(cfg, dir).expect("host builds")
}
