//! `list`: a List Blobs request, and its answer (`EnumerationResults`) read
//! into a page.

use crate::client::{Azure, LIST_MAX};
use wharf_guest::{Error, ObjectMeta, Page};
use wharf_guest_http::encode::uri_decode;
use wharf_guest_http::{time, xml};

/// The page of `doc`, with `prefix` (the configured blob-name prefix)
/// taken off every name. The cursor is Azure's `NextMarker`.
pub fn parse(doc: &str, prefix: &str) -> Result<Page, String> {
    let mut entries = Vec::new();
    for item in xml::elements(doc, "Blob") {
        let name = blob_name(item)?;
        let path = name
            .strip_prefix(prefix)
            .ok_or_else(|| format!("blob `{name}` is outside prefix `{prefix}`"))?
            .to_string();
        let size = xml::text(item, "Content-Length")
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| format!("blob `{name}` has no Content-Length"))?;
        entries.push(ObjectMeta {
            path,
            size,
            etag: xml::text(item, "Etag").map(|e| quoted_etag(&e)),
            modified_ms: xml::text(item, "Last-Modified")
                .and_then(|t| time::parse_http_date(&t))
                .map(|ms| ms as u64),
        });
    }
    let next_cursor = xml::text(doc, "NextMarker").filter(|m| !m.is_empty());
    Ok(Page { entries, next_cursor })
}

/// A blob's name; Azure percent-encodes names that XML cannot carry and
/// says so with `Encoded="true"`.
fn blob_name(item: &str) -> Result<String, String> {
    let name = xml::text(item, "Name").ok_or("a blob has no Name")?;
    if item.contains("<Name Encoded=\"true\">") {
        uri_decode(&name, false)
    } else {
        Ok(name)
    }
}

/// Etags in the quoted form the `ETag` header has (`"0x8D…"`): List Blobs
/// writes them bare, and the same blob must show the same etag everywhere.
pub fn quoted_etag(etag: &str) -> String {
    let etag = etag.trim();
    if etag.starts_with('"') || etag.starts_with("W/") {
        etag.to_string()
    } else {
        format!("\"{etag}\"")
    }
}

impl Azure {
    /// One List Blobs page of the blobs whose path starts with `prefix`.
    pub fn list(&self, prefix: &str, cursor: Option<String>, limit: u32) -> Result<Page, Error> {
        let mut query = vec![
            ("restype", "container".to_string()),
            ("comp", "list".to_string()),
            ("prefix", self.blob_name(prefix)),
            ("maxresults", limit.clamp(1, LIST_MAX).to_string()),
        ];
        if let Some(marker) = cursor {
            query.push(("marker", marker));
        }
        let request = self.request("GET", None, &query, Vec::new(), 0);
        let response = self.send(&request, &[], None)?;
        let what = response.what().to_string();
        let doc = response.text(32 << 20)?;
        parse(&doc, &self.config().prefix)
            .map_err(|why| Error::Backend(format!("{what}: malformed List Blobs answer: {why}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="http://127.0.0.1:10000/devstoreaccount1" ContainerName="c">
<Prefix>p/a</Prefix><MaxResults>2</MaxResults><Blobs>
<Blob><Name>p/a b&amp;c</Name><Properties><Creation-Time>Fri, 27 Nov 2026 01:30:00 GMT</Creation-Time>
<Last-Modified>Fri, 27 Nov 2026 01:30:00 GMT</Last-Modified><Etag>0x8DB1</Etag>
<Content-Length>12</Content-Length><BlobType>BlockBlob</BlobType></Properties></Blob>
<Blob><Name Encoded="true">p/a%01x</Name><Properties><Etag>"0x8DB2"</Etag>
<Content-Length>0</Content-Length></Properties></Blob>
</Blobs><NextMarker>2!84!cC9hJTAxeA--</NextMarker></EnumerationResults>"#;

    #[test]
    fn parses_a_page() {
        let page = parse(DOC, "p/").unwrap();
        assert_eq!(page.entries.len(), 2);
        let a = &page.entries[0];
        assert_eq!((a.path.as_str(), a.size), ("a b&c", 12));
        assert_eq!(a.etag.as_deref(), Some("\"0x8DB1\""));
        assert_eq!(a.modified_ms, Some(1_795_743_000_000));
        let b = &page.entries[1];
        assert_eq!(
            (b.path.as_str(), b.size, b.etag.as_deref()),
            ("a\u{1}x", 0, Some("\"0x8DB2\""))
        );
        assert_eq!(page.next_cursor.as_deref(), Some("2!84!cC9hJTAxeA--"));
    }

    #[test]
    fn last_page_and_bad_answers() {
        let last = parse("<EnumerationResults><Blobs /><NextMarker /></EnumerationResults>", "").unwrap();
        assert!(last.entries.is_empty() && last.next_cursor.is_none());
        assert!(parse(DOC, "q/").is_err());
        assert!(parse("<Blobs><Blob><Name>x</Name></Blob></Blobs>", "").is_err());
    }
}
