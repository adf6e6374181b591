//! The contract's recursive, sorted, paginated `list`, built from the
//! server's one-level directory listing.
//!
//! A page is a depth-first walk from the deepest directory the prefix
//! names, visiting each directory's entries in the byte order of their full
//! paths (a directory sorts as `name/`), skipping whole subtrees that lie
//! before the cursor or outside the prefix. The cursor is the last path
//! returned. Cost: one request per directory visited, and a resumed page
//! re-lists the directories on the way down to its cursor; the server reads
//! each listed directory whole.

use crate::client::Mlflow;
use crate::keys;
use wharf_guest::{Error, ObjectMeta, Page};

/// Directory listings one `list` call makes at most; past it the page ends
/// early (possibly empty) with a cursor, so a tree of many empty
/// directories cannot make one call run unbounded.
const MAX_DIRS_PER_PAGE: usize = 2000;

struct Walk<'a> {
    client: &'a Mlflow,
    prefix: &'a str,
    cursor: Option<String>,
    want: usize,
    out: Vec<ObjectMeta>,
    dirs_listed: usize,
    /// Everything up to here was walked: the last path returned, or a
    /// whole directory finished (`dir/` followed by the largest char).
    covered: Option<String>,
    /// Set when the walk stopped at the directory budget: resume after this.
    stopped_at: Option<String>,
}

/// One page of the objects whose path starts with `prefix`.
pub fn list(client: &Mlflow, prefix: &str, cursor: Option<String>, limit: u32) -> Result<Page, Error> {
    let limit = limit.clamp(1, 1000) as usize;
    let start = match prefix.rfind('/') {
        Some(i) => &prefix[..=i],
        None => "",
    };
    let mut walk = Walk {
        client,
        prefix,
        cursor,
        // One more than asked: whether it exists says if a next page does.
        want: limit + 1,
        out: Vec::new(),
        dirs_listed: 0,
        covered: None,
        stopped_at: None,
    };
    walk.dir(start)?;
    let mut entries = walk.out;
    let next_cursor = if entries.len() > limit {
        entries.truncate(limit);
        entries.last().map(|e| e.path.clone())
    } else {
        walk.stopped_at
    };
    Ok(Page { entries, next_cursor })
}

impl Walk<'_> {
    fn done(&self) -> bool {
        self.out.len() >= self.want || self.stopped_at.is_some()
    }

    /// Walks `dir` (a contract directory: `""` or ending in `/`).
    fn dir(&mut self, dir: &str) -> Result<(), Error> {
        if self.dirs_listed >= MAX_DIRS_PER_PAGE {
            // Resume where the walk got to. The stack is at most 512 deep
            // (paths are at most 1024 bytes), so most of the directories
            // listed were finished and `covered` moved past the cursor.
            self.stopped_at = self.covered.clone().or_else(|| self.cursor.clone());
            return Ok(());
        }
        self.dirs_listed += 1;
        let mut children: Vec<(String, bool, u64)> = Vec::new();
        for e in self.client.list_dir(&self.client.dir_key(dir))? {
            match keys::unescape_name(&e.name) {
                Some(name) => children.push((name, e.is_dir, e.size)),
                None => eprintln!(
                    "mlflow: skipping artifact `{}` in `{dir}`: its name was not written by wharf and maps to no object path",
                    e.name
                ),
            }
        }
        // Byte order of full paths: a directory's entries follow `name/`.
        children.sort_by_cached_key(|(name, is_dir, _)| if *is_dir { format!("{name}/") } else { name.clone() });
        for (name, is_dir, size) in children {
            if self.done() {
                return Ok(());
            }
            let full = format!("{dir}{name}");
            if is_dir {
                let sub = format!("{full}/");
                let in_prefix = sub.starts_with(self.prefix) || self.prefix.starts_with(&sub);
                let before_cursor = self
                    .cursor
                    .as_deref()
                    .is_some_and(|c| sub.as_str() < c && !c.starts_with(&sub));
                if in_prefix && !before_cursor {
                    self.dir(&sub)?;
                    if !self.done() {
                        self.covered = Some(format!("{sub}{}", char::MAX));
                    }
                }
            } else if full.starts_with(self.prefix) && self.cursor.as_deref().is_none_or(|c| full.as_str() > c) {
                self.covered = Some(full.clone());
                self.out.push(ObjectMeta {
                    path: full,
                    size,
                    etag: None,
                    modified_ms: None,
                });
            }
        }
        Ok(())
    }
}
