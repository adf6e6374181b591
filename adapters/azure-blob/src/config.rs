//! The backend's `config` table: parsing and validation. Every problem is
//! `invalid` and names the key, never a secret's value.

use wharf_guest::Error;
use wharf_guest::config::Table;
use wharf_guest_http::Endpoint;
use wharf_guest_http::encode::base64_decode;

/// Every key the adapter reads.
const KEYS: [&str; 9] = [
    "endpoint",
    "account",
    "container",
    "account_key",
    "sas_token",
    "token",
    "prefix",
    "block_size",
    "max_in_flight",
];

const DEFAULT_BLOCK: u64 = 8 << 20;
/// Azure takes blocks of any size up to 4000 MiB. The adapter holds up to
/// two blocks at once (the first, until it knows a second follows), and
/// both must fit the instance's memory (256 MiB by default).
const MIN_BLOCK: u64 = 64 << 10;
const MAX_BLOCK: u64 = 64 << 20;

/// How requests are authorized.
pub enum Auth {
    /// Shared Key: every request signed with the decoded account key.
    SharedKey(Vec<u8>),
    /// A SAS token, appended to every URL's query (without its leading `?`).
    Sas(String),
    /// An OAuth access token from Microsoft Entra ID, sent as
    /// `Authorization: Bearer` (Azure takes it over HTTPS only). The host
    /// obtains and renews it; the adapter gets the short-lived token.
    Bearer(String),
}

/// A validated configuration.
pub struct Config {
    /// Where the Blob service lives; a base path (Azurite's
    /// `/devstoreaccount1`) is part of every URL.
    pub endpoint: Endpoint,
    /// The storage account name.
    pub account: String,
    /// The container objects live in.
    pub container: String,
    /// The credentials.
    pub auth: Auth,
    /// Prepended to every object path to make the blob name.
    pub prefix: String,
    /// Size of each uploaded block.
    pub block_size: u64,
    /// Blocks uploading at once.
    pub max_in_flight: usize,
}

impl Config {
    /// Reads the `config` table.
    pub fn parse(config: Vec<(String, String)>) -> Result<Config, Error> {
        let mut get = Table::parse(config, &KEYS)?;
        let missing: Vec<String> = ["account", "container"]
            .into_iter()
            .filter(|k| get.get(k).is_none_or(|v| v.trim().is_empty()))
            .map(|k| format!("`{k}`"))
            .collect();
        if !missing.is_empty() {
            return Err(invalid(format!("missing config keys: {}", missing.join(", "))));
        }
        let account = get.take("account").unwrap_or_default();
        let container = get.take("container").unwrap_or_default();
        check_container(&container)?;
        let endpoint = match get.take("endpoint") {
            Some(url) => url,
            None => format!("https://{account}.blob.core.windows.net"),
        };
        let endpoint = Endpoint::parse(&endpoint).map_err(|e| invalid(format!("`endpoint`: {e}")))?;
        let auth = parse_auth(
            &account,
            get.take("account_key"),
            get.take("sas_token"),
            get.take("token"),
        )?;
        let prefix = get.take("prefix").unwrap_or_default();
        check_prefix(&prefix)?;
        let block_size = get.take_size("block_size")?.unwrap_or(DEFAULT_BLOCK);
        if !(MIN_BLOCK..=MAX_BLOCK).contains(&block_size) {
            return Err(invalid(format!(
                "`block_size` {block_size} is outside 64 KiB to 64 MiB"
            )));
        }
        let max_in_flight = match get.take("max_in_flight") {
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=64).contains(n))
                .ok_or_else(|| invalid(format!("`max_in_flight` `{v}` is not a number from 1 to 64")))?,
            None => 4,
        };
        Ok(Config {
            endpoint,
            account,
            container,
            auth,
            prefix,
            block_size,
            max_in_flight,
        })
    }

    /// Who the requests are authorized as, for messages (never the secret):
    /// "account `devstoreaccount1` with a shared key".
    pub fn identity(&self) -> String {
        let kind = match self.auth {
            Auth::SharedKey(_) => "a shared key",
            Auth::Sas(_) => "a SAS token",
            Auth::Bearer(_) => "an Entra ID token",
        };
        format!("account `{}` with {kind}", self.account)
    }
}

fn invalid(message: String) -> Error {
    Error::Invalid(message)
}

