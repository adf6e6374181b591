//! Reads: a file or a range of it, from the Hub or, for an LFS file, the
//! CDN it redirects to.

use crate::client::{Hub, MAX_REDIRECTS};
use wharf_guest::{ByteRange, Error};

/// A response body being read, trimmed to a range.
pub use wharf_guest_http::RangedBody as Body;

impl Hub {
    /// `GET` a file or a range of it, following the redirect of an LFS
    /// file to the CDN (without the token when the CDN is another host).
    pub fn get(&self, rev: &str, path: &str, range: Option<ByteRange>) -> Result<Body, Error> {
        let (start, end) = range.map_or((0, None), |r| (r.start, r.end));
        if end.is_some_and(|e| e <= start) {
            // An empty range: nothing to read, but the object must exist.
            self.stat(path)?;
            return Ok(Body::empty());
        }
        let mut endpoint = self.cfg.endpoint.clone();
        let mut target = self.resolve_url(rev, &self.repo_path(path));
        for _ in 0..=MAX_REDIRECTS {
            let mut request = self.request_to("GET", &endpoint, target.clone());
            if start > 0 || end.is_some() {
                let last = end.map(|e| (e - 1).to_string()).unwrap_or_default();
                request.set_header("range", format!("bytes={start}-{last}"));
            }
            let response = request.send(&[])?;
            match response.status {
                206 => return Ok(Body::new(response, 0, None)),
                // A server that ignores Range sends it all: skip to the range.
                200 => return Ok(Body::new(response, start, end.map(|e| e - start))),
                // The range starts at or past the end (or the file is empty).
                416 => {
                    response.discard();
                    return Ok(Body::empty());
                }
                300..=399 => {
                    let (next, path) = self.redirect_target(&endpoint, &response)?;
                    response.discard();
                    (endpoint, target) = (next, path);
                }
                _ => return Err(self.fail(response, None)),
            }
        }
        Err(Error::Backend(format!(
            "GET {}: more than {MAX_REDIRECTS} redirects",
            self.resolve_url(rev, &self.repo_path(path))
        )))
    }
}
