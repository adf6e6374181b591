//! The backend's `config` table: which repo, where, as whom.

use wharf_guest::Error;
use wharf_guest::config::Table;
use wharf_guest_http::Endpoint;

const KEYS: &[&str] = &[
    "endpoint",
    "repo_id",
    "repo_type",
    "revision",
    "token",
    "prefix",
    "scratch",
    "spool_threshold",
];

/// The kinds of Hub repo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepoType {
    /// `/api/models/…`, files at `/{repo}/resolve/…`.
    Model,
    /// `/api/datasets/…`, files at `/datasets/{repo}/resolve/…`.
    Dataset,
    /// `/api/spaces/…`, files at `/spaces/{repo}/resolve/…`.
    Space,
}

impl RepoType {
    /// The name the API paths use: `models`, `datasets`, `spaces`.
    pub fn plural(self) -> &'static str {
        match self {
            RepoType::Model => "models",
            RepoType::Dataset => "datasets",
            RepoType::Space => "spaces",
        }
    }

    /// The prefix of file URLs: ``, `datasets/`, `spaces/`.
    pub fn url_prefix(self) -> &'static str {
        match self {
            RepoType::Model => "",
            RepoType::Dataset => "datasets/",
            RepoType::Space => "spaces/",
        }
    }

    /// `model`, `dataset`, `space`.
    pub fn name(self) -> &'static str {
        match self {
            RepoType::Model => "model",
            RepoType::Dataset => "dataset",
            RepoType::Space => "space",
        }
    }
}

/// A parsed configuration.
#[derive(Clone)]
pub struct Config {
    /// The Hub, default `https://huggingface.co`.
    pub endpoint: Endpoint,
    /// `namespace/name`.
    pub repo_id: String,
    /// Model, dataset or space.
    pub repo_type: RepoType,
    /// The branch read and committed to, default `main`.
    pub revision: String,
    /// A Hub access token (secret: never in a message).
    pub token: Option<String>,
    /// A path prefix inside the repo, e.g. `wharf/`.
    pub prefix: String,
    /// A granted guest directory where writes larger than
    /// `spool_threshold` are spooled while their sha256 is computed.
    pub scratch: Option<String>,
    /// Bytes a write keeps in memory before it spools, default 10 MiB.
    pub spool_threshold: u64,
}

impl Config {
    /// Reads the `config` table; every problem is `invalid` and names the key.
    pub fn parse(config: Vec<(String, String)>) -> Result<Config, Error> {
        let mut get = Table::parse(config, KEYS)?;
        let endpoint = get.take("endpoint").unwrap_or_else(|| "https://huggingface.co".into());
        let endpoint = Endpoint::parse(&endpoint).map_err(|e| Error::Invalid(format!("`endpoint`: {e}")))?;
        let repo_id = get
            .take("repo_id")
            .filter(|r| !r.is_empty())
            .ok_or_else(|| Error::Invalid("config key `repo_id` is required (`namespace/name`)".into()))?;
        check_repo_id(&repo_id)?;
        let repo_type = match get.take("repo_type").as_deref() {
            None | Some("model") => RepoType::Model,
            Some("dataset") => RepoType::Dataset,
            Some("space") => RepoType::Space,
            Some(other) => {
                return Err(Error::Invalid(format!(
                    "`repo_type` `{other}` is not model, dataset or space"
                )));
            }
        };
        let revision = get.take("revision").unwrap_or_else(|| "main".into());
        if revision.is_empty() || revision.chars().any(|c| c.is_control() || c == ' ') || revision.contains("..") {
            return Err(Error::Invalid(format!("`revision` `{revision}` is not a branch name")));
        }
        let token = get.take("token").filter(|t| !t.is_empty());
        if token
            .as_deref()
            .is_some_and(|t| t.chars().any(|c| c.is_control() || c.is_whitespace()))
        {
            // Never echo the value: it is a secret.
            return Err(Error::Invalid(
                "`token` contains whitespace or control characters".into(),
            ));
        }
        let prefix = get.take("prefix").unwrap_or_default();
        if prefix.starts_with('/')
            || prefix.contains("//")
            || prefix.split('/').any(|s| s == ".." || s == ".")
            || prefix.chars().any(char::is_control)
        {
            return Err(Error::Invalid(format!(
                "`prefix` `{prefix}` must be a relative path without `.`, `..` or empty segments"
            )));
        }
        let scratch = get.take("scratch").filter(|s| !s.is_empty());
        if let Some(s) = &scratch
            && !s.starts_with('/')
        {
            return Err(Error::Invalid(format!(
                "`scratch` `{s}` must be the absolute guest path of a granted directory (e.g. `/scratch`)"
            )));
        }
        let spool_threshold = get.take_size("spool_threshold")?.unwrap_or(10 << 20);
        if spool_threshold > 64 << 20 {
            return Err(Error::Invalid(format!(
                "`spool_threshold` {spool_threshold} is over 64 MiB: a write holds that much in memory"
            )));
        }
        Ok(Config {
            endpoint,
            repo_id,
            repo_type,
            revision,
            token,
            prefix,
            scratch: scratch.map(|s| s.trim_end_matches('/').to_string()),
            spool_threshold,
        })
    }
}

/// `namespace/name`, each part letters, digits, `-`, `_`, `.`, as the Hub
/// allows them.
fn check_repo_id(repo_id: &str) -> Result<(), Error> {
    let bad = || {
        Error::Invalid(format!(
            "`repo_id` `{repo_id}` is not `namespace/name` (letters, digits, `-`, `_`, `.`)"
        ))
    };
    let (ns, name) = repo_id.split_once('/').ok_or_else(bad)?;
    for part in [ns, name] {
        if part.is_empty()
            || part.len() > 96
            || part.starts_with(['-', '.'])
            || part.ends_with('.')
            || part.contains("--")
            || part.contains("..")
            || !part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(bad());
        }
    }
    Ok(())
}
