//! Compaction: clean sealed segments with little live data, online (`Db::compact()` and the
//! background compactor), oldest first. For a victim segment: read its committed records
//! (Engine domain, every checksum verified — corruption is never re-encoded), copy the records
//! that still matter forward with their original LSNs through the group commit, in batches
//! that fill the open segment before it rolls, re-point the index by compare-and-set on the
//! old location, wait until no reader of an older epoch remains, then reclaim the segment (tail
//! cleared, SEGMENT_RECLAIM). `docs/compaction.md` argues the tombstone rule.
//!
//! INVARIANT: a tombstone (or clear) is dropped only when no other segment may hold an older
//! record it shadows (`SpaceMap::shadowers`); a put is moved only while no write to its
//! key is pending; a segment with a record that cannot be read is never reclaimed (it is
//! reported and left alone); compaction never latches or halts for a bad read.

mod shadow;

use std::collections::{BTreeMap, BTreeSet};

use mcstore_pmem::{Domain, ErrorRegister, Medium};
use mcstore_recovery::format::{RecordContext, RecordKind, SegmentId, decode_record};

use crate::commit::{Keys, QueueState};
use crate::db::{Db, Inner};
use crate::error::Result;
use crate::index::Location;
use crate::options::Durability;
use crate::stats::Counters;
use crate::writer::PendingRecord;
use shadow::Shadows;

/// What one compaction pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactionSummary {
    /// Segments reclaimed.
    pub segments_reclaimed: u64,
    /// Live records copied forward (tombstones kept included).
    pub records_moved: u64,
    /// Bytes copied forward.
    pub bytes_moved: u64,
    /// Tombstones and clears dropped: nothing older they could shadow was left.
    pub tombstones_dropped: u64,
    /// Segments left alone because a record in them could not be read.
    pub unreadable_segments: u64,
    /// Segments skipped because their live records did not fit in the free space left.
    pub skipped_for_space: u64,
    /// Segments left alone because the records they must keep (live puts, tombstones still
    /// shadowing an older record) exceed the live ratio: cleaning them would free too little.
    pub skipped_no_gain: u64,
}

/// What cleaning one victim came to.
enum Outcome {
    Reclaimed,
    Unreadable,
    NoSpace,
    NoGain,
}

/// Compaction's own state (one pass at a time).
#[derive(Debug, Default)]
pub(crate) struct CompactionState {
    /// Segments holding a record that cannot be read: never chosen again until reopen.
    pinned: BTreeSet<u32>,
    /// Segments a background pass found not worth cleaning, with the reclaim count and their
    /// live bytes then: not read again by one until either changes. (A put of a key one of
    /// its tombstones deletes also lowers what it must keep; that waits for the next reclaim.)
    no_gain: BTreeMap<u32, (u64, u64)>,
}

/// One pass's threshold.
#[derive(Clone, Copy, Debug)]
struct Pass {
    /// A segment keeping at most this fraction of its data area is cleaned.
    ratio: f64,
    /// Check the tombstones the per-segment bounds keep against the segments they name
    /// (explicit passes: it reads those segments).
    exact: bool,
}

impl Pass {
    /// Bytes a segment of `capacity` data bytes may keep and still be cleaned.
    fn limit(self, capacity: u64) -> u64 {
        (capacity as f64 * self.ratio) as u64
    }
}

/// A segment chosen for cleaning.
#[derive(Clone, Copy, Debug)]
struct Victim {
    id: u32,
    seq: u64,
    used: u64,
    live: u64,
}

/// One record read back from a victim.
struct Found {
    kind: RecordKind,
    key: Vec<u8>,
    value: Vec<u8>,
    location: Location,
    /// A tombstone no other segment holds an older put of (checked exactly by `Shadows`).
    shadow_free: bool,
}

/// What one copy batch did: records and bytes copied, tombstones dropped, records consumed.
#[derive(Clone, Copy, Debug, Default)]
struct Copied {
    records: u64,
    bytes: u64,
    dropped: u64,
    consumed: usize,
}

/// An explicit `Db::compact()` cleans every sealed segment that keeps at most this fraction of
/// its data area (or `Options::compaction_live_ratio_max`, if higher): it packs the log, where
/// the background compactor only keeps amplification bounded.
const EXPLICIT_LIVE_RATIO_MIN: f64 = 15.0 / 16.0;

