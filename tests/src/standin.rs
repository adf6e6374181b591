//! Stand-in servers for credential endpoints that no real server here
//! implements: EC2 instance metadata (IMDSv2), ECS/EKS container
//! credentials, the IAM Identity Center portal, the GCE metadata server,
//! Google's OAuth token endpoint, the Microsoft Entra ID token endpoint and
//! Azure's instance metadata service.
//! **Each is a stand-in**, written from the provider's published protocol
//! (cited on each), on 127.0.0.1, and counts the credentials it issues so a
//! test sees how many exchanges the host made.
//!
//! One small HTTP/1.1 server (a thread per connection, `Connection: close`)
//! runs a handler per request; dropping it stops it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// One request as the stand-in read it (header names lower-case).
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

/// An answer: status, extra headers, body.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn json(status: u16, v: &serde_json::Value) -> Self {
        Response::new(status, v.to_string()).header("content-type", "application/json")
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// A running stand-in; stops when dropped.
pub struct StandIn {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    /// Credentials issued so far.
    pub issued: Arc<AtomicU32>,
}

impl StandIn {
    fn start(issued: Arc<AtomicU32>, handler: Arc<Handler>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("stand-in binds");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let handler = handler.clone();
                std::thread::spawn(move || serve(conn, &*handler));
            }
        });
        StandIn { addr, stop, issued }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    pub fn issued(&self) -> u32 {
        self.issued.load(Ordering::SeqCst)
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn serve(conn: TcpStream, handler: &Handler) {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len.min(1 << 20)];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let r = handler(&Request {
        method,
        path,
        headers,
        body,
    });
    let mut out = format!(
        "HTTP/1.1 {} X\r\ncontent-length: {}\r\nconnection: close\r\n",
        r.status,
        r.body.len()
    );
    for (k, v) in &r.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut conn = conn;
    let _ = conn.write_all(out.as_bytes());
    let _ = conn.write_all(&r.body);
}

