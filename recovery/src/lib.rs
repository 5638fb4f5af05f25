//! mcstore-recovery: reading the log back — the on-media format, the scan, verification.
//!
//! `format` is the ONLY place the on-media layout lives (the engine encodes with it, the scanner
//! decodes with it; `docs/format.md` draws it). `pool` holds the writes that belong to the format
//! (superblocks, segment (re)initialisation, tail publication), each fence named by a `sites`
//! constant. `scan::recover` reads a pool back: a pure, bounded, panic-free read of untrusted bytes.
#![forbid(unsafe_code)]

pub mod error;
pub mod format;
pub mod limits;
pub mod pool;
pub mod replica;
pub mod scan;

pub mod sites;
#[cfg(test)]
mod testing;

pub use error::{Error, Result, UnsupportedReason};
pub use format::{
    FORMAT_VERSION, FormatError, Geometry, Lsn, MAGIC, RecordContext, RecordHeader, RecordKind,
    RecordRef, SegmentHeader, SegmentId, SegmentState, Superblock, Uuid,
};
pub use pool::CreateParams;
pub use scan::{
    Damage, DamageKind, EntryKey, IndexEntry, Progress, Recovered, RecoveryReport, Repairer,
    ScanOptions, SegmentInfo, SegmentStatus, recover,
};
