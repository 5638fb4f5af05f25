//! One generation of the point table: its slots (a power of two, first touched on several
//! threads when large), the probe, the bulk fill's placement with its misses overlapped, and
//! the copy of its live slots into a successor.
//!
//! INVARIANT: within one table a slot never returns to `EMPTY` (removal leaves `DELETED`), so
//! a probe that meets an empty slot may stop; entries never move within a table.
//! INVARIANT: in a table with tags, `tags[i]` is `tag(slots[i].hash)` whenever the table's
//! writer (or, before it is published, its builder) looks at it: every change of a slot's hash
//! goes with `set_key`, `delete` or `note_hash`, which set the tag too. Readers never look at
//! tags.

use std::sync::atomic::{AtomicU8, Ordering};

use super::PreparedTable;
#[cfg(test)]
use super::growth::PREPARE_NEXT_MIN_BYTES;
use super::growth::{ScanStop, drop_table};
use super::slot::{DELETED, EMPTY, INLINE_KEY_BYTES, Probe, Seen, Slot};
#[cfg(test)]
use super::tests;
use crate::index::Location;

/// The table grows (or is rebuilt without its deleted slots) when used slots would pass
/// `capacity * LOAD_NUM / LOAD_DEN`; a rebuild leaves it at most half that full.
pub(super) const LOAD_NUM: usize = 3;
pub(super) const LOAD_DEN: usize = 4;
/// The smallest table.
pub(super) const MIN_CAPACITY: usize = 64;
/// Tables of at least this many bytes are backed by huge pages where the kernel allows.
pub(super) const HUGE_PAGES_MIN_BYTES: usize = 4 << 20;
/// Keys the bulk fill hashes and prefetches ahead of the one it places: their slot misses
/// overlap instead of following each other (each is a DRAM miss in a large table).
pub(super) const FILL_AHEAD: usize = 16;
/// Tables of at least this many bytes are written (first touched) on several threads.
pub(super) const PARALLEL_TOUCH_MIN_BYTES: usize = 32 << 20;
/// Threads that first-touch a large table at most.
pub(super) const TOUCH_THREADS_MAX: usize = 4;
/// Slots a growth's copy looks ahead to prefetch their targets in the fresh table.
pub(super) const COPY_AHEAD: usize = 8;
/// Slots a growth's copy scans between two looks at whether its growth was cancelled: one
/// relaxed load per 64 KiB of table is nothing beside the copy, and a copy cancelled during
/// its scan stops within 64 KiB of it (one cancelled while it waits for its prepared table's
/// first touch stops once that ends).
pub(super) const COPY_BLOCK_SLOTS: usize = 1024;

/// The tag of a never-used slot.
const EMPTY_TAG: u8 = 0;
/// The tag of a slot whose key was removed.
const DELETED_TAG: u8 = 1;

/// A slot's tag for its hash: `EMPTY` and `DELETED` their own, a key's the top seven bits of
/// its hash with the high bit set (the slot's position comes from the low bits, so these are
/// independent of it).
fn tag(hash: u64) -> u8 {
    match hash {
        EMPTY => EMPTY_TAG,
        DELETED => DELETED_TAG,
        _ => 0x80 | (hash >> 57) as u8,
    }
}