/// RFC 3339 `Z` time `lifetime` from now.
pub fn expiry(lifetime: Duration) -> String {
    let t = SystemTime::now() + lifetime;
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// AWS keys a stand-in hands out: the key pair a test's S3 server checks
/// signatures with, so a request signed with anything else is refused.
#[derive(Clone)]
pub struct AwsKeys {
    pub id: String,
    pub secret: String,
}

/// **Stand-in** for EC2 instance metadata, IMDSv2 as documented in the EC2
/// user guide ("Use the Instance Metadata Service to access instance
/// metadata"): `PUT /latest/api/token` with
/// `X-aws-ec2-metadata-token-ttl-seconds` (1–21600) gives a session token;
/// every `GET` must carry it in `X-aws-ec2-metadata-token` (401 without);
/// `/latest/meta-data/iam/security-credentials/` names the role, and the
/// role's path answers its credentials as JSON.
pub fn imds(keys: AwsKeys, role: &'static str, lifetime: Duration) -> StandIn {
    let issued = Arc::new(AtomicU32::new(0));
    let counter = issued.clone();
    let sessions: Arc<Mutex<Vec<String>>> = Arc::default();
    StandIn::start(
        issued,
        Arc::new(move |r: &Request| {
            if r.method == "PUT" && r.path == "/latest/api/token" {
                let ttl: Option<u32> = r
                    .headers
                    .get("x-aws-ec2-metadata-token-ttl-seconds")
                    .and_then(|t| t.parse().ok());
                if !ttl.is_some_and(|t| (1..=21_600).contains(&t)) {
                    return Response::new(400, "missing or invalid TTL");
                }
                let mut s = sessions.lock().unwrap();
                let token = format!("imds-session-token-{}", s.len() + 1);
                s.push(token.clone());
                return Response::new(200, token);
            }
            let authorized = r
                .headers
                .get("x-aws-ec2-metadata-token")
                .is_some_and(|t| sessions.lock().unwrap().contains(t));
            if !authorized {
                return Response::new(401, "");
            }
            match (
                r.method.as_str(),
                r.path.strip_prefix("/latest/meta-data/iam/security-credentials/"),
            ) {
                ("GET", Some("")) => Response::new(200, role),
                ("GET", Some(name)) if name == role => {
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    Response::json(
                        200,
                        &serde_json::json!({
                            "Code": "Success",
                            "LastUpdated": expiry(Duration::ZERO),
                            "Type": "AWS-HMAC",
                            "AccessKeyId": keys.id,
                            "SecretAccessKey": keys.secret,
                            "Token": format!("imds-session-credential-{n}"),
                            "Expiration": expiry(lifetime),
                        }),
                    )
                }
                _ => Response::new(404, ""),
            }
        }),
    )
}

/// **Stand-in** for ECS task / EKS Pod Identity container credentials, as
/// the ECS developer guide ("Task IAM role") and the EKS Pod Identity agent
/// document them: a `GET` of the credentials path, with the authorization
/// token (EKS: the content of `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`) in
/// `Authorization`; 401 without or with another token.
pub fn container(keys: AwsKeys, path: &'static str, token: Option<String>, lifetime: Duration) -> StandIn {
    let issued = Arc::new(AtomicU32::new(0));
    let counter = issued.clone();
    StandIn::start(
        issued,
        Arc::new(move |r: &Request| {
            if r.method != "GET" || r.path != path {
                return Response::new(404, "");
            }
            if let Some(t) = &token
                && r.headers.get("authorization") != Some(t)
            {
                return Response::json(401, &serde_json::json!({"Message": "invalid authorization token"}));
            }
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            Response::json(
                200,
                &serde_json::json!({
                    "AccessKeyId": keys.id,
                    "SecretAccessKey": keys.secret,
                    "Token": format!("container-session-credential-{n}"),
                    "Expiration": expiry(lifetime),
                    "RoleArn": "arn:aws:iam::123456789012:role/wharf-test",
                }),
            )
        }),
    )
}

/// **Stand-in** for the IAM Identity Center portal's `GetRoleCredentials`
/// (AWS SSO Portal API reference): `GET
/// /federation/credentials?role_name=R&account_id=A` with the access token
/// of `aws sso login` in `x-amz-sso_bearer_token`; 401
/// `UnauthorizedException` for another token, 403 `ForbiddenException` for
/// another role or account; 200 `{"roleCredentials": {accessKeyId,
/// secretAccessKey, sessionToken, expiration}}`, the expiration in
/// milliseconds since the epoch.
pub fn sso_portal(
    keys: AwsKeys,
    account: &'static str,
    role: &'static str,
    token: &'static str,
    lifetime: Duration,
) -> StandIn {
    let issued = Arc::new(AtomicU32::new(0));
    let counter = issued.clone();
    StandIn::start(
        issued,
        Arc::new(move |r: &Request| {
            let Some(query) = r.path.strip_prefix("/federation/credentials?") else {
                return Response::new(404, "");
            };
            let params: HashMap<&str, &str> = query.split('&').filter_map(|kv| kv.split_once('=')).collect();
            if r.method != "GET" {
                return Response::new(405, "");
            }
            if r.headers.get("x-amz-sso_bearer_token").map(String::as_str) != Some(token) {
                return Response::json(
                    401,
                    &serde_json::json!({"message": "Session token not found or invalid"}),
                )
                .header("x-amzn-errortype", "UnauthorizedException");
            }
            if params.get("account_id") != Some(&account) || params.get("role_name") != Some(&role) {
                return Response::json(403, &serde_json::json!({"message": "No access"}))
                    .header("x-amzn-errortype", "ForbiddenException");
            }
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let expires = (SystemTime::now() + lifetime)
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
            Response::json(
                200,
                &serde_json::json!({
                    "roleCredentials": {
                        "accessKeyId": keys.id,
                        "secretAccessKey": keys.secret,
                        "sessionToken": format!("sso-session-credential-{n}"),
                        "expiration": expires,
                    }
                }),
            )
        }),
    )
}

/// **Stand-in** for the GCE metadata server ("About VM metadata", Compute
/// Engine docs): `GET
/// /computeMetadata/v1/instance/service-accounts/default/token` with
/// `Metadata-Flavor: Google` (403 without) answers an OAuth access token,
/// and every answer carries `Metadata-Flavor: Google`.
pub fn gce_metadata(lifetime: Duration) -> StandIn {
    let issued = Arc::new(AtomicU32::new(0));
    let counter = issued.clone();
    StandIn::start(
        issued,
        Arc::new(move |r: &Request| {
            if r.headers.get("metadata-flavor").map(String::as_str) != Some("Google") {
                return Response::new(403, "Missing Metadata-Flavor:Google header.");
            }
            if r.path != "/computeMetadata/v1/instance/service-accounts/default/token" {
                return Response::new(404, "").header("metadata-flavor", "Google");
            }
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            Response::json(
                200,
                &serde_json::json!({
                    "access_token": format!("ya29.metadata-token-{n}"),
                    "expires_in": lifetime.as_secs(),
                    "token_type": "Bearer",
                }),
            )
            .header("metadata-flavor", "Google")
        }),
    )
}

/// What a [`google_token`] stand-in checks an assertion against.
pub struct GoogleAccount {
    pub client_email: String,
    /// The RSA public key (PKCS#1 DER) the JWT must verify with.
    pub public_key: Vec<u8>,
    /// For the refresh-token grant.
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
}

/// **Stand-in** for Google's OAuth 2.0 token endpoint: the JWT-bearer grant
/// of service accounts (RFC 7523, "Using OAuth 2.0 for Server to Server
/// Applications": RS256 signature, `iss`, `aud` = this endpoint, `scope`,
/// `iat`/`exp` at most an hour apart) and the refresh-token grant (RFC 6749
/// §6). Bad grants answer 400 `invalid_grant`, as Google does.
pub fn google_token(account: GoogleAccount, lifetime: Duration) -> StandIn {
    let issued = Arc::new(AtomicU32::new(0));
    let counter = issued.clone();
    let aud: Arc<Mutex<String>> = Arc::default();
    let aud2 = aud.clone();
    let s = StandIn::start(
        issued,
        Arc::new(move |r: &Request| {
            if r.method != "POST" || r.path != "/token" {
                return Response::new(404, "");
            }
            let form: HashMap<String, String> = form_decode(&String::from_utf8_lossy(&r.body));
            let invalid = |why: &str| {
                Response::json(
                    400,
                    &serde_json::json!({"error": "invalid_grant", "error_description": why}),
                )
            };
            let ok = match form.get("grant_type").map(String::as_str) {
                Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
                    match check_jwt(
                        form.get("assertion").map_or("", String::as_str),
                        &account,
                        &aud2.lock().unwrap(),
                    ) {
                        Ok(()) => true,
                        Err(why) => return invalid(&why),
                    }
                }
                Some("refresh_token") => {
                    form.get("client_id") == Some(&account.client_id)
                        && form.get("client_secret") == Some(&account.client_secret)
                        && form.get("refresh_token") == Some(&account.refresh_token)
                }
                _ => return Response::json(400, &serde_json::json!({"error": "unsupported_grant_type"})),
            };
            if !ok {
                return invalid("Bad Request");
            }
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            Response::json(
                200,
                &serde_json::json!({
                    "access_token": format!("ya29.oauth-token-{n}"),
                    "expires_in": lifetime.as_secs(),
                    "token_type": "Bearer",
                }),
            )
        }),
    );
    *aud.lock().unwrap() = format!("{}/token", s.url());
    s
}

