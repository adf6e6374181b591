//! Reads: `GET` of an artifact, trimmed to the range asked.

use crate::client::{Missing, Mlflow};
use wharf_guest::{ByteRange, Error};
use wharf_guest_http::head;

/// A response body being read, trimmed to a range.
pub use wharf_guest_http::RangedBody as Body;

impl Mlflow {
    /// `GET` an artifact, or a range of it. The file store honours `Range`
    /// (206); a store that streams through the server answers 200 with the
    /// whole file, and the bytes before the range are skipped.
    pub fn get(&self, path: &str, range: Option<ByteRange>) -> Result<Body, Error> {
        let (start, end) = match range {
            Some(r) => (r.start, r.end),
            None => (0, None),
        };
        if end.is_some_and(|e| e <= start) {
            // An empty range: nothing to read, but the object must exist.
            self.stat(path)?;
            return Ok(Body::empty());
        }
        let mut request = self.request("GET", &Self::artifact_route(&self.key(path)));
        if start > 0 || end.is_some() {
            let last = end.map(|e| (e - 1).to_string()).unwrap_or_default();
            request.set_header("range", format!("bytes={start}-{last}"));
        }
        let response = Self::transmit(&request, &[])?;
        match response.status {
            206 => {
                let from = response.header("content-range").and_then(head::content_range_start);
                if from != Some(start) {
                    return Err(Error::Backend(format!(
                        "{}: asked for bytes from {start}, the answer starts at {from:?}",
                        response.what()
                    )));
                }
                Ok(Body::new(response, 0, None))
            }
            200 => Ok(Body::new(response, start, end.map(|e| e - start))),
            // The range starts at or past the end (or the object is empty).
            416 => {
                response.discard();
                Ok(Body::empty())
            }
            status => {
                let what = response.what().to_string();
                let text = response.error_text();
                // A directory is no object.
                if status == 400 && text.contains("directory") {
                    return Err(Error::NotFound(format!(
                        "{what}: `{path}` is a directory, not an object"
                    )));
                }
                // A cloud store's "no such key" reaches the client as a 500.
                if status == 500
                    && let Err(Error::NotFound(why)) = self.stat(path)
                {
                    return Err(Error::NotFound(format!("{what}: 500, and {why}")));
                }
                Err(self.fail(&what, status, &text, Missing::NotFound))
            }
        }
    }
}
