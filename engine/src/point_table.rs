//! `PointTable`: the point half of the index — key → [`Location`] in an open-addressed table of
//! one-cache-line slots (linear probing; the key's full 64-bit hash is the fingerprint; keys up
//! to 16 bytes live inline, longer ones behind a shared pointer). Readers take no lock: each slot
//! is a sequence lock over atomics, and the table is swapped whole (`ArcSwap`) when it grows, so
//! a reader on the old table keeps a consistent, slightly older view. A miss and a hit on a short
//! key touch only the table's lines.
//!
//! INVARIANT: one writer at a time — every mutation takes `&mut Writer`, which only the index's
//! write mutex hands out. Within one table a slot never returns to `EMPTY` (removal leaves
//! `DELETED`), so a probe that meets an empty slot may stop; entries never move within a table.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};

use arc_swap::{ArcSwap, ArcSwapOption};
use parking_lot::Mutex;

use crate::index::Location;

mod newest;

pub(crate) use newest::Version;

/// A never-used slot.
const EMPTY: u64 = 0;
/// A slot whose key was removed (a probe goes on past it).
const DELETED: u64 = 1;
/// Keys up to this many bytes are stored in the slot itself.
const INLINE_KEY_BYTES: usize = 16;
/// The table grows (or is rebuilt without its deleted slots) when used slots would pass
/// `capacity * LOAD_NUM / LOAD_DEN`; a rebuild leaves it at most half that full.
const LOAD_NUM: usize = 3;
const LOAD_DEN: usize = 4;
/// The smallest table.
const MIN_CAPACITY: usize = 64;
/// Tables of at least this many bytes are backed by huge pages where the kernel allows.
const HUGE_PAGES_MIN_BYTES: usize = 4 << 20;
/// Keys the bulk fill hashes and prefetches ahead of the one it places: their slot misses
/// overlap instead of following each other (each is a DRAM miss in a large table).
const FILL_AHEAD: usize = 16;
/// Tables of at least this many bytes are written (first touched) on several threads.
const PARALLEL_TOUCH_MIN_BYTES: usize = 32 << 20;
/// A growth's table of at least this many bytes is allocated ahead on a thread of its own, and
/// the table it replaces dropped on another (see `Writer::prepare_next`); smaller in tests, so
/// that their growths take that path.
const PREPARE_NEXT_MIN_BYTES: usize = if cfg!(test) { 16 << 10 } else { 4 << 20 };
/// A table starts preparing its successor (four times its size) once `used * PREPARE_AT_DEN`
/// reaches `capacity * PREPARE_AT_NUM`: half full, so the successor is touched while the next
/// quarter of the slots fills, up to the growth at 3/4. Earlier would give the first touch more
/// time (a 64 MiB successor was sometimes not ready: a 46–53 ms stall in a 400 k put loop), but
/// a store whose keys stay below the growth would hold the unused successor from lower down
/// (docs/performance.md, session 13).
const PREPARE_AT_NUM: usize = 1;
const PREPARE_AT_DEN: usize = 2;
/// While a large table's growth copies it on a thread of its own (`Growth`), the writer goes on
/// writing it up to this load; past it the writer waits for the copy.
const GROWING_LOAD_NUM: usize = 7;
const GROWING_LOAD_DEN: usize = 8;
/// A growth's copy sets the keys changed meanwhile again in rounds, each taking those changed
/// during the previous one, until a round takes fewer than this many keys (the writer sets the
/// rest) or after `REPLAY_ROUNDS_MAX` rounds.
const REPLAY_DONE_KEYS: usize = 64;
const REPLAY_ROUNDS_MAX: usize = 8;
/// Threads that first-touch a large table at most.
const TOUCH_THREADS_MAX: usize = 4;
/// Slots a growth's copy looks ahead to prefetch their targets in the fresh table.
const COPY_AHEAD: usize = 8;
/// Slots a growth's copy scans between two looks at whether its growth was cancelled: one
/// relaxed load per 64 KiB of table is nothing beside the copy, and a copy cancelled during
/// its scan stops within 64 KiB of it (one cancelled while it waits for its prepared table's
/// first touch stops once that ends).
const COPY_BLOCK_SLOTS: usize = 1024;
/// Bits of `offset_key` that hold the record's pool offset (pools are at most 2^44 bytes).
const OFFSET_BITS: u32 = 47;

/// One entry: 64 bytes, aligned to a cache line, so a probe costs one line.
#[repr(align(64))]
#[derive(Default)]
struct Slot {
    /// Sequence lock: odd while the writer changes the slot.
    seq: AtomicU32,
    /// The record's encoded length.
    record_len: AtomicU32,
    /// The key's hash (never `EMPTY` or `DELETED`), or one of those two.
    hash: AtomicU64,
    /// A key of at most `INLINE_KEY_BYTES`, little-endian, zero-padded.
    inline: [AtomicU64; 2],
    /// A longer key. `Some` only while the slot's key length (in `offset_key`) is over
    /// `INLINE_KEY_BYTES`, so the table's drop releases exactly those (dropping an `ArcSwap`
    /// walks every thread's debt list, even for `None`: ~12 % of a fresh-key put's time went to
    /// dropping grown-out tables slot by slot).
    long: ArcSwapOption<Box<[u8]>>,
    /// The record's pool offset (low `OFFSET_BITS`) and the key's length (the rest).
    offset_key: AtomicU64,
    segment_seq: AtomicU64,
    lsn: AtomicU64,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 64);
const _: () = assert!(crate::limits::KEY_BYTES_MAX < 1 << (64 - OFFSET_BITS));
const _: () = assert!(crate::limits::POOL_BYTES_MAX <= 1 << OFFSET_BITS);

/// A key prepared for probing: its hash and its inline words.
struct Probe<'k> {
    key: &'k [u8],
    hash: u64,
    inline: [u64; 2],
}

