//! Credentials the host obtains by an exchange (an assumed role, web
//! identity, container or instance metadata, a service-account key, an
//! OAuth refresh token) and refreshes before they expire. The adapter never
//! sees the long-lived secret, the token file or the metadata server: each
//! instance gets the short-lived values in `open`, merged over the
//! backend's config, and an instance opened with values that have since
//! been refreshed is not handed out again (see the runtime's pool).
//!
//! A [`CredentialProvider`] caches what its [`Source`] answered and asks
//! again only when the answer is about to expire: `min(5 min, a quarter of
//! its lifetime)` before, so one exchange serves a whole lifetime however
//! many operations run, and concurrent operations share one exchange.

pub(crate) mod aws;
pub(crate) mod azure;
pub(crate) mod gcp;
mod sigv4;

use crate::capabilities::ExchangeError;
use crate::capabilities::HttpClient;
use crate::error::{Error, ErrorKind, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

/// The longest a credential is refreshed ahead of its expiry (the AWS and
/// Google SDKs use the same five minutes).
const MAX_MARGIN: Duration = Duration::from_secs(300);
/// The longest the host waits for any one exchange.
pub(crate) const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// 9999-12-31T23:59:59Z, the last second an expiry may name.
const LAST_SECOND: u64 = 253_402_300_799;
/// The largest answer an exchange may give.
const ANSWER_LIMIT: usize = 1 << 20;

/// What one exchange answered: config values for the adapter's `open`.
#[derive(Clone)]
pub struct Credentials {
    /// Values merged over the backend's config (`access_key_id`,
    /// `session_token`, `token`...).
    pub values: Vec<(String, String)>,
    /// Which of `values` are secret, masked wherever the adapter's
    /// messages go.
    pub secret_keys: Vec<&'static str>,
    /// When they stop working; `None`: they do not expire.
    pub expires: Option<SystemTime>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("keys", &self.values.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("expires", &self.expires)
            .finish()
    }
}

impl Credentials {
    /// The values that are secrets.
    fn secrets(&self) -> Vec<&str> {
        self.values
            .iter()
            .filter(|(k, _)| self.secret_keys.contains(&k.as_str()))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Where credentials come from and how they are obtained.
#[async_trait::async_trait]
pub(crate) trait Source: Send + Sync {
    /// The source as `config show` and errors name it: the profile, role,
    /// token file or endpoint, never a secret.
    fn describe(&self) -> String;
    /// The endpoints the host itself contacts for them (not granted to the
    /// adapter).
    fn endpoints(&self) -> Vec<String>;
    /// One exchange.
    async fn fetch(&self, http: &HttpClient) -> Result<Credentials>;
}

struct Current {
    credentials: Arc<Credentials>,
    generation: u64,
    /// When to ask again; `None`: never.
    refresh_at: Option<SystemTime>,
}

/// One backend's short-lived credentials, refreshed before they expire.
pub struct CredentialProvider {
    source: Arc<dyn Source>,
    http: OnceLock<HttpClient>,
    current: Mutex<Option<Current>>,
    /// Held while an exchange runs, so concurrent operations wait for it
    /// instead of making their own.
    exchanging: tokio::sync::Mutex<()>,
    exchanges: AtomicU64,
}

impl std::fmt::Debug for CredentialProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CredentialProvider({})", self.source.describe())
    }
}

impl CredentialProvider {
    pub(crate) fn shared(source: Arc<dyn Source>) -> Arc<Self> {
        Arc::new(CredentialProvider {
            source,
            http: OnceLock::new(),
            current: Mutex::new(None),
            exchanging: tokio::sync::Mutex::new(()),
            exchanges: AtomicU64::new(0),
        })
    }

    /// The source, named as `config show` prints it.
    pub fn describe(&self) -> String {
        self.source.describe()
    }

    /// The endpoints the host contacts for these credentials.
    pub fn endpoints(&self) -> Vec<String> {
        self.source.endpoints()
    }

    /// Exchanges made so far.
    pub fn exchanges(&self) -> u64 {
        self.exchanges.load(Ordering::Relaxed)
    }

    /// The generation of the credentials held now (0: none yet); an
    /// instance opened with an older one is not reused.
    pub fn generation(&self) -> u64 {
        self.current
            .lock()
            .expect("credentials lock")
            .as_ref()
            .map_or(0, |c| c.generation)
    }

    fn fresh(&self) -> Option<(u64, Arc<Credentials>)> {
        let current = self.current.lock().expect("credentials lock");
        let c = current.as_ref()?;
        match c.refresh_at {
            Some(at) if SystemTime::now() >= at => None,
            _ => Some((c.generation, c.credentials.clone())),
        }
    }

    /// Credentials that stay valid for at least the refresh margin, and
    /// their generation: the held ones, or new ones from one exchange.
    pub async fn current(&self) -> Result<(u64, Arc<Credentials>)> {
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        let _turn = self.exchanging.lock().await;
        // Another operation may have refreshed them while this one waited.
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        let http = self.http.get_or_init(|| HttpClient::new(2));
        let credentials = self.source.fetch(http).await.map_err(|e| {
            let kind = e.kind();
            Error::new(
                kind,
                format!("credentials from {}: {}", self.source.describe(), e.message()),
            )
        })?;
        self.exchanges.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now();
        let refresh_at = match credentials.expires {
            None => None,
            Some(expires) => {
                let lifetime = expires.duration_since(now).map_err(|_| {
                    Error::new(
                        ErrorKind::Denied,
                        format!(
                            "credentials from {}: they expired at {} already (is this machine's clock right?)",
                            self.source.describe(),
                            humantime::format_rfc3339_seconds(expires)
                        ),
                    )
                })?;
                Some(expires - MAX_MARGIN.min(lifetime / 4))
            }
        };
        let credentials = Arc::new(credentials);
        let mut current = self.current.lock().expect("credentials lock");
        let generation = current.as_ref().map_or(0, |c| c.generation) + 1;
        *current = Some(Current {
            credentials: credentials.clone(),
            generation,
            refresh_at,
        });
        tracing::debug!(
            source = %self.source.describe(),
            generation,
            expires = ?credentials.expires.map(humantime::format_rfc3339_seconds),
            "credentials obtained"
        );
        Ok((generation, credentials))
    }

    /// The secrets of `credentials`, for the backend's redactor.
    pub(crate) fn secrets(credentials: &Credentials) -> Vec<&str> {
        credentials.secrets()
    }
}

/// Sends one request of an exchange and returns the answer's status and
/// body. `what` names the endpoint in errors.
pub(crate) async fn send(
    http: &HttpClient,
    request: http::Request<bytes::Bytes>,
    what: &str,
    timeout: Duration,
) -> Result<(http::StatusCode, http::HeaderMap, bytes::Bytes)> {
    http.exchange(request, timeout, ANSWER_LIMIT)
        .await
        .map_err(|e| match e {
            ExchangeError::Unreachable(why) => Error::new(ErrorKind::Unreachable, format!("{what}: {why}")),
            ExchangeError::Failed(why) => Error::new(ErrorKind::Transient, format!("{what}: {why}")),
        })
}

/// The error for an answer other than 200: refusals (4xx) are `denied`,
/// the rest `transient`. `detail` is the server's own short reason, which
/// never holds the secret sent (the servers echo codes and messages, not
/// tokens), and is cut to a line.
pub(crate) fn refused(what: &str, status: http::StatusCode, detail: &str) -> Error {
    let kind = if status.is_client_error() {
        ErrorKind::Denied
    } else {
        ErrorKind::Transient
    };
    let detail: String = detail.lines().next().unwrap_or("").chars().take(300).collect();
    if detail.is_empty() {
        Error::new(kind, format!("{what} answered {status}"))
    } else {
        Error::new(kind, format!("{what} answered {status}: {detail}"))
    }
}

/// An OAuth 2.0 token answer (RFC 6749 §5): `access_token` and
/// `expires_in` become the adapter's `key`. `expires_in` is seconds, a
/// number or (Azure's managed identity endpoints) a string of digits;
/// without it, `expires_on` (seconds since the epoch, Azure's) is used.
pub(crate) fn oauth_answer(
    what: &str,
    status: http::StatusCode,
    answer: &[u8],
    key: &'static str,
) -> Result<Credentials> {
    let v: serde_json::Value = serde_json::from_slice(answer).unwrap_or(serde_json::Value::Null);
    if status != http::StatusCode::OK {
        // OAuth errors are `error` and `error_description` (RFC 6749 §5.2).
        let detail = match (
            v.get("error").and_then(|e| e.as_str()),
            v.get("error_description").and_then(|e| e.as_str()),
        ) {
            (Some(e), Some(d)) => format!("{e}: {d}"),
            (Some(e), None) => e.to_string(),
            _ => String::new(),
        };
        return Err(refused(what, status, &detail));
    }
    let access = v
        .get("access_token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::new(ErrorKind::Backend, format!("{what}: the answer has no access_token")))?;
    let seconds = |name: &str| match v.get(name) {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    // A server's number must not overflow the clock (a panic) or reach
    // past what the messages can print: at most the year 9999.
    let at = |epoch: Option<u64>| {
        epoch
            .filter(|&e| e <= LAST_SECOND)
            .map(|e| SystemTime::UNIX_EPOCH + Duration::from_secs(e))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Backend,
                    format!("{what}: the answer's expiry is out of range"),
                )
            })
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let expires = match (seconds("expires_in"), seconds("expires_on")) {
        (Some(s), _) => Some(at(now.checked_add(s))?),
        (None, Some(epoch)) => Some(at(Some(epoch))?),
        (None, None) => None,
    };
    Ok(Credentials {
        values: vec![(key.into(), access.to_string())],
        secret_keys: vec![key],
        expires,
    })
}

/// POSTs an OAuth form to a token endpoint and reads its answer
/// ([`oauth_answer`]).
pub(crate) async fn post_form(
    http: &HttpClient,
    url: &str,
    what: &str,
    key: &'static str,
    form: &[(&str, &str)],
) -> Result<Credentials> {
    let body = {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        s.extend_pairs(form);
        s.finish()
    };
    let request = http::Request::post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(bytes::Bytes::from(body))
        .map_err(|e| Error::config(format!("{what}: {e}")))?;
    let (status, _, answer) = send(http, request, what, EXCHANGE_TIMEOUT).await?;
    oauth_answer(what, status, &answer, key)
}

/// Parses the expiry times credential endpoints give: RFC 3339 with `Z`
/// or a numeric offset, with or without fractional seconds.
pub(crate) fn parse_time(s: &str) -> std::result::Result<SystemTime, String> {
    let s = s.trim();
    let bad = || format!("`{s}` is not an RFC 3339 time");
    if let Some(body) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        return humantime::parse_rfc3339_weak(body).map_err(|_| bad());
    }
    // `...+HH:MM` / `...-HH:MM`.
    if s.len() > 6 {
        let (body, offset) = s.split_at(s.len() - 6);
        let sign = match offset.as_bytes()[0] {
            b'+' => 1i64,
            b'-' => -1,
            _ => return humantime::parse_rfc3339_weak(s).map_err(|_| bad()),
        };
        let (h, m) = offset[1..].split_once(':').ok_or_else(bad)?;
        let secs = h.parse::<i64>().map_err(|_| bad())? * 3600 + m.parse::<i64>().map_err(|_| bad())? * 60;
        let local = humantime::parse_rfc3339_weak(body).map_err(|_| bad())?;
        let shift = Duration::from_secs(secs.unsigned_abs());
        // A time at +02:00 is two hours earlier in UTC.
        return Ok(if sign * secs >= 0 { local - shift } else { local + shift });
    }
    Err(bad())
}

#[cfg(test)]
mod tests;
