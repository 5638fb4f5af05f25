//! The commit queue's state (`CommitQueue`, `QueueState`) and what it holds: one `Slot` per
//! writer's reserved records with the index changes it makes (`IndexOp` over `KeyRange`s of the
//! slot's key bytes), the persisting claim (`PersistClaim`), the copy guard (`CopyGuard`), and
//! the per-thread spare slot a write reuses. The protocol that drives them is `commit.rs`.
//!
//! INVARIANT: a slot is reused (`Slot::take`) only once no one else holds it: indexed, so out of
//! the pending queue, and in no leader's snapshot; its flags and buffers are cleared first.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::spin::SpinGate;
use crate::db::Inner;
use crate::index::Location;
use crate::space::SpaceMap;
use crate::writer::LogWriter;

/// A spare slot is kept for reuse only while its buffers stay this small (bytes): a batch of a
/// few thousand small records keeps its slot, a larger one's is freed after use.
const SPARE_SLOT_KEEP_BYTES: usize = 256 << 10;

std::thread_local! {
    /// Each writer thread's last slot, once no one else holds it: the next write reuses it and
    /// its buffers, so a put allocates nothing for its slot.
    pub(crate) static SPARE_SLOT: std::cell::RefCell<Option<Arc<Slot>>> = const { std::cell::RefCell::new(None) };
}

/// What indexing one slot does. Keys are ranges of the slot's `keys` (one allocation per slot,
/// not one per record).
#[derive(Debug)]
pub(crate) enum IndexOp {
    Put(KeyRange, Location),
    /// Compaction's copy: re-point the key only if it is still at the old location.
    Move(KeyRange, Location, Location),
    /// Compaction's copy of a tombstone or clear: kept in the log, no index change.
    Keep,
    Delete(KeyRange),
    Clear,
}

impl IndexOp {
    /// The key it changes, if one.
    pub(crate) fn key(&self) -> Option<KeyRange> {
        match self {
            IndexOp::Put(key, _) | IndexOp::Move(key, _, _) | IndexOp::Delete(key) => Some(*key),
            IndexOp::Keep | IndexOp::Clear => None,
        }
    }
}

/// A key's bytes within its slot's `keys`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyRange {
    start: usize,
    end: usize,
}

impl KeyRange {
    /// Append `key` to `keys`; its range.
    pub(crate) fn push(keys: &mut Vec<u8>, key: &[u8]) -> Self {
        let start = keys.len();
        keys.extend_from_slice(key);
        Self { start, end: keys.len() }
    }

    /// The key's bytes in `keys`.
    pub(crate) fn of<'k>(&self, keys: &'k [u8]) -> &'k [u8] {
        &keys[self.start..self.end]
    }
}

/// One writer's reserved records: a contiguous run of the open segment's data area.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// Data-area offset of its first byte.
    pub(crate) start: u64,
    /// Data-area offset after its last byte.
    pub(crate) end: u64,
    /// Visible only once durable.
    pub(crate) immediate: bool,
    /// Its bytes are in the log (Release by the writer, Acquire by the leader).
    pub(crate) copied: AtomicBool,
    /// A published tail covers it.
    pub(crate) durable: AtomicBool,
    /// Its index changes are applied (it is visible).
    pub(crate) indexed: AtomicBool,
    /// The keys its `ops` name, back to back.
    pub(crate) keys: Vec<u8>,
    pub(crate) ops: Vec<IndexOp>,
    /// Hashes of the keys it writes (`pending_conflicts`).
    pub(crate) key_hashes: Vec<u64>,
    /// Its large values go to the medium with `Medium::write_through`.
    pub(crate) write_through: bool,
    /// Pool ranges (whole lines, ascending) its writer wrote through (`write_through`): durable
    /// once copied, so a leader's flush skips them.
    pub(crate) through: Vec<(u64, u64)>,
    /// The thread that took it (its writer, the only one that waits for it).
    owner: Option<std::thread::Thread>,
    /// Its writer is parked waiting for it (set and read under the commit lock).
    pub(crate) sleeping: AtomicBool,
}

/// Until dropped after the copy: if the writer unwinds between reserving and copying, the
/// store latches and the slot counts as copied, so no leader waits for it forever and no tail
/// ever covers its range.
pub(crate) struct CopyGuard<'a> {
    pub(crate) slot: &'a Slot,
    pub(crate) inner: &'a Inner,
}

