//! Pending uploads: multipart uploads started and never completed or
//! aborted (`ListMultipartUploads`, `AbortMultipartUpload`). S3 keeps their
//! parts, and bills them, until one or the other happens.

use crate::client::S3;
use wharf_guest::{Error, PendingPage, PendingUpload};
use wharf_guest_http::encode::uri_decode;
use wharf_guest_http::{time, xml};

impl S3 {
    /// One `ListMultipartUploads` page. The cursor is the upload id and
    /// key of the last upload returned (S3's upload-id and key markers),
    /// joined by a newline (an upload id has none). A server that ignores
    /// `max-uploads` and the markers (moto answers every upload, every
    /// time) is paged here: the answer is cut after the cursor's upload and
    /// at `limit`.
    pub fn list_multipart_uploads(
        &self,
        prefix: &str,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<PendingPage, Error> {
        let mut query = vec![
            ("uploads", String::new()),
            ("prefix", self.key(prefix)),
            ("max-uploads", limit.to_string()),
            ("encoding-type", "url".to_string()),
        ];
        let marker = match &cursor {
            Some(cursor) => {
                let (upload_id, key) = cursor.split_once('\n').ok_or_else(|| {
                    Error::Invalid(format!("list pending uploads under `{prefix}`: malformed cursor"))
                })?;
                query.push(("key-marker", self.key(key)));
                query.push(("upload-id-marker", upload_id.to_string()));
                Some((upload_id.to_string(), key.to_string()))
            }
            None => None,
        };
        let request = self.request("GET", None, &query, Vec::new(), &[]);
        let response = self.send(&request, &[], None)?;
        let what = response.what().to_string();
        let doc = response.text(16 << 20)?;
        let url_encoded = xml::text(&doc, "EncodingType").is_some_and(|e| e.eq_ignore_ascii_case("url"));
        let bad = |why: &str| Error::Backend(format!("{what}: malformed ListMultipartUploads answer: {why}"));
        let decode = |raw: String| {
            if url_encoded {
                uri_decode(&raw, true).map_err(|e| bad(&e))
            } else {
                Ok(raw)
            }
        };
        let mut entries = Vec::new();
        for item in xml::elements(&doc, "Upload") {
            let key = decode(xml::text(item, "Key").ok_or_else(|| bad("an upload has no Key"))?)?;
            let upload_id = xml::text(item, "UploadId")
                .filter(|id| !id.is_empty())
                .ok_or_else(|| bad("an upload has no UploadId"))?;
            let path = key
                .strip_prefix(&self.cfg.prefix)
                .ok_or_else(|| bad(&format!("key `{key}` is outside prefix `{}`", self.cfg.prefix)))?;
            entries.push(PendingUpload {
                path: path.to_string(),
                upload_id,
                started_ms: xml::text(item, "Initiated")
                    .and_then(|t| time::parse_rfc3339(&t))
                    .map(|ms| ms as u64),
                // Knowing it takes a `ListParts` per upload.
                staged_bytes: None,
            });
        }
        // A server that ignored the markers answered the cursor's upload again.
        if let Some((id, path)) = &marker
            && let Some(at) = entries.iter().position(|u| &u.upload_id == id && &u.path == path)
        {
            entries.drain(..=at);
        }
        entries.retain(|u| u.path.starts_with(prefix));
        let mut next_cursor = None;
        if entries.len() > limit as usize {
            entries.truncate(limit as usize);
        } else if xml::text(&doc, "IsTruncated").is_some_and(|t| t.trim() == "true") {
            let key = decode(xml::text(&doc, "NextKeyMarker").unwrap_or_default())?;
            let upload_id = xml::text(&doc, "NextUploadIdMarker").unwrap_or_default();
            let path = key
                .strip_prefix(&self.cfg.prefix)
                .filter(|_| !key.is_empty())
                .ok_or_else(|| bad("truncated without a NextKeyMarker under the prefix"))?;
            next_cursor = Some(format!("{upload_id}\n{path}"));
        }
        if next_cursor.is_none() && entries.len() == limit as usize {
            // Cut here, or a full last page: a cursor after it costs one
            // more (empty) request at worst.
            next_cursor = entries.last().map(|u| format!("{}\n{}", u.upload_id, u.path));
        }
        Ok(PendingPage { entries, next_cursor })
    }

    /// `AbortMultipartUpload`; an upload already gone is not an error.
    pub fn abort_multipart_upload(&self, path: &str, upload_id: &str) -> Result<(), Error> {
        if upload_id.is_empty() {
            return Err(Error::Invalid(format!(
                "abort pending upload of `{path}`: empty upload id"
            )));
        }
        let query = [("uploadId", upload_id.to_string())];
        let request = self.request("DELETE", Some(&self.key(path)), &query, Vec::new(), &[]);
        // An abort that races a part upload still in flight may fail or
        // leave that part behind (AWS documents both: "it might be
        // necessary to abort a given multipart upload multiple times"), and
        // S3 answers 500/503 now and then asking for a retry. Aborting is
        // idempotent, so a transient failure is retried twice after a
        // pause; gone (404 NoSuchUpload) is success.
        let mut pause = ABORT_FIRST_PAUSE;
        for attempt in 1.. {
            match self.send(&request, &[], None) {
                Ok(r) => {
                    r.discard();
                    return Ok(());
                }
                Err(Error::NotFound(_)) => return Ok(()),
                Err(Error::Transient(_)) if attempt < ABORT_ATTEMPTS => {
                    std::thread::sleep(pause);
                    pause *= 4;
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the loop returns")
    }
}

/// Tries of one `AbortMultipartUpload` that fails as transient.
const ABORT_ATTEMPTS: u32 = 3;
/// The pause before the second try; each later one is 4 times longer.
const ABORT_FIRST_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);
