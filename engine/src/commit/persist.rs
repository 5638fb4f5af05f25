//! The leader's side of the group commit: persisting a group (one flush of its run,
//! RECORD_PERSIST, one tail store, TAIL_PUBLISH), a lone writer's group of one, the roll's
//! quiesce, `sync`'s persist of everything reserved, and the wake-ups that follow each.
//!
//! INVARIANT (with `commit.rs`): a tail word covers only slots whose copied flag was Acquired and
//! whose bytes were flushed or written through, then fenced; one persister at a time
//! (`persisting`), so tails are published in order; after every persist, under the commit lock,
//! the next leader (or, once the store latched, every sleeping writer) is woken.

use std::borrow::Borrow;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use mcstore_recovery::pool;
use parking_lot::MutexGuard;

use super::APPLY_AHEAD;
use super::queue::{IndexOp, PersistClaim, QueueState, Slot, through_ranges};
use crate::db::Inner;
use crate::error::{Error, Result};
use crate::stats::Counters;
use crate::writer::{LogWriter, OpenSegment};

/// Bytes past a persisted group that the leader prefetches for the next one (a small record's
/// lines, and the next).
const NEXT_RECORDS_PREFETCH_BYTES: u64 = 256;

/// At most this many keys of a group have their index lines prefetched between its fences:
/// room for the first keys of eight batches (whose writers prefetched them already) without
/// leaving the puts of the group behind them unprefetched, and a bound on a large group's work.
const INDEX_PREFETCH_KEYS: usize = 8 * APPLY_AHEAD;

/// The keys `Inner::prefetch_index_of` prefetches for `slots`, in order.
fn index_prefetch_keys<S: Borrow<Slot>>(slots: &[S]) -> impl Iterator<Item = &[u8]> {
    slots
        .iter()
        .map(Borrow::borrow)
        .filter(|slot| slot.immediate)
        .flat_map(|slot| {
            slot.ops.iter().take(APPLY_AHEAD).filter_map(IndexOp::key).map(|key| key.of(&slot.keys))
        })
        .take(INDEX_PREFETCH_KEYS)
}

impl Inner {
    /// Persist as the leader: the first `required` pending slots (waiting for their copies)
    /// and every further slot already copied. One flush of the run, RECORD_PERSIST, one tail
    /// store, TAIL_PUBLISH. The lock is released while persisting.
    pub(super) fn lead(&self, st: &mut MutexGuard<'_, QueueState>, required: usize) -> Result<()> {
        let Some(open) = st.writer.as_ref().and_then(LogWriter::open_segment) else {
            return Ok(());
        };
        self.commit.persisting.store(true, Ordering::Release);
        let slots: Vec<Arc<Slot>> = st.pending.iter().cloned().collect();
        let from = self.commit.published();
        let result = MutexGuard::unlocked(st, || {
            let result = self.persist_group(open, from, &slots, required);
            self.commit.persisting.store(false, Ordering::Release);
            result
        });
        if result.is_ok() {
            self.count_persisted(st);
        }
        self.advance(st);
        self.commit.wake_waiters(st, self.latch.is_tripped());
        result
    }

    /// Persist `slot` as the leader of a group of one (its writer claimed the leadership when
    /// it reserved, alone): everything before it in the open segment is already copied (no
    /// other slot was pending), so `[published, end)` is whole. One flush of it,
    /// RECORD_PERSIST, the tail store, TAIL_PUBLISH; then index and wake as `lead` does.
    pub(super) fn lead_alone(
        &self,
        slot: &Slot,
        segment: OpenSegment,
        claim: PersistClaim<'_>,
    ) -> Result<()> {
        // INVARIANT: while the claim is held no one else persists or rolls (a roll waits for
        // `persisting` to clear), so `published` is this segment's and at most `slot.start`.
        let from = self.commit.published();
        debug_assert!(from <= slot.start);
        let result = self
            .latch
            .check()
            .and_then(|()| self.persist_range(segment, from, slot.end, &slot.through, &[slot]));
        if result.is_ok() {
            slot.durable.store(true, Ordering::Release);
        }
        let mut st = claim.release();
        if result.is_ok() {
            self.count_persisted(&mut st);
        }
        self.advance(&mut st);
        self.commit.wake_waiters(&st, self.latch.is_tripped());
        result
    }

    /// Wake every waiting writer: sleeping ones (their slots' `sleeping`) and those waiting on
    /// the condition variable (conflicts, `sync`). For a store that latched.
    pub(crate) fn wake_all_waiters(&self) {
        let st = self.commit.state.lock();
        self.commit.wake_waiters(&st, true);
    }

    /// Count the slots the published tail now covers as one group.
    fn count_persisted(&self, st: &mut MutexGuard<'_, QueueState>) {
        let published = self.commit.published();
        let mut group = 0;
        while st.unpersisted.front().is_some_and(|&end| end <= published) {
            st.unpersisted.pop_front();
            group += 1;
        }
        self.count_group(group);
    }

