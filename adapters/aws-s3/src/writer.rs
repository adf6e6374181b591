//! Writes: one `PutObject` for an object that fits a part, a multipart
//! upload with several parts in flight otherwise.
//!
//! Where the payload is signed, parts are sent in batches of up to four
//! whose sha256s are computed together ([`sha256_many`]: 1.9 times faster
//! than one after another in wasmtime; wasm has no SHA instructions).

use crate::client::{S3, condition_headers};
use std::collections::VecDeque;
use wharf_guest::{Error, ObjectMeta, PutMode};
use wharf_guest_http::sha256x4::sha256_many;
use wharf_guest_http::{Pending, xml};

/// The most bytes of parts held back to be hashed together.
const BATCH_BYTES: u64 = 32 << 20;

/// An object being written.
pub struct Upload {
    s3: S3,
    path: String,
    key: String,
    mode: PutMode,
    /// The first part, held until we know whether a second follows.
    first: Option<Vec<u8>>,
    multipart: Option<Multipart>,
    size: u64,
}

struct Multipart {
    id: String,
    /// Finished parts: number and ETag.
    done: Vec<(u32, String)>,
    in_flight: VecDeque<(u32, Pending)>,
    next_part: u32,
    /// Parts received and not sent yet: a batch to hash together.
    queued: Vec<Vec<u8>>,
}

impl Upload {
    /// Starts a write of `path`; nothing is sent before the first part.
    pub fn new(s3: &S3, path: String, mode: PutMode) -> Result<Upload, Error> {
        Ok(Upload {
            s3: s3.clone(),
            key: s3.key(&path),
            path,
            mode,
            first: None,
            multipart: None,
            size: 0,
        })
    }

    fn start_multipart(&mut self) -> Result<(), Error> {
        // Fail before uploading gigabytes, not after.
        self.s3.check_precondition(&self.path, &self.mode)?;
        let request = self
            .s3
            .request("POST", Some(&self.key), &[("uploads", String::new())], Vec::new(), &[]);
        let response = self.s3.send(&request, &[], None)?;
        let what = response.what().to_string();
        let doc = response.text(1 << 20)?;
        let id = xml::text(&doc, "UploadId")
            .filter(|id| !id.is_empty())
            .ok_or_else(|| Error::Backend(format!("{what}: no UploadId in the answer")))?;
        self.multipart = Some(Multipart {
            id,
            done: Vec::new(),
            in_flight: VecDeque::new(),
            next_part: 1,
            queued: Vec::new(),
        });
        Ok(())
    }

    /// How many parts make a batch: four (the SIMD lanes) when the payload
    /// is signed and four parts fit [`BATCH_BYTES`], fewer for big parts,
    /// one when nothing is hashed.
    fn batch(&self) -> usize {
        if !self.s3.signs_payload(b"a part") {
            return 1;
        }
        (BATCH_BYTES / self.s3.cfg.part_size).clamp(1, 4) as usize
    }

    /// Queues a part; sends the queue once it makes a batch.
    fn queue_part(&mut self, data: Vec<u8>) -> Result<(), Error> {
        let batch = self.batch();
        let mp = self.multipart.as_mut().expect("multipart started");
        mp.queued.push(data);
        if mp.queued.len() >= batch {
            self.send_queued()?;
        }
        Ok(())
    }

    /// Hashes the queued parts together (when signing) and starts them,
    /// each as soon as the window has room.
    fn send_queued(&mut self) -> Result<(), Error> {
        let window = self.s3.cfg.max_in_flight;
        let mp = self.multipart.as_mut().expect("multipart started");
        let parts = std::mem::take(&mut mp.queued);
        // Parts are never empty: either all are signed or none.
        let digests: Vec<Option<[u8; 32]>> = if parts.first().is_some_and(|p| self.s3.signs_payload(p)) {
            let bodies: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            sha256_many(&bodies).into_iter().map(Some).collect()
        } else {
            vec![None; parts.len()]
        };
        for (data, digest) in parts.into_iter().zip(digests) {
            while mp.in_flight.len() >= window {
                collect_oldest(&self.s3, mp)?;
            }
            let n = mp.next_part;
            if n > 10_000 {
                return Err(Error::Invalid(format!(
                    "S3 allows 10,000 parts: `{}` exceeds 10,000 × part_size",
                    self.path
                )));
            }
            let query = [("partNumber", n.to_string()), ("uploadId", mp.id.clone())];
            let request = self
                .s3
                .request_with_digest("PUT", Some(&self.key), &query, Vec::new(), digest);
            let pending = request.start(&data)?;
            mp.in_flight.push_back((n, pending));
            mp.next_part += 1;
        }
        Ok(())
    }

