//! Backends named by URL: `s3://bucket/prefix`, `gs://`, `az://`,
//! `abfs[s]://`, `hf://`, `mlflow-artifacts:`, `redis://`, `postgresql://`,
//! `file://`. A URL becomes a [`BackendConfig`]: the plugin, its config
//! values, and grants derived from the URL and the credentials used, and
//! nothing more. Credentials come from the places each ecosystem's own
//! tools read, in their order ([`backend`] lists them); each value
//! remembers its source for `wharf config show`, and secrets are kept as
//! [`ConfigValue::Secret`], redacted from adapter messages and never shown.
//!
//! Keys that are there to be read (variables, files, connection strings)
//! become config values. A source that needs an exchange (an assumed role,
//! web identity, container or instance metadata, a service-account key, a
//! refresh token) becomes a [`CredentialProvider`] the host runs and
//! refreshes ([`crate::credentials`]): the adapter gets the short-lived
//! values only, and is granted none of the endpoints they come from. A
//! source wharf does not resolve (`aws login`, an Entra ID client
//! certificate) is refused with its name, not skipped for the next one.

use crate::capabilities::{Negotiate, TlsTarget, Verify};
use crate::config::{BackendConfig, ConfigValue, DirGrantConfig};
use crate::credentials::{CredentialProvider, Source, aws, azure, gcp};
use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The environment a URL is resolved in: variables and the home directory
/// (where `~/.aws`, `~/.pgpass`, `~/.cache/huggingface` are found).
#[derive(Clone, Debug, Default)]
pub struct Env {
    vars: HashMap<String, String>,
    home: Option<PathBuf>,
}

impl Env {
    /// This process's variables and `$HOME`.
    pub fn process() -> Self {
        let vars: HashMap<String, String> = std::env::vars().collect();
        let home = vars.get("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
        Env { vars, home }
    }

    /// The given variables; `HOME` among them sets the home directory.
    pub fn from_vars<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars: HashMap<String, String> = vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        let home = vars.get("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
        Env { vars, home }
    }

    /// A variable, unless unset or empty.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    fn home_file(&self, rel: &str) -> Option<PathBuf> {
        self.home.as_ref().map(|h| h.join(rel))
    }
}

/// Whether `s` names a backend by URL rather than by configured name.
pub fn is_url(s: &str) -> bool {
    s.contains("://") || s.starts_with("mlflow-artifacts:")
}

/// The plugin a URL's scheme runs, if the scheme is known.
pub fn plugin_of(url: &str) -> Option<&'static str> {
    let scheme = url.split(':').next()?;
    Some(match scheme {
        "file" => "local_filesystem",
        "s3" | "s3a" => "aws_s3",
        "gs" | "gcs" => "gcp_storage",
        "az" | "abfs" | "abfss" => "azure_blob",
        "hf" => "huggingface_hub",
        "mlflow-artifacts" => "mlflow",
        "redis" | "rediss" => "redis",
        "postgresql" | "postgres" => "database",
        _ => return None,
    })
}

/// What a URL resolves to, being built.
struct Built {
    plugin: &'static str,
    config: BTreeMap<String, ConfigValue>,
    sources: BTreeMap<String, String>,
    http: Vec<String>,
    tcp: Vec<String>,
    tls: Vec<TlsTarget>,
    dirs: Vec<DirGrantConfig>,
    credentials: Option<Arc<CredentialProvider>>,
}

impl Built {
    fn new(plugin: &'static str) -> Self {
        Built {
            plugin,
            config: BTreeMap::new(),
            sources: BTreeMap::new(),
            http: Vec::new(),
            tcp: Vec::new(),
            tls: Vec::new(),
            dirs: Vec::new(),
            credentials: None,
        }
    }

    /// Credentials the host obtains from `source` and refreshes.
    fn exchanged(&mut self, source: Arc<dyn Source>) {
        let provider = CredentialProvider::shared(source);
        self.sources.insert("credentials".into(), provider.describe());
        self.credentials = Some(provider);
    }

    /// A plain value and where it came from.
    fn set(&mut self, key: &str, value: impl Into<String>, source: impl Into<String>) {
        self.config.insert(key.into(), ConfigValue::String(value.into()));
        self.sources.insert(key.into(), source.into());
    }

    /// The object-key prefix from a URL's path, if it names one.
    fn prefix(&mut self, path: &str) {
        let prefix = prefix_of(&decode(path));
        if !prefix.is_empty() {
            self.set("prefix", prefix, "the URL");
        }
    }

    /// A TCP peer reached over TLS the host terminates: the adapter's
    /// `key` names the relay (`${tls:address}`), the grant says how the
    /// certificate is checked, and `tls` in the sources says it to the user.
    fn tls(&mut self, key: &str, target: TlsTarget, source: impl Into<String>) {
        let roots = match &target.ca_file {
            Some(f) => format!("CA file {}", f.display()),
            None => "the system's roots".into(),
        };
        let how = match target.verify {
            Verify::Full => format!("certificate and host name checked against {roots}"),
            Verify::Chain => format!("certificate checked against {roots}, host name not"),
            Verify::Nothing => "certificate NOT checked (encryption only)".into(),
        };
        self.sources.insert("tls".into(), how);
        self.set(key, format!("${{tls:{}}}", target.address), source);
        self.tls.push(target);
    }

    /// A secret and where it came from.
    fn secret(&mut self, key: &str, value: impl Into<String>, source: impl Into<String>) {
        self.config.insert(key.into(), ConfigValue::Secret(value.into()));
        self.sources.insert(key.into(), source.into());
    }

    fn finish(self, url: &str) -> BackendConfig {
        let mut b = BackendConfig {
            plugin: Some(self.plugin.into()),
            config: self.config,
            ..Default::default()
        };
        b.grants.http = self.http;
        b.grants.tcp = self.tcp;
        b.grants.tls = self.tls;
        b.grants.dirs = self.dirs;
        b.url = Some(url.into());
        b.sources = self.sources;
        b.credentials = self.credentials;
        b
    }
}

fn bad(url: &str, why: impl std::fmt::Display) -> Error {
    Error::config(format!("backend URL `{}`: {why}", redact_url(url)))
}

