//! Contract paths ↔ artifact paths the MLflow server keeps unchanged.
//!
//! The server runs every artifact path through `validate_path_is_safe`,
//! which URL-decodes it until it stops changing (`a%20b` is stored as
//! `a b`), parses it as a URL (a trailing `?` or `;` vanishes, `x:` reads as
//! a scheme, a leading space is stripped) and refuses `#`; the file store
//! also refuses names starting with `.artifact.uploading.`. So those
//! characters are written as `%_XX` (the `_` keeps the server from decoding
//! it): `%`, `#`, `?`, `;` and `:` everywhere, a space or `.` only where it
//! starts such a segment. Every other path is stored exactly as given, which
//! is what other MLflow clients see.

/// Characters escaped wherever they appear.
const ALWAYS: &[u8] = b"%#?;:";
/// The file artifact store's reserved name prefix for uploads in progress.
const RESERVED: &str = ".artifact.uploading.";

/// The artifact path of one contract path segment.
fn escape_segment(seg: &str, out: &mut String) {
    for (i, c) in seg.char_indices() {
        let lead = i == 0 && (c == ' ' || (c == '.' && seg.starts_with(RESERVED)));
        if lead || (c.is_ascii() && ALWAYS.contains(&(c as u8))) {
            out.push_str(&format!("%_{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
}

/// The artifact path of a contract path (`/`-separated, already valid).
pub fn escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 8);
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        escape_segment(seg, &mut out);
    }
    out
}

/// The contract name of one listed artifact name, or `None` when the name
/// was not written through this mapping (another client stored a name that
/// no contract path maps to).
pub fn unescape_name(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while i < name.len() {
        if bytes[i] == b'%'
            && bytes.get(i + 1) == Some(&b'_')
            && let Some(hex) = name.get(i + 2..i + 4)
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v as char);
            i += 4;
            continue;
        }
        let c = name[i..].chars().next()?;
        out.push(c);
        i += c.len_utf8();
    }
    let mut again = String::new();
    escape_segment(&out, &mut again);
    (again == name).then_some(out)
}

/// Whether `text` is stored unchanged (a config prefix must be).
pub fn is_plain(text: &str) -> bool {
    escape(text) == text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_stay() {
        for p in [
            "a/b/c.bin",
            "with space/and more.bin",
            "ünïcödé/模型/μοντέλο.onnx",
            "x+y&z=.x",
        ] {
            assert_eq!(escape(p), p);
        }
    }

    #[test]
    fn round_trips() {
        for p in [
            "percent%20and+plus&amp;=.x",
            "a#b",
            "q?",
            "s;",
            "C:/x",
            " lead/ inner",
            ".artifact.uploading.x",
            "%_20",
            "100%",
        ] {
            let e = escape(p);
            assert!(!e.contains('#') && !e.contains('?') && !e.contains(';') && !e.contains(':'));
            let back: Vec<String> = e.split('/').map(|s| unescape_name(s).unwrap()).collect();
            assert_eq!(back.join("/"), p, "{e}");
        }
        assert_eq!(escape("percent%20x"), "percent%_2520x");
    }

    #[test]
    fn foreign_names_are_refused() {
        // Not produced by `escape`: a literal `%_41` or an unescaped `#`.
        assert_eq!(unescape_name("x%_41"), None);
        assert_eq!(unescape_name("a#b"), None);
        assert_eq!(unescape_name("plain.txt").as_deref(), Some("plain.txt"));
    }
}