impl<'k> Probe<'k> {
    fn new(hasher: &foldhash::fast::RandomState, key: &'k [u8]) -> Self {
        let hash = hasher.hash_one(key);
        // Tests narrow the hash to force equal fingerprints for different keys.
        #[cfg(test)]
        let hash = hash & tests::HASH_MASK.with(|mask| mask.get());
        let hash = hash.max(DELETED + 1);
        let mut inline = [0u64; 2];
        if key.len() <= INLINE_KEY_BYTES {
            let mut bytes = [0u8; INLINE_KEY_BYTES];
            bytes[..key.len()].copy_from_slice(key);
            let (a, b) = bytes.split_at(8);
            inline = [words(a), words(b)];
        }
        Self { key, hash, inline }
    }
}

fn words(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(bytes);
    u64::from_le_bytes(word)
}

/// What one slot says about a probed key.
enum Seen {
    Empty,
    Match(Location),
    Other,
}

impl Slot {
    /// What `read` makes of the slot, read again until no write overlapped it (the sequence
    /// lock's reader side).
    fn consistent<T>(&self, mut read: impl FnMut(&Self) -> T) -> T {
        loop {
            let before = self.seq.load(Ordering::Acquire);
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let value = read(self);
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == before {
                return value;
            }
        }
    }

    /// The slot's view of `probe`, consistent under the sequence lock.
    fn read(&self, probe: &Probe<'_>) -> Seen {
        self.consistent(|slot| {
            let hash = slot.hash.load(Ordering::Relaxed);
            if hash == EMPTY {
                // Slots never return to empty: no key was ever placed at or past this slot in
                // this probe's cluster.
                return Seen::Empty;
            }
            if hash != probe.hash {
                return Seen::Other;
            }
            let offset_key = slot.offset_key.load(Ordering::Relaxed);
            let location = Location {
                offset: offset_key & ((1 << OFFSET_BITS) - 1),
                len: slot.record_len.load(Ordering::Relaxed),
                segment_seq: slot.segment_seq.load(Ordering::Relaxed),
                lsn: slot.lsn.load(Ordering::Relaxed),
            };
            if slot.key_is(offset_key >> OFFSET_BITS, probe) {
                Seen::Match(location)
            } else {
                Seen::Other
            }
        })
    }

    /// Store `location` (writer only; `key` set when the slot takes a new key).
    fn write(&self, key: Option<&Probe<'_>>, location: Location) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        let key_len = match key {
            Some(probe) => {
                self.fill_key(probe);
                probe.key.len() as u64
            }
            None => self.key_len(),
        };
        self.store_location(key_len, location);
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    fn fill_key(&self, probe: &Probe<'_>) {
        self.hash.store(probe.hash, Ordering::Relaxed);
        self.inline[0].store(probe.inline[0], Ordering::Relaxed);
        self.inline[1].store(probe.inline[1], Ordering::Relaxed);
        if probe.key.len() > INLINE_KEY_BYTES {
            self.long.store(Some(Arc::new(probe.key.into())));
        }
    }

    fn store_location(&self, key_len: u64, location: Location) {
        debug_assert!(location.offset < 1 << OFFSET_BITS);
        self.offset_key.store(location.offset | (key_len << OFFSET_BITS), Ordering::Relaxed);
        self.record_len.store(location.len, Ordering::Relaxed);
        self.segment_seq.store(location.segment_seq, Ordering::Relaxed);
        self.lsn.store(location.lsn, Ordering::Relaxed);
    }

    /// Whether the slot holds `probe`'s key (a slot only this thread writes).
    fn holds(&self, probe: &Probe<'_>) -> bool {
        self.hash.load(Ordering::Relaxed) == probe.hash && self.key_is(self.key_len(), probe)
    }

    /// Whether the slot's key, `key_len` bytes long (as its `offset_key` says), is `probe`'s
    /// (the hashes already equal).
    fn key_is(&self, key_len: u64, probe: &Probe<'_>) -> bool {
        key_len == probe.key.len() as u64
            && if probe.key.len() <= INLINE_KEY_BYTES {
                self.inline[0].load(Ordering::Relaxed) == probe.inline[0]
                    && self.inline[1].load(Ordering::Relaxed) == probe.inline[1]
            } else {
                self.long.load().as_deref().is_some_and(|long| **long == *probe.key)
            }
    }

    /// Mark removed (writer only).
    fn delete(&self) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.hash.store(DELETED, Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
        if self.key_len() > INLINE_KEY_BYTES as u64 {
            self.long.store(None);
        }
    }

    /// The length of the key last written to the slot (0 for a never-used slot).
    fn key_len(&self) -> u64 {
        self.offset_key.load(Ordering::Relaxed) >> OFFSET_BITS
    }

    /// The slot's location (writer only, or a table no one writes).
    fn location(&self) -> Location {
        Location {
            offset: self.offset_key.load(Ordering::Relaxed) & ((1 << OFFSET_BITS) - 1),
            len: self.record_len.load(Ordering::Relaxed),
            segment_seq: self.segment_seq.load(Ordering::Relaxed),
            lsn: self.lsn.load(Ordering::Relaxed),
        }
    }

    /// The slot's key and location if it is live, consistent under the sequence lock (the
    /// writer may be changing the slot: a growth copies on a thread of its own).
    fn snapshot(&self) -> Option<Snapshot> {
        self.consistent(|slot| {
            let hash = slot.hash.load(Ordering::Relaxed);
            (hash != EMPTY && hash != DELETED).then(|| {
                let key_len = slot.key_len();
                Snapshot {
                    hash,
                    inline: [
                        slot.inline[0].load(Ordering::Relaxed),
                        slot.inline[1].load(Ordering::Relaxed),
                    ],
                    // A short key has no `long`: skipping the `ArcSwap` load keeps a growth's
                    // copy to plain loads and stores (its debt bookkeeping was ~5 % of a
                    // fresh-key put).
                    long: (key_len > INLINE_KEY_BYTES as u64)
                        .then(|| slot.long.load_full())
                        .flatten(),
                    key_len,
                    location: slot.location(),
                }
            })
        })
    }
}

