//! This crate's transport failures as the contract's errors, and its
//! ranged response body as the contract's download.

use crate::{FailKind, HttpError, RangedBody};
use wharf_guest::{Download, Error};

/// The failure's class picks the contract's kind; the message is kept.
impl From<HttpError> for Error {
    fn from(e: HttpError) -> Error {
        match e.kind {
            FailKind::Transient => Error::Transient(e.message),
            FailKind::Unreachable => Error::Unreachable(e.message),
            FailKind::Denied => Error::Denied(e.message),
            FailKind::Invalid => Error::Invalid(e.message),
            FailKind::Backend => Error::Backend(e.message),
        }
    }
}

/// A response body, trimmed to the range asked, as a download.
impl Download for RangedBody {
    fn next(&mut self, max: usize) -> Result<Vec<u8>, Error> {
        RangedBody::next(self, max).map_err(Error::from)
    }
}
