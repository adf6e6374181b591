//! The backend's `config` table, checked: every key known, every value usable.

use crate::sigv4::Credentials;
use wharf_guest::Error;
use wharf_guest::config::Table;
use wharf_guest_http::Endpoint;

const MIN_PART: u64 = 5 << 20;
const MAX_PART: u64 = 5 << 30;

/// Every key the adapter reads.
const KEYS: &[&str] = &[
    "bucket",
    "region",
    "endpoint",
    "path_style",
    "access_key_id",
    "secret_access_key",
    "session_token",
    "prefix",
    "part_size",
    "max_in_flight",
    "payload_signing",
];

/// A checked configuration.
#[derive(Clone)]
pub struct Config {
    /// The S3 endpoint.
    pub endpoint: Endpoint,
    /// The signing region.
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// `<endpoint>/<bucket>/<key>` rather than `<bucket>.<endpoint host>/<key>`.
    pub path_style: bool,
    /// The key prefix inside the bucket.
    pub prefix: String,
    /// Credentials; `None` for anonymous requests.
    pub creds: Option<Credentials>,
    /// Sign the body's sha256 rather than send `UNSIGNED-PAYLOAD`.
    pub sign_payload: bool,
    /// Multipart part size.
    pub part_size: u64,
    /// Parts uploading at once.
    pub max_in_flight: usize,
}

impl Config {
    /// Reads the `config` table; every problem is `invalid`, naming the key.
    pub fn parse(config: Vec<(String, String)>) -> Result<Config, Error> {
        let mut get = Table::parse(config, KEYS)?;
        let bucket = get
            .take("bucket")
            .filter(|b| !b.is_empty())
            .ok_or_else(|| Error::Invalid("config key `bucket` is required".into()))?;
        if bucket.contains('/') {
            return Err(Error::Invalid(format!("`bucket` `{bucket}` must not contain `/`")));
        }
        let region = get.take("region").unwrap_or_else(|| "us-east-1".into());
        let (endpoint, custom) = match get.take("endpoint") {
            Some(url) => (
                Endpoint::parse(&url).map_err(|e| Error::Invalid(format!("`endpoint`: {e}")))?,
                true,
            ),
            None => (
                Endpoint::parse(&format!("https://s3.{region}.amazonaws.com")).map_err(Error::Invalid)?,
                false,
            ),
        };
        let path_style = get.take_bool("path_style")?.unwrap_or(custom);
        let creds = match (get.take("access_key_id"), get.take("secret_access_key")) {
            (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => Some(Credentials {
                access_key_id: id,
                secret_access_key: secret,
                session_token: get.take("session_token").filter(|t| !t.is_empty()),
            }),
            (None, None) => None,
            _ => {
                return Err(Error::Invalid(
                    "set both `access_key_id` and `secret_access_key`, or neither for anonymous access".into(),
                ));
            }
        };
        if creds.is_none() && get.contains("session_token") {
            return Err(Error::Invalid(
                "`session_token` needs `access_key_id` and `secret_access_key`".into(),
            ));
        }
        let prefix = get.take("prefix").unwrap_or_default();
        if prefix.starts_with('/') || prefix.split('/').any(|s| s == "..") {
            return Err(Error::Invalid(format!(
                "`prefix` `{prefix}` must be relative, without `..`"
            )));
        }
        let part_size = get.take_size("part_size")?.unwrap_or(8 << 20);
        if !(MIN_PART..=MAX_PART).contains(&part_size) {
            return Err(Error::Invalid(format!(
                "`part_size` {part_size} is outside S3's 5 MiB to 5 GiB"
            )));
        }
        let max_in_flight = match get.take("max_in_flight") {
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=64).contains(n))
                .ok_or_else(|| Error::Invalid(format!("`max_in_flight` `{v}` is not a number from 1 to 64")))?,
            None => 4,
        };
        let sign_payload = match get.take("payload_signing").as_deref() {
            None | Some("auto") => !endpoint.https,
            Some("signed") => true,
            Some("unsigned") => false,
            Some(other) => {
                return Err(Error::Invalid(format!(
                    "`payload_signing` `{other}` is not auto, signed or unsigned"
                )));
            }
        };
        Ok(Config {
            endpoint,
            region,
            bucket,
            path_style,
            prefix,
            creds,
            sign_payload,
            part_size,
            max_in_flight,
        })
    }
}
