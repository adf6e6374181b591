//! Google Cloud credentials the host exchanges for the GCS adapter's
//! `token`: a service-account key (a JWT signed with its RSA key, RFC 7523),
//! an authorized user's refresh token (gcloud's application-default login,
//! RFC 6749 §6), and the metadata server (GCE, GKE workload identity).
//! Written on the host's HTTP client and `ring` (already in the tree) as
//! `google-cloud-auth` and `gcp_auth` would do it, without their own HTTP
//! stacks.

use super::{Credentials, Source, oauth_answer, post_form, send};
use crate::capabilities::HttpClient;
use crate::error::{Error, ErrorKind, Result};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// What the adapter needs: objects read and written.
const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";
/// The token endpoint when a key names none.
pub(crate) const TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// A service-account key file's fields the exchange needs.
pub(crate) struct ServiceAccount {
    pub client_email: String,
    pub key_id: Option<String>,
    /// The PKCS#8 DER of the private key.
    pub key: Vec<u8>,
    pub token_uri: String,
    pub origin: String,
}

impl ServiceAccount {
    /// Reads a key file's JSON (already parsed); the error names what is
    /// missing, never the key.
    pub(crate) fn from_json(v: &serde_json::Value, origin: String) -> std::result::Result<Self, String> {
        let field = |name: &str| {
            v.get(name)
                .and_then(|f| f.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let client_email = field("client_email").ok_or("the key has no client_email")?;
        let pem = field("private_key").ok_or("the key has no private_key")?;
        let key = pem_body(&pem, "PRIVATE KEY").ok_or("its private_key is not a PEM `PRIVATE KEY`")?;
        ring::signature::RsaKeyPair::from_pkcs8(&key).map_err(|_| "its private_key is not an RSA key in PKCS#8")?;
        Ok(ServiceAccount {
            client_email,
            key_id: field("private_key_id"),
            key,
            token_uri: field("token_uri").unwrap_or_else(|| TOKEN_URI.into()),
            origin,
        })
    }

    /// The signed assertion (RFC 7523): valid one hour from `now`.
    fn assertion(&self, now: SystemTime) -> Result<String> {
        let iat = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(k) = &self.key_id {
            header["kid"] = k.clone().into();
        }
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": iat,
            "exp": iat + 3600,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let pair = ring::signature::RsaKeyPair::from_pkcs8(&self.key)
            .map_err(|_| Error::config("the service-account key is not an RSA key"))?;
        let mut signature = vec![0; pair.public().modulus_len()];
        pair.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            signing_input.as_bytes(),
            &mut signature,
        )
        .map_err(|_| Error::new(ErrorKind::Io, "signing the service-account assertion failed"))?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// The base64 body of a PEM block of `label`, decoded.
fn pem_body(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let b64: String = pem[start..stop].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

#[async_trait::async_trait]
impl Source for ServiceAccount {
    fn describe(&self) -> String {
        format!("service account `{}` ({})", self.client_email, self.origin)
    }
    fn endpoints(&self) -> Vec<String> {
        vec![self.token_uri.clone()]
    }
    async fn fetch(&self, http: &HttpClient) -> Result<Credentials> {
        let assertion = self.assertion(SystemTime::now())?;
        let what = format!("the token endpoint {}", self.token_uri);
        post_form(
            http,
            &self.token_uri,
            &what,
            "token",
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", &assertion),
            ],
        )
        .await
    }
}

/// An authorized user's refresh token (`gcloud auth application-default
/// login`).
pub(crate) struct AuthorizedUser {
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    pub token_uri: String,
    pub origin: String,
}

impl AuthorizedUser {
    pub(crate) fn from_json(v: &serde_json::Value, origin: String) -> std::result::Result<Self, String> {
        let field = |name: &str| {
            v.get(name)
                .and_then(|f| f.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or_else(|| format!("the credentials have no {name}"))
        };
        Ok(AuthorizedUser {
            client_id: field("client_id")?,
            client_secret: field("client_secret")?,
            refresh_token: field("refresh_token")?,
            token_uri: field("token_uri").unwrap_or_else(|_| TOKEN_URI.into()),
            origin,
        })
    }
}

#[async_trait::async_trait]
impl Source for AuthorizedUser {
    fn describe(&self) -> String {
        format!("authorized user, client `{}` ({})", self.client_id, self.origin)
    }
    fn endpoints(&self) -> Vec<String> {
        vec![self.token_uri.clone()]
    }
    async fn fetch(&self, http: &HttpClient) -> Result<Credentials> {
        let what = format!("the token endpoint {}", self.token_uri);
        post_form(
            http,
            &self.token_uri,
            &what,
            "token",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &self.client_id),
                ("client_secret", &self.client_secret),
                ("refresh_token", &self.refresh_token),
            ],
        )
        .await
    }
}

/// The metadata server's token for the instance's (or the GKE workload's)
/// default service account.
pub(crate) struct Metadata {
    /// `http://metadata.google.internal`, or `GCE_METADATA_HOST`'s.
    pub base: String,
}

#[async_trait::async_trait]
impl Source for Metadata {
    fn describe(&self) -> String {
        format!("the metadata server at {}", self.base)
    }
    fn endpoints(&self) -> Vec<String> {
        vec![self.base.clone()]
    }
    async fn fetch(&self, http: &HttpClient) -> Result<Credentials> {
        let what = format!("the metadata server at {}", self.base);
        let url = format!(
            "{}/computeMetadata/v1/instance/service-accounts/default/token",
            self.base.trim_end_matches('/')
        );
        let request = http::Request::get(url)
            .header("metadata-flavor", "Google")
            .body(bytes::Bytes::new())
            .map_err(|e| Error::config(format!("{what}: {e}")))?;
        let (status, headers, answer) = send(http, request, &what, Duration::from_secs(5)).await.map_err(|e| {
            if e.kind() == ErrorKind::Unreachable {
                Error::new(
                    ErrorKind::Unreachable,
                    format!(
                        "{} (not on Google Cloud? set GOOGLE_APPLICATION_CREDENTIALS, or STORAGE_EMULATOR_HOST)",
                        e.message()
                    ),
                )
            } else {
                e
            }
        })?;
        // Something else answering on that address is not the metadata
        // server: it says so in this header.
        if status == http::StatusCode::OK
            && headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google")
        {
            return Err(Error::new(
                ErrorKind::Backend,
                format!("{what}: the answer lacks `Metadata-Flavor: Google`: not a metadata server"),
            ));
        }
        oauth_answer(&what, status, &answer, "token")
    }
}

/// `GCE_METADATA_HOST` (as the Google client libraries read it), else the
/// documented name.
pub(crate) fn metadata_base(host: Option<&str>) -> String {
    match host {
        Some(h) if h.contains("://") => h.trim_end_matches('/').to_string(),
        Some(h) => format!("http://{h}"),
        None => "http://metadata.google.internal".into(),
    }
}

/// The key file's path, for messages.
pub(crate) fn origin(source: &str, path: &std::path::Path) -> String {
    format!("{source} `{}`", PathBuf::from(path).display())
}