/// A live slot's contents, read whole ([`Slot::snapshot`]).
struct Snapshot {
    hash: u64,
    inline: [u64; 2],
    /// `Some` exactly when the key is longer than `INLINE_KEY_BYTES`.
    long: Option<Arc<Box<[u8]>>>,
    key_len: u64,
    location: Location,
}

impl Snapshot {
    /// Write into an empty slot of a table not yet published.
    fn place(self, to: &Slot) {
        to.hash.store(self.hash, Ordering::Relaxed);
        to.inline[0].store(self.inline[0], Ordering::Relaxed);
        to.inline[1].store(self.inline[1], Ordering::Relaxed);
        if self.long.is_some() {
            to.long.store(self.long);
        }
        to.store_location(self.key_len, self.location);
    }
}

/// One generation of the table.
struct Table {
    slots: Box<[Slot]>,
    mask: usize,
}

impl Drop for Table {
    fn drop(&mut self) {
        #[cfg(test)]
        if self.capacity() * std::mem::size_of::<Slot>() >= PREPARE_NEXT_MIN_BYTES {
            tests::LARGE_DROPPED_HERE.with(|dropped| dropped.set(dropped.get() + 1));
        }
        for slot in Vec::from(std::mem::take(&mut self.slots)) {
            // INVARIANT (`Slot::long`): only a slot whose key is long holds `Some`; the others'
            // `None` owns nothing, so forgetting them leaks nothing.
            if slot.key_len() > INLINE_KEY_BYTES as u64 {
                drop(slot);
            } else {
                std::mem::forget(slot);
            }
        }
    }
}

impl Table {
    fn with_capacity(capacity: usize) -> Self {
        Self::with_capacity_touched(capacity, true)
    }

    /// A table of `capacity` slots (rounded up to a power of two), its slots written on every
    /// core if `parallel` and it is large, else on this thread alone.
    fn with_capacity_touched(capacity: usize, parallel: bool) -> Self {
        let capacity = capacity.next_power_of_two().max(MIN_CAPACITY);
        let mut slots: Vec<Slot> = Vec::with_capacity(capacity);
        let bytes = capacity * std::mem::size_of::<Slot>();
        if bytes >= HUGE_PAGES_MIN_BYTES {
            // Fresh memory, not yet touched: the first touch below faults it in by 2 MiB pages
            // (a 4 KiB fault costs ~4 µs here), and probes later miss the TLB less.
            mcstore_pmem::hint::advise_huge_pages(slots.as_ptr().cast(), bytes);
        }
        // The kernel clears each fresh page at its first write, at ~1 GB/s per thread on this
        // kind of VM (a 256 MB table took ~250 ms on one thread, docs/performance.md): a large
        // table's slots are written on every core, each its own share, pages and all.
        let threads = if parallel && bytes >= PARALLEL_TOUCH_MIN_BYTES {
            std::thread::available_parallelism().map_or(1, |n| n.get()).min(TOUCH_THREADS_MAX)
        } else {
            1
        };
        mcstore_pmem::hint::fill_in_parallel(&mut slots, capacity, threads, Slot::default);
        Self { slots: slots.into_boxed_slice(), mask: capacity - 1 }
    }

    /// The capacity of a table with room for `keys` live keys at most half its growth threshold.
    fn keys_capacity(keys: usize) -> usize {
        keys.saturating_mul(2 * LOAD_DEN)
            .div_ceil(LOAD_NUM)
            .max(1)
            .next_power_of_two()
            .max(MIN_CAPACITY)
    }

    /// A bulk-built table for at most `keys` keys: at most half full (two thirds of the growth
    /// threshold), so a quarter of its slots are inserted before it first grows. Smaller than
    /// `keys_capacity`, whose extra room amortizes repeated rebuilds a bulk build does not have.
    fn for_bulk(keys: usize) -> Self {
        Self::with_capacity(Self::bulk_capacity(keys))
    }

    /// The capacity of `for_bulk(keys)`.
    fn bulk_capacity(keys: usize) -> usize {
        keys.saturating_mul(2).max(1).next_power_of_two().max(MIN_CAPACITY)
    }

    /// Start loading the first slot `hash` probes (a hint for the bulk fill).
    fn prefetch(&self, hash: u64) {
        mcstore_pmem::hint::prefetch(&self.slots[hash as usize & self.mask]);
    }

    fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The slot holding `probe`'s key, or where the probe stopped: `Err(first free slot)`.
    fn find(&self, probe: &Probe<'_>) -> Result<(usize, Location), usize> {
        let mut i = probe.hash as usize & self.mask;
        let mut free = None;
        loop {
            let slot = &self.slots[i];
            match slot.read(probe) {
                Seen::Match(location) => return Ok((i, location)),
                Seen::Empty => return Err(free.unwrap_or(i)),
                Seen::Other => {
                    if free.is_none() && slot.hash.load(Ordering::Relaxed) == DELETED {
                        free = Some(i);
                    }
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Claim an empty slot for `probe` (tables not yet published; callers on several threads
    /// claim with a compare-and-swap on the hash) and write the key and location into it.
    fn place_unpublished(&self, probe: &Probe<'_>, location: Location) {
        let mut i = probe.hash as usize & self.mask;
        loop {
            let slot = &self.slots[i];
            if slot
                .hash
                .compare_exchange(EMPTY, probe.hash, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                slot.fill_key(probe);
                slot.store_location(probe.key.len() as u64, location);
                return;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// `prepared` if it is the size `for_bulk(keys)` would choose or one step larger (its
    /// estimate of the keys was a little high): never one a bulk fill could overfill, never one
    /// that wastes more than half its memory. Else a fresh one, and the prepared table is
    /// dropped on a thread of its own ([`drop_table`]): the open waits for its fill, not for
    /// that drop.
    fn prepared_or_bulk(prepared: Option<PreparedTable>, keys: usize) -> Self {
        let needed = Self::bulk_capacity(keys);
        match prepared {
            Some(PreparedTable(table))
                if table.capacity() >= needed && table.capacity() <= needed.saturating_mul(2) =>
            {
                table
            }
            other => {
                if let Some(PreparedTable(table)) = other {
                    let slots = table.capacity();
                    drop_table(table, slots);
                }
                Self::for_bulk(keys)
            }
        }
    }

    /// Feed `items` to `place` in order, each one's first slot prefetched `FILL_AHEAD` items
    /// before it is placed (a bulk fill's misses overlap instead of following each other); stop
    /// early when `place` returns `false`.
    fn place_ahead<'k, I, V>(&self, mut items: I, mut place: impl FnMut(Probe<'k>, V) -> bool)
    where
        I: Iterator<Item = (Probe<'k>, V)>,
    {
        let mut ahead = std::collections::VecDeque::with_capacity(FILL_AHEAD);
        loop {
            while ahead.len() < FILL_AHEAD {
                let Some((probe, item)) = items.next() else { break };
                self.prefetch(probe.hash);
                ahead.push_back((probe, item));
            }
            let Some((probe, item)) = ahead.pop_front() else { return };
            if !place(probe, item) {
                return;
            }
        }
    }

    /// The first empty slot of `hash`'s probe sequence.
    fn first_empty(&self, hash: u64) -> usize {
        let mut i = hash as usize & self.mask;
        while self.slots[i].hash.load(Ordering::Relaxed) != EMPTY {
            i = (i + 1) & self.mask;
        }
        i
    }

    /// Copy every live slot of `self` into the fresh table `to`; the slots placed, or `None`
    /// if `stop` (a background growth's) said to stop, between two blocks of the scan or after
    /// its last. Each slot is read
    /// whole, so the writer may go on writing `self` meanwhile: a slot it changes is copied as
    /// it was before or after, and a key it removes and puts back may be met twice or not at
    /// all — the growth sets every key it changed again (`Growth`). The target slot of the
    /// live slot `COPY_AHEAD` slots further on is prefetched first, so the copy's misses in the
    /// fresh table overlap instead of following each other.
    fn copy_live_into(&self, to: &Table, stop: Option<&ScanStop<'_>>) -> Option<usize> {
        let live = |slot: &Slot| {
            let hash = slot.hash.load(Ordering::Relaxed);
            (hash != EMPTY && hash != DELETED).then_some(hash)
        };
        let mut placed = 0;
        for (i, slot) in self.slots.iter().enumerate() {
            if i % COPY_BLOCK_SLOTS == 0 && stop.is_some_and(|stop| stop.before(i)) {
                return None;
            }
            if let Some(ahead) = self.slots.get(i + COPY_AHEAD).and_then(live) {
                to.prefetch(ahead);
            }
            if let Some(snapshot) = slot.snapshot() {
                let at = to.first_empty(snapshot.hash);
                snapshot.place(&to.slots[at]);
                placed += 1;
            }
        }
        // A growth cancelled during the last block has no use for the fresh table either.
        if stop.is_some_and(|stop| stop.before(self.capacity())) {
            return None;
        }
        Some(placed)
    }

    /// Set `probe`'s key in a table not yet published (a [`Growth`]'s fresh table) to
    /// `location`, or remove it (`None`); whether it took an empty slot. The key may be there
    /// twice: a growth's copy reads the table in slot order, so a key the writer removed and put
    /// back across the table's end (from slot 0 into a deleted slot near the end, of the same
    /// probe cluster) is met twice. The first copy is set, every later one deleted: the
    /// removal that moved the key was noted, so the growth sets that key here.
    fn set_unpublished(&self, probe: &Probe<'_>, location: Option<Location>) -> bool {
        let mut i = probe.hash as usize & self.mask;
        let (mut kept, mut free) = (None, None);
        loop {
            let slot = &self.slots[i];
            match slot.hash.load(Ordering::Relaxed) {
                EMPTY => break,
                DELETED => {
                    free.get_or_insert(i);
                }
                _ if slot.holds(probe) => match (location, kept) {
                    (Some(location), None) => {
                        slot.write(None, location);
                        kept = Some(i);
                    }
                    _ => slot.delete(),
                },
                _ => {}
            }
            i = (i + 1) & self.mask;
        }
        let Some(location) = location.filter(|_| kept.is_none()) else { return false };
        let at = free.unwrap_or(i);
        self.slots[at].write(Some(probe), location);
        free.is_none()
    }
}

/// `work` run on each of `runs`, on threads of their own when there are several; the results
/// in order. A panic on a thread is resumed here.
fn on_threads<R, T, W>(runs: Vec<R>, work: W) -> Vec<T>
where
    R: Send,
    T: Send,
    W: Fn(R) -> T + Sync,
{
    if runs.len() <= 1 {
        return runs.into_iter().map(work).collect();
    }
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = runs.into_iter().map(|run| scope.spawn(move || work(run))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    })
}

/// A fresh table allocated ahead of a bulk build ([`PointTable::prepare`]), its memory faulted in.
pub(crate) struct PreparedTable(Table);

/// The point table.
pub(crate) struct PointTable {
    table: ArcSwap<Table>,
    hasher: foldhash::fast::RandomState,
    /// The current table's first slot address and mask, for prefetch hints only: read without
    /// the `ArcSwap` guard (whose atomic read-modify-writes would wait for the prefetch), so
    /// they may be stale or torn — a prefetch of any address is harmless.
    hint: [AtomicUsize; 2],
    /// Slots allocated for the current table's successor — the table `Writer::next` prepares,
    /// or a growth's fresh table — for the memory estimate, which reads it without the write
    /// mutex; the writer sets it whenever either changes (`note_successor`).
    successor_slots: AtomicUsize,
}

/// The writer's side: live and used slot counts, and the current table. Only one exists per
/// table, behind the index's write mutex.
///
/// INVARIANT: `table` is the table `PointTable::table` publishes (only the writer publishes
/// one, and it replaces both together), so a write reaches it without the `ArcSwap` load and
/// guard a reader pays.
pub(crate) struct Writer {
    live: usize,
    used: usize,
    table: Arc<Table>,
    /// The table the next growth expects to fill, being allocated on a thread of its own (see
    /// [`Writer::prepare_next`]).
    next: Option<Prepared>,
    /// A large table's growth in progress.
    growth: Option<Growth>,
    /// A growth's copy waits here while tests hold the gate (see `tests::Gate`): before it
    /// copies (stage 0), before its rounds (1), before it returns (2), or in the middle of its
    /// scan, before the block at half the table (3).
    #[cfg(test)]
    copy_gate: Option<(Arc<tests::Gate>, u8)>,
    /// Tests: a growth's copy thread cannot be started (as when the system is out of threads).
    #[cfg(test)]
    copy_spawn_fails: bool,
}

impl Drop for Writer {
    fn drop(&mut self) {
        // A dropped index (a closed store) has no use for its growth's copy or its prepared
        // successor either; neither is dropped on this thread.
        if let Some(growth) = self.growth.take() {
            growth.cancel();
        }
        if let Some(next) = self.next.take() {
            retire(next.thread);
        }
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("live", &self.live).field("used", &self.used).finish()
    }
}

impl Writer {
    /// Live keys in the table.
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// Slots used: live keys and removed ones.
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    fn new(live: usize, used: usize, table: Arc<Table>) -> Self {
        Writer {
            live,
            used,
            table,
            next: None,
            growth: None,
            #[cfg(test)]
            copy_gate: None,
            #[cfg(test)]
            copy_spawn_fails: false,
        }
    }

    /// Whether a growth is in progress.
    #[cfg(test)]
    pub(crate) fn growing(&self) -> bool {
        self.growth.is_some()
    }

    /// Whether the table's successor is prepared (or being prepared) ahead of its growth.
    #[cfg(test)]
    pub(crate) fn preparing(&self) -> bool {
        self.next.is_some()
    }

    /// Note a key changed in the table (put, overwritten or removed; `new` when it was not
    /// live before) while a growth copies the table.
    fn note_changed(&mut self, key: &[u8], new: bool) {
        if let Some(growth) = &mut self.growth {
            growth.changed.lock().push(key);
            growth.room -= usize::from(new);
        }
    }

    /// Once the table is half full (`PREPARE_AT_*`), start allocating the table its growth
    /// will fill (at 3/4, with no removal meanwhile: `keys_capacity` of the live keys then) on
    /// a thread of its own, when that table is large: its first touch, where the kernel
    /// clears every page (~1 GB/s on this kind of VM), was a fifth of a fresh-key put loop's
    /// CPU time, all of it in the writer's stall at the growth (docs/performance.md).
    /// Whether it started one.
    fn prepare_next(&mut self) -> bool {
        let capacity = self.table.capacity();
        if self.next.is_some()
            || self.growth.is_some()
            || self.used * PREPARE_AT_DEN < capacity * PREPARE_AT_NUM
        {
            return false;
        }
        let next = Table::keys_capacity(capacity / LOAD_DEN * LOAD_NUM + 1);
        if next * std::mem::size_of::<Slot>() < PREPARE_NEXT_MIN_BYTES {
            return false;
        }
        let thread = std::thread::Builder::new().name("mcstore-index-grow".into());
        // Touched on that thread alone: the other cores are the writers'.
        let thread = thread.spawn(move || Table::with_capacity_touched(next, false)).ok();
        self.next = thread.map(|thread| Prepared { capacity: next, thread });
        self.next.is_some()
    }

    /// Slots allocated for the current table's successor: the prepared one, or the fresh
    /// table of the growth in progress.
    fn successor_slots(&self) -> usize {
        let growth = self.growth.as_ref().map_or(0, |growth| growth.capacity);
        self.next.as_ref().map_or(0, |next| next.capacity) + growth
    }
}

/// A large table's growth, in the background: a thread of its own copies the table's live
/// slots into the fresh one (the one `Writer::next` prepared, or one it allocates), while the
/// writer goes on writing the current table — up to `GROWING_LOAD`, and up to `room` keys more
/// — and notes every key it changes. The copy's thread then sets the keys noted meanwhile
/// again in the fresh table, as the current table has them, in rounds (`REPLAY_*`); the
/// growth's end ([`PointTable::end_growth`]) sets the last few and publishes the fresh table.
/// A copy of 786 k keys took 26 ms on the writer's thread, and a successor still being first
/// touched made the writer wait 158 ms (docs/performance.md, session 14).
///
/// Why each key ends right: a key is noted after each change; a round takes the keys noted so
/// far, then reads each in the current table — so it sees that change or a later one, and a
/// later one is noted again, for a later round or the end, which reads with the writer idle.
/// A key the copy met twice (see `Table::copy_live_into`) was moved by a noted removal, and
/// setting a noted key deletes every copy of it but one (`Table::set_unpublished`).
struct Growth {
    /// The copy: the fresh table and its slots used (`None` if it was cancelled).
    thread: std::thread::JoinHandle<Option<(Table, usize)>>,
    /// Set to make the copy stop early and drop its tables (a cleared or dropped table has no
    /// use for them): its scan looks at it between blocks of slots, and it stops before its
    /// next round.
    cancel: Arc<AtomicBool>,
    /// Keys changed and not yet taken by a round.
    changed: Arc<Mutex<ChangedKeys>>,
    /// Keys the fresh table can still take without passing its growth threshold.
    room: usize,
    /// The fresh table's slots.
    capacity: usize,
}

impl Growth {
    /// Make the copy stop early, and let its tables go without waiting for it and without
    /// dropping them here ([`retire`]).
    fn cancel(self) {
        self.cancel.store(true, Ordering::Relaxed);
        retire(self.thread);
    }
}

/// Let go of a thread that makes or holds tables the writer has no use for (a growth's copy, a
/// prepared successor): a thread of its own joins it and drops what it returns
/// ([`drop_elsewhere`]). Dropping the handle here instead would drop a finished thread's table
/// on this thread; an unfinished one drops its own.
fn retire<T: Send + 'static>(thread: std::thread::JoinHandle<T>) {
    drop_elsewhere(move || drop(thread.join()));
}

/// Run `drop` — the drop of a large table: every slot read, then 64–256 MB unmapped — on a
/// thread of its own (`mcstore-index-drop`), not on the writer's, which holds the index's
/// write mutex. Here if no thread can be started (the failed spawn drops the closure, and
/// what it holds, here).
fn drop_elsewhere(drop: impl FnOnce() + Send + 'static) {
    let dropper = std::thread::Builder::new().name("mcstore-index-drop".into());
    std::mem::drop(dropper.spawn(drop));
}

/// Drop `table` (a table of `slots` slots, or the last handle on one) on a thread of its own
/// if it is large ([`drop_elsewhere`]); a small one here, where a thread would cost more.
fn drop_table<T: Send + 'static>(table: T, slots: usize) {
    if slots * std::mem::size_of::<Slot>() >= PREPARE_NEXT_MIN_BYTES {
        drop_elsewhere(move || drop(table));
    }
}

/// What a background growth's copy looks at between blocks of its scan
/// (`Table::copy_live_into`; the inline growth scans without one).
struct ScanStop<'a> {
    /// Set when the growth is cancelled ([`Growth::cancel`]).
    cancel: &'a AtomicBool,
    /// Tests: the copy's gate, which counts the slots scanned, and the slot before which the
    /// scan waits at it (`None` unless the gate's stage is 3, mid-scan).
    #[cfg(test)]
    gate: Option<(&'a tests::Gate, Option<usize>)>,
}

impl ScanStop<'_> {
    /// Whether the scan stops before slot `i` (a block's first, or the table's end).
    #[cfg_attr(
        not(test),
        expect(unused_variables, reason = "only tests count the slots scanned and wait at a slot")
    )]
    fn before(&self, i: usize) -> bool {
        #[cfg(test)]
        if let Some((gate, pause)) = self.gate {
            gate.scanned.store(i, Ordering::SeqCst);
            if pause == Some(i) {
                gate.wait();
            }
        }
        self.cancel.load(Ordering::Relaxed)
    }
}

/// Keys, back to back in one buffer.
#[derive(Default)]
struct ChangedKeys {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl ChangedKeys {
    fn push(&mut self, key: &[u8]) {
        self.bytes.extend_from_slice(key);
        self.ends.push(self.bytes.len());
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(start, &end)| &self.bytes[start..end])
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    /// Set each key in `fresh` (not yet published) as `current` has it now; the empty slots
    /// that took one. Each key's slots in both tables are prefetched `FILL_AHEAD` keys ahead.
    fn replay(
        &self,
        hasher: &foldhash::fast::RandomState,
        current: &Table,
        fresh: &Table,
    ) -> usize {
        let mut used = 0;
        let keys = self.iter().map(|key| (Probe::new(hasher, key), ()));
        let keys = keys.inspect(|(probe, ())| current.prefetch(probe.hash));
        fresh.place_ahead(keys, |probe, ()| {
            let location = current.find(&probe).ok().map(|(_, location)| location);
            used += usize::from(fresh.set_unpublished(&probe, location));
            true
        });
        used
    }
}

/// A growth's table being allocated on a thread of its own (`Writer::prepare_next`).
struct Prepared {
    /// Its slots (a power of two).
    capacity: usize,
    thread: std::thread::JoinHandle<Table>,
}

impl Table {
    /// The fresh table for a growth to `capacity` slots: the one `next` prepares if it has that
    /// size (waiting for it if need be), else one allocated now. A prepared table of another
    /// size (keys were removed meanwhile) is retired ([`retire`]): this thread neither waits
    /// for its first touch nor reads its slots to drop it.
    fn take_next(next: &mut Option<Prepared>, capacity: usize) -> Table {
        match next.take() {
            Some(prepared) if prepared.capacity == capacity => {
                prepared.thread.join().unwrap_or_else(|_| Table::with_capacity(capacity))
            }
            other => {
                if let Some(prepared) = other {
                    retire(prepared.thread);
                }
                Table::with_capacity(capacity)
            }
        }
    }
}

impl PointTable {
    /// A table of the entries `entry` picks from `items` (distinct keys; `None` skips an
    /// item), filled on up to `threads` threads.
    pub(crate) fn build<T, F>(
        items: &[T],
        entry: &F,
        threads: usize,
        parallel_min: usize,
        prepared: Option<PreparedTable>,
    ) -> (Self, Writer)
    where
        T: Sync,
        F: Fn(&T) -> Option<(&[u8], Location)> + Sync,
    {
        let hasher = foldhash::fast::RandomState::default();
        let table = Table::prepared_or_bulk(prepared, items.len());
        let fill = |chunk: &[T]| -> usize {
            let mut placed = 0;
            let entries = chunk
                .iter()
                .filter_map(entry)
                .map(|(key, location)| (Probe::new(&hasher, key), location));
            table.place_ahead(entries, |probe, location| {
                table.place_unpublished(&probe, location);
                placed += 1;
                true
            });
            placed
        };
        let runs: Vec<&[T]> = if threads <= 1 || items.len() < parallel_min {
            vec![items]
        } else {
            items.chunks(items.len().div_ceil(threads).max(1)).collect()
        };
        let live = on_threads(runs, fill).into_iter().sum();
        Self::built(table, hasher, live, live)
    }