impl Slot {
    /// A slot filled by `fill`: this thread's spare (flags clear, buffers emptied with their
    /// capacity kept) or a new one.
    pub(crate) fn take(fill: impl FnOnce(&mut Self)) -> Arc<Self> {
        if let Some(mut slot) = SPARE_SLOT.with_borrow_mut(Option::take)
            && let Some(spare) = Arc::get_mut(&mut slot)
        {
            spare.keys.clear();
            spare.ops.clear();
            spare.key_hashes.clear();
            spare.through.clear();
            *spare.copied.get_mut() = false;
            *spare.durable.get_mut() = false;
            *spare.indexed.get_mut() = false;
            *spare.sleeping.get_mut() = false;
            fill(spare);
            return slot;
        }
        // A spare is only ever this thread's own: its owner is already this thread.
        let mut slot = Self { owner: Some(std::thread::current()), ..Self::default() };
        fill(&mut slot);
        Arc::new(slot)
    }

    /// Unpark its writer if it sleeps waiting for it (the caller holds the commit lock, so a
    /// writer about to sleep has either set `sleeping` or will check its slot again first).
    pub(crate) fn wake(&self) {
        if self.sleeping.load(Ordering::Relaxed)
            && let Some(owner) = &self.owner
        {
            owner.unpark();
        }
    }

    /// Keep `slot` as this thread's spare if no one else holds it any more (its writer is done
    /// with it: indexed, so out of the pending queue; no leader's snapshot still holds it) and
    /// its buffers are small.
    pub(crate) fn recycle(mut slot: Arc<Self>) {
        let keep = Arc::get_mut(&mut slot).is_some_and(|s| {
            let bytes = s.keys.capacity()
                + s.ops.capacity() * std::mem::size_of::<IndexOp>()
                + s.key_hashes.capacity() * std::mem::size_of::<u64>()
                + s.through.capacity() * std::mem::size_of::<(u64, u64)>();
            bytes <= SPARE_SLOT_KEEP_BYTES
        });
        if keep {
            SPARE_SLOT.with_borrow_mut(|spare| *spare = Some(slot));
        }
    }
}

impl Drop for CopyGuard<'_> {
    fn drop(&mut self) {
        if !self.slot.copied.load(Ordering::Acquire) {
            self.inner.latch.trip("a writer unwound between reserving and copying its records");
            self.slot.copied.store(true, Ordering::Release);
            // No lock is held here (the writer copies without it).
            self.inner.wake_all_waiters();
        }
    }
}

/// The persisting flag, set by its holder (under the commit lock, when it was clear) and cleared
/// by `release` — or, when the holder returns early or unwinds, by `drop`, which also wakes the
/// waiters (under the lock, so none misses it): no roll or writer waits for it forever.
pub(crate) struct PersistClaim<'a> {
    queue: &'a CommitQueue,
    held: bool,
}

impl<'a> PersistClaim<'a> {
    /// Set `persisting`; the caller holds the commit lock and saw it clear.
    pub(crate) fn take(queue: &'a CommitQueue) -> Self {
        queue.persisting.store(true, Ordering::Release);
        Self { queue, held: true }
    }

    /// Clear `persisting` (without the lock: a roll holding it may be waiting for this), then
    /// take the commit lock; the caller wakes the waiters under it.
    pub(crate) fn release(mut self) -> MutexGuard<'a, QueueState> {
        self.held = false;
        self.queue.persisting.store(false, Ordering::Release);
        self.queue.state.lock()
    }
}

impl Drop for PersistClaim<'_> {
    fn drop(&mut self) {
        if self.held {
            self.queue.persisting.store(false, Ordering::Release);
            let st = self.queue.state.lock();
            self.queue.wake_waiters(&st, true);
        }
    }
}

/// The keys a read-before-write operation reads: it waits until none of them has a write
/// reserved but not yet visible, so it reads the newest value (CAS linearizes with the group).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Keys<'a> {
    /// Reads nothing.
    None,
    /// Reads these keys.
    Some(&'a [&'a [u8]]),
    /// Reads one key.
    One(&'a [u8]),
    /// Depends on every key (`clear`).
    All,
}

/// Group-commit figures for `stats()`.
#[derive(Debug, Default)]
pub(crate) struct GroupCounters {
    /// Persist rounds (each one pair of fences).
    pub groups: AtomicU64,
    /// Slots made durable by those rounds.
    pub slots: AtomicU64,
    /// Largest group.
    pub max_slots: AtomicU64,
}

