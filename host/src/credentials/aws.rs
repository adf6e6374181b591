//! AWS credentials the host exchanges for the S3 adapter: a role assumed
//! with web identity (EKS IRSA) or with a source profile's keys, an IAM
//! Identity Center (SSO) role, a `credential_process`, container
//! credentials (ECS, EKS Pod Identity) and EC2 instance metadata (IMDSv2). Each follows the protocol the AWS SDKs
//! speak; the adapter gets `access_key_id`, `secret_access_key` and
//! `session_token`.
//!
//! Written here on the host's HTTP client rather than taken from
//! `aws-config`: that crate brings the SDK's runtime (its own HTTP stack,
//! TLS setup and async runtime glue, about 150 crates) to make six small
//! requests; what it would add beyond them (renewing the SSO token through
//! SSO OIDC, `aws login`) wharf leaves to the AWS CLI or refuses by name.

use super::{Credentials, Source, parse_time, refused, send, sigv4};
use crate::capabilities::HttpClient;
use crate::error::{Error, ErrorKind, Result};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The keys the S3 adapter takes.
const SECRET_KEYS: [&str; 2] = ["secret_access_key", "session_token"];

fn keys(id: String, secret: String, token: Option<String>, expires: Option<SystemTime>) -> Credentials {
    let mut values = vec![
        ("access_key_id".to_string(), id),
        ("secret_access_key".to_string(), secret),
    ];
    if let Some(t) = token {
        values.push(("session_token".to_string(), t));
    }
    Credentials {
        values,
        secret_keys: SECRET_KEYS.to_vec(),
        expires,
    }
}

fn value<'a>(c: &'a Credentials, key: &str) -> Option<&'a str> {
    c.values.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Where STS is: `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`, else the
/// region's own endpoint (the SDKs' default since 2024).
#[derive(Clone, Debug)]
pub(crate) struct Sts {
    pub url: String,
    pub region: String,
}

impl Sts {
    fn host(&self) -> Result<String> {
        let uri: http::Uri = self
            .url
            .parse()
            .map_err(|_| Error::config(format!("STS endpoint `{}` is not a URL", self.url)))?;
        uri.authority()
            .map(|a| a.as_str().to_string())
            .ok_or_else(|| Error::config(format!("STS endpoint `{}` names no host", self.url)))
    }

    fn what(&self, action: &str) -> String {
        format!("STS {action} at {}", self.url)
    }

    /// Posts a form to STS and returns the `<Credentials>` of the answer.
    async fn call(
        &self,
        http: &HttpClient,
        action: &str,
        form: &[(&str, &str)],
        signer: Option<&Credentials>,
    ) -> Result<Credentials> {
        // A block: the serializer is not `Send` and must not live across
        // the awaits below.
        let body = {
            let mut body = url::form_urlencoded::Serializer::new(String::new());
            body.append_pair("Action", action).append_pair("Version", "2011-06-15");
            for (k, v) in form {
                body.append_pair(k, v);
            }
            body.finish().into_bytes()
        };
        let mut request = http::Request::post(&self.url);
        match signer {
            Some(c) => {
                let k = sigv4::Keys {
                    id: value(c, "access_key_id").unwrap_or_default(),
                    secret: value(c, "secret_access_key").unwrap_or_default(),
                    token: value(c, "session_token"),
                };
                for (name, v) in sigv4::sign_post(&k, &self.region, "sts", &self.host()?, &body, SystemTime::now()) {
                    request = request.header(name, v);
                }
            }
            None => {
                request = request.header("content-type", "application/x-www-form-urlencoded; charset=utf-8");
            }
        }
        let request = request
            .body(bytes::Bytes::from(body))
            .map_err(|e| Error::config(format!("STS endpoint `{}`: {e}", self.url)))?;
        let what = self.what(action);
        let (status, _, answer) = send(http, request, &what, super::EXCHANGE_TIMEOUT).await?;
        let text = String::from_utf8_lossy(&answer);
        if status != http::StatusCode::OK {
            let detail = match (xml_tag(&text, "Code"), xml_tag(&text, "Message")) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c,
                _ => String::new(),
            };
            return Err(refused(&what, status, &detail));
        }
        let bad = |field: &str| Error::new(ErrorKind::Backend, format!("{what}: the answer has no {field}"));
        let id = xml_tag(&text, "AccessKeyId").ok_or_else(|| bad("AccessKeyId"))?;
        let secret = xml_tag(&text, "SecretAccessKey").ok_or_else(|| bad("SecretAccessKey"))?;
        let token = xml_tag(&text, "SessionToken").ok_or_else(|| bad("SessionToken"))?;
        let expires = xml_tag(&text, "Expiration").ok_or_else(|| bad("Expiration"))?;
        let expires = parse_time(&expires).map_err(|why| Error::new(ErrorKind::Backend, format!("{what}: {why}")))?;
        Ok(keys(id, secret, Some(token), Some(expires)))
    }
}

