//! `recover`: the whole scan, as a sequence of phases — the superblock chosen, the segment table
//! read (`segment_table`), the fast open decided (`fast_open`), the records walked (`walk`), the
//! index built or loaded, and what the store resumes from (open segment, next LSN and sequence).
//!
//! INVARIANT: reads only (through `Medium::read`, `Domain::Engine`) — scanning twice gives the
//! same result; a repairer, if given, is the only thing that writes, and it writes good bytes.

use std::time::Instant;

use mcstore_pmem::Medium;

use super::fast_open::fast_open;
use super::options::ScanOptions;
use super::recovered::{Recovered, SegmentInfo, SegmentStatus};
use super::report::OpenKind;
use super::segment_table::{
    by_sequence, count_live, in_use_marks, list_duplicate_sequences, read_table,
};
use super::superblock::choose;
use super::tally::Tally;
use super::walk::SegmentWalk;
use crate::error::Result;
use crate::format::{Geometry, Lsn, RECORD_HEADER_BYTES, SegmentId, SegmentState, Superblock};

/// Read the pool on `medium` back. See the module docs and `docs/format.md`.
pub fn recover(medium: &dyn Medium, opts: &ScanOptions) -> Result<Recovered> {
    let started = Instant::now();
    let chosen = choose(medium, opts)?;
    let sb = chosen.superblock;
    let g = sb.geometry;
    let count = g.segment_count(medium.len());
    let mut tally = Tally::new(opts, &sb, chosen.slot, count, chosen.damage, chosen.repaired);
    tally.progress(0);

    // The segment table: every header and tail word, before any record is read.
    let mut rows = read_table(medium, &sb, count, opts, &mut tally)?;
    let by_seq = by_sequence(&rows);
    list_duplicate_sequences(&by_seq, &rows, &g, &mut tally);

    // The fast open (a snapshot is the index) or the full scan (every record walked).
    let marks = in_use_marks(&rows);
    let bad_blocks = medium.bad_blocks().len();
    let (snapshot, reason) = fast_open(opts, &sb, tally.damage.is_empty(), bad_blocks, &marks, &g);
    tally.report.open_reason = reason;
    // A loaded snapshot leaves nothing to walk.
    let order: Vec<usize> = match &snapshot {
        Some(_) => {
            tally.report.open_kind = OpenKind::Fast;
            Vec::new()
        }
        None => by_seq.values().flatten().copied().collect(),
    };

    let walk_started = Instant::now();
    let mut walk = SegmentWalk::new();
    walk.run(medium, &sb, opts, &mut rows, &order, &mut tally)?;
    tally.report.walk_duration = walk_started.elapsed();
    if snapshot.is_none()
        && let Some(on_walked) = &opts.on_walked
    {
        on_walked(walk.estimated_keys());
    }
    // A snapshot's entries are already the index (sorted, newest per key, puts only).
    let sort_started = Instant::now();
    let (entries, walked, max_lsn) = match snapshot {
        Some(snapshot) => (snapshot.entries, None, Some(snapshot.next_lsn)),
        None if opts.defer_index => {
            let (walked, max_lsn) = walk.into_entries();
            (Vec::new(), Some(walked), max_lsn)
        }
        None => {
            let (entries, max_lsn) = walk.into_index();
            (entries, None, max_lsn)
        }
    };
    tally.report.sort_duration = sort_started.elapsed();

    // What the store resumes from.
    count_live(&entries, &g, &mut rows);
    let segments: Vec<SegmentInfo> = rows.into_iter().map(|row| row.info).collect();
    let open_segment = open_segment(&segments, &g);
    let highest_seen = segments.iter().map(|s| s.seq).max().unwrap_or(0);
    let next_segment_seq = sb.highest_segment_seq.max(highest_seen) + 1;
    let next_lsn = next_lsn(tally.report.open_kind, max_lsn, &sb);
    let (report, damage) = tally.finish(&segments, entries.len(), started);
    Ok(Recovered {
        superblock: sb,
        geometry: g,
        segments,
        open_segment,
        entries,
        walked,
        next_lsn,
        next_segment_seq,
        report,
        damage,
    })
}

