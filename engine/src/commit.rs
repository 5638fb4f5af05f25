//! Group commit (`docs/commit.md`): writers reserve space and LSNs under the short commit lock,
//! encode and copy their own records into the log outside it, and Release-store a "copied"
//! flag; one leader at a time Acquires the flags of a run of copied slots, flushes them all,
//! fences once (RECORD_PERSIST), publishes the committed tail once (TAIL_PUBLISH), then the
//! slots are indexed in LSN order and their writers woken.
//!
//! INVARIANT: a tail word covers only slots whose copied flag was Acquired and whose bytes were
//! flushed (or written through by their writer, `Medium::write_through`) and fenced; one
//! persister at a time (`persisting`), so tails are published in order; slots become visible
//! strictly in reservation (LSN) order — an `Immediate` slot only once durable, an
//! `Eventual`/`None` slot once copied; a roll first makes every reserved byte of the open
//! segment durable and visible.
//!
//! Here: a writer's side (reserve, copy, wait) and indexing. The leader's side is in
//! `commit/persist.rs`, the queue's state in `commit/queue.rs`, whether a waiter spins in
//! `commit/spin.rs`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use mcstore_recovery::format::record::encode_record_head;
use mcstore_recovery::format::{
    Lsn, RECORD_HEADER_BYTES, RecordContext, RecordKind, encode_record,
};
use parking_lot::MutexGuard;

use crate::db::Inner;
use crate::error::{Error, Result};
use crate::index::Location;
use crate::limits;
use crate::options::Durability;
use crate::space::SpaceMap;
use crate::stats::Counters;
use crate::writer::{PendingRecord, Reservation};

mod persist;
mod queue;
mod spin;

pub(crate) use queue::{CommitQueue, Keys, QueueState};
use queue::{CopyGuard, IndexOp, KeyRange, PersistClaim, Slot, key_hash};

/// A value at least this long is written to the log straight from the caller's bytes (after its
/// header), not gathered into the encoding buffer first.
const DIRECT_VALUE_BYTES_MIN: usize = 2048;

/// A writer keeps its encoding buffer between writes up to this capacity (a large batch's
/// buffer is freed after use).
const ENCODE_BUFFER_KEEP_BYTES: usize = 4 << 20;

/// Line size the medium's write-through streams in (whole lines of a value are skipped by the
/// leader's flush).
const LINE_BYTES: u64 = mcstore_pmem::mcsafe::STREAM_LINE_BYTES as u64;

/// Indexing a slot of several records prefetches the point-table slot and tags of the record
/// this many places ahead, so a batch's index misses overlap instead of following each other.
const APPLY_AHEAD: usize = 8;

