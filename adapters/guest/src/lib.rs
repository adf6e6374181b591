//! The wharf storage-adapter contract (`wit/storage.wit`, world
//! `complete-storage-adapter`: `adapter` and the optional `maintenance`
//! and `reuse`)
//! for the guest crates, generated once, and what every adapter would
//! otherwise repeat:
//!
//! - [`bindings`]: the `wit_bindgen` output; the contract's types and traits
//!   are re-exported at the root ([`Error`], [`ObjectMeta`], [`Guest`],
//!   [`GuestBackend`], ...; the resource handles as [`BackendHandle`],
//!   [`ReaderHandle`] and [`WriterHandle`]).
//! - [`export!`]: exports an adapter's `Guest`, [`Maintenance`] and
//!   [`Reuse`] implementations, e.g. `wharf_guest::export!(Component);`. An
//!   adapter that cannot show what an interrupted write left implements
//!   `Maintenance` with [`no_pending_uploads!`]; one that keeps nothing
//!   that can go stale implements `Reuse` with [`nothing_to_recycle!`].
//! - [`UploadSlot`]: the contract's writer over an adapter's [`Upload`];
//!   [`DownloadCell`]: its reader over a [`Download`] (`wharf-guest-http`'s
//!   `RangedBody` is one).
//! - [`config::Table`]: the `config` table, unknown keys rejected; sizes,
//!   durations and booleans as config values write them ([`config`]).
//! - [`exists`]: `exists` from `stat`.
//!
//! `wharf-guest-http` adds `From<HttpError> for Error`. No features: a
//! built-in adapter's bytes do not depend on which other crates were built
//! with it (a feature one adapter enables would be unified into all).
//!
//! A plain library: the adapter crates are the components. It compiles for
//! the host too, so the adapters' unit tests run natively.

pub mod config;
mod reader;
mod writer;

/// The bindings of the `complete-storage-adapter` world, generated with a
/// public export macro whose default bindings path is this module.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "complete-storage-adapter",
        generate_all,
        pub_export_macro: true,
        default_bindings_module: "wharf_guest::bindings",
    });
}

pub use bindings::exports::wharf::storage::adapter::{
    Backend as BackendHandle, BackendBorrow, ByteRange, Capabilities, Error, Guest, GuestBackend, GuestReader,
    GuestWriter, ObjectMeta, Page, PutMode, Reader as ReaderHandle, Writer as WriterHandle,
};
pub use bindings::exports::wharf::storage::maintenance::{Guest as Maintenance, PendingPage, PendingUpload};
pub use bindings::exports::wharf::storage::reuse::Guest as Reuse;
pub use reader::{Download, DownloadCell};
pub use writer::{Upload, UploadSlot};

/// Exports `$ty`, an adapter's implementation of [`Guest`], [`Maintenance`]
/// and [`Reuse`], as the component's `wharf:storage/adapter`,
/// `wharf:storage/maintenance` and `wharf:storage/reuse`:
/// `wharf_guest::export!(Component);` at the root of the adapter crate.
#[macro_export]
macro_rules! export {
    ($ty:ident) => {
        $crate::bindings::export!($ty with_types_in $crate::bindings);
    };
}

/// The [`Maintenance`] answer of an adapter that cannot list or abort what
/// an unfinished write left; `why` says what becomes of it instead.
pub fn pending_unsupported<T>(backend: &str, why: &str) -> Result<T, Error> {
    Err(Error::Unsupported(format!(
        "{backend} cannot list or abort pending uploads: {why}"
    )))
}

/// Implements [`Maintenance`] for `$ty` as [`pending_unsupported`] with
/// `$backend` and `$why`: `wharf_guest::no_pending_uploads!(Component,
/// "database", "a write is one transaction");`.
#[macro_export]
macro_rules! no_pending_uploads {
    ($ty:ident, $backend:literal, $why:literal) => {
        impl $crate::Maintenance for $ty {
            fn list_pending(
                _: $crate::BackendBorrow<'_>,
                _: String,
                _: Option<String>,
                _: u32,
            ) -> Result<$crate::PendingPage, $crate::Error> {
                $crate::pending_unsupported($backend, $why)
            }

            fn abort_pending(_: $crate::BackendBorrow<'_>, _: String, _: String) -> Result<(), $crate::Error> {
                $crate::pending_unsupported($backend, $why)
            }
        }
    };
}

/// Implements [`Reuse`] for `$ty` for an adapter whose backend keeps
/// nothing that goes stale while idle (no connection, no token): `recycle`
/// accepts every time. `wharf_guest::nothing_to_recycle!(Component);`.
#[macro_export]
macro_rules! nothing_to_recycle {
    ($ty:ident) => {
        impl $crate::Reuse for $ty {
            fn recycle(_: $crate::BackendBorrow<'_>, _: u64) -> Result<(), $crate::Error> {
                Ok(())
            }
        }
    };
}

/// `exists` from the answer of `stat`: `not-found` is `false`, any other
/// error stays an error.
pub fn exists(stat: Result<ObjectMeta, Error>) -> Result<bool, Error> {
    match stat {
        Ok(_) => Ok(true),
        Err(Error::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exists_maps_not_found_only() {
        let meta = ObjectMeta {
            path: "a".into(),
            size: 1,
            etag: None,
            modified_ms: None,
        };
        assert!(matches!(exists(Ok(meta)), Ok(true)));
        assert!(matches!(exists(Err(Error::NotFound("gone".into()))), Ok(false)));
        assert!(matches!(exists(Err(Error::Denied("no".into()))), Err(Error::Denied(_))));
    }
}
