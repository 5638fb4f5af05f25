//! The point table's growth: the successor prepared ahead on a thread of its own, the copy of a
//! large table on another while the writer goes on writing (`Growth`), the keys changed
//! meanwhile set again in rounds, and the tables let go of dropped off the writer's thread.
//!
//! INVARIANT: every key changed during a growth is noted after the change, and the growth's
//! end sets the keys noted since the last round with the writer idle, so the published table
//! holds each key as the current table does (argued at `Growth`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use super::slot::{Probe, Slot};
#[cfg(test)]
use super::table::COPY_BLOCK_SLOTS;
use super::table::{LOAD_DEN, LOAD_NUM, Table};
#[cfg(test)]
use super::tests;
use super::{PointTable, Writer};

/// A growth's table of at least this many bytes is allocated ahead on a thread of its own, and
/// the table it replaces dropped on another (see `Writer::prepare_next`); smaller in tests, so
/// that their growths take that path.
pub(super) const PREPARE_NEXT_MIN_BYTES: usize = if cfg!(test) { 16 << 10 } else { 4 << 20 };
/// A table starts preparing its successor (four times its size) once `used * PREPARE_AT_DEN`
/// reaches `capacity * PREPARE_AT_NUM`: half full, so the successor is touched while the next
/// quarter of the slots fills, up to the growth at 3/4. Earlier would give the first touch more
/// time (a 64 MiB successor was sometimes not ready: a 46–53 ms stall in a 400 k put loop), but
/// a store whose keys stay below the growth would hold the unused successor from lower down
/// (docs/performance.md, session 13).
pub(super) const PREPARE_AT_NUM: usize = 1;
pub(super) const PREPARE_AT_DEN: usize = 2;
/// While a large table's growth copies it on a thread of its own (`Growth`), the writer goes on
/// writing it up to this load; past it the writer waits for the copy.
pub(super) const GROWING_LOAD_NUM: usize = 7;
pub(super) const GROWING_LOAD_DEN: usize = 8;
/// A growth's copy sets the keys changed meanwhile again in rounds, each taking those changed
/// during the previous one, until a round takes fewer than this many keys (the writer sets the
/// rest) or after `REPLAY_ROUNDS_MAX` rounds.
const REPLAY_DONE_KEYS: usize = 64;
const REPLAY_ROUNDS_MAX: usize = 8;

impl Writer {
    /// Note a key changed in the table (put, overwritten or removed; `new` when it was not
    /// live before) while a growth copies the table.
    pub(super) fn note_changed(&mut self, key: &[u8], new: bool) {
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
    pub(super) fn prepare_next(&mut self) -> bool {
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
    pub(super) fn successor_slots(&self) -> usize {
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
pub(super) struct Growth {
    /// The copy: the fresh table and its slots used (`None` if it was cancelled).
    pub(super) thread: std::thread::JoinHandle<Option<(Table, usize)>>,
    /// Set to make the copy stop early and drop its tables (a cleared or dropped table has no
    /// use for them): its scan looks at it between blocks of slots, and it stops before its
    /// next round.
    pub(super) cancel: Arc<AtomicBool>,
    /// Keys changed and not yet taken by a round.
    pub(super) changed: Arc<Mutex<ChangedKeys>>,
    /// Keys the fresh table can still take without passing its growth threshold.
    pub(super) room: usize,
    /// The fresh table's slots.
    pub(super) capacity: usize,
}

impl Growth {
    /// Make the copy stop early, and let its tables go without waiting for it and without
    /// dropping them here ([`retire`]).
    pub(super) fn cancel(self) {
        self.cancel.store(true, Ordering::Relaxed);
        retire(self.thread);
    }
}

/// Let go of a thread that makes or holds tables the writer has no use for (a growth's copy, a
/// prepared successor): a thread of its own joins it and drops what it returns
/// ([`drop_elsewhere`]). Dropping the handle here instead would drop a finished thread's table
/// on this thread; an unfinished one drops its own.
pub(super) fn retire<T: Send + 'static>(thread: std::thread::JoinHandle<T>) {
    drop_elsewhere(move || drop(thread.join()));
}

/// Run `drop` — the drop of a large table: every slot read, then 64–256 MB unmapped — on a
/// thread of its own (`mcstore-index-drop`), not on the writer's, which holds the index's
/// write mutex. Here if no thread can be started (the failed spawn drops the closure, and
/// what it holds, here).
pub(super) fn drop_elsewhere(drop: impl FnOnce() + Send + 'static) {
    let dropper = std::thread::Builder::new().name("mcstore-index-drop".into());
    std::mem::drop(dropper.spawn(drop));
}

/// Drop `table` (a table of `slots` slots, or the last handle on one) on a thread of its own
/// if it is large ([`drop_elsewhere`]); a small one here, where a thread would cost more.
pub(super) fn drop_table<T: Send + 'static>(table: T, slots: usize) {
    if slots * std::mem::size_of::<Slot>() >= PREPARE_NEXT_MIN_BYTES {
        drop_elsewhere(move || drop(table));
    }
}

/// What a background growth's copy looks at between blocks of its scan
/// (`Table::copy_live_into`; the inline growth scans without one).
pub(super) struct ScanStop<'a> {
    /// Set when the growth is cancelled ([`Growth::cancel`]).
    pub(super) cancel: &'a AtomicBool,
    /// Tests: the copy's gate, which counts the slots scanned, and the slot before which the
    /// scan waits at it (`None` unless the gate's stage is 3, mid-scan).
    #[cfg(test)]
    pub(super) gate: Option<(&'a tests::Gate, Option<usize>)>,
}

impl ScanStop<'_> {
    /// Whether the scan stops before slot `i` (a block's first, or the table's end).
    #[cfg_attr(
        not(test),
        expect(unused_variables, reason = "only tests count the slots scanned and wait at a slot")
    )]
    pub(super) fn before(&self, i: usize) -> bool {
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
pub(super) struct ChangedKeys {
    pub(super) bytes: Vec<u8>,
    pub(super) ends: Vec<usize>,
}

impl ChangedKeys {
    pub(super) fn push(&mut self, key: &[u8]) {
        self.bytes.extend_from_slice(key);
        self.ends.push(self.bytes.len());
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(start, &end)| &self.bytes[start..end])
    }

    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Set each key in `fresh` (not yet published) as `current` has it now; the empty slots
    /// that took one. Each key's slots in both tables are prefetched `FILL_AHEAD` keys ahead.
    pub(super) fn replay(
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
pub(super) struct Prepared {
    /// Its slots (a power of two).
    pub(super) capacity: usize,
    pub(super) thread: std::thread::JoinHandle<Table>,
}

impl Table {
    /// The fresh table for a growth to `capacity` slots: the one `next` prepares if it has that
    /// size (waiting for it if need be), else one allocated now. A prepared table of another
    /// size (keys were removed meanwhile) is retired ([`retire`]): this thread neither waits
    /// for its first touch nor reads its slots to drop it.
    pub(super) fn take_next(next: &mut Option<Prepared>, capacity: usize) -> Table {
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
    /// Start copying the table into a fresh one on a thread of its own if the fresh one is
    /// large (see [`Growth`]); whether it started.
    pub(super) fn start_growth(&self, writer: &mut Writer) -> bool {
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
    pub(super) fn end_growth_if_due(&self, writer: &mut Writer) {
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
    pub(super) fn end_growth(&self, writer: &mut Writer) {
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
    pub(super) fn publish_retiring(&self, writer: &mut Writer, fresh: Table) {
        let old = self.publish(writer, fresh);
        let slots = old.capacity();
        drop_table(old, slots);
    }
}
