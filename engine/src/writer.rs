//! `LogWriter`: the log's space — the open segment, free segments, LSNs, the superblock —
//! and the segment roll and growth of `docs/commit.md`. The group commit (`commit.rs`) holds
//! it under the commit lock and reserves space from it; it never writes records itself.
//!
//! INVARIANT: a segment sequence is issued in the superblock before any header carries it;
//! grown segments are recorded in the superblock before one is opened; `OutOfSpace` is decided
//! before anything is written and does not latch. A failed persist trips the latch. A segment
//! overlapping a range the medium reports bad (its bad-block list; a replica set's quarantine)
//! is never opened, appended to or reclaimed while the medium lists it; a repair that drops the
//! listing (a salvage) releases it.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

use mcstore_pmem::Medium;
use mcstore_recovery::format::{Geometry, RecordKind, SegmentId, Superblock, TailWords, Uuid};
use mcstore_recovery::pool;

use crate::error::{Error, Result};
use crate::latch::Latch;
use crate::limits;

/// One record to append.
#[derive(Clone, Debug)]
pub(crate) struct PendingRecord<'a> {
    /// Put, delete or clear.
    pub kind: RecordKind,
    /// The key (empty for a clear).
    pub key: &'a [u8],
    /// The value (empty for a delete or a clear).
    pub value: Cow<'a, [u8]>,
    /// A given LSN (compaction keeps each record's original); `None`: the next one.
    pub lsn: Option<u64>,
    /// Compaction's copy of the record at this location (the index moves by compare-and-set).
    pub moved: Option<crate::index::Location>,
}

impl<'a> PendingRecord<'a> {
    /// A put of `key` = `value`.
    pub(crate) fn put(key: &'a [u8], value: impl Into<Cow<'a, [u8]>>) -> Self {
        Self { kind: RecordKind::Put, key, value: value.into(), lsn: None, moved: None }
    }

    /// A tombstone of `key`.
    pub(crate) fn delete(key: &'a [u8]) -> Self {
        Self { kind: RecordKind::Delete, key, value: Cow::Borrowed(&[]), lsn: None, moved: None }
    }

    /// A clear of every key.
    pub(crate) fn clear() -> Self {
        Self {
            kind: RecordKind::Clear,
            key: &[],
            value: Cow::Borrowed(&[]),
            lsn: None,
            moved: None,
        }
    }

    /// Encoded length.
    pub(crate) fn encoded_len(&self) -> u64 {
        mcstore_recovery::format::encoded_len(self.key.len(), self.value.len())
    }
}

/// The segment records are appended to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OpenSegment {
    /// Which segment.
    pub id: SegmentId,
    /// Its sequence.
    pub seq: u64,
    /// Bytes reserved in its data area (the published tail, in `commit.rs`, may lag behind).
    pub tail: u64,
    /// Its committed-tail words (made without a CRC pass per publish).
    pub words: TailWords,
}

impl OpenSegment {
    /// Segment `id` of sequence `seq` in set `set_uuid`, with `tail` bytes reserved.
    pub(crate) fn new(id: SegmentId, seq: u64, set_uuid: &Uuid, tail: u64) -> Self {
        OpenSegment { id, seq, tail, words: TailWords::new(seq, set_uuid) }
    }
}

/// What the writer starts from (from recovery or a fresh pool).
pub(crate) struct WriterStart {
    /// The current superblock (the writer updates and rewrites it).
    pub superblock: Superblock,
    /// The pool's geometry.
    pub geometry: Geometry,
    /// The segment to append to, if any.
    pub open: Option<OpenSegment>,
    /// Segments never used (free for a roll).
    pub free: BTreeSet<u32>,
    /// The next log sequence number.
    pub next_lsn: u64,
    /// The size the pool may grow to.
    pub max_len: u64,
}

/// The log's space. Callers hold the commit lock around every method.
pub(crate) struct LogWriter {
    medium: Arc<dyn Medium>,
    latch: Arc<Latch>,
    superblock: Superblock,
    geometry: Geometry,
    open: Option<OpenSegment>,
    free: BTreeSet<u32>,
    next_lsn: u64,
    max_len: u64,
    rolls: u64,
    /// Segments overlapping a range the medium lists as bad: never written while listed (see
    /// [`Self::quarantine_bad_segments`]).
    quarantined: BTreeSet<u32>,
    /// The quarantined segments that were free when quarantined (free again once healed).
    quarantined_free: BTreeSet<u32>,
    /// The open segment overlaps a bad range: no more appends to it (the next write rolls).
    open_sealed: bool,
}

