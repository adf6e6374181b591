//! `list`: a page of the sorted set that indexes every committed path.

use crate::client::{Store, eval};
use crate::resp::Reply;
use crate::scripts;
use wharf_guest::{Error, ObjectMeta, Page};

impl Store {
    /// One page from the index (`ZRANGEBYLEX` after the cursor), with each
    /// entry's manifest, in one script.
    pub fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<Page, Error> {
        let bytes = |mark: &str, s: &str| [mark.as_bytes(), s.as_bytes()].concat();
        let min = match cursor {
            Some(c) if c >= prefix => bytes("(", c),
            _ if prefix.is_empty() => b"-".to_vec(),
            _ => bytes("[", prefix),
        };
        // No UTF-8 text holds the byte 0xff: `prefix` + 0xff is above every
        // path that starts with `prefix` and below every other larger one.
        let max = if prefix.is_empty() {
            b"+".to_vec()
        } else {
            [bytes("(", prefix), vec![0xff]].concat()
        };
        let index = self.cfg.index_key();
        let manifests = self.cfg.manifest_prefix();
        let limit = limit.to_string();
        let reply = self.with_conn(|c| {
            eval(
                c,
                scripts::LIST,
                &[index.as_bytes()],
                &[&min, &max, limit.as_bytes(), manifests.as_bytes()],
            )
        })?;
        page(reply, prefix)
    }
}

/// The page in the list script's answer: `[next cursor, [path, size, etag,
/// modified_ms]…]` (flat).
pub fn page(reply: Reply, prefix: &str) -> Result<Page, Error> {
    let bad = || Error::Backend(format!("redis: malformed answer of the list script for `{prefix}`"));
    let mut parts = reply.into_array().ok_or_else(bad)?.into_iter();
    let next = parts.next().and_then(|c| c.text()).ok_or_else(bad)?;
    let flat = parts.next().and_then(Reply::into_array).ok_or_else(bad)?;
    let mut entries = Vec::with_capacity(flat.len() / 4);
    for e in flat.chunks(4) {
        let [path, size, etag, modified] = e else {
            return Err(bad());
        };
        entries.push(ObjectMeta {
            path: path.text().ok_or_else(bad)?,
            size: size.int().and_then(|s| u64::try_from(s).ok()).ok_or_else(bad)?,
            etag: etag.text().filter(|t| !t.is_empty()),
            modified_ms: modified.text().and_then(|m| m.parse().ok()),
        });
    }
    Ok(Page {
        entries,
        next_cursor: (!next.is_empty()).then_some(next),
    })
}
