//! `list`: the Hub's tree API (`/api/{type}s/{repo}/tree/{rev}/{dir}
//! ?recursive=true`), paginated by its `Link: <…>; rel="next"` header.
//!
//! The Hub lists a tree recursively in git's order, which is the byte
//! order of the full paths; pages follow each other in that order. A
//! prefix is listed from its deepest directory (`a/b/c` from `a/b`), and
//! the listing stops at the first path past the prefix. The cursor is the
//! last path returned and the Hub page it came from, so the next call
//! starts from that page, not from the top.

use crate::client::{Hub, same_origin, split_url};
use serde_json::Value;
use wharf_guest::{Error, ObjectMeta, Page};
use wharf_guest_http::encode::uri_encode;

/// Hub pages fetched by one `list` call before it returns what it has.
const PAGES_PER_CALL: usize = 64;

impl Hub {
    /// One page of the objects under `prefix`, after `cursor`.
    pub fn list(&self, prefix: &str, cursor: Option<String>, limit: u32) -> Result<Page, Error> {
        let full = self.repo_path(prefix);
        let (mut after, mut url) = match cursor {
            Some(c) => parse_cursor(&c)?,
            None => {
                let dir = full.rfind('/').map_or("", |i| &full[..i]);
                let mut url = self.api(&format!("/tree/{}", self.rev()));
                if !dir.is_empty() {
                    url.push('/');
                    url.push_str(&uri_encode(dir, false));
                }
                url.push_str("?recursive=true&expand=false");
                (None, url)
            }
        };
        let limit = limit.max(1) as usize;
        let mut entries: Vec<ObjectMeta> = Vec::new();
        for _ in 0..PAGES_PER_CALL {
            let request = self.request("GET", url.clone());
            let response = request.send(&[])?;
            if response.status == 404 && response.header("x-error-code") == Some("EntryNotFound") {
                // The directory does not exist: nothing under the prefix.
                response.discard();
                return Ok(Page {
                    entries,
                    next_cursor: None,
                });
            }
            if !(200..300).contains(&response.status) {
                return Err(self.fail(response, None));
            }
            let next = response.header("link").and_then(next_link).map(str::to_string);
            let what = response.what().to_string();
            let page = self.json(response)?;
            let items = page
                .as_array()
                .ok_or_else(|| Error::Backend(format!("{what}: the answer is not a list")))?;
            let mut files: Vec<(String, u64, String)> = Vec::new();
            let mut past_prefix = false;
            for item in items {
                let Some(path) = item.get("path").and_then(Value::as_str) else {
                    continue;
                };
                if path.as_bytes() > full.as_bytes() && !path.starts_with(&full) {
                    past_prefix = true;
                    continue;
                }
                if item.get("type").and_then(Value::as_str) != Some("file")
                    || !path.starts_with(&full)
                    || after.as_deref().is_some_and(|a| path.as_bytes() <= a.as_bytes())
                {
                    continue;
                }
                let size = item.get("size").and_then(Value::as_u64).unwrap_or_default();
                let etag = item
                    .get("lfs")
                    .and_then(|l| l.get("oid"))
                    .or_else(|| item.get("oid"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                files.push((path.to_string(), size, etag));
            }
            files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            let room = limit - entries.len();
            let more_here = files.len() > room;
            for (path, size, etag) in files.into_iter().take(room) {
                after = Some(path.clone());
                entries.push(ObjectMeta {
                    path: path[self.cfg.prefix.len()..].to_string(),
                    size,
                    etag: Some(etag),
                    modified_ms: None,
                });
            }
            let next = match next {
                Some(link) if !past_prefix => Some(self.same_hub(&link, &what)?),
                _ => None,
            };
            if more_here {
                // The rest of this page comes next time.
                return Ok(self.page(entries, after, Some(url)));
            }
            match next {
                None => return Ok(self.page(entries, None, None)),
                Some(next) if entries.len() == limit => return Ok(self.page(entries, after, Some(next))),
                Some(next) => url = next,
            }
        }
        // Many pages without enough matches: return what there is.
        Ok(self.page(entries, after, Some(url)))
    }

    fn page(&self, entries: Vec<ObjectMeta>, after: Option<String>, url: Option<String>) -> Page {
        let next_cursor = url.map(|url| format!("{}\n{url}", after.unwrap_or_default()));
        Page { entries, next_cursor }
    }

    /// The path and query of a `Link` URL, which must be on the Hub itself
    /// (the token goes with it).
    fn same_hub(&self, link: &str, what: &str) -> Result<String, Error> {
        let (endpoint, path) =
            split_url(&self.cfg.endpoint, link).map_err(|e| Error::Backend(format!("{what}: Link: {e}")))?;
        if !same_origin(&endpoint, &self.cfg.endpoint) {
            return Err(Error::Backend(format!(
                "{what}: the next page is on another host ({})",
                endpoint.url()
            )));
        }
        Ok(path)
    }
}

/// The URL of `rel="next"` in a `Link` header.
fn next_link(header: &str) -> Option<&str> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        is_next.then(|| url.trim().trim_start_matches('<').trim_end_matches('>'))
    })
}

/// `<last path>\n<page path and query>`, as `list` wrote it.
fn parse_cursor(cursor: &str) -> Result<(Option<String>, String), Error> {
    let bad = || Error::Invalid(format!("`{cursor}` is not a cursor this backend returned"));
    let (after, url) = cursor.split_once('\n').ok_or_else(bad)?;
    if !url.starts_with('/') || !url.contains("/api/") || url.contains('\n') {
        return Err(bad());
    }
    Ok(((!after.is_empty()).then(|| after.to_string()), url.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links() {
        let h = r#"<https://huggingface.co/api/models/a/b/tree/main?cursor=xyz>; rel="next""#;
        assert_eq!(
            next_link(h),
            Some("https://huggingface.co/api/models/a/b/tree/main?cursor=xyz")
        );
        assert_eq!(next_link(r#"<https://x/prev>; rel="prev""#), None);
        assert!(parse_cursor("a/b\n/api/models/x/y/tree/main?cursor=1").is_ok());
        assert!(parse_cursor("garbage").is_err());
    }
}
