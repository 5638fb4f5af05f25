//! Sizes on the command line: parsed by `mcstore_server::parse_size` (`4096`, `64K`, `2MiB`,
//! `1G`: binary multiples; one parser for `mcstore` and `mcstore-server`) and shown in the
//! largest binary unit that keeps one decimal.

/// Parse a size in bytes: the service's parser, so `mcstore` and `mcstore-server` accept the
/// same sizes.
pub use mcstore_server::parse_size;

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
    fn human_bytes_picks_the_unit() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1 << 30), "1.0 GiB");
    }
}
