//! Reads: a `GET` with `Range`, and the body that streams its answer.

use crate::client::{Azure, range_header};
use wharf_guest::{ByteRange, Error};
use wharf_guest_http::Response;

/// A blob's body being read; `None` once there is nothing (more) to read.
pub struct Body(Option<Response>);

impl wharf_guest::Download for Body {
    /// Up to `max` bytes; empty at the end. A body shorter than its
    /// `Content-Length` is a transient error, never a short object.
    fn next(&mut self, max: usize) -> Result<Vec<u8>, Error> {
        let Some(response) = self.0.as_mut() else {
            return Ok(Vec::new());
        };
        match response.read(max.max(1))? {
            Some(chunk) => Ok(chunk),
            None => {
                self.0 = None;
                Ok(Vec::new())
            }
        }
    }
}

impl Azure {
    /// Get Blob, or a range of it.
    pub fn read(&self, path: &str, range: Option<ByteRange>) -> Result<Body, Error> {
        let (start, end) = range.map_or((0, None), |r| (r.start, r.end));
        if end.is_some_and(|e| e <= start) {
            // An empty range: nothing to read, but the object must exist.
            self.stat(path)?;
            return Ok(Body(None));
        }
        let ranged = start > 0 || end.is_some();
        let headers = if ranged {
            vec![("x-ms-range".to_string(), range_header(start, end))]
        } else {
            Vec::new()
        };
        let request = self.request("GET", Some(&self.blob_name(path)), &[], headers, 0);
        let response = request.send(&[])?;
        match response.status {
            206 => Ok(Body(Some(response))),
            200 if !ranged || response.content_length() == Some(0) => Ok(Body(Some(response))),
            200 => Err(Error::Backend(format!(
                "{}: the server ignored the range and sent the whole blob",
                response.what()
            ))),
            // The range starts at or past the end (or the blob is empty).
            416 => {
                response.discard();
                Ok(Body(None))
            }
            _ => Err(self.fail(response, None)),
        }
    }
}
