//! Sizes as adapters' config values write them: `"8MiB"`, `"262144"`.

/// Parses `<digits>[unit]` with unit `B`, `KiB`, `MiB` or `GiB` (none means
/// bytes). Zero, overflow and unknown units are errors naming the text.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
