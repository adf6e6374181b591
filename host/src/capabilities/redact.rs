//! Keeps resolved secrets out of everything that leaves the host.
//!
//! The host knows every value it resolved from `${env:}` and `${file:}`. An
//! adapter may echo one back in an error message, its log or a URL (by
//! mistake or on purpose); each such text passes through [`Redactor::apply`]
//! before it reaches an error, a log line or the terminal. A secret is
//! matched whole, and so is each of its lines (a `${file:}` may hold many).
//! Values shorter than [`MIN_LEN`] bytes are not matched: they would blank
//! out ordinary words and hide nothing.

use std::sync::Arc;

/// Shorter values are not redacted.
pub const MIN_LEN: usize = 6;
const MASK: &str = "[redacted]";

/// The secrets of one backend.
#[derive(Clone, Default)]
pub struct Redactor {
    needles: Arc<Vec<String>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} values)", self.needles.len())
    }
}

impl Redactor {
    /// A redactor for these resolved values.
    pub fn new<S: AsRef<str>>(secrets: &[S]) -> Self {
        let mut needles: Vec<String> = Vec::new();
        for s in secrets {
            let s = s.as_ref();
            needles.push(s.to_string());
            needles.extend(s.lines().map(|l| l.trim().to_string()));
        }
        needles.retain(|n| n.len() >= MIN_LEN);
        // Longest first, so a secret is masked whole before its lines.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        Redactor {
            needles: Arc::new(needles),
        }
    }

    /// Whether there is anything to redact.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `text` with every secret replaced by `[redacted]`.
    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        for n in self.needles.iter() {
            if out.contains(n.as_str()) {
                out = out.replace(n.as_str(), MASK);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_values_and_their_lines() {
        let r = Redactor::new(&["root:$y$j9T$abc:19000:0\ndaemon:*:19000:0", "hunter2-secret", "abc"]);
        let msg = "cannot open `root:$y$j9T$abc:19000:0`; key hunter2-secret; short abc stays";
        let out = r.apply(msg);
        assert!(!out.contains("j9T") && !out.contains("hunter2"), "{out}");
        assert!(out.contains("short abc stays"), "{out}");
        assert_eq!(r.apply("nothing here"), "nothing here");
    }
}
