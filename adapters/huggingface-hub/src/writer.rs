//! Writes: bytes are hashed as they arrive, kept in memory up to
//! `spool_threshold` and spooled to the `scratch` directory beyond it,
//! because the Hub wants an LFS object's sha256 before its upload starts.
//! `finish` asks `preupload` how the file goes: `regular` inline in the
//! commit, or `lfs` through the LFS batch API (`basic`: one PUT;
//! `multipart`: a PUT per part and a completion call), then commits.

use crate::client::{Head, Hub, split_url};
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::io::{Read, Seek, SeekFrom, Write};
use wharf_guest::{Error, ObjectMeta, PutMode};
use wharf_guest_http::encode::{base64, hex};
use wharf_guest_http::{Endpoint, Pending, Request, Response};

/// Bytes of the file's start `preupload` looks at (text or binary).
const SAMPLE: usize = 512;
/// Bytes of a spool file read and sent at a time.
const PIECE: usize = 1 << 20;
/// Commits tried when the branch moves under a conditional write.
const COMMIT_ATTEMPTS: usize = 5;

/// An object being written.
pub struct Upload {
    hub: Hub,
    path: String,
    mode: PutMode,
    /// The commit the precondition was checked at (create and update).
    parent: Option<String>,
    hash: Sha256,
    size: u64,
    sample: Vec<u8>,
    memory: Vec<u8>,
    spool: Option<Spool>,
}

/// A file in the scratch directory, removed when dropped.
struct Spool {
    path: String,
    file: Option<std::fs::File>,
}

impl Drop for Spool {
    fn drop(&mut self) {
        self.file = None;
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!("huggingface_hub: could not remove the spool file `{}`: {e}", self.path);
        }
    }
}

/// Where the bytes of a finished write are.
enum Content<'a> {
    Memory(&'a [u8]),
    File(&'a str),
}

impl Upload {
    /// Starts a write. For `create` and `update` the precondition is checked
    /// now (so a conflicting upload fails before it starts) and the commit it
    /// was checked at becomes the commit's `parentCommit`.
    pub fn new(hub: &Hub, path: String, mode: PutMode) -> Result<Upload, Error> {
        let parent = match mode {
            PutMode::Overwrite => None,
            _ => Some(check(hub, &path, &mode, hub.head(&path)?)?),
        };
        Ok(Upload {
            hub: hub.clone(),
            path,
            mode,
            parent,
            hash: Sha256::new(),
            size: 0,
            sample: Vec::new(),
            memory: Vec::new(),
            spool: None,
        })
    }

    fn start_spool(&mut self) -> Result<(), Error> {
        let Some(dir) = &self.hub.cfg.scratch else {
            return Err(Error::Invalid(format!(
                "`{}` is larger than `spool_threshold` ({} bytes): the Hub needs an LFS file's sha256 before its \
                 upload, so larger writes are spooled to a granted directory; set `scratch` (e.g. `/scratch`) and \
                 grant it in grants.dirs",
                self.path, self.hub.cfg.spool_threshold
            )));
        };
        let path = format!(
            "{dir}/.wharf-hf-{:016x}{:016x}.spool",
            wharf_guest_http::random::random_u64(),
            wharf_guest_http::random::random_u64()
        );
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| {
                Error::Invalid(format!(
                    "cannot create a spool file in `scratch` `{dir}` ({e}): is it granted, writable, in grants.dirs?"
                ))
            })?;
        file.write_all(&self.memory)
            .map_err(|e| Error::Backend(format!("writing the spool file `{path}`: {e}")))?;
        self.memory = Vec::new();
        self.spool = Some(Spool { path, file: Some(file) });
        Ok(())
    }
}

impl wharf_guest::Upload for Upload {
    /// Takes the next bytes.
    fn append(&mut self, chunk: Vec<u8>) -> Result<(), Error> {
        self.hash.update(&chunk);
        self.size += chunk.len() as u64;
        if self.sample.len() < SAMPLE {
            let take = (SAMPLE - self.sample.len()).min(chunk.len());
            self.sample.extend_from_slice(&chunk[..take]);
        }
        if self.spool.is_none() && (self.memory.len() + chunk.len()) as u64 > self.hub.cfg.spool_threshold {
            self.start_spool()?;
        }
        match &mut self.spool {
            Some(spool) => {
                let file = spool.file.as_mut().expect("open while writing");
                file.write_all(&chunk)
                    .map_err(|e| Error::Backend(format!("writing the spool file `{}`: {e}", spool.path)))
            }
            None => {
                self.memory.extend_from_slice(&chunk);
                Ok(())
            }
        }
    }