std::thread_local! {
    /// Each writer thread's encoding buffer, reused across writes (no allocation per put).
    static ENCODE_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Inner {
    /// Run one write. Under the commit lock: wait until no pending write touches `keys`, let
    /// `decide` read and choose the records (nothing is written if it fails or chooses none),
    /// reserve them. Then copy them into the log and complete them at `durability`.
    ///
    /// `decide` returns its records as any slice owner: a `Vec`, or an array for a fixed
    /// count (a put's one record is then not allocated).
    pub(crate) fn submit<'a, T, R>(
        &self,
        durability: Durability,
        keys: Keys<'_>,
        decide: impl FnOnce(&Self, &QueueState) -> Result<(T, R)>,
    ) -> Result<T>
    where
        R: AsRef<[PendingRecord<'a>]>,
    {
        self.latch.check()?;
        let mut st = self.commit.state.lock();
        if st.writer.is_none() {
            return Err(Error::ReadOnly);
        }
        while st.pending_conflicts(keys) {
            self.latch.check()?;
            self.commit.wake.wait(&mut st);
        }
        self.latch.check()?;
        let (out, records) = decide(self, &st)?;
        let records = records.as_ref();
        if records.is_empty() {
            return Ok(out);
        }
        let (slot, reservation) = self.reserve(&mut st, records, durability)?;
        // A lone `Immediate` writer (no other slot pending, no leader) claims the leadership
        // now, under the lock, and persists its own slot right after copying it: no second
        // trip through the lock to become the leader. Later writers find a leader persisting
        // and wait for it as for any other.
        let claim = (slot.immediate
            && st.pending.len() == 1
            && !self.commit.persisting.load(Ordering::Acquire))
        .then(|| PersistClaim::take(&self.commit));
        drop(st);
        let unwinding = CopyGuard { slot: &slot, inner: self };
        let copied = self.copy(&slot, &reservation, records);
        drop(unwinding);
        if let Err(error) = copied {
            // The store latched (`copy`): writers sleeping behind this slot, which is never
            // indexed, wake to return the error.
            self.wake_all_waiters();
            return Err(error);
        }
        Counters::add(&self.counters.records_written, records.len() as u64);
        if let Some(claim) = claim {
            self.lead_alone(&slot, reservation.segment, claim)?;
        }
        if !slot.indexed.load(Ordering::Acquire) {
            self.complete(&slot)?;
        }
        Slot::recycle(slot);
        Ok(out)
    }

    /// Reserve space and LSNs for `records` (rolling first when the open segment is full).
    fn reserve(
        &self,
        st: &mut MutexGuard<'_, QueueState>,
        records: &[PendingRecord<'_>],
        durability: Durability,
    ) -> Result<(Arc<Slot>, Reservation)> {
        let total: u64 = records.iter().map(PendingRecord::encoded_len).sum();
        // Everything that can fail is checked before space is taken: a taken range is always
        // copied (a hole under a published tail would be damage).
        for record in records {
            if u32::try_from(record.encoded_len()).is_err() {
                return Err(Error::ValueTooLarge {
                    len: record.value.len(),
                    max: u32::MAX as usize,
                });
            }
        }
        // Removes, clears and compaction's copies may use the remove reserve.
        let delete_only = records.iter().all(|r| r.kind != RecordKind::Put || r.moved.is_some());
        let fits = st.writer.as_ref().is_some_and(|w| w.fits(total, delete_only));
        if !fits {
            if let Err(error) = self.quiesce(st) {
                // Writers sleeping behind the slots the roll could not persist wake to see why.
                self.commit.wake_waiters(st, true);
                return Err(error);
            }
            let writer = st.writer.as_mut().ok_or(Error::ReadOnly)?;
            writer.roll_for(total, delete_only)?;
            if let Some(open) = writer.open_segment() {
                st.space.set_seq(open.id.0, open.seq);
            }
            self.commit.published.store(0, Ordering::Release);
        }
        let writer = st.writer.as_mut().ok_or(Error::ReadOnly)?;
        let reservation = writer.take(total, records.len() as u64);
        let segment = reservation.segment;
        st.space.use_bytes(segment.id.0, total);
        let data_start = self.geometry.data_start(segment.id);
        let write_through = records.iter().any(|r| r.value.len() >= DIRECT_VALUE_BYTES_MIN)
            && self.medium.writes_through();
        let space = &mut st.space;
        let slot = Slot::take(|slot| {
            slot.start = reservation.start;
            slot.end = reservation.start + total;
            slot.immediate = durability == Durability::Immediate;
            slot.write_through = write_through;
            let mut pos = data_start + reservation.start;
            for (i, record) in records.iter().enumerate() {
                // Checked above: every record's length fits u32.
                let len = record.encoded_len() as u32;
                let location = Location {
                    offset: pos,
                    len,
                    segment_seq: segment.seq,
                    lsn: record.lsn.unwrap_or(reservation.first_lsn + i as u64),
                };
                space.note_lsn(segment.id.0, location.lsn);
                if write_through && record.value.len() >= DIRECT_VALUE_BYTES_MIN {
                    let value_at = pos + (RECORD_HEADER_BYTES + record.key.len()) as u64;
                    let first = value_at.next_multiple_of(LINE_BYTES);
                    let last = (value_at + record.value.len() as u64) / LINE_BYTES * LINE_BYTES;
                    if last > first {
                        slot.through.push((first, last));
                    }
                }
                pos += u64::from(len);
                slot.key_hashes.push(key_hash(record.key));
                let keys = &mut slot.keys;
                slot.ops.push(match (record.kind, record.moved, record.lsn) {
                    (RecordKind::Put, Some(from), _) => {
                        IndexOp::Move(KeyRange::push(keys, record.key), from, location)
                    }
                    (_, _, Some(_)) => IndexOp::Keep,
                    (RecordKind::Put, None, None) => {
                        IndexOp::Put(KeyRange::push(keys, record.key), location)
                    }
                    (RecordKind::Clear, _, None) => IndexOp::Clear,
                    _ => IndexOp::Delete(KeyRange::push(keys, record.key)),
                });
            }
        });
        st.pending.push_back(Arc::clone(&slot));
        st.unpersisted.push_back(slot.end);
        Ok((slot, reservation))
    }

    /// Encode `records` at their reserved offsets and copy them into the log; then
    /// Release-store the slot's copied flag.
    fn copy(&self, slot: &Slot, r: &Reservation, records: &[PendingRecord<'_>]) -> Result<()> {
        let at = self.geometry.data_start(r.segment.id) + r.start;
        let written = ENCODE_BUFFER.with_borrow_mut(|buffer| {
            buffer.clear();
            let written = self.encode_and_write(buffer, at, r, records, slot.write_through);
            debug_assert!(!matches!(written, Ok(len) if len != slot.end - slot.start));
            if buffer.capacity() > ENCODE_BUFFER_KEEP_BYTES {
                *buffer = Vec::new();
            }
            written
        });
        if let Err(error) = &written {
            self.latch.trip(format!("copying records into the log failed: {error}"));
        }
        // PERSIST: Release — the leader's Acquire of this flag orders these stores before its
        // flush and RECORD_PERSIST fence.
        slot.copied.store(true, Ordering::Release);
        written.map(drop).map_err(|error| Error::pmem("copying records into the log", error))
    }

    /// Encode `records` from pool offset `at` on: small records are gathered in `buffer` and
    /// written together; a large value is written straight from the caller's bytes after its
    /// header (one copy), then its padding.
    fn encode_and_write(
        &self,
        buffer: &mut Vec<u8>,
        at: u64,
        r: &Reservation,
        records: &[PendingRecord<'_>],
        write_through: bool,
    ) -> std::result::Result<u64, mcstore_pmem::Error> {
        // Pool offset of `buffer[0]`.
        let mut buffered_at = at;
        for (i, record) in records.iter().enumerate() {
            let offset = buffered_at + buffer.len() as u64;
            let ctx = RecordContext { offset, segment_seq: r.segment.seq, set_uuid: self.set_uuid };
            let lsn = Lsn(record.lsn.unwrap_or(r.first_lsn + i as u64));
            if record.value.len() < DIRECT_VALUE_BYTES_MIN {
                encode_record(buffer, record.kind, lsn, record.key, &record.value, &ctx);
                continue;
            }
            let padding =
                encode_record_head(buffer, record.kind, lsn, record.key, &record.value, &ctx);
            self.medium.write(buffered_at, buffer)?;
            let value_at = buffered_at + buffer.len() as u64;
            if write_through {
                // PERSIST: streamed and drained by the medium; the slot's `through` ranges
                // (the value's whole lines) are skipped by the leader's flush.
                self.medium.write_through(value_at, &record.value)?;
            } else {
                self.medium.write(value_at, &record.value)?;
            }
            buffer.clear();
            buffer.resize(padding, 0);
            buffered_at = value_at + record.value.len() as u64;
        }
        self.medium.write(buffered_at, buffer)?;
        Ok(buffered_at + buffer.len() as u64 - at)
    }

    /// Wait until `slot` is visible (for `Immediate`, durable too), leading a group when no
    /// one else is persisting.
    fn complete(&self, slot: &Arc<Slot>) -> Result<()> {
        let mut st = self.commit.state.lock();
        let mut spun = false;
        loop {
            // Every check below runs under the lock, and every wake-up is sent under it: a
            // wait that starts after these checks cannot miss one.
            self.advance(&mut st);
            if slot.indexed.load(Ordering::Acquire) {
                return Ok(());
            }
            self.latch.check()?;
            let needs_leader = slot.immediate && !slot.durable.load(Ordering::Acquire);
            if needs_leader && !self.commit.persisting.load(Ordering::Acquire) {
                let required = st.pending.iter().position(|s| Arc::ptr_eq(s, slot)).map(|i| i + 1);
                self.lead(&mut st, required.unwrap_or(0))?;
                continue;
            }
            if !spun {
                // A group in flight usually ends within a fence pair: spin briefly (lock
                // released), then check again, before sleeping — a follower then rarely pays a
                // futex wake-up per group. Where groups outlast the spin (an msync), the gate
                // stops spinning (`commit/spin.rs`).
                spun = true;
                if self.commit.spin.should_spin() {
                    let finished = MutexGuard::unlocked(&mut st, || {
                        for _ in 0..limits::COMMIT_SPINS {
                            if slot.indexed.load(Ordering::Acquire)
                                || !self.commit.persisting.load(Ordering::Acquire)
                            {
                                return true;
                            }
                            std::hint::spin_loop();
                        }
                        false
                    });
                    self.commit.spin.record(finished);
                }
                continue;
            }
            // Sleep until woken for this slot: `advance` when it becomes visible, a finished
            // leader when it is the next to lead, a failed one when the store latched.
            // INVARIANT: `sleeping` is set and read under the lock, and an unpark that comes
            // between the unlock and the park leaves its token, so no wake-up is lost; a
            // spurious return only runs the checks again.
            slot.sleeping.store(true, Ordering::Relaxed);
            MutexGuard::unlocked(&mut st, std::thread::park);
            slot.sleeping.store(false, Ordering::Relaxed);
            spun = false;
        }
    }

    /// Index the pending slots that may become visible, in order; wake waiters if any did.
    fn advance(&self, st: &mut MutexGuard<'_, QueueState>) {
        let mut any = false;
        while let Some(front) = st.pending.front() {
            let ready = front.copied.load(Ordering::Acquire)
                && (!front.immediate || front.durable.load(Ordering::Acquire));
            if !ready || self.latch.is_tripped() {
                break;
            }
            let Some(front) = st.pending.pop_front() else { break };
            for (i, op) in front.ops.iter().enumerate() {
                if let Some(key) = front.ops.get(i + APPLY_AHEAD).and_then(IndexOp::key) {
                    self.index.prefetch_for_write(key.of(&front.keys));
                }
                self.apply(&mut st.space, &front.keys, op);
            }
            front.indexed.store(true, Ordering::Release);
            front.wake();
            any = true;
        }
        if any {
            self.commit.wake.notify_all();
        }
    }

    /// Apply one index change and its space accounting.
    fn apply(&self, space: &mut SpaceMap, keys: &[u8], op: &IndexOp) {
        let segment_of =
            |l: &Location| self.geometry.segment_of(l.offset).map_or(u32::MAX, |s| s.0);
        let forget = |space: &mut SpaceMap, old: Option<Location>| {
            if let Some(old) = old {
                space.remove_live(segment_of(&old), u64::from(old.len));
            }
        };
        match op {
            IndexOp::Put(key, location) => {
                let old = self.index.insert(key.of(keys), *location);
                forget(space, old);
                space.add_live(segment_of(location), u64::from(location.len));
            }
            IndexOp::Move(key, from, to) => {
                if self.index.replace_if(key.of(keys), *from, *to) {
                    forget(space, Some(*from));
                    space.add_live(segment_of(to), u64::from(to.len));
                }
            }
            IndexOp::Delete(key) => {
                let old = self.index.remove(key.of(keys));
                forget(space, old);
            }
            IndexOp::Clear => {
                self.index.clear();
                space.clear_live();
            }
            IndexOp::Keep => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use mcstore_pmem::{CrashMode, Medium, MemberId, SimMedium};
    use mcstore_recovery::sites;

    use crate::db::Db;
    use crate::options::Durability;
    use crate::test_support::{Forwarding, reopen, sim_db, small_options};
    use crate::{Batch, Error};

    /// On a medium whose fences take a millisecond (groups outlast any spin), writers sleep
    /// and are woken one by one — as their slots become visible, or to lead the next group —
    /// and none is left asleep: every put returns, groups carry several writers, and the spin
    /// gate has stopped spinning.
    #[test]
    fn writers_behind_slow_groups_sleep_and_are_all_woken() {
        let sim = Arc::new(SimMedium::new(4 << 20));
        let slow = Forwarding::slow_fences(sim, std::time::Duration::from_millis(1));
        let db = Db::create_on(slow, small_options()).unwrap();
        let (threads, puts) = (8u8, 25u8);
        let (done, finished) = std::sync::mpsc::channel();
        for t in 0..threads {
            let (db, done) = (db.clone(), done.clone());
            std::thread::spawn(move || {
                for i in 0..puts {
                    db.put([t, i], [t ^ i; 24]).unwrap();
                }
                done.send(t).unwrap();
            });
        }
        for _ in 0..threads {
            // A writer never woken would hang here: fail instead.
            finished.recv_timeout(std::time::Duration::from_secs(60)).expect("a writer hung");
        }
        for t in 0..threads {
            for i in 0..puts {
                assert_eq!(db.get([t, i]).unwrap().as_deref(), Some(&[t ^ i; 24][..]));
            }
        }
        assert!(db.stats().commit_group_max >= 2, "writers shared groups");
        let spinning = (0..8).filter(|_| db.inner.commit.spin.should_spin()).count();
        assert!(spinning <= 1, "the gate stopped spinning ({spinning} of 8 waits would spin)");
    }

    /// A write that fails while writers sleep behind slow groups latches the store, and every
    /// sleeping writer is woken to return the error: none is left asleep (whether the failed
    /// write was a record's copy or a group's tail store).
    #[test]
    fn a_failed_write_wakes_every_sleeping_writer() {
        for nth in [7, 20, 41] {
            let sim = Arc::new(SimMedium::new(4 << 20));
            let slow = Forwarding::slow_fences(sim.clone(), std::time::Duration::from_millis(1));
            let db = Db::create_on(slow, small_options()).unwrap();
            sim.fail_nth(mcstore_pmem::SimOp::Write, nth, false);
            let (done, finished) = std::sync::mpsc::channel();
            for t in 0..8u8 {
                let (db, done) = (db.clone(), done.clone());
                std::thread::spawn(move || {
                    let outcome = (0..50u8).find_map(|i| db.put([t, i], [i; 24]).err());
                    done.send(outcome).unwrap();
                });
            }
            let outcomes: Vec<Option<Error>> = (0..8)
                .map(|_| finished.recv_timeout(std::time::Duration::from_secs(60)).expect("hung"))
                .collect();
            assert!(outcomes.iter().any(Option::is_some), "write {nth}: the failure was met");
            assert!(matches!(db.put(b"after", b"x"), Err(Error::Failed { .. })), "latched");
        }
    }

    /// Large values go through `write_through`, and no group flush covers their whole lines
    /// again; what the group does flush (headers, keys, edge lines, small records) is enough:
    /// each write is in the persistent image when it is acknowledged.
    #[test]
    fn written_through_lines_are_not_flushed_again_and_writes_are_durable_at_ack() {
        let sim = Arc::new(SimMedium::new(1 << 20));
        let recording = Forwarding::new(sim.clone(), true);
        let db = Db::create_on(recording.clone(), small_options()).unwrap();
        let value = |i: u8, len: usize| (0..len).map(|j| (j as u8) ^ i).collect::<Vec<u8>>();
        let mut written: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for i in 0..6u8 {
            let key = vec![b'k'; usize::from(i)];
            let v = value(i, 2048 + usize::from(i) * 1000 + usize::from(i % 3));
            if i % 2 == 0 {
                db.put(&key, &v).unwrap();
            } else {
                let small = vec![i; 40];
                db.apply_batch(Batch::default().put([b's', i], &small).put(&key, &v)).unwrap();
                written.push((vec![b's', i], small));
            }
            written.push((key, v));
            let image = Arc::new(SimMedium::from_image(sim.persistent_image(), MemberId(0)));
            let acked = Db::open_on(image, small_options()).unwrap();
            for (k, v) in &written {
                assert_eq!(acked.get(k).unwrap().as_deref(), Some(&v[..]), "write {i} not durable");
            }
        }
        let through = recording.through.lock().clone();
        assert_eq!(through.len(), 6);
        for &(offset, len) in &through {
            let (first, last) = (offset.next_multiple_of(64), (offset + len) / 64 * 64);
            for &(at, n) in recording.flushes.lock().iter() {
                assert!(at + n <= first || at >= last, "flush [{at}, +{n}) over [{first}, {last})");
            }
        }
    }

    /// A writer thread's next write reuses its last slot (no allocation), and nothing of the
    /// earlier write carries over into it: keys, index changes, hashes, flags.
    #[test]
    fn a_writer_reuses_its_slot_and_nothing_carries_over() {
        use std::sync::atomic::Ordering;

        use super::queue::SPARE_SLOT;

        let (sim, db) = sim_db(1 << 20, small_options());
        db.apply_batch(Batch::default().put("a", vec![1u8; 3000]).put("bb", "2").remove("zz"))
            .unwrap();
        let first = SPARE_SLOT.with_borrow(|spare| spare.as_ref().map(Arc::as_ptr));
        assert!(first.is_some(), "the batch's slot is kept");
        db.put_with("c", "3", Durability::None).unwrap();
        db.put("d", "4").unwrap();
        SPARE_SLOT.with_borrow(|spare| {
            let slot = spare.as_ref().expect("the put's slot is kept");
            assert_eq!(Some(Arc::as_ptr(slot)), first);
            assert_eq!(slot.keys, b"d");
            assert_eq!((slot.ops.len(), slot.key_hashes.len()), (1, 1));
            assert!(slot.through.is_empty() && slot.immediate);
            assert!(slot.copied.load(Ordering::Relaxed) && slot.durable.load(Ordering::Relaxed));
        });
        drop(db);
        let db = reopen(&sim, small_options());
        assert_eq!(db.get("a").unwrap().unwrap(), vec![1u8; 3000]);
        assert_eq!(db.get("c").unwrap().unwrap(), b"3");
        assert_eq!(db.get("d").unwrap().unwrap(), b"4");
        assert_eq!(db.len(), 4);
    }

    /// Writes whose slots wait in the open segment (`None` durability: copied and visible, no
    /// fence), then one `Immediate` write that leads them all.
    fn queue_a_group(db: &Db) {
        let lazy = db.with_durability(Durability::None);
        for i in 0..5u8 {
            lazy.put([b'k', i], vec![i; 100]).unwrap();
        }
        lazy.apply_batch(Batch::default().put("b1", "1").put("b2", "2").remove("before")).unwrap();
    }

    #[test]
    fn a_group_of_writers_shares_one_pair_of_fences() {
        let (sim, db) = sim_db(1 << 20, small_options());
        db.put("before", "b").unwrap();
        let fences = sim.fences_seen();
        queue_a_group(&db);
        assert_eq!(sim.fences_seen(), fences, "None writes do not fence");
        // Visible before durable.
        assert_eq!(db.get([b'k', 3]).unwrap().unwrap(), vec![3u8; 100]);
        assert_eq!(db.get("before").unwrap(), None);
        sim.reset_fences();
        db.put("leader", "l").unwrap();
        assert_eq!(sim.fence_log(), vec![sites::RECORD_PERSIST, sites::TAIL_PUBLISH]);
        let stats = db.stats();
        assert_eq!(stats.commit_group_max, 7, "{stats:?}");
        drop(db);
        let db = reopen(&sim, small_options());
        assert_eq!(db.get("b2").unwrap().unwrap(), b"2");
        assert_eq!(db.len(), 8);
    }

    /// Crash at each fence of a group's persist (several writers' slots in it), both crash
    /// modes: the whole group is in the recovered pool or none of it; earlier writes stay.
    #[test]
    fn crash_at_each_fence_of_a_group_keeps_it_whole_or_absent() {
        for crash_at in 1..=2 {
            for mode in [CrashMode::PerLinePrefix, CrashMode::AnySubset] {
                let (sim, db) = sim_db(1 << 20, small_options());
                db.put("before", "b").unwrap();
                db.put("kept", "k").unwrap();
                queue_a_group(&db);
                sim.reset_fences();
                sim.crash_at_fence(Some(crash_at));
                assert!(db.put("leader", "l").is_err());
                assert!(db.stats().failed);
                drop(db);
                let mut outcomes = BTreeSet::new();
                for image in sim.crash_images(mode, 256, crash_at) {
                    let medium: Arc<dyn Medium> =
                        Arc::new(SimMedium::from_image(image, MemberId(0)));
                    let db = Db::open_on(medium, small_options()).unwrap();
                    assert!(!db.stats().failed, "crash at {crash_at} {mode:?}: damage");
                    assert_eq!(db.get("kept").unwrap().unwrap(), b"k");
                    let applied = db.get("leader").unwrap().is_some();
                    assert_eq!(db.get("before").unwrap().is_none(), applied);
                    assert_eq!(db.len(), if applied { 9 } else { 2 });
                    outcomes.insert(applied);
                }
                if crash_at == 1 {
                    assert_eq!(outcomes, BTreeSet::from([false]));
                }
            }
        }
    }

    /// `sync()` makes `None` and `Eventual` writes durable; close does too.
    #[test]
    fn sync_and_close_persist_relaxed_writes() {
        let (sim, db) = sim_db(1 << 20, small_options());
        let lazy = db.with_durability(Durability::Eventual);
        lazy.put("a", "1").unwrap();
        db.put_with("b", "2", Durability::None).unwrap();
        let image = sim.persistent_image();
        let crashed =
            Db::open_on(Arc::new(SimMedium::from_image(image, MemberId(0))), small_options())
                .unwrap();
        assert_eq!(crashed.len(), 0, "not durable before sync");
        lazy.sync().unwrap();
        let image = sim.persistent_image();
        let synced =
            Db::open_on(Arc::new(SimMedium::from_image(image, MemberId(0))), small_options())
                .unwrap();
        assert_eq!(synced.len(), 2);
        db.put_with("c", "3", Durability::None).unwrap();
        drop((db, lazy));
        let db = reopen(&sim, small_options());
        assert_eq!(db.get("c").unwrap().unwrap(), b"3");
    }

    /// The background flusher makes `Eventual` writes durable without a `sync()`.
    #[test]
    fn the_flusher_persists_eventual_writes() {
        let options = small_options()
            .background(true)
            .compaction_interval(None)
            .flush_interval(std::time::Duration::from_millis(5));
        let (sim, db) = sim_db(1 << 20, options);
        db.with_durability(Durability::Eventual).put("a", "1").unwrap();
        let mut durable = false;
        for _ in 0..2000 {
            let image = sim.persistent_image();
            let medium: Arc<dyn Medium> = Arc::new(SimMedium::from_image(image, MemberId(0)));
            if Db::open_on(medium, small_options()).unwrap().len() == 1 {
                durable = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert!(durable, "the flusher never persisted the write");
    }

    /// A roll makes every slot of the full segment durable first, so durability is a prefix.
    #[test]
    fn a_roll_persists_relaxed_writes_first() {
        let (sim, db) = sim_db(1 << 20, small_options());
        let lazy = db.with_durability(Durability::None);
        let mut i = 0u32;
        while db.stats().segment_rolls < 2 {
            lazy.put(i.to_be_bytes(), vec![1u8; 1000]).unwrap();
            i += 1;
        }
        let image = sim.persistent_image();
        let medium: Arc<dyn Medium> = Arc::new(SimMedium::from_image(image, MemberId(0)));
        let crashed = Db::open_on(medium, small_options()).unwrap();
        // Everything before the last write (which opened the new segment) is durable.
        assert!(crashed.len() >= i as usize - 1, "{} of {i}", crashed.len());
        assert!(!matches!(crashed.get(0u32.to_be_bytes()), Ok(None) | Err(Error::Failed { .. })));
    }

    /// Run `work` on its own thread; `None` if it has not returned after 5 s (a hang
    /// detector, not a timing assertion).
    fn within_bound<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(work());
        });
        rx.recv_timeout(std::time::Duration::from_secs(5)).ok()
    }

    /// A medium failure at the N-th write or fence (once or persistently), met during create,
    /// a put from one thread or puts from three: every call returns (an error, then
    /// `Failed`) and close returns — nothing waits for a leader or a copy that failed.
    #[test]
    fn an_injected_failure_wakes_every_caller() {
        use mcstore_pmem::SimOp;
        for op in [SimOp::Write, SimOp::Fence] {
            for n in 1..=12 {
                for persistent in [false, true] {
                    for threads in [1usize, 3] {
                        let done = within_bound(move || {
                            let sim = Arc::new(SimMedium::new(1 << 20));
                            sim.fail_nth(op, n, persistent);
                            let medium: Arc<dyn Medium> = sim.clone();
                            let Ok(db) = Db::create_on(medium, small_options()) else {
                                return;
                            };
                            let db = Arc::new(db);
                            let workers: Vec<_> = (0..threads)
                                .map(|t| {
                                    let db = Arc::clone(&db);
                                    std::thread::spawn(move || {
                                        let mut failed = false;
                                        for i in 0..20u8 {
                                            let result = db.put([t as u8, i], vec![i; 300]);
                                            if failed {
                                                assert!(
                                                    matches!(result, Err(Error::Failed { .. })),
                                                    "{result:?}"
                                                );
                                            }
                                            failed |= result.is_err();
                                        }
                                    })
                                })
                                .collect();
                            for worker in workers {
                                worker.join().unwrap();
                            }
                            drop(db);
                        });
                        assert!(
                            done.is_some(),
                            "{op:?} n={n} persistent={persistent} threads={threads} hung"
                        );
                    }
                }
            }
        }
    }
}
