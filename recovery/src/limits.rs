//! Limits of the format and the store, in one place.
//!
//! Key ≤ 64 KiB; a record (header + key + value, 8-padded) ≤ one segment's data capacity; a batch
//! ≤ one segment's data capacity (one tail store covers it). Segment sizes are powers of two.

use crate::format::{Geometry, RECORD_HEADER_BYTES};

/// Largest key in bytes.
pub const KEY_BYTES_MAX: usize = 64 * 1024;
/// Smallest segment (fuzz pools of ≤ 256 KiB hold three).
pub const SEGMENT_BYTES_MIN: u64 = 64 * 1024;
/// Largest segment (the tail word counts 8-byte units in 32 bits; 1 GiB leaves room).
pub const SEGMENT_BYTES_MAX: u64 = 1 << 30;
/// Default segment size.
pub const SEGMENT_BYTES_DEFAULT: u64 = 2 << 20;
/// Segment alignment cap: segments start aligned to min(segment size, this).
pub const SEGMENT_ALIGN_MAX: u64 = 2 << 20;
/// Bytes of the superblock area (slot A page 0, slot B page 1).
pub const SUPERBLOCK_AREA_BYTES: u64 = 8192;
/// Longest `created_by` string stored in a superblock.
pub const CREATED_BY_BYTES_MAX: usize = 64;

/// Most members a replica set may have (the member table holds this many entries).
pub const MEMBERS_MAX: usize = 16;
/// Most quarantined ranges the member table holds (beyond: the set refuses to quarantine more).
pub const QUARANTINE_MAX: usize = 150;
/// Bytes a resilver copies (and compares) per step, each under the set's gate held exclusively.
pub const RESILVER_CHUNK_BYTES: u64 = 1 << 20;

/// Largest value in bytes for a key of `key_len` bytes in geometry `g` (0 if the key alone
/// does not fit).
pub fn value_bytes_max(g: &Geometry, key_len: usize) -> u64 {
    (g.data_capacity() & !7)
        .saturating_sub(RECORD_HEADER_BYTES as u64)
        .saturating_sub(key_len as u64)
}

/// Largest batch (sum of its records' encoded lengths) in geometry `g`.
pub fn batch_bytes_max(g: &Geometry) -> u64 {
    g.data_capacity()
}