/// Space reserved for one writer's records.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reservation {
    /// The segment.
    pub segment: OpenSegment,
    /// Offset of the first byte in the segment's data area.
    pub start: u64,
    /// LSN of the first record (the others follow in order).
    pub first_lsn: u64,
}

impl LogWriter {
    /// A writer over `medium` starting from `start`.
    pub(crate) fn new(medium: Arc<dyn Medium>, latch: Arc<Latch>, start: WriterStart) -> Self {
        let mut writer = Self {
            medium,
            latch,
            superblock: start.superblock,
            geometry: start.geometry,
            open: start.open,
            free: start.free,
            next_lsn: start.next_lsn,
            max_len: start.max_len,
            rolls: 0,
            quarantined: BTreeSet::new(),
            quarantined_free: BTreeSet::new(),
            open_sealed: false,
        };
        writer.quarantine_bad_segments();
        writer
    }

    /// Segments overlapping a range the medium reports bad (known bad blocks not repaired, a
    /// replica set's quarantine), computed now.
    fn bad_segments(&self) -> BTreeSet<u32> {
        let g = &self.geometry;
        let count = g.segment_count(self.medium.len());
        let mut bad = BTreeSet::new();
        for (offset, len) in self.medium.bad_blocks() {
            let end = offset.saturating_add(len.max(1));
            if end <= g.segments_start {
                continue;
            }
            let first = g.segment_of(offset.max(g.segments_start)).map_or(u32::MAX, |s| s.0);
            let last = g.segment_of(end - 1).map_or(u32::MAX, |s| s.0);
            bad.extend(first..=last.min(count.saturating_sub(1)));
        }
        bad
    }

    /// Move every segment overlapping a bad range out of the free set, and seal the open
    /// segment if it overlaps one. Called at open, before every roll and after growth, so a
    /// range quarantined at runtime is honoured from the next roll on. The set follows the
    /// medium's list: a segment whose bad ranges were all repaired since (a salvage zeroes them
    /// through `Medium::repair`, which drops their entries) leaves it, and goes back to the free
    /// set if it was free when it was quarantined.
    fn quarantine_bad_segments(&mut self) {
        let bad = self.bad_segments();
        if bad.is_empty() && self.quarantined.is_empty() {
            return;
        }
        for &id in &bad {
            if self.free.remove(&id) {
                self.quarantined_free.insert(id);
            }
        }
        let healed: Vec<u32> = self.quarantined.difference(&bad).copied().collect();
        for id in healed {
            if self.quarantined_free.remove(&id) {
                self.free.insert(id);
            }
        }
        if self.open.is_some_and(|open| bad.contains(&open.id.0)) {
            self.open_sealed = true;
        }
        self.quarantined = bad;
    }

    /// Segments never written again because they overlap a bad range.
    pub(crate) fn quarantined_segments(&self) -> &BTreeSet<u32> {
        &self.quarantined
    }

    /// Bytes one segment's data area holds: the most one record or batch may take.
    pub(crate) fn capacity(&self) -> u64 {
        self.geometry.data_capacity()
    }

    /// The segment appended to, if any.
    pub(crate) fn open_segment(&self) -> Option<OpenSegment> {
        self.open
    }

    /// Segments never used.
    pub(crate) fn free_segments(&self) -> usize {
        self.free.len()
    }

    /// The next log sequence number.
    pub(crate) fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// Segment rolls since open.
    pub(crate) fn rolls(&self) -> u64 {
        self.rolls
    }

    /// The size the pool may grow to.
    pub(crate) fn max_len(&self) -> u64 {
        self.max_len
    }

    /// Whether `total` bytes fit in the open segment without a roll (writes that are not
    /// delete-only leave the remove reserve free in the pool's last segment).
    pub(crate) fn fits(&self, total: u64, delete_only: bool) -> bool {
        let keep = if delete_only { 0 } else { self.remove_reserve() };
        !self.open_sealed
            && self.open.is_some_and(|open| {
                let last = self.free.is_empty() && !self.can_grow();
                open.tail + total + if last { keep } else { 0 } <= self.capacity()
            })
    }

