//! Sizes and durations as configuration writes them, parsed the same way
//! in `wharf.toml` (the host, crate `wharf`) and in an adapter's `config`
//! table (the guests, through `wharf-guest`).
//!
//! - A size is `<digits>[unit]`, unit `B`, `KiB`, `MiB` or `GiB` (none:
//!   bytes): `"256MiB"`, `"1048576"`. Zero is an error.
//! - A duration is `<digits>[unit]`, unit `ms`, `s`, `m`, `h` or `d` (none:
//!   seconds): `"30s"`, `"500ms"`, `"24h"`. Zero is allowed: callers that
//!   cannot use it say so.
//!
//! Spaces around the number and the unit are ignored. Errors are plain
//! text naming the value; the caller adds the key.
//!
//! ```
//! use std::time::Duration;
//! assert_eq!(wharf_units::parse_size("8MiB"), Ok(8 << 20));
//! assert_eq!(wharf_units::parse_duration("500ms"), Ok(Duration::from_millis(500)));
//! assert!(wharf_units::parse_size("8 MB").is_err());
//! ```

#![deny(missing_docs)]

use std::time::Duration;

/// Splits `" 8 MiB "` into its number and its unit (`"MiB"`, maybe empty).
fn number_and_unit(text: &str) -> Option<(u64, &str)> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    Some((digits.parse().ok()?, unit.trim()))
}

/// Parses a size in bytes: `<digits>[B|KiB|MiB|GiB]`, e.g. `"8MiB"`,
/// `"262144"`. Zero, overflow and unknown units are errors naming the text.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (n, unit) = number_and_unit(text).ok_or_else(|| format!("`{text}` is not a size like \"256MiB\""))?;
    let unit_bytes: u64 = match unit {
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

/// Parses a duration: `<digits>[ms|s|m|h|d]` (no unit: seconds), e.g.
/// `"30s"`, `"500ms"`, `"24h"`. Zero is allowed; overflow and unknown
/// units are errors naming the text.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (n, unit) =
        number_and_unit(text).ok_or_else(|| format!("`{text}` is not a duration like \"30s\" or \"24h\""))?;
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` in `{text}` (use ms, s, m, h or d)"
            ));
        }
    };
    n.checked_mul(unit_ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{text}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size(" 256 KiB "), Ok(256 << 10));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("3B"), Ok(3));
        for bad in [
            "",
            "0",
            "0MiB",
            "MiB",
            "8 MB",
            "12 parsecs",
            "-1",
            "99999999999999999999GiB",
            "17179869184GiB",
            "1.5MiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn size_errors_name_the_text() {
        assert_eq!(parse_size("0"), Err("`0` must be more than zero".into()));
        let e = parse_size("8 MB").unwrap_err();
        assert!(e.contains("`MB`") && e.contains("`8 MB`"), "{e}");
        assert!(parse_size("lots").unwrap_err().contains("`lots`"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(24 * 3600)));
        assert_eq!(parse_duration(" 2 d "), Ok(Duration::from_secs(2 * 86_400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "h", "soon", "1w", "1h30m", "-1", "99999999999999999999d", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn duration_errors_name_the_text() {
        let e = parse_duration("1w").unwrap_err();
        assert!(e.contains("`w`") && e.contains("`1w`"), "{e}");
        assert!(parse_duration("soon").unwrap_err().contains("`soon`"));
    }
}