/// The segment appends resume in: the newest (by sequence) unless it is damaged, sealed or has
/// no room for another record header.
fn open_segment(segments: &[SegmentInfo], g: &Geometry) -> Option<SegmentId> {
    let newest = segments
        .iter()
        .filter(|s| s.status != SegmentStatus::Free && s.seq != 0)
        .max_by_key(|s| s.seq);
    newest
        .filter(|s| {
            s.status == SegmentStatus::InUse
                && s.state == Some(SegmentState::Open)
                && s.tail + RECORD_HEADER_BYTES as u64 <= g.data_capacity()
        })
        .map(|s| s.id)
}

/// The next LSN to issue: above `max_lsn` (a walk's highest, or a snapshot's `next_lsn` as it
/// is) and never below the superblock's floor.
fn next_lsn(open_kind: OpenKind, max_lsn: Option<Lsn>, sb: &Superblock) -> Lsn {
    match open_kind {
        // The snapshot's `next_lsn` is already above every LSN issued.
        OpenKind::Fast => max_lsn.map_or(sb.next_lsn_floor, |lsn| lsn.max(sb.next_lsn_floor)),
        OpenKind::Full => {
            max_lsn.map_or(sb.next_lsn_floor, |lsn| lsn.next().max(sb.next_lsn_floor))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use mcstore_pmem::{Medium, MemberId, SimMedium};
    use proptest::prelude::*;

    use super::*;
    use crate::format::{RecordKind, SegmentHeader, Superblock, Uuid};
    use crate::scan::{DamageKind, Progress, Repairer};
    use crate::testing::{Appender, new_pool};

    fn scan(medium: &dyn Medium) -> Recovered {
        recover(medium, &ScanOptions::default()).unwrap()
    }

    fn keys(rec: &Recovered) -> Vec<(String, RecordKind, u64)> {
        rec.entries
            .iter()
            .map(|e| (String::from_utf8_lossy(&e.key).into_owned(), e.kind, e.lsn.0))
            .collect()
    }

    fn kinds(rec: &Recovered) -> Vec<DamageKind> {
        rec.damage.iter().map(|d| d.kind.clone()).collect()
    }

    /// Two segments: "a".."d" in segment 0 (seq 1), overwrites and a delete in segment 2 (seq 2).
    fn two_segment_pool() -> (SimMedium, Superblock, Vec<u64>) {
        let (medium, mut sb) = new_pool(3);
        let mut first = Appender::open(&medium, &mut sb, SegmentId(0));
        let mut offsets = Vec::new();
        for (lsn, key) in ["a", "b", "c", "d"].iter().enumerate() {
            offsets.push(first.put(&medium, &sb, lsn as u64 + 1, key, &key.repeat(30)));
        }
        let mut second = Appender::open(&medium, &mut sb, SegmentId(2));
        offsets.extend(second.append(
            &medium,
            &sb,
            &[(RecordKind::Put, 5, b"b", b"B2"), (RecordKind::Delete, 6, b"c", b"")],
        ));
        offsets.push(second.put(&medium, &sb, 7, "e", "E"));
        (medium, sb, offsets)
    }

    #[test]
    fn empty_pool() {
        let (medium, sb) = new_pool(3);
        let rec = scan(&medium);
        assert_eq!(rec.superblock, sb);
        assert!(rec.entries.is_empty() && rec.damage.is_empty());
        assert!(rec.segments.iter().all(|s| s.status == SegmentStatus::Free));
        assert_eq!(rec.segments.len(), 3);
        assert_eq!((rec.open_segment, rec.next_lsn, rec.next_segment_seq), (None, Lsn(1), 1));
        assert!(rec.report.clean_shutdown && rec.report.is_clean());
    }

    #[test]
    fn records_in_several_segments_newest_wins() {
        let (medium, _, _) = two_segment_pool();
        let rec = scan(&medium);
        assert!(rec.damage.is_empty(), "{:?}", rec.damage);
        assert_eq!(
            keys(&rec),
            vec![
                ("a".into(), RecordKind::Put, 1),
                ("b".into(), RecordKind::Put, 5),
                ("c".into(), RecordKind::Delete, 6),
                ("d".into(), RecordKind::Put, 4),
                ("e".into(), RecordKind::Put, 7),
            ]
        );
        assert_eq!(rec.next_lsn, Lsn(8));
        assert_eq!(rec.next_segment_seq, 3);
        assert_eq!(rec.open_segment, Some(SegmentId(2)));
        assert_eq!(rec.report.records, 7);
        let seg0 = &rec.segments[0];
        assert_eq!(
            (seg0.status, seg0.seq, seg0.records, seg0.live_records),
            (SegmentStatus::InUse, 1, 4, 2)
        );
        assert_eq!(rec.segments[1].status, SegmentStatus::Free);
        assert_eq!(rec.segments[2].live_records, 3);
        let b = &rec.entries[1];
        assert_eq!(b.segment_seq, 2);
        assert_eq!(b.len as u64, crate::format::encoded_len(1, 2));
    }

    /// A file cut at a segment boundary is damage (the superblock records the segment count);
    /// segments beyond the recorded count (a growth that crashed before recording them) are free.
    #[test]
    fn truncation_at_a_segment_boundary_is_damage() {
        let (medium, sb, _) = two_segment_pool();
        let image = medium.visible_image();
        let cut = sb.geometry.segment_offset(SegmentId(2)) as usize;
        let rec = scan(&SimMedium::from_image(image[..cut].to_vec(), MemberId(0)));
        assert_eq!(kinds(&rec), vec![DamageKind::Truncated]);
        assert_eq!(rec.damage[0].offset, cut as u64);
        let mut longer = image.clone();
        longer.extend(std::iter::repeat_n(0x5a, 64 << 10));
        let rec = scan(&SimMedium::from_image(longer, MemberId(0)));
        assert!(rec.damage.is_empty(), "{:?}", rec.damage);
        assert_eq!(rec.segments.len(), 4);
        assert_eq!(rec.segments[3].status, SegmentStatus::Free);
        assert_eq!(keys(&rec), keys(&scan(&medium)));
    }

    #[test]
    fn torn_tail_is_ignored() {
        let (medium, sb, _) = two_segment_pool();
        let g = sb.geometry;
        let clean = scan(&medium);
        let tail = clean.segments[2].tail;
        // An append that persisted its records but crashed before publishing the tail, then
        // garbage: nothing past the committed tail counts.
        let mut bytes = Vec::new();
        let ctx = crate::format::RecordContext {
            offset: g.data_start(SegmentId(2)) + tail,
            segment_seq: 2,
            set_uuid: sb.set_uuid,
        };
        crate::format::encode_record(
            &mut bytes,
            RecordKind::Put,
            Lsn(8),
            b"z",
            b"uncommitted",
            &ctx,
        );
        bytes.extend_from_slice(&[0x5c; 100]);
        medium.write(ctx.offset, &bytes).unwrap();
        let rec = scan(&medium);
        assert!(rec.damage.is_empty());
        assert_eq!(keys(&rec), keys(&clean));
    }

    #[test]
    fn flipped_bit_in_committed_range_is_listed_not_truncated() {
        let (medium, _, offsets) = two_segment_pool();
        let mut byte = [0u8; 1];
        let mut reg = mcstore_pmem::ErrorRegister::deferred();
        let at = offsets[1] + 40; // inside "b"'s value in segment 0
        medium.read(at, &mut byte, &mut reg, mcstore_pmem::Domain::Engine).unwrap();
        medium.write(at, &[byte[0] ^ 0x04]).unwrap();
        let rec = scan(&medium);
        assert_eq!(kinds(&rec), vec![DamageKind::BadRecord]);
        assert_eq!(
            (rec.damage[0].offset, rec.damage[0].len),
            (offsets[1], offsets[2] - offsets[1])
        );
        assert_eq!(rec.damage[0].segment, Some(SegmentId(0)));
        // "c" and "d" come after the damage in the same segment: still there.
        assert_eq!(rec.report.records, 6);
        assert!(keys(&rec).iter().any(|(k, _, lsn)| k == "d" && *lsn == 4));
        assert_eq!(rec.report.damage_found, 1);
        assert_eq!(rec.report.lost_ranges, vec![(offsets[1], offsets[2] - offsets[1])]);
    }

    #[test]
    fn bad_tail_word_is_damage_and_salvage_reads_records() {
        let (medium, sb, _) = two_segment_pool();
        let at = sb.geometry.tail_offset(SegmentId(0));
        let mut reg = mcstore_pmem::ErrorRegister::deferred();
        let word =
            mcstore_pmem::read_u64(&medium, at, &mut reg, mcstore_pmem::Domain::Engine).unwrap();
        medium.store_u64(at, word ^ (1 << 3)).unwrap();
        let rec = scan(&medium);
        assert_eq!(kinds(&rec), vec![DamageKind::BadTail]);
        assert_eq!(rec.segments[0].status, SegmentStatus::Damaged);
        assert_eq!(rec.report.records, 3);
        let salvaged =
            recover(&medium, &ScanOptions { salvage: true, ..ScanOptions::default() }).unwrap();
        assert_eq!(kinds(&salvaged), vec![DamageKind::BadTail]);
        assert_eq!(salvaged.report.records, 7);
        assert_eq!(
            keys(&salvaged),
            keys(&{
                medium.store_u64(at, word).unwrap();
                scan(&medium)
            })
        );
    }

    #[test]
    fn stale_and_mismatched_segment_headers_are_damage() {
        let (medium, sb, _) = two_segment_pool();
        let g = sb.geometry;
        // A header carrying a sequence never issued.
        let stale = SegmentHeader {
            set_uuid: sb.set_uuid,
            id: SegmentId(1),
            seq: 99,
            state: SegmentState::Open,
        };
        medium.write(g.segment_offset(SegmentId(1)), &stale.encode()).unwrap();
        // Segment 0's header rewritten with another (issued) sequence: its tail no longer verifies.
        let moved = SegmentHeader {
            set_uuid: sb.set_uuid,
            id: SegmentId(0),
            seq: 2,
            state: SegmentState::Open,
        };
        medium.write(g.segment_offset(SegmentId(0)), &moved.encode()).unwrap();
        let rec = scan(&medium);
        let mut found = kinds(&rec);
        found.sort_by_key(|k| format!("{k:?}"));
        assert_eq!(found, vec![DamageKind::BadTail, DamageKind::StaleSegment]);
        assert_eq!(rec.segments[1].status, SegmentStatus::Damaged);
    }

    #[test]
    fn foreign_and_misplaced_segments_are_damage() {
        let (medium, sb, _) = two_segment_pool();
        let g = sb.geometry;
        let foreign = SegmentHeader {
            set_uuid: Uuid([0xee; 16]),
            id: SegmentId(1),
            seq: 1,
            state: SegmentState::Open,
        };
        medium.write(g.segment_offset(SegmentId(1)), &foreign.encode()).unwrap();
        let rec = scan(&medium);
        assert_eq!(kinds(&rec), vec![DamageKind::ForeignSegment]);
        let misplaced = SegmentHeader {
            set_uuid: sb.set_uuid,
            id: SegmentId(0),
            seq: 1,
            state: SegmentState::Open,
        };
        medium.write(g.segment_offset(SegmentId(1)), &misplaced.encode()).unwrap();
        assert_eq!(kinds(&scan(&medium)), vec![DamageKind::MisplacedSegment]);
    }

    #[test]
    fn poison_in_header_or_records_is_media_damage() {
        let (medium, sb, offsets) = two_segment_pool();
        medium.inject_poison(offsets[2], 1).unwrap();
        let rec = scan(&medium);
        assert_eq!(kinds(&rec), vec![DamageKind::Media]);
        assert!(
            rec.damage[0].offset <= offsets[2]
                && rec.damage[0].offset + rec.damage[0].len > offsets[2]
        );
        // Poison over a whole header must never read as a free segment.
        medium.inject_poison(sb.geometry.segment_offset(SegmentId(2)), 64).unwrap();
        let rec = scan(&medium);
        assert_eq!(rec.segments[2].status, SegmentStatus::Damaged);
        assert!(kinds(&rec).iter().all(|k| *k == DamageKind::Media));
        assert_eq!(rec.damage.len(), 2);
    }

    struct FromImage {
        medium: Arc<SimMedium>,
        image: Vec<u8>,
        calls: AtomicU32,
    }

    impl Repairer for FromImage {
        fn repair(&self, offset: u64, len: u64) -> bool {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let (start, end) = (offset & !63, (offset + len).div_ceil(64) * 64);
            self.medium.clear_poison(start, end - start).unwrap();
            self.medium.write(start, &self.image[start as usize..end as usize]).is_ok()
        }
    }

    /// Heals as a replica set does: the whole 4 KiB pages covering the range, from `image`.
    struct PagesFromImage {
        medium: Arc<SimMedium>,
        image: Vec<u8>,
    }

    impl Repairer for PagesFromImage {
        fn repair(&self, offset: u64, len: u64) -> bool {
            let (start, end) = (offset & !4095, (offset + len).div_ceil(4096) * 4096);
            self.medium.clear_poison(start, end - start).unwrap();
            self.medium.write(start, &self.image[start as usize..end as usize]).is_ok()
        }
    }

    /// Found by `poison_ops`: the primary's tail word covered a group the replica's did not
    /// (the crash came between the members' tail stores: never acknowledged). Poison in the
    /// segment's first page was healed from the replica's whole page, tail word included, but
    /// the walk went on with the length it read before the heal: the open served a record the
    /// durable tail no longer covered, and the next crash lost a value already read. The walk
    /// now classifies the segment again after a repair.
    #[test]
    fn a_repair_that_rewrites_the_tail_word_bounds_the_walk() {
        let (medium, mut sb) = new_pool(3);
        let mut appender = Appender::open(&medium, &mut sb, SegmentId(0));
        let a = appender.put(&medium, &sb, 1, "a", "first");
        let after_a = medium.visible_image();
        appender.put(&medium, &sb, 2, "b", "second");
        let tail_line = sb.geometry.segment_offset(SegmentId(0)) as usize + 64;
        // The source: the records of both puts, the tail word of the first.
        let mut source = medium.visible_image();
        source[tail_line..tail_line + 64].copy_from_slice(&after_a[tail_line..tail_line + 64]);
        let medium = Arc::new(medium);
        medium.inject_poison(a + 8, 1).unwrap();
        let repairer = Arc::new(PagesFromImage { medium: medium.clone(), image: source });
        let opts = ScanOptions { repairer: Some(repairer), ..ScanOptions::default() };
        let healed = recover(medium.as_ref(), &opts).unwrap();
        assert!(healed.damage.is_empty(), "{:?}", healed.damage);
        assert_eq!(healed.report.damage_repaired, 1);
        assert_eq!(keys(&healed), vec![("a".to_string(), RecordKind::Put, 1)]);
        // What the open served is what the medium now holds: a later scan agrees.
        let again = scan(medium.as_ref());
        assert_eq!(keys(&again), keys(&healed));
        assert_eq!(again.segments[0].tail, healed.segments[0].tail);
        assert_eq!(again.report.bytes_scanned, healed.report.bytes_scanned);
    }

    #[test]
    fn repairer_fixes_damage_and_progress_is_reported() {
        let (medium, _, offsets) = two_segment_pool();
        let clean = scan(&medium);
        let image = medium.visible_image();
        let medium = Arc::new(medium);
        medium.inject_poison(offsets[3], 100).unwrap();
        let repairer =
            Arc::new(FromImage { medium: medium.clone(), image, calls: AtomicU32::new(0) });
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let sink = seen.clone();
        let opts = ScanOptions {
            repairer: Some(repairer.clone()),
            on_progress: Some(Arc::new(move |p: Progress| sink.lock().push(p))),
            mode: "Sim".into(),
            ..ScanOptions::default()
        };
        let rec = recover(medium.as_ref(), &opts).unwrap();
        assert!(rec.damage.is_empty(), "{:?}", rec.damage);
        assert_eq!((rec.report.damage_found, rec.report.damage_repaired), (1, 1));
        assert_eq!(repairer.calls.load(Ordering::Relaxed), 1);
        assert_eq!(keys(&rec), keys(&clean));
        let seen = seen.lock();
        assert_eq!(seen.first().map(|p| p.segments_done), Some(0));
        assert_eq!(seen.last().map(|p| (p.segments_done, p.records)), Some((3, 7)));
        assert!(rec.report.to_string().contains("mode Sim"));
    }

    #[test]
    fn scanning_twice_gives_identical_results() {
        let (medium, _, offsets) = two_segment_pool();
        medium.write(offsets[4] + 33, &[0xff]).unwrap();
        let first = scan(&medium);
        let image = medium.visible_image();
        let second = scan(&medium);
        assert_eq!(medium.visible_image(), image, "recovery wrote to the medium");
        assert_eq!(first.entries, second.entries);
        assert_eq!(first.damage, second.damage);
        assert_eq!(first.segments, second.segments);
        assert_eq!((first.next_lsn, first.open_segment), (second.next_lsn, second.open_segment));
    }

    /// Enough log for the parallel walk (several threads, several batches, walkers reused)
    /// and the parallel sort, with overwrites across segments, tombstones, a clear and one
    /// damaged record: the index equals a model's newest version per key, and the walk's
    /// estimate of its distinct keys (`on_walked`) is within a few percent of theirs.
    #[test]
    fn a_large_log_walked_and_sorted_in_parallel_matches_a_model() {
        // 70 segments of 256 KiB, each ~85 % full: the first batch of 64 is walked on several
        // threads, the rest on one (walkers kept between batches); 126 000 entries sort in
        // parallel.
        const SEGMENTS: u32 = 70;
        let size = 256u64 << 10;
        let medium = SimMedium::new(size * (u64::from(SEGMENTS) + 1));
        let params = crate::pool::CreateParams { segment_size_bytes: size, ..Default::default() };
        let mut sb = crate::pool::create(&medium, &params).unwrap();
        let mut model: BTreeMap<Vec<u8>, (RecordKind, u64)> = BTreeMap::new();
        let mut walked_keys = std::collections::HashSet::new();
        let mut lsn = 0u64;
        let mut damaged = None;
        let clear_at = u64::from(SEGMENTS) * 100;
        for id in 0..SEGMENTS {
            let mut segment = Appender::open(&medium, &mut sb, SegmentId(id));
            for _ in 0..60 {
                let mut batch: Vec<(RecordKind, u64, Vec<u8>, Vec<u8>)> = Vec::new();
                for _ in 0..30 {
                    lsn += 1;
                    let n = lsn.wrapping_mul(0x9e37_79b9_7f4a_7c15) % 40_000;
                    // Short keys (inline) and long ones (shared), random and common prefixes.
                    let key = if n.is_multiple_of(3) {
                        format!("a-common-key-prefix/{n}").into_bytes()
                    } else {
                        n.to_be_bytes().to_vec()
                    };
                    let kind = if lsn == clear_at {
                        RecordKind::Clear
                    } else if n.is_multiple_of(11) {
                        RecordKind::Delete
                    } else {
                        RecordKind::Put
                    };
                    let key = if kind == RecordKind::Clear { Vec::new() } else { key };
                    let value = if kind == RecordKind::Put { vec![7u8; 40] } else { Vec::new() };
                    batch.push((kind, lsn, key, value));
                }
                let refs: Vec<(RecordKind, u64, &[u8], &[u8])> =
                    batch.iter().map(|(k, l, key, v)| (*k, *l, &key[..], &v[..])).collect();
                let offsets = segment.append(&medium, &sb, &refs);
                for (i, (kind, l, key, _)) in batch.into_iter().enumerate() {
                    walked_keys.insert(key.clone());
                    if id == 33 && damaged.is_none() && kind == RecordKind::Put {
                        // This record's value is flipped below: never indexed.
                        damaged = Some(offsets[i]);
                        continue;
                    }
                    if kind == RecordKind::Clear {
                        model.clear();
                    } else {
                        model.insert(key, (kind, l));
                    }
                }
            }
        }
        let at = damaged.unwrap() + 40;
        let mut byte = [0u8; 1];
        let mut reg = mcstore_pmem::ErrorRegister::deferred();
        medium.read(at, &mut byte, &mut reg, mcstore_pmem::Domain::Engine).unwrap();
        medium.write(at, &[byte[0] ^ 0x20]).unwrap();
        let estimates = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let on_walked = {
            let estimates = Arc::clone(&estimates);
            Arc::new(move |keys| estimates.lock().push(keys))
        };
        let rec =
            recover(&medium, &ScanOptions { on_walked: Some(on_walked), ..Default::default() })
                .unwrap();
        let estimates = estimates.lock().clone();
        let distinct = walked_keys.len() as f64;
        assert_eq!(estimates.len(), 1, "called once: {estimates:?}");
        assert!(
            (estimates[0] as f64 - distinct).abs() < distinct * 0.1,
            "{estimates:?} {distinct}"
        );
        assert!(estimates[0] as u64 <= rec.report.records);
        assert_eq!(kinds(&rec), vec![DamageKind::BadRecord]);
        assert_eq!(rec.report.records, lsn - 1);
        let (clear, keyed) = rec.entries.split_last().unwrap();
        assert_eq!((clear.kind, clear.lsn), (RecordKind::Clear, Lsn(clear_at)));
        let got: Vec<(Vec<u8>, RecordKind, u64)> =
            keyed.iter().map(|e| (e.key.to_vec(), e.kind, e.lsn.0)).collect();
        let want: Vec<(Vec<u8>, RecordKind, u64)> =
            model.into_iter().map(|(key, (kind, l))| (key, kind, l)).collect();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "the index differs from the model");
        assert_eq!(rec.next_lsn, Lsn(lsn + 1));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// Any bytes anywhere: recovery returns (Ok or Err), never panics, and is repeatable.
        #[test]
        fn mutated_pools_never_panic(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 1usize..64), 1..8),
                                     in_header in any::<bool>()) {
            let (medium, _, _) = two_segment_pool();
            let mut image = medium.visible_image();
            for (at, byte, run) in edits {
                // Aim half the cases at the superblocks and segment headers, where structure lives.
                let len = if in_header { 8192 } else { image.len() };
                let start = at.index(len);
                let end = (start + run).min(image.len());
                image[start..end].fill(byte);
            }
            let medium = SimMedium::from_image(image, MemberId(0));
            let first = recover(&medium, &ScanOptions::default());
            let second = recover(&medium, &ScanOptions { salvage: true, ..ScanOptions::default() });
            if let (Ok(a), Ok(b)) = (&first, &second) {
                prop_assert!(a.entries.len() <= 5 + 2);
                prop_assert_eq!(a.superblock.generation, b.superblock.generation);
            }
        }
    }
}
