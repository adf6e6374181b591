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

/// The value of a variable `scripts/servers.sh start` exports (`scripts/test.sh`
/// sets them all). A missing server fails the test that needs it, loudly.
pub fn server_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with ./scripts/test.sh, which starts the test servers")
    })
}

/// A host built from `wharf.toml` text, using the shared compile cache.
/// Relative paths in the text resolve against `base`.
pub fn host_from_toml(toml: &str, base: &Path) -> Host {
    let mut cfg = Config::parse(toml, "test config").expect("test config parses");
    cfg.cache_dir = Some(cache_dir());
    Host::new(cfg, base).expect("host builds")
}
