//! The backend's `config` table: every problem is `invalid` and names the key.

use std::fmt;
use wharf_guest::Error;
use wharf_guest::config::Table;
use wharf_guest::config::parse_size;

const KEYS: &[&str] = &[
    "host",
    "port",
    "address",
    "user",
    "password",
    "dbname",
    "table_prefix",
    "chunk_size",
];

/// Default size of one `bytea` chunk row.
pub const DEFAULT_CHUNK: u64 = 1 << 20;
pub const MIN_CHUNK: u64 = 64 << 10;
/// The largest `chunk_size`: the longest row the adapter reads or writes.
pub const MAX_CHUNK: u64 = 64 << 20;
/// Table names get `objects`/`chunks` and indexes `_pkey` appended; the
/// whole must stay under PostgreSQL's 63-byte identifier limit.
const MAX_PREFIX: usize = 40;

/// A validated configuration.
pub struct Config {
    /// `host:port` of the server.
    pub address: String,
    pub user: String,
    /// Never shown: `Debug` leaves it out and no error carries it.
    pub password: Option<String>,
    pub dbname: String,
    pub table_prefix: String,
    /// Size of the chunk rows new objects are written in.
    pub chunk_size: u64,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("address", &self.address)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .field("dbname", &self.dbname)
            .field("table_prefix", &self.table_prefix)
            .field("chunk_size", &self.chunk_size)
            .finish()
    }
}

impl Config {
    /// Reads the `config` table.
    pub fn parse(config: Vec<(String, String)>) -> Result<Config, Error> {
        let mut get = Table::parse(config, KEYS)?;
        let address = match (get.take("address"), get.take("host"), get.take("port")) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(Error::Invalid(
                    "set either `address` or `host` (and `port`), not both".into(),
                ));
            }
            (Some(a), None, None) => {
                check_address(&a)?;
                a
            }
            (None, Some(h), port) => {
                let h = h.trim().to_string();
                if h.is_empty() || h.contains('/') {
                    return Err(Error::Invalid(format!("`host` `{h}` is not a host name or IP address")));
                }
                let port = match port {
                    Some(p) => parse_port("port", &p)?,
                    None => 5432,
                };
                if h.contains(':') && !h.starts_with('[') {
                    format!("[{h}]:{port}")
                } else {
                    format!("{h}:{port}")
                }
            }
            (None, None, _) => {
                return Err(Error::Invalid(
                    "config key `address` (`host:port`) or `host` is required".into(),
                ));
            }
        };
        let user = get
            .take("user")
            .filter(|u| !u.is_empty())
            .ok_or_else(|| Error::Invalid("config key `user` is required".into()))?;
        let password = get.take("password").filter(|p| !p.is_empty());
        let dbname = match get.take("dbname") {
            Some(d) if d.is_empty() => return Err(Error::Invalid("`dbname` must not be empty".into())),
            Some(d) => d,
            None => user.clone(),
        };
        let table_prefix = get.take("table_prefix").unwrap_or_else(|| "wharf_".into());
        check_prefix(&table_prefix)?;
        let chunk_size = match get.take("chunk_size") {
            Some(v) => {
                let n = parse_size(&v).map_err(|e| Error::Invalid(format!("config key `chunk_size`: {e}")))?;
                if !(MIN_CHUNK..=MAX_CHUNK).contains(&n) {
                    return Err(Error::Invalid(format!(
                        "`chunk_size` `{v}` must be between 64KiB and 64MiB"
                    )));
                }
                n
            }
            None => DEFAULT_CHUNK,
        };
        Ok(Config {
            address,
            user,
            password,
            dbname,
            table_prefix,
            chunk_size,
        })
    }
}

fn parse_port(key: &str, text: &str) -> Result<u16, Error> {
    match text.trim().parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(Error::Invalid(format!("`{key}` `{text}` is not a TCP port (1-65535)"))),
    }
}

fn check_address(a: &str) -> Result<(), Error> {
    let bad = || Error::Invalid(format!("`address` `{a}` is not `host:port`"));
    let (host, port) = a.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || host.contains('/') || (host.contains(':') && !host.starts_with('[')) {
        return Err(bad());
    }
    parse_port("address", port).map(|_| ())
}

/// Table names are built from the prefix, so it must be a plain lower-case
/// identifier: no quoting, no injection.
fn check_prefix(p: &str) -> Result<(), Error> {
    let ok = !p.is_empty()
        && p.len() <= MAX_PREFIX
        && p.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "`table_prefix` `{p}` must be 1-{MAX_PREFIX} characters of a-z, 0-9 and _, not starting with a digit"
        )))
    }
}
