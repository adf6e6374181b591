//! Backends named by URL: `s3://bucket/prefix`, `gs://`, `az://`,
//! `abfs[s]://`, `hf://`, `mlflow-artifacts:`, `redis://`, `postgresql://`,
//! `file://`. A URL becomes a [`BackendConfig`]: the plugin, its config
//! values, and grants derived from the URL and the credentials used, and
//! nothing more. Credentials come from the places each ecosystem's own
//! tools read, in their order ([`backend`] lists them); each value
//! remembers its source for `wharf config show`, and secrets are kept as
//! [`ConfigValue::Secret`], redacted from adapter messages and never shown.
//!
//! Only credentials that are there to be read are resolved today: keys in
//! variables, files and connection strings. A source that needs an
//! exchange the host does not make yet (an assumed role, web identity,
//! container or instance metadata, Entra ID) is refused with its name, not
//! skipped for the next one.

use crate::config::{BackendConfig, ConfigValue, DirGrantConfig};
use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

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
    dirs: Vec<DirGrantConfig>,
}

impl Built {
    fn new(plugin: &'static str) -> Self {
        Built {
            plugin,
            config: BTreeMap::new(),
            sources: BTreeMap::new(),
            http: Vec::new(),
            tcp: Vec::new(),
            dirs: Vec::new(),
        }
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
        b.grants.dirs = self.dirs;
        b.url = Some(url.into());
        b.sources = self.sources;
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
    let where_ = |file: &str| format!("profile `{profile_name}` in {file}");
    if let (Some(id), Some(secret)) = (
        profile.credential("aws_access_key_id"),
        profile.credential("aws_secret_access_key"),
    ) {
        let file = profile.credential_file();
        b.set("access_key_id", id, where_(file));
        b.secret("secret_access_key", secret, where_(file));
        if let Some(t) = profile.credential("aws_session_token") {
            b.secret("session_token", t, where_(file));
        }
        return Ok(b);
    }
    for key in [
        "role_arn",
        "credential_process",
        "sso_session",
        "sso_start_url",
        "web_identity_token_file",
    ] {
        if profile.config.contains_key(key) || profile.credentials.contains_key(key) {
            return Err(bad(
                url,
                format!(
                    "{}: `{key}` credentials are not resolved by wharf yet; export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN (e.g. from `aws configure export-credentials`)",
                    where_(&profile.config_path)
                ),
            ));
        }
    }
    for var in [
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ] {
        if env.var(var).is_some() {
            return Err(bad(
                url,
                format!(
                    "{var} is set, and credentials from it are not resolved by wharf yet; export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN"
                ),
            ));
        }
    }
    // No credentials anywhere: anonymous requests (public buckets), which
    // the adapter names in a `denied` error.
    b.sources
        .insert("credentials".into(), "none found: anonymous requests".into());
    Ok(b)
}

/// One profile of the shared AWS config and credentials files.
#[derive(Default)]
struct AwsProfile {
    config: BTreeMap<String, String>,
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
        p.config = sections
            .into_iter()
            .find(|(s, _)| *s == wanted || (name == "default" && s == "default"))
            .map(|(_, kv)| kv)
            .unwrap_or_default();
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
    let key_file = env
        .var("GOOGLE_APPLICATION_CREDENTIALS")
        .map(|p| (PathBuf::from(p), "GOOGLE_APPLICATION_CREDENTIALS".to_string()))
        .or_else(|| {
            let adc = env
                .var("CLOUDSDK_CONFIG")
                .map(|d| PathBuf::from(d).join("application_default_credentials.json"))
                .or_else(|| env.home_file(".config/gcloud/application_default_credentials.json"))?;
            adc.exists().then(|| {
                let s = format!("gcloud application-default credentials `{}`", adc.display());
                (adc, s)
            })
        });
    let Some((path, source)) = key_file else {
        return Err(bad(
            url,
            "no credentials: set GOOGLE_APPLICATION_CREDENTIALS to a service-account key (the metadata server is not used by wharf yet), or STORAGE_EMULATOR_HOST",
        ));
    };
    let text =
        std::fs::read_to_string(&path).map_err(|e| bad(url, format!("{source}: reading `{}`: {e}", path.display())))?;
    let key: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| bad(url, format!("{source}: `{}` is not JSON ({e})", path.display())))?;
    match key.get("type").and_then(|t| t.as_str()) {
        Some("service_account") => {}
        other => {
            return Err(bad(
                url,
                format!(
                    "{source}: credentials of type `{}` are not resolved by wharf yet; use a service-account key",
                    other.unwrap_or("(none)")
                ),
            ));
        }
    }
    let token_uri = key
        .get("token_uri")
        .and_then(|t| t.as_str())
        .unwrap_or("https://oauth2.googleapis.com/token");
    b.http.push(origin(token_uri, "the key's token_uri")?);
    let dir = path
        .parent()
        .ok_or_else(|| bad(url, format!("{source}: `{}` has no directory", path.display())))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| bad(url, format!("{source}: `{}` has no file name", path.display())))?;
    // The adapter reads the key inside its sandbox: only its directory,
    // read-only.
    b.dirs.push(DirGrantConfig {
        host: dir.to_path_buf(),
        guest: "/credentials".into(),
        read_only: true,
        create: false,
    });
    b.set("service_account_key", format!("/credentials/{name}"), source);
    Ok(b)
}

