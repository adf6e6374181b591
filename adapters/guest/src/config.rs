//! The backend's `config` table and the value syntaxes adapters share.
//!
//! Every problem is `invalid` and names the key, as the contract's `open`
//! asks.

use crate::Error;
use std::collections::BTreeMap;

/// A `config` table whose keys are all known to the adapter. A key given
/// twice keeps its last value.
#[derive(Clone)]
pub struct Table(BTreeMap<String, String>);

impl Table {
    /// Checks that every key of `config` is one of `known`.
    pub fn parse(config: Vec<(String, String)>, known: &[&str]) -> Result<Table, Error> {
        let mut values = BTreeMap::new();
        for (key, value) in config {
            if !known.contains(&key.as_str()) {
                return Err(Error::Invalid(format!(
                    "unknown config key `{key}` (known: {})",
                    known.join(", ")
                )));
            }
            values.insert(key, value);
        }
        Ok(Table(values))
    }

    /// Takes the value of `key`, if given.
    pub fn take(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    /// The value of `key`, if given (and not taken yet).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Whether `key` was given (and not taken yet).
    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Takes `key` as a size ([`parse_size`]).
    pub fn take_size(&mut self, key: &str) -> Result<Option<u64>, Error> {
        self.take(key)
            .map(|v| parse_size(&v).map_err(|e| Error::Invalid(format!("config key `{key}`: {e}"))))
            .transpose()
    }

    /// Takes `key` as a duration in milliseconds ([`parse_duration_ms`]).
    pub fn take_duration_ms(&mut self, key: &str) -> Result<Option<u64>, Error> {
        self.take(key)
            .map(|v| parse_duration_ms(&v).map_err(|e| Error::Invalid(format!("config key `{key}`: {e}"))))
            .transpose()
    }

    /// Takes `key` as a boolean ([`parse_bool`]).
    pub fn take_bool(&mut self, key: &str) -> Result<Option<bool>, Error> {
        self.take(key).map(|v| parse_bool(key, &v)).transpose()
    }
}

impl std::fmt::Debug for Table {
    /// Keys only: values may be secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// `true` or `false` (surrounding spaces ignored) as the value of `key`.
pub fn parse_bool(key: &str, value: &str) -> Result<bool, Error> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(Error::Invalid(format!(
            "config key `{key}`: `{other}` is not `true` or `false`"
        ))),
    }
}

pub use wharf_units::parse_size;

/// A duration ([`wharf_units::parse_duration`]: `<digits>[ms|s|m|h|d]`, no
/// unit meaning seconds) in milliseconds, e.g. `"24h"`, `"90s"`. Zero is
/// allowed (callers give it a meaning); overflow and unknown units are
/// errors naming the text.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let d = wharf_units::parse_duration(text)?;
    u64::try_from(d.as_millis()).map_err(|_| format!("`{text}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn unknown_keys_are_invalid_and_name_the_known_ones() {
        let err = Table::parse(pairs(&[("root", "/x"), ("rot", "/y")]), &["root", "mode"]).unwrap_err();
        assert!(
            matches!(&err, Error::Invalid(m) if m == "unknown config key `rot` (known: root, mode)"),
            "{err:?}"
        );
    }

    #[test]
    fn values_are_taken_once_and_the_last_wins() {
        let mut t = Table::parse(pairs(&[("a", "1"), ("a", "2"), ("b", "true")]), &["a", "b", "c"]).unwrap();
        assert!(t.contains("a"));
        assert_eq!(t.take("a").as_deref(), Some("2"));
        assert_eq!(t.take("a"), None);
        assert_eq!(t.take_bool("b").unwrap(), Some(true));
        assert_eq!(t.take_size("c").unwrap(), None);
    }

    #[test]
    fn typed_values_name_the_key() {
        let mut t = Table::parse(pairs(&[("s", "8 MB"), ("d", "1w"), ("b", "yes")]), &["s", "d", "b"]).unwrap();
        assert!(matches!(t.take_size("s"), Err(Error::Invalid(m)) if m.starts_with("config key `s`: ")));
        assert!(matches!(t.take_duration_ms("d"), Err(Error::Invalid(m)) if m.starts_with("config key `d`: ")));
        assert!(matches!(t.take_bool("b"), Err(Error::Invalid(m)) if m.contains("`b`") && m.contains("`yes`")));
    }

    /// The grammar's cases are in `wharf-units`; here, that the table's
    /// durations are milliseconds and its sizes bytes.
    #[test]
    fn durations_are_milliseconds_and_sizes_bytes() {
        assert_eq!(parse_duration_ms("90"), Ok(90_000));
        assert_eq!(parse_duration_ms("24h"), Ok(24 * 3_600_000));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("0"), Ok(0));
        assert!(parse_duration_ms("1w").is_err());
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert!(parse_size("0").is_err());
    }
}
