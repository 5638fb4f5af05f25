//! The on-media format: every byte mcstore persists is encoded and decoded here, by hand,
//! little-endian, with explicit widths and `const` size assertions (no `repr(C)` transmutes).
//!
//! INVARIANT: decoders treat their input as untrusted: they return `Err`, never panic, never
//! index out of bounds. `docs/format.md` draws every structure byte by byte.

pub mod checksum;
pub mod error;
pub mod features;
pub mod geometry;
pub mod ids;
pub mod record;
pub mod segment;
pub mod superblock;
pub mod tail;

mod bytes;

pub use error::FormatError;
pub use features::Features;
pub use geometry::{Geometry, SEGMENT_DATA_OFFSET, SEGMENT_HEADER_BYTES, SEGMENT_TAIL_OFFSET};
pub use ids::{Lsn, SegmentId, Uuid};
pub use record::{
    RECORD_HEADER_BYTES, RecordContext, RecordHeader, RecordKind, RecordRef, decode_header,
    decode_record, encode_record, encoded_len,
};
pub use segment::{SegmentHeader, SegmentState};
pub use superblock::{
    FORMAT_VERSION, MAGIC, MemberState, SUPERBLOCK_BYTES, SUPERBLOCK_SLOT_OFFSETS, Superblock,
};
pub use tail::{TailWords, decode_tail, encode_tail};
