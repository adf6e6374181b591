//! The filesystem work behind the adapter, kept apart from the bindings glue.

use std::cell::RefCell;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, RandomState};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wharf_guest::{ByteRange, Error, ObjectMeta, Page, PutMode, Upload as _};

const TMP_DIR: &str = ".wharf-tmp";
/// Temporary files older than this are left-overs of a killed write.
const STALE_TMP: Duration = Duration::from_secs(24 * 3600);

pub struct Store {
    root: PathBuf,
}

fn io_error(op: &str, path: &str, e: io::Error) -> Error {
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

fn meta_of(path: &str, m: &fs::Metadata) -> ObjectMeta {
    let modified = m.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok());
    let mtime_ns = modified.map_or(0, |d| d.as_nanos());
    ObjectMeta {
        path: path.to_string(),
        size: m.len(),
        etag: Some(format!("{:x}-{:x}", m.len(), mtime_ns)),
        modified_ms: modified.map(|d| d.as_millis() as u64),
    }
}

fn random_name() -> String {
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

    fn file(&self, path: &str) -> Result<PathBuf, Error> {
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

    pub fn list(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<Page, Error> {
        if prefix.contains('\0') || prefix.starts_with('/') || prefix.split('/').any(|s| s == "..") {
            return Err(Error::Invalid(format!("invalid list prefix `{prefix}`")));
        }
        // Walk from the deepest directory the prefix names completely.
        let base = match prefix.rfind('/') {
            Some(i) => &prefix[..=i],
            None => "",
        };
        let mut entries = Vec::new();
        let mut more = false;
        self.walk(base, prefix, cursor, limit, &mut entries, &mut more)?;
        let next_cursor = if more {
            entries.last().map(|e: &ObjectMeta| e.path.clone())
        } else {
            None
        };
        Ok(Page { entries, next_cursor })
    }

    /// Depth-first walk in byte order of full paths. Sorting a directory's
    /// entries by `name` for files and `name/` for directories gives exactly
    /// the byte order of the paths below them.
    fn walk(
        &self,
        dir_key: &str,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
        out: &mut Vec<ObjectMeta>,
        more: &mut bool,
    ) -> Result<(), Error> {
        let dir = self.root.join(dir_key);
        let read = match fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error("list", dir_key, e)),
        };
        let mut names = Vec::new();
        for entry in read {
            let entry = entry.map_err(|e| io_error("list", dir_key, e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if dir_key.is_empty() && name.starts_with(".wharf") {
                continue;
            }
            let is_dir = entry.file_type().map_err(|e| io_error("list", dir_key, e))?.is_dir();
            let key = if is_dir {
                format!("{dir_key}{name}/")
            } else {
                format!("{dir_key}{name}")
            };
            names.push((key, is_dir));
        }
        names.sort_unstable();
        for (key, is_dir) in names {
            // Skip what cannot match the prefix.
            if !(key.starts_with(prefix) || (is_dir && prefix.starts_with(&key))) {
                continue;
            }
            // Skip what sorts at or before the cursor.
            if let Some(c) = cursor {
                if is_dir {
                    if key.as_str() < c && !c.starts_with(&key) {
                        continue;
                    }
                } else if key.as_str() <= c {
                    continue;
                }
            }
            if is_dir {
                self.walk(&key, prefix, cursor, limit, out, more)?;
                if *more {
                    return Ok(());
                }
            } else {
                if out.len() == limit {
                    *more = true;
                    return Ok(());
                }
                let m = match fs::metadata(self.root.join(&key)) {
                    Ok(m) => m,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_error("list", &key, e)),
                };
                out.push(meta_of(&key, &m));
            }
        }
        Ok(())
    }

    pub fn read(&self, path: &str, range: Option<ByteRange>) -> Result<ObjectReader, Error> {
        let full = self.file(path)?;
        let mut file = File::open(&full).map_err(|e| io_error("read", path, e))?;
        let meta = file.metadata().map_err(|e| io_error("read", path, e))?;
        if !meta.is_file() {
            return Err(Error::NotFound(format!("read `{path}`: not an object")));
        }
        let size = meta.len();
        let (start, end) = match range {
            None => (0, size),
            Some(r) => {
                let end = r.end.unwrap_or(size).min(size);
                if r.end.is_some_and(|e| e < r.start) {
                    return Err(Error::Invalid(format!("read `{path}`: range end before start")));
                }
                (r.start.min(end), end)
            }
        };
        if start > 0 {
            file.seek(SeekFrom::Start(start))
                .map_err(|e| io_error("read", path, e))?;
        }
        Ok(ObjectReader {
            file: RefCell::new(file),
            remaining: RefCell::new(end - start),
            path: path.into(),
        })
    }

    fn tmp_dir(&self) -> Result<PathBuf, Error> {
        let tmp = self.root.join(TMP_DIR);
        fs::create_dir_all(&tmp).map_err(|e| io_error("write", TMP_DIR, e))?;
        Ok(tmp)
    }

    pub fn write(&self, path: &str, mode: PutMode) -> Result<ObjectWriter, Error> {
        let dest = self.file(path)?;
        let tmp_dir = self.tmp_dir()?;
        let name = random_name();
        // A cheap, occasional sweep of temporaries left by killed writes.
        if name.ends_with("00") {
            sweep_stale(&tmp_dir);
        }
        let tmp = tmp_dir.join(name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| io_error("write", path, e))?;
        Ok(ObjectWriter {
            file: Some(file),
            tmp,
            dest,
            path: path.into(),
            mode,
        })
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

fn sweep_stale(tmp_dir: &Path) {
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

pub struct ObjectReader {
    file: RefCell<File>,
    remaining: RefCell<u64>,
    path: String,
}

impl ObjectReader {
    pub fn next(&self, max: usize) -> Result<Vec<u8>, Error> {
        let mut remaining = self.remaining.borrow_mut();
        let want = (*remaining).min(max as u64) as usize;
        let mut buf = vec![0u8; want];
        let mut filled = 0;
        let mut file = self.file.borrow_mut();
        while filled < want {
            match file.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error("read", &self.path, e)),
            }
        }
        if filled < want {
            return Err(Error::Backend(format!(
                "read `{}`: the file shrank while it was read ({} bytes missing)",
                self.path,
                want - filled
            )));
        }
        *remaining -= filled as u64;
        buf.truncate(filled);
        Ok(buf)
    }
}

pub struct ObjectWriter {
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
    path: String,
    mode: PutMode,
}

impl ObjectWriter {
    fn rename(&self) -> Result<(), Error> {
        fs::rename(&self.tmp, &self.dest).map_err(|e| io_error("write", &self.path, e))
    }

    /// Appends `bytes` to the temporary file.
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let file = self.file.as_mut().expect("file is present until finish");
        file.write_all(bytes).map_err(|e| io_error("write", &self.path, e))
    }
}

impl wharf_guest::Upload for ObjectWriter {
    fn append(&mut self, chunk: Vec<u8>) -> Result<(), Error> {
        self.write_all(&chunk)
    }

    fn finish(mut self) -> Result<ObjectMeta, Error> {
        let file = self.file.take().expect("file is present until finish");
        file.sync_all().map_err(|e| io_error("write", &self.path, e))?;
        drop(file);
        if let Some(parent) = self.dest.parent() {
            fs::create_dir_all(parent).map_err(|e| io_error("write", &self.path, e))?;
        }
        match &self.mode {
            PutMode::Overwrite => self.rename()?,
            PutMode::Create => {
                // link() fails atomically when the destination exists.
                fs::hard_link(&self.tmp, &self.dest).map_err(|e| match e.kind() {
                    io::ErrorKind::AlreadyExists => {
                        Error::AlreadyExists(format!("write `{}`: the object already exists", self.path))
                    }
                    _ => io_error("write", &self.path, e),
                })?;
                let _ = fs::remove_file(&self.tmp);
            }
            PutMode::Update(expected) => {
                let current = match fs::metadata(&self.dest) {
                    Ok(m) => meta_of(&self.path, &m).etag,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                    Err(e) => return Err(io_error("write", &self.path, e)),
                };
                if current.as_deref() != Some(expected.as_str()) {
                    return Err(Error::PreconditionFailed(format!(
                        "write `{}`: etag is {}, expected {expected}",
                        self.path,
                        current.as_deref().unwrap_or("absent (no object)")
                    )));
                }
                self.rename()?;
            }
        }
        let m = fs::metadata(&self.dest).map_err(|e| io_error("write", &self.path, e))?;
        Ok(meta_of(&self.path, &m))
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        // Leaves nothing behind on abort, error or drop; after a successful
        // rename the temporary is already gone and this is a no-op.
        let _ = fs::remove_file(&self.tmp);
    }
}