    /// Publish a table a bulk build filled with `used` slots, `live` of them live.
    fn built(
        table: Table,
        hasher: foldhash::fast::RandomState,
        live: usize,
        used: usize,
    ) -> (Self, Writer) {
        let table = Arc::new(table);
        let writer = Writer::new(live, used, Arc::clone(&table));
        let points = Self {
            table: ArcSwap::new(table),
            hasher,
            hint: Default::default(),
            successor_slots: AtomicUsize::new(0),
        };
        points.note_hint();
        (points, writer)
    }

    /// Allocate the table a bulk build of about `keys` keys fills — the slow part of a large
    /// build, where the kernel clears every fresh page — so a caller can do it on another thread
    /// while the entries are still being prepared. `build` takes it if it fits.
    pub(crate) fn prepare(keys: usize) -> PreparedTable {
        PreparedTable(Table::for_bulk(keys))
    }

    /// The location of `key`, if present. Lock-free.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Location> {
        let probe = Probe::new(&self.hasher, key);
        self.table.load().find(&probe).ok().map(|(_, location)| location)
    }

    /// Start loading the first slot `key` probes into the cache (a hint: a writer calls it before
    /// it persists, so the index update after the fences finds the line warm; iterators call it
    /// for a whole chunk before they look the keys up).
    pub(crate) fn prefetch(&self, key: &[u8]) {
        let probe = Probe::new(&self.hasher, key);
        let base = self.hint[0].load(Ordering::Relaxed);
        let mask = self.hint[1].load(Ordering::Relaxed);
        let slot = base.wrapping_add((probe.hash as usize & mask) * std::mem::size_of::<Slot>());
        mcstore_pmem::hint::prefetch_address(slot as *const u8);
    }