    /// Take `total` bytes of the open segment and `records` LSNs. The caller checked `fits`.
    pub(crate) fn take(&mut self, total: u64, records: u64) -> Reservation {
        let segment = self.open.expect("fits() was checked");
        assert!(segment.tail + total <= self.capacity(), "caller must check fits()");
        let first_lsn = self.next_lsn;
        self.next_lsn += records;
        self.open = Some(OpenSegment { tail: segment.tail + total, ..segment });
        Reservation { segment, start: segment.tail, first_lsn }
    }

    /// Write the superblock (generation + 1, the other slot) with `change` applied.
    pub(crate) fn update_superblock(&mut self, change: impl FnOnce(&mut Superblock)) -> Result<()> {
        self.latch.check()?;
        let mut next = self.superblock.clone();
        change(&mut next);
        if let Err(error) = pool::write_superblock(self.medium.as_ref(), &mut next) {
            return Err(self.trip("writing the superblock", error));
        }
        self.superblock = next;
        Ok(())
    }

    /// Bytes of the pool's last possible segment that only delete-only writes may use, so a
    /// full pool can still remove keys.
    pub(crate) fn remove_reserve(&self) -> u64 {
        self.capacity() / limits::REMOVE_RESERVE_FRACTION
    }

    /// Whether the pool keeps its last free segment for removes and compaction (pools too
    /// small to spare one keep only the in-segment remove reserve).
    fn reserves_segment(&self) -> bool {
        self.geometry.segment_count(self.max_len) >= limits::SEGMENT_RESERVE_MIN_SEGMENTS
    }

    /// Whether `grow` could add at least one segment.
    fn can_grow(&self) -> bool {
        let page = mcstore_pmem::limits::PAGE_SIZE;
        let target = self.max_len / page * page;
        self.geometry.segment_count(target) > self.geometry.segment_count(self.medium.len())
    }

    /// Roll to a new segment with room for `total` bytes (growing the pool first when no
    /// segment is free). The caller made every reserved byte of the open segment durable first.
    pub(crate) fn roll_for(&mut self, total: u64, delete_only: bool) -> Result<()> {
        let keep = if delete_only { 0 } else { self.remove_reserve() };
        self.quarantine_bad_segments();
        let id = match self.free.first().copied() {
            Some(id) => id,
            None => self.grow(total)?,
        };
        let last = self.free.len() == 1 && !self.can_grow();
        // The compaction reserve: in a pool of `SEGMENT_RESERVE_MIN_SEGMENTS` or more that
        // cannot grow, only removes and compaction's copies may open the last free segment.
        if last && !delete_only && self.reserves_segment() {
            let (pool_bytes, max_bytes) = (self.medium.len(), self.max_len);
            return Err(Error::OutOfSpace { needed: total, pool_bytes, max_bytes });
        }
        if total + if last { keep } else { 0 } > self.capacity() {
            let (pool_bytes, max_bytes) = (self.medium.len(), self.max_len);
            return Err(Error::OutOfSpace { needed: total, pool_bytes, max_bytes });
        }
        self.roll(SegmentId(id)).map(drop)
    }

    /// Start appending to segment `id`: issue its sequence in the superblock, then initialise it
    /// in the defined order (tail cleared and fenced before the new header).
    fn roll(&mut self, id: SegmentId) -> Result<OpenSegment> {
        self.latch.check()?;
        // The segment's pages mapped writable in one call now rather than one fault per page
        // under the appends (a hint: a failure here changes nothing, the stores fault them in).
        let _ = self
            .medium
            .prefault(self.geometry.segment_offset(id), self.geometry.segment_size_bytes);
        let mut next = self.superblock.clone();
        // PERSIST: `open_segment` issues the sequence in the superblock (SUPERBLOCK_WRITE) before
        // a header carries it, then SEGMENT_TAIL_CLEAR, then SEGMENT_HEADER.
        let seq = match pool::open_segment(self.medium.as_ref(), &mut next, id) {
            Ok(seq) => seq,
            Err(error) => return Err(self.trip("opening a segment", error)),
        };
        self.superblock = next;
        self.free.remove(&id.0);
        self.open_sealed = false;
        self.rolls += 1;
        let open = OpenSegment::new(id, seq, &self.superblock.set_uuid, 0);
        self.open = Some(open);
        Ok(open)
    }

