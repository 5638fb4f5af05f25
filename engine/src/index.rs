//! The DRAM index: key → location of its newest visible record.
//!
//! Point lookups go to the `PointTable` (`point_table.rs`: an open-addressed fingerprint table
//! read without locks); the key order for ranges is a separate `KeyOrder` (a B-tree plus an
//! unsorted run of new keys, `key_order.rs`). Both are written under one short mutex that
//! writers and iterator chunk fetches take. INVARIANT: every mutation goes through
//! `insert`/`remove`/`clear`, which update both structures under that mutex; only live keys are
//! indexed (tombstones are not).

use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mcstore_recovery::format::{Lsn, RecordKind};
use mcstore_recovery::scan::{WalkedEntries, WalkedEntry};
use parking_lot::Mutex;

pub use crate::key_order::IndexKey;
use crate::key_order::KeyOrder;
use crate::point_table::{PointTable, PreparedTable, Version, Writer};

/// Where a committed record lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// Pool offset of the record.
    pub offset: u64,
    /// Its encoded length (header, key, value, padding).
    pub len: u32,
    /// Sequence of the segment it lives in (part of its checksum context).
    pub segment_seq: u64,
    /// Its log sequence number.
    pub lsn: u64,
}

/// A large index's point table being allocated on a thread of its own ([`Index::prepare`]):
/// the kernel clears every fresh page of it, ~0.25 s for 2 M keys' 256 MB on this kind of VM
/// (docs/performance.md); an open starts it as soon as recovery's walk ends.
pub struct Preparing(std::thread::JoinHandle<PreparedTable>);

impl std::fmt::Debug for Preparing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preparing").finish_non_exhaustive()
    }
}

/// Threads that fill a bulk-built point table at most.
const FILL_THREADS_MAX: usize = 4;

/// A bulk fill's thread count, and `prepared`'s table once its thread is done (its panic — it
/// only allocates — leaves the table to allocate in the fill).
fn fill_setup(prepared: Option<Preparing>) -> (usize, Option<PreparedTable>) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(FILL_THREADS_MAX);
    (threads, prepared.and_then(|preparing| preparing.0.join().ok()))
}

/// `f` as the version picker of a newest-wins fill (each version borrows its entry's key).
fn versions<F>(f: F) -> F
where
    F: for<'e> Fn(&'e WalkedEntry) -> Option<Version<'e>>,
{
    f
}

/// The index of live keys.
pub struct Index {
    points: PointTable,
    write: Mutex<WriteSide>,
    key_bytes: AtomicUsize,
    keys: AtomicUsize,
}

/// What only writers touch: the point table's counts and the key order.
struct WriteSide {
    points: Writer,
    order: KeyOrder,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("keys", &self.len()).finish()
    }
}

impl Default for Index {
    fn default() -> Self {
        Self::bulk_load(std::iter::empty())
    }
}

/// Approximate DRAM bytes per key beyond the point table's slots: its B-tree slot (prefix and
/// the key in place, or a shared pointer to a long key) with its share of a node.
const ORDER_BYTES_PER_KEY: usize = 32 + 16;

/// Recovered entries below this are indexed on the opening thread alone.
const BULK_PARALLEL_MIN: usize = 1 << 16;

impl Index {
    /// Build from `(key, location)` pairs sorted by key without duplicates (see
    /// [`Index::bulk_load_by`]).
    pub fn bulk_load(entries: impl IntoIterator<Item = (Arc<[u8]>, Location)>) -> Self {
        let entries: Vec<(Arc<[u8]>, Location)> = entries.into_iter().collect();
        Self::bulk_load_by(entries, |(key, location)| Some((&key[..], *location)), None)
    }

    /// Start allocating, on a thread of its own, the point table a bulk load of about `keys`
    /// keys fills (see [`Preparing`]); `None` for an index small enough to allocate in passing,
    /// or when no thread can be started.
    pub fn prepare(keys: usize) -> Option<Preparing> {
        if keys < BULK_PARALLEL_MIN {
            return None;
        }
        let thread = std::thread::Builder::new().name("mcstore-index-prep".into());
        thread.spawn(move || PointTable::prepare(keys)).ok().map(Preparing)
    }

