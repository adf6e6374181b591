//! The Hub client: URLs, the token, error mapping, `HEAD` of files and
//! commits (`reader.rs` has the `GET`).

use crate::config::Config;
use serde_json::{Value, json};
use wharf_guest::{Error, ObjectMeta, PutMode};
use wharf_guest_http::encode::uri_encode;
use wharf_guest_http::{Endpoint, Request, Response, is_transient_status};

/// Redirects followed for one request (the Hub sends one: to its CDN).
pub const MAX_REDIRECTS: usize = 5;
const USER_AGENT: &str = concat!("wharf-huggingface-hub/", env!("CARGO_PKG_VERSION"));
/// The largest JSON answer read (a tree page of 1,000 entries is ~300 KB).
const JSON_LIMIT: usize = 16 << 20;

/// A configured repo on a Hub.
#[derive(Clone)]
pub struct Hub {
    /// The configuration.
    pub cfg: Config,
}

/// What a `HEAD` of one file said.
pub struct Head {
    /// The commit the revision points at (`X-Repo-Commit`), sent with the
    /// file and with a 404 for a missing file.
    pub commit: Option<String>,
    /// The file, when it exists.
    pub file: Option<FileInfo>,
}

/// One file as the Hub describes it.
#[derive(Clone, Debug)]
pub struct FileInfo {
    /// Size in bytes.
    pub size: u64,
    /// The sha256 of an LFS file, the git blob id of a regular one.
    pub etag: String,
    /// Stored through LFS (the Hub redirects its downloads to the CDN).
    pub lfs: bool,
}

