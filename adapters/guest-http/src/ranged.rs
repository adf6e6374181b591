//! A response body trimmed to a byte range, for servers that may ignore
//! `Range`: a 206 is passed through; a 200 carrying the whole object is
//! skipped up to the range's start and cut at its end.

use crate::head::Window;
use crate::{HttpError, Response};

/// A response body being read, trimmed to a range.
pub struct RangedBody {
    response: Option<Response>,
    window: Window,
}

impl RangedBody {
    /// `response`'s body, minus its first `skip` bytes, at most `remaining`
    /// bytes of it (`None`: to its end).
    pub fn new(response: Response, skip: u64, remaining: Option<u64>) -> RangedBody {
        RangedBody {
            response: Some(response),
            window: Window::new(skip, remaining),
        }
    }

    /// A body with no bytes (an empty range or object).
    pub fn empty() -> RangedBody {
        RangedBody {
            response: None,
            window: Window::new(0, Some(0)),
        }
    }

    /// Up to `max` bytes; empty at the end. An object that ends inside or
    /// before the range ends the body there (the range is clipped).
    pub fn next(&mut self, max: usize) -> Result<Vec<u8>, HttpError> {
        loop {
            if self.window.is_done() {
                // Dropping the response closes the stream early.
                self.response = None;
                return Ok(Vec::new());
            }
            let Some(response) = self.response.as_mut() else {
                return Ok(Vec::new());
            };
            let Some(chunk) = response.read(self.window.want(max))? else {
                self.response = None;
                self.window.end();
                return Ok(Vec::new());
            };
            if let Some(kept) = self.window.cut(chunk) {
                return Ok(kept);
            }
        }
    }
}
