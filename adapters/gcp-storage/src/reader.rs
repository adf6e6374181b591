//! Reads: one `GET …?alt=media` (with `Range` for a byte range) whose body
//! is handed out a piece at a time, never held whole.

use crate::Error;
use crate::client::{Client, Condition};
use std::cell::{Cell, RefCell};
use wharf_guest_http::Response;

/// An object being read.
pub struct Reader {
    body: RefCell<Body>,
    /// Bytes still to hand out, when the range has an end.
    left: Cell<Option<u64>>,
}

enum Body {
    Streaming(Response),
    Done,
    /// The body broke off: every later `next` fails too, so a caller that
    /// goes on never mistakes the break for the end of the object.
    Failed,
}

impl Reader {
    /// A reader with nothing to read.
    pub fn empty() -> Reader {
        Reader {
            body: RefCell::new(Body::Done),
            left: Cell::new(None),
        }
    }

    /// Sends the `GET` for bytes `start..end` of `path`.
    pub fn open(client: &Client, path: &str, start: u64, end: Option<u64>) -> Result<Reader, Error> {
        let mut request = client.request("GET", format!("{}?alt=media", client.object_url(path)));
        let ranged = start > 0 || end.is_some();
        if ranged {
            let last = end.map(|e| (e - 1).to_string()).unwrap_or_default();
            request.set_header("range", format!("bytes={start}-{last}"));
        }
        let response = client.send(request, &[])?;
        match response.status {
            // 200 to a range from 0 (a server may send the whole object):
            // `left` clips it at `end`.
            200 if start == 0 => Ok(Reader::streaming(response, end)),
            206 => Ok(Reader::streaming(response, end.map(|e| e - start))),
            // GCS answers a range starting past the end with 416: the
            // contract reads nothing there.
            416 => {
                response.discard();
                Ok(Reader::empty())
            }
            200 => Err(Error::Backend(format!(
                "{}: the server ignored the Range header (asked for bytes from {start})",
                response.what()
            ))),
            _ => Err(client.failure(response, &Condition::None)),
        }
    }

    fn streaming(response: Response, left: Option<u64>) -> Reader {
        Reader {
            body: RefCell::new(Body::Streaming(response)),
            left: Cell::new(left),
        }
    }

    /// At most `max` next bytes; empty at the end.
    pub fn next(&self, max: u32) -> Result<Vec<u8>, Error> {
        let mut body = self.body.borrow_mut();
        let response = match &mut *body {
            Body::Streaming(r) => r,
            Body::Done => return Ok(Vec::new()),
            Body::Failed => return Err(Error::Invalid("read after the body broke off".into())),
        };
        let want = self.left.get().map_or(u64::from(max), |l| l.min(u64::from(max)));
        let piece = if want == 0 {
            Ok(None)
        } else {
            response.read(want as usize)
        };
        match piece {
            Ok(Some(bytes)) => {
                self.left.set(self.left.get().map(|l| l - bytes.len() as u64));
                Ok(bytes)
            }
            Ok(None) => {
                *body = Body::Done;
                Ok(Vec::new())
            }
            Err(e) => {
                *body = Body::Failed;
                Err(Error::from(e))
            }
        }
    }
}
