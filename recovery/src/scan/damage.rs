//! Damage found by recovery: what, where, and whether a repairer fixed it.
//!
//! INVARIANT: damage is never silently dropped: every bad byte range inside a committed range,
//! every bad tail word, stale or foreign segment, and every unreadable superblock slot that
//! matters becomes one `Damage`.

use std::fmt;

use crate::format::SegmentId;

/// The kind of damage.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DamageKind {
    /// Poison (a machine-check-safe read recorded a fault) in bytes the pool depends on.
    Media,
    /// A record inside a committed range does not decode or verify; the range runs to the next
    /// record that verifies (or the committed tail).
    BadRecord,
    /// A committed-tail word whose check fails, or that points past the segment's capacity.
    BadTail,
    /// A segment header that does not decode over a nonzero tail word.
    BadSegmentHeader,
    /// A valid segment header of another replica set.
    ForeignSegment,
    /// A valid segment header carrying another segment's id (a misdirected copy).
    MisplacedSegment,
    /// A segment header whose sequence was never issued (above the superblock's highest).
    StaleSegment,
    /// Two segments carrying the same sequence.
    DuplicateSequence,
    /// A superblock slot that could not be read (poison) or validated.
    SuperblockSlot,
    /// The medium is shorter than the segment count the superblock records (a truncated file).
    Truncated,
}

/// One damaged range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// What is wrong.
    pub kind: DamageKind,
    /// Pool offset of the damaged range.
    pub offset: u64,
    /// Its length in bytes (for a segment-level fault: the segment's committed or whole data).
    pub len: u64,
    /// The segment it lies in, if any.
    pub segment: Option<SegmentId>,
    /// Human-readable detail (the decoder's error, the sequences involved...).
    pub detail: String,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} at [{}, +{})", self.kind, self.offset, self.len)?;
        if let Some(segment) = self.segment {
            write!(f, " in segment {segment}")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}