/// Most records one copy batch considers: bounds how long compaction holds the commit lock
/// (each record costs an index look-up and a pending-write check there).
const BATCH_RECORDS_MAX: usize = 512;

impl Db {
    /// Clean every sealed segment whose live bytes (and tombstones still needed) are at most
    /// 15/16 of its data area (or `Options::compaction_live_ratio_max`, if higher), now, oldest
    /// first. Safe to call while other threads read and write.
    pub fn compact(&self) -> Result<CompactionSummary> {
        let ratio = self.inner.options.compaction_live_ratio_max.max(EXPLICIT_LIVE_RATIO_MIN);
        self.inner.compact_pass(Pass { ratio, exact: true })
    }
}

impl Inner {
    /// One background compaction pass: segments keeping at most
    /// `Options::compaction_live_ratio_max` of their data area.
    pub(crate) fn compact_once(&self) -> Result<CompactionSummary> {
        self.compact_pass(Pass { ratio: self.options.compaction_live_ratio_max, exact: false })
    }

    /// One compaction pass over every sealed segment keeping at most `pass.ratio` of its data
    /// area.
    fn compact_pass(&self, pass: Pass) -> Result<CompactionSummary> {
        self.latch.check()?;
        let mut shadows = Shadows::default();
        let mut state = self.compaction.lock();
        let mut summary = CompactionSummary::default();
        let mut tried = BTreeSet::new();
        while let Some(victim) = self.pick_victim(pass, &state, &tried) {
            tried.insert(victim.id);
            match self.clean(pass, victim, &mut shadows, &mut summary)? {
                Outcome::Reclaimed => {
                    state.no_gain.remove(&victim.id);
                    summary.segments_reclaimed += 1;
                }
                Outcome::Unreadable => {
                    state.pinned.insert(victim.id);
                    summary.unreadable_segments += 1;
                }
                // No room to copy its live records: a later pass (after other reclaims or
                // removes) may have it.
                Outcome::NoSpace => summary.skipped_for_space += 1,
                Outcome::NoGain if pass.exact => summary.skipped_no_gain += 1,
                Outcome::NoGain => {
                    let reclaims = Counters::get(&self.counters.segments_reclaimed);
                    state.no_gain.insert(victim.id, (reclaims, victim.live));
                    summary.skipped_no_gain += 1;
                }
            }
        }
        if summary.segments_reclaimed > 0 {
            Counters::add(&self.counters.compactions, 1);
        }
        Ok(summary)
    }

    /// The oldest sealed segment whose live data is under the threshold, if any. Oldest first:
    /// a tombstone can go only once every older segment that may hold a record it shadows is
    /// gone, so cleaning in log order lets one pass drop them.
    fn pick_victim(
        &self,
        pass: Pass,
        state: &CompactionState,
        tried: &BTreeSet<u32>,
    ) -> Option<Victim> {
        let st = self.commit.lock();
        let writer = st.writer.as_ref()?;
        let open = writer.open_segment().map(|s| s.id.0);
        let limit = pass.limit(writer.capacity());
        // A segment overlapping a listed bad range stays used: cleaning it would free nothing.
        let quarantined = writer.quarantined_segments();
        let reclaims = Counters::get(&self.counters.segments_reclaimed);
        st.space
            .in_use()
            .filter(|(id, _, live)| {
                Some(*id) != open
                    && !state.pinned.contains(id)
                    && !tried.contains(id)
                    && !quarantined.contains(id)
                    && (pass.exact || state.no_gain.get(id) != Some(&(reclaims, *live)))
                    && *live <= limit
            })
            .map(|(id, used, live)| Victim { id, seq: st.space.seq(id), used, live })
            .min_by_key(|victim| (victim.seq, victim.id))
    }

