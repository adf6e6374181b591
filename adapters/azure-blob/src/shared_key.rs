//! Shared Key authorization (version 2009-09-19 and later): an HMAC-SHA256
//! over the request's StringToSign, sent as
//! `Authorization: SharedKey <account>:<signature>`.

use wharf_guest_http::encode::{base64, hmac_sha256};

/// The standard headers StringToSign lists, in its order, after the verb.
const SIGNED_HEADERS: [&str; 11] = [
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
];

/// What Shared Key signs of one request.
pub struct Signable<'a> {
    /// `GET`, `PUT`, ...
    pub method: &'a str,
    /// The storage account name.
    pub account: &'a str,
    /// The URL path exactly as sent (percent-encoded, with any base path:
    /// Azurite's `/devstoreaccount1/container/blob`).
    pub encoded_path: &'a str,
    /// Query parameters, not encoded.
    pub query: &'a [(&'a str, String)],
    /// Header names (lower case) and values.
    pub headers: &'a [(String, String)],
    /// Length of the body; the client sends it as `Content-Length`.
    pub content_length: usize,
}

/// The StringToSign: verb, the standard headers (`Content-Length` empty when
/// zero), the canonicalized `x-ms-` headers and the canonicalized resource.
pub fn string_to_sign(s: &Signable) -> String {
    let mut out = String::from(s.method);
    for name in SIGNED_HEADERS {
        out.push('\n');
        if name == "content-length" {
            if s.content_length > 0 {
                out.push_str(&s.content_length.to_string());
            }
        } else if let Some((_, value)) = s.headers.iter().find(|(k, _)| k == name) {
            out.push_str(value);
        }
    }
    out.push('\n');
    out.push_str(&canonical_headers(s.headers));
    out.push_str(&canonical_resource(s));
    out
}

/// `x-ms-` headers, sorted by name, `name:value\n` each.
fn canonical_headers(headers: &[(String, String)]) -> String {
    let mut ms: Vec<(&str, String)> = headers
        .iter()
        .filter(|(k, _)| k.starts_with("x-ms-"))
        .map(|(k, v)| (k.as_str(), v.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect();
    ms.sort();
    ms.iter().map(|(k, v)| format!("{k}:{v}\n")).collect()
}

/// `/<account><encoded path>`, then `\n<name>:<value>` per query parameter,
/// names lower-cased and sorted, values as they are (not encoded).
fn canonical_resource(s: &Signable) -> String {
    let mut out = format!("/{}{}", s.account, s.encoded_path);
    let mut query: Vec<(String, &str)> = s
        .query
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
        .collect();
    query.sort();
    for (k, v) in query {
        out.push_str(&format!("\n{k}:{v}"));
    }
    out
}

/// The `Authorization` header value.
pub fn authorization(account: &str, key: &[u8], string_to_sign: &str) -> String {
    let signature = base64(&hmac_sha256(key, string_to_sign.as_bytes()));
    format!("SharedKey {account}:{signature}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn put_block_on_azurite() {
        let headers = h(&[
            ("x-ms-version", "2021-08-06"),
            ("if-match", "\"0x1\""),
            ("x-ms-date", "Fri, 27 Nov 2026 01:30:00 GMT"),
        ]);
        let query = [("comp", "block".to_string()), ("blockid", "YWJj+/==".to_string())];
        let s = Signable {
            method: "PUT",
            account: "devstoreaccount1",
            encoded_path: "/devstoreaccount1/models/a%20b/c.bin",
            query: &query,
            headers: &headers,
            content_length: 5,
        };
        assert_eq!(
            string_to_sign(&s),
            "PUT\n\n\n5\n\n\n\n\n\"0x1\"\n\n\n\n\
             x-ms-date:Fri, 27 Nov 2026 01:30:00 GMT\nx-ms-version:2021-08-06\n\
             /devstoreaccount1/devstoreaccount1/models/a%20b/c.bin\nblockid:YWJj+/==\ncomp:block"
        );
    }

    #[test]
    fn empty_body_and_range() {
        let headers = h(&[("range", "bytes=0-1"), ("x-ms-range", "bytes=0-1")]);
        let s = Signable {
            method: "GET",
            account: "acct",
            encoded_path: "/c/b",
            query: &[],
            headers: &headers,
            content_length: 0,
        };
        assert_eq!(
            string_to_sign(&s),
            "GET\n\n\n\n\n\n\n\n\n\n\nbytes=0-1\nx-ms-range:bytes=0-1\n/acct/c/b"
        );
    }

    #[test]
    fn signature() {
        // base64(HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog")).
        assert_eq!(
            authorization("acct", b"key", "The quick brown fox jumps over the lazy dog"),
            "SharedKey acct:97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg="
        );
    }
}
