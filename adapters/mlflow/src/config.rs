//! The backend's `config` table, checked: every key known, every value usable.

use crate::keys;
use wharf_guest::Error;
use wharf_guest::config::Table;
use wharf_guest_http::Endpoint;
use wharf_guest_http::encode::base64;

const MIN_PART: u64 = 5 << 20;
const MAX_PART: u64 = 256 << 20;

/// Every key the adapter reads.
const KEYS: &[&str] = &[
    "endpoint",
    "prefix",
    "token",
    "username",
    "password",
    "multipart",
    "part_size",
    "max_in_flight",
];

/// A checked configuration.
#[derive(Clone)]
pub struct Config {
    /// The tracking server.
    pub endpoint: Endpoint,
    /// Artifact path prefix: `""` or `dir/.../` (stored unchanged by the server).
    pub prefix: String,
    /// The `Authorization` header value; never printed.
    pub auth: Option<String>,
    /// Who the requests are sent as, for messages (never a secret).
    pub identity: String,
    /// Try the multipart routes for large writes.
    pub multipart: bool,
    /// Multipart part size, and the size of each append the host sends.
    pub part_size: u64,
    /// Parts uploading at once.
    pub max_in_flight: usize,
}

impl Config {
    /// Reads the `config` table; every problem is `invalid`, naming the key.
    pub fn parse(config: Vec<(String, String)>) -> Result<Config, Error> {
        let mut get = Table::parse(config, KEYS)?;
        let url = get
            .take("endpoint")
            .filter(|e| !e.is_empty())
            .ok_or_else(|| Error::Invalid("config key `endpoint` (the tracking server URL) is required".into()))?;
        let endpoint = Endpoint::parse(&url).map_err(|e| Error::Invalid(format!("`endpoint`: {e}")))?;
        let prefix = get.take("prefix").unwrap_or_default();
        let trimmed = prefix.trim_matches('/');
        if !trimmed.is_empty()
            && (prefix.starts_with('/')
                || trimmed.split('/').any(|s| s.is_empty() || s == "." || s == "..")
                || trimmed.chars().any(char::is_control)
                || !keys::is_plain(trimmed))
        {
            return Err(Error::Invalid(format!(
                "`prefix` `{prefix}` must be a relative artifact path (no `..`, empty segment, or `% # ? ; :`)"
            )));
        }
        let prefix = if trimmed.is_empty() {
            String::new()
        } else {
            format!("{trimmed}/")
        };
        let token = get.take("token").filter(|t| !t.is_empty());
        let user = get.take("username").filter(|u| !u.is_empty());
        let password = get.take("password");
        let (auth, identity) = match (token, user, password) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(Error::Invalid(
                    "set `token`, or `username` and `password`, not both".into(),
                ));
            }
            (Some(t), None, None) => (Some(format!("Bearer {t}")), "a bearer token".to_string()),
            (None, Some(u), Some(p)) => (
                Some(format!("Basic {}", base64(format!("{u}:{p}").as_bytes()))),
                format!("user `{u}`"),
            ),
            (None, Some(_), None) => return Err(Error::Invalid("`username` needs `password`".into())),
            (None, None, Some(_)) => return Err(Error::Invalid("`password` needs `username`".into())),
            (None, None, None) => (None, "no credentials".to_string()),
        };
        let multipart = match get.take("multipart").as_deref() {
            None | Some("auto") => true,
            Some("off") => false,
            Some(other) => {
                return Err(Error::Invalid(format!("`multipart` `{other}` is not auto or off")));
            }
        };
        let part_size = get.take_size("part_size")?.unwrap_or(8 << 20);
        if !(MIN_PART..=MAX_PART).contains(&part_size) {
            return Err(Error::Invalid(format!(
                "`part_size` {part_size} is outside 5 MiB to 256 MiB"
            )));
        }
        let max_in_flight = match get.take("max_in_flight") {
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=16).contains(n))
                .ok_or_else(|| Error::Invalid(format!("`max_in_flight` `{v}` is not a number from 1 to 16")))?,
            None => 4,
        };
        Ok(Config {
            endpoint,
            prefix,
            auth,
            identity,
            multipart,
            part_size,
            max_in_flight,
        })
    }
}