/// `url` with any password replaced by `***`, for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// The object-key prefix of a URL path: no leading `/`, a trailing `/`
/// unless empty.
fn prefix_of(path: &str) -> String {
    let p = path.trim_matches('/');
    if p.is_empty() { String::new() } else { format!("{p}/") }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The origin (`scheme://host:port`) of an HTTP(S) endpoint, for a grant.
fn origin(url: &str, what: &str) -> Result<String> {
    let u = url::Url::parse(url).map_err(|e| Error::config(format!("{what} `{url}` is not a URL ({e})")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(Error::config(format!("{what} `{url}` is not http(s)")));
    }
    let host = u
        .host_str()
        .ok_or_else(|| Error::config(format!("{what} `{url}` has no host")))?;
    Ok(match u.port() {
        Some(p) => format!("{}://{host}:{p}", u.scheme()),
        None => format!("{}://{host}", u.scheme()),
    })
}

/// The backend a URL names, resolved in `env`. See the module docs; the
/// README has the table of schemes and credential sources.
pub fn backend(url: &str, env: &Env) -> Result<BackendConfig> {
    let plugin = plugin_of(url).ok_or_else(|| {
        bad(
            url,
            "unknown scheme (file, s3, gs, az, abfs, abfss, hf, mlflow-artifacts, redis, rediss, postgresql, postgres)",
        )
    })?;
    let built = match plugin {
        "local_filesystem" => file(url)?,
        "aws_s3" => s3(url, env)?,
        "gcp_storage" => gcs(url, env)?,
        "azure_blob" => azure(url, env)?,
        "huggingface_hub" => hub(url, env)?,
        "mlflow" => mlflow(url, env)?,
        "redis" => redis(url, env)?,
        "database" => postgres(url, env)?,
        _ => unreachable!("plugin_of knows these"),
    };
    Ok(built.finish(url))
}

/// `file:///dir`: the default local backend ([`crate::config::local_backend`])
/// storing into `dir`.
fn file(url: &str) -> Result<Built> {
    let u = url::Url::parse(url).map_err(|e| bad(url, e))?;
    if u.host_str().is_some_and(|h| !h.is_empty() && h != "localhost") {
        return Err(bad(url, "names a host; use file:///absolute/path"));
    }
    let dir = u
        .to_file_path()
        .map_err(|()| bad(url, "is not an absolute local path"))?;
    let local = crate::config::local_backend(&dir);
    let mut b = Built::new("local_filesystem");
    for (key, value) in local.config {
        b.config.insert(key.clone(), value);
        b.sources.insert(key, "the URL".into());
    }
    b.dirs = local.grants.dirs;
    Ok(b)
}

/// The bucket (host) and path of `scheme://bucket/path`.
fn bucket_and_prefix(url: &str) -> Result<(String, String)> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or("");
    let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(bad(url, "names no bucket"));
    }
    if bucket.contains(['@', ':', '?', '#']) {
        return Err(bad(url, "the bucket holds `@`, `:`, `?` or `#`"));
    }
    if path.contains(['?', '#']) {
        return Err(bad(url, "takes no query or fragment"));
    }
    Ok((bucket.to_string(), path.to_string()))
}

fn s3(url: &str, env: &Env) -> Result<Built> {
    let (bucket, path) = bucket_and_prefix(url)?;
    let mut b = Built::new("aws_s3");
    b.set("bucket", bucket.clone(), "the URL");
    b.prefix(&path);
    let profile_name = env.var("AWS_PROFILE").unwrap_or("default").to_string();
    let profile = aws_profile(env, &profile_name)?;
    let region = match (env.var("AWS_REGION"), env.var("AWS_DEFAULT_REGION")) {
        (Some(r), _) => Some((r.to_string(), "AWS_REGION".to_string())),
        (None, Some(r)) => Some((r.to_string(), "AWS_DEFAULT_REGION".to_string())),
        _ => profile.config.get("region").map(|r| {
            (
                r.clone(),
                format!("profile `{profile_name}` in {}", profile.config_path),
            )
        }),
    };
    let region_name = region.as_ref().map_or("us-east-1", |(r, _)| r.as_str()).to_string();
    if let Some((r, source)) = region {
        b.set("region", r, source);
    }
    let endpoint = match (env.var("AWS_ENDPOINT_URL_S3"), env.var("AWS_ENDPOINT_URL")) {
        (Some(e), _) => Some((e.to_string(), "AWS_ENDPOINT_URL_S3")),
        (None, Some(e)) => Some((e.to_string(), "AWS_ENDPOINT_URL")),
        _ => None,
    };
    match endpoint {
        Some((e, source)) => {
            b.http.push(origin(&e, source)?);
            b.set("endpoint", e, source);
        }
        None => {
            // Virtual-host style on AWS: the bucket's own host name.
            b.http.push(format!("https://{bucket}.s3.{region_name}.amazonaws.com"));
            b.http.push(format!("https://s3.{region_name}.amazonaws.com"));
        }
    }
    // The SDKs' order: variables, then the profile's static keys.
    match (env.var("AWS_ACCESS_KEY_ID"), env.var("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => {
            b.set("access_key_id", id, "AWS_ACCESS_KEY_ID");
            b.secret("secret_access_key", secret, "AWS_SECRET_ACCESS_KEY");
            if let Some(t) = env.var("AWS_SESSION_TOKEN") {
                b.secret("session_token", t, "AWS_SESSION_TOKEN");
            }
            return Ok(b);
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(bad(
                url,
                "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither",
            ));
        }
        (None, None) => {}
    }
    let sts = aws::Sts {
        url: match (env.var("AWS_ENDPOINT_URL_STS"), env.var("AWS_ENDPOINT_URL")) {
            (Some(e), _) | (None, Some(e)) => e.trim_end_matches('/').to_string(),
            _ => format!("https://sts.{region_name}.amazonaws.com"),
        },
        region: region_name.clone(),
    };
    // botocore's order: a profile named in AWS_PROFILE must give
    // credentials, and only it is asked. Otherwise: the default profile's
    // assumed role, web identity from the environment, the default
    // profile's keys or process, container credentials, instance metadata.
    let explicit = env.var("AWS_PROFILE").is_some();
    let chosen = if explicit {
        let found = aws_profile_source(env, &profile_name, &sts, 0).map_err(|why| bad(url, why))?;
        Some(found.ok_or_else(|| {
            bad(
                url,
                format!(
                    "AWS_PROFILE `{profile_name}`: no such profile with credentials in {} or {}",
                    profile.config_path, profile.credentials_path
                ),
            )
        })?)
    } else {
        let web = aws_web_identity(env, &sts).map_err(|why| bad(url, why))?;
        match web {
            Some(w) if !profile.config.contains_key("role_arn") => Some(w),
            _ => match aws_profile_source(env, &profile_name, &sts, 0).map_err(|why| bad(url, why))? {
                Some(c) => Some(c),
                None => aws_container(env)
                    .map_err(|why| bad(url, why))?
                    .map(|c| ProfileCreds::Exchanged(Arc::new(c))),
            },
        }
    };
    match chosen {
        Some(ProfileCreds::Static(k)) => {
            b.set("access_key_id", k.id, k.origin.clone());
            b.secret("secret_access_key", k.secret, k.origin.clone());
            if let Some(t) = k.token {
                b.secret("session_token", t, k.origin);
            }
        }
        Some(ProfileCreds::Exchanged(source)) => b.exchanged(source),
        None => {
            // Nothing configured: the instance's role if this is EC2,
            // else anonymous requests (public buckets); the adapter names
            // a refusal in a `denied` error.
            let disabled = env
                .var("AWS_EC2_METADATA_DISABLED")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            if disabled {
                b.sources
                    .insert("credentials".into(), "none found: anonymous requests".into());
            } else {
                let endpoint = env
                    .var("AWS_EC2_METADATA_SERVICE_ENDPOINT")
                    .unwrap_or("http://169.254.169.254")
                    .trim_end_matches('/')
                    .to_string();
                b.exchanged(Arc::new(aws::Imds {
                    endpoint,
                    fallback: true,
                }));
            }
        }
    }
    Ok(b)
}

