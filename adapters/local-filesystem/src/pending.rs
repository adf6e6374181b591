//! Pending uploads: the temporary files of writes that never finished (the
//! host was killed before `finish`, `abort` or dropping the writer). A
//! temporary's name is `<random>~<path>`, the object path with `%` and `/`
//! escaped, so it says which object it was for; a name that would pass
//! 255 bytes is `<random>` alone and is not listed (the sweep of stale
//! temporaries removes it).

use crate::client::{Store, io_error};
use std::fs;
use std::time::UNIX_EPOCH;
use wharf_guest::{Error, PendingPage, PendingUpload};

/// The longest file name most filesystems take.
const MAX_NAME: usize = 255;

/// The temporary file name for a write of `path`, given a fresh random name.
pub fn tmp_name(random: &str, path: &str) -> String {
    let mut name = format!("{random}~");
    for c in path.chars() {
        match c {
            '%' => name.push_str("%25"),
            '/' => name.push_str("%2F"),
            c => name.push(c),
        }
    }
    if name.len() > MAX_NAME {
        return random.to_string();
    }
    name
}

/// The object path a temporary file name was made for, if it names one.
fn path_of(name: &str) -> Option<String> {
    let (_, escaped) = name.split_once('~')?;
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        match rest.get(i + 1..i + 3) {
            Some("25") => out.push('%'),
            Some("2F") => out.push('/'),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    (!out.is_empty()).then_some(out)
}

impl Store {
    /// The temporaries of unfinished writes under `prefix`, by name.
    /// `started-ms` is the last write to the temporary, which is later
    /// than its start: a write still appending never looks old.
    pub fn list_pending(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<PendingPage, Error> {
        let tmp = self.tmp_dir()?;
        let op = "list pending uploads under";
        let mut names: Vec<String> = Vec::new();
        for entry in fs::read_dir(&tmp).map_err(|e| io_error(op, prefix, e))? {
            let entry = entry.map_err(|e| io_error(op, prefix, e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if cursor.is_some_and(|c| name.as_str() <= c) {
                continue;
            }
            if path_of(&name).is_some_and(|p| p.starts_with(prefix)) {
                names.push(name);
            }
        }
        names.sort_unstable();
        let more = names.len() > limit;
        names.truncate(limit);
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            let meta = match fs::metadata(tmp.join(&name)) {
                Ok(m) => m,
                // Finished or aborted since it was listed.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(op, prefix, e)),
            };
            entries.push(PendingUpload {
                path: path_of(&name).unwrap_or_default(),
                started_ms: meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_millis() as u64),
                staged_bytes: Some(meta.len()),
                upload_id: name,
            });
        }
        let next_cursor = if more {
            entries.last().map(|e| e.upload_id.clone())
        } else {
            None
        };
        Ok(PendingPage { entries, next_cursor })
    }

    /// Removes the temporary `upload_id` of a write of `path`; one already
    /// gone is not an error. Refuses a name that is not a temporary of
    /// `path`, so nothing else in the directory can be removed this way.
    pub fn abort_pending(&self, path: &str, upload_id: &str) -> Result<(), Error> {
        if upload_id.contains(['/', '\\']) || path_of(upload_id).as_deref() != Some(path) {
            return Err(Error::Invalid(format!(
                "abort pending upload of `{path}`: `{upload_id}` is not an upload of that path"
            )));
        }
        match fs::remove_file(self.tmp_dir()?.join(upload_id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("abort pending upload of", path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_path() {
        let name = tmp_name("0123", "models/a%b/v1/model.bin");
        assert_eq!(name, "0123~models%2Fa%25b%2Fv1%2Fmodel.bin");
        assert_eq!(path_of(&name).as_deref(), Some("models/a%b/v1/model.bin"));
        assert_eq!(tmp_name("0123", &"x/".repeat(200)), "0123");
        assert_eq!(path_of("0123"), None);
        assert_eq!(path_of("0123~a%2"), None);
        assert_eq!(path_of("health-0123"), None);
    }
}
