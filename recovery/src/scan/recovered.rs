//! What `recover` hands the engine: the superblock, the segments, the bulk-built index, the next
//! LSN and segment sequence, the report and the unrepaired damage.

use super::damage::Damage;
use super::index::{IndexEntry, WalkedEntries};
use super::report::RecoveryReport;
use crate::format::{Geometry, Lsn, SegmentId, SegmentState, Superblock};

/// What a segment turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentStatus {
    /// Never initialised (or torn while being initialised): free for use.
    Free,
    /// Initialised for this set, its tail verified.
    InUse,
    /// Header or tail damaged, foreign, misplaced or stale (see `Recovered::damage`).
    Damaged,
}

/// One segment as recovery found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Its position.
    pub id: SegmentId,
    /// What it is.
    pub status: SegmentStatus,
    /// Its sequence (0 when free or unreadable).
    pub seq: u64,
    /// Its header's state, when the header is valid.
    pub state: Option<SegmentState>,
    /// Committed bytes of its data area (0 unless in use).
    pub tail: u64,
    /// Records verified in it.
    pub records: u64,
    /// Of those, the newest version of their key (tombstones included).
    pub live_records: u64,
    /// Bytes of those live records.
    pub live_bytes: u64,
}

/// Everything the engine needs to open a pool.
#[derive(Clone, Debug)]
pub struct Recovered {
    /// The chosen superblock.
    pub superblock: Superblock,
    /// The pool's geometry.
    pub geometry: Geometry,
    /// Every segment, by id.
    pub segments: Vec<SegmentInfo>,
    /// The segment to append to: the highest-sequence in-use segment, if it has room for a record.
    pub open_segment: Option<SegmentId>,
    /// The index: sorted by key, newest version of each key, tombstones kept as `Delete`
    /// (empty when a full scan deferred it: see `walked`).
    pub entries: Vec<IndexEntry>,
    /// A full scan's entries unsorted, when [`super::ScanOptions::defer_index`] asked for them
    /// (`None` otherwise, and after a fast open).
    pub walked: Option<WalkedEntries>,
    /// The next LSN to issue (above every LSN found and the superblock's floor).
    pub next_lsn: Lsn,
    /// The next segment sequence to issue (above every sequence found or recorded).
    pub next_segment_seq: u64,
    /// The report.
    pub report: RecoveryReport,
    /// Unrepaired damage (the same list as `report.damage`); the engine applies its policy.
    pub damage: Vec<Damage>,
}
