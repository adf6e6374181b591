//! Writes: one media upload for an object of at most one chunk, a resumable
//! upload session for anything larger.
//!
//! The host hands over exactly one chunk per `append` (the capabilities say
//! `write_min_chunk = write_max_chunk = chunk_size`) but does not say which
//! append is the last. A resumable upload must name the total size on its
//! last request, so the writer holds back the latest chunk and sends it
//! when the next one arrives (without a total) or at `finish` (with it).
//! Memory: at most two chunks, the held one and the one arriving.

use crate::client::{Client, Condition, ObjectResource, json};
use crate::{Error, ObjectMeta};
use std::rc::Rc;
use wharf_guest_http::Response;

/// Requests one chunk may take when the server persists only part of what
/// was sent (it says how much in the `Range` of its 308 answer).
const MAX_ATTEMPTS_PER_CHUNK: usize = 8;

/// An object being written. Dropping it (after a failure, or a writer the
/// host drops) cancels its session, if any.
pub struct Upload {
    client: Rc<Client>,
    path: String,
    condition: Condition,
    /// The latest chunk, not sent yet.
    held: Option<Vec<u8>>,
    /// The resumable session, once more than one chunk was appended.
    session: Option<Session>,
}

/// A resumable upload session.
struct Session {
    /// Path and query of the session URI, sent to the configured endpoint.
    target: String,
    /// Bytes the server has confirmed.
    persisted: u64,
}

impl Upload {
    /// An upload of `path` whose commit requires `condition`.
    pub fn new(client: Rc<Client>, path: &str, condition: Condition) -> Upload {
        Upload {
            client,
            path: path.to_string(),
            condition,
            held: None,
            session: None,
        }
    }

    /// `POST …?uploadType=media`: the whole object in one request.
    fn media_upload(&self, data: &[u8]) -> Result<ObjectResource, Error> {
        let url = self.client.upload_url("media", &self.path, &self.condition);
        let request = self
            .client
            .request("POST", url)
            .header("content-type", "application/octet-stream");
        json(self.client.expect(request, data, &[200, 201], &self.condition)?)
    }

    /// `POST …?uploadType=resumable`: a session, whose URI comes back in
    /// `Location`. The condition is checked again when the upload completes.
    fn start_session(&self) -> Result<Session, Error> {
        let url = self.client.upload_url("resumable", &self.path, &self.condition);
        let request = self
            .client
            .request("POST", url)
            .header("x-upload-content-type", "application/octet-stream");
        let response = self.client.expect(request, &[], &[200, 201], &self.condition)?;
        let target = response
            .header("location")
            .ok_or_else(|| Error::Backend(format!("{}: no Location in the answer", response.what())))
            .and_then(|l| session_target(l).map_err(Error::Backend))?;
        response.discard();
        Ok(Session { target, persisted: 0 })
    }

    /// Sends `data` as the session's next chunk (starting the session if
    /// needed); as its last one when `last`, then returns the object.
    fn put(&mut self, data: &[u8], last: bool) -> Result<Option<ObjectResource>, Error> {
        let mut session = match self.session.take() {
            Some(s) => s,
            None => self.start_session()?,
        };
        let result = self.put_in(&mut session, data, last);
        self.session = Some(session);
        result
    }

    /// `PUT <session>` with `Content-Range: bytes a-b/*` (or `/total` when
    /// `last`). A 308 answer's `Range` says what the server persisted; a
    /// part it did not is sent again, so no byte is lost or duplicated.
    fn put_in(&self, session: &mut Session, data: &[u8], last: bool) -> Result<Option<ObjectResource>, Error> {
        let start = session.persisted;
        let end = start + data.len() as u64;
        for _ in 0..MAX_ATTEMPTS_PER_CHUNK {
            let piece = &data[(session.persisted - start) as usize..];
            let range = content_range(session.persisted, piece.len() as u64, last.then_some(end));
            let request = self
                .client
                .request("PUT", session.target.clone())
                .header("content-range", range);
            let response = self.client.send(request, piece)?;
            match response.status {
                200 | 201 if last => {
                    session.persisted = end;
                    return json(response).map(Some);
                }
                308 => {
                    session.persisted = confirmed(&response, session.persisted, end)?;
                    response.discard();
                    if session.persisted == end && !last {
                        return Ok(None);
                    }
                }
                200 | 201 => {
                    return Err(Error::Backend(format!(
                        "{}: the server completed the upload before its last chunk",
                        response.what()
                    )));
                }
                _ => return Err(self.client.failure(response, &self.condition)),
            }
        }
        Err(Error::Transient(format!(
            "writing `{}`: the server persisted {} of {end} bytes after {MAX_ATTEMPTS_PER_CHUNK} attempts",
            self.path, session.persisted
        )))
    }

    /// Cancels the session (`DELETE`), so nothing of it stays behind.
    fn cancel(&self, session: Session) -> Result<(), Error> {
        let request = self.client.request("DELETE", session.target);
        let response = self.client.send(request, &[])?;
        match response.status {
            // 499 is GCS's answer to a cancelled session; 404 and 410 mean
            // it is gone already. 501: the server cannot cancel sessions
            // (the emulator); an unfinished session is never an object, and
            // GCS drops it after a week.
            200..=299 | 404 | 410 | 499 | 501 => {
                response.discard();
                Ok(())
            }
            _ => Err(self.client.failure(response, &Condition::None)),
        }
    }
}