/// The text of the first `<name>...</name>` in a flat XML answer, with the
/// five predefined entities decoded.
pub(crate) fn xml_tag(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(
        xml[start..end]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// `wharf-<unix seconds>`: the session name the SDKs would make up.
fn session_name() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("wharf-{secs}")
}

/// Keys that are there to be read (a source profile's), as a source for
/// an assumed role.
pub(crate) struct Static {
    pub id: String,
    pub secret: String,
    pub token: Option<String>,
    /// Where they were read.
    pub origin: String,
}

#[async_trait::async_trait]
impl Source for Static {
    fn describe(&self) -> String {
        format!("keys of {}", self.origin)
    }
    fn endpoints(&self) -> Vec<String> {
        Vec::new()
    }
    async fn fetch(&self, _http: &HttpClient) -> Result<Credentials> {
        Ok(keys(self.id.clone(), self.secret.clone(), self.token.clone(), None))
    }
}

/// `AssumeRoleWithWebIdentity` with a token file (EKS IRSA, or a profile's
/// `web_identity_token_file`). The token file is read again at each
/// exchange: the platform rotates it.
pub(crate) struct WebIdentity {
    pub role_arn: String,
    pub token_file: PathBuf,
    pub session_name: Option<String>,
    pub duration: Option<u32>,
    pub sts: Sts,
    /// Where it was configured (`AWS_ROLE_ARN`, a profile).
    pub origin: String,
}

#[async_trait::async_trait]
impl Source for WebIdentity {
    fn describe(&self) -> String {
        format!(
            "web identity ({}): role `{}`, token file `{}`",
            self.origin,
            self.role_arn,
            self.token_file.display()
        )
    }
    fn endpoints(&self) -> Vec<String> {
        vec![self.sts.url.clone()]
    }
    async fn fetch(&self, http: &HttpClient) -> Result<Credentials> {
        let token = tokio::fs::read_to_string(&self.token_file).await.map_err(|e| {
            Error::new(
                ErrorKind::Denied,
                format!("reading the token file `{}`: {e}", self.token_file.display()),
            )
        })?;
        let session = self.session_name.clone().unwrap_or_else(session_name);
        let duration = self.duration.map(|d| d.to_string());
        let mut form = vec![
            ("RoleArn", self.role_arn.as_str()),
            ("RoleSessionName", session.as_str()),
            ("WebIdentityToken", token.trim()),
        ];
        if let Some(d) = &duration {
            form.push(("DurationSeconds", d));
        }
        self.sts.call(http, "AssumeRoleWithWebIdentity", &form, None).await
    }
}

/// `AssumeRole` signed with another source's credentials (a profile's
/// `role_arn` with `source_profile` or `credential_source`).
pub(crate) struct AssumeRole {
    pub role_arn: String,
    pub external_id: Option<String>,
    pub session_name: Option<String>,
    pub duration: Option<u32>,
    pub sts: Sts,
    pub source: Arc<dyn Source>,
    pub origin: String,
}

#[async_trait::async_trait]
impl Source for AssumeRole {
    fn describe(&self) -> String {
        format!(
            "assumed role `{}` ({}), with {}",
            self.role_arn,
            self.origin,
            self.source.describe()
        )
    }
    fn endpoints(&self) -> Vec<String> {
        let mut e = self.source.endpoints();
        e.push(self.sts.url.clone());
        e
    }
    async fn fetch(&self, http: &HttpClient) -> Result<Credentials> {
        let signer = self.source.fetch(http).await.map_err(|e| {
            Error::new(
                e.kind(),
                format!("its source {}: {}", self.source.describe(), e.message()),
            )
        })?;
        let session = self.session_name.clone().unwrap_or_else(session_name);
        let duration = self.duration.map(|d| d.to_string());
        let mut form = vec![
            ("RoleArn", self.role_arn.as_str()),
            ("RoleSessionName", session.as_str()),
        ];
        if let Some(d) = &duration {
            form.push(("DurationSeconds", d));
        }
        if let Some(x) = &self.external_id {
            form.push(("ExternalId", x));
        }
        self.sts.call(http, "AssumeRole", &form, Some(&signer)).await
    }
}

/// The JSON credential endpoints and processes answer (container
/// credentials, IMDS, `credential_process` version 1).
fn from_json(what: &str, answer: &[u8]) -> Result<Credentials> {
    let bad = |why: String| Error::new(ErrorKind::Backend, format!("{what}: {why}"));
    let v: serde_json::Value =
        serde_json::from_slice(answer).map_err(|e| bad(format!("the answer is not JSON ({e})")))?;
    let field = |name: &str| v.get(name).and_then(|f| f.as_str()).map(str::to_string);
    if let Some(code) = field("Code")
        && code != "Success"
    {
        return Err(Error::new(
            ErrorKind::Denied,
            format!(
                "{what}: answered Code `{code}`: {}",
                field("Message").unwrap_or_default()
            ),
        ));
    }
    let id = field("AccessKeyId").ok_or_else(|| bad("the answer has no AccessKeyId".into()))?;
    let secret = field("SecretAccessKey").ok_or_else(|| bad("the answer has no SecretAccessKey".into()))?;
    let token = field("Token").or_else(|| field("SessionToken"));
    let expires = match field("Expiration") {
        Some(e) => Some(parse_time(&e).map_err(bad)?),
        None => None,
    };
    Ok(keys(id, secret, token, expires))
}

/// IAM Identity Center (SSO): the access token `aws sso login` cached is
/// traded at the portal (`GetRoleCredentials`: `GET
/// /federation/credentials?role_name=&account_id=` with
/// `x-amz-sso_bearer_token`) for the role's keys. The cache file is read
/// at each exchange, so a new `aws sso login` is picked up; an expired or
/// missing token is `denied`, saying to log in again. (botocore also
/// renews the token itself through SSO OIDC with the cached refresh token;
/// wharf does not, so a session lasts as long as the login.)
pub(crate) struct Sso {
    pub portal: String,
    pub account_id: String,
    pub role_name: String,
    pub cache_file: PathBuf,
    pub start_url: String,
    pub profile: String,
}

impl Sso {
    /// The cached access token, if it is still valid.
    async fn token(&self) -> Result<String> {
        let login = format!("run `aws sso login --profile {}`", self.profile);
        let denied = |why: String| {
            Error::new(
                ErrorKind::Denied,
                format!("SSO token cache `{}`: {why}; {login}", self.cache_file.display()),
            )
        };
        let text = match tokio::fs::read(&self.cache_file).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(denied(format!("no token for {} (not logged in)", self.start_url)));
            }
            Err(e) => return Err(denied(e.to_string())),
        };
        let v: serde_json::Value = serde_json::from_slice(&text).map_err(|e| denied(format!("not JSON ({e})")))?;
        let field = |name: &str| v.get(name).and_then(|f| f.as_str());
        let token = field("accessToken").ok_or_else(|| denied("no accessToken".into()))?;
        let expires = field("expiresAt").ok_or_else(|| denied("no expiresAt".into()))?;
        let expires = parse_time(expires).map_err(denied)?;
        if expires <= SystemTime::now() {
            return Err(denied(format!(
                "the token expired at {}",
                humantime::format_rfc3339_seconds(expires)
            )));
        }
        Ok(token.to_string())
    }
}

