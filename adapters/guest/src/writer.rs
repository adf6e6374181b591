//! The contract's `writer` resource over an adapter's upload.

use crate::{Error, GuestWriter, ObjectMeta};
use std::cell::RefCell;

/// An object being written by an adapter: what [`UploadSlot`] drives.
///
/// Dropping an upload must discard it (no object, no partial data left
/// behind): the slot drops it after a failed `append`, and the host may
/// drop the writer at any time.
pub trait Upload: Sized + 'static {
    /// Takes the next bytes.
    fn append(&mut self, chunk: Vec<u8>) -> Result<(), Error>;

    /// Makes the object visible, honouring the put-mode.
    fn finish(self) -> Result<ObjectMeta, Error>;

    /// Discards everything written so far. By default, drops the upload.
    fn abort(self) -> Result<(), Error> {
        drop(self);
        Ok(())
    }
}

/// The contract's writer: an [`Upload`] until it is finished, aborted or
/// has failed an `append`; any call after that is `invalid` (but `abort`,
/// which then has nothing to do).
pub struct UploadSlot<U: Upload>(RefCell<Option<U>>);

impl<U: Upload> UploadSlot<U> {
    /// A slot holding `upload`.
    pub fn new(upload: U) -> UploadSlot<U> {
        UploadSlot(RefCell::new(Some(upload)))
    }
}

impl<U: Upload> GuestWriter for UploadSlot<U> {
    fn append(&self, chunk: Vec<u8>) -> Result<(), Error> {
        let mut slot = self.0.borrow_mut();
        let upload = slot
            .as_mut()
            .ok_or_else(|| Error::Invalid("append after finish, abort or a failed append".into()))?;
        let result = upload.append(chunk);
        if result.is_err() {
            // A failed upload commits nothing: dropping it discards what
            // was sent, and a later finish must not commit what is left.
            slot.take();
        }
        result
    }

    fn finish(&self) -> Result<ObjectMeta, Error> {
        let upload = self
            .0
            .borrow_mut()
            .take()
            .ok_or_else(|| Error::Invalid("finish after finish, abort or a failed append".into()))?;
        upload.finish()
    }

    fn abort(&self) -> Result<(), Error> {
        match self.0.borrow_mut().take() {
            Some(upload) => upload.abort(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    /// Records what happened to it in `log`.
    struct Fake {
        log: Rc<RefCell<Vec<&'static str>>>,
        fail_append: bool,
    }

    impl Upload for Fake {
        fn append(&mut self, _chunk: Vec<u8>) -> Result<(), Error> {
            self.log.borrow_mut().push("append");
            if self.fail_append {
                Err(Error::Transient("reset".into()))
            } else {
                Ok(())
            }
        }

        fn finish(self) -> Result<ObjectMeta, Error> {
            self.log.borrow_mut().push("finish");
            Ok(ObjectMeta {
                path: "p".into(),
                size: 0,
                etag: None,
                modified_ms: None,
            })
        }
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            self.log.borrow_mut().push("drop");
        }
    }

    fn slot(fail_append: bool) -> (UploadSlot<Fake>, Rc<RefCell<Vec<&'static str>>>) {
        let log = Rc::new(RefCell::new(Vec::new()));
        let fake = Fake {
            log: log.clone(),
            fail_append,
        };
        (UploadSlot::new(fake), log)
    }

    #[test]
    fn a_finished_writer_takes_nothing_more() {
        let (w, log) = slot(false);
        assert!(w.append(vec![1]).is_ok());
        assert!(w.finish().is_ok());
        assert!(matches!(w.append(vec![1]), Err(Error::Invalid(m)) if m.starts_with("append after")));
        assert!(matches!(w.finish(), Err(Error::Invalid(m)) if m.starts_with("finish after")));
        assert!(w.abort().is_ok());
        assert_eq!(*log.borrow(), ["append", "finish", "drop"]);
    }

    #[test]
    fn a_failed_append_drops_the_upload() {
        let (w, log) = slot(true);
        assert!(matches!(w.append(vec![1]), Err(Error::Transient(_))));
        assert_eq!(*log.borrow(), ["append", "drop"]);
        assert!(matches!(w.finish(), Err(Error::Invalid(_))));
    }

    #[test]
    fn abort_drops_by_default() {
        let (w, log) = slot(false);
        assert!(w.abort().is_ok());
        assert_eq!(*log.borrow(), ["drop"]);
    }
}