    /// Uploads and commits. Nothing is visible before the commit; the spool
    /// file is removed whatever happens.
    fn finish(mut self) -> Result<ObjectMeta, Error> {
        if let Some(spool) = &mut self.spool
            && let Some(mut file) = spool.file.take()
        {
            file.flush()
                .map_err(|e| Error::Backend(format!("writing the spool file `{}`: {e}", spool.path)))?;
        }
        let oid = hex(&self.hash.clone().finalize());
        let content = match &self.spool {
            Some(spool) => Content::File(&spool.path),
            None => Content::Memory(&self.memory),
        };
        let repo_path = self.hub.repo_path(&self.path);
        // Empty files cannot go through LFS (the official client does the same).
        let lfs = self.size > 0 && preupload(&self.hub, &repo_path, self.size, &self.sample)?;
        let (op, etag) = if lfs {
            upload_lfs(&self.hub, &self.path, &oid, self.size, &content)?;
            let op = json!({ "key": "lfsFile", "value": {
                "path": repo_path, "algo": "sha256", "oid": oid, "size": self.size } });
            (op, oid)
        } else {
            let Content::Memory(bytes) = content else {
                return Err(Error::Backend(format!(
                    "the Hub asked for `{}` ({} bytes) inline in the commit; wharf inlines at most \
                     `spool_threshold` bytes",
                    self.path, self.size
                )));
            };
            let op = json!({ "key": "file", "value": {
                "path": repo_path, "content": base64(bytes), "encoding": "base64" } });
            (op, git_blob_id(bytes))
        };
        let summary = format!("Upload {repo_path} with wharf");
        commit_checked(&self.hub, &self.path, &self.mode, self.parent.take(), &summary, &[op])?;
        Ok(ObjectMeta {
            path: self.path.clone(),
            size: self.size,
            etag: Some(etag),
            modified_ms: None,
        })
    }

    /// Drops what was written (the spool file goes with it). Nothing was
    /// sent to the Hub before `finish`.
    fn abort(self) -> Result<(), Error> {
        Ok(())
    }
}

/// Checks `mode` against what `HEAD` said of `path`; the commit it was
/// checked at.
pub fn check(hub: &Hub, path: &str, mode: &PutMode, head: Head) -> Result<String, Error> {
    let at = |c: &Option<String>| c.clone().map_or_else(|| hub.head_commit(), Ok);
    match (mode, &head.file) {
        (PutMode::Create, Some(_)) => Err(Error::AlreadyExists(format!(
            "`{}` already exists at `{}`",
            hub.repo_path(path),
            hub.cfg.revision
        ))),
        (PutMode::Update(want), Some(f)) if f.etag != *want => Err(Error::PreconditionFailed(format!(
            "`{}` has etag `{}`, not `{want}`",
            hub.repo_path(path),
            f.etag
        ))),
        (PutMode::Update(want), None) => Err(Error::PreconditionFailed(format!(
            "`{}` does not exist (expected etag `{want}`)",
            hub.repo_path(path)
        ))),
        _ => at(&head.commit),
    }
}

/// Commits `ops`. For `create` and `update` the commit names `parent` as
/// its parent; when the branch moved (412), the precondition is checked
/// again at the new head and the commit retried there, so an unrelated
/// commit does not fail the write and a conflicting one does.
pub fn commit_checked(
    hub: &Hub,
    path: &str,
    mode: &PutMode,
    mut parent: Option<String>,
    summary: &str,
    ops: &[Value],
) -> Result<String, Error> {
    let mut attempt = 1;
    loop {
        match hub.commit(summary, parent.as_deref(), ops) {
            Err(Error::PreconditionFailed(why)) if parent.is_some() => {
                if attempt >= COMMIT_ATTEMPTS {
                    return Err(Error::PreconditionFailed(format!(
                        "{why} (the branch moved under {COMMIT_ATTEMPTS} commits in a row)"
                    )));
                }
                attempt += 1;
                parent = Some(check(hub, path, mode, hub.head(path)?)?);
            }
            other => return other,
        }
    }
}