    /// Grow the pool (doubling, capped at `max_len`) until a new segment exists; its id.
    /// Nothing is written on failure, and failure does not latch.
    fn grow(&mut self, needed: u64) -> Result<u32> {
        let len = self.medium.len();
        let count = self.geometry.segment_count(len);
        let step = len.max(self.geometry.segment_size_bytes);
        // Whole pages: a mapped medium grows by pages.
        let page = mcstore_pmem::limits::PAGE_SIZE;
        let target = len.saturating_add(step).min(self.max_len) / page * page;
        let max_bytes = self.max_len;
        let out_of_space = || Error::OutOfSpace { needed, pool_bytes: len, max_bytes };
        if target <= len || self.geometry.segment_count(target) <= count {
            return Err(out_of_space());
        }
        match self.medium.grow(target) {
            Ok(()) => {}
            Err(mcstore_pmem::Error::OutOfSpace { .. } | mcstore_pmem::Error::BeyondMax { .. }) => {
                return Err(out_of_space());
            }
            Err(error) => return Err(Error::pmem("growing the pool", error)),
        }
        let grown = self.geometry.segment_count(self.medium.len());
        self.record_growth(count, grown)?;
        self.quarantine_bad_segments();
        self.free.first().copied().ok_or_else(out_of_space)
    }

    /// Make segments `[first, end)` (present on the medium) part of the pool: their header and
    /// tail lines zeroed (GROW_SEGMENTS), then the segment count recorded in the superblock
    /// (SUPERBLOCK_WRITE) before any of them is opened; they join the free set.
    pub(crate) fn record_growth(&mut self, first: u32, end: u32) -> Result<()> {
        if end <= first {
            return Ok(());
        }
        self.latch.check()?;
        let mut next = self.superblock.clone();
        // PERSIST: GROW_SEGMENTS, then SUPERBLOCK_WRITE records the count; a crash between
        // leaves uncounted (free, unread) segments, never a counted segment with stale lines.
        let grown =
            pool::record_growth(self.medium.as_ref(), &mut next, SegmentId(first), SegmentId(end));
        if let Err(error) = grown {
            return Err(self.trip("recording grown segments", error));
        }
        self.superblock = next;
        self.free.extend(first..end);
        Ok(())
    }

    /// Return segment `id` (sealed, nothing in it reachable from the index) to the free set:
    /// its tail word cleared (SEGMENT_RECLAIM). Its header stays; a roll re-initialises it.
    pub(crate) fn reclaim(&mut self, id: SegmentId) -> Result<()> {
        self.latch.check()?;
        assert!(self.open.is_none_or(|open| open.id != id), "the open segment is never reclaimed");
        self.quarantine_bad_segments();
        if self.quarantined.contains(&id.0) {
            // Used while listed: nothing is written there (its tail line may be the bad range).
            return Ok(());
        }
        if let Err(error) = pool::reclaim_segment(self.medium.as_ref(), &self.geometry, id) {
            return Err(self.trip("reclaiming a segment", error));
        }
        self.free.insert(id.0);
        Ok(())
    }

