//! Just enough XML for the flat documents S3 and Azure answer with:
//! find elements by name, take their text, unescape entities. It does not
//! validate; a document missing what a caller needs yields `None`, which the
//! caller turns into an error naming the response.

/// The inner text of each `<tag>…</tag>` (or `<tag attr="…">…</tag>`) in
/// `doc`, in order. A self-closing `<tag/>` yields `""`. Elements of the same
/// name must not nest (true of every document this is used for).
pub fn elements<'a>(doc: &'a str, tag: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    let mut rest = doc;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        // `<Key>` must not match `<KeyCount>`.
        match after.as_bytes().first() {
            Some(b'>') | Some(b' ') | Some(b'/') | Some(b'\t') | Some(b'\n') | Some(b'\r') => {}
            _ => {
                rest = after;
                continue;
            }
        }
        let Some(end_of_open) = after.find('>') else { break };
        if after[..end_of_open].ends_with('/') {
            out.push("");
            rest = &after[end_of_open + 1..];
            continue;
        }
        let body = &after[end_of_open + 1..];
        let Some(j) = body.find(&close) else { break };
        out.push(&body[..j]);
        rest = &body[j + close.len()..];
    }
    out
}

/// The unescaped text of the first `<tag>` in `doc`.
pub fn text(doc: &str, tag: &str) -> Option<String> {
    elements(doc, tag).first().map(|s| unescape(s))
}

/// Replaces the five XML entities and numeric character references, and
/// unwraps CDATA sections.
pub fn unescape(s: &str) -> String {
    if !s.contains('&') && !s.contains("<![CDATA[") {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("<![CDATA[")
            && let Some(end) = r.find("]]>")
        {
            out.push_str(&r[..end]);
            rest = &r[end + 3..];
            continue;
        }
        if rest.starts_with('&')
            && let Some(end) = rest.find(';')
        {
            let entity = &rest[1..end];
            let ch = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            if let Some(ch) = ch {
                out.push(ch);
                rest = &rest[end + 1..];
                continue;
            }
        }
        let ch = rest.chars().next().unwrap_or_default();
        out.push(ch);
        rest = &rest[ch.len_utf8()..];
    }
    out
}

/// Escapes text for an element body.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_elements() {
        let doc = r#"<?xml version="1.0"?><ListBucketResult xmlns="x"><KeyCount>2</KeyCount>
            <Contents><Key>a&amp;b</Key><Size>3</Size></Contents>
            <Contents><Key>&#x263A; c</Key><Size>0</Size></Contents>
            <NextContinuationToken/><Marker attr="1">m</Marker></ListBucketResult>"#;
        let contents = elements(doc, "Contents");
        assert_eq!(contents.len(), 2);
        assert_eq!(text(contents[0], "Key").unwrap(), "a&b");
        assert_eq!(text(contents[1], "Key").unwrap(), "☺ c");
        assert_eq!(text(doc, "KeyCount").unwrap(), "2");
        assert_eq!(text(doc, "NextContinuationToken").unwrap(), "");
        assert_eq!(text(doc, "Marker").unwrap(), "m");
        assert_eq!(text(doc, "Missing"), None);
        assert_eq!(unescape("<![CDATA[a<b]]>&lt;"), "a<b<");
        assert_eq!(unescape("&bogus; &"), "&bogus; &");
        assert_eq!(escape("a<&>\"'"), "a&lt;&amp;&gt;&quot;&apos;");
        // Truncated documents give what is complete, never a panic.
        assert_eq!(elements("<Key>a</Key><Key>b", "Key"), vec!["a"]);
    }
}
