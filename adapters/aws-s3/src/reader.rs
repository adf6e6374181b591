//! Reads: `GET` with `Range`; a body shorter than its `Content-Length` is
//! an error, never a short object.

use crate::client::S3;
use wharf_guest::{ByteRange, Error};

/// A response body being read, trimmed to a range.
pub use wharf_guest_http::RangedBody as Body;

impl S3 {
    /// `GET` an object, or a range of it.
    pub fn get_object(&self, path: &str, range: Option<ByteRange>) -> Result<Body, Error> {
        let (start, end) = match range {
            Some(r) => (r.start, r.end),
            None => (0, None),
        };
        if end.is_some_and(|e| e <= start) {
            // An empty range: nothing to read, but the object must exist.
            self.head(path)?;
            return Ok(Body::empty());
        }
        let mut headers = Vec::new();
        if start > 0 || end.is_some() {
            let last = end.map(|e| (e - 1).to_string()).unwrap_or_default();
            headers.push(("range".to_string(), format!("bytes={start}-{last}")));
        }
        let request = self.request("GET", Some(&self.key(path)), &[], headers, &[]);
        let response = request.send(&[])?;
        let body = match response.status {
            206 => Body::new(response, 0, None),
            // A server that ignores Range sends it all: skip to the range.
            200 => Body::new(response, start, end.map(|e| e - start)),
            // The range starts at or past the end (or the object is empty).
            416 => {
                response.discard();
                Body::empty()
            }
            _ => return Err(self.fail(response, None)),
        };
        Ok(body)
    }
}