/// Exactly one of `account_key`, `sas_token` and `token`.
fn parse_auth(account: &str, key: Option<String>, sas: Option<String>, token: Option<String>) -> Result<Auth, Error> {
    match (key, sas, token) {
        (Some(key), None, None) => {
            let bytes = base64_decode(&key)
                .ok()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| invalid(format!("`account_key` of account `{account}` is not base64")))?;
            Ok(Auth::SharedKey(bytes))
        }
        (None, Some(sas), None) => {
            let token = sas.trim().trim_start_matches('?').to_string();
            if token.is_empty() || token.contains(['#', ' ']) {
                return Err(invalid(format!(
                    "`sas_token` of account `{account}` is not a query string"
                )));
            }
            Ok(Auth::Sas(token))
        }
        (None, None, Some(token)) => {
            let token = token.trim().to_string();
            // A header value: visible ASCII only, as OAuth access tokens are.
            if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(invalid(format!(
                    "`token` of account `{account}` is not an access token"
                )));
            }
            Ok(Auth::Bearer(token))
        }
        (None, None, None) => Err(invalid(
            "missing config key: `account_key`, `sas_token` or `token` (the credentials)".into(),
        )),
        _ => Err(invalid("set only one of `account_key`, `sas_token` and `token`".into())),
    }
}

/// Azure's container names: 3 to 63 lower-case letters, digits and hyphens
/// (or `$root`).
fn check_container(name: &str) -> Result<(), Error> {
    let ok = name == "$root"
        || ((3..=63).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "`container` `{name}` is not a container name (3 to 63 lower-case letters, digits and hyphens)"
        )))
    }
}

fn check_prefix(prefix: &str) -> Result<(), Error> {
    if prefix.starts_with('/') || prefix.split('/').any(|s| s == "." || s == "..") {
        return Err(invalid(format!(
            "`prefix` `{prefix}` must be relative, without `.` or `..` segments"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, Error> {
        Config::parse(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn message(e: Error) -> String {
        match e {
            Error::Invalid(m) => m,
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    const BASE: [(&str, &str); 3] = [
        ("account", "acct"),
        ("container", "models"),
        ("account_key", "c2VjcmV0"),
    ];

    #[test]
    fn defaults() {
        let c = config(&BASE).unwrap();
        assert_eq!(c.endpoint.url(), "https://acct.blob.core.windows.net");
        assert_eq!((c.block_size, c.max_in_flight, c.prefix.as_str()), (8 << 20, 4, ""));
        assert_eq!(c.identity(), "account `acct` with a shared key");
    }

    #[test]
    fn errors_name_the_key_not_the_secret() {
        let m = message(config(&[("colour", "blue")]).err().unwrap());
        assert!(m.contains("`colour`"), "{m}");
        let m = message(config(&[("account_key", "c2VjcmV0")]).err().unwrap());
        assert!(m.contains("`account`") && m.contains("`container`"), "{m}");
        let m = message(config(&[("account", "a"), ("container", "models")]).err().unwrap());
        assert!(m.contains("account_key"), "{m}");
        let m = message(
            config(&[
                ("account", "a"),
                ("container", "models"),
                ("account_key", "not base64!"),
            ])
            .err()
            .unwrap(),
        );
        assert!(m.contains("account_key") && !m.contains("not base64!"), "{m}");
        for (key, value) in [
            ("block_size", "1KiB"),
            ("block_size", "8MB"),
            ("max_in_flight", "0"),
            ("prefix", "../x"),
            ("endpoint", "ftp://x"),
            ("sas_token", "sv=1&sig=x"),
        ] {
            let mut pairs = BASE.to_vec();
            pairs.push((key, value));
            let m = message(config(&pairs).err().unwrap());
            assert!(m.contains(key), "{key}: {m}");
        }
        let m = message(
            config(&[("account", "a"), ("container", "Bad_Name"), ("sas_token", "sig=x")])
                .err()
                .unwrap(),
        );
        assert!(m.contains("container"), "{m}");
    }

    #[test]
    fn sas_token_and_sizes() {
        let c = config(&[
            ("account", "a"),
            ("container", "models"),
            ("sas_token", "?sv=2021&sig=abc"),
            ("block_size", "4MiB"),
            ("endpoint", "http://127.0.0.1:10000/a/"),
        ])
        .unwrap();
        assert!(matches!(&c.auth, Auth::Sas(t) if t == "sv=2021&sig=abc"));
        assert_eq!(c.block_size, 4 << 20);
        assert_eq!(c.endpoint.base_path, "/a");
        assert_eq!(c.identity(), "account `a` with a SAS token");
    }

    #[test]
    fn entra_token() {
        let c = config(&[("account", "a"), ("container", "models"), ("token", "eyJ0.eyJ1.sig")]).unwrap();
        assert!(matches!(&c.auth, Auth::Bearer(t) if t == "eyJ0.eyJ1.sig"));
        assert_eq!(c.identity(), "account `a` with an Entra ID token");
        let m = message(
            config(&[("account", "a"), ("container", "models"), ("token", "two words")])
                .err()
                .unwrap(),
        );
        assert!(m.contains("`token`") && !m.contains("two words"), "{m}");
        let m = message(
            config(&[
                ("account", "a"),
                ("container", "models"),
                ("token", "t"),
                ("sas_token", "sig=x"),
            ])
            .err()
            .unwrap(),
        );
        assert!(m.contains("only one"), "{m}");
    }
}
