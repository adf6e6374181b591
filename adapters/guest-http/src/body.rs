//! Request bodies written a piece at a time: [`Request::start_body`] sends
//! the head and hands out a [`BodyWriter`], so a body of any size goes out
//! in bounded memory. [`Request::start`] is built on the same pieces.
//!
//! [`Request::start_body`]: crate::Request::start_body
//! [`Request::start`]: crate::Request::start

use crate::{FailKind, HttpError, Pending, Response, Result, State, transport};
use wasip2::clocks::monotonic_clock;
use wasip2::http::types::{FutureIncomingResponse, OutgoingBody};
use wasip2::io::poll::poll;
use wasip2::io::streams::{OutputStream, StreamError};

/// How long a request whose body stream broke waits for the server's
/// answer: a server that refused the body (an early 403, 413) has sent it
/// by then; a broken connection has none to send.
const ANSWER_GRACE_NS: u64 = 5_000_000_000;

/// The body of a request under way, written with [`BodyWriter::write`] and
/// ended with [`BodyWriter::finish`].
///
/// Dropping it before `finish` cancels the request: the body never ends
/// (a chunked body misses its last chunk, a sized one its last bytes), so
/// the server sees a broken upload and keeps nothing.
///
/// ```no_run
/// use wharf_guest_http::{Endpoint, Request, Response};
///
/// fn upload(endpoint: &Endpoint, pieces: &[&[u8]]) -> wharf_guest_http::Result<Response> {
///     let mut body = Request::new("PUT", endpoint, "/artifacts/model.bin").start_body(None)?;
///     for piece in pieces {
///         if let Some(early) = body.write(piece)? {
///             // The server answered before the body ended (a 403, 413, ...).
///             return Ok(early);
///         }
///     }
///     body.finish()?.wait()
/// }
/// ```
pub struct BodyWriter {
    what: String,
    length: BodyLength,
    // Field order is drop order: the stream before its body, and a body
    // dropped unfinished cancels the request.
    stream: Option<OutputStream>,
    body: Option<OutgoingBody>,
    pending: Option<FutureIncomingResponse>,
}

/// What became of bytes handed to the body stream.
enum Flow {
    /// All were accepted.
    Sent,
    /// The server answered before taking them all.
    Answered,
}

impl BodyWriter {
    /// A writer for a request the host has under way; `written` bytes of
    /// its body are in the stream already.
    pub(crate) fn new(
        what: String,
        declared: Option<u64>,
        written: u64,
        stream: OutputStream,
        body: OutgoingBody,
        pending: FutureIncomingResponse,
    ) -> BodyWriter {
        BodyWriter {
            what,
            length: BodyLength { declared, written },
            stream: Some(stream),
            body: Some(body),
            pending: Some(pending),
        }
    }

    /// Writes `data` into the body, blocking until the connection has taken
    /// all of it.
    ///
    /// `Ok(Some(response))` when the server answered before the body ended
    /// (an early 403, 413, ...): the request is over, and the answer is
    /// handled like any other [`Response`]. An error when the connection
    /// failed (its [`FailKind`] from the transport's error, `Transient` when
    /// the body broke off without one) or when `data` goes past the
    /// `Content-Length` (`Invalid`). After either, the body is closed.
    pub fn write(&mut self, data: &[u8]) -> Result<Option<Response>> {
        let (Some(stream), Some(pending)) = (&self.stream, &self.pending) else {
            return Err(self.closed());
        };
        if let Err(why) = self.length.take(data.len()) {
            self.cancel();
            return Err(HttpError::new(FailKind::Invalid, format!("{}: {why}", self.what)));
        }
        match pump(stream, pending, data) {
            Ok(Flow::Sent) => Ok(None),
            Ok(Flow::Answered) => self.answered().map(Some),
            Err(e) => self.broken(e).map(Some),
        }
    }

    /// Ends the body; the response follows as for [`Request::start`].
    /// With a `Content-Length`, a body shorter than it is refused
    /// (`Invalid`) and the request cancelled.
    ///
    /// [`Request::start`]: crate::Request::start
    pub fn finish(mut self) -> Result<Pending> {
        let (Some(stream), Some(pending)) = (&self.stream, &self.pending) else {
            return Err(self.closed());
        };
        if let Err(why) = self.length.end() {
            self.cancel();
            return Err(HttpError::new(FailKind::Invalid, format!("{}: {why}", self.what)));
        }
        // Once a sized body's declared length has gone out, the host lets
        // go of the stream (hyper drops the body): closed is then its
        // normal end, and the answer may take as long as the server needs.
        if let Err(e) = flush(stream, pending)
            && !self.length.is_complete()
        {
            let response = self.broken(e)?;
            return Ok(Pending::answered(response));
        }
        // The stream must be gone before its body can be finished.
        self.stream = None;
        let body = self.body.take().ok_or_else(|| self.closed())?;
        OutgoingBody::finish(body, None).map_err(|e| transport(&self.what, &e))?;
        let pending = self.pending.take().ok_or_else(|| self.closed())?;
        Ok(Pending {
            what: std::mem::take(&mut self.what),
            state: State::Waiting(pending),
        })
    }

    fn closed(&self) -> HttpError {
        HttpError::new(
            FailKind::Backend,
            format!(
                "{}: the request body is closed (the request failed or was answered)",
                self.what
            ),
        )
    }

    /// Drops the request unfinished, which cancels it.
    fn cancel(&mut self) {
        self.stream = None;
        self.body = None;
        self.pending = None;
    }

