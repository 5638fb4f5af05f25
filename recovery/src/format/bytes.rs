//! Little-endian field access on byte slices for the encoders and decoders of this module.
//!
//! Readers take a slice the caller has already length-checked against a `const` layout size;
//! they still return 0 rather than panic if a caller got that wrong (untrusted input rule).

/// The little-endian `u32` at `at`, or 0 if the slice is too short.
pub(crate) fn u32_at(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at.saturating_add(4))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_le_bytes)
}

/// The little-endian `u64` at `at`, or 0 if the slice is too short.
pub(crate) fn u64_at(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at.saturating_add(8))
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_le_bytes)
}

/// The 16 bytes at `at`, or zeros if the slice is too short.
pub(crate) fn array16_at(bytes: &[u8], at: usize) -> [u8; 16] {
    bytes
        .get(at..at.saturating_add(16))
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .unwrap_or([0; 16])
}

/// Write `value` little-endian at `at` of a buffer the caller sized by a `const` layout.
pub(crate) fn put_u32(out: &mut [u8], at: usize, value: u32) {
    out[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

/// Write `value` little-endian at `at` of a buffer the caller sized by a `const` layout.
pub(crate) fn put_u64(out: &mut [u8], at: usize, value: u64) {
    out[at..at + 8].copy_from_slice(&value.to_le_bytes());
}