    /// Publish `table` as the current one, to readers and to `writer`, and record it for
    /// `prefetch`. Returns the writer's handle on the table it replaces.
    fn publish(&self, writer: &mut Writer, table: Table) -> Arc<Table> {
        let table = Arc::new(table);
        self.table.store(Arc::clone(&table));
        let old = std::mem::replace(&mut writer.table, table);
        self.note_hint();
        old
    }

    /// Record the current table for `prefetch` (writer only, after publishing a table).
    fn note_hint(&self) {
        let table = self.table.load();
        self.hint[0].store(table.slots.as_ptr() as usize, Ordering::Relaxed);
        self.hint[1].store(table.mask, Ordering::Relaxed);
    }

    /// Point `key` at `location`; the previous location if the key was present.
    pub(crate) fn upsert(
        &self,
        writer: &mut Writer,
        key: &[u8],
        location: Location,
    ) -> Option<Location> {
        self.end_growth_if_due(writer);
        let probe = Probe::new(&self.hasher, key);
        debug_assert!(Arc::ptr_eq(&writer.table, &self.table.load()));
        let free = match writer.table.find(&probe) {
            Ok((i, old)) => {
                writer.table.slots[i].write(None, location);
                writer.note_changed(key, false);
                return Some(old);
            }
            Err(free) => free,
        };
        writer.live += 1;
        let capacity = writer.table.capacity();
        if writer.table.slots[free].hash.load(Ordering::Relaxed) == DELETED {
            writer.table.slots[free].write(Some(&probe), location);
        } else if (writer.used + 1) * LOAD_DEN <= capacity * LOAD_NUM {
            writer.used += 1;
            writer.table.slots[free].write(Some(&probe), location);
            if writer.prepare_next() {
                self.note_successor(writer);
            }
        } else if writer.growth.is_some() || self.start_growth(writer) {
            // `end_growth_if_due` left room below `GROWING_LOAD`.
            writer.used += 1;
            writer.table.slots[free].write(Some(&probe), location);
        } else {
            // The fresh table is not yet published: the new key goes in before readers see it.
            let fresh = Table::take_next(&mut writer.next, Table::keys_capacity(writer.live));
            self.note_successor(writer);
            // No stop: the whole table is copied here, on the writer's thread.
            writer.table.copy_live_into(&fresh, None);
            fresh.place_unpublished(&probe, location);
            writer.used = writer.live;
            self.publish_retiring(writer, fresh);
            return None;
        }
        writer.note_changed(key, true);
        None
    }