    /// Build from the entries `entry` picks from `items` (recovery's entries: `None` skips an
    /// item, e.g. a tombstone), whose keys are sorted ascending without duplicates. Nothing is
    /// allocated per key beyond the index's own copy (short keys are held inline by both
    /// structures). A large index's point table is filled on every core — into `prepared`'s
    /// table when it fits — and its key order is then built on a background thread, which owns
    /// `items` and drops them when done: point reads and writes go ahead at once, the first
    /// ordered read or removal waits for the tree.
    pub fn bulk_load_by<T, F>(items: Vec<T>, entry: F, prepared: Option<Preparing>) -> Self
    where
        T: Send + Sync + 'static,
        F: Fn(&T) -> Option<(&[u8], Location)> + Send + Sync + 'static,
    {
        let (threads, prepared) = fill_setup(prepared);
        let (points, writer) =
            PointTable::build(&items, &entry, threads, BULK_PARALLEL_MIN, prepared);
        let (order, key_bytes) = if items.len() < BULK_PARALLEL_MIN {
            KeyOrder::from_sorted(items.iter().filter_map(|item| Some(entry(item)?.0)))
        } else {
            let key_bytes = items.iter().filter_map(|item| Some(entry(item)?.0.len())).sum();
            (KeyOrder::in_background(items, move |item| Some(entry(item)?.0)), key_bytes)
        };
        Self::assembled(points, writer, order, key_bytes)
    }

    /// The index of a filled point table and its key order.
    fn assembled(points: PointTable, writer: Writer, order: KeyOrder, key_bytes: usize) -> Self {
        let count = writer.live();
        Self {
            points,
            write: Mutex::new(WriteSide { points: writer, order }),
            keys: AtomicUsize::new(count),
            key_bytes: AtomicUsize::new(key_bytes),
        }
    }

    /// Build from recovery's unsorted `walked` entries (every version of every key): the
    /// point table is filled with the newest version of each key straight away, on every core
    /// (into `prepared`'s table when it fits), and the key order is sorted and built afterwards
    /// — on a background thread for a large index, which `open` does not wait for. Returns the
    /// index, each segment's live record bytes (by `segment_of`'s index, `segments` of them)
    /// and the entries a sorted index would hold (each key's newest version, tombstones
    /// included, and the newest clear); `walked` back if its keys were far more than its
    /// estimate said (the caller then sorts it and bulk-loads the result).
    pub fn from_walked<S>(
        walked: WalkedEntries,
        segment_of: &S,
        segments: usize,
        prepared: Option<Preparing>,
    ) -> std::result::Result<(Self, Vec<u64>, usize), WalkedEntries>
    where
        S: Fn(u64) -> Option<usize> + Sync,
    {
        let (threads, prepared) = fill_setup(prepared);
        let cleared = walked.cleared();
        let version = versions(move |e| {
            let put = match e.kind() {
                RecordKind::Put => true,
                RecordKind::Delete => false,
                _ => return None,
            };
            let location = Location {
                offset: e.offset(),
                len: e.record_len(),
                segment_seq: e.segment_seq(),
                lsn: e.lsn().0,
            };
            // A version at or below the newest clear is gone, whatever is newer.
            (e.lsn() > cleared).then_some(Version { key: e.key(), location, put })
        });
        let built = PointTable::build_newest(
            &walked.pieces(),
            &version,
            walked.estimated_keys(),
            segment_of,
            segments,
            threads,
            BULK_PARALLEL_MIN,
            prepared,
        );
        let Some((points, writer, newest)) = built else {
            return Err(walked);
        };
        let entries = writer.used() + usize::from(cleared > Lsn(0));
        let order = KeyOrder::of_walked(walked, writer.live() >= BULK_PARALLEL_MIN);
        let index = Self::assembled(points, writer, order, newest.key_bytes);
        Ok((index, newest.live_bytes, entries))
    }

    /// The location of `key`, if live. Lock-free.
    pub fn get(&self, key: &[u8]) -> Option<Location> {
        self.points.get(key)
    }

    /// Publish the point table a growth copied, if its copy is done and no writer holds the
    /// index: the background flusher's tick, so a store whose writes stop during a growth does
    /// not hold both tables until its next write.
    pub(crate) fn end_finished_growth(&self) {
        if let Some(mut write) = self.write.try_lock() {
            self.points.end_finished_growth(&mut write.points);
        }
    }

    /// Whether the point table is growing in the background.
    #[cfg(test)]
    pub(crate) fn growing(&self) -> bool {
        self.write.lock().points.growing()
    }

