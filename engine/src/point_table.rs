//! `PointTable`: the point half of the index — key → [`Location`] in an open-addressed table of
//! one-cache-line slots (linear probing; the key's full 64-bit hash is the fingerprint; keys up
//! to 16 bytes live inline, longer ones behind a shared pointer). Readers take no lock: each slot
//! is a sequence lock over atomics, and the table is swapped whole (`ArcSwap`) when it grows, so
//! a reader on the old table keeps a consistent, slightly older view. A miss and a hit on a short
//! key touch only the table's lines.
//!
//! Here: the table as the index sees it (lookups, upserts, removals, clears, the bulk build)
//! and the writer's state. The slot is in `point_table/slot.rs`, one generation of the table in
//! `point_table/table.rs`, the growth in `point_table/growth.rs`.
//!
//! INVARIANT: one writer at a time — every mutation takes `&mut Writer`, which only the index's
//! write mutex hands out. Within one table a slot never returns to `EMPTY` (removal leaves
//! `DELETED`), so a probe that meets an empty slot may stop; entries never move within a table.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;

use crate::index::Location;

mod growth;
mod newest;
mod slot;
mod table;

use growth::{Growth, Prepared, retire};
pub(crate) use newest::Version;
use slot::{DELETED, Probe, Slot};
use table::{LOAD_DEN, LOAD_NUM, MIN_CAPACITY, Table, on_threads};

/// A fresh table allocated ahead of a bulk build ([`PointTable::prepare`]), its memory faulted in.
pub(crate) struct PreparedTable(Table);

/// The point table.
pub(crate) struct PointTable {
    table: ArcSwap<Table>,
    hasher: foldhash::fast::RandomState,
    /// The current table's first slot address, mask and first tag address, for prefetch hints
    /// only: read without the `ArcSwap` guard (whose atomic read-modify-writes would wait for
    /// the prefetch), so they may be stale or torn — a prefetch of any address is harmless.
    hint: [AtomicUsize; 3],
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

    /// Start loading the first slot `key` probes into the cache (a hint: iterators call it for a
    /// whole chunk before they look the keys up; a writer calls `prefetch_for_write`).
    pub(crate) fn prefetch(&self, key: &[u8]) {
        self.prefetch_slot(key);
    }

    /// Start loading what the writer's upsert or removal of `key` reads: the key's first slot
    /// and its tags (`Table::find_for_writer`). A writer calls it before it persists.
    pub(crate) fn prefetch_for_write(&self, key: &[u8]) {
        let at = self.prefetch_slot(key);
        let tags = self.hint[2].load(Ordering::Relaxed);
        if tags != 0 {
            mcstore_pmem::hint::prefetch_address(tags.wrapping_add(at) as *const u8);
        }
    }

    /// Prefetch `key`'s first slot by the hint; its index.
    fn prefetch_slot(&self, key: &[u8]) -> usize {
        let probe = Probe::new(&self.hasher, key);
        let base = self.hint[0].load(Ordering::Relaxed);
        let at = probe.hash as usize & self.hint[1].load(Ordering::Relaxed);
        let slot = base.wrapping_add(at * std::mem::size_of::<Slot>());
        mcstore_pmem::hint::prefetch_address(slot as *const u8);
        at
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
        self.hint[2].store(table.tags_address(), Ordering::Relaxed);
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
        let free = match writer.table.find_for_writer(&probe) {
            Ok((i, old)) => {
                writer.table.slots[i].write(None, location);
                writer.note_changed(key, false);
                return Some(old);
            }
            Err(free) => free,
        };
        writer.live += 1;
        let capacity = writer.table.capacity();
        if writer.table.is_deleted(free) {
            writer.table.set_key(free, &probe, location);
        } else if (writer.used + 1) * LOAD_DEN <= capacity * LOAD_NUM {
            writer.used += 1;
            writer.table.set_key(free, &probe, location);
            if writer.prepare_next() {
                self.note_successor(writer);
            }
        } else if writer.growth.is_some() || self.start_growth(writer) {
            // `end_growth_if_due` left room below `GROWING_LOAD`.
            writer.used += 1;
            writer.table.set_key(free, &probe, location);
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

    /// Forget `key`; its location if it was present.
    pub(crate) fn remove(&self, writer: &mut Writer, key: &[u8]) -> Option<Location> {
        self.end_growth_if_due(writer);
        let probe = Probe::new(&self.hasher, key);
        debug_assert!(Arc::ptr_eq(&writer.table, &self.table.load()));
        let table = &writer.table;
        let (i, old) = table.find_for_writer(&probe).ok()?;
        table.delete(i);
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

    /// Slots of the current table.
    #[cfg(test)]
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

    /// Bytes of one slot of a table without tags (a bulk-built one).
    pub(crate) const SLOT_BYTES: usize = std::mem::size_of::<Slot>();
    /// Bytes of one slot of a table with tags (any other: its slot and its tag).
    pub(crate) const TAGGED_SLOT_BYTES: usize = Self::SLOT_BYTES + 1;

    /// Bytes of the current table and of its successor while one is allocated (for the memory
    /// estimate; a successor has tags).
    pub(crate) fn table_bytes(&self) -> usize {
        let table = self.table.load();
        let per_slot =
            if table.tags.is_some() { Self::TAGGED_SLOT_BYTES } else { Self::SLOT_BYTES };
        table.capacity() * per_slot + self.successor_slots() * Self::TAGGED_SLOT_BYTES
    }
}

#[cfg(test)]
pub(crate) mod tests;
