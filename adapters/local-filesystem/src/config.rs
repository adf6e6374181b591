//! The backend's `config` table, checked: every key known.

use std::path::PathBuf;
use wharf_guest::Error;
use wharf_guest::config::Table;

/// Every key the adapter reads.
const KEYS: &[&str] = &["root"];

/// A checked configuration.
pub struct Config {
    /// The granted directory objects live under (default `/data`).
    pub root: PathBuf,
}

impl Config {
    /// Reads the `config` table; an unknown key is `invalid`.
    pub fn parse(config: Vec<(String, String)>) -> Result<Config, Error> {
        let mut get = Table::parse(config, KEYS)?;
        let root = PathBuf::from(get.take("root").unwrap_or_else(|| "/data".into()));
        Ok(Config { root })
    }
}