    /// Start loading `key`'s first point-table slot into the cache, for a read (a hint; see
    /// `PointTable::prefetch`).
    pub fn prefetch(&self, key: &[u8]) {
        self.points.prefetch(key);
    }

    /// Start loading what indexing a write of `key` reads: its first point-table slot and its
    /// tags (a hint; see `PointTable::prefetch_for_write`).
    pub fn prefetch_for_write(&self, key: &[u8]) {
        self.points.prefetch_for_write(key);
    }

    /// Point `key` at `location`; returns the previous location. Writers only (commit lock).
    pub fn insert(&self, key: &[u8], location: Location) -> Option<Location> {
        let mut write = self.write.lock();
        let write = &mut *write;
        let old = self.points.upsert(&mut write.points, key, location);
        if old.is_none() {
            write.order.insert_new(key);
            self.keys.fetch_add(1, Ordering::Relaxed);
            self.key_bytes.fetch_add(key.len(), Ordering::Relaxed);
        }
        old
    }

    /// Point `key` at `location` only if it is still at `expected` (compaction's
    /// compare-and-set on the old location); whether it was replaced. Writers only.
    pub fn replace_if(&self, key: &[u8], expected: Location, location: Location) -> bool {
        if self.get(key) != Some(expected) {
            return false;
        }
        self.insert(key, location);
        true
    }

    /// Forget `key`; returns its location. Writers only (commit lock).
    pub fn remove(&self, key: &[u8]) -> Option<Location> {
        let mut write = self.write.lock();
        let write = &mut *write;
        let removed = self.points.remove(&mut write.points, key)?;
        write.order.remove(key);
        self.keys.fetch_sub(1, Ordering::Relaxed);
        self.key_bytes.fetch_sub(key.len(), Ordering::Relaxed);
        Some(removed)
    }

    /// Forget every key. Writers only (commit lock).
    pub fn clear(&self) {
        let mut write = self.write.lock();
        let write = &mut *write;
        self.points.clear(&mut write.points);
        drop(write.order.take_all());
        self.keys.store(0, Ordering::Relaxed);
        self.key_bytes.store(0, Ordering::Relaxed);
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.keys.load(Ordering::Relaxed)
    }

