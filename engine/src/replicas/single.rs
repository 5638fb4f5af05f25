//! Scrubbing a store without replicas: read every live byte of the one member through the
//! machine-check-safe copy (mask `Immediate`: stop at each poisoned unit, record it, go on after
//! it), verify every committed record that read clean, and record what is damaged.
//!
//! INVARIANT: nothing can heal a one-member pool, so every poisoned unit is reported
//! unrepaired; on a mapped pool its pages are added to the `.badblocks` sidecar (persisted
//! before `scrub` returns), which the next open maps as poison and hands to the allocator
//! (`Medium::bad_blocks`). Until then the range is committed data, which the allocator never
//! writes; compaction re-reads and verifies what it moves, so it pins the segment.

use std::time::Instant;

use mcstore_pmem::{BadBlocks, Domain, ErrorRegister, Mask, Medium, MemberId, read_u64};
use mcstore_recovery::format::{
    RecordContext, SEGMENT_DATA_OFFSET, SUPERBLOCK_BYTES, SUPERBLOCK_SLOT_OFFSETS, SegmentHeader,
    SegmentId, decode_header, decode_record,
};
use mcstore_recovery::replica::{Quarantined, ScrubFinding, ScrubProgress, ScrubReport};

use crate::db::Inner;
use crate::error::{Error, Result};

/// Bytes read per scrub read.
const CHUNK_BYTES: u64 = 256 << 10;
/// Emulated poison and bad blocks are per page on a mapped medium.
const PAGE_BYTES: u64 = 4096;

/// A live range: where, and for committed data the segment sequence its records are bound to.
struct LiveRange {
    offset: u64,
    len: u64,
    segment_seq: Option<u64>,
}

/// Scrub `inner`'s one member (see the module docs).
pub(crate) fn scrub(inner: &Inner, progress: &dyn Fn(ScrubProgress)) -> Result<ScrubReport> {
    let started = Instant::now();
    let medium = inner.medium.as_ref();
    let ranges = live_ranges(inner);
    let bytes_total = ranges.iter().map(|r| r.len).sum();
    let mut report = ScrubReport { members: 1, ..ScrubReport::default() };
    for range in &ranges {
        let bytes = read_range(medium, range, &mut report, &|done| {
            progress(ScrubProgress { member: MemberId(0), bytes_done: done, bytes_total });
        })?;
        if let Some(seq) = range.segment_seq {
            verify_records(inner, range, seq, &bytes, &mut report);
        }
    }
    record_bad_blocks(inner, &report)?;
    report.duration = started.elapsed();
    Ok(report)
}

/// The superblock slots, every segment's header and tail lines, and each segment's committed
/// bytes (tail from a header and tail word that read clean and verify).
fn live_ranges(inner: &Inner) -> Vec<LiveRange> {
    let g = &inner.geometry;
    let medium = inner.medium.as_ref();
    let mut ranges: Vec<LiveRange> = SUPERBLOCK_SLOT_OFFSETS
        .iter()
        .map(|&offset| LiveRange { offset, len: SUPERBLOCK_BYTES as u64, segment_seq: None })
        .collect();
    for id in (0..g.segment_count(medium.len())).map(SegmentId) {
        ranges.push(LiveRange {
            offset: g.segment_offset(id),
            len: SEGMENT_DATA_OFFSET,
            segment_seq: None,
        });
        let mut line = [0u8; 64];
        let mut register = ErrorRegister::deferred();
        if medium.read(g.segment_offset(id), &mut line, &mut register, Domain::Engine).is_err() {
            continue;
        }
        let Ok(Some(header)) = SegmentHeader::decode(&line) else { continue };
        let Ok(word) = read_u64(medium, g.tail_offset(id), &mut register, Domain::Engine) else {
            continue;
        };
        if !register.is_clean() || header.set_uuid != inner.set_uuid {
            continue;
        }
        if let Ok(tail) = g.committed_tail(word, header.seq, &inner.set_uuid)
            && tail > 0
        {
            ranges.push(LiveRange {
                offset: g.data_start(id),
                len: tail,
                segment_seq: Some(header.seq),
            });
        }
    }
    ranges
}

/// Read `range` in chunks with mask `Immediate`; each poisoned unit becomes an unrepaired
/// finding and the read goes on after it. Returns the bytes (poisoned units zero-filled).
fn read_range(
    medium: &dyn Medium,
    range: &LiveRange,
    report: &mut ScrubReport,
    tick: &dyn Fn(u64),
) -> Result<Vec<u8>> {
    let end = (range.offset + range.len).min(medium.len());
    let mut bytes = vec![0u8; end.saturating_sub(range.offset) as usize];
    let mut pos = range.offset;
    while pos < end {
        let chunk_end = (pos + CHUNK_BYTES).min(end);
        let dst = &mut bytes[(pos - range.offset) as usize..(chunk_end - range.offset) as usize];
        let mut register = ErrorRegister::new(Mask::Immediate);
        medium
            .read(pos, dst, &mut register, Domain::Engine)
            .map_err(|e| Error::pmem("scrubbing the pool", e))?;
        match register.first().copied() {
            None => {
                report.bytes_scanned += chunk_end - pos;
                pos = chunk_end;
            }
            Some(fault) => {
                let lost = Quarantined {
                    member: MemberId(0),
                    offset: fault.offset,
                    len: fault.len.max(1),
                };
                report.findings.push(ScrubFinding { range: lost, healed_from: None });
                report.bytes_scanned += fault.end().min(end).saturating_sub(pos);
                pos = fault.end().max(pos + 1);
            }
        }
        tick(report.bytes_scanned);
    }
    Ok(bytes)
}

