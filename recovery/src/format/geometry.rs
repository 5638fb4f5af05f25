//! Pool geometry: where the superblocks, segments, segment headers, tail words and data lie.
//!
//! Slot A is page 0, slot B page 1. Segments are a power of two in size (64 KiB ..= 1 GiB) and
//! start at `align_up(8 KiB, min(segment size, 2 MiB))`. Each segment: header line [0, 64),
//! committed-tail line [64, 128) (the word at 64, alone in its cache line), data from 128.

use super::error::FormatError;
use super::ids::SegmentId;
use crate::limits::{
    SEGMENT_ALIGN_MAX, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN, SUPERBLOCK_AREA_BYTES,
};

/// Bytes of the segment header (one cache line).
pub const SEGMENT_HEADER_BYTES: u64 = 64;
/// Offset of the committed-tail word inside a segment (its own cache line).
pub const SEGMENT_TAIL_OFFSET: u64 = 64;
/// Offset of the first record inside a segment.
pub const SEGMENT_DATA_OFFSET: u64 = 128;

/// Where things are in a pool of a given segment size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Size of every segment in bytes (a power of two).
    pub segment_size_bytes: u64,
    /// Pool offset of segment 0.
    pub segments_start: u64,
}

impl Geometry {
    /// The geometry for `segment_size_bytes`, checked to hold at least one segment in `pool_len`.
    pub fn for_pool(pool_len: u64, segment_size_bytes: u64) -> Result<Self, FormatError> {
        let g = Self::for_segment_size(segment_size_bytes)?;
        if pool_len < g.segments_start.saturating_add(segment_size_bytes) {
            return Err(FormatError::BadGeometry {
                reason: format!(
                    "pool of {pool_len} bytes holds no segment of {segment_size_bytes} bytes \
                     (segments start at {})",
                    g.segments_start
                ),
            });
        }
        Ok(g)
    }

    /// The geometry for `segment_size_bytes`, independent of the pool's length.
    pub fn for_segment_size(segment_size_bytes: u64) -> Result<Self, FormatError> {
        if !segment_size_bytes.is_power_of_two()
            || !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&segment_size_bytes)
        {
            return Err(FormatError::BadGeometry {
                reason: format!(
                    "segment size {segment_size_bytes} is not a power of two in \
                     [{SEGMENT_BYTES_MIN}, {SEGMENT_BYTES_MAX}]"
                ),
            });
        }
        let align = segment_size_bytes.min(SEGMENT_ALIGN_MAX);
        let segments_start = SUPERBLOCK_AREA_BYTES.div_ceil(align) * align;
        Ok(Self { segment_size_bytes, segments_start })
    }

    /// Whole segments that fit in a pool of `pool_len` bytes.
    pub fn segment_count(&self, pool_len: u64) -> u32 {
        let count = pool_len.saturating_sub(self.segments_start) / self.segment_size_bytes;
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// Pool offset of segment `id` (its header).
    pub fn segment_offset(&self, id: SegmentId) -> u64 {
        self.segments_start + u64::from(id.0) * self.segment_size_bytes
    }

    /// Pool offset of segment `id`'s committed-tail word.
    pub fn tail_offset(&self, id: SegmentId) -> u64 {
        self.segment_offset(id) + SEGMENT_TAIL_OFFSET
    }

    /// Pool offset of the first record of segment `id`.
    pub fn data_start(&self, id: SegmentId) -> u64 {
        self.segment_offset(id) + SEGMENT_DATA_OFFSET
    }

    /// Record bytes per segment.
    pub fn data_capacity(&self) -> u64 {
        self.segment_size_bytes - SEGMENT_DATA_OFFSET
    }

    /// The committed tail carried by a segment's tail `word`: verified against the segment's
    /// sequence and the set uuid ([`super::tail::decode_tail`]) and within [`Self::data_capacity`].
    /// Every reader of a tail word decodes it here, so none trusts a tail past the segment.
    pub fn committed_tail(
        &self,
        word: u64,
        segment_seq: u64,
        set_uuid: &super::ids::Uuid,
    ) -> Result<u64, FormatError> {
        let tail = super::tail::decode_tail(word, segment_seq, set_uuid)?;
        if tail > self.data_capacity() {
            return Err(FormatError::InvalidField { field: "committed tail", value: tail });
        }
        Ok(tail)
    }

    /// The segment containing pool offset `offset`, if it lies at or after segment 0.
    pub fn segment_of(&self, offset: u64) -> Option<SegmentId> {
        let rel = offset.checked_sub(self.segments_start)?;
        u32::try_from(rel / self.segment_size_bytes).ok().map(SegmentId)
    }

    /// Smallest pool holding `segments` segments.
    pub fn pool_len_for(&self, segments: u32) -> u64 {
        self.segments_start + u64::from(segments) * self.segment_size_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_tail_verifies_the_word_and_refuses_a_tail_past_the_segment() {
        let g = Geometry::for_segment_size(64 << 10).unwrap();
        let uuid = super::super::ids::Uuid([7; 16]);
        let full = g.data_capacity();
        let word = super::super::tail::encode_tail(full, 3, &uuid);
        assert_eq!(g.committed_tail(word, 3, &uuid), Ok(full));
        assert!(g.committed_tail(word, 4, &uuid).is_err(), "another sequence");
        // A word that verifies but claims more than the segment holds is damage, not a tail.
        let past = super::super::tail::encode_tail(full + 8, 3, &uuid);
        assert_eq!(
            g.committed_tail(past, 3, &uuid),
            Err(FormatError::InvalidField { field: "committed tail", value: full + 8 })
        );
        assert_eq!(g.committed_tail(0, 3, &uuid), Ok(0));
    }

    #[test]
    fn default_geometry_is_2mib_aligned() {
        let g = Geometry::for_pool(64 << 20, 2 << 20).unwrap();
        assert_eq!(g.segments_start, 2 << 20);
        assert_eq!(g.segment_count(64 << 20), 31);
        assert_eq!(g.segment_offset(SegmentId(1)), 4 << 20);
        assert_eq!(g.data_start(SegmentId(0)), (2 << 20) + 128);
        assert_eq!(g.segment_of((4 << 20) + 5), Some(SegmentId(1)));
        assert_eq!(g.segment_of(4096), None);
    }

    #[test]
    fn small_segments_for_fuzz_pools() {
        let g = Geometry::for_pool(256 << 10, 64 << 10).unwrap();
        assert_eq!(g.segments_start, 64 << 10);
        assert_eq!(g.segment_count(256 << 10), 3);
        let g = Geometry::for_pool(1 << 30, 8 << 20).unwrap();
        assert_eq!(g.segments_start, 2 << 20);
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert!(Geometry::for_pool(1 << 30, 3 << 20).is_err());
        assert!(Geometry::for_pool(1 << 30, 32 << 10).is_err());
        assert!(Geometry::for_pool(100 << 10, 64 << 10).is_err());
        assert!(Geometry::for_segment_size(0).is_err());
        assert!(Geometry::for_segment_size(u64::MAX).is_err());
    }
}