    /// Clean one victim (left alone when a record in it cannot be read, when what it must keep
    /// is too much to be worth it, or when its records find no room).
    fn clean(
        &self,
        pass: Pass,
        victim: Victim,
        shadows: &mut Shadows,
        summary: &mut CompactionSummary,
    ) -> Result<Outcome> {
        let Some(mut found) = self.read_victim(victim) else {
            Counters::add(&self.counters.compaction_unreadable, 1);
            return Ok(Outcome::Unreadable);
        };
        if pass.exact {
            shadows.check(self, victim, &mut found);
        }
        // Whether cleaning it is worth it (an estimate: the index may change meanwhile).
        let (floor, limit) = {
            let st = self.commit.lock();
            let writer = st.writer.as_ref().ok_or(crate::Error::ReadOnly)?;
            (st.space.shadow_floor(victim.id), pass.limit(writer.capacity()))
        };
        let keep: u64 =
            found.iter().filter(|f| self.needed(floor, f)).map(|f| u64::from(f.location.len)).sum();
        if keep > limit {
            return Ok(Outcome::NoGain);
        }
        let moved = match self.copy_forward(victim.id, &found) {
            Ok(moved) => moved,
            Err(crate::Error::OutOfSpace { .. }) => return Ok(Outcome::NoSpace),
            Err(error) => return Err(error),
        };
        summary.records_moved += moved.records;
        summary.bytes_moved += moved.bytes;
        summary.tombstones_dropped += moved.dropped;
        Counters::add(&self.counters.records_moved, moved.records);
        Counters::add(&self.counters.bytes_moved, moved.bytes);
        // Readers that found a location in the victim before the moves have left.
        self.epochs.synchronize();
        let mut st = self.commit.lock();
        let writer = st.writer.as_mut().ok_or(crate::Error::ReadOnly)?;
        // PERSIST: SEGMENT_RECLAIM — the copies are durable (Immediate) before the originals stop
        // being committed.
        writer.reclaim(SegmentId(victim.id))?;
        st.space.reclaim(victim.id);
        Counters::add(&self.counters.segments_reclaimed, 1);
        Ok(Outcome::Reclaimed)
    }

    /// Whether record `f` still matters: a put the index still points at, a tombstone of a key
    /// with no newer put, or a clear, while another segment may hold an older record it
    /// shadows (LSN above `floor`, `SpaceMap::shadow_floor` of its segment).
    fn needed(&self, floor: u64, f: &Found) -> bool {
        match f.kind {
            RecordKind::Put => self.index.get(&f.key) == Some(f.location),
            RecordKind::Delete => {
                self.index.get(&f.key).is_none() && !f.shadow_free && f.location.lsn > floor
            }
            _ => f.location.lsn > floor,
        }
    }

    /// Copy the records of `segment` in `found` that still matter forward with their original
    /// LSNs, as `Immediate` batches: each fills the open segment's room (a batch rolls only
    /// when not even its first record fits), so moved records pack segments full.
    fn copy_forward(&self, segment: u32, found: &[Found]) -> Result<Copied> {
        let mut total = Copied::default();
        let mut rest = found;
        while !rest.is_empty() {
            // A bounded window: the commit lock is held for one window's checks at a time.
            let window = &rest[..rest.len().min(BATCH_RECORDS_MAX)];
            // INVARIANT: a put is moved only while no write to its key is pending, so a later
            // remove of it is issued after the move (`SpaceMap::shadowers` relies on it).
            let puts: Vec<&[u8]> =
                window.iter().filter(|f| f.kind == RecordKind::Put).map(|f| &f.key[..]).collect();
            let batch = self.submit(Durability::Immediate, Keys::Some(&puts), |inner, st| {
                Ok(inner.next_batch(st, segment, window))
            })?;
            debug_assert!(batch.consumed > 0, "a batch always consumes a record");
            total.records += batch.records;
            total.bytes += batch.bytes;
            total.dropped += batch.dropped;
            total.consumed += batch.consumed;
            rest = &rest[batch.consumed.max(1).min(rest.len())..];
        }
        Ok(total)
    }