#[async_trait::async_trait]
impl Source for Sso {
    fn describe(&self) -> String {
        format!(
            "IAM Identity Center role `{}` in account {} (profile `{}`, token cached by `aws sso login` in {})",
            self.role_name,
            self.account_id,
            self.profile,
            self.cache_file.display()
        )
    }
    fn endpoints(&self) -> Vec<String> {
        vec![self.portal.clone()]
    }
    async fn fetch(&self, http: &HttpClient) -> Result<Credentials> {
        let token = self.token().await?;
        let what = format!("the SSO portal at {} (role `{}`)", self.portal, self.role_name);
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("role_name", &self.role_name)
            .append_pair("account_id", &self.account_id)
            .finish();
        let request = http::Request::get(format!("{}/federation/credentials?{query}", self.portal))
            .header("x-amz-sso_bearer_token", token)
            .header("accept", "application/json")
            .body(bytes::Bytes::new())
            .map_err(|e| Error::config(format!("{what}: {e}")))?;
        let (status, _, answer) = send(http, request, &what, Duration::from_secs(30)).await?;
        if status != http::StatusCode::OK {
            // The portal's JSON error names the reason, never the token.
            let detail = serde_json::from_slice::<serde_json::Value>(&answer)
                .ok()
                .and_then(|v| v.get("message").or_else(|| v.get("Message")).cloned())
                .and_then(|m| m.as_str().map(str::to_string))
                .unwrap_or_default();
            return Err(refused(&what, status, &detail));
        }
        let bad = |why: &str| Error::new(ErrorKind::Backend, format!("{what}: {why}"));
        let v: serde_json::Value = serde_json::from_slice(&answer).map_err(|_| bad("the answer is not JSON"))?;
        let c = v
            .get("roleCredentials")
            .ok_or_else(|| bad("the answer has no roleCredentials"))?;
        let field = |name: &str| c.get(name).and_then(|f| f.as_str()).map(str::to_string);
        let id = field("accessKeyId").ok_or_else(|| bad("no accessKeyId"))?;
        let secret = field("secretAccessKey").ok_or_else(|| bad("no secretAccessKey"))?;
        // Milliseconds since the epoch.
        let expires = c
            .get("expiration")
            .and_then(serde_json::Value::as_u64)
            .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
            .ok_or_else(|| bad("no expiration"))?;
        Ok(keys(id, secret, field("sessionToken"), Some(expires)))
    }
}