/// What an [`entra_token`] stand-in accepts: one service principal of one
/// tenant, by client secret or by federated token (workload identity).
pub struct EntraApp {
    pub tenant: String,
    pub client_id: String,
    pub client_secret: String,
    /// The Kubernetes service-account token the federation trusts.
    pub federated_token: String,
}

/// An access token as Entra issues them for Azure Storage: a JWT with
/// `aud` `https://storage.azure.com`, `iss` `https://sts.windows.net/<tenant>/`
/// and `iat`/`nbf`/`exp`, which is what Azurite's `--oauth basic` checks.
/// Its signature is not a real one (Azurite checks none; no Entra key
/// exists here).
fn storage_jwt(tenant: &str, subject: &str, lifetime: Duration) -> String {
    use base64::Engine as _;
    let b64 = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "kid": "stand-in"});
    let claims = serde_json::json!({
        "aud": "https://storage.azure.com",
        "iss": format!("https://sts.windows.net/{tenant}/"),
        "iat": now,
        "nbf": now,
        "exp": now + lifetime.as_secs(),
        "oid": subject,
        "tid": tenant,
        "ver": "1.0",
    });
    format!("{}.{}.c3RhbmQtaW4", b64(&header), b64(&claims))
}

/// **Stand-in** for the Microsoft Entra ID v2.0 token endpoint ("Microsoft
/// identity platform and the OAuth 2.0 client credentials flow"): `POST
/// /<tenant>/oauth2/v2.0/token` with `grant_type=client_credentials`, a
/// `scope` ending in `/.default`, and either `client_secret` or a
/// `client_assertion` of type `jwt-bearer` (workload identity federation).
/// Refusals are Entra's: 400 `invalid_request` AADSTS90002 for an unknown
/// tenant, 401 `invalid_client` AADSTS7000215 for a wrong secret, 400
/// `invalid_client` AADSTS700211 for an untrusted assertion, each with a
/// second line of trace IDs.
pub fn entra_token(app: EntraApp, lifetime: Duration) -> StandIn {
    let issued = Arc::new(AtomicU32::new(0));
    let counter = issued.clone();
    StandIn::start(
        issued,
        Arc::new(move |r: &Request| {
            let refuse = |status: u16, error: &str, description: &str| {
                Response::json(
                    status,
                    &serde_json::json!({
                        "error": error,
                        "error_description": format!("{description}\r\nTrace ID: 0000 Correlation ID: 0000 Timestamp: 2026-01-01 00:00:00Z"),
                        "error_codes": [description[6..description.find(':').unwrap_or(6)].parse::<u32>().unwrap_or(0)],
                    }),
                )
            };
            let path_ok = r.method == "POST" && r.path == format!("/{}/oauth2/v2.0/token", app.tenant);
            if !path_ok {
                return refuse(
                    400,
                    "invalid_request",
                    "AADSTS90002: Tenant not found. Check to make sure you have the correct tenant ID.",
                );
            }
            let form = form_decode(&String::from_utf8_lossy(&r.body));
            let field = |k: &str| form.get(k).map(String::as_str);
            if field("grant_type") != Some("client_credentials")
                || field("scope") != Some("https://storage.azure.com/.default")
            {
                return refuse(
                    400,
                    "invalid_scope",
                    "AADSTS1002012: The provided value for scope is not valid.",
                );
            }
            if field("client_id") != Some(app.client_id.as_str()) {
                return refuse(
                    400,
                    "unauthorized_client",
                    "AADSTS700016: Application was not found in the directory.",
                );
            }
            match (
                field("client_secret"),
                field("client_assertion_type"),
                field("client_assertion"),
            ) {
                (Some(secret), None, None) if secret == app.client_secret => {}
                (Some(_), None, None) => {
                    return refuse(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.");
                }
                (None, Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"), Some(a))
                    if a == app.federated_token => {}
                (None, Some(_), Some(_)) => {
                    return refuse(
                        400,
                        "invalid_client",
                        "AADSTS700211: No matching federated identity record found for presented assertion issuer.",
                    );
                }
                _ => {
                    return refuse(
                        400,
                        "invalid_client",
                        "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                    );
                }
            }
            counter.fetch_add(1, Ordering::SeqCst);
            Response::json(
                200,
                &serde_json::json!({
                    "token_type": "Bearer",
                    "expires_in": lifetime.as_secs(),
                    "ext_expires_in": lifetime.as_secs(),
                    "access_token": storage_jwt(&app.tenant, &app.client_id, lifetime),
                }),
            )
        }),
    )
}

/// **Stand-in** for Azure's instance metadata service, managed identity
/// ("How to use managed identities for Azure resources on an Azure VM to
/// acquire an access token"): `GET
/// /metadata/identity/oauth2/token?api-version=2018-02-01&resource=...`
/// with `Metadata: true` (400 without), answering a token whose
/// `expires_in` and `expires_on` are strings, as IMDS gives them. A
/// `client_id` other than `user_assigned` (when given) is 400 "Identity not
/// found".
pub fn azure_imds(tenant: &'static str, user_assigned: Option<&'static str>, lifetime: Duration) -> StandIn {
    let issued = Arc::new(AtomicU32::new(0));
    let counter = issued.clone();
    StandIn::start(
        issued,
        Arc::new(move |r: &Request| {
            let refuse = |why: &str| {
                Response::json(
                    400,
                    &serde_json::json!({"error": "invalid_request", "error_description": why}),
                )
            };
            if r.headers.get("metadata").map(String::as_str) != Some("true") {
                return refuse("Required metadata header not specified");
            }
            let (path, query) = r.path.split_once('?').unwrap_or((&r.path, ""));
            let query = form_decode(query);
            if r.method != "GET" || path != "/metadata/identity/oauth2/token" {
                return Response::new(404, "");
            }
            if query.get("api-version").map(String::as_str) != Some("2018-02-01") {
                return refuse("Invalid API version");
            }
            if query.get("resource").map(String::as_str) != Some("https://storage.azure.com") {
                return refuse("Resource not supported by this stand-in");
            }
            if query.get("client_id").map(String::as_str) != user_assigned {
                return refuse("Identity not found");
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            Response::json(
                200,
                &serde_json::json!({
                    "access_token": storage_jwt(tenant, user_assigned.unwrap_or("system-assigned"), lifetime),
                    "refresh_token": "",
                    "expires_in": lifetime.as_secs().to_string(),
                    "expires_on": (now + lifetime.as_secs()).to_string(),
                    "not_before": now.to_string(),
                    "resource": "https://storage.azure.com",
                    "token_type": "Bearer",
                }),
            )
        }),
    )
}

fn form_decode(s: &str) -> HashMap<String, String> {
    s.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (pct_decode(k), pct_decode(v)))
        .collect()
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(v)) => {
                out.push(v);
                i += 2;
            }
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn b64url(s: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|e| format!("not base64url: {e}"))
}

fn check_jwt(jwt: &str, account: &GoogleAccount, aud: &str) -> Result<(), String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [h, c, sig] = parts[..] else {
        return Err("not a JWT".into());
    };
    let key =
        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, &account.public_key);
    key.verify(format!("{h}.{c}").as_bytes(), &b64url(sig)?)
        .map_err(|_| "Invalid JWT Signature.".to_string())?;
    let header: serde_json::Value = serde_json::from_slice(&b64url(h)?).map_err(|e| e.to_string())?;
    let claims: serde_json::Value = serde_json::from_slice(&b64url(c)?).map_err(|e| e.to_string())?;
    if header["alg"] != "RS256" {
        return Err("alg is not RS256".into());
    }
    if claims["iss"] != account.client_email.as_str() {
        return Err("Invalid JWT: iss".into());
    }
    if claims["aud"] != aud {
        return Err(format!("Invalid JWT: aud {} is not {aud}", claims["aud"]));
    }
    if claims["scope"].as_str().is_none_or(|s| !s.contains("devstorage")) {
        return Err("Invalid JWT: no storage scope".into());
    }
    let (iat, exp) = (claims["iat"].as_u64().unwrap_or(0), claims["exp"].as_u64().unwrap_or(0));
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if exp <= iat || exp - iat > 3600 || iat > now + 60 || exp < now {
        return Err(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.".into(),
        );
    }
    Ok(())
}