    /// The next batch of `rest`, under the commit lock: the records that still matter, as many
    /// as fit in the open segment (or, when not even the first fits, in a fresh one).
    fn next_batch<'f>(
        &self,
        st: &QueueState,
        segment: u32,
        rest: &'f [Found],
    ) -> (Copied, Vec<PendingRecord<'f>>) {
        let log = st.log();
        let floor = st.space.shadow_floor(segment);
        let mut out = Copied::default();
        let mut records = Vec::new();
        let mut rolls = None;
        for f in rest {
            if !self.needed(floor, f) {
                if f.kind != RecordKind::Put {
                    out.dropped += 1;
                }
                out.consumed += 1;
                continue;
            }
            let record = PendingRecord {
                kind: f.kind,
                key: &f.key,
                value: (&f.value[..]).into(),
                lsn: Some(f.location.lsn),
                moved: (f.kind == RecordKind::Put).then_some(f.location),
            };
            let len = record.encoded_len();
            let rolls = *rolls.get_or_insert_with(|| !log.fits(len, true));
            let fits = if rolls {
                out.bytes + len <= log.capacity()
            } else {
                log.fits(out.bytes + len, true)
            };
            if !fits && !records.is_empty() {
                break;
            }
            records.push(record);
            out.records += 1;
            out.bytes += len;
            out.consumed += 1;
        }
        (out, records)
    }

    /// After a salvage open: move the verifiable records of the damaged `segment` (recovery's
    /// index entries located there) forward, zero its poisoned ranges
    /// through the medium's repair path, and reclaim it. `Err(why)` leaves the segment in place
    /// (pinned: compaction never picks it); an engine error that latched is in `why` too.
    pub(crate) fn salvage_segment(
        &self,
        segment: u32,
        entries: &[Location],
        poisoned: &[(u64, u64)],
    ) -> std::result::Result<(), String> {
        let mut state = self.compaction.lock();
        let pin = |state: &mut CompactionState, why: String| {
            state.pinned.insert(segment);
            Err(why)
        };
        let mut found = Vec::with_capacity(entries.len());
        for &location in entries {
            match self.read_one(location) {
                Some(record) => found.push(record),
                None => {
                    let why = format!("its record at {} no longer reads", location.offset);
                    return pin(&mut state, why);
                }
            }
        }
        if let Err(error) = self.copy_forward(segment, &found) {
            return pin(&mut state, format!("moving its records failed: {error}"));
        }
        // Readers that found a location in the segment before the moves have left.
        self.epochs.synchronize();
        for &(offset, len) in poisoned {
            if let Err(why) = zero_poisoned(self.medium.as_ref(), offset, len) {
                return pin(&mut state, why);
            }
        }
        let mut st = self.commit.lock();
        let Some(writer) = st.writer.as_mut() else {
            return pin(&mut state, "the store is read-only".into());
        };
        // PERSIST: SEGMENT_RECLAIM — the copies are durable (Immediate) before the originals stop
        // being committed; the poisoned lines were rewritten first, so the tail store lands.
        if let Err(error) = writer.reclaim(SegmentId(segment)) {
            return pin(&mut state, format!("reclaiming it failed: {error}"));
        }
        if writer.quarantined_segments().contains(&segment) {
            return pin(&mut state, "it overlaps a range the medium lists as bad".into());
        }
        st.space.reclaim(segment);
        Counters::add(&self.counters.segments_reclaimed, 1);
        Ok(())
    }

    /// The record at `location`, read and verified (`None` if it cannot be).
    fn read_one(&self, location: Location) -> Option<Found> {
        let mut buf = vec![0u8; location.len as usize];
        let mut register = ErrorRegister::deferred();
        self.medium.read(location.offset, &mut buf, &mut register, Domain::Engine).ok()?;
        if !register.is_clean() {
            return None;
        }
        let ctx = RecordContext {
            offset: location.offset,
            segment_seq: location.segment_seq,
            set_uuid: self.set_uuid,
        };
        let record = decode_record(&buf, &ctx).ok()?;
        Some(Found {
            kind: record.kind,
            key: record.key.to_vec(),
            value: record.value.to_vec(),
            location,
            shadow_free: false,
        })
    }

    /// Every committed record of `victim`, verified; `None` if any cannot be read.
    fn read_victim(&self, victim: Victim) -> Option<Vec<Found>> {
        let start = self.geometry.data_start(SegmentId(victim.id));
        let mut buf = vec![0u8; usize::try_from(victim.used).ok()?];
        let mut register = ErrorRegister::deferred();
        let _reader = self.epochs.enter();
        self.medium.read(start, &mut buf, &mut register, Domain::Engine).ok()?;
        // Engine domain, middle choice: heal the poisoned units from a replica and re-read.
        if !register.is_clean() && !self.heal_read_from_replica(&register, start, &mut buf) {
            return None;
        }
        let mut found = Vec::new();
        let mut pos = 0usize;
        while pos < buf.len() {
            let offset = start + pos as u64;
            let ctx = RecordContext { offset, segment_seq: victim.seq, set_uuid: self.set_uuid };
            let record = decode_record(&buf[pos..], &ctx).ok()?;
            let len = mcstore_recovery::format::encoded_len(record.key.len(), record.value.len());
            found.push(Found {
                kind: record.kind,
                key: record.key.to_vec(),
                value: record.value.to_vec(),
                location: Location {
                    offset,
                    len: u32::try_from(len).ok()?,
                    segment_seq: victim.seq,
                    lsn: record.lsn.0,
                },
                shadow_free: false,
            });
            pos += usize::try_from(len).ok()?;
        }
        Some(found)
    }
}