    fn count_group(&self, slots: u64) {
        if slots > 0 {
            Counters::add(&self.commit.counters.groups, 1);
            Counters::add(&self.commit.counters.slots, slots);
            self.commit.counters.max_slots.fetch_max(slots, Ordering::Relaxed);
        }
    }

    fn persist_group(
        &self,
        open: OpenSegment,
        from: u64,
        slots: &[Arc<Slot>],
        required: usize,
    ) -> Result<()> {
        let mut included = 0;
        let mut target = from;
        for (i, slot) in slots.iter().enumerate() {
            // Acquire: pairs with the writer's Release in `copy`.
            if i < required {
                while !slot.copied.load(Ordering::Acquire) {
                    std::thread::yield_now();
                }
            } else if !slot.copied.load(Ordering::Acquire) {
                break;
            }
            included = i + 1;
            target = slot.end;
        }
        if included == slots.len() {
            // Everything reserved before the snapshot: visible-but-not-durable slots (already
            // popped) are copied too.
            target = open.tail;
        }
        self.latch.check()?;
        if target <= from {
            return Ok(());
        }
        let through = through_ranges(&slots[..included]);
        self.persist_range(open, from, target, &through, &slots[..included])?;
        for slot in &slots[..included] {
            slot.durable.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Flush `[from, to)` of `open`'s data area except the `through` ranges (pool offsets,
    /// ascending: lines their writers wrote through, already durable), fence, publish `to` as
    /// its tail, fence. Between the fences, start loading the index lines `slots` will write.
    fn persist_range(
        &self,
        open: OpenSegment,
        from: u64,
        to: u64,
        through: &[(u64, u64)],
        slots: &[impl Borrow<Slot>],
    ) -> Result<()> {
        let start = self.geometry.data_start(open.id) + from;
        let end = self.geometry.data_start(open.id) + to;
        // PERSIST: RECORD_PERSIST orders every copied record of the run before the tail store.
        if let Err(error) = self.flush_except(start, end, through) {
            self.latch.trip(format!("persisting records failed: {error}"));
            return Err(Error::recovery("persisting records", error));
        }
        self.prefetch_index_of(slots);
        // PERSIST: one failure-atomic store publishes the whole group (TAIL_PUBLISH).
        let published =
            pool::publish_tail(self.medium.as_ref(), &self.geometry, open.id, &open.words, to);
        if let Err(error) = published {
            self.latch.trip(format!("publishing the committed tail failed: {error}"));
            return Err(Error::recovery("publishing the committed tail", error));
        }
        // PERSIST: a replica that missed a write of this group (marked stale while it was
        // written) is recorded as stale before the group is acknowledged. Otherwise, after a
        // crash, the set's table would still call it in sync, and an open that repairs damage
        // on the primary could take the replica's older, valid-looking bytes as a good copy and
        // lose an acknowledged write.
        // The common case is one Acquire load: no member state changed since the last check
        // (a change is counted after its state is stored, and a writer's mark_stale happens
        // before its copied flag, which this leader Acquired).
        if let Some(replicas) = &self.replicas {
            let changes = replicas.poolset().state_changes();
            if changes != self.commit.states_seen.load(Ordering::Acquire) {
                if replicas.states_changed()
                    && let Err(error) = replicas.persist_states()
                {
                    self.latch.trip(format!("recording a stale replica failed: {error}"));
                    return Err(crate::replicas::replica_error("recording a stale replica", error));
                }
                // One persister at a time (the persisting flag, or the commit lock in quiesce):
                // a change counted after `changes` was read is seen by the next group.
                self.commit.states_seen.store(changes, Ordering::Release);
            }
        }
        self.commit.published.store(to, Ordering::Release);
        // The next group's records start at `end`: their first lines start toward the cache
        // now, while this group's writers index and return, instead of missing at the next
        // copy (a put loop's mean fell ~7 %, docs/performance.md, session 14).
        self.medium.prefetch(end, NEXT_RECORDS_PREFETCH_BYTES);
        Ok(())
    }

    /// Start loading the index lines (the first slot and the tags) of the keys among the first
    /// `APPLY_AHEAD` ops of each of `slots` that becomes visible once durable, at most
    /// `INDEX_PREFETCH_KEYS` in all; the apply prefetches the rest of a slot's keys ahead of
    /// itself (`advance`). A slot visible once copied may already be applied.
    ///
    /// Called between a group's two fences. Our reading of a put loop's profile
    /// (docs/performance.md, session 17): a prefetch into a large table does not retire until
    /// its page walk ends, and here that wait overlaps the write-backs' drain, which the next
    /// locked instruction waits for anyway (where flushes are fenced; on an `msync` medium the
    /// hint is merely early).
    fn prefetch_index_of(&self, slots: &[impl Borrow<Slot>]) {
        for key in index_prefetch_keys(slots) {
            self.index.prefetch_for_write(key);
        }
    }

    /// Flush `[start, end)` except the `through` ranges (ascending), then RECORD_PERSIST.
    fn flush_except(
        &self,
        start: u64,
        end: u64,
        through: &[(u64, u64)],
    ) -> std::result::Result<(), mcstore_recovery::Error> {
        let mut at = start;
        for &(skip_start, skip_end) in through {
            let skip_start = skip_start.clamp(at, end);
            if skip_start > at {
                self.medium.flush(at, skip_start - at)?;
            }
            at = at.max(skip_end.min(end));
        }
        // PERSIST: the last piece (possibly empty) and RECORD_PERSIST.
        pool::flush_records(self.medium.as_ref(), at, end - at)
    }

    /// Make every reserved byte of the open segment durable and every pending slot visible,
    /// holding the lock (a roll needs it; copies and the current leader finish without it).
    pub(crate) fn quiesce(&self, st: &mut MutexGuard<'_, QueueState>) -> Result<()> {
        while self.commit.persisting.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        for slot in &st.pending {
            while !slot.copied.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
        }
        self.latch.check()?;
        if let Some(open) = st.writer.as_ref().and_then(LogWriter::open_segment) {
            let from = self.commit.published();
            if open.tail > from {
                let pending: Vec<Arc<Slot>> = st.pending.iter().cloned().collect();
                let through = through_ranges(&pending);
                self.persist_range(open, from, open.tail, &through, &pending)?;
            }
        }
        let group = st.unpersisted.len() as u64;
        st.unpersisted.clear();
        self.count_group(group);
        for slot in &st.pending {
            slot.durable.store(true, Ordering::Release);
        }
        self.advance(st);
        debug_assert!(st.pending.is_empty());
        Ok(())
    }

    /// Make every write reserved before this call durable (`sync()`, close, the flusher with
    /// `all = false` persists only what is already copied).
    pub(crate) fn persist_reserved(&self, all: bool) -> Result<()> {
        self.latch.check()?;
        let mut st = self.commit.state.lock();
        let Some(open) = st.writer.as_ref().and_then(LogWriter::open_segment) else {
            return Ok(());
        };
        loop {
            self.latch.check()?;
            let current = st.writer.as_ref().and_then(LogWriter::open_segment);
            // A roll made everything before it durable.
            let rolled = current.is_none_or(|c| c.seq != open.seq);
            if rolled || self.commit.published() >= open.tail {
                return Ok(());
            }
            if !self.commit.persisting.load(Ordering::Acquire) {
                let required = if all { st.pending.len() } else { 0 };
                self.lead(&mut st, required)?;
                if !all {
                    return Ok(());
                }
                continue;
            }
            self.commit.wake.wait(&mut st);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{APPLY_AHEAD, INDEX_PREFETCH_KEYS, index_prefetch_keys};
    use crate::commit::queue::{IndexOp, KeyRange, Slot};
    use crate::index::Location;

    fn slot(immediate: bool, ops: &[(&str, u8)]) -> Slot {
        let mut slot = Slot::default();
        slot.immediate = immediate;
        let at = Location { offset: 0, len: 64, segment_seq: 1, lsn: 1 };
        for &(kind, byte) in ops {
            let key = [byte; 3];
            let op = match kind {
                "put" => IndexOp::Put(KeyRange::push(&mut slot.keys, &key), at),
                "move" => IndexOp::Move(KeyRange::push(&mut slot.keys, &key), at, at),
                "delete" => IndexOp::Delete(KeyRange::push(&mut slot.keys, &key)),
                "keep" => IndexOp::Keep,
                _ => IndexOp::Clear,
            };
            slot.ops.push(op);
        }
        slot
    }

    /// A group's leader prefetches the keys of the slots visible once durable only: the keys
    /// among each one's first `APPLY_AHEAD` ops (the apply prefetches the rest ahead of
    /// itself) — of puts, moves and deletes, a keep or a clear has none — and
    /// `INDEX_PREFETCH_KEYS` in all.
    #[test]
    fn a_leader_prefetches_the_first_keys_of_each_slot_visible_once_durable() {
        assert_eq!(
            (APPLY_AHEAD, INDEX_PREFETCH_KEYS),
            (8, 64),
            "the slots below are laid out for these"
        );
        let puts = |from: u8| (from..from + 10).map(|b| ("put", b)).collect::<Vec<_>>();
        // Eight ops, six with keys (1..=6), then a ninth the leader leaves to the apply.
        let mixed = [
            ("keep", 0),
            ("put", 1),
            ("clear", 0),
            ("delete", 2),
            ("move", 3),
            ("put", 4),
            ("put", 5),
            ("put", 6),
            ("put", 7),
        ];
        let mut slots = vec![slot(true, &mixed), slot(false, &puts(240))];
        slots.extend((1..=8).map(|n| slot(true, &puts(n * 20))));
        let keys: Vec<u8> = index_prefetch_keys(&slots).map(|key| key[0]).collect();
        // 6 keys, then 8 from each put slot until 64: seven slots whole, two keys of the eighth.
        let mut expected: Vec<u8> = (1..=6).collect();
        for n in 1..=7 {
            expected.extend(n * 20..n * 20 + 8);
        }
        expected.extend([160, 161]);
        assert_eq!(keys, expected);
        assert!(index_prefetch_keys(&[&slots[1]]).next().is_none(), "visible once copied");
        assert!(index_prefetch_keys::<Slot>(&[]).next().is_none());
    }
}