    fn put_single(&mut self) -> Result<ObjectMeta, Error> {
        self.s3.check_precondition(&self.path, &self.mode)?;
        let body = self.first.take().unwrap_or_default();
        let request = self
            .s3
            .request("PUT", Some(&self.key), &[], condition_headers(&self.mode), &body);
        let response = self.s3.send(&request, &body, Some(&self.mode))?;
        let etag = response.header("etag").map(str::to_string);
        response.discard();
        Ok(self.meta(etag))
    }

    fn complete(&mut self) -> Result<ObjectMeta, Error> {
        self.send_queued()?;
        let mp = self.multipart.as_mut().expect("multipart started");
        while !mp.in_flight.is_empty() {
            collect_oldest(&self.s3, mp)?;
        }
        let mut doc = String::from("<CompleteMultipartUpload>");
        for (n, etag) in &mp.done {
            doc.push_str(&format!(
                "<Part><PartNumber>{n}</PartNumber><ETag>{}</ETag></Part>",
                xml::escape(etag)
            ));
        }
        doc.push_str("</CompleteMultipartUpload>");
        let query = [("uploadId", mp.id.clone())];
        let mut headers = condition_headers(&self.mode);
        headers.push(("content-type".into(), "application/xml".into()));
        let request = self
            .s3
            .request("POST", Some(&self.key), &query, headers, doc.as_bytes());
        let response = self.s3.send(&request, doc.as_bytes(), Some(&self.mode))?;
        let what = response.what().to_string();
        // CompleteMultipartUpload can answer 200 and put the error in the body.
        let answer = response.text(1 << 20)?;
        if let Some(code) = xml::text(&answer, "Code") {
            let message = xml::text(&answer, "Message").unwrap_or_default();
            let text = format!("{what}: {code}: {message}");
            return Err(match code.as_str() {
                "PreconditionFailed" if matches!(self.mode, PutMode::Create) => Error::AlreadyExists(text),
                "PreconditionFailed" => Error::PreconditionFailed(text),
                "InternalError" | "SlowDown" => Error::Transient(text),
                _ => Error::Backend(text),
            });
        }
        self.multipart = None;
        Ok(self.meta(xml::text(&answer, "ETag")))
    }

    fn meta(&self, etag: Option<String>) -> ObjectMeta {
        ObjectMeta {
            path: self.path.clone(),
            size: self.size,
            etag,
            modified_ms: None,
        }
    }

    fn abort_quietly(&mut self) {
        if let Err(e) = self.abort_multipart() {
            eprintln!("aws_s3: could not abort the multipart upload of `{}`: {e:?}", self.path);
        }
    }

    fn abort_multipart(&mut self) -> Result<(), Error> {
        let Some(mp) = self.multipart.take() else { return Ok(()) };
        // Let parts in flight end first: S3 may keep a part that lands after
        // the abort.
        for (_, pending) in mp.in_flight {
            if let Ok(response) = pending.wait() {
                response.discard();
            }
        }
        let query = [("uploadId", mp.id)];
        let request = self.s3.request("DELETE", Some(&self.key), &query, Vec::new(), &[]);
        match self.s3.send(&request, &[], None) {
            Ok(r) => {
                r.discard();
                Ok(())
            }
            // Already gone.
            Err(Error::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl wharf_guest::Upload for Upload {
    /// Takes the next part (the host sends exactly `part_size` bytes but for
    /// the last append).
    fn append(&mut self, chunk: Vec<u8>) -> Result<(), Error> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.size += chunk.len() as u64;
        if self.multipart.is_none() {
            let Some(first) = self.first.take() else {
                self.first = Some(chunk);
                return Ok(());
            };
            self.start_multipart()?;
            self.queue_part(first)?;
        }
        self.queue_part(chunk)
    }

    /// Makes the object visible. On failure nothing is visible and the
    /// multipart upload is aborted.
    fn finish(mut self) -> Result<ObjectMeta, Error> {
        if self.multipart.is_none() {
            return self.put_single();
        }
        match self.complete() {
            Ok(meta) => Ok(meta),
            Err(e) => {
                self.abort_quietly();
                Err(e)
            }
        }
    }

    /// Drops what was sent: parts in flight are cancelled and the multipart
    /// upload is aborted, so no part stays behind.
    fn abort(mut self) -> Result<(), Error> {
        self.abort_multipart()
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        self.abort_quietly();
    }
}

fn collect_oldest(s3: &S3, mp: &mut Multipart) -> Result<(), Error> {
    let Some((n, pending)) = mp.in_flight.pop_front() else {
        return Ok(());
    };
    let response = s3.send_pending(pending)?;
    let etag = response
        .header("etag")
        .map(str::to_string)
        .ok_or_else(|| Error::Backend(format!("{}: part {n} has no ETag", response.what())))?;
    response.discard();
    mp.done.push((n, etag));
    Ok(())
}