/// Rewrite the whole pages covering `[offset, offset + len)` through `Medium::repair` (which
/// clears poison; a mapped medium repairs whole pages): the range itself and every unit that
/// reads poisoned become zero, the other bytes are written back as read.
pub(crate) fn zero_poisoned(
    medium: &dyn Medium,
    offset: u64,
    len: u64,
) -> std::result::Result<(), String> {
    let page = mcstore_pmem::limits::PAGE_SIZE;
    let start = offset / page * page;
    let end = offset.saturating_add(len).next_multiple_of(page).min(medium.len());
    let size = usize::try_from(end.saturating_sub(start)).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; size];
    let mut register = ErrorRegister::deferred();
    medium
        .read(start, &mut buf, &mut register, Domain::Engine)
        .map_err(|error| format!("reading [{start}, {end}) to repair it: {error}"))?;
    let mut zero = |from: u64, to: u64| {
        let (a, b) = (from.clamp(start, end) - start, to.clamp(start, end) - start);
        buf[a as usize..b as usize].fill(0);
    };
    zero(offset, offset.saturating_add(len));
    for fault in register.faults() {
        zero(fault.offset, fault.end());
    }
    medium
        .repair(start, &buf)
        .map_err(|error| format!("repairing [{start}, {end}) with zeros: {error}"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use mcstore_pmem::{CrashMode, Medium, MemberId, SimMedium};

    use crate::db::Db;
    use crate::test_support::{reopen, sim_db, small_options};

    fn contents(db: &Db) -> BTreeMap<Vec<u8>, Vec<u8>> {
        db.iter()
            .map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .collect::<crate::Result<_>>()
            .unwrap()
    }

    /// Overwrites of a few keys, removes, and a tombstone whose put lives in another segment.
    fn churn(db: &Db, model: &mut BTreeMap<Vec<u8>, Vec<u8>>, rounds: u32) {
        for round in 0..rounds {
            for k in 0..20u32 {
                let value = vec![(round + k) as u8; 500 + (k as usize % 5) * 100];
                db.put(k.to_be_bytes(), &value).unwrap();
                model.insert(k.to_be_bytes().to_vec(), value);
            }
            let gone = (round % 20).to_be_bytes();
            db.remove(gone).unwrap();
            model.remove(&gone[..]);
        }
    }

    #[test]
    fn compaction_reclaims_dead_segments_and_keeps_every_value() {
        let (sim, db) = sim_db(2 << 20, small_options());
        let mut model = BTreeMap::new();
        churn(&db, &mut model, 30);
        let before = db.stats();
        assert!(before.space_amplification > 2.0, "{before:?}");
        let summary = db.compact().unwrap();
        assert!(summary.segments_reclaimed >= 3, "{summary:?}");
        let after = db.stats();
        assert!(after.space_amplification < before.space_amplification, "{after:?}");
        assert!(after.segments_free > before.segments_free);
        assert_eq!(after.live_bytes, before.live_bytes);
        assert_eq!(contents(&db), model);
        // Writes go on into reclaimed segments; all of it survives a reopen.
        churn(&db, &mut model, 10);
        db.compact().unwrap();
        drop(db);
        let db = reopen(&sim, small_options());
        assert_eq!(contents(&db), model);
        assert_eq!(db.stats().live_bytes, db.stats().live_bytes.min(db.stats().used_bytes));
    }

    /// A record compaction cannot read keeps its segment (reported, never reclaimed, no latch).
    #[test]
    fn an_unreadable_record_pins_its_segment_and_is_reported() {
        let (_sim, db) = sim_db(2 << 20, small_options());
        let mut model = BTreeMap::new();
        churn(&db, &mut model, 30);
        // Poison a dead record in the oldest segment (nothing reads it but compaction).
        let first = db.inner.geometry.data_start(mcstore_recovery::format::SegmentId(0));
        _sim.inject_poison(first, 64).unwrap();
        let summary = db.compact().unwrap();
        assert_eq!(summary.unreadable_segments, 1, "{summary:?}");
        assert!(summary.segments_reclaimed >= 2, "{summary:?}");
        assert!(!db.stats().failed);
        assert_eq!(db.stats().compaction_unreadable, 1);
        assert_eq!(contents(&db), model);
        // Pinned: the next pass does not try it again.
        assert_eq!(db.compact().unwrap().unreadable_segments, 0);
    }

    /// Crash at every fence of a compaction pass, in both crash modes: the recovered contents
    /// are exactly the model, with no damage.
    #[test]
    fn crash_at_every_fence_of_compaction_loses_nothing() {
        let (sim, db) = sim_db(2 << 20, small_options());
        let mut model = BTreeMap::new();
        // Cold keys written once: the oldest segment keeps a little live data to copy.
        for k in 0..10u32 {
            db.put(format!("cold{k}"), [7u8; 300]).unwrap();
            model.insert(format!("cold{k}").into_bytes(), vec![7u8; 300]);
        }
        churn(&db, &mut model, 12);
        drop(db);
        let base = sim.persistent_image();
        let dry = Arc::new(SimMedium::from_image(base.clone(), MemberId(0)));
        let db = Db::open_on(dry.clone(), small_options()).unwrap();
        let start = dry.fences_seen();
        assert!(db.compact().unwrap().segments_reclaimed >= 1);
        let fences = dry.fences_seen() - start;
        assert!(fences >= 3, "{fences} fences");
        let sites: std::collections::BTreeSet<_> =
            dry.fence_log().into_iter().skip(start as usize).collect();
        assert!(sites.contains(&mcstore_recovery::sites::SEGMENT_RECLAIM), "{sites:?}");
        assert!(sites.contains(&mcstore_recovery::sites::TAIL_PUBLISH), "{sites:?}");
        drop(db);
        for crash_at in 1..=fences {
            for mode in [CrashMode::PerLinePrefix, CrashMode::AnySubset] {
                let run = Arc::new(SimMedium::from_image(base.clone(), MemberId(0)));
                let db = Db::open_on(run.clone(), small_options()).unwrap();
                run.crash_at_fence(Some(run.fences_seen() + crash_at));
                let _ = db.compact();
                assert!(run.is_crashed());
                drop(db);
                for image in run.crash_images(mode, 16, crash_at) {
                    let medium: Arc<dyn Medium> =
                        Arc::new(SimMedium::from_image(image, MemberId(0)));
                    let db = Db::open_on(medium, small_options()).unwrap();
                    assert!(!db.stats().failed, "crash at {crash_at} {mode:?}: damage");
                    assert_eq!(contents(&db), model, "crash at {crash_at} {mode:?}");
                }
            }
        }
    }

    /// `clear()` is one record; compaction keeps it while older records exist elsewhere, and a
    /// reopen sees the store empty, then the writes after the clear.
    #[test]
    fn clear_is_atomic_and_survives_compaction() {
        let (sim, db) = sim_db(2 << 20, small_options());
        let mut model = BTreeMap::new();
        churn(&db, &mut model, 10);
        let written = db.stats().records_written;
        db.clear().unwrap();
        assert_eq!(db.stats().records_written, written + 1);
        assert!(db.is_empty() && db.iter().next().is_none());
        assert_eq!(db.stats().live_bytes, 0);
        db.put("after", "clear").unwrap();
        db.compact().unwrap();
        drop(db);
        let db = reopen(&sim, small_options());
        assert_eq!(contents(&db), BTreeMap::from([(b"after".to_vec(), b"clear".to_vec())]));
    }
}