/// A profile's `credential_process`: run through `sh -c`, its standard
/// output the JSON of version 1; its standard error goes to wharf's.
pub(crate) struct Process {
    pub command: String,
    pub origin: String,
}

/// How long a `credential_process` may run.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);

#[async_trait::async_trait]
impl Source for Process {
    fn describe(&self) -> String {
        format!("credential_process of {}", self.origin)
    }
    fn endpoints(&self) -> Vec<String> {
        Vec::new()
    }
    async fn fetch(&self, _http: &HttpClient) -> Result<Credentials> {
        let what = "the command";
        let child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::new(ErrorKind::Denied, format!("starting {what}: {e}")))?;
        let out = tokio::time::timeout(PROCESS_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| Error::new(ErrorKind::Denied, format!("{what} ran longer than {PROCESS_TIMEOUT:?}")))?
            .map_err(|e| Error::new(ErrorKind::Denied, format!("running {what}: {e}")))?;
        if !out.status.success() {
            return Err(Error::new(
                ErrorKind::Denied,
                format!("{what} failed ({}; its message is above)", out.status),
            ));
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| Error::new(ErrorKind::Denied, format!("{what} printed no JSON ({e})")))?;
        if v.get("Version").and_then(|x| x.as_u64()) != Some(1) {
            return Err(Error::new(
                ErrorKind::Denied,
                format!("{what} printed JSON without `\"Version\": 1`"),
            ));
        }
        from_json(what, &out.stdout)
    }
}