/// Credentials a profile or the environment gives: keys to hand over as
/// they are, or a source the host exchanges.
enum ProfileCreds {
    Static(aws::Static),
    Exchanged(Arc<dyn Source>),
}

impl ProfileCreds {
    fn into_source(self) -> Arc<dyn Source> {
        match self {
            ProfileCreds::Static(k) => Arc::new(k),
            ProfileCreds::Exchanged(s) => s,
        }
    }
}

/// What profile `name` resolves to, following `source_profile` chains (at
/// most 5 deep, as a loop guard), in botocore's order: an assumed role,
/// then IAM Identity Center (SSO), then static keys, then
/// `credential_process`. `None`: the profile does
/// not exist or holds none of these.
fn aws_profile_source(
    env: &Env,
    name: &str,
    sts: &aws::Sts,
    depth: usize,
) -> std::result::Result<Option<ProfileCreds>, String> {
    if depth > 5 {
        return Err(format!(
            "profile `{name}`: source_profile chain deeper than 5 (a loop?)"
        ));
    }
    let profile = aws_profile(env, name).map_err(|e| e.message().to_string())?;
    let origin = |file: &str| format!("profile `{name}` in {file}");
    let conf = |key: &str| profile.config.get(key).filter(|v| !v.is_empty()).cloned();
    let duration = match conf("duration_seconds") {
        Some(d) => Some(d.parse::<u32>().map_err(|_| {
            format!(
                "{}: duration_seconds `{d}` is not a number",
                origin(&profile.config_path)
            )
        })?),
        None => None,
    };
    if let Some(role_arn) = conf("role_arn") {
        let here = origin(&profile.config_path);
        if let Some(file) = conf("web_identity_token_file") {
            return Ok(Some(ProfileCreds::Exchanged(Arc::new(aws::WebIdentity {
                role_arn,
                token_file: PathBuf::from(file),
                session_name: conf("role_session_name"),
                duration,
                sts: sts.clone(),
                origin: here,
            }))));
        }
        let source: Arc<dyn Source> = match (conf("source_profile"), conf("credential_source")) {
            (Some(src), None) if src == name => {
                // A profile that is its own source: its own static keys.
                match (
                    profile.credential("aws_access_key_id"),
                    profile.credential("aws_secret_access_key"),
                ) {
                    (Some(id), Some(secret)) => Arc::new(aws::Static {
                        id,
                        secret,
                        token: profile.credential("aws_session_token"),
                        origin: origin(profile.credential_file()),
                    }),
                    _ => return Err(format!("{here}: source_profile is itself, and it has no keys")),
                }
            }
            (Some(src), None) => aws_profile_source(env, &src, sts, depth + 1)?
                .ok_or_else(|| format!("{here}: source_profile `{src}` has no credentials"))?
                .into_source(),
            (None, Some(cs)) => match cs.as_str() {
                "Environment" => match (env.var("AWS_ACCESS_KEY_ID"), env.var("AWS_SECRET_ACCESS_KEY")) {
                    (Some(id), Some(secret)) => Arc::new(aws::Static {
                        id: id.into(),
                        secret: secret.into(),
                        token: env.var("AWS_SESSION_TOKEN").map(str::to_string),
                        origin: "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY".into(),
                    }),
                    _ => {
                        return Err(format!(
                            "{here}: credential_source Environment, and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not set"
                        ));
                    }
                },
                "EcsContainer" => match aws_container(env)? {
                    Some(c) => Arc::new(c),
                    None => {
                        return Err(format!(
                            "{here}: credential_source EcsContainer, and AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI are not set"
                        ));
                    }
                },
                "Ec2InstanceMetadata" => Arc::new(aws::Imds {
                    endpoint: env
                        .var("AWS_EC2_METADATA_SERVICE_ENDPOINT")
                        .unwrap_or("http://169.254.169.254")
                        .trim_end_matches('/')
                        .to_string(),
                    fallback: false,
                }),
                other => {
                    return Err(format!(
                        "{here}: credential_source `{other}` is none of Environment, EcsContainer, Ec2InstanceMetadata"
                    ));
                }
            },
            (Some(_), Some(_)) => return Err(format!("{here}: both source_profile and credential_source")),
            (None, None) => {
                return Err(format!(
                    "{here}: role_arn needs source_profile, credential_source or web_identity_token_file"
                ));
            }
        };
        return Ok(Some(ProfileCreds::Exchanged(Arc::new(aws::AssumeRole {
            role_arn,
            external_id: conf("external_id"),
            session_name: conf("role_session_name"),
            duration,
            sts: sts.clone(),
            source,
            origin: here,
        }))));
    }
    if let Some(sso) = aws_sso(env, &profile, name)? {
        return Ok(Some(ProfileCreds::Exchanged(Arc::new(sso))));
    }
    if let (Some(id), Some(secret)) = (
        profile.credential("aws_access_key_id"),
        profile.credential("aws_secret_access_key"),
    ) {
        return Ok(Some(ProfileCreds::Static(aws::Static {
            id,
            secret,
            token: profile.credential("aws_session_token"),
            origin: origin(profile.credential_file()),
        })));
    }
    if let Some(command) = profile.credential("credential_process") {
        return Ok(Some(ProfileCreds::Exchanged(Arc::new(aws::Process {
            command,
            origin: origin(&profile.config_path),
        }))));
    }
    if profile.config.contains_key("login_session") {
        return Err(format!(
            "{}: `login_session` (aws login) credentials are not resolved by wharf; export them with `aws configure export-credentials --profile {name} --format env`",
            origin(&profile.config_path)
        ));
    }
    Ok(None)
}

