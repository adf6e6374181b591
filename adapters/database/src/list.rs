//! `list`: one page of the objects table, in byte order of the paths
//! (`COLLATE "C"`).

use crate::client::{Db, meta_of};
use crate::wire::Param;
use wharf_guest::{Error, Page};

/// Escapes `%`, `_` and `\` for a `LIKE` pattern (escape character `\`).
fn like_prefix(prefix: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + 1);
    for ch in prefix.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            s.push('\\');
        }
        s.push(ch);
    }
    s.push('%');
    s
}

impl Db {
    /// Keys in byte order (`COLLATE "C"`); the cursor is the last path of
    /// the previous page.
    pub fn list(&self, prefix: &str, cursor: Option<String>, limit: u32) -> Result<Page, Error> {
        self.with_conn(|s, conn| {
            let after = cursor.unwrap_or_default();
            let r = conn
                .query(
                    &format!(
                        "SELECT size, etag, modified_ms, path FROM {} \
                         WHERE path LIKE $1 AND path > $2 ORDER BY path LIMIT $3",
                        s.objects
                    ),
                    &[
                        Param::Text(&like_prefix(prefix)),
                        Param::Text(&after),
                        Param::I64(i64::from(limit) + 1),
                    ],
                )
                .map_err(|e| s.error(e))?;
            let more = r.rows.len() > limit as usize;
            let mut entries = Vec::with_capacity(r.rows.len());
            for row in r.rows.iter().take(limit as usize) {
                let path = row.text(3).map_err(|e| s.error(e))?;
                entries.push(meta_of(s, path, row, 0)?);
            }
            let next_cursor = if more {
                entries.last().map(|e| e.path.clone())
            } else {
                None
            };
            Ok(Page { entries, next_cursor })
        })
    }
}