/// One generation of the table.
pub(super) struct Table {
    pub(super) slots: Box<[Slot]>,
    pub(super) mask: usize,
    /// One byte per slot, 64 to a cache line, that only the writer reads: a fresh key's insert
    /// scans its probe sequence here instead of slot by slot, so it touches one line of tags
    /// (prefetched when the put starts) and reads a slot only when the tag matches. An
    /// unsuccessful probe reads about ½(1 + 1/(1 − α)²) slots at load α, one line each: 8.5 at
    /// 3/4 (docs/performance.md, session 16); a probe that crosses a line of 64 tags reads
    /// two. `None` in a bulk-built table (recovery's, and a new store's first, empty one): a
    /// recovery's fill would pay a store to a random tag line per key. Its writer probes the
    /// slots until the table's first growth, whose table has tags; a store whose keys never
    /// outgrow its recovered table never gets them.
    pub(super) tags: Option<Box<[AtomicU8]>>,
    /// Tests: which allocation this is (a freed table's address may be reused by the next).
    #[cfg(test)]
    pub(super) serial: usize,
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
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self::with_capacity_touched(capacity, true)
    }

    /// A table of `capacity` slots (rounded up to a power of two) with tags, its slots written
    /// on every core if `parallel` and it is large, else on this thread alone.
    pub(super) fn with_capacity_touched(capacity: usize, parallel: bool) -> Self {
        Self::allocate(capacity, parallel, true)
    }

    /// A table of `capacity` slots (rounded up to a power of two), with tags if `tagged`.
    fn allocate(capacity: usize, parallel: bool, tagged: bool) -> Self {
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
        let tags = tagged.then(|| (0..capacity).map(|_| AtomicU8::new(EMPTY_TAG)).collect());
        Self {
            slots: slots.into_boxed_slice(),
            mask: capacity - 1,
            tags,
            #[cfg(test)]
            serial: tests::TABLES_ALLOCATED.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The capacity of a table with room for `keys` live keys at most half its growth threshold.
    pub(super) fn keys_capacity(keys: usize) -> usize {
        keys.saturating_mul(2 * LOAD_DEN)
            .div_ceil(LOAD_NUM)
            .max(1)
            .next_power_of_two()
            .max(MIN_CAPACITY)
    }

    /// A bulk-built table for at most `keys` keys: at most half full (two thirds of the growth
    /// threshold), so a quarter of its slots are inserted before it first grows. Smaller than
    /// `keys_capacity`, whose extra room amortizes repeated rebuilds a bulk build does not have.
    pub(super) fn for_bulk(keys: usize) -> Self {
        Self::allocate(Self::bulk_capacity(keys), true, false)
    }

    /// The capacity of `for_bulk(keys)`.
    pub(super) fn bulk_capacity(keys: usize) -> usize {
        keys.saturating_mul(2).max(1).next_power_of_two().max(MIN_CAPACITY)
    }

    /// Start loading the first slot `hash` probes (a hint for the bulk fill).
    pub(super) fn prefetch(&self, hash: u64) {
        mcstore_pmem::hint::prefetch(&self.slots[hash as usize & self.mask]);
    }

    pub(super) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The slot holding `probe`'s key, or where the probe stopped: `Err(first free slot)`. The
    /// writer's probe: it scans the tags, when the table has them, and reads a slot only when
    /// its tag is the key's.
    pub(super) fn find_for_writer(&self, probe: &Probe<'_>) -> Result<(usize, Location), usize> {
        let Some(tags) = &self.tags else { return self.find(probe) };
        let key = tag(probe.hash);
        let mut i = probe.hash as usize & self.mask;
        let mut free = None;
        loop {
            match tags[i].load(Ordering::Relaxed) {
                EMPTY_TAG => return Err(free.unwrap_or(i)),
                DELETED_TAG => {
                    free.get_or_insert(i);
                }
                t if t == key => {
                    if let Seen::Match(location) = self.slots[i].read(probe) {
                        return Ok((i, location));
                    }
                }
                _ => {}
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Write `probe`'s key and `location` into the free slot `i` (writer only).
    pub(super) fn set_key(&self, i: usize, probe: &Probe<'_>, location: Location) {
        self.slots[i].write(Some(probe), location);
        self.note_hash(i, probe.hash);
    }

    /// Mark slot `i` removed (writer only).
    pub(super) fn delete(&self, i: usize) {
        self.slots[i].delete();
        self.note_hash(i, DELETED);
    }

    /// Whether slot `i` holds a removed key (writer only: by its tag, when there are tags).
    pub(super) fn is_deleted(&self, i: usize) -> bool {
        match &self.tags {
            Some(tags) => tags[i].load(Ordering::Relaxed) == DELETED_TAG,
            None => self.slots[i].hash.load(Ordering::Relaxed) == DELETED,
        }
    }

    /// Record that slot `i` now holds `hash` (a key's, or `DELETED`) in its tag, if the table
    /// has tags (a builder that wrote the slot itself calls it too).
    pub(super) fn note_hash(&self, i: usize, hash: u64) {
        if let Some(tags) = &self.tags {
            tags[i].store(tag(hash), Ordering::Relaxed);
        }
    }

    /// Start loading the tags of `hash`'s probe sequence, if the table has tags (a hint).
    pub(super) fn prefetch_tags(&self, hash: u64) {
        if let Some(tags) = &self.tags {
            mcstore_pmem::hint::prefetch(&tags[hash as usize & self.mask]);
        }
    }

    /// Whether every tag is its slot's (`None`: the table has no tags).
    #[cfg(test)]
    pub(super) fn tags_agree(&self) -> Option<bool> {
        let tags = self.tags.as_ref()?;
        let mut agree = self.slots.iter().zip(tags.iter());
        Some(
            agree.all(|(slot, t)| {
                t.load(Ordering::Relaxed) == tag(slot.hash.load(Ordering::Relaxed))
            }),
        )
    }

    /// The first tag's address (0 without tags), for prefetch hints.
    pub(super) fn tags_address(&self) -> usize {
        self.tags.as_ref().map_or(0, |tags| tags.as_ptr() as usize)
    }

    /// The slot holding `probe`'s key, or where the probe stopped: `Err(first free slot)`, by the
    /// slots alone: readers, a growth's replay (which reads the current table while the writer
    /// changes it, tags included), and the writer on a table without tags.
    pub(super) fn find(&self, probe: &Probe<'_>) -> Result<(usize, Location), usize> {
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
    pub(super) fn place_unpublished(&self, probe: &Probe<'_>, location: Location) {
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
                self.note_hash(i, probe.hash);
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
    pub(super) fn prepared_or_bulk(prepared: Option<PreparedTable>, keys: usize) -> Self {
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

    /// Feed `items` to `place` in order, each one's first slot (and its tags, in a table with
    /// tags: a growth's replay writes them) prefetched `FILL_AHEAD` items before it is placed (a
    /// bulk fill's misses overlap instead of following each other); stop early when `place`
    /// returns `false`.
    pub(super) fn place_ahead<'k, I, V>(
        &self,
        mut items: I,
        mut place: impl FnMut(Probe<'k>, V) -> bool,
    ) where
        I: Iterator<Item = (Probe<'k>, V)>,
    {
        let mut ahead = std::collections::VecDeque::with_capacity(FILL_AHEAD);
        loop {
            while ahead.len() < FILL_AHEAD {
                let Some((probe, item)) = items.next() else { break };
                self.prefetch(probe.hash);
                self.prefetch_tags(probe.hash);
                ahead.push_back((probe, item));
            }
            let Some((probe, item)) = ahead.pop_front() else { return };
            if !place(probe, item) {
                return;
            }
        }
    }

    /// The first empty slot of `hash`'s probe sequence (its builder only: by the tags, when
    /// there are tags).
    pub(super) fn first_empty(&self, hash: u64) -> usize {
        let mut i = hash as usize & self.mask;
        let empty = |i: usize| match &self.tags {
            Some(tags) => tags[i].load(Ordering::Relaxed) == EMPTY_TAG,
            None => self.slots[i].hash.load(Ordering::Relaxed) == EMPTY,
        };
        while !empty(i) {
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
    pub(super) fn copy_live_into(&self, to: &Table, stop: Option<&ScanStop<'_>>) -> Option<usize> {
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
                to.prefetch_tags(ahead);
            }
            if let Some(snapshot) = slot.snapshot() {
                let (at, hash) = (to.first_empty(snapshot.hash), snapshot.hash);
                snapshot.place(&to.slots[at]);
                to.note_hash(at, hash);
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
    pub(super) fn set_unpublished(&self, probe: &Probe<'_>, location: Option<Location>) -> bool {
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
                    _ => self.delete(i),
                },
                _ => {}
            }
            i = (i + 1) & self.mask;
        }
        let Some(location) = location.filter(|_| kept.is_none()) else { return false };
        let at = free.unwrap_or(i);
        self.set_key(at, probe, location);
        free.is_none()
    }
}

/// `work` run on each of `runs`, on threads of their own when there are several; the results
/// in order. A panic on a thread is resumed here.
pub(super) fn on_threads<R, T, W>(runs: Vec<R>, work: W) -> Vec<T>
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