/// IAM Identity Center (SSO) as botocore reads it: `sso_session` naming an
/// `[sso-session NAME]` section (its `sso_start_url`, `sso_region`), or
/// the legacy `sso_start_url` + `sso_region` in the profile; with
/// `sso_account_id` and `sso_role_name`. The token is the one `aws sso
/// login` cached in `~/.aws/sso/cache/<sha1 of the session name or start
/// URL>.json`.
fn aws_sso(env: &Env, profile: &AwsProfile, name: &str) -> std::result::Result<Option<aws::Sso>, String> {
    let here = format!("profile `{name}` in {}", profile.config_path);
    let conf = |key: &str| profile.config.get(key).filter(|v| !v.is_empty()).cloned();
    let (cache_key, start_url, region) = match (conf("sso_session"), conf("sso_start_url")) {
        (Some(session), _) => {
            let section = profile
                .sso_sessions
                .get(&session)
                .ok_or_else(|| format!("{here}: sso_session `{session}` has no [sso-session {session}] section"))?;
            let get = |key: &str| {
                section
                    .get(key)
                    .filter(|v| !v.is_empty())
                    .cloned()
                    .ok_or_else(|| format!("{here}: [sso-session {session}] has no {key}"))
            };
            (session.clone(), get("sso_start_url")?, get("sso_region")?)
        }
        (None, Some(start_url)) => {
            let region = conf("sso_region").ok_or_else(|| format!("{here}: sso_start_url without sso_region"))?;
            (start_url.clone(), start_url, region)
        }
        (None, None) => return Ok(None),
    };
    let (Some(account_id), Some(role_name)) = (conf("sso_account_id"), conf("sso_role_name")) else {
        return Err(format!(
            "{here}: IAM Identity Center needs sso_account_id and sso_role_name (wharf does not pick a role for you)"
        ));
    };
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, cache_key.as_bytes());
    let cache_file = env
        .home_file(&format!(".aws/sso/cache/{}.json", hex::encode(digest.as_ref())))
        .ok_or_else(|| format!("{here}: no home directory for the SSO token cache"))?;
    let portal = env
        .var("AWS_ENDPOINT_URL_SSO")
        .or_else(|| env.var("AWS_ENDPOINT_URL"))
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("https://portal.sso.{region}.amazonaws.com"));
    Ok(Some(aws::Sso {
        portal,
        account_id,
        role_name,
        cache_file,
        start_url,
        profile: name.to_string(),
    }))
}

/// Web identity from `AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`
/// (EKS IRSA).
fn aws_web_identity(env: &Env, sts: &aws::Sts) -> std::result::Result<Option<ProfileCreds>, String> {
    match (env.var("AWS_ROLE_ARN"), env.var("AWS_WEB_IDENTITY_TOKEN_FILE")) {
        (Some(role), Some(file)) => {
            return Ok(Some(ProfileCreds::Exchanged(Arc::new(aws::WebIdentity {
                role_arn: role.into(),
                token_file: PathBuf::from(file),
                session_name: env.var("AWS_ROLE_SESSION_NAME").map(str::to_string),
                duration: None,
                sts: sts.clone(),
                origin: "AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE".into(),
            }))));
        }
        (None, Some(_)) => return Err("AWS_WEB_IDENTITY_TOKEN_FILE is set without AWS_ROLE_ARN".into()),
        _ => {}
    }
    Ok(None)
}

