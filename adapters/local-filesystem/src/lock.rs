//! The lock an `update(etag)` holds from comparing the etag to its rename:
//! the file `.wharf-tmp/locks/<object path, escaped>`, created only where
//! none exists, so of updates racing with one etag exactly one wins. A lock
//! older than `STALE` was left by a killed host (a holder keeps it for one
//! `stat` and one rename) and is taken over.

use crate::client::{io_error, random_name};
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wharf_guest::Error;

/// Age at which a lock is taken to be a killed host's.
const STALE: Duration = Duration::from_secs(30);
/// How long an update waits for the lock: past `STALE`, so that a stale
/// lock is always taken over within one call.
const WAIT: Duration = Duration::from_secs(40);
/// The longest pause between two tries.
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// A held lock; dropping it releases it.
pub struct Lock(PathBuf);

impl Lock {
    /// Waits for the lock of `path`, whose lock files live in `dir`.
    pub fn take(dir: &Path, path: &str) -> Result<Lock, Error> {
        fs::create_dir_all(dir).map_err(|e| io_error("write", path, e))?;
        let file = dir.join(lock_name(path));
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&file) {
                Ok(_) => return Ok(Lock(file)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_error("write", path, e)),
            }
            if take_over_if_stale(&file) {
                continue;
            }
            if start.elapsed() > WAIT {
                return Err(Error::Transient(format!(
                    "another update of the object held its lock for {WAIT:?} (`{}`)",
                    file.display()
                )));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Removes the lock `file` if it is stale; whether it is gone. It is moved
/// aside first and looked at there, so that of two updates that both saw it
/// stale, the later one cannot remove a lock the earlier one took since
/// (such a lock goes back).
fn take_over_if_stale(file: &Path) -> bool {
    if !is_stale(file) {
        return false;
    }
    // No object path escapes to a name starting with `.wharf`.
    let aside = file.with_file_name(format!(".wharf-stale-{}", random_name()));
    if fs::rename(file, &aside).is_err() {
        // Released or taken over meanwhile.
        return true;
    }
    if !is_stale(&aside) {
        let _ = fs::hard_link(&aside, file);
    }
    let _ = fs::remove_file(&aside);
    true
}

/// Whether the lock `file` was made more than `STALE` ago.
fn is_stale(file: &Path) -> bool {
    let made = fs::metadata(file).and_then(|m| m.modified());
    made.ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age > STALE)
}

/// The lock file's name: the object path with `%` and `/` escaped, or, for
/// a path too long for one file name, its FNV-1a hash (two such paths may
/// then share a lock, which only makes one wait for the other). An object
/// path's first segment never starts with `.wharf`.
fn lock_name(path: &str) -> String {
    let name = path.replace('%', "%25").replace('/', "%2F");
    if name.len() <= 200 {
        return name;
    }
    let hash = path.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!(".wharf-long-{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_per_path_and_short() {
        assert_eq!(lock_name("models/a%b/v1"), "models%2Fa%25b%2Fv1");
        let long = "x/".repeat(150) + "y";
        assert_eq!(lock_name(&long).len(), ".wharf-long-".len() + 16);
        assert_ne!(lock_name(&long), lock_name(&(long.clone() + "z")));
    }
}