    /// Whether no key is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to `limit` keys within `(low, high)`, ascending from `low` (or descending from `high`
    /// when `reverse`). Holds the write mutex only while copying at most `limit` key handles.
    pub fn keys_between(
        &self,
        low: Bound<&[u8]>,
        high: Bound<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Vec<IndexKey> {
        if range_is_empty(low, high) {
            return Vec::new();
        }
        self.write.lock().order.range(low, high, limit, reverse)
    }

    /// Every live key with its location, ascending (the clean-shutdown snapshot). Callers hold
    /// the commit lock, so no write interleaves.
    pub fn entries(&self) -> Vec<(Arc<[u8]>, Location)> {
        let keys =
            self.write.lock().order.range(Bound::Unbounded, Bound::Unbounded, usize::MAX, false);
        keys.into_iter()
            .filter_map(|key| Some((Arc::from(key.as_slice()), self.get(&key)?)))
            .collect()
    }

    /// Approximate DRAM bytes the index uses: the point table's slots and tags — its
    /// successor's too, while one is allocated (up to four times the table, from the preparation
    /// at half full until the growth's end) — the keys, and the key order's per-key overhead.
    /// Takes no mutex: counters and the current table's size.
    pub fn approx_bytes(&self) -> usize {
        self.points.table_bytes()
            + self.key_bytes.load(Ordering::Relaxed)
            + self.len() * ORDER_BYTES_PER_KEY
    }
}

/// Whether `(low, high)` holds no key; `BTreeSet::range` panics on such ranges.
pub(crate) fn range_is_empty(low: Bound<&[u8]>, high: Bound<&[u8]>) -> bool {
    match (low, high) {
        (Bound::Included(l), Bound::Included(h)) => l > h,
        (Bound::Included(l), Bound::Excluded(h))
        | (Bound::Excluded(l), Bound::Included(h))
        | (Bound::Excluded(l), Bound::Excluded(h)) => l >= h,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned<K: std::ops::Deref<Target = [u8]>>(keys: &[K]) -> Vec<Vec<u8>> {
        keys.iter().map(|k| k.to_vec()).collect()
    }

    fn at(offset: u64) -> Location {
        Location { offset, len: 64, segment_seq: 1, lsn: offset }
    }

    #[test]
    fn insert_get_remove_keep_both_structures_in_step() {
        let index = Index::default();
        assert_eq!(index.insert(b"b", at(1)), None);
        assert_eq!(index.insert(b"a", at(2)), None);
        assert_eq!(index.insert(b"b", at(3)), Some(at(1)));
        assert_eq!(index.get(b"b"), Some(at(3)));
        assert_eq!(index.len(), 2);
        assert_eq!(index.remove(b"a"), Some(at(2)));
        assert_eq!(index.remove(b"a"), None);
        let keys = index.keys_between(Bound::Unbounded, Bound::Unbounded, 10, false);
        assert_eq!(owned(&keys), vec![b"b".to_vec()]);
        assert_eq!(index.approx_bytes(), 64 * PointTable::SLOT_BYTES + 1 + ORDER_BYTES_PER_KEY);
        assert!(!index.replace_if(b"b", at(1), at(9)));
        assert!(index.replace_if(b"b", at(3), at(9)));
        assert_eq!(index.get(b"b"), Some(at(9)));
        index.insert(b"a", at(4));
        assert_eq!(
            index.entries(),
            vec![(Arc::from(&b"a"[..]), at(4)), (Arc::from(&b"b"[..]), at(9))]
        );
        index.clear();
        assert!(index.is_empty() && index.get(b"b").is_none());
        assert!(index.keys_between(Bound::Unbounded, Bound::Unbounded, 10, false).is_empty());
    }

    #[test]
    fn parallel_bulk_load_indexes_every_key() {
        let n = BULK_PARALLEL_MIN as u64 + 777;
        let mut keys: Vec<Arc<[u8]>> = (0..n).map(|i| Arc::from(&i.to_be_bytes()[..])).collect();
        keys.sort();
        let index =
            Index::bulk_load(keys.iter().cloned().enumerate().map(|(i, k)| (k, at(i as u64))));
        assert_eq!(index.len() as u64, n);
        let slots = index.points.capacity();
        assert!(slots >= n as usize * 2, "rebuilt at most half full: {slots} slots");
        assert_eq!(
            index.approx_bytes(),
            slots * PointTable::SLOT_BYTES + n as usize * (8 + ORDER_BYTES_PER_KEY)
        );
        for (i, key) in keys.iter().enumerate().step_by(997) {
            assert_eq!(index.get(key), Some(at(i as u64)));
        }
        let first = index.keys_between(Bound::Unbounded, Bound::Unbounded, 3, false);
        assert_eq!(owned(&first), owned(&keys[..3]));
    }

    /// A large load's point table is allocated ahead on a thread of its own and filled; a small
    /// one is allocated in passing.
    #[test]
    fn a_prepared_bulk_load_indexes_every_key() {
        assert!(Index::prepare(BULK_PARALLEL_MIN - 1).is_none(), "small: no thread");
        let n = BULK_PARALLEL_MIN as u64 + 777;
        let keys: Vec<Arc<[u8]>> = (0..n).map(|i| Arc::from(&i.to_be_bytes()[..])).collect();
        let items: Vec<(Arc<[u8]>, Location)> =
            keys.iter().cloned().enumerate().map(|(i, k)| (k, at(i as u64))).collect();
        let prepared = Index::prepare(n as usize);
        assert!(prepared.is_some());
        let index = Index::bulk_load_by(items, |(k, l)| Some((&k[..], *l)), prepared);
        assert_eq!(index.len() as u64, n);
        assert_eq!(index.points.capacity(), (2 * n as usize).next_power_of_two());
        for (i, key) in keys.iter().enumerate().step_by(101) {
            assert_eq!(index.get(key), Some(at(i as u64)));
        }
    }

    /// A large load's key order is built in the background: writes of new keys go ahead, a
    /// removal of a recovered key and an ordered read see the whole tree plus the new keys, and
    /// a cleared or dropped index is done with the build.
    #[test]
    fn a_background_key_order_serves_writes_at_once_and_reads_in_full() {
        let n = BULK_PARALLEL_MIN as u64 * 2;
        let key = |i: u64| Arc::<[u8]>::from(&(i * 2).to_be_bytes()[..]);
        let index = Index::bulk_load((0..n).map(|i| (key(i), at(i))));
        assert!(index.write.lock().order.is_building(), "built in the background");
        // Odd keys sort between the recovered ones.
        let odd = |i: u64| (i * 2 + 1).to_be_bytes();
        for i in (0..n).step_by(1000) {
            assert_eq!(index.insert(&odd(i), at(n + i)), None);
        }
        assert_eq!(index.remove(&key(5)), Some(at(5)));
        let all = index.keys_between(Bound::Unbounded, Bound::Unbounded, usize::MAX, false);
        let mut want: Vec<Vec<u8>> = (0..n).filter(|&i| i != 5).map(|i| key(i).to_vec()).collect();
        want.extend((0..n).step_by(1000).map(|i| odd(i).to_vec()));
        want.sort();
        assert_eq!(owned(&all), want);
        assert_eq!(index.len(), want.len());
        index.clear();
        assert!(index.keys_between(Bound::Unbounded, Bound::Unbounded, 1, false).is_empty());
        drop(Index::bulk_load((0..n).map(|i| (key(i), at(i)))));
    }

    /// The memory estimate counts the point table's successor while it is allocated — prepared
    /// from half full, then filled by the growth — and after the growth only the table that
    /// replaced the current one; a clear while a successor is prepared forgets it.
    #[test]
    fn the_memory_estimate_counts_the_point_tables_successor() {
        let index = Index::default();
        let mut n = 0u64;
        let mut insert = |index: &Index| {
            assert_eq!(index.insert(&n.to_be_bytes(), at(n)), None);
            n += 1;
        };
        let keys = |index: &Index| index.len() * (8 + ORDER_BYTES_PER_KEY);
        while !index.write.lock().points.preparing() {
            insert(&index);
        }
        let slots = index.points.capacity();
        // The successor is four times the table (a growth at 3/4 leaves it at most 3/8 full).
        // The first table (a bulk load of nothing) has no tags; a successor has a tag per slot.
        let with_successor =
            slots * PointTable::SLOT_BYTES + 4 * slots * PointTable::TAGGED_SLOT_BYTES;
        assert_eq!(index.approx_bytes(), with_successor + keys(&index), "prepared");
        while !index.growing() {
            insert(&index);
        }
        assert_eq!(index.points.capacity(), slots, "the current table serves the growth");
        assert_eq!(index.approx_bytes(), with_successor + keys(&index), "growing");
        while index.points.capacity() == slots {
            insert(&index);
        }
        assert!(!index.growing() && !index.write.lock().points.preparing());
        let grown = index.points.capacity();
        assert_eq!(grown, 4 * slots);
        let grown_bytes = grown * PointTable::TAGGED_SLOT_BYTES;
        assert_eq!(index.approx_bytes(), grown_bytes + keys(&index), "grown");
        while !index.write.lock().points.preparing() {
            insert(&index);
        }
        let with_successor = (grown + 4 * grown) * PointTable::TAGGED_SLOT_BYTES;
        assert_eq!(index.approx_bytes(), with_successor + keys(&index), "prepared again");
        index.clear();
        let cleared = 64 * PointTable::TAGGED_SLOT_BYTES;
        assert_eq!(index.approx_bytes(), cleared, "cleared while prepared");
    }

    #[test]
    fn ranges_both_directions_and_empty_ranges() {
        let keys: Vec<Arc<[u8]>> = (0u8..10).map(|i| Arc::from(&[i][..])).collect();
        let index = Index::bulk_load(keys.iter().cloned().map(|k| (k, at(0))));
        assert_eq!(index.len(), 10);
        let low = Bound::Included(&[3u8][..]);
        let high = Bound::Excluded(&[7u8][..]);
        assert_eq!(owned(&index.keys_between(low, high, 2, false)), owned(&keys[3..5]));
        let back = index.keys_between(low, high, 2, true);
        assert_eq!(owned(&back), owned(&[keys[6].clone(), keys[5].clone()]));
        let backwards = (Bound::Included(&[7u8][..]), Bound::Excluded(&[3u8][..]));
        assert!(index.keys_between(backwards.0, backwards.1, 10, false).is_empty());
        let same = Bound::Excluded(&[3u8][..]);
        assert!(index.keys_between(same, same, 10, false).is_empty());
    }
}
