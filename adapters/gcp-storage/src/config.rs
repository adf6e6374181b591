//! The backend's `config` table, checked: every key known, every value usable.

use crate::Error;
use crate::auth::{Auth, ServiceAccount};
use wharf_guest::config::{Table, parse_size};
use wharf_guest_http::Endpoint;

/// Resumable uploads move data in multiples of this (a GCS rule).
pub const CHUNK_GRANULE: u64 = 256 << 10;
/// The default resumable chunk.
const DEFAULT_CHUNK: u64 = 8 << 20;
/// The largest chunk: the writer holds two of them (the one being sent and
/// the next) inside the instance's memory limit (256 MiB by default).
const MAX_CHUNK: u64 = 64 << 20;

const KNOWN: &[&str] = &[
    "endpoint",
    "bucket",
    "prefix",
    "token",
    "service_account_key",
    "anonymous",
    "chunk_size",
];

/// A validated configuration.
pub struct Config {
    pub endpoint: Endpoint,
    pub bucket: String,
    pub prefix: String,
    pub auth: Auth,
    pub chunk_size: u64,
}

impl Config {
    /// Checks `pairs` (the backend's `config` table).
    pub fn parse(pairs: Vec<(String, String)>) -> Result<Config, Error> {
        let mut get = Table::parse(pairs, KNOWN)?;
        let endpoint = get.take("endpoint");
        let bucket = get.take("bucket").map(|b| check_bucket(&b)).transpose()?;
        let prefix = get.take("prefix").unwrap_or_default();
        let token = get.take("token");
        let key_path = get.take("service_account_key");
        let anonymous = get.take_bool("anonymous")?.unwrap_or(false);
        let chunk_size = get
            .take("chunk_size")
            .map(|v| parse_chunk_size(&v))
            .transpose()?
            .unwrap_or(DEFAULT_CHUNK);
        let endpoint = endpoint.as_deref().unwrap_or("https://storage.googleapis.com");
        let endpoint =
            Endpoint::parse(endpoint).map_err(|why| Error::Invalid(format!("config key `endpoint`: {why}")))?;
        let bucket = bucket.ok_or_else(|| Error::Invalid("config key `bucket` is required".into()))?;
        if prefix.starts_with('/') {
            return Err(Error::Invalid(format!(
                "config key `prefix`: `{prefix}` must not start with `/`"
            )));
        }
        let auth = choose_auth(token, key_path, anonymous)?;
        Ok(Config {
            endpoint,
            bucket,
            prefix,
            auth,
            chunk_size,
        })
    }
}

/// Exactly one way to authenticate must be configured.
fn choose_auth(token: Option<String>, key_path: Option<String>, anonymous: bool) -> Result<Auth, Error> {
    match (token, key_path, anonymous) {
        (Some(t), None, false) if !t.trim().is_empty() => Ok(Auth::Token(t.trim().to_string())),
        (Some(_), None, false) => Err(Error::Invalid("config key `token` is empty".into())),
        (None, Some(path), false) => Ok(Auth::ServiceAccount(Box::new(ServiceAccount::load(&path)?))),
        (None, None, true) => Ok(Auth::Anonymous),
        (None, None, false) => Err(Error::Invalid(
            "no credentials: set one of the config keys `token`, `service_account_key` or `anonymous = \"true\"`"
                .into(),
        )),
        _ => Err(Error::Invalid(
            "config keys `token`, `service_account_key` and `anonymous = \"true\"` exclude each other: set one".into(),
        )),
    }
}

fn check_bucket(name: &str) -> Result<String, Error> {
    let ok = (3..=222).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(name.to_string())
    } else {
        Err(Error::Invalid(format!(
            "config key `bucket`: `{name}` is not a bucket name (3 to 222 of a-z 0-9 - _ .)"
        )))
    }
}

fn parse_chunk_size(value: &str) -> Result<u64, Error> {
    let bytes = parse_size(value).map_err(|why| Error::Invalid(format!("config key `chunk_size`: {why}")))?;
    if bytes % CHUNK_GRANULE != 0 || bytes > MAX_CHUNK {
        return Err(Error::Invalid(format!(
            "config key `chunk_size`: {bytes} bytes is not a multiple of 256KiB between 256KiB and 64MiB"
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Config, Error> {
        Config::parse(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn invalid_naming(pairs: &[(&str, &str)], needle: &str) {
        match parse(pairs) {
            Err(Error::Invalid(m)) => assert!(m.contains(needle), "{m}"),
            Err(e) => panic!("{pairs:?}: {e:?}"),
            Ok(_) => panic!("{pairs:?} was accepted"),
        }
    }

    #[test]
    fn defaults() {
        let c = parse(&[("bucket", "models"), ("anonymous", "true")]).unwrap();
        assert_eq!(c.endpoint.url(), "https://storage.googleapis.com");
        assert_eq!(c.chunk_size, 8 << 20);
        assert!(matches!(c.auth, Auth::Anonymous));
        let c = parse(&[("bucket", "models"), ("token", "t"), ("chunk_size", "256KiB")]).unwrap();
        assert_eq!(c.chunk_size, 256 << 10);
        assert!(matches!(c.auth, Auth::Token(_)));
    }

    #[test]
    fn mistakes_name_the_key_and_never_the_secret() {
        let b = ("bucket", "models");
        let anon = ("anonymous", "true");
        invalid_naming(&[b, anon, ("colour", "blue")], "colour");
        invalid_naming(&[anon], "bucket");
        invalid_naming(&[("bucket", "Bad_Name!"), anon], "bucket");
        invalid_naming(&[b, anon, ("endpoint", "ftp://x")], "endpoint");
        invalid_naming(&[b, anon, ("prefix", "/abs")], "prefix");
        invalid_naming(&[b, ("anonymous", "yes")], "anonymous");
        invalid_naming(&[b], "credentials");
        invalid_naming(&[b, ("token", " ")], "token");
        for size in ["100KiB", "1000000", "128MiB", "0", "8MB"] {
            invalid_naming(&[b, anon, ("chunk_size", size)], "chunk_size");
        }
        match parse(&[b, anon, ("token", "sekrit")]) {
            Err(Error::Invalid(m)) => assert!(m.contains("`token`") && !m.contains("sekrit"), "{m}"),
            other => panic!("{:?}", other.err()),
        }
        invalid_naming(&[b, ("service_account_key", "/nowhere/key.json")], "/nowhere/key.json");
    }
}