    /// Start copying the table into a fresh one on a thread of its own if the fresh one is
    /// large (see [`Growth`]); whether it started.
    fn start_growth(&self, writer: &mut Writer) -> bool {
        let capacity = Table::keys_capacity(writer.live);
        if capacity * std::mem::size_of::<Slot>() < PREPARE_NEXT_MIN_BYTES {
            return false;
        }
        // The prepared table goes to the copy through a slot the writer takes it back from if
        // the copy's thread cannot be started: the copy, dropped then, would drop it, and the
        // inline growth would allocate and first-touch another (docs/performance.md, session 13).
        let next = Arc::new(Mutex::new(writer.next.take()));
        let handed = Arc::clone(&next);
        let from = Arc::clone(&writer.table);
        let changed = Arc::new(Mutex::new(ChangedKeys::default()));
        let noted = Arc::clone(&changed);
        let hasher = self.hasher.clone();
        let cancel = Arc::new(AtomicBool::new(false));
        let cancelled = Arc::clone(&cancel);
        #[cfg(test)]
        let mask = tests::HASH_MASK.with(|mask| mask.get());
        #[cfg(test)]
        let gate = writer.copy_gate.clone();
        let copy = move || {
            #[cfg(test)]
            tests::HASH_MASK.with(|m| m.set(mask));
            #[cfg(test)]
            let wait = |stage: u8| {
                if let Some((gate, _)) = gate.as_ref().filter(|(_, at)| *at == stage) {
                    gate.wait();
                }
            };
            #[cfg(test)]
            wait(0);
            if cancelled.load(Ordering::Relaxed) {
                return None;
            }
            let mut next = handed.lock().take();
            let fresh = Table::take_next(&mut next, capacity);
            let stop = ScanStop {
                cancel: &cancelled,
                #[cfg(test)]
                gate: gate.as_ref().map(|(gate, stage)| {
                    let mid = from.capacity() / 2 / COPY_BLOCK_SLOTS * COPY_BLOCK_SLOTS;
                    (&**gate, (*stage == 3).then_some(mid))
                }),
            };
            let mut used = from.copy_live_into(&fresh, Some(&stop))?;
            #[cfg(test)]
            wait(1);
            for _ in 0..REPLAY_ROUNDS_MAX {
                if cancelled.load(Ordering::Relaxed) {
                    return None;
                }
                #[cfg(test)]
                if let Some((gate, _)) = &gate {
                    gate.rounds.fetch_add(1, Ordering::SeqCst);
                }
                let round = std::mem::take(&mut *noted.lock());
                used += round.replay(&hasher, &from, &fresh);
                if round.len() < REPLAY_DONE_KEYS {
                    break;
                }
            }
            #[cfg(test)]
            wait(2);
            Some((fresh, used))
        };
        let thread = std::thread::Builder::new().name("mcstore-index-copy".into());
        #[cfg(test)]
        let thread = if writer.copy_spawn_fails {
            drop(copy);
            Err(std::io::Error::other("the test failed the spawn"))
        } else {
            thread.spawn(copy)
        };
        #[cfg(not(test))]
        let thread = thread.spawn(copy);
        let Ok(thread) = thread else {
            // The copy never ran: the prepared table is still in its slot, for the inline growth.
            writer.next = next.lock().take();
            return false;
        };
        // Every key live at some time during the growth takes a slot of the fresh table: the
        // `live - 1` there now and the new ones, this one first (`note_changed` counts it). At
        // most 3/8 of `capacity` are live, so the subtraction cannot wrap.
        let room = capacity / LOAD_DEN * LOAD_NUM - (writer.live - 1);
        writer.growth = Some(Growth { thread, cancel, changed, room, capacity });
        self.note_successor(writer);
        true
    }