/// Container credentials from `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or
/// `_FULL_URI`, with the authorization token (file) if set.
fn aws_container(env: &Env) -> std::result::Result<Option<aws::Container>, String> {
    let (url, origin) = match (
        env.var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
        env.var("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
    ) {
        (Some(rel), _) => (
            format!("http://169.254.170.2{rel}"),
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        ),
        (None, Some(full)) => {
            aws::Container::check_full_uri(full).map_err(|why| format!("AWS_CONTAINER_CREDENTIALS_FULL_URI {why}"))?;
            (full.to_string(), "AWS_CONTAINER_CREDENTIALS_FULL_URI")
        }
        (None, None) => return Ok(None),
    };
    let token = match (
        env.var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
        env.var("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
    ) {
        (Some(f), _) => Some(aws::ContainerToken::File(PathBuf::from(f))),
        (None, Some(t)) => Some(aws::ContainerToken::Value(t.to_string())),
        _ => None,
    };
    Ok(Some(aws::Container { url, token, origin }))
}

/// One profile of the shared AWS config and credentials files.
#[derive(Default)]
struct AwsProfile {
    config: BTreeMap<String, String>,
    /// The config file's `[sso-session NAME]` sections.
    sso_sessions: BTreeMap<String, BTreeMap<String, String>>,
    credentials: BTreeMap<String, String>,
    config_path: String,
    credentials_path: String,
}

impl AwsProfile {
    /// A key from the credentials file, else the config file.
    fn credential(&self, key: &str) -> Option<String> {
        self.credentials
            .get(key)
            .or_else(|| self.config.get(key))
            .filter(|v| !v.is_empty())
            .cloned()
    }

    /// The file the keys were found in.
    fn credential_file(&self) -> &str {
        if self.credentials.contains_key("aws_access_key_id") {
            &self.credentials_path
        } else {
            &self.config_path
        }
    }
}

fn aws_profile(env: &Env, name: &str) -> Result<AwsProfile> {
    let config_path = env
        .var("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| env.home_file(".aws/config"));
    let credentials_path = env
        .var("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| env.home_file(".aws/credentials"));
    let mut p = AwsProfile {
        config_path: config_path
            .as_ref()
            .map_or("(no config file)".into(), |p| p.display().to_string()),
        credentials_path: credentials_path
            .as_ref()
            .map_or("(no credentials file)".into(), |p| p.display().to_string()),
        ..Default::default()
    };
    // In the config file a profile is `[profile NAME]` (`[default]` too);
    // in the credentials file it is `[NAME]`.
    if let Some(path) = config_path
        && let Some(sections) = read_ini(&path)?
    {
        let wanted = format!("profile {name}");
        let mut found = false;
        for (section, kv) in sections {
            // The first section of that name.
            if !found && (section == wanted || (name == "default" && section == "default")) {
                found = true;
                p.config = kv;
            } else if let Some(session) = section.strip_prefix("sso-session ") {
                p.sso_sessions.insert(session.trim().to_string(), kv);
            }
        }
    }
    if let Some(path) = credentials_path
        && let Some(sections) = read_ini(&path)?
    {
        p.credentials = sections
            .into_iter()
            .find(|(s, _)| s == name)
            .map(|(_, kv)| kv)
            .unwrap_or_default();
    }
    Ok(p)
}

/// A section's name and its keys.
type IniSection = (String, BTreeMap<String, String>);

/// The sections of an INI file (`[name]`, `key = value`, `#`/`;`
/// comments), or `None` if it does not exist.
fn read_ini(path: &Path) -> Result<Option<Vec<IniSection>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::config(format!("reading `{}`: {e}", path.display()))),
    };
    let mut sections: Vec<IniSection> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sections.push((name.trim().to_string(), BTreeMap::new()));
        } else if let Some((k, v)) = line.split_once('=')
            && let Some((_, kv)) = sections.last_mut()
        {
            kv.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    Ok(Some(sections))
}

fn gcs(url: &str, env: &Env) -> Result<Built> {
    let (bucket, path) = bucket_and_prefix(url)?;
    let mut b = Built::new("gcp_storage");
    b.set("bucket", bucket, "the URL");
    b.prefix(&path);
    if let Some(host) = env.var("STORAGE_EMULATOR_HOST") {
        // As the Google client libraries: a bare host:port means http.
        let endpoint = if host.contains("://") {
            host.to_string()
        } else {
            format!("http://{host}")
        };
        b.http.push(origin(&endpoint, "STORAGE_EMULATOR_HOST")?);
        b.set("endpoint", endpoint, "STORAGE_EMULATOR_HOST");
        b.set(
            "anonymous",
            "true",
            "STORAGE_EMULATOR_HOST (emulators take no credentials)",
        );
        return Ok(b);
    }
    b.http.push("https://storage.googleapis.com".into());
    // The Google client libraries' order: the key file in
    // GOOGLE_APPLICATION_CREDENTIALS, gcloud's application-default
    // credentials, the metadata server.
    let key_file = env
        .var("GOOGLE_APPLICATION_CREDENTIALS")
        .map(|p| (PathBuf::from(p), "GOOGLE_APPLICATION_CREDENTIALS".to_string()))
        .or_else(|| {
            let adc = env
                .var("CLOUDSDK_CONFIG")
                .map(|d| PathBuf::from(d).join("application_default_credentials.json"))
                .or_else(|| env.home_file(".config/gcloud/application_default_credentials.json"))?;
            adc.exists()
                .then(|| (adc, "gcloud application-default credentials".to_string()))
        });
    let Some((path, source)) = key_file else {
        b.exchanged(Arc::new(gcp::Metadata {
            base: gcp::metadata_base(env.var("GCE_METADATA_HOST")),
        }));
        return Ok(b);
    };
    let origin = gcp::origin(&source, &path);
    let text = std::fs::read_to_string(&path).map_err(|e| bad(url, format!("{origin}: {e}")))?;
    let key: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(url, format!("{origin}: not JSON ({e})")))?;
    let exchanged: Arc<dyn Source> = match key.get("type").and_then(|t| t.as_str()) {
        Some("service_account") => Arc::new(
            gcp::ServiceAccount::from_json(&key, origin.clone()).map_err(|why| bad(url, format!("{origin}: {why}")))?,
        ),
        Some("authorized_user") => Arc::new(
            gcp::AuthorizedUser::from_json(&key, origin.clone()).map_err(|why| bad(url, format!("{origin}: {why}")))?,
        ),
        other => {
            return Err(bad(
                url,
                format!(
                    "{origin}: credentials of type `{}` are not resolved by wharf (service_account and authorized_user are)",
                    other.unwrap_or("(none)")
                ),
            ));
        }
    };
    b.exchanged(exchanged);
    Ok(b)
}