impl wharf_guest::Upload for Upload {
    /// Takes the next chunk; sends the one held before it.
    fn append(&mut self, chunk: Vec<u8>) -> Result<(), Error> {
        let chunk_size = self.client.chunk_size;
        if chunk.len() as u64 > chunk_size {
            return Err(Error::Invalid(format!(
                "an append of {} bytes is larger than chunk_size {chunk_size}",
                chunk.len()
            )));
        }
        let Some(previous) = self.held.replace(chunk) else {
            return Ok(());
        };
        // GCS takes a chunk that is not the last only in multiples of
        // 256 KiB; the capabilities make every such append one whole chunk.
        if previous.len() as u64 != chunk_size {
            return Err(Error::Invalid(format!(
                "an append of {} bytes was not the last, but only the last may be shorter than chunk_size {chunk_size}",
                previous.len()
            )));
        }
        self.put(&previous, false).map(|_| ())
    }

    /// Sends the held chunk as the last one and returns the new object.
    fn finish(mut self) -> Result<ObjectMeta, Error> {
        let data = self.held.take().unwrap_or_default();
        let (resource, total) = if self.session.is_none() && !data.is_empty() {
            (self.media_upload(&data)?, data.len() as u64)
        } else {
            // A session's last chunk, or an empty object: the emulator
            // fails an empty media upload, so that goes through a session
            // finished with `bytes */0`, which GCS accepts too.
            let resource = self.put(&data, true)?.ok_or_else(|| {
                Error::Backend(format!(
                    "writing `{}`: the last chunk did not complete the upload",
                    self.path
                ))
            })?;
            let total = self.session.take().map_or(0, |s| s.persisted);
            (resource, total)
        };
        let meta = self.client.meta(&resource, &self.path)?;
        if meta.size != total {
            return Err(Error::Backend(format!(
                "writing `{}`: the server stored {} bytes, {total} were sent",
                self.path, meta.size
            )));
        }
        Ok(meta)
    }

    /// Drops the held chunk and cancels the session, if any.
    fn abort(mut self) -> Result<(), Error> {
        self.held = None;
        match self.session.take() {
            Some(session) => self.cancel(session),
            None => Ok(()),
        }
    }
}

impl Drop for Upload {
    /// After a failure or a dropped writer: the session cancelled if
    /// possible (the failure being reported matters more than the cancel's).
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            let _ = self.cancel(session);
        }
    }
}

/// `bytes a-b/*`, `bytes a-b/total`, or `bytes */total` for an empty piece.
fn content_range(first: u64, len: u64, total: Option<u64>) -> String {
    let total = total.map_or_else(|| "*".to_string(), |t| t.to_string());
    if len == 0 {
        format!("bytes */{total}")
    } else {
        format!("bytes {first}-{}/{total}", first + len - 1)
    }
}

/// The bytes a 308 answer confirms (`Range: bytes=0-N` is N+1; none is 0),
/// checked against what was confirmed before and what was sent.
fn confirmed(response: &Response, before: u64, sent_to: u64) -> Result<u64, Error> {
    let persisted = match response.header("range") {
        None => 0,
        Some(range) => range
            .trim()
            .strip_prefix("bytes=0-")
            .and_then(|n| n.trim().parse::<u64>().ok())
            .map(|n| n + 1)
            .ok_or_else(|| Error::Backend(format!("{}: unreadable Range `{range}`", response.what())))?,
    };
    if persisted < before || persisted > sent_to {
        return Err(Error::Backend(format!(
            "{}: the server reports {persisted} bytes persisted, but {before} were confirmed before and {sent_to} sent",
            response.what()
        )));
    }
    Ok(persisted)
}

/// The path and query of a session URI. They are sent to the configured
/// endpoint whatever host the URI names: the host grants the backend only
/// that endpoint, and a server behind a proxy or in a container names its
/// own address (the emulator echoes the `Host` header).
fn session_target(location: &str) -> Result<String, String> {
    if location.starts_with('/') {
        return Ok(location.to_string());
    }
    let rest = location
        .split_once("://")
        .map(|(_, rest)| rest)
        .ok_or_else(|| format!("the session URI `{}` is not a URL", redact(location)))?;
    Ok(rest
        .find('/')
        .map_or_else(|| "/".to_string(), |i| rest[i..].to_string()))
}

/// A session URI without its query: the `upload_id` in it lets anyone
/// write to the upload, so it stays out of messages.
fn redact(uri: &str) -> &str {
    uri.split('?').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(content_range(0, 262_144, None), "bytes 0-262143/*");
        assert_eq!(content_range(262_144, 10, Some(262_154)), "bytes 262144-262153/262154");
        assert_eq!(content_range(0, 0, Some(0)), "bytes */0");
        assert_eq!(content_range(5, 0, Some(5)), "bytes */5");
    }

    #[test]
    fn session_targets() {
        assert_eq!(
            session_target("http://0.0.0.0:9023/upload/storage/v1/b/x/o?uploadType=resumable&upload_id=a").unwrap(),
            "/upload/storage/v1/b/x/o?uploadType=resumable&upload_id=a"
        );
        assert_eq!(session_target("/upload?upload_id=a").unwrap(), "/upload?upload_id=a");
        assert_eq!(session_target("https://h").unwrap(), "/");
        let e = session_target("nonsense?upload_id=secret").unwrap_err();
        assert!(!e.contains("secret"), "{e}");
    }
}