    /// End the growth in progress if its copy is done, or if the next key could pass
    /// `GROWING_LOAD` in the current table or the fresh table's room.
    fn end_growth_if_due(&self, writer: &mut Writer) {
        let Some(growth) = &writer.growth else { return };
        let full = (writer.used + 1) * GROWING_LOAD_DEN
            > writer.table.capacity() * GROWING_LOAD_NUM
            || growth.room == 0;
        if full || growth.thread.is_finished() {
            self.end_growth(writer);
        }
    }

    /// End the growth in progress if its copy is done, without waiting (a background tick: a
    /// store whose writes stopped during a growth would hold both tables until its next write).
    pub(crate) fn end_finished_growth(&self, writer: &mut Writer) {
        if writer.growth.as_ref().is_some_and(|growth| growth.thread.is_finished()) {
            self.end_growth(writer);
        }
    }

    /// Wait for the growth's copy, set the keys changed since its last round as the current
    /// table has them, and publish the fresh table.
    ///
    /// If the copy's thread failed (panicked), the current table stays: it is whole, and the
    /// next write past the threshold starts another growth. The panic is not resumed here,
    /// where the caller may be the background flusher.
    fn end_growth(&self, writer: &mut Writer) {
        let Some(growth) = writer.growth.take() else { return };
        if let Ok(Some((fresh, mut used))) = growth.thread.join() {
            used += growth.changed.lock().replay(&self.hasher, &writer.table, &fresh);
            debug_assert!(used * LOAD_DEN <= fresh.capacity() * LOAD_NUM);
            writer.used = used;
            self.publish_retiring(writer, fresh);
        }
        // The fresh table is now the current one, or was dropped with a failed copy; until the
        // join above it was allocated, and counted.
        self.note_successor(writer);
    }

    /// Publish `fresh` in place of the current table, which a large table leaves to a thread
    /// of its own to drop (its drop reads every slot for long keys, then unmaps it); here if
    /// none can be started. Readers that still hold it keep it alive either way.
    fn publish_retiring(&self, writer: &mut Writer, fresh: Table) {
        let old = self.publish(writer, fresh);
        let slots = old.capacity();
        drop_table(old, slots);
    }

    /// Forget `key`; its location if it was present.
    pub(crate) fn remove(&self, writer: &mut Writer, key: &[u8]) -> Option<Location> {
        self.end_growth_if_due(writer);
        let probe = Probe::new(&self.hasher, key);
        debug_assert!(Arc::ptr_eq(&writer.table, &self.table.load()));
        let table = &writer.table;
        let (i, old) = table.find(&probe).ok()?;
        table.slots[i].delete();
        writer.live -= 1;
        writer.note_changed(key, false);
        Some(old)
    }

    /// Forget every key.
    pub(crate) fn clear(&self, writer: &mut Writer) {
        // The old table, a table prepared for its growth and a growth's copy are all dropped
        // on threads of their own, not under the index's write mutex; the copy is cancelled,
        // so it stops scanning and replaying a table no one will read (a copy of 786 k keys
        // took 26 ms of a core, docs/performance.md).
        self.publish_retiring(writer, Table::with_capacity(MIN_CAPACITY));
        if let Some(next) = writer.next.take() {
            retire(next.thread);
        }
        if let Some(growth) = writer.growth.take() {
            growth.cancel();
        }
        self.note_successor(writer);
        writer.live = 0;
        writer.used = 0;
    }

    /// Slots of the current table (for the memory estimate).
    pub(crate) fn capacity(&self) -> usize {
        self.table.load().capacity()
    }

    /// Slots allocated for the current table's successor (for the memory estimate): up to four
    /// times the current table's, from the preparation at half full until the growth's end.
    pub(crate) fn successor_slots(&self) -> usize {
        self.successor_slots.load(Ordering::Relaxed)
    }

    /// Record the writer's successor for `successor_slots` (writer only, after `next` or
    /// `growth` changed).
    fn note_successor(&self, writer: &Writer) {
        self.successor_slots.store(writer.successor_slots(), Ordering::Relaxed);
    }

    /// Bytes of one slot.
    pub(crate) const SLOT_BYTES: usize = std::mem::size_of::<Slot>();
}

#[cfg(test)]
pub(crate) mod tests;