fn azure(url: &str, env: &Env) -> Result<Built> {
    let mut b = Built::new("azure_blob");
    let scheme = url.split("://").next().unwrap_or("");
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or("");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    // abfs[s]://container@account.dfs.<suffix>/prefix: the account, and the
    // Blob endpoint of the same cloud.
    let (container, url_account) = if scheme == "az" {
        (authority.to_string(), None)
    } else {
        let (container, host) = authority
            .split_once('@')
            .ok_or_else(|| bad(url, "abfs URLs are container@account.dfs.core.windows.net/path"))?;
        let (account, rest) = host.split_once('.').unwrap_or((host, "dfs.core.windows.net"));
        let suffix = rest
            .strip_prefix("dfs.")
            .or_else(|| rest.strip_prefix("blob."))
            .filter(|s| !s.is_empty() && !account.is_empty())
            .ok_or_else(|| bad(url, "abfs URLs are container@account.dfs.core.windows.net/path"))?;
        (container.to_string(), Some((account.to_string(), suffix.to_string())))
    };
    if container.is_empty() {
        return Err(bad(url, "names no container"));
    }
    b.set("container", container, "the URL");
    b.prefix(path);
    // The account and endpoint, and any key or SAS: from the connection
    // string, else from the URL and the variables.
    let (key, sas) = if let Some(cs) = env.var("AZURE_STORAGE_CONNECTION_STRING") {
        let source = "AZURE_STORAGE_CONNECTION_STRING";
        let parts = connection_string(cs);
        let dev = parts
            .get("usedevelopmentstorage")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let (account, key, endpoint) = if dev {
            (
                AZURITE_ACCOUNT.to_string(),
                Some(AZURITE_KEY.to_string()),
                format!("http://127.0.0.1:10000/{AZURITE_ACCOUNT}"),
            )
        } else {
            let account = parts
                .get("accountname")
                .cloned()
                .ok_or_else(|| bad(url, format!("{source} has no AccountName")))?;
            let endpoint = parts.get("blobendpoint").cloned().unwrap_or_else(|| {
                let protocol = parts.get("defaultendpointsprotocol").map_or("https", String::as_str);
                let suffix = parts.get("endpointsuffix").map_or("core.windows.net", String::as_str);
                format!("{protocol}://{account}.blob.{suffix}")
            });
            (account, parts.get("accountkey").cloned(), endpoint)
        };
        if let Some((a, _)) = &url_account
            && !a.eq_ignore_ascii_case(&account)
        {
            return Err(bad(url, format!("names account `{a}`, {source} account `{account}`")));
        }
        b.set("account", account, source);
        b.http.push(origin(&endpoint, source)?);
        b.set("endpoint", endpoint.trim_end_matches('/'), source);
        let sas = parts.get("sharedaccesssignature").cloned();
        (key.map(|k| (k, source)), sas.map(|s| (s, source)))
    } else {
        let (account, suffix) = match (url_account, env.var("AZURE_STORAGE_ACCOUNT")) {
            (Some((a, suffix)), _) => {
                b.set("account", a.clone(), "the URL");
                (a, suffix)
            }
            (None, Some(a)) => {
                b.set("account", a, "AZURE_STORAGE_ACCOUNT");
                (a.to_string(), "core.windows.net".to_string())
            }
            (None, None) => {
                return Err(bad(
                    url,
                    "no account: set AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT, or use abfss://container@account.dfs.core.windows.net/",
                ));
            }
        };
        match env.var("AZURE_STORAGE_ENDPOINT") {
            Some(endpoint) => {
                b.http.push(origin(endpoint, "AZURE_STORAGE_ENDPOINT")?);
                b.set("endpoint", endpoint.trim_end_matches('/'), "AZURE_STORAGE_ENDPOINT");
            }
            None => {
                let endpoint = format!("https://{account}.blob.{suffix}");
                b.http.push(origin(&endpoint, "the account")?);
                if suffix != "core.windows.net" {
                    b.set("endpoint", endpoint, "the URL");
                }
            }
        }
        (
            env.var("AZURE_STORAGE_KEY")
                .map(|k| (k.to_string(), "AZURE_STORAGE_KEY")),
            env.var("AZURE_STORAGE_SAS_TOKEN")
                .map(|s| (s.to_string(), "AZURE_STORAGE_SAS_TOKEN")),
        )
    };
    match (key, sas) {
        (Some((k, source)), _) => b.secret("account_key", k, source),
        (None, Some((s, source))) => b.secret("sas_token", s, source),
        (None, None) => b.exchanged(entra(url, env)?),
    }
    Ok(b)
}

/// Entra ID, in `DefaultAzureCredential`'s order: a client secret, workload
/// identity, managed identity. A client certificate or a username and
/// password are refused by name rather than passed over.
fn entra(url: &str, env: &Env) -> Result<Arc<dyn Source>> {
    let authority = env.var("AZURE_AUTHORITY_HOST").unwrap_or(azure::AUTHORITY);
    let authority = if authority.contains("://") {
        authority.trim_end_matches('/').to_string()
    } else {
        format!("https://{}", authority.trim_end_matches('/'))
    };
    origin(&authority, "AZURE_AUTHORITY_HOST")?;
    let tenant = env.var("AZURE_TENANT_ID");
    let client_id = env.var("AZURE_CLIENT_ID");
    if let Some(t) = tenant {
        azure::check_tenant(t).map_err(|why| bad(url, why))?;
    }
    if let (Some(tenant), Some(client_id)) = (tenant, client_id) {
        if let Some(secret) = env.var("AZURE_CLIENT_SECRET") {
            return Ok(Arc::new(azure::ServicePrincipal {
                tenant: tenant.into(),
                client_id: client_id.into(),
                proof: azure::Proof::Secret(secret.into()),
                authority,
            }));
        }
        for (var, what) in [
            ("AZURE_CLIENT_CERTIFICATE_PATH", "a client certificate"),
            ("AZURE_USERNAME", "a username and password"),
        ] {
            if env.var(var).is_some() {
                return Err(bad(
                    url,
                    format!(
                        "{var} is set: Entra ID sign-in with {what} is not resolved by wharf (a client secret, workload identity and managed identity are)"
                    ),
                ));
            }
        }
        if let Some(file) = env.var("AZURE_FEDERATED_TOKEN_FILE") {
            return Ok(Arc::new(azure::ServicePrincipal {
                tenant: tenant.into(),
                client_id: client_id.into(),
                proof: azure::Proof::TokenFile(PathBuf::from(file)),
                authority,
            }));
        }
    }
    let client_id = client_id.map(str::to_string);
    if let (Some(endpoint), Some(header)) = (env.var("IDENTITY_ENDPOINT"), env.var("IDENTITY_HEADER")) {
        origin(endpoint, "IDENTITY_ENDPOINT")?;
        return Ok(Arc::new(azure::ManagedIdentity::AppService {
            endpoint: endpoint.into(),
            header: header.into(),
            client_id,
        }));
    }
    let base = match env.var("AZURE_POD_IDENTITY_AUTHORITY_HOST") {
        Some(h) if h.contains("://") => h.trim_end_matches('/').to_string(),
        Some(h) => format!("http://{}", h.trim_end_matches('/')),
        None => azure::IMDS.into(),
    };
    Ok(Arc::new(azure::ManagedIdentity::Imds { base, client_id }))
}