fn azure(url: &str, env: &Env) -> Result<Built> {
    let mut b = Built::new("azure_blob");
    let scheme = url.split("://").next().unwrap_or("");
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or("");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (container, url_account) = if scheme == "az" {
        (authority.to_string(), None)
    } else {
        // abfs[s]://container@account.dfs.core.windows.net/prefix
        let (container, host) = authority
            .split_once('@')
            .ok_or_else(|| bad(url, "abfs URLs are container@account.dfs.core.windows.net/path"))?;
        let account = host
            .split('.')
            .next()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| bad(url, "names no account"))?;
        (container.to_string(), Some(account.to_string()))
    };
    if container.is_empty() {
        return Err(bad(url, "names no container"));
    }
    b.set("container", container, "the URL");
    b.prefix(path);
    if let Some(cs) = env.var("AZURE_STORAGE_CONNECTION_STRING") {
        let source = "AZURE_STORAGE_CONNECTION_STRING";
        let parts = connection_string(cs);
        let dev = parts
            .get("usedevelopmentstorage")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let (account, key, endpoint) = if dev {
            (
                AZURITE_ACCOUNT.to_string(),
                Some(AZURITE_KEY.to_string()),
                Some(format!("http://127.0.0.1:10000/{AZURITE_ACCOUNT}")),
            )
        } else {
            let account = parts
                .get("accountname")
                .cloned()
                .ok_or_else(|| bad(url, format!("{source} has no AccountName")))?;
            let endpoint = parts.get("blobendpoint").cloned().or_else(|| {
                let protocol = parts.get("defaultendpointsprotocol").map_or("https", String::as_str);
                let suffix = parts.get("endpointsuffix").map_or("core.windows.net", String::as_str);
                Some(format!("{protocol}://{account}.blob.{suffix}"))
            });
            (account, parts.get("accountkey").cloned(), endpoint)
        };
        if let Some(a) = &url_account
            && !a.eq_ignore_ascii_case(&account)
        {
            return Err(bad(url, format!("names account `{a}`, {source} account `{account}`")));
        }
        b.set("account", account, source);
        let endpoint = endpoint.expect("always set");
        b.http.push(origin(&endpoint, source)?);
        b.set("endpoint", endpoint.trim_end_matches('/'), source);
        match (key, parts.get("sharedaccesssignature")) {
            (Some(k), _) => b.secret("account_key", k, source),
            (None, Some(sas)) => b.secret("sas_token", sas.clone(), source),
            (None, None) => {
                return Err(bad(
                    url,
                    format!("{source} has neither AccountKey nor SharedAccessSignature"),
                ));
            }
        }
        return Ok(b);
    }
    let account = match (url_account, env.var("AZURE_STORAGE_ACCOUNT")) {
        (Some(a), _) => {
            b.set("account", a.clone(), "the URL");
            a
        }
        (None, Some(a)) => {
            b.set("account", a, "AZURE_STORAGE_ACCOUNT");
            a.to_string()
        }
        (None, None) => {
            return Err(bad(
                url,
                "no account: set AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT, or use abfss://container@account.dfs.core.windows.net/",
            ));
        }
    };
    b.http.push(format!("https://{account}.blob.core.windows.net"));
    if let Some(k) = env.var("AZURE_STORAGE_KEY") {
        b.secret("account_key", k, "AZURE_STORAGE_KEY");
    } else if let Some(s) = env.var("AZURE_STORAGE_SAS_TOKEN") {
        b.secret("sas_token", s, "AZURE_STORAGE_SAS_TOKEN");
    } else {
        return Err(bad(
            url,
            "no credentials: set AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN (Entra ID tokens are not resolved by wharf yet)",
        ));
    }
    Ok(b)
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
    if u.scheme() == "rediss" {
        return Err(bad(&url_used, "TLS (`rediss://`) is not supported by wharf yet"));
    }
    if u.scheme() != "redis" {
        return Err(bad(&url_used, format!("{source} is not a redis:// URL")));
    }
    let host = u.host_str().filter(|h| !h.is_empty()).unwrap_or("127.0.0.1");
    let address = format!("{host}:{}", u.port().unwrap_or(6379));
    let mut b = Built::new("redis");
    b.tcp.push(address.clone());
    b.set("address", address, source);
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
            "sslmode" | "user" | "password" | "dbname" | "host" | "port" | "application_name"
        ) {
            return Err(bad(&url_used, format!("unknown parameter `{key}`")));
        }
    }
    let sslmode = query
        .get("sslmode")
        .map(|m| (m.as_str(), source))
        .or_else(|| env.var("PGSSLMODE").map(|m| (m, "PGSSLMODE")));
    match sslmode {
        None | Some(("disable" | "allow" | "prefer", _)) => {}
        Some((m @ ("require" | "verify-ca" | "verify-full"), from)) => {
            return Err(bad(
                &url_used,
                format!("sslmode `{m}` (from {from}): TLS to PostgreSQL is not supported by wharf yet"),
            ));
        }
        Some((m, from)) => return Err(bad(&url_used, format!("unknown sslmode `{m}` (from {from})"))),
    }
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
    b.tcp.push(address.clone());
    b.set("host", host.0.clone(), host.1);
    b.set("port", port.0.clone(), port.1);
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
