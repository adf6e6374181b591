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

/// Parses `<digits>[unit]` with unit `B`, `KiB`, `MiB` or `GiB` (none means
/// bytes), e.g. `"8MiB"`, `"262144"`. Zero, overflow and unknown units are
/// errors naming the text.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size like \"8MiB\""))?;
    let unit_bytes: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit `{other}` in `{text}` (use B, KiB, MiB or GiB)"
            ));
        }
    };
    match n.checked_mul(unit_bytes) {
        Some(0) => Err(format!("`{text}` must be more than zero")),
        Some(v) => Ok(v),
        None => Err(format!("`{text}` is too large")),
    }
}

/// Parses `<digits>[s|m|h|d]` (no unit: seconds) into milliseconds, e.g.
/// `"24h"`, `"90s"`. Zero is allowed (callers give it a meaning); overflow
/// and unknown units are errors naming the text.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like \"24h\" or \"90s\""))?;
    let unit_ms: u64 = match unit.trim() {
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => return Err(format!("unknown unit `{other}` in `{text}` (use s, m, h or d)")),
    };
    n.checked_mul(unit_ms).ok_or_else(|| format!("`{text}` is too long"))
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

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size(" 256 KiB "), Ok(256 << 10));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("3B"), Ok(3));
        for bad in ["", "0", "MiB", "8 MB", "-1", "99999999999999999999GiB", "1.5MiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("90"), Ok(90_000));
        assert_eq!(parse_duration_ms("24h"), Ok(24 * 3_600_000));
        assert_eq!(parse_duration_ms(" 2 d "), Ok(2 * 86_400_000));
        assert_eq!(parse_duration_ms("0"), Ok(0));
        for bad in ["", "h", "1w", "-1", "99999999999999999999d", "1.5h"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }
}
