//! A response body trimmed to a byte range, for servers that may ignore
//! `Range`: a 206 is passed through; a 200 carrying the whole object is
//! skipped up to the range's start and cut at its end.

use crate::{HttpError, Response};

/// A response body being read, trimmed to a range.
pub struct RangedBody {
    response: Option<Response>,
    skip: u64,
    remaining: Option<u64>,
}

impl RangedBody {
    /// `response`'s body, minus its first `skip` bytes, at most `remaining`
    /// bytes of it (`None`: to its end).
    pub fn new(response: Response, skip: u64, remaining: Option<u64>) -> RangedBody {
        RangedBody {
            response: Some(response),
            skip,
            remaining,
        }
    }

    /// A body with no bytes (an empty range or object).
    pub fn empty() -> RangedBody {
        RangedBody {
            response: None,
            skip: 0,
            remaining: Some(0),
        }
    }

    /// Up to `max` bytes; empty at the end. An object that ends inside or
    /// before the range ends the body there (the range is clipped).
    pub fn next(&mut self, max: usize) -> Result<Vec<u8>, HttpError> {
        loop {
            if self.remaining == Some(0) {
                // Dropping the response closes the stream early.
                self.response = None;
                return Ok(Vec::new());
            }
            let Some(response) = self.response.as_mut() else {
                return Ok(Vec::new());
            };
            let want = match self.remaining {
                Some(r) => max.min(usize::try_from(r).unwrap_or(usize::MAX)),
                None => max,
            };
            let Some(mut chunk) = response.read(want)? else {
                self.response = None;
                self.remaining = Some(0);
                return Ok(Vec::new());
            };
            if self.skip > 0 {
                let cut = chunk.len().min(usize::try_from(self.skip).unwrap_or(usize::MAX));
                self.skip -= cut as u64;
                chunk.drain(..cut);
                if chunk.is_empty() {
                    continue;
                }
            }
            if let Some(r) = self.remaining.as_mut() {
                chunk.truncate(usize::try_from(*r).unwrap_or(usize::MAX));
                *r -= chunk.len() as u64;
            }
            return Ok(chunk);
        }
    }
}
