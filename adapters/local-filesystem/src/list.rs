//! `list`: a walk of the directory tree under the prefix, in byte order
//! of the paths.

use crate::client::{Store, io_error, meta_of};
use std::fs::{self};
use std::io::{self};
use wharf_guest::{Error, ObjectMeta, Page};

impl Store {
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
            // Nothing there, or an object where the prefix needs a
            // directory (`a/b.bin/`): nothing under it either.
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => return Ok(()),
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
}