/// Where a container credentials request gets its `Authorization` header.
pub(crate) enum ContainerToken {
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`, read at each exchange
    /// (EKS Pod Identity rotates it).
    File(PathBuf),
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
    Value(String),
}

/// Container credentials: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (ECS)
/// or `AWS_CONTAINER_CREDENTIALS_FULL_URI` (EKS Pod Identity, Greengrass).
pub(crate) struct Container {
    pub url: String,
    pub token: Option<ContainerToken>,
    pub origin: &'static str,
}

impl Container {
    /// The SDKs' rule for `FULL_URI`: https anywhere, plain http only to
    /// loopback or the ECS/EKS link-local agents.
    pub(crate) fn check_full_uri(url: &str) -> std::result::Result<(), String> {
        let uri: http::Uri = url.parse().map_err(|_| format!("`{url}` is not a URL"))?;
        match uri.scheme_str() {
            Some("https") => Ok(()),
            Some("http") => {
                let host = uri.host().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
                let allowed = match host.parse::<std::net::IpAddr>() {
                    Ok(ip) => {
                        ip.is_loopback()
                            || ip == std::net::IpAddr::from([169, 254, 170, 2])
                            || ip == std::net::IpAddr::from([169, 254, 170, 23])
                            || host.eq_ignore_ascii_case("fd00:ec2::23")
                    }
                    Err(_) => host == "localhost",
                };
                if allowed {
                    Ok(())
                } else {
                    Err(format!(
                        "`{url}`: plain http is allowed only to loopback, 169.254.170.2, 169.254.170.23 or fd00:ec2::23"
                    ))
                }
            }
            _ => Err(format!("`{url}` is neither http nor https")),
        }
    }
}

#[async_trait::async_trait]
impl Source for Container {
    fn describe(&self) -> String {
        let token = match &self.token {
            Some(ContainerToken::File(p)) => format!(", authorization token file `{}`", p.display()),
            Some(ContainerToken::Value(_)) => ", AWS_CONTAINER_AUTHORIZATION_TOKEN".into(),
            None => String::new(),
        };
        format!("container credentials ({}) at {}{token}", self.origin, self.url)
    }
    fn endpoints(&self) -> Vec<String> {
        vec![self.url.clone()]
    }
    async fn fetch(&self, http: &HttpClient) -> Result<Credentials> {
        let what = format!("container credentials at {}", self.url);
        let mut request = http::Request::get(&self.url).header("accept", "application/json");
        match &self.token {
            Some(ContainerToken::File(p)) => {
                let t = tokio::fs::read_to_string(p).await.map_err(|e| {
                    Error::new(
                        ErrorKind::Denied,
                        format!("reading the authorization token file `{}`: {e}", p.display()),
                    )
                })?;
                request = request.header("authorization", t.trim());
            }
            Some(ContainerToken::Value(t)) => request = request.header("authorization", t.trim()),
            None => {}
        }
        let request = request
            .body(bytes::Bytes::new())
            .map_err(|e| Error::config(format!("{what}: {e}")))?;
        let (status, _, answer) = send(http, request, &what, Duration::from_secs(5)).await?;
        if status != http::StatusCode::OK {
            return Err(refused(&what, status, &String::from_utf8_lossy(&answer)));
        }
        from_json(&what, &answer)
    }
}

/// EC2 instance metadata, IMDSv2: a session token from `PUT
/// /latest/api/token`, then the instance role's credentials with it.
/// `fallback`: when nothing answers (not on EC2), anonymous requests
/// instead of an error, as the last source of the chain.
pub(crate) struct Imds {
    pub endpoint: String,
    pub fallback: bool,
}

/// How long IMDS may take to answer (the SDKs' one second).
const IMDS_TIMEOUT: Duration = Duration::from_secs(1);
/// The session token's lifetime asked for (the SDKs' six hours).
const IMDS_TOKEN_TTL: &str = "21600";

#[async_trait::async_trait]
impl Source for Imds {
    fn describe(&self) -> String {
        if self.fallback {
            format!(
                "EC2 instance metadata (IMDSv2) at {}, else anonymous requests",
                self.endpoint
            )
        } else {
            format!("EC2 instance metadata (IMDSv2) at {}", self.endpoint)
        }
    }
    fn endpoints(&self) -> Vec<String> {
        vec![self.endpoint.clone()]
    }
    async fn fetch(&self, http: &HttpClient) -> Result<Credentials> {
        let base = self.endpoint.trim_end_matches('/');
        let what = format!("EC2 instance metadata at {base}");
        let put = http::Request::put(format!("{base}/latest/api/token"))
            .header("x-aws-ec2-metadata-token-ttl-seconds", IMDS_TOKEN_TTL)
            .body(bytes::Bytes::new())
            .map_err(|e| Error::config(format!("{what}: {e}")))?;
        let (status, _, token) = match send(http, put, &what, IMDS_TIMEOUT).await {
            Ok(answer) => answer,
            Err(e) if self.fallback && e.kind() == ErrorKind::Unreachable => {
                tracing::debug!("{}; no credentials found: anonymous requests", e.message());
                return Ok(Credentials {
                    values: Vec::new(),
                    secret_keys: Vec::new(),
                    expires: None,
                });
            }
            Err(e) => return Err(e),
        };
        if status != http::StatusCode::OK {
            return Err(refused(&format!("{what} (token)"), status, ""));
        }
        let token = String::from_utf8_lossy(&token).trim().to_string();
        let get = |path: String| {
            http::Request::get(format!("{base}{path}"))
                .header("x-aws-ec2-metadata-token", token.as_str())
                .body(bytes::Bytes::new())
                .map_err(|e| Error::config(format!("{what}: {e}")))
        };
        let roles_path = "/latest/meta-data/iam/security-credentials/".to_string();
        let (status, _, roles) = send(http, get(roles_path.clone())?, &what, IMDS_TIMEOUT * 5).await?;
        if status != http::StatusCode::OK {
            return Err(refused(
                &format!("{what} (instance role)"),
                status,
                "is an instance profile attached?",
            ));
        }
        let roles = String::from_utf8_lossy(&roles);
        let role = roles
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .ok_or_else(|| Error::new(ErrorKind::Denied, format!("{what}: the instance has no role")))?
            .to_string();
        if role.contains(['/', '?', '#']) {
            return Err(Error::new(
                ErrorKind::Backend,
                format!("{what}: a role name with `/`, `?` or `#`"),
            ));
        }
        let (status, _, answer) = send(http, get(format!("{roles_path}{role}"))?, &what, IMDS_TIMEOUT * 5).await?;
        if status != http::StatusCode::OK {
            return Err(refused(&format!("{what} (role `{role}`)"), status, ""));
        }
        from_json(&format!("{what} (role `{role}`)"), &answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_fields_and_entities() {
        let x = "<R><Credentials><AccessKeyId>ASIA1</AccessKeyId><SessionToken>a&amp;b/c+d=</SessionToken></Credentials></R>";
        assert_eq!(xml_tag(x, "AccessKeyId").as_deref(), Some("ASIA1"));
        assert_eq!(xml_tag(x, "SessionToken").as_deref(), Some("a&b/c+d="));
        assert_eq!(xml_tag(x, "Expiration"), None);
    }

    #[test]
    fn full_uri_rule() {
        assert!(Container::check_full_uri("http://127.0.0.1:8080/creds").is_ok());
        assert!(Container::check_full_uri("http://169.254.170.23/v1/credentials").is_ok());
        assert!(Container::check_full_uri("https://creds.example.com/x").is_ok());
        assert!(Container::check_full_uri("http://creds.example.com/x").is_err());
        assert!(Container::check_full_uri("http://10.0.0.1/x").is_err());
    }

    #[test]
    fn json_answers() {
        let c = from_json(
            "t",
            br#"{"Code":"Success","AccessKeyId":"ASIA2","SecretAccessKey":"s3cr3t-value","Token":"tok","Expiration":"2030-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(value(&c, "access_key_id"), Some("ASIA2"));
        assert_eq!(value(&c, "session_token"), Some("tok"));
        assert!(c.expires.is_some());
        let e = from_json("t", br#"{"Code":"AssumeRoleUnauthorizedAccess","Message":"no role"}"#).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Denied);
        assert!(from_json("t", b"<html>").is_err());
    }
}
