//! The value types of the service's command-line flags, shared by the `mcstore-server` binary
//! and `mcstore serve` so both accept the same syntax: `--durability` ([`DurabilityArg`]) and
//! sizes ([`parse_size`]: `4096`, `64K`, `64KiB`, `2M`, `1G`, `1GiB`, `1T`).
//!
//! INVARIANT: size suffixes are binary multiples (K = 1024), case-insensitive, with an optional
//! `B` or `iB`; a malformed or overflowing size is an error naming the text, never a panic.

use mcstore_engine::Durability;

/// `--durability`: when a write is durable relative to its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DurabilityArg {
    /// Acknowledged = durable.
    Immediate,
    /// Durable within the flush interval.
    Eventual,
    /// Durable at WAITAOF, close, or a later immediate write.
    None,
}

impl From<DurabilityArg> for Durability {
    fn from(arg: DurabilityArg) -> Self {
        match arg {
            DurabilityArg::Immediate => Durability::Immediate,
            DurabilityArg::Eventual => Durability::Eventual,
            DurabilityArg::None => Durability::None,
        }
    }
}

/// Parse a size in bytes (see the module docs); the error names the text.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let upper = text.trim().to_ascii_uppercase();
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

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    #[test]
    fn binary_suffixes_in_every_spelling() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("1k"), Ok(1024));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("2mb"), Ok(2 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size(" 1GiB "), Ok(1 << 30));
        assert_eq!(parse_size("3T"), Ok(3 << 40));
        assert_eq!(parse_size("10B"), Ok(10));
    }

    #[test]
    fn malformed_sizes_are_errors() {
        for bad in ["", "G", "x", "1.5G", "-1", "1X", "5iB", "1 G B", "1 G", "0x10"] {
            assert!(parse_size(bad).is_err(), "{bad:?} parsed");
        }
        assert!(parse_size("99999999999999T").unwrap_err().contains("too large"));
        assert!(parse_size("99999999999999999999").unwrap_err().contains("too large"));
    }

    #[test]
    fn durability_names_map_to_the_engine() {
        let parse = |name: &str| DurabilityArg::from_str(name, true).map(Durability::from);
        assert_eq!(parse("immediate"), Ok(Durability::Immediate));
        assert_eq!(parse("Eventual"), Ok(Durability::Eventual));
        assert_eq!(parse("none"), Ok(Durability::None));
        assert!(parse("always").is_err());
    }
}
