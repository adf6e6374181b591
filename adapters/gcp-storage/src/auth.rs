//! Credentials: none (emulators), a bearer token, or a service-account key
//! traded for an access token with an RS256-signed JWT (RFC 7523), cached
//! until shortly before it expires.
//!
//! No secret (token, private key, signed assertion) ever goes into a
//! message: errors name the kind of credential and the account's email.

use crate::Error;
use rsa::pkcs8::DecodePrivateKey;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use serde::Deserialize;
use std::cell::RefCell;
use wharf_guest_http::encode::{base64url, sha256, uri_encode};
use wharf_guest_http::{Endpoint, Request, is_transient_status, time};

/// The OAuth scope asked for: objects read and written, nothing else.
const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Lifetime asked for in the JWT (Google's maximum).
const JWT_LIFETIME_SECS: i64 = 3600;
/// A cached token is renewed this long before it expires.
const RENEW_MARGIN_SECS: i64 = 300;

/// How requests are authenticated.
pub enum Auth {
    /// No `Authorization` header (emulators, public buckets).
    Anonymous,
    /// A fixed bearer token (config `token`).
    Token(String),
    /// A service-account key file (config `service_account_key`).
    ServiceAccount(Box<ServiceAccount>),
}

impl Auth {
    /// The `Authorization` header value, fetching a token when needed.
    pub fn header(&self) -> Result<Option<String>, Error> {
        match self {
            Auth::Anonymous => Ok(None),
            Auth::Token(t) => Ok(Some(format!("Bearer {t}"))),
            Auth::ServiceAccount(sa) => sa.access_token().map(|t| Some(format!("Bearer {t}"))),
        }
    }

    /// What the credentials are, for messages (never the secret itself).
    pub fn describe(&self) -> String {
        match self {
            Auth::Anonymous => "anonymous access".into(),
            Auth::Token(_) => "the bearer token of config key `token`".into(),
            Auth::ServiceAccount(sa) => format!("service account `{}`", sa.email),
        }
    }
}

/// A service account's key, and the token it was last traded for.
pub struct ServiceAccount {
    email: String,
    key_id: Option<String>,
    key: RsaPrivateKey,
    /// The `token_uri` of the key file, also the JWT's audience.
    token_uri: String,
    token_endpoint: Endpoint,
    cached: RefCell<Option<CachedToken>>,
}

struct CachedToken {
    token: String,
    renew_at: i64,
}

/// The fields of a key file this adapter uses.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: String,
    private_key: String,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<i64>,
}

#[derive(Deserialize, Default)]
struct TokenError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

impl ServiceAccount {
    /// Reads and checks the key file at `path` (a path inside the guest,
    /// so its directory must be granted).
    pub fn load(path: &str) -> Result<ServiceAccount, Error> {
        let invalid = |why: String| Error::Invalid(format!("config key `service_account_key`: `{path}`: {why}"));
        let text = std::fs::read_to_string(path).map_err(|e| {
            invalid(format!(
                "cannot read it ({e}); is its directory granted to the backend?"
            ))
        })?;
        // serde_json's message names a line and column, never the content.
        let file: KeyFile =
            serde_json::from_str(&text).map_err(|e| invalid(format!("not a service-account key file: {e}")))?;
        if let Some(kind) = file.kind.as_deref().filter(|k| *k != "service_account") {
            return Err(invalid(format!("its type is `{kind}`, not `service_account`")));
        }
        let key = RsaPrivateKey::from_pkcs8_pem(&file.private_key).map_err(|_| {
            invalid(format!(
                "the private_key of `{}` is not an RSA key in PKCS#8 PEM",
                file.client_email
            ))
        })?;
        let token_uri = file.token_uri.unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string());
        let token_endpoint = Endpoint::parse(&token_uri).map_err(|why| invalid(format!("token_uri: {why}")))?;
        Ok(ServiceAccount {
            email: file.client_email,
            key_id: file.private_key_id,
            key,
            token_uri,
            token_endpoint,
            cached: RefCell::new(None),
        })
    }

    /// A valid access token: the cached one, or a fresh one.
    fn access_token(&self) -> Result<String, Error> {
        let now = time::now_secs();
        if let Some(c) = self.cached.borrow().as_ref().filter(|c| now < c.renew_at) {
            return Ok(c.token.clone());
        }
        let fresh = self.exchange(now)?;
        let token = fresh.token.clone();
        *self.cached.borrow_mut() = Some(fresh);
        Ok(token)
    }

    /// The signed JWT asserting this account, valid from `now` for an hour.
    fn assertion(&self, now: i64) -> Result<String, Error> {
        let mut header = serde_json::json!({ "alg": "RS256", "typ": "JWT" });
        if let Some(kid) = &self.key_id {
            header["kid"] = kid.as_str().into();
        }
        let claims = serde_json::json!({
            "iss": self.email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + JWT_LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            base64url(header.to_string().as_bytes()),
            base64url(claims.to_string().as_bytes())
        );
        let digest = sha256(signing_input.as_bytes());
        let signature = self
            .key
            .sign(Pkcs1v15Sign::new::<rsa::sha2::Sha256>(), &digest)
            .map_err(|e| Error::Backend(format!("service account `{}`: signing the JWT failed: {e}", self.email)))?;
        Ok(format!("{signing_input}.{}", base64url(&signature)))
    }

    /// Trades a fresh JWT for an access token at `token_uri`.
    fn exchange(&self, now: i64) -> Result<CachedToken, Error> {
        let body = format!(
            "grant_type={}&assertion={}",
            uri_encode(GRANT_TYPE, false),
            self.assertion(now)?
        );
        let path = match self.token_endpoint.base_path.as_str() {
            "" => "/",
            p => p,
        };
        let request = Request::new("POST", &self.token_endpoint, path)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json");
        let response = request.send(body.as_bytes())?;
        let status = response.status;
        let what = format!("service account `{}`: token exchange at {}", self.email, self.token_uri);
        let text = response.text(64 << 10)?;
        if status != 200 {
            return Err(token_failure(&what, status, &text));
        }
        let answer: TokenResponse = serde_json::from_str(&text)
            .map_err(|e| Error::Backend(format!("{what}: the answer is not a token response: {e}")))?;
        let lifetime = answer.expires_in.unwrap_or(JWT_LIFETIME_SECS).max(0);
        Ok(CachedToken {
            token: answer.access_token,
            renew_at: now + lifetime - RENEW_MARGIN_SECS.min(lifetime / 2),
        })
    }
}

/// A refused exchange, with the OAuth error code and description only.
fn token_failure(what: &str, status: u16, body: &str) -> Error {
    let e: TokenError = serde_json::from_str(body).unwrap_or_default();
    let message = format!("{what}: HTTP {status}: {} {}", e.error, e.error_description);
    let message = message.trim_end().to_string();
    match status {
        400 | 401 | 403 => Error::Denied(message),
        s if is_transient_status(s) => Error::Transient(message),
        _ => Error::Backend(message),
    }
}
