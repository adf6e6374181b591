//! Writes: a temporary file under `.wharf-tmp/` (named for the object, see
//! `pending`), made visible by a rename (overwrite, update, holding the
//! object's lock: see `lock`) or a hard link (create).

use crate::client::{Store, io_error, meta_of, random_name, sweep_stale};
use crate::lock::Lock;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::SystemTime;
use wharf_guest::{Error, ObjectMeta, PutMode};

pub struct ObjectWriter {
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
    /// Where the lock files of updates are.
    locks: PathBuf,
    path: String,
    mode: PutMode,
}

impl ObjectWriter {
    fn rename(&self) -> Result<(), Error> {
        fs::rename(&self.tmp, &self.dest).map_err(|e| io_error("write", &self.path, e))
    }

    /// Appends `bytes` to the temporary file.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), Error> {
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
        // The etag is size and mtime: stamp the mtime from the wall clock
        // (nanoseconds), not the kernel's file time, which before Linux 6.13
        // moves in ticks of 1-10 ms, so two same-size writes in one tick
        // would share an etag and a stale `update` would win.
        file.set_modified(SystemTime::now())
            .map_err(|e| io_error("write", &self.path, e))?;
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
                // Held from the comparison to the rename.
                let _lock = Lock::take(&self.locks, &self.path)?;
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

impl Store {
    pub fn write(&self, path: &str, mode: PutMode) -> Result<ObjectWriter, Error> {
        let dest = self.file(path)?;
        let tmp_dir = self.tmp_dir()?;
        let random = random_name();
        // A cheap, occasional sweep of temporaries left by killed writes.
        if random.ends_with("00") {
            sweep_stale(&tmp_dir);
        }
        let tmp = tmp_dir.join(crate::pending::tmp_name(&random, path));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| io_error("write", path, e))?;
        Ok(ObjectWriter {
            file: Some(file),
            tmp,
            dest,
            locks: tmp_dir.join("locks"),
            path: path.into(),
            mode,
        })
    }
}
