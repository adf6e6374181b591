//! The backend's `config` table and the key layout derived from it.

use std::fmt;
use wharf_guest::Error;
use wharf_guest::config::Table;

const KEYS: &[&str] = &[
    "address",
    "username",
    "password",
    "db",
    "prefix",
    "chunk_size",
    "upload_ttl",
];
const MIN_CHUNK: u64 = 64 << 10;
const MAX_CHUNK: u64 = 64 << 20;

/// A configured Redis location. `Debug` leaves the password out.
#[derive(Clone)]
pub struct Config {
    /// `host:port` of the server (it must be in the backend's TCP grant).
    pub address: String,
    /// ACL user for `AUTH`; `None` authenticates as the default user.
    pub username: Option<String>,
    /// Password for `AUTH`; `None` sends no `AUTH`.
    pub password: Option<String>,
    /// Database number for `SELECT`.
    pub db: u32,
    /// Prefix of every key the adapter touches.
    pub prefix: String,
    /// Bytes per chunk key (the last chunk of an object may be shorter).
    pub chunk_size: u64,
    /// Milliseconds an uncommitted chunk lives; 0 for no expiry.
    pub upload_ttl_ms: u64,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("address", &self.address)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("db", &self.db)
            .field("prefix", &self.prefix)
            .field("chunk_size", &self.chunk_size)
            .field("upload_ttl_ms", &self.upload_ttl_ms)
            .finish()
    }
}

impl Config {
    /// Reads the `config` table; every problem is `invalid`, naming the key.
    pub fn parse(config: Vec<(String, String)>) -> Result<Config, Error> {
        let mut get = Table::parse(config, KEYS)?;
        let address = get.take("address").filter(|a| !a.is_empty()).ok_or_else(|| {
            Error::Invalid("config key `address` (`host:port` of the Redis server) is required".into())
        })?;
        check_address(&address)?;
        let password = get.take("password").filter(|p| !p.is_empty());
        let username = get.take("username").filter(|u| !u.is_empty());
        if username.is_some() && password.is_none() {
            return Err(Error::Invalid(
                "config key `username` needs `password` (AUTH takes both)".into(),
            ));
        }
        let db = match get.take("db") {
            Some(v) => v
                .trim()
                .parse::<u32>()
                .map_err(|_| Error::Invalid(format!("config key `db`: `{v}` is not a database number")))?,
            None => 0,
        };
        let prefix = get.take("prefix").unwrap_or_else(|| "wharf:".into());
        if prefix.chars().any(char::is_control) {
            return Err(Error::Invalid(
                "config key `prefix` must not contain control characters".into(),
            ));
        }
        let chunk_size = get.take_size("chunk_size")?.unwrap_or(8 << 20);
        if !(MIN_CHUNK..=MAX_CHUNK).contains(&chunk_size) {
            return Err(Error::Invalid(format!(
                "config key `chunk_size`: {chunk_size} bytes is outside 64KiB to 64MiB"
            )));
        }
        // `0` means never.
        let upload_ttl_ms = get.take_duration_ms("upload_ttl")?.unwrap_or(24 * 3600 * 1000);
        Ok(Config {
            address,
            username,
            password,
            db,
            prefix,
            chunk_size,
            upload_ttl_ms,
        })
    }

    /// The manifest (a hash) of the object at `path`.
    pub fn manifest_key(&self, path: &str) -> String {
        format!("{}manifest:{path}", self.prefix)
    }

    /// What manifest keys start with: `manifest_key(p)` = this + `p`.
    pub fn manifest_prefix(&self) -> String {
        format!("{}manifest:", self.prefix)
    }

    /// The sorted set of every committed path (the listing index).
    pub fn index_key(&self) -> String {
        format!("{}index", self.prefix)
    }

    /// What chunk keys start with: `chunk_key(u, n)` = this + `u:n`.
    pub fn chunk_prefix(&self) -> String {
        format!("{}chunk:", self.prefix)
    }

    /// Chunk `n` of upload `upload`.
    pub fn chunk_key(&self, upload: &str, n: u64) -> String {
        format!("{}chunk:{upload}:{n}", self.prefix)
    }
}

/// `host:port`, with `[v6]:port` for IPv6; the port is 1 to 65535.
fn check_address(address: &str) -> Result<(), Error> {
    let bad = |why: &str| {
        Error::Invalid(format!(
            "config key `address`: `{address}` {why} (expected `host:port`, e.g. `127.0.0.1:6379`)"
        ))
    };
    if address.contains("://") {
        return Err(bad("is a URL"));
    }
    let (host, port) = address.rsplit_once(':').ok_or_else(|| bad("has no port"))?;
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad("has no host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(bad("has no valid port")),
    }
}