/// State behind the commit lock.
pub(crate) struct QueueState {
    /// The log's space (`None` when read-only or failed at open).
    pub writer: Option<LogWriter>,
    /// Reserved slots not yet visible, in LSN order.
    pub(crate) pending: VecDeque<Arc<Slot>>,
    /// Per-segment used and live bytes.
    pub space: SpaceMap,
    /// Ends of the open segment's slots not yet durable (group sizes for `stats()`).
    pub(crate) unpersisted: VecDeque<u64>,
}

/// The commit queue of one open store.
pub(crate) struct CommitQueue {
    /// The commit lock's state.
    pub(crate) state: Mutex<QueueState>,
    /// Woken when slots become visible, a persist ends, or the store latches.
    pub(crate) wake: Condvar,
    /// A leader is persisting (set under the lock; cleared without it, so a roll holding the
    /// lock can wait for it).
    pub(crate) persisting: AtomicBool,
    /// The open segment's published committed tail.
    pub(crate) published: AtomicU64,
    /// The pool set's member-state change count whose states are known persisted
    /// (`PoolSet::state_changes`; `u64::MAX` until the first check).
    pub(crate) states_seen: AtomicU64,
    /// Whether a waiting writer spins before it sleeps.
    pub(crate) spin: SpinGate,
    /// Figures.
    pub counters: GroupCounters,
}

impl CommitQueue {
    /// A queue over `writer`, whose open segment's published tail is its current tail.
    pub(crate) fn new(writer: Option<LogWriter>, space: SpaceMap) -> Self {
        let published = writer.as_ref().and_then(LogWriter::open_segment).map_or(0, |s| s.tail);
        Self {
            state: Mutex::new(QueueState {
                writer,
                pending: VecDeque::new(),
                space,
                unpersisted: VecDeque::new(),
            }),
            wake: Condvar::new(),
            persisting: AtomicBool::new(false),
            published: AtomicU64::new(published),
            states_seen: AtomicU64::new(u64::MAX),
            spin: SpinGate::default(),
            counters: GroupCounters::default(),
        }
    }

    /// Take the commit lock (stats, close, compaction).
    pub(crate) fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock()
    }

    /// After a persist ends (or fails): wake the writer of the first slot still waiting for a
    /// leader, so it leads the next group — or, once the store has latched (`all`), every
    /// sleeping writer, to return the error — and the writers waiting on `wake` (conflicts,
    /// `sync`). Writers whose slots became visible are woken by `advance`. The caller holds the
    /// commit lock (`st`).
    pub(crate) fn wake_waiters(&self, st: &QueueState, all: bool) {
        for slot in &st.pending {
            if all {
                slot.wake();
            } else if slot.immediate && !slot.durable.load(Ordering::Acquire) {
                slot.wake();
                break;
            }
        }
        self.wake.notify_all();
    }

    /// The open segment's published tail.
    pub(crate) fn published(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }
}

/// The written-through ranges of `slots` (in reservation order, so ascending).
pub(crate) fn through_ranges(slots: &[Arc<Slot>]) -> Vec<(u64, u64)> {
    slots.iter().flat_map(|slot| slot.through.iter().copied()).collect()
}

/// The hash `pending_conflicts` compares keys by.
pub(crate) fn key_hash(key: &[u8]) -> u64 {
    foldhash::fast::FixedState::default().hash_one(key)
}

impl QueueState {
    /// The log's space (present: `submit` refuses read-only stores before `decide`).
    pub(crate) fn log(&self) -> &LogWriter {
        self.writer.as_ref().expect("submit checked the store is writable")
    }

    /// Whether a pending (reserved, not yet visible) write touches `keys`.
    pub(crate) fn pending_conflicts(&self, keys: Keys<'_>) -> bool {
        let touches = |hash: u64| {
            self.pending.iter().any(|s| {
                s.key_hashes.contains(&hash) || s.ops.iter().any(|op| matches!(op, IndexOp::Clear))
            })
        };
        match keys {
            Keys::None => false,
            Keys::All => !self.pending.is_empty(),
            Keys::One(key) => touches(key_hash(key)),
            Keys::Some(keys) => keys.iter().any(|key| touches(key_hash(key))),
        }
    }
}
