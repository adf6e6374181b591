//! Object paths, validated once at the edge so no adapter sees `..`.

use crate::error::{Error, Result};
use std::fmt;

/// The longest path the contract allows, in bytes.
pub const MAX_PATH_LEN: usize = 1024;

/// A validated object path: `/`-separated, relative, no empty, `.` or `..`
/// segment, no control character, at most [`MAX_PATH_LEN`] bytes.
///
/// ```
/// use wharf::ObjectPath;
/// assert!(ObjectPath::parse("models/detector/v1/model.onnx").is_ok());
/// assert!(ObjectPath::parse("../etc/passwd").is_err());
/// assert!(ObjectPath::parse("/abs").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectPath(String);

impl ObjectPath {
    /// Validates `s` as an object path.
    pub fn parse(s: &str) -> Result<Self> {
        let why = if s.is_empty() {
            Some("is empty")
        } else if s.len() > MAX_PATH_LEN {
            Some("is longer than 1024 bytes")
        } else if s.starts_with('/') {
            Some("is absolute (starts with `/`)")
        } else if s.ends_with('/') {
            Some("ends with `/`")
        } else if s.contains('\0') {
            Some("contains a NUL byte")
        } else if s.chars().any(char::is_control) {
            Some("contains a control character")
        } else if s.split('/').any(|seg| seg == "..") {
            Some("contains a `..` segment")
        } else if s.split('/').any(|seg| seg.is_empty() || seg == ".") {
            Some("contains an empty or `.` segment")
        } else {
            None
        };
        match why {
            Some(why) => Err(Error::invalid(format!("object path {s:?} {why}"))),
            None => Ok(ObjectPath(s.to_string())),
        }
    }

    /// The path as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `self/child`, validated.
    pub fn join(&self, child: &str) -> Result<Self> {
        ObjectPath::parse(&format!("{}/{child}", self.0))
    }
}

impl fmt::Display for ObjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ObjectPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Validates a listing prefix: empty, or a path prefix with no `..` segment,
/// no leading `/` and no control character.
pub(crate) fn check_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Ok(());
    }
    if prefix.starts_with('/')
        || prefix.chars().any(char::is_control)
        || prefix.split('/').any(|seg| seg == ".." || seg == ".")
        || prefix.len() > MAX_PATH_LEN
    {
        return Err(Error::invalid(format!(
            "list prefix {prefix:?} is not a valid path prefix"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_escapes_and_garbage() {
        for bad in ["", "/a", "a/", "a//b", "./a", "a/./b", "..", "a/../b", "a\0b", "a\nb"] {
            assert!(ObjectPath::parse(bad).is_err(), "{bad:?} must be rejected");
        }
        assert!(ObjectPath::parse(&"x".repeat(1025)).is_err());
    }

    #[test]
    fn accepts_unicode_and_spaces() {
        for good in ["a", "models/ü ñ/模型 v1.onnx", "a..b/c.d", ".hidden/x"] {
            assert_eq!(ObjectPath::parse(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn prefixes() {
        assert!(check_prefix("").is_ok());
        assert!(check_prefix("models/a").is_ok());
        assert!(check_prefix("models/").is_ok());
        assert!(check_prefix("../").is_err());
        assert!(check_prefix("/x").is_err());
    }
}
