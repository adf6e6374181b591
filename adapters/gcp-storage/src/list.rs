//! `list`: the JSON API's object listing, paged by its page token.

use crate::client::{Condition, ObjectResource, json};
use crate::store::Store;
use crate::{Error, ObjectMeta, Page};
use serde::Deserialize;
use wharf_guest_http::encode::uri_encode;

/// GCS returns at most 1,000 objects per listing page.
pub const LIST_MAX: u32 = 1000;

/// Pages in a row that may hold nothing but a page token before a listing
/// gives up.
const MAX_EMPTY_PAGES: usize = 20;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListResponse {
    #[serde(default)]
    items: Vec<ObjectResource>,
    next_page_token: Option<String>,
}

/// A page of at most `limit` entries; a cursor when more may follow.
fn page(mut entries: Vec<ObjectMeta>, limit: usize, server_has_more: bool) -> Page {
    let more = server_has_more || entries.len() > limit;
    entries.truncate(limit);
    let next_cursor = if more {
        entries.last().map(|e| e.path.clone())
    } else {
        None
    };
    Page { entries, next_cursor }
}

impl Store {
    /// One page of objects under `prefix`, after the path `cursor`.
    ///
    /// The cursor is the path of the last object of the previous page, sent
    /// as `startOffset` (inclusive, so one more result is asked for).
    /// Results are also filtered here, so a server that ignores
    /// `startOffset` or `maxResults` (the emulator ignores both) still
    /// yields correct pages.
    pub fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<Page, Error> {
        let limit = limit.clamp(1, LIST_MAX) as usize;
        let after = cursor.map(|c| self.client.name(c));
        let mut query = format!(
            "{}/o?prefix={}&maxResults={}",
            self.client.bucket_url(),
            uri_encode(&self.client.name(prefix), false),
            limit + usize::from(after.is_some())
        );
        if let Some(a) = &after {
            query.push_str(&format!("&startOffset={}", uri_encode(a, false)));
        }
        let mut page_token: Option<String> = None;
        for _ in 0..MAX_EMPTY_PAGES {
            let url = match &page_token {
                Some(t) => format!("{query}&pageToken={}", uri_encode(t, false)),
                None => query.clone(),
            };
            let request = self.client.request("GET", url);
            let answer: ListResponse = json(self.client.expect(request, &[], &[200], &Condition::None)?)?;
            let entries = self.entries_after(&answer.items, after.as_deref())?;
            match answer.next_page_token {
                Some(t) if entries.is_empty() => page_token = Some(t),
                next => return Ok(page(entries, limit, next.is_some())),
            }
        }
        Err(Error::Backend(format!(
            "listing `{prefix}`: {MAX_EMPTY_PAGES} pages in a row held no object"
        )))
    }

    /// The objects of a listing answer named after `after`, as metadata.
    fn entries_after(&self, items: &[ObjectResource], after: Option<&str>) -> Result<Vec<ObjectMeta>, Error> {
        items
            .iter()
            .filter(|r| after.is_none_or(|a| r.name.as_str() > a))
            .filter_map(|r| self.client.path_of(&r.name).map(|p| self.client.meta(r, p)))
            .collect()
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn entries(names: &[&str]) -> Vec<ObjectMeta> {
        names
            .iter()
            .map(|n| ObjectMeta {
                path: n.to_string(),
                size: 0,
                etag: None,
                modified_ms: None,
            })
            .collect()
    }

    #[test]
    fn pages() {
        let p = page(entries(&["a", "b", "c"]), 2, false);
        assert_eq!((p.entries.len(), p.next_cursor.as_deref()), (2, Some("b")));
        let p = page(entries(&["a", "b"]), 2, false);
        assert_eq!((p.entries.len(), p.next_cursor), (2, None));
        let p = page(entries(&["a"]), 2, true);
        assert_eq!(p.next_cursor.as_deref(), Some("a"));
        let p = page(Vec::new(), 2, false);
        assert_eq!(p.next_cursor, None);
    }
}