    /// The answer that arrived while the body was still being written. The
    /// unfinished body goes with it: dropping it now would cancel the
    /// request and could cut the answer's own body short.
    fn answered(&mut self) -> Result<Response> {
        self.stream = None;
        let body = self.body.take();
        let pending = self.pending.take().ok_or_else(|| self.closed())?;
        match pending.get() {
            Some(Ok(Ok(response))) => Response::new(self.what.clone(), response, body),
            Some(Ok(Err(code))) => Err(transport(&self.what, &code)),
            Some(Err(())) | None => Err(HttpError::new(FailKind::Backend, format!("{}: no response", self.what))),
        }
    }

    /// The body stream broke: the server's answer if it sent one (it says
    /// more than the closed stream), else the transport's error.
    fn broken(&mut self, error: String) -> Result<Response> {
        self.stream = None;
        self.body = None;
        let pending = self.pending.take().ok_or_else(|| self.closed())?;
        let ready = pending.subscribe();
        let timeout = monotonic_clock::subscribe_duration(ANSWER_GRACE_NS);
        poll(&[&ready, &timeout]);
        drop(ready);
        match pending.get() {
            Some(Ok(Ok(response))) => Response::new(self.what.clone(), response, None),
            Some(Ok(Err(code))) => Err(transport(&self.what, &code)),
            _ => Err(HttpError::new(
                FailKind::Transient,
                format!("{}: sending the body failed: {error}", self.what),
            )),
        }
    }
}

/// Writes `data` into the body stream as fast as it drains, stopping when
/// the server answers first.
fn pump(stream: &OutputStream, pending: &FutureIncomingResponse, mut data: &[u8]) -> std::result::Result<Flow, String> {
    let answer = pending.subscribe();
    loop {
        if data.is_empty() {
            return Ok(Flow::Sent);
        }
        if answer.ready() {
            return Ok(Flow::Answered);
        }
        let permit = stream.check_write().map_err(stream_error)?;
        if permit == 0 {
            let writable = stream.subscribe();
            poll(&[&writable, &answer]);
            continue;
        }
        let n = usize::try_from(permit).unwrap_or(usize::MAX).min(data.len());
        stream.write(&data[..n]).map_err(stream_error)?;
        data = &data[n..];
    }
}

/// Waits until the body stream has passed on what it holds, or the server
/// has answered (then it reads no more).
fn flush(stream: &OutputStream, pending: &FutureIncomingResponse) -> std::result::Result<(), String> {
    stream.flush().map_err(stream_error)?;
    let answer = pending.subscribe();
    loop {
        if stream.check_write().map_err(stream_error)? > 0 || answer.ready() {
            return Ok(());
        }
        let writable = stream.subscribe();
        poll(&[&writable, &answer]);
    }
}

/// Whether the stream takes `data` whole without blocking.
pub(crate) fn fits(stream: &OutputStream, data: &[u8]) -> bool {
    stream.check_write().is_ok_and(|permit| permit >= data.len() as u64)
}

pub(crate) fn stream_error(e: StreamError) -> String {
    match e {
        StreamError::Closed => "the connection closed".to_string(),
        StreamError::LastOperationFailed(e) => e.to_debug_string(),
    }
}

/// How much of a body is written, against the `Content-Length` announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BodyLength {
    declared: Option<u64>,
    written: u64,
}

impl BodyLength {
    /// Counts `n` more bytes; refused past the declared length.
    fn take(&mut self, n: usize) -> std::result::Result<(), String> {
        let total = self.written.saturating_add(n as u64);
        if let Some(declared) = self.declared
            && total > declared
        {
            return Err(format!(
                "the body is longer than its Content-Length {declared} ({total} bytes written)"
            ));
        }
        self.written = total;
        Ok(())
    }

    /// Whether a sized body has all its declared bytes.
    fn is_complete(&self) -> bool {
        self.declared == Some(self.written)
    }

    /// Whether the body may end here.
    fn end(&self) -> std::result::Result<(), String> {
        match self.declared {
            Some(declared) if self.written != declared => Err(format!(
                "the body ended after {} of its Content-Length {declared} bytes",
                self.written
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sized_body_is_exactly_its_length() {
        let mut length = BodyLength {
            declared: Some(10),
            written: 0,
        };
        assert!(length.end().is_err(), "nothing written yet");
        length.take(4).unwrap();
        length.take(0).unwrap();
        let short = length.end().unwrap_err();
        assert!(short.contains("after 4 of its Content-Length 10"), "{short}");
        let mut copy = length;
        let long = copy.take(7).unwrap_err();
        assert!(long.contains("longer than its Content-Length 10"), "{long}");
        assert!(!length.is_complete());
        length.take(6).unwrap();
        assert_eq!(length.end(), Ok(()));
        assert!(length.is_complete());
        assert!(length.take(1).is_err(), "one byte past the end");
        assert_eq!(length.written, 10, "a refused write is not counted");
    }

    #[test]
    fn a_chunked_body_has_no_limit() {
        let mut length = BodyLength {
            declared: None,
            written: 0,
        };
        assert_eq!(length.end(), Ok(()), "an empty chunked body");
        assert!(!length.is_complete(), "only the sender knows where a chunked body ends");
        length.take(usize::MAX).unwrap();
        length.take(usize::MAX).unwrap();
        assert_eq!(length.written, u64::MAX, "counting saturates");
        assert_eq!(length.end(), Ok(()));
    }

    #[test]
    fn an_empty_sized_body() {
        let mut length = BodyLength {
            declared: Some(0),
            written: 0,
        };
        assert_eq!(length.end(), Ok(()));
        assert!(length.take(1).is_err());
    }
}
