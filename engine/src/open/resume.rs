//! Resuming the log on a writable open: where the writer starts (`writer_start`: the segment to
//! append to, the free segments), then `resume_writing` — poisoned superblock slots rewritten,
//! the adopted segment metadata flushed, growth recorded, the pool marked in use, the index
//! snapshot removed.
//!
//! INVARIANT: a writable open marks the pool in use (clean-shutdown flag cleared) before any write
//! is accepted, so a crash from then on is seen as an unclean shutdown.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use mcstore_pmem::Medium;
use mcstore_recovery::format::{Geometry, Lsn, SegmentId, Superblock};
use mcstore_recovery::scan::{self, RecoveryReport, SegmentStatus};
use mcstore_recovery::{SegmentInfo, pool};

use crate::error::{Error, Result};
use crate::latch::Latch;
use crate::writer::{LogWriter, OpenSegment, WriterStart};

/// What the writer starts from: recovery's superblock, geometry and next LSN, the segment to
/// append to (`open_segment`, if recovery left one) and the free segments.
pub(super) fn writer_start(
    superblock: Superblock,
    geometry: Geometry,
    segments: &[SegmentInfo],
    open_segment: Option<SegmentId>,
    next_lsn: Lsn,
    max_len: u64,
) -> WriterStart {
    let open = open_segment
        .and_then(|id| segments.iter().find(|s| s.id == id))
        .map(|s| OpenSegment::new(s.id, s.seq, &superblock.set_uuid, s.tail));
    // Free: never used, or reclaimed by compaction (a header over an empty tail) unless it
    // is the segment to append to.
    let reclaimed = |s: &mcstore_recovery::SegmentInfo| {
        s.status == SegmentStatus::InUse && s.tail == 0 && Some(s.id) != open_segment
    };
    let free: BTreeSet<u32> = segments
        .iter()
        .filter(|s| s.status == SegmentStatus::Free || reclaimed(s))
        .map(|s| s.id.0)
        .collect();
    WriterStart { superblock, geometry, open, free, next_lsn: next_lsn.0, max_len }
}

/// Make what recovery adopted durable and start the log writer from `start`: rewrite the
/// poisoned superblock slots a salvage found (`superblock_poison`; `report` is what a failure
/// returns), flush the in-use segments' metadata, record growth, mark the pool in use, and
/// remove the index snapshot beside `path`.
pub(super) fn resume_writing(
    medium: &Arc<dyn Medium>,
    latch: &Arc<Latch>,
    start: WriterStart,
    segments: &[SegmentInfo],
    superblock_poison: &[(u64, u64)],
    report: &RecoveryReport,
    path: Option<&Path>,
) -> Result<LogWriter> {
    let geometry = start.geometry;
    // PERSIST: headers and tails recovery read may be visible but never flushed (a flush
    // failed earlier in this process); flushed here, durable at the next fence (growth's or
    // the in-use mark's below), before any record is appended over them.
    let in_use = segments.iter().filter(|s| s.status == SegmentStatus::InUse).map(|s| s.id);
    // A poisoned superblock slot is the next one written: its lines are rewritten (zeroed)
    // through the repair path first, or the store refuses there.
    for &(offset, len) in superblock_poison {
        crate::compact::zero_poisoned(medium.as_ref(), offset, len).map_err(|reason| {
            Error::Damaged(Box::new(mcstore_recovery::scan::RecoveryReport {
                open_reason: format!("salvage could not repair a superblock slot: {reason}"),
                ..report.clone()
            }))
        })?;
    }
    pool::flush_adopted(medium.as_ref(), &geometry, in_use)
        .map_err(|error| Error::recovery("persisting the recovered segment metadata", error))?;
    let recorded = start.superblock.segment_count;
    let present = geometry.segment_count(medium.len());
    let mut writer = LogWriter::new(Arc::clone(medium), Arc::clone(latch), start);
    // Segments the file holds beyond the recorded count (the file grew at open, or a growth
    // crashed before recording them) are recovered as free; record them before use.
    if recorded != 0 {
        writer.record_growth(recorded, present)?;
    }
    let pid = std::process::id();
    // PERSIST: the pool is marked in use (SUPERBLOCK_WRITE) before any write is accepted,
    // so a crash from here on is seen as an unclean shutdown.
    writer.update_superblock(|sb| {
        sb.clean_shutdown = false;
        sb.opener_pid = pid;
    })?;
    // The snapshot describes the log as it was closed; from here on the log changes (its
    // segment marks would refuse it anyway). Removing it only saves space.
    if let Some(p) = path {
        let _ = std::fs::remove_file(scan::snapshot_path(p));
    }
    Ok(writer)
}
