//! Size strings on the command line: `4096`, `64K`, `64KiB`, `2M`, `1G`, `1GiB`, `1T`.
//!
//! Suffixes are binary multiples (K = 1024), case-insensitive, with an optional `B` or `iB`.
//! A malformed or overflowing size is an error naming the text, never a panic.

/// Parse a size in bytes (see the module docs).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let upper = trimmed.to_ascii_uppercase();
    let unitless = upper.strip_suffix("IB").or_else(|| upper.strip_suffix('B')).unwrap_or(&upper);
    let (number, shift) = match unitless.char_indices().last() {
        Some((at, 'K')) => (&unitless[..at], 10),
        Some((at, 'M')) => (&unitless[..at], 20),
        Some((at, 'G')) => (&unitless[..at], 30),
        Some((at, 'T')) => (&unitless[..at], 40),
        _ => (unitless, 0),
    };
    // `IB` without a unit letter before it ("5iB") is not a size.
    if upper.ends_with("IB") && shift == 0 {
        return Err(format!("not a size: {text:?} (examples: 4096, 64K, 2MiB, 1G)"));
    }
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("not a size: {text:?} (examples: 4096, 64K, 2MiB, 1G)"));
    }
    let value: u64 = number.parse().map_err(|_| format!("size too large: {text:?}"))?;
    value.checked_mul(1u64 << shift).ok_or_else(|| format!("size too large: {text:?}"))
}

/// `bytes` in the largest binary unit that keeps one decimal (`1.0 GiB`, `512 B`).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_suffixes_in_every_spelling() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("2mb"), Ok(2 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size(" 1GiB "), Ok(1 << 30));
        assert_eq!(parse_size("3T"), Ok(3 << 40));
        assert_eq!(parse_size("10B"), Ok(10));
    }

    #[test]
    fn malformed_sizes_are_errors() {
        for bad in ["", "G", "x", "1.5G", "-1", "1X", "5iB", "1 G B", "0x10"] {
            assert!(parse_size(bad).is_err(), "{bad:?} parsed");
        }
        assert!(parse_size("99999999999999T").unwrap_err().contains("too large"));
        assert!(parse_size("99999999999999999999").unwrap_err().contains("too large"));
    }

    #[test]
    fn human_bytes_picks_the_unit() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1 << 30), "1.0 GiB");
    }
}
