//! The contract's `reader` resource over an adapter's download.

use crate::{Error, GuestReader};
use std::cell::RefCell;

/// An object being read by an adapter: what [`DownloadCell`] drives.
pub trait Download: 'static {
    /// The next bytes, at most `max` of them; empty at the end.
    fn next(&mut self, max: usize) -> Result<Vec<u8>, Error>;
}

/// The contract's reader over a [`Download`].
pub struct DownloadCell<D: Download>(RefCell<D>);

impl<D: Download> DownloadCell<D> {
    /// A reader of `download`.
    pub fn new(download: D) -> DownloadCell<D> {
        DownloadCell(RefCell::new(download))
    }
}

impl<D: Download> GuestReader for DownloadCell<D> {
    fn next(&self, max_bytes: u32) -> Result<Vec<u8>, Error> {
        self.0.borrow_mut().next(max_bytes as usize)
    }
}
