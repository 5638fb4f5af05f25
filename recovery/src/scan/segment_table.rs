//! The segment table a scan builds before it reads any record: every segment classified from its
//! header and tail word, a medium shorter than the superblock records listed as damage, segments
//! sharing a sequence listed; later, each segment's live records counted from the index.
//!
//! INVARIANT: one row per segment the medium holds, in id order; a segment at or past the count
//! the superblock records is free and never read.

use std::collections::BTreeMap;

use mcstore_pmem::Medium;

use super::damage::{Damage, DamageKind};
use super::index::IndexEntry;
use super::options::ScanOptions;
use super::recovered::{SegmentInfo, SegmentStatus};
use super::segments::{Class, classify};
use super::snapshot::SegmentMark;
use super::tally::Tally;
use crate::error::Result;
use crate::format::{Geometry, SEGMENT_DATA_OFFSET, SegmentId, Superblock};

/// One segment as its header and tail word show it.
pub(super) struct TableRow {
    /// What the scan reports of it (records and live counts filled in later).
    pub(super) info: SegmentInfo,
    /// Bytes of its data area to walk (`None`: none can be read).
    pub(super) walk_len: Option<u64>,
}

/// Classify each of the `count` segments on `medium` of the pool `sb` describes, accounting the
/// damage met and the header bytes read in `tally`.
pub(super) fn read_table(
    medium: &dyn Medium,
    sb: &Superblock,
    count: u32,
    opts: &ScanOptions,
    tally: &mut Tally<'_>,
) -> Result<Vec<TableRow>> {
    let g = sb.geometry;
    let mut rows = Vec::with_capacity(count as usize);
    // The superblock records how many segments the pool has (0: not recorded). A file holding
    // fewer was truncated: damage, never a silently shorter log. Segments beyond the recorded
    // count were never used (growth records them first): free, not read.
    let recorded = if sb.segment_count == 0 { count } else { sb.segment_count };
    if recorded > count {
        let have = g.segment_offset(SegmentId(count));
        let want = g.segment_offset(SegmentId(recorded));
        tally.list(Damage {
            kind: DamageKind::Truncated,
            offset: have,
            len: want - have,
            segment: Some(SegmentId(count)),
            detail: format!(
                "the superblock records {recorded} segments, the medium ({} bytes) holds {count}",
                medium.len()
            ),
        });
    }
    for id in (0..count).map(SegmentId) {
        if id.0 >= recorded {
            let info = SegmentInfo {
                id,
                status: SegmentStatus::Free,
                seq: 0,
                state: None,
                tail: 0,
                records: 0,
                live_records: 0,
                live_bytes: 0,
            };
            rows.push(TableRow { info, walk_len: Some(0) });
            continue;
        }
        let classified = classify(medium, &g, sb, id, opts)?;
        tally.report.bytes_scanned += SEGMENT_DATA_OFFSET;
        tally.add(classified.damage, classified.repaired);
        let (status, seq, state, tail) = match classified.class {
            Class::Free { torn_init } => {
                tally.report.torn_inits += u32::from(torn_init);
                (SegmentStatus::Free, 0, None, Some(0))
            }
            Class::InUse { seq, state, tail: Some(tail) } => {
                (SegmentStatus::InUse, seq, Some(state), Some(tail))
            }
            Class::InUse { seq, state, tail: None } => {
                (SegmentStatus::Damaged, seq, Some(state), None)
            }
            Class::Damaged => (SegmentStatus::Damaged, 0, None, Some(0)),
        };
        let info = SegmentInfo {
            id,
            status,
            seq,
            state,
            tail: tail.unwrap_or(0),
            records: 0,
            live_records: 0,
            live_bytes: 0,
        };
        // A bad tail word leaves the committed length unknown: only a salvage walk reads it.
        let walk_len = match tail {
            Some(tail) => Some(tail),
            None if opts.salvage => Some(g.data_capacity()),
            None => None,
        };
        rows.push(TableRow { info, walk_len });
    }
    Ok(rows)
}

/// The rows that carry a sequence and can be walked, by sequence (the walk's order).
pub(super) fn by_sequence(rows: &[TableRow]) -> BTreeMap<u64, Vec<usize>> {
    let mut by_seq: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        if row.info.seq != 0 && row.walk_len.is_some() {
            by_seq.entry(row.info.seq).or_default().push(i);
        }
    }
    by_seq
}

/// List every segment whose sequence another also carries. Both are still read (their records
/// bind their own offsets, and LSNs order them).
pub(super) fn list_duplicate_sequences(
    by_seq: &BTreeMap<u64, Vec<usize>>,
    rows: &[TableRow],
    g: &Geometry,
    tally: &mut Tally<'_>,
) {
    for (seq, ids) in by_seq.iter().filter(|(_, ids)| ids.len() > 1) {
        for &i in ids {
            let id = rows[i].info.id;
            tally.list(Damage {
                kind: DamageKind::DuplicateSequence,
                offset: g.segment_offset(id),
                len: g.segment_size_bytes,
                segment: Some(id),
                detail: format!("sequence {seq} carried by {} segments", ids.len()),
            });
        }
    }
}

/// The in-use segments' sequences and tails, which an index snapshot must match.
pub(super) fn in_use_marks(rows: &[TableRow]) -> Vec<SegmentMark> {
    rows.iter()
        .filter(|row| row.info.status == SegmentStatus::InUse)
        .map(|row| SegmentMark { id: row.info.id, seq: row.info.seq, tail: row.info.tail })
        .collect()
}

/// Count each segment's live records and bytes: the index `entries` located in it.
pub(super) fn count_live(entries: &[IndexEntry], g: &Geometry, rows: &mut [TableRow]) {
    for entry in entries {
        if let Some(row) = g.segment_of(entry.offset).and_then(|id| rows.get_mut(id.0 as usize)) {
            row.info.live_records += 1;
            row.info.live_bytes += u64::from(entry.len);
        }
    }
}
