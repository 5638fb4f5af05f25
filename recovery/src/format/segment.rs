//! Segment headers: one 64-byte cache line at the start of every segment.
//!
//! An all-zero header is a segment never initialised (free). A header is written only by
//! `pool::init_segment`, after the segment's tail word was cleared and fenced, so a torn header
//! always sits over an empty tail.

use super::bytes::{array16_at, put_u32, put_u64, u32_at, u64_at};
use super::checksum::hash64;
use super::error::FormatError;
use super::geometry::SEGMENT_HEADER_BYTES;
use super::ids::{SegmentId, Uuid};

/// Magic at the start of every initialised segment header.
pub const SEGMENT_MAGIC: [u8; 8] = *b"mcSEGMT1";

const LEN: usize = SEGMENT_HEADER_BYTES as usize;
const OFF_SET_UUID: usize = 8;
const OFF_ID: usize = 24;
const OFF_STATE: usize = 28;
const OFF_SEQ: usize = 32;
const OFF_CHECKSUM: usize = 56;
const _: () = assert!(OFF_CHECKSUM + 8 == LEN);

/// A segment's state as its header records it (fixed when the header is written).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SegmentState {
    /// Initialised for appending; its committed tail says how much is in use.
    Open,
    /// Written whole before its header (e.g. compaction output); appended to no more.
    Sealed,
}

impl SegmentState {
    fn code(self) -> u32 {
        match self {
            SegmentState::Open => 1,
            SegmentState::Sealed => 2,
        }
    }

    fn from_code(code: u32) -> Result<Self, FormatError> {
        match code {
            1 => Ok(SegmentState::Open),
            2 => Ok(SegmentState::Sealed),
            _ => Err(FormatError::InvalidField { field: "segment state", value: code.into() }),
        }
    }
}

/// A decoded segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The replica set the segment belongs to.
    pub set_uuid: Uuid,
    /// The segment's own position (a copy found elsewhere is misplaced).
    pub id: SegmentId,
    /// Its sequence: issued once, increasing over the pool's life (≥ 1).
    pub seq: u64,
    /// Its state.
    pub state: SegmentState,
}

impl SegmentHeader {
    /// The 64 bytes of this header, checksum included.
    pub fn encode(&self) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out[0..8].copy_from_slice(&SEGMENT_MAGIC);
        out[OFF_SET_UUID..OFF_SET_UUID + 16].copy_from_slice(&self.set_uuid.0);
        put_u32(&mut out, OFF_ID, self.id.0);
        put_u32(&mut out, OFF_STATE, self.state.code());
        put_u64(&mut out, OFF_SEQ, self.seq);
        let sum = hash64(&out[..OFF_CHECKSUM]);
        put_u64(&mut out, OFF_CHECKSUM, sum);
        out
    }

    /// Decode a header: `Ok(None)` for an all-zero (never initialised) line.
    pub fn decode(bytes: &[u8]) -> Result<Option<Self>, FormatError> {
        let Some(line) = bytes.get(..LEN) else {
            return Err(FormatError::Truncated {
                what: "segment header",
                needed: LEN as u64,
                got: bytes.len() as u64,
            });
        };
        if line.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        if line[0..8] != SEGMENT_MAGIC {
            return Err(FormatError::BadMagic { what: "segment header" });
        }
        if hash64(&line[..OFF_CHECKSUM]) != u64_at(line, OFF_CHECKSUM) {
            return Err(FormatError::BadChecksum { what: "segment header" });
        }
        let reserved = u64_at(line, 40) | u64_at(line, 48);
        if reserved != 0 {
            return Err(FormatError::InvalidField {
                field: "segment header reserved",
                value: reserved,
            });
        }
        let seq = u64_at(line, OFF_SEQ);
        if seq == 0 {
            return Err(FormatError::InvalidField { field: "segment sequence", value: 0 });
        }
        Ok(Some(SegmentHeader {
            set_uuid: Uuid(array16_at(line, OFF_SET_UUID)),
            id: SegmentId(u32_at(line, OFF_ID)),
            seq,
            state: SegmentState::from_code(u32_at(line, OFF_STATE))?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> SegmentHeader {
        SegmentHeader {
            set_uuid: Uuid([9; 16]),
            id: SegmentId(3),
            seq: 12,
            state: SegmentState::Open,
        }
    }

    #[test]
    fn round_trip_and_zero_is_free() {
        let h = header();
        assert_eq!(SegmentHeader::decode(&h.encode()), Ok(Some(h)));
        let sealed = SegmentHeader { state: SegmentState::Sealed, ..h };
        assert_eq!(SegmentHeader::decode(&sealed.encode()), Ok(Some(sealed)));
        assert_eq!(SegmentHeader::decode(&[0u8; 64]), Ok(None));
        assert!(SegmentHeader::decode(&[0u8; 63]).is_err());
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let bytes = header().encode();
        for bit in 0..LEN * 8 {
            let mut bad = bytes;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(SegmentHeader::decode(&bad).is_err(), "bit {bit}");
        }
    }
}
