//! What a response's head promises and whether its body keeps to it: the
//! parsing under [`crate::Response`] and [`crate::RangedBody`], apart from
//! the wasi:http resources so it can be tested and fuzzed natively.

use crate::{FailKind, HttpError};

/// The headers as `(lower-case name, value)`; a value that is not UTF-8 is
/// kept lossily (no header the adapters read holds anything but ASCII).
pub fn headers(entries: Vec<(String, Vec<u8>)>) -> Vec<(String, String)> {
    entries
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), String::from_utf8_lossy(&v).into_owned()))
        .collect()
}

/// The body length the head announces for the request `what` (`METHOD
/// url`): none for `HEAD`, 204 and 304, else `Content-Length` if valid.
pub fn expected_length(what: &str, status: u16, headers: &[(String, String)]) -> Option<u64> {
    if what.starts_with("HEAD ") || status == 204 || status == 304 {
        return Some(0);
    }
    headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// Checks `received` body bytes against the `expected` length; `ended`
/// once the stream closed. Too many is a bad server, too few a cut
/// connection (transient), never a short object.
pub fn check_received(what: &str, expected: Option<u64>, received: u64, ended: bool) -> Result<(), HttpError> {
    let Some(expected) = expected else { return Ok(()) };
    if received > expected {
        return Err(HttpError::new(
            FailKind::Backend,
            format!("{what}: the body is longer than its Content-Length {expected}"),
        ));
    }
    if ended && received < expected {
        return Err(HttpError::new(
            FailKind::Transient,
            format!("{what}: the body ended after {received} of {expected} bytes"),
        ));
    }
    Ok(())
}

/// Where a `Content-Range: bytes a-b/n` answer starts (`a`).
pub fn content_range_start(value: &str) -> Option<u64> {
    value.trim().strip_prefix("bytes ")?.split('-').next()?.parse().ok()
}

/// An error body trimmed and cut to at most `max` bytes (on a character
/// boundary, with an ellipsis), for a message.
pub fn shorten(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.len() <= max {
        return text.to_string();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

/// The part of a body a range keeps: `skip` bytes dropped, then at most
/// `remaining` (`None`: to the end) passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    skip: u64,
    remaining: Option<u64>,
}

impl Window {
    /// Drops the first `skip` bytes, keeps at most `remaining` after them.
    pub fn new(skip: u64, remaining: Option<u64>) -> Window {
        Window { skip, remaining }
    }

    /// Whether nothing more is wanted.
    pub fn is_done(&self) -> bool {
        self.remaining == Some(0)
    }

    /// Marks the end (the body ended inside or before the range).
    pub fn end(&mut self) {
        self.remaining = Some(0);
    }

    /// How much to read next when the caller asks for `max`.
    pub fn want(&self, max: usize) -> usize {
        match self.remaining {
            Some(r) => max.min(usize::try_from(r).unwrap_or(usize::MAX)),
            None => max,
        }
    }

    /// The part of the next `chunk` of the body inside the window; `None`
    /// when all of it was skipped.
    pub fn cut(&mut self, mut chunk: Vec<u8>) -> Option<Vec<u8>> {
        if self.skip > 0 {
            let cut = chunk.len().min(usize::try_from(self.skip).unwrap_or(usize::MAX));
            self.skip -= cut as u64;
            chunk.drain(..cut);
            if chunk.is_empty() {
                return None;
            }
        }
        if let Some(r) = self.remaining.as_mut() {
            chunk.truncate(usize::try_from(*r).unwrap_or(usize::MAX));
            *r -= chunk.len() as u64;
        }
        Some(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_announces_a_length() {
        let h = headers(vec![
            ("Content-Length".into(), b" 12 ".to_vec()),
            ("X-Bin".into(), vec![0xff]),
        ]);
        assert_eq!(h[1], ("x-bin".to_string(), "\u{fffd}".to_string()));
        assert_eq!(expected_length("GET u", 200, &h), Some(12));
        assert_eq!(expected_length("HEAD u", 200, &h), Some(0));
        assert_eq!(expected_length("GET u", 304, &h), Some(0));
        assert_eq!(
            expected_length("GET u", 200, &headers(vec![("content-length".into(), b"-1".to_vec())])),
            None
        );
    }

    #[test]
    fn a_body_keeps_to_its_length() {
        assert!(check_received("GET u", Some(3), 3, true).is_ok());
        assert!(check_received("GET u", Some(3), 2, false).is_ok());
        assert_eq!(
            check_received("GET u", Some(3), 2, true).unwrap_err().kind,
            FailKind::Transient
        );
        assert_eq!(
            check_received("GET u", Some(3), 4, false).unwrap_err().kind,
            FailKind::Backend
        );
        assert!(check_received("GET u", None, 9, true).is_ok());
    }

    #[test]
    fn ranges_and_messages() {
        assert_eq!(content_range_start("bytes 5-9/10"), Some(5));
        assert_eq!(content_range_start("bytes */10"), None);
        assert_eq!(shorten("  é€x ", 3), "é…");
        let mut w = Window::new(3, Some(4));
        assert_eq!(w.cut(b"ab".to_vec()), None);
        assert_eq!(w.want(100), 4);
        assert_eq!(w.cut(b"cdefghij".to_vec()), Some(b"defg".to_vec()));
        assert!(w.is_done());
    }
}