/// Azurite's documented development account.
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// `Key=Value;...` with keys lower-cased (values may hold `=`).
fn connection_string(s: &str) -> HashMap<String, String> {
    s.split(';')
        .filter_map(|part| part.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

fn hub(url: &str, env: &Env) -> Result<Built> {
    let rest = url.strip_prefix("hf://").unwrap_or("");
    let mut parts = rest.splitn(2, '/');
    let first = parts.next().unwrap_or("");
    let (repo_type, after) = match first {
        "models" => ("model", parts.next().unwrap_or("")),
        "datasets" => ("dataset", parts.next().unwrap_or("")),
        "spaces" => ("space", parts.next().unwrap_or("")),
        // huggingface_hub's spelling: a bare repo id is a model.
        _ => ("model", rest),
    };
    let mut segs = after.splitn(3, '/');
    let (org, name) = (segs.next().unwrap_or(""), segs.next().unwrap_or(""));
    let path = segs.next().unwrap_or("");
    if org.is_empty() || name.is_empty() {
        return Err(bad(
            url,
            "hf URLs are hf://[models|datasets|spaces/]org/repo[@revision][/path]",
        ));
    }
    let (name, revision) = match name.split_once('@') {
        Some((n, r)) => (n, Some(decode(r))),
        None => (name, None),
    };
    let mut b = Built::new("huggingface_hub");
    b.set("repo_type", repo_type, "the URL");
    b.set("repo_id", format!("{org}/{name}"), "the URL");
    if let Some(r) = revision {
        b.set("revision", r, "the URL");
    }
    b.prefix(path);
    // Writes above the adapter's spool threshold go to a scratch
    // directory first (LFS needs the sha256 before the upload).
    let cache = env
        .var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| env.home_file(".cache"));
    if let Some(cache) = cache {
        b.dirs.push(DirGrantConfig {
            host: cache.join("wharf/hf-scratch"),
            guest: "/scratch".into(),
            read_only: false,
            create: true,
        });
        b.set("scratch", "/scratch", "wharf's cache directory");
    }
    let endpoint = env.var("HF_ENDPOINT").unwrap_or("https://huggingface.co").to_string();
    b.http.push(origin(&endpoint, "HF_ENDPOINT")?);
    if env.var("HF_ENDPOINT").is_some() {
        b.set("endpoint", endpoint, "HF_ENDPOINT");
    }
    if let Some(t) = env.var("HF_TOKEN") {
        b.secret("token", t, "HF_TOKEN");
    } else {
        let file = env
            .var("HF_TOKEN_PATH")
            .map(PathBuf::from)
            .or_else(|| env.var("HF_HOME").map(|h| PathBuf::from(h).join("token")))
            .or_else(|| env.home_file(".cache/huggingface/token"));
        if let Some(file) = file
            && let Ok(t) = std::fs::read_to_string(&file)
            && !t.trim().is_empty()
        {
            b.secret(
                "token",
                t.trim(),
                format!("huggingface_hub's stored token `{}`", file.display()),
            );
        }
    }
    Ok(b)
}

fn mlflow(url: &str, env: &Env) -> Result<Built> {
    let path = url.strip_prefix("mlflow-artifacts:").unwrap_or("");
    // `mlflow-artifacts:/path` or `mlflow-artifacts://host:port/path`.
    let (endpoint, path, source) = match path.strip_prefix("//") {
        Some(rest) => {
            let (host, p) = rest.split_once('/').unwrap_or((rest, ""));
            (format!("http://{host}"), p.to_string(), "the URL".to_string())
        }
        None => {
            let tracking = env
                .var("MLFLOW_TRACKING_URI")
                .ok_or_else(|| bad(url, "set MLFLOW_TRACKING_URI to the server (http[s]://host:port)"))?;
            (
                tracking.trim_end_matches('/').to_string(),
                path.to_string(),
                "MLFLOW_TRACKING_URI".to_string(),
            )
        }
    };
    let mut b = Built::new("mlflow");
    b.http.push(origin(&endpoint, &source)?);
    b.set("endpoint", endpoint, source);
    b.prefix(&path);
    if let Some(t) = env.var("MLFLOW_TRACKING_TOKEN") {
        b.secret("token", t, "MLFLOW_TRACKING_TOKEN");
    } else if let (Some(u), Some(p)) = (env.var("MLFLOW_TRACKING_USERNAME"), env.var("MLFLOW_TRACKING_PASSWORD")) {
        b.set("username", u, "MLFLOW_TRACKING_USERNAME");
        b.secret("password", p, "MLFLOW_TRACKING_PASSWORD");
    }
    Ok(b)
}

fn redis(url: &str, env: &Env) -> Result<Built> {
    // A bare `redis://` takes the whole URL from REDIS_URL.
    let (url_used, source) = match url {
        "redis://" | "rediss://" => (
            env.var("REDIS_URL")
                .ok_or_else(|| bad(url, "names no server and REDIS_URL is not set"))?
                .to_string(),
            "REDIS_URL",
        ),
        _ => (url.to_string(), "the URL"),
    };
    let u = url::Url::parse(&url_used).map_err(|e| bad(&url_used, e))?;
    if !matches!(u.scheme(), "redis" | "rediss") {
        return Err(bad(&url_used, format!("{source} is not a redis:// or rediss:// URL")));
    }
    let host = u.host_str().filter(|h| !h.is_empty()).unwrap_or("127.0.0.1");
    let address = format!("{host}:{}", u.port().unwrap_or(6379));
    let mut b = Built::new("redis");
    // redis-py's spelling of the TLS options.
    let query: HashMap<String, String> = u.query_pairs().into_owned().collect();
    for key in query.keys() {
        if u.scheme() == "redis" || !matches!(key.as_str(), "ssl_ca_certs" | "ssl_cert_reqs" | "ssl_check_hostname") {
            return Err(bad(&url_used, format!("unknown parameter `{key}`")));
        }
    }
    if u.scheme() == "rediss" {
        let verify = match (
            query.get("ssl_cert_reqs").map(String::as_str),
            query.get("ssl_check_hostname").map(String::as_str),
        ) {
            (None | Some("required"), None | Some("true")) => Verify::Full,
            (None | Some("required"), Some("false")) => Verify::Chain,
            (Some("none"), _) => Verify::Nothing,
            (r, h) => {
                return Err(bad(
                    &url_used,
                    format!(
                        "ssl_cert_reqs `{}` / ssl_check_hostname `{}`: use required|none and true|false",
                        r.unwrap_or("required"),
                        h.unwrap_or("true")
                    ),
                ));
            }
        };
        let target = TlsTarget {
            address,
            verify,
            ca_file: query.get("ssl_ca_certs").map(PathBuf::from),
            negotiate: Negotiate::Direct,
        };
        b.tls("address", target, source);
    } else {
        b.tcp.push(address.clone());
        b.set("address", address, source);
    }
    if !u.username().is_empty() {
        b.set("username", decode(u.username()), source);
    }
    if let Some(p) = u.password() {
        b.secret("password", decode(p), source);
    }
    let db = u.path().trim_matches('/');
    if !db.is_empty() {
        db.parse::<u32>()
            .map_err(|_| bad(&url_used, format!("the database `{db}` is not a number")))?;
        b.set("db", db, source);
    }
    Ok(b)
}

fn postgres(url: &str, env: &Env) -> Result<Built> {
    let bare = matches!(url, "postgresql://" | "postgres://");
    let (url_used, source) = match (bare, env.var("DATABASE_URL")) {
        (true, Some(d)) if env.var("PGHOST").is_none() => (d.to_string(), "DATABASE_URL"),
        _ => (url.to_string(), "the URL"),
    };
    let u = url::Url::parse(&url_used).map_err(|e| bad(&url_used, e))?;
    if !matches!(u.scheme(), "postgresql" | "postgres") {
        return Err(bad(&url_used, format!("{source} is not a postgresql:// URL")));
    }
    let query: HashMap<String, String> = u.query_pairs().into_owned().collect();
    for key in query.keys() {
        if !matches!(
            key.as_str(),
            "sslmode" | "sslrootcert" | "user" | "password" | "dbname" | "host" | "port" | "application_name"
        ) {
            return Err(bad(&url_used, format!("unknown parameter `{key}`")));
        }
    }
    let sslmode = query
        .get("sslmode")
        .map(|m| (m.as_str(), source))
        .or_else(|| env.var("PGSSLMODE").map(|m| (m, "PGSSLMODE")));
    // libpq's roots: sslrootcert (`system`: the system's), else
    // ~/.postgresql/root.crt if it exists; wharf falls back to the system's
    // where libpq would fail.
    let rootcert = query
        .get("sslrootcert")
        .map(|r| (r.clone(), source.to_string()))
        .or_else(|| {
            env.var("PGSSLROOTCERT")
                .map(|r| (r.to_string(), "PGSSLROOTCERT".to_string()))
        });
    let ca_file = match &rootcert {
        Some((r, _)) if r == "system" => None,
        Some((r, _)) => Some(PathBuf::from(r)),
        None => env.home_file(".postgresql/root.crt").filter(|p| p.is_file()),
    };
    let verify = match sslmode {
        // libpq's `prefer` (its default) tries TLS first; wharf connects
        // without it unless asked (the README says so).
        None | Some(("disable" | "allow" | "prefer", _)) => None,
        // libpq: `require` checks the chain when a root file is there.
        Some(("require", _)) if ca_file.is_some() => Some(Verify::Chain),
        Some(("require", _)) => Some(Verify::Nothing),
        Some(("verify-ca", _)) => Some(Verify::Chain),
        Some(("verify-full", _)) => Some(Verify::Full),
        Some((m, from)) => return Err(bad(&url_used, format!("unknown sslmode `{m}` (from {from})"))),
    };
    let mut b = Built::new("database");
    // libpq's order: the URL (and its parameters), then PG* variables,
    // then defaults.
    let pick = |in_url: Option<String>, var: &str| -> Option<(String, String)> {
        in_url
            .filter(|v| !v.is_empty())
            .map(|v| (v, source.to_string()))
            .or_else(|| env.var(var).map(|v| (v.to_string(), var.to_string())))
    };
    let host = pick(
        query.get("host").cloned().or_else(|| u.host_str().map(str::to_string)),
        "PGHOST",
    )
    .unwrap_or(("127.0.0.1".into(), "the default".into()));
    if host.0.starts_with('/') {
        return Err(bad(&url_used, "Unix sockets are not granted; name a TCP host"));
    }
    let port = pick(
        query.get("port").cloned().or_else(|| u.port().map(|p| p.to_string())),
        "PGPORT",
    )
    .unwrap_or(("5432".into(), "the default".into()));
    let user = pick(
        query
            .get("user")
            .cloned()
            .or_else(|| (!u.username().is_empty()).then(|| decode(u.username()))),
        "PGUSER",
    )
    .or_else(|| env.var("USER").map(|v| (v.to_string(), "USER".to_string())))
    .ok_or_else(|| bad(&url_used, "names no user (and PGUSER is not set)"))?;
    let dbname = pick(
        query.get("dbname").cloned().or_else(|| {
            let d = u.path().trim_start_matches('/');
            (!d.is_empty()).then(|| decode(d))
        }),
        "PGDATABASE",
    );
    let address = format!("{}:{}", host.0, port.0);
    if let Some(verify) = verify {
        let target = TlsTarget {
            address,
            verify,
            ca_file,
            negotiate: Negotiate::Postgres,
        };
        b.tls("address", target, format!("{} and {}", host.1, port.1));
    } else {
        b.tcp.push(address.clone());
        b.set("host", host.0.clone(), host.1);
        b.set("port", port.0.clone(), port.1);
    }
    b.set("user", user.0.clone(), user.1);
    if let Some((d, s)) = &dbname {
        b.set("dbname", d.clone(), s.clone());
    }
    let password = query
        .get("password")
        .cloned()
        .or_else(|| u.password().map(decode))
        .map(|p| (p, source.to_string()))
        .or_else(|| env.var("PGPASSWORD").map(|p| (p.to_string(), "PGPASSWORD".to_string())));
    let password = match password {
        Some(p) => Some(p),
        None => pgpass(
            env,
            &host.0,
            &port.0,
            dbname.as_ref().map_or(&user.0, |d| &d.0),
            &user.0,
        )?,
    };
    if let Some((p, s)) = password {
        b.secret("password", p, s);
    }
    Ok(b)
}

/// The password `~/.pgpass` (or `$PGPASSFILE`) holds for this connection:
/// the first line whose `host:port:database:user` fields match (`*`
/// matches anything; `\:` and `\\` escape).
fn pgpass(env: &Env, host: &str, port: &str, db: &str, user: &str) -> Result<Option<(String, String)>> {
    let Some(path) = env
        .var("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| env.home_file(".pgpass"))
    else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::config(format!("reading `{}`: {e}", path.display()))),
    };
    // libpq ignores a password file others can read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).map(|m| m.permissions().mode()).unwrap_or(0);
        if mode & 0o077 != 0 {
            return Err(Error::config(format!(
                "`{}` may be read by others (mode {:o}); chmod 0600 it, as libpq requires",
                path.display(),
                mode & 0o777
            )));
        }
    }
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = pgpass_fields(line);
        if fields.len() != 5 {
            continue;
        }
        let matches = |f: &str, v: &str| f == "*" || f == v;
        let host_ok = matches(&fields[0], host) || (fields[0] == "localhost" && host == "127.0.0.1");
        if host_ok && matches(&fields[1], port) && matches(&fields[2], db) && matches(&fields[3], user) {
            return Ok(Some((fields[4].clone(), format!("`{}`", path.display()))));
        }
    }
    Ok(None)
}

fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    fields.last_mut().expect("one field").push(n);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests;
