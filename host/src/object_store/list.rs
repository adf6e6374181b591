//! Listing: object_store's flat, delimited and paginated listings from the
//! contract's one flat, paged `list(prefix, cursor, limit)`.

use super::WharfStore;
use super::error::{generic, to_os};
use crate::adapter::Adapter;
use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::list::{PaginatedListOptions, PaginatedListResult, PaginatedListStore};
use object_store::path::Path;
use object_store::{ListResult, ObjectMeta, Result};
use std::sync::Arc;

/// object_store's prefixes match whole segments (`foo` is a prefix of
/// `foo/x`, not of `foo.bar/x`): the wharf prefix is `foo/`.
pub(super) fn segment_prefix(prefix: Option<&Path>) -> String {
    match prefix {
        Some(p) if !p.as_ref().is_empty() => format!("{p}/"),
        _ => String::new(),
    }
}

/// Every object under the wharf prefix `prefix`, a page at a time.
pub(super) fn flat(adapter: Arc<dyn Adapter>, prefix: String) -> BoxStream<'static, Result<ObjectMeta>> {
    let limit = adapter.capabilities().list_max_limit.max(1);
    // (cursor, done)
    stream::try_unfold(
        (adapter, prefix, None::<String>, false),
        move |(adapter, prefix, cursor, done)| async move {
            if done {
                return Ok::<_, object_store::Error>(None);
            }
            let page = adapter
                .list(&prefix, cursor.as_deref(), limit)
                .await
                .map_err(|e| to_os(e, &prefix))?;
            let entries = page.entries.iter().map(to_meta).collect::<Result<Vec<_>>>()?;
            let done = page.next_cursor.is_none();
            Ok(Some((
                stream::iter(entries.into_iter().map(Ok)),
                (adapter, prefix, page.next_cursor, done),
            )))
        },
    )
    .try_flatten()
    .boxed()
}

/// A listed wharf object under object_store's names.
fn to_meta(m: &crate::ObjectMeta) -> Result<ObjectMeta> {
    let location = Path::parse(&m.path).map_err(generic)?;
    Ok(super::os_meta(location, m))
}

/// Where a page ended: the last thing it returned (an object, or a
/// common prefix whose every object is skipped too) and the cursor of the
/// wharf page it came from (the contract's cursors are opaque, so a page
/// resumes at the start of that wharf page and skips what it returned).
///
/// As a `page_token`: `o<path>` or `p<prefix>`, then `\n<cursor>` when the
/// wharf page was not the first (paths hold no control character).
struct Token {
    last: String,
    last_is_prefix: bool,
    cursor: Option<String>,
}

impl Token {
    fn encode(&self) -> String {
        let kind = if self.last_is_prefix { 'p' } else { 'o' };
        match &self.cursor {
            Some(c) => format!("{kind}{}\n{c}", self.last),
            None => format!("{kind}{}", self.last),
        }
    }

    fn decode(s: &str) -> Result<Token> {
        let (head, cursor) = match s.split_once('\n') {
            Some((h, c)) => (h, Some(c.to_string())),
            None => (s, None),
        };
        let last_is_prefix = match head.chars().next() {
            Some('p') => true,
            Some('o') => false,
            _ => return Err(super::error::message(format!("not a page token of this store: {s:?}"))),
        };
        Ok(Token {
            last: head[1..].to_string(),
            last_is_prefix,
            cursor,
        })
    }

    /// Whether `path` was already returned (itself or under its prefix).
    fn covers(&self, path: &str) -> bool {
        path <= self.last.as_str()
            || (self.last_is_prefix
                && path
                    .strip_prefix(self.last.as_str())
                    .is_some_and(|rest| rest.starts_with('/')))
    }
}

/// One page of the objects whose paths start with `prefix` (a plain
/// string prefix), after `offset` (exclusive) and `token`; with
/// `delimiter`, paths with a `/` past the prefix become common prefixes.
/// At most `max` objects and prefixes; `None` for no limit.
pub(super) async fn page(
    adapter: &dyn Adapter,
    prefix: &str,
    delimiter: bool,
    offset: Option<&str>,
    max: Option<usize>,
    token: Option<&str>,
) -> Result<PaginatedListResult> {
    let max = max.unwrap_or(usize::MAX).max(1);
    let skip = token.map(Token::decode).transpose()?;
    let mut cursor = skip.as_ref().and_then(|t| t.cursor.clone());
    let list_max = adapter.capabilities().list_max_limit.max(1);
    // Without a delimiter a wharf page maps onto this page one to one.
    let limit = if delimiter {
        list_max
    } else {
        u32::try_from(max).unwrap_or(u32::MAX).min(list_max)
    };
    let mut out = ListResult {
        common_prefixes: Vec::new(),
        objects: Vec::new(),
        extensions: Default::default(),
    };
    let mut count = 0usize;
    // The last common prefix returned, as a string.
    let mut last_prefix: Option<String> = None;
    loop {
        let here = cursor.clone();
        let page = adapter
            .list(prefix, here.as_deref(), limit)
            .await
            .map_err(|e| to_os(e, prefix))?;
        let n = page.entries.len();
        for (i, entry) in page.entries.iter().enumerate() {
            let path = entry.path.as_str();
            if skip.as_ref().is_some_and(|t| t.covers(path)) || offset.is_some_and(|o| path <= o) {
                continue;
            }
            let rest = &path[prefix.len().min(path.len())..];
            let common = match rest.find('/') {
                Some(at) if delimiter => Some(&path[..prefix.len() + at]),
                _ => None,
            };
            let (last, last_is_prefix) = match common {
                Some(c) if last_prefix.as_deref() == Some(c) => continue,
                Some(c) => {
                    last_prefix = Some(c.to_string());
                    out.common_prefixes.push(Path::parse(c).map_err(generic)?);
                    (c, true)
                }
                None => {
                    out.objects.push(to_meta(entry)?);
                    (path, false)
                }
            };
            count += 1;
            if count == max {
                let at_end = i + 1 == n;
                let next = match (at_end, &page.next_cursor) {
                    // The last of the last wharf page: nothing follows.
                    (true, None) => None,
                    (true, Some(c)) => Some(Some(c.clone())),
                    (false, _) => Some(here.clone()),
                };
                let page_token = next.map(|cursor| {
                    Token {
                        last: last.to_string(),
                        last_is_prefix,
                        cursor,
                    }
                    .encode()
                });
                return Ok(PaginatedListResult {
                    result: out,
                    page_token,
                });
            }
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => {
                return Ok(PaginatedListResult {
                    result: out,
                    page_token: None,
                });
            }
        }
    }
}

#[async_trait]
impl PaginatedListStore for WharfStore {
    async fn list_paginated(&self, prefix: Option<&str>, opts: PaginatedListOptions) -> Result<PaginatedListResult> {
        let delimiter = match opts.delimiter.as_deref() {
            None => false,
            Some("/") => true,
            Some(d) => {
                return Err(object_store::Error::NotSupported {
                    source: format!("list delimiter {d:?}: only `/` separates wharf path segments").into(),
                });
            }
        };
        page(
            &*self.adapter,
            prefix.unwrap_or(""),
            delimiter,
            opts.offset.as_deref(),
            opts.max_keys,
            opts.page_token.as_deref(),
        )
        .await
    }
}