    /// Trip the latch for a failed persist and return the error for the call that met it.
    fn trip(&self, context: &str, error: mcstore_recovery::Error) -> Error {
        self.latch.trip(format!("{context} failed: {error}"));
        Error::recovery(context, error)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use mcstore_pmem::{CrashMode, Medium, MemberId, SimMedium};
    use mcstore_recovery::format::{Geometry, SegmentId};

    use crate::db::Db;
    use crate::test_support::{Forwarding, sim_db, small_options};

    /// The workload: puts that roll segments, overwrites and removes.
    fn op(i: u32) -> (Vec<u8>, Option<Vec<u8>>) {
        let key = format!("k{}", i % 7).into_bytes();
        match i % 5 {
            3 => (key, None),
            _ => (key, Some(vec![i as u8; 1000 + (i as usize % 3) * 3000])),
        }
    }

    fn apply(db: &Db, i: u32) -> crate::Result<()> {
        match op(i) {
            (key, Some(value)) => db.put(key, value),
            (key, None) => db.remove(key).map(drop),
        }
    }

    /// Overwrite 20 keys `rounds` times with compaction after each round (every segment is
    /// rolled into again and again); the last values are `round + key`.
    fn churn(db: &Db, rounds: std::ops::Range<u32>) {
        for round in rounds {
            for k in 0..20u32 {
                db.put(k.to_be_bytes(), vec![(round + k) as u8; 3000]).unwrap();
            }
            db.compact().unwrap();
        }
    }

    fn check(db: &Db, last_round: u32) {
        for k in 0..20u32 {
            assert_eq!(
                db.get(k.to_be_bytes()).unwrap().unwrap(),
                vec![(last_round + k) as u8; 3000]
            );
        }
        assert!(!db.stats().failed);
    }

    fn segment_bytes(sim: &SimMedium, db: &Db, id: u32) -> Vec<u8> {
        let g = db.inner.geometry;
        let start = g.segment_offset(SegmentId(id)) as usize;
        sim.visible_image()[start..start + g.segment_size_bytes as usize].to_vec()
    }

    /// A segment overlapping a bad range (here: one quarantined before the store opened, one
    /// reported at runtime, one over the open segment at reopen) is never opened, appended to,
    /// compacted or reclaimed: its bytes stay as they were while the store rolls through every
    /// other segment many times, and the data stays right — also after reopen.
    #[test]
    fn segments_overlapping_bad_ranges_are_never_written() {
        const LEN: u64 = crate::test_support::SEGMENT * 10;
        let sim = Arc::new(SimMedium::new(LEN));
        let reported = Forwarding::new(sim.clone(), false);
        Db::create_on(reported.clone(), small_options()).unwrap().close().unwrap();
        let g = Geometry::for_pool(LEN, crate::test_support::SEGMENT).unwrap();
        reported.bad.lock().push((g.data_start(SegmentId(3)) + 5000, 100));
        let db = Db::open_on(reported.clone(), small_options()).unwrap();
        let three = segment_bytes(&sim, &db, 3);
        let rolls = |db: &Db| db.stats().segment_rolls;
        churn(&db, 0..40);
        let segments = u64::from(g.segment_count(LEN));
        assert!(rolls(&db) >= 3 * segments, "rolled {} times", rolls(&db));
        assert_eq!(segment_bytes(&sim, &db, 3), three, "segment 3 was written");
        check(&db, 39);
        // Reported while the store runs: a segment that is not the open one.
        let open = db.inner.commit.lock().writer.as_ref().unwrap().open_segment().unwrap().id.0;
        let runtime = (open + 2..open + 10).map(|s| s % 8).find(|&s| s != 3).unwrap();
        reported.bad.lock().push((g.tail_offset(SegmentId(runtime)), 8));
        let before = segment_bytes(&sim, &db, runtime);
        let (free_before, rolled) = (db.stats().segments_free, rolls(&db));
        churn(&db, 40..80);
        assert!(rolls(&db) >= rolled + 2 * segments);
        assert_eq!(segment_bytes(&sim, &db, runtime), before, "segment {runtime} was written");
        assert_eq!(segment_bytes(&sim, &db, 3), three);
        assert!(db.stats().segments_free < free_before || free_before == 0);
        check(&db, 79);
        drop(db);
        // After reopen, and with the open segment itself reported bad: it is sealed as it is.
        let db = Db::open_on(reported.clone(), small_options()).unwrap();
        check(&db, 79);
        let open = db.inner.commit.lock().writer.as_ref().unwrap().open_segment().unwrap().id.0;
        drop(db);
        reported.bad.lock().push((g.data_start(SegmentId(open)) + g.data_capacity() - 64, 64));
        let db = Db::open_on(reported.clone(), small_options()).unwrap();
        let sealed = segment_bytes(&sim, &db, open);
        churn(&db, 80..120);
        for (id, bytes) in [(3, &three), (runtime, &before), (open, &sealed)] {
            assert_eq!(&segment_bytes(&sim, &db, id), bytes, "segment {id} was written");
        }
        let quarantined =
            db.inner.commit.lock().writer.as_ref().unwrap().quarantined_segments().clone();
        assert_eq!(quarantined, [3, runtime, open].into_iter().collect());
        check(&db, 119);
        // The ranges are repaired (a repair drops their entries): the segments leave the
        // quarantine; the free ones (3, the runtime one) are free again at once, the sealed open
        // one once compaction has moved its records — each is free now or written since.
        reported.bad.lock().clear();
        churn(&db, 120..200);
        let st = db.inner.commit.lock();
        let writer = st.writer.as_ref().unwrap();
        assert!(writer.quarantined_segments().is_empty(), "{:?}", writer.quarantined_segments());
        for (id, bytes) in [(3, &three), (runtime, &before), (open, &sealed)] {
            let reused = writer.open_segment().is_some_and(|s| s.id.0 == id)
                || writer.free.contains(&id)
                || segment_bytes(&sim, &db, id) != *bytes;
            assert!(reused, "segment {id} is neither free nor written again");
        }
        drop(st);
        check(&db, 199);
    }

    /// A pool with no free segment and no room to grow keeps a reserve in its last segment that
    /// only delete-only writes may use: a full pool can still remove.
    #[test]
    fn a_full_pool_can_still_remove() {
        let (sim, db) = sim_db(256 << 10, small_options());
        let mut written = 0u32;
        for len in [3000usize, 300, 30, 1] {
            while db.put(written.to_be_bytes(), vec![1u8; len]).is_ok() {
                written += 1;
            }
        }
        assert!(matches!(db.put("x", ""), Err(crate::Error::OutOfSpace { .. })));
        let image = sim.persistent_image();
        assert!(matches!(db.put("x", ""), Err(crate::Error::OutOfSpace { .. })));
        assert_eq!(sim.persistent_image(), image, "a refused put wrote nothing");
        assert_eq!(db.remove(0u32.to_be_bytes()).unwrap().map(|v| v.len()), Some(3000));
        assert!(db.delete(1u32.to_be_bytes()).unwrap());
        let batch = crate::Batch::default().remove(2u32.to_be_bytes()).remove(3u32.to_be_bytes());
        db.apply_batch(batch).unwrap();
        assert_eq!(db.len(), written as usize - 4);
        assert!(!db.stats().failed);
        drop(db);
        let db = crate::test_support::reopen(&sim, small_options());
        assert_eq!(db.len(), written as usize - 4);
        assert!(matches!(db.put("x", ""), Err(crate::Error::OutOfSpace { .. })));
        assert!(db.delete(4u32.to_be_bytes()).unwrap());
    }

    /// Crash at every fence of the workload, both crash modes: every acknowledged write is
    /// present with its exact value, the operation in flight is whole or absent, nothing else;
    /// recovering twice gives the same contents.
    #[test]
    fn crash_at_every_fence_keeps_acknowledged_writes() {
        const OPS: u32 = 40;
        const POOL: u64 = 256 << 10;
        let (sim, db) = sim_db(POOL, small_options());
        let start = sim.fences_seen();
        for i in 0..OPS {
            apply(&db, i).unwrap();
        }
        assert!(db.stats().segment_rolls >= 2);
        let total = sim.fences_seen() - start;
        drop(db);
        let mut sites = std::collections::BTreeSet::new();
        for crash_at in 1..=total {
            let (sim, db) = sim_db(POOL, small_options());
            sim.crash_at_fence(Some(sim.fences_seen() + crash_at));
            let mut acked: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            let mut in_flight = None;
            for i in 0..OPS {
                if apply(&db, i).is_err() {
                    in_flight = Some(op(i));
                    break;
                }
                match op(i) {
                    (key, Some(value)) => acked.insert(key, value),
                    (key, None) => acked.remove(&key),
                };
            }
            let (fence, site) = sim.crashed_at().expect("the plan fired");
            sites.insert(site.0);
            assert!(fence > 0);
            drop(db);
            let (key, value) = in_flight.expect("an operation was in flight");
            let mut after = acked.clone();
            match value {
                Some(value) => after.insert(key, value),
                None => after.remove(&key),
            };
            for mode in [CrashMode::PerLinePrefix, CrashMode::AnySubset] {
                for image in sim.crash_images(mode, 8, crash_at) {
                    let contents = |medium: Arc<dyn Medium>| {
                        let db = Db::open_on(medium, small_options()).unwrap();
                        assert!(!db.stats().failed, "crash at fence {crash_at} left damage");
                        db.iter()
                            .map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())))
                            .collect::<crate::Result<BTreeMap<Vec<u8>, Vec<u8>>>>()
                            .unwrap()
                    };
                    let medium: Arc<dyn Medium> =
                        Arc::new(SimMedium::from_image(image, MemberId(0)));
                    let got = contents(medium.clone());
                    assert!(got == acked || got == after, "crash at fence {crash_at} ({site:?})");
                    // Recovering the recovered pool again changes nothing.
                    let again = contents(medium);
                    assert_eq!(got, again);
                }
            }
        }
        for site in ["record.persist", "tail.publish", "superblock.write", "segment.header"] {
            assert!(sites.contains(site), "never crashed at {site}: {sites:?}");
        }
    }
}