impl Hub {
    /// The path in the repo of a contract path.
    pub fn repo_path(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.prefix)
    }

    /// `/api/{type}s/{repo}{tail}`.
    pub fn api(&self, tail: &str) -> String {
        format!(
            "{}/api/{}/{}{tail}",
            self.cfg.endpoint.base_path,
            self.cfg.repo_type.plural(),
            self.cfg.repo_id
        )
    }

    /// `/[{type}s/]{repo}`: where files and the LFS endpoints live.
    pub fn files_base(&self) -> String {
        format!(
            "{}/{}{}",
            self.cfg.endpoint.base_path,
            self.cfg.repo_type.url_prefix(),
            self.cfg.repo_id
        )
    }

    /// The configured revision, encoded as one path segment.
    pub fn rev(&self) -> String {
        uri_encode(&self.cfg.revision, false)
    }

    pub fn resolve_url(&self, rev: &str, repo_path: &str) -> String {
        format!(
            "{}/resolve/{}/{}",
            self.files_base(),
            uri_encode(rev, false),
            uri_encode(repo_path, true)
        )
    }

    /// A request to the Hub itself, with the token.
    pub fn request(&self, method: &'static str, path_and_query: impl Into<String>) -> Request {
        self.request_to(method, &self.cfg.endpoint.clone(), path_and_query.into())
    }

    /// A request to `endpoint`; the token goes only to the Hub's own origin,
    /// never to a CDN or storage host it redirects to.
    pub fn request_to(&self, method: &'static str, endpoint: &Endpoint, path_and_query: String) -> Request {
        let mut request = Request::new(method, endpoint, path_and_query).header("user-agent", USER_AGENT);
        if let Some(token) = &self.cfg.token
            && same_origin(endpoint, &self.cfg.endpoint)
        {
            request.set_header("authorization", format!("Bearer {token}"));
        }
        request
    }

    /// Who the requests go as, for messages (never the token).
    fn identity(&self) -> &'static str {
        if self.cfg.token.is_some() {
            "with the configured `token`"
        } else {
            "without a token (set `token`)"
        }
    }

    /// A failed response as the contract's error.
    pub fn fail(&self, response: Response, mode: Option<&PutMode>) -> Error {
        let (status, what) = (response.status, response.what().to_string());
        let headers = response.headers().to_vec();
        let body = response.error_text();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let code = header("x-error-code").unwrap_or("");
        let detail = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .or_else(|| header("x-error-message").map(str::to_string))
            .unwrap_or_else(|| body.chars().take(300).collect());
        let message = match code {
            "" => format!("{what}: {status} {detail}"),
            code => format!("{what}: {status} {code}: {detail}"),
        };
        let repo = format!("{} repo `{}`", self.cfg.repo_type.name(), self.cfg.repo_id);
        match status {
            401 | 403 => Error::Denied(format!("{message} (requests to {repo} go {})", self.identity())),
            404 if code == "RepoNotFound" => Error::Invalid(format!(
                "{message} ({repo} does not exist at {} or the token cannot see it: check `repo_id`, `repo_type` and `token`)",
                self.cfg.endpoint.url()
            )),
            404 if code == "RevisionNotFound" => Error::Invalid(format!(
                "{message} (revision `{}` does not exist in {repo}: check `revision`)",
                self.cfg.revision
            )),
            404 => Error::NotFound(message),
            409 if matches!(mode, Some(PutMode::Create)) => Error::AlreadyExists(message),
            412 => Error::PreconditionFailed(message),
            400 | 413 => Error::Invalid(message),
            s if is_transient_status(s) => Error::Transient(message),
            _ => Error::Backend(message),
        }
    }

    /// Sends a request; the response if its status is 2xx.
    pub fn send(&self, request: &Request, body: &[u8], mode: Option<&PutMode>) -> Result<Response, Error> {
        let response = request.send(body)?;
        if (200..300).contains(&response.status) {
            Ok(response)
        } else {
            Err(self.fail(response, mode))
        }
    }

    /// A response's JSON body.
    pub fn json(&self, response: Response) -> Result<Value, Error> {
        let what = response.what().to_string();
        let bytes = response.bytes(JSON_LIMIT)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Backend(format!("{what}: the answer is not JSON: {e}")))
    }

    /// `HEAD /{repo}/resolve/{rev}/{path}`: a file's size and etag, and the
    /// commit the revision points at. A regular file answers 200; an LFS
    /// file answers with a redirect to the CDN that carries `X-Linked-Size`
    /// and `X-Linked-Etag`.
    pub fn head(&self, path: &str) -> Result<Head, Error> {
        self.head_at(&self.cfg.revision, path)
    }

    /// [`Hub::head`] at a given revision or commit.
    pub fn head_at(&self, rev: &str, path: &str) -> Result<Head, Error> {
        let mut endpoint = self.cfg.endpoint.clone();
        let mut target = self.resolve_url(rev, &self.repo_path(path));
        for _ in 0..=MAX_REDIRECTS {
            let request = self.request_to("HEAD", &endpoint, target.clone());
            let response = request.send(&[])?;
            let commit = response.header("x-repo-commit").map(str::to_string);
            let linked_size = response.header("x-linked-size").and_then(|s| s.trim().parse().ok());
            match response.status {
                200..=299 => {
                    // A HEAD answer's Content-Length is the file's size.
                    let size = response.header("content-length").and_then(|s| s.trim().parse().ok());
                    let file = match (size, response.header("etag")) {
                        (Some(size), Some(etag)) => FileInfo {
                            size,
                            etag: normalize_etag(etag),
                            lfs: linked_size.is_some(),
                        },
                        _ => {
                            return Err(Error::Backend(format!(
                                "{}: the answer has no Content-Length or ETag",
                                response.what()
                            )));
                        }
                    };
                    response.discard();
                    return Ok(Head {
                        commit,
                        file: Some(file),
                    });
                }
                300..=399 if linked_size.is_some() => {
                    let etag = response
                        .header("x-linked-etag")
                        .or_else(|| response.header("etag"))
                        .map(normalize_etag)
                        .ok_or_else(|| Error::Backend(format!("{}: a redirect without an etag", response.what())))?;
                    response.discard();
                    return Ok(Head {
                        commit,
                        file: Some(FileInfo {
                            size: linked_size.unwrap_or_default(),
                            etag,
                            lfs: true,
                        }),
                    });
                }
                300..=399 => {
                    // A renamed repo: the metadata is at the new place.
                    let (next, path) = self.redirect_target(&endpoint, &response)?;
                    response.discard();
                    (endpoint, target) = (next, path);
                }
                404 if response.header("x-error-code") == Some("EntryNotFound") => {
                    response.discard();
                    return Ok(Head { commit, file: None });
                }
                _ => return Err(self.fail(response, None)),
            }
        }
        Err(Error::Backend(format!(
            "HEAD {}: more than {MAX_REDIRECTS} redirects",
            self.resolve_url(rev, &self.repo_path(path))
        )))
    }

    /// The metadata of one object.
    pub fn stat(&self, path: &str) -> Result<ObjectMeta, Error> {
        match self.head(path)?.file {
            Some(f) => Ok(ObjectMeta {
                path: path.to_string(),
                size: f.size,
                etag: Some(f.etag),
                modified_ms: None,
            }),
            None => Err(Error::NotFound(format!(
                "`{}` is not in {} repo `{}` at `{}`",
                self.repo_path(path),
                self.cfg.repo_type.name(),
                self.cfg.repo_id,
                self.cfg.revision
            ))),
        }
    }

    /// The commit the configured revision points at.
    pub fn head_commit(&self) -> Result<String, Error> {
        let request = self.request("GET", self.api(&format!("/revision/{}", self.rev())));
        let response = self.send(&request, &[], None)?;
        let what = response.what().to_string();
        let info = self.json(response)?;
        info.get("sha")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| Error::Backend(format!("{what}: no `sha` in the answer")))
    }

    /// Where a redirect points: the endpoint and the path and query.
    pub fn redirect_target(&self, from: &Endpoint, response: &Response) -> Result<(Endpoint, String), Error> {
        let location = response
            .header("location")
            .ok_or_else(|| Error::Backend(format!("{}: a redirect without a Location", response.what())))?;
        split_url(from, location).map_err(|e| Error::Backend(format!("{}: {e}", response.what())))
    }

    /// Posts a commit (NDJSON: a header, then one operation per line) to
    /// the configured branch; its commit id. With `parent`, the Hub refuses
    /// the commit (412) unless the branch still points at `parent`.
    pub fn commit(&self, summary: &str, parent: Option<&str>, ops: &[Value]) -> Result<String, Error> {
        let mut header = json!({ "summary": summary, "description": "" });
        if let Some(parent) = parent {
            header["parentCommit"] = Value::String(parent.to_string());
        }
        let mut body = Vec::new();
        for line in std::iter::once(&json!({ "key": "header", "value": header })).chain(ops) {
            serde_json::to_writer(&mut body, line).map_err(|e| Error::Backend(format!("encoding a commit: {e}")))?;
            body.push(b'\n');
        }
        let request = self
            .request("POST", self.api(&format!("/commit/{}", self.rev())))
            .header("content-type", "application/x-ndjson");
        let response = self.send(&request, &body, None)?;
        let what = response.what().to_string();
        let answer = self.json(response)?;
        answer
            .get("commitOid")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| Error::Backend(format!("{what}: no `commitOid` in the answer")))
    }
}