/// Walk the committed records of one segment and verify each that read clean. The walk stops
/// at poison (the finding is already reported; lengths past it cannot be trusted) or at the
/// first record that does not verify (reported as corrupt up to the tail).
fn verify_records(
    inner: &Inner,
    range: &LiveRange,
    segment_seq: u64,
    bytes: &[u8],
    report: &mut ScrubReport,
) {
    let poisoned = |from: u64, to: u64| {
        report.findings.iter().any(|f| f.range.offset < to && from < f.range.offset + f.range.len)
    };
    let mut at = 0usize;
    while at < bytes.len() {
        let offset = range.offset + at as u64;
        let rest = &bytes[at..];
        let len = decode_header(rest).map_or(rest.len() as u64, |h| h.encoded_len());
        if poisoned(offset, offset + len.min(rest.len() as u64)) {
            return;
        }
        let ctx = RecordContext { offset, segment_seq, set_uuid: inner.set_uuid };
        if decode_record(rest, &ctx).is_err() {
            let lost = Quarantined { member: MemberId(0), offset, len: rest.len() as u64 };
            report.corrupt.push(lost);
            return;
        }
        at += len as usize;
    }
}

/// Persist every unrepaired poisoned unit in the mapped pool's `.badblocks` sidecar (whole
/// pages); a medium without a path (a test's `SimMedium`) or a read-only store keeps its
/// poison, which the report names.
fn record_bad_blocks(inner: &Inner, report: &ScrubReport) -> Result<()> {
    // A read-only store writes nothing, not even the sidecar: the findings are reported.
    let Some(path) = inner.path.as_ref().filter(|_| !inner.options.read_only) else {
        return Ok(());
    };
    let sidecar = BadBlocks::sidecar_path(path);
    for finding in report.findings.iter().filter(|f| f.healed_from.is_none()) {
        let start = finding.range.offset / PAGE_BYTES * PAGE_BYTES;
        let end = (finding.range.offset + finding.range.len).div_ceil(PAGE_BYTES) * PAGE_BYTES;
        BadBlocks::add(&sidecar, (start, end - start))
            .map_err(|e| Error::pmem("recording a bad block", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mcstore_pmem::{Medium, SimMedium};

    use crate::Db;
    use crate::test_support::{SEGMENT, small_options};

    fn filled() -> (Arc<SimMedium>, Db) {
        let sim = Arc::new(SimMedium::new(SEGMENT * 5));
        let db = Db::create_on(sim.clone() as Arc<dyn Medium>, small_options()).unwrap();
        for i in 0..200u32 {
            db.put(format!("key{i}"), format!("value-{i}-").repeat(10)).unwrap();
        }
        db.remove("key3").unwrap();
        (sim, db)
    }

    #[test]
    fn a_clean_pool_reads_every_committed_byte_and_finds_nothing() {
        let (_sim, db) = filled();
        let report = db.scrub().unwrap();
        assert!(report.findings.is_empty() && report.corrupt.is_empty(), "{report:?}");
        assert_eq!(report.members, 1);
        assert!(report.bytes_scanned >= db.stats().used_bytes, "{report:?}");
    }

    #[test]
    fn poison_is_reported_unrepaired_and_the_scrub_reads_past_it() {
        let (sim, db) = filled();
        let early = db.inner.lookup(b"key10").unwrap().offset;
        let late = db.inner.lookup(b"key190").unwrap().offset;
        sim.inject_poison(early + 8, 1).unwrap();
        sim.inject_poison(late, 1).unwrap();
        let done = std::cell::Cell::new(0);
        let report = db.scrub_with_progress(|p| done.set(p.bytes_done)).unwrap();
        let lost: Vec<u64> = report.unrepaired().iter().map(|q| q.offset / 64).collect();
        assert_eq!(lost, vec![(early + 8) / 64, late / 64], "{report:?}");
        assert_eq!(report.repaired(), 0);
        assert_eq!(done.get(), report.bytes_scanned);
        // Reads of the damaged records fail typed; the poison is still there (nothing healed it).
        assert!(db.get("key10").is_err());
        assert_eq!(sim.poisoned_ranges().len(), 2);
    }

    #[test]
    fn a_record_that_reads_clean_but_does_not_verify_is_reported_corrupt() {
        let (sim, db) = filled();
        let at = db.inner.lookup(b"key50").unwrap().offset;
        sim.write(at + 40, b"X").unwrap();
        let report = db.scrub().unwrap();
        assert!(report.findings.is_empty(), "{report:?}");
        assert_eq!(report.corrupt.len(), 1, "{report:?}");
        assert_eq!(report.corrupt[0].offset, at);
    }
}
