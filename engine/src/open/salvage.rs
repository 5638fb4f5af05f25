//! A salvage open's clean-up: the damage no member could repair, sorted into segments to move
//! out and reclaim and segments to leave as found, then cleaned once the store is built.
//!
//! INVARIANT: only this log's own segments (not foreign, misplaced, stale or duplicate ones, nor
//! a truncated pool) are moved or rewritten; what is not is reported as pinned, with why.

use std::collections::BTreeSet;
use std::sync::Arc;

use mcstore_recovery::format::SegmentId;
use mcstore_recovery::scan::IndexEntry;

use crate::db::Inner;
use crate::index::Location;

/// What a salvage open cleans up once the store is built: the damaged segments (their
/// surviving entries and poisoned ranges) and the poisoned superblock slots.
#[derive(Debug, Default)]
pub(super) struct Salvage {
    /// The damaged segments to clean, by id.
    pub(super) segments: std::collections::BTreeMap<u32, DamagedSegment>,
    /// Segments with damage a move and reclaim cannot clear, with why.
    pinned: Vec<(u32, String)>,
    /// Poisoned superblock slots, `(offset, len)`.
    pub(super) superblock_poison: Vec<(u64, u64)>,
}

/// One damaged segment a salvage open cleans.
#[derive(Debug, Default)]
pub(super) struct DamagedSegment {
    /// Locations of recovery's index entries in it (the records to keep).
    locations: Vec<Location>,
    /// Its poisoned ranges, `(offset, len)`.
    poisoned: Vec<(u64, u64)>,
}

impl Salvage {
    /// Sort the dropped damage: segments to move out and reclaim, segments to leave alone.
    pub(super) fn plan(
        damage: &[mcstore_recovery::scan::Damage],
        segments: &[mcstore_recovery::SegmentInfo],
        entries: &[IndexEntry],
        geometry: &mcstore_recovery::format::Geometry,
    ) -> Salvage {
        use mcstore_recovery::scan::DamageKind;
        let mut plan = Salvage::default();
        let mut refused = BTreeSet::new();
        for d in damage {
            match (&d.kind, d.segment) {
                (DamageKind::SuperblockSlot, _) => plan.superblock_poison.push((d.offset, d.len)),
                (
                    DamageKind::Media
                    | DamageKind::BadRecord
                    | DamageKind::BadTail
                    | DamageKind::BadSegmentHeader,
                    Some(id),
                ) if segments.get(id.0 as usize).is_some_and(|s| s.id == id) => {
                    let segment = plan.segments.entry(id.0).or_default();
                    if d.kind == DamageKind::Media {
                        segment.poisoned.push((d.offset, d.len));
                    }
                }
                // Foreign, misplaced, stale or duplicate segments, a truncated pool: what is
                // there is not this log's, or not known to be; nothing is moved or rewritten.
                (kind, Some(id)) => {
                    refused.insert((id.0, format!("{kind:?} damage is left as found")));
                }
                _ => {}
            }
        }
        for (id, why) in refused {
            plan.segments.remove(&id);
            plan.pinned.push((id, why));
        }
        for e in entries {
            if let Some(segment) =
                geometry.segment_of(e.offset).and_then(|id| plan.segments.get_mut(&id.0))
            {
                segment.locations.push(Location {
                    offset: e.offset,
                    len: e.len,
                    segment_seq: e.segment_seq,
                    lsn: e.lsn.0,
                });
            }
        }
        plan
    }

    /// Move out and reclaim every planned segment (a writable store only), and record the
    /// outcome in the store's report. `core` is not shared yet (no background thread runs).
    pub(super) fn clean(self, core: &mut Arc<Inner>) {
        let mut reclaimed = Vec::new();
        let mut pinned: Vec<_> =
            self.pinned.into_iter().map(|(id, why)| (SegmentId(id), why)).collect();
        let writable = core.commit.lock().writer.is_some();
        for (id, segment) in self.segments {
            if !writable {
                pinned.push((SegmentId(id), "the store is read-only or failed".into()));
                continue;
            }
            match core.salvage_segment(id, &segment.locations, &segment.poisoned) {
                Ok(()) => reclaimed.push(SegmentId(id)),
                Err(why) => pinned.push((SegmentId(id), why)),
            }
        }
        if let Some(report) = Arc::get_mut(core).and_then(|inner| Arc::get_mut(&mut inner.report)) {
            report.salvage_reclaimed = reclaimed;
            report.salvage_pinned = pinned;
        }
    }
}