/// Whether two endpoints are the same origin (scheme, host and port).
pub fn same_origin(a: &Endpoint, b: &Endpoint) -> bool {
    a.https == b.https && a.authority == b.authority
}

/// Splits an absolute URL, or a path relative to `base`'s origin, into an
/// endpoint and a path with query.
pub fn split_url(base: &Endpoint, url: &str) -> Result<(Endpoint, String), String> {
    if let Some(i) = url.find("://") {
        let rest = &url[i + 3..];
        let cut = rest.find(['/', '?']).map_or(url.len(), |j| i + 3 + j);
        let endpoint = Endpoint::parse(&url[..cut])?;
        let path = match &url[cut..] {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        Ok((endpoint, path))
    } else if url.starts_with('/') {
        let mut endpoint = base.clone();
        endpoint.base_path = String::new();
        Ok((endpoint, url.to_string()))
    } else {
        Err(format!("cannot follow the URL `{url}`"))
    }
}

/// An etag as the Hub sends it (`"…"` or `W/"…"`), bare.
pub fn normalize_etag(etag: &str) -> String {
    etag.trim().trim_start_matches("W/").trim_matches('"').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split() {
        let base = Endpoint::parse("http://127.0.0.1:8000/hub").unwrap();
        let (e, p) = split_url(&base, "http://localhost:8000/cdn-lfs/abc?Expires=1&Signature=x").unwrap();
        assert_eq!(
            (e.authority.as_str(), p.as_str()),
            ("localhost:8000", "/cdn-lfs/abc?Expires=1&Signature=x")
        );
        assert!(!same_origin(&e, &base));
        let (e, p) = split_url(&base, "/api/models/a/b/tree/main?cursor=x").unwrap();
        assert!(same_origin(&e, &base));
        assert_eq!(
            (e.base_path.as_str(), p.as_str()),
            ("", "/api/models/a/b/tree/main?cursor=x")
        );
        let (_, p) = split_url(&base, "https://cdn.example?x=1").unwrap();
        assert_eq!(p, "/?x=1");
        assert!(split_url(&base, "relative/path").is_err());
        assert_eq!(normalize_etag("W/\"abc\""), "abc");
        assert_eq!(normalize_etag("\"abc\""), "abc");
    }
}
