//! The store: the granted root directory, path checks, error mapping and
//! the single-call operations (stat, delete, copy, health).

use std::fs::{self, File};
use std::hash::{BuildHasher, RandomState};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wharf_guest::{Error, ObjectMeta, PutMode, Upload as _};

const TMP_DIR: &str = ".wharf-tmp";
/// Temporary files older than this are left-overs of a killed write.
const STALE_TMP: Duration = Duration::from_secs(24 * 3600);

pub struct Store {
    pub root: PathBuf,
}

/// An I/O failure of `op` on `path` as the contract's error.
pub fn io_error(op: &str, path: &str, e: io::Error) -> Error {
    let msg = format!("{op} `{path}`: {e}");
    match e.kind() {
        io::ErrorKind::NotFound => Error::NotFound(msg),
        // `a/b` where `a` is an object: no object `a/b` exists.
        io::ErrorKind::NotADirectory if matches!(op, "stat" | "read" | "delete" | "list" | "copy") => {
            Error::NotFound(msg)
        }
        io::ErrorKind::AlreadyExists => Error::AlreadyExists(msg),
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => Error::Denied(msg),
        io::ErrorKind::Interrupted | io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::Transient(msg),
        _ => Error::Backend(msg),
    }
}

fn check_path(path: &str) -> Result<(), Error> {
    let bad = path.is_empty()
        || path.len() > 1024
        || path.starts_with('/')
        || path.ends_with('/')
        || path.chars().any(|c| c.is_control())
        || path.split('/').any(|s| s.is_empty() || s == "." || s == "..")
        || path.split('/').next().is_some_and(|s| s.starts_with(".wharf"));
    if bad {
        return Err(Error::Invalid(format!("invalid object path `{path}`")));
    }
    Ok(())
}

/// The metadata of the object `path` whose file has metadata `m`.
pub fn meta_of(path: &str, m: &fs::Metadata) -> ObjectMeta {
    let modified = m.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok());
    let mtime_ns = modified.map_or(0, |d| d.as_nanos());
    ObjectMeta {
        path: path.to_string(),
        size: m.len(),
        etag: Some(format!("{:x}-{:x}", m.len(), mtime_ns)),
        modified_ms: modified.map(|d| d.as_millis() as u64),
    }
}

/// A fresh temporary file name.
pub fn random_name() -> String {
    format!(
        "{:016x}{:016x}",
        RandomState::new().hash_one(1u8),
        RandomState::new().hash_one(2u8)
    )
}

impl Store {
    pub fn open(root: PathBuf) -> Result<Self, Error> {
        match fs::metadata(&root) {
            Ok(m) if m.is_dir() => Ok(Store { root }),
            Ok(_) => Err(Error::Invalid(format!("root `{}` is not a directory", root.display()))),
            Err(e) => Err(Error::Invalid(format!(
                "root `{}` is not accessible ({e}); is it granted to this backend?",
                root.display()
            ))),
        }
    }

    pub fn file(&self, path: &str) -> Result<PathBuf, Error> {
        check_path(path)?;
        Ok(self.root.join(path))
    }

    pub fn stat(&self, path: &str) -> Result<ObjectMeta, Error> {
        let full = self.file(path)?;
        let m = fs::metadata(&full).map_err(|e| io_error("stat", path, e))?;
        if !m.is_file() {
            return Err(Error::NotFound(format!("stat `{path}`: not an object (a directory)")));
        }
        Ok(meta_of(path, &m))
    }

    pub fn delete(&self, path: &str) -> Result<(), Error> {
        let full = self.file(path)?;
        match fs::remove_file(&full) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => return Ok(()),
            Err(e) => return Err(io_error("delete", path, e)),
        }
        // Remove directories the delete left empty, so they do not pile up.
        let mut dir = full.parent();
        while let Some(d) = dir {
            if d == self.root || fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }

    pub fn health(&self) -> Result<String, Error> {
        let tmp = self.tmp_dir()?;
        let probe = tmp.join(format!("health-{}", random_name()));
        fs::write(&probe, b"ok").map_err(|e| io_error("health write", ".wharf-tmp", e))?;
        fs::remove_file(&probe).map_err(|e| io_error("health remove", ".wharf-tmp", e))?;
        Ok(format!("directory `{}` is readable and writable", self.root.display()))
    }

    pub fn tmp_dir(&self) -> Result<PathBuf, Error> {
        let tmp = self.root.join(TMP_DIR);
        fs::create_dir_all(&tmp).map_err(|e| io_error("write", TMP_DIR, e))?;
        Ok(tmp)
    }

    pub fn copy(&self, source: &str, destination: &str, mode: PutMode) -> Result<ObjectMeta, Error> {
        let src = self.file(source)?;
        let mut input = File::open(&src).map_err(|e| io_error("copy", source, e))?;
        let mut w = self.write(destination, mode)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = input.read(&mut buf).map_err(|e| io_error("copy", source, e))?;
            if n == 0 {
                break;
            }
            w.write_all(&buf[..n])?;
        }
        w.finish()
    }
}

/// Removes temporary files older than `STALE_TMP` (a killed write's).
pub fn sweep_stale(tmp_dir: &Path) {
    let Ok(entries) = fs::read_dir(tmp_dir) else { return };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > STALE_TMP);
        if old {
            let _ = fs::remove_file(entry.path());
        }
    }
}
