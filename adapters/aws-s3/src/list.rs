//! `list`: `ListObjectsV2` with `encoding-type=url`; the cursor is S3's
//! continuation token.

use crate::client::S3;
use wharf_guest::{Error, ObjectMeta, Page};
use wharf_guest_http::encode::uri_decode;
use wharf_guest_http::{time, xml};

impl S3 {
    /// One `ListObjectsV2` page.
    pub fn list_objects(&self, prefix: &str, cursor: Option<String>, limit: u32) -> Result<Page, Error> {
        let mut query = vec![
            ("list-type", "2".to_string()),
            ("prefix", self.key(prefix)),
            ("max-keys", limit.to_string()),
            ("encoding-type", "url".to_string()),
        ];
        if let Some(token) = cursor {
            query.push(("continuation-token", token));
        }
        let request = self.request("GET", None, &query, Vec::new(), &[]);
        let response = self.send(&request, &[], None)?;
        let what = response.what().to_string();
        let doc = response.text(16 << 20)?;
        let url_encoded = xml::text(&doc, "EncodingType").is_some_and(|e| e.eq_ignore_ascii_case("url"));
        let bad = |why: &str| Error::Backend(format!("{what}: malformed ListObjectsV2 answer: {why}"));
        let mut entries = Vec::new();
        for item in xml::elements(&doc, "Contents") {
            let raw = xml::text(item, "Key").ok_or_else(|| bad("an entry has no Key"))?;
            let key = if url_encoded {
                uri_decode(&raw, true).map_err(|e| bad(&e))?
            } else {
                raw
            };
            let path = key
                .strip_prefix(&self.cfg.prefix)
                .ok_or_else(|| bad(&format!("key `{key}` is outside prefix `{}`", self.cfg.prefix)))?
                .to_string();
            let size = xml::text(item, "Size")
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| bad("an entry has no Size"))?;
            entries.push(ObjectMeta {
                path,
                size,
                etag: xml::text(item, "ETag"),
                modified_ms: xml::text(item, "LastModified")
                    .and_then(|t| time::parse_rfc3339(&t))
                    .map(|ms| ms as u64),
            });
        }
        let truncated = xml::text(&doc, "IsTruncated").is_some_and(|t| t.trim() == "true");
        let next_cursor = if truncated {
            Some(
                xml::text(&doc, "NextContinuationToken")
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| bad("truncated without a NextContinuationToken"))?,
            )
        } else {
            None
        };
        Ok(Page { entries, next_cursor })
    }
}