/// Asks `preupload` whether `repo_path` goes through LFS.
fn preupload(hub: &Hub, repo_path: &str, size: u64, sample: &[u8]) -> Result<bool, Error> {
    let body = json!({ "files": [{ "path": repo_path, "sample": base64(sample), "size": size }] }).to_string();
    let request = hub
        .request("POST", hub.api(&format!("/preupload/{}", hub.rev())))
        .header("content-type", "application/json");
    let response = hub.send(&request, body.as_bytes(), None)?;
    let what = response.what().to_string();
    let answer = hub.json(response)?;
    let mode = answer
        .get("files")
        .and_then(Value::as_array)
        .and_then(|files| {
            files
                .iter()
                .find(|f| f.get("path").and_then(Value::as_str) == Some(repo_path))
        })
        .and_then(|f| f.get("uploadMode"))
        .and_then(Value::as_str);
    match mode {
        Some("lfs") => Ok(true),
        Some("regular") => Ok(false),
        other => Err(Error::Backend(format!(
            "{what}: upload mode {other:?} for `{repo_path}` (expected lfs or regular)"
        ))),
    }
}

/// Uploads an LFS object through the batch API, unless the Hub has it.
fn upload_lfs(hub: &Hub, path: &str, oid: &str, size: u64, content: &Content<'_>) -> Result<(), Error> {
    let body = json!({
        "operation": "upload",
        "transfers": ["basic", "multipart"],
        "objects": [{ "oid": oid, "size": size }],
        "hash_algo": "sha256",
        "ref": { "name": hub.cfg.revision },
    })
    .to_string();
    let request = hub
        .request("POST", format!("{}.git/info/lfs/objects/batch", hub.files_base()))
        .header("accept", "application/vnd.git-lfs+json")
        .header("content-type", "application/vnd.git-lfs+json");
    let response = hub.send(&request, body.as_bytes(), None)?;
    let what = response.what().to_string();
    let answer = hub.json(response)?;
    let object = answer
        .get("objects")
        .and_then(Value::as_array)
        .and_then(|objects| {
            objects
                .iter()
                .find(|o| o.get("oid").and_then(Value::as_str) == Some(oid))
        })
        .ok_or_else(|| Error::Backend(format!("{what}: the answer does not list object {oid}")))?;
    if let Some(err) = object.get("error") {
        return Err(Error::Backend(format!(
            "{what}: object {oid} of `{path}`: {} {}",
            err.get("code").and_then(Value::as_u64).unwrap_or_default(),
            err.get("message").and_then(Value::as_str).unwrap_or("")
        )));
    }
    let Some(actions) = object.get("actions") else {
        // The Hub already stores these bytes.
        return Ok(());
    };
    if let Some(upload) = actions.get("upload") {
        let (endpoint, target) = action_url(hub, upload, &what)?;
        let header = upload.get("header").and_then(Value::as_object);
        match header.and_then(|h| h.get("chunk_size")) {
            Some(chunk) => {
                let chunk = chunk
                    .as_str()
                    .and_then(|c| c.parse::<u64>().ok())
                    .or_else(|| chunk.as_u64())
                    .filter(|c| *c > 0)
                    .ok_or_else(|| Error::Backend(format!("{what}: a bad `chunk_size` {chunk}")))?;
                let parts = header.map(part_urls).unwrap_or_default();
                multipart(hub, oid, size, chunk, &parts, content, (&endpoint, &target))?;
            }
            None => {
                let mut request = hub.request_to("PUT", &endpoint, target);
                for (k, v) in header.into_iter().flatten() {
                    if let Some(v) = v.as_str() {
                        request.set_header(k, v);
                    }
                }
                put(hub, request, content, 0, size)?;
            }
        }
    }
    if let Some(verify) = actions.get("verify") {
        let (endpoint, target) = action_url(hub, verify, &what)?;
        let mut request = hub
            .request_to("POST", &endpoint, target)
            .header("content-type", "application/vnd.git-lfs+json");
        for (k, v) in verify.get("header").and_then(Value::as_object).into_iter().flatten() {
            if let Some(v) = v.as_str() {
                request.set_header(k, v);
            }
        }
        let body = json!({ "oid": oid, "size": size }).to_string();
        hub.send(&request, body.as_bytes(), None)?.discard();
    }
    Ok(())
}

/// The `href` of an LFS action.
fn action_url(hub: &Hub, action: &Value, what: &str) -> Result<(Endpoint, String), Error> {
    let href = action
        .get("href")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Backend(format!("{what}: an action without `href`")))?;
    split_url(&hub.cfg.endpoint, href).map_err(|e| Error::Backend(format!("{what}: {e}")))
}

