//! Keeps resolved secrets out of everything that leaves the host.
//!
//! The host knows every value it resolved from `${env:}` and `${file:}`. An
//! adapter may echo one back in an error message, its log or a URL (by
//! mistake or on purpose); each such text passes through [`Redactor::apply`]
//! before it reaches an error, a log line or the terminal. A secret is
//! matched whole, and so is each of its lines (a `${file:}` may hold many).
//! Values shorter than [`MIN_LEN`] bytes are not matched: they would blank
//! out ordinary words and hide nothing.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};

/// Shorter values are not redacted.
pub const MIN_LEN: usize = 6;
const MASK: &str = "[redacted]";

/// Credentials the host refreshes are remembered this many at a time (the
/// newest): a few generations, so a message about an older one is still
/// masked, without growing for as long as the process runs.
const ROTATING: usize = 32;

/// The secrets of one backend. Clones share them: credentials added later
/// (refreshed by the host) are masked by every clone.
#[derive(Clone, Default)]
pub struct Redactor {
    needles: Arc<Vec<String>>,
    rotating: Arc<RwLock<VecDeque<String>>>,
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
            rotating: Arc::default(),
        }
    }

    /// Masks these values too, in this redactor and all its clones: short-
    /// lived credentials the host obtained after the backend was built.
    pub(crate) fn add<S: AsRef<str>>(&self, secrets: &[S]) {
        let mut rotating = self.rotating.write().expect("redactor lock");
        for s in secrets {
            let s = s.as_ref();
            if s.len() >= MIN_LEN && !rotating.iter().any(|r| r == s) {
                rotating.push_back(s.to_string());
            }
        }
        while rotating.len() > ROTATING {
            rotating.pop_front();
        }
    }

    /// Whether there is anything to redact.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty() && self.rotating.read().expect("redactor lock").is_empty()
    }

    /// `text` with every secret replaced by `[redacted]`.
    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        for n in self.needles.iter() {
            if out.contains(n.as_str()) {
                out = out.replace(n.as_str(), MASK);
            }
        }
        for n in self.rotating.read().expect("redactor lock").iter() {
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

    #[test]
    fn added_values_reach_every_clone_and_stay_bounded() {
        let r = Redactor::new(&["static-secret"]);
        let clone = r.clone();
        r.add(&["ASIAREFRESHED1", "short"]);
        let out = clone.apply("keys static-secret ASIAREFRESHED1 short");
        assert_eq!(out, "keys [redacted] [redacted] short");
        for i in 0..100 {
            r.add(&[format!("token-number-{i:03}")]);
        }
        // The newest are masked; the oldest were let go.
        assert_eq!(clone.apply("token-number-099"), "[redacted]");
        assert_eq!(clone.apply("ASIAREFRESHED1"), "ASIAREFRESHED1");
    }
}