/// The numbered part URLs of a multipart action, in order.
fn part_urls(header: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut parts: Vec<(u64, String)> = header
        .iter()
        .filter_map(|(k, v)| Some((k.parse::<u64>().ok()?, v.as_str()?.to_string())))
        .collect();
    parts.sort();
    parts.into_iter().map(|(_, url)| url).collect()
}

/// Multipart transfer: each part PUT to its URL, then the completion call
/// with the parts' etags.
fn multipart(
    hub: &Hub,
    oid: &str,
    size: u64,
    chunk: u64,
    parts: &[String],
    content: &Content<'_>,
    complete: (&Endpoint, &str),
) -> Result<(), Error> {
    if parts.len() as u64 != size.div_ceil(chunk) {
        return Err(Error::Backend(format!(
            "the LFS batch answer lists {} part URLs for {size} bytes in parts of {chunk}",
            parts.len()
        )));
    }
    let mut done = Vec::with_capacity(parts.len());
    for (i, url) in parts.iter().enumerate() {
        let (endpoint, target) =
            split_url(&hub.cfg.endpoint, url).map_err(|e| Error::Backend(format!("part {}: {e}", i + 1)))?;
        let offset = i as u64 * chunk;
        let len = chunk.min(size - offset);
        let etag = put(hub, hub.request_to("PUT", &endpoint, target), content, offset, len)?
            .ok_or_else(|| Error::Backend(format!("part {} of {oid}: the answer has no ETag", i + 1)))?;
        done.push(json!({ "partNumber": i + 1, "etag": etag }));
    }
    let body = json!({ "oid": oid, "parts": done }).to_string();
    let request = hub
        .request_to("POST", complete.0, complete.1.to_string())
        .header("accept", "application/vnd.git-lfs+json")
        .header("content-type", "application/vnd.git-lfs+json");
    hub.send(&request, body.as_bytes(), None)?.discard();
    Ok(())
}

/// PUTs `len` bytes of `content` from `offset`; the answer's ETag.
fn put(hub: &Hub, request: Request, content: &Content<'_>, offset: u64, len: u64) -> Result<Option<String>, Error> {
    let response = match content {
        Content::Memory(bytes) => {
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            let end = start + usize::try_from(len).unwrap_or(usize::MAX);
            request.send(&bytes[start..end])?
        }
        Content::File(path) => send_file(&request, path, offset, len)?,
    };
    if !(200..300).contains(&response.status) {
        return Err(hub.fail(response, None));
    }
    let etag = response.header("etag").map(str::to_string);
    response.discard();
    Ok(etag)
}

/// Sends `request` with `len` bytes of the spool file at `path` from
/// `offset`, read and written a piece at a time: an LFS object of any size
/// goes out in bounded memory. A failure part way drops the body
/// unfinished, which cancels the request.
fn send_file(request: &Request, path: &str, offset: u64, len: u64) -> Result<Response, Error> {
    let what = request.describe();
    let spool =
        |doing: &str, e: std::io::Error| Error::Backend(format!("{what}: {doing} the spool file `{path}`: {e}"));
    let mut file = std::fs::File::open(path).map_err(|e| spool("opening", e))?;
    file.seek(SeekFrom::Start(offset)).map_err(|e| spool("seeking in", e))?;
    let mut body = request.start_body(Some(len))?;
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(PIECE).min(PIECE)];
    let mut left = len;
    while left > 0 {
        let piece = &mut buf[..usize::try_from(left).unwrap_or(PIECE).min(PIECE)];
        file.read_exact(piece).map_err(|e| spool("reading", e))?;
        if let Some(early) = body.write(piece)? {
            return Ok(early);
        }
        left -= piece.len() as u64;
    }
    body.finish().and_then(Pending::wait).map_err(Error::from)
}

/// The git blob id of `data`: the id the Hub gives a regular file.
pub fn git_blob_id(data: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", data.len()).as_bytes());
    h.update(data);
    hex(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_ids_match_git() {
        // `printf hello | git hash-object --stdin`
        assert_eq!(git_blob_id(b"hello"), "b6fc4c620b67d95f953a5c1c1230aaab5db5a1b0");
        assert_eq!(git_blob_id(b""), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
    }
}
