//! `Iter` and `Keys`: ordered, double-ended iteration over a key range (`Keys` reads the index
//! only).
//!
//! Keys are fetched from the ordered index in chunks (at most `ITER_CHUNK_KEYS` key handles
//! copied under the ordered set's mutex, so writers wait at most that long); each key's value is
//! read lock-free through the barrier when the item is produced. A fetched chunk is warmed first
//! (the software prefetch: its index slots are prefetched, then its records' lines, back to back,
//! so their cache misses overlap instead of costing one dependent miss per item). A long forward
//! scan also reads every other chunk ahead on a thread of its own (`ahead.rs`), handing out
//! what it read only while each key still holds the version read. INVARIANT: the front and back
//! cursors bound a shrinking unclaimed range, so no key is produced twice; a key removed before
//! its item is produced is skipped; every key live for the whole iteration is produced exactly
//! once.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;

use bytes::BytesMut;

use crate::db::Db;
use crate::error::Result;
use crate::index::{IndexKey, Location};
use crate::limits::ITER_CHUNK_KEYS;
use crate::value::Value;

mod ahead;

use ahead::{Next, ReadAhead};

/// One item of an iteration.
type Item = Result<(Value, Value)>;

// An iterator may be shared between threads (its read-ahead keeps it `Sync`).
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Iter>();
    shared::<Keys>();
};

/// Iterator over `(key, value)` pairs, ascending; `.rev()` or `next_back` for descending.
/// An item that cannot be read is an `Err` item; iteration continues after it.
pub struct Iter {
    /// The front end's read-ahead, once a forward scan is long enough (`ahead.rs`). Declared
    /// first, so it is dropped first: its thread's handle of the store goes before this one.
    ahead: Option<ReadAhead>,
    db: Db,
    cursor: Cursor,
    /// The value buffer reads reuse.
    buf: Vec<u8>,
    /// Where small items' keys and values are copied: each is a slice of this block (one
    /// allocation per block instead of two per item).
    arena: BytesMut,
    /// A read-ahead may still start: none was started, and the back end was never used.
    ahead_allowed: bool,
}

/// Iterator over the keys of a range, ascending (`.rev()` for descending): the index alone,
/// no value is read, so no item meets a media error. Same guarantees as [`Iter`].
pub struct Keys {
    db: Db,
    cursor: Cursor,
}

/// The two ends of a range iteration over the ordered index.
struct Cursor {
    /// Lower bound of the keys not yet fetched by either end.
    low: Bound<Arc<[u8]>>,
    /// Upper bound of the keys not yet fetched by either end.
    high: Bound<Arc<[u8]>>,
    /// Fetched for the front, ascending.
    front: VecDeque<IndexKey>,
    /// Fetched for the back, descending.
    back: VecDeque<IndexKey>,
    /// Nothing is left between `low` and `high`.
    exhausted: bool,
    /// Chunks fetched so far by the front and the back.
    refills: [u32; 2],
}

/// Keys in the first chunk an end fetches: a short scan (`take(10)`) should not fetch and warm
/// a whole `ITER_CHUNK_KEYS` chunk it will not use.
const FIRST_CHUNK_KEYS: usize = 16;

/// Bytes of each block small items are copied into.
const ARENA_BLOCK_BYTES: usize = 16 << 10;

/// Items (key and value) at most this long are copied into the block; larger ones get their own
/// allocation, so a value kept from an iteration holds at most a block, never a large value's
/// neighbours.
const ARENA_ITEM_MAX: usize = 1 << 10;

/// Chunks the front end fetches (and warms) itself before a read-ahead thread may start: a
/// short scan never starts one.
const AHEAD_AFTER_CHUNKS: u32 = 4;

/// Bytes of a record's start a chunk's warm-up prefetches (its last line too, when longer): a
/// large value is streamed by its own read, not pulled in ahead of time.
const WARM_RECORD_BYTES: u64 = 256;

impl std::fmt::Debug for Iter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.cursor.debug("Iter", f)
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.cursor.debug("Keys", f)
    }
}

fn borrow(bound: &Bound<Arc<[u8]>>) -> Bound<&[u8]> {
    bound.as_ref().map(|key| &**key)
}

impl Cursor {
    /// An iterator's `Debug`: its name and the range not yet fetched.
    fn debug(&self, name: &str, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(name).field("low", &self.low).field("high", &self.high).finish()
    }

    fn new(low: Bound<Arc<[u8]>>, high: Bound<Arc<[u8]>>) -> Self {
        Self {
            low,
            high,
            front: VecDeque::new(),
            back: VecDeque::new(),
            exhausted: false,
            refills: [0; 2],
        }
    }

    /// Fetch the next chunk for one end (handing it to `fetched` first); moves that end's
    /// cursor past it.
    fn refill(&mut self, db: &Db, reverse: bool, fetched: impl FnOnce(&[IndexKey])) {
        let refills = &mut self.refills[usize::from(reverse)];
        let limit =
            if *refills == 0 { FIRST_CHUNK_KEYS.min(ITER_CHUNK_KEYS) } else { ITER_CHUNK_KEYS };
        *refills = refills.saturating_add(1);
        let keys = self.fetch(db, reverse, limit);
        if keys.is_empty() {
            return;
        }
        fetched(&keys);
        if reverse {
            self.back.extend(keys);
        } else {
            self.front.extend(keys);
        }
    }

    /// The next `limit` keys at most for one end, its cursor moved past them; none once nothing
    /// is left between the two ends.
    fn fetch(&mut self, db: &Db, reverse: bool, limit: usize) -> Vec<IndexKey> {
        if self.exhausted {
            return Vec::new();
        }
        let keys =
            db.inner.index.keys_between(borrow(&self.low), borrow(&self.high), limit, reverse);
        match keys.last() {
            None => self.exhausted = true,
            Some(last) if reverse => self.high = Bound::Excluded(Arc::from(last.as_slice())),
            Some(last) => self.low = Bound::Excluded(Arc::from(last.as_slice())),
        }
        keys
    }

    /// The next key claimed by one end: its own buffer, a new chunk, or what the other end
    /// fetched but has not produced.
    fn next_key(
        &mut self,
        db: &Db,
        reverse: bool,
        fetched: impl FnOnce(&[IndexKey]),
    ) -> Option<IndexKey> {
        let own_empty = if reverse { self.back.is_empty() } else { self.front.is_empty() };
        if own_empty {
            self.refill(db, reverse, fetched);
        }
        if reverse {
            self.back.pop_front().or_else(|| self.front.pop_back())
        } else {
            self.front.pop_front().or_else(|| self.back.pop_back())
        }
    }
}

/// Start loading the index entries of `keys`, then their records' lines, into the cache:
/// prefetches only, issued back to back so their misses overlap instead of costing one dependent
/// miss per item. Nothing is read from the medium here (a prefetch meets no fault): each item is
/// looked up and read, verified, when produced (a key may change meanwhile).
///
/// The records are looked up first and prefetched after, in two passes: measured 1.25–2.1× faster
/// over a full scan of 1 M records than a lookup and a prefetch per key in turn (8 interleaved
/// pairs, `docs/performance.md`). Why is not established: locked operations and fences do not
/// wait for earlier prefetches on this machine (a micro-benchmark says so), so it is not the
/// lookups' atomic operations. A likely cause: the lookups' slot loads no longer wait behind the
/// record prefetches for the core's miss buffers.
fn warm(db: &Db, keys: &[IndexKey]) {
    let inner = &db.inner;
    for key in keys {
        inner.index.prefetch(key);
    }
    let locations: Vec<Location> = keys.iter().filter_map(|key| inner.index.get(key)).collect();
    for location in locations {
        let len = u64::from(location.len);
        inner.medium.prefetch(location.offset, len.min(WARM_RECORD_BYTES));
        if len > WARM_RECORD_BYTES {
            inner.medium.prefetch(location.offset + len - 8, 8);
        }
    }
}

impl Iter {
    pub(crate) fn new(db: Db, low: Bound<Arc<[u8]>>, high: Bound<Arc<[u8]>>) -> Self {
        Self {
            ahead: None,
            db,
            cursor: Cursor::new(low, high),
            buf: Vec::new(),
            arena: BytesMut::new(),
            ahead_allowed: true,
        }
    }

    fn next_item(&mut self, reverse: bool) -> Option<Item> {
        if reverse {
            // The back end may reach keys the front end fetched ahead: from here on both ends
            // take from the queue, and no read-ahead starts again.
            self.ahead_allowed = false;
            if let Some(ahead) = &mut self.ahead {
                ahead.settle();
            }
        } else {
            self.start_read_ahead();
        }
        loop {
            let key = if reverse {
                // The back end takes the front end's fetched keys last: they are the lowest.
                let db = &self.db;
                match self.cursor.next_key(db, true, |keys| warm(db, keys)) {
                    Some(key) => key,
                    None => match self.ahead.as_mut()?.pop_back(db)? {
                        Next::Item(item) => return Some(Ok(item)),
                        Next::Key(key) => key,
                    },
                }
            } else {
                let ahead = self.ahead.as_mut().map(|ahead| {
                    ahead.fill(&self.db, &mut self.cursor);
                    ahead.pop_front(&self.db, &mut self.buf, &mut self.arena)
                });
                match ahead.flatten() {
                    Some(Next::Item(item)) => return Some(Ok(item)),
                    Some(Next::Key(key)) => key,
                    None => {
                        let db = &self.db;
                        self.cursor.next_key(db, false, |keys| warm(db, keys))?
                    }
                }
            };
            match self.db.inner.read(&key, &mut self.buf, "iterate") {
                Ok(true) => return Some(Ok(item(&mut self.arena, &key, &self.buf))),
                Ok(false) => continue,
                Err(error) => return Some(Err(error)),
            }
        }
    }

    /// Whether this iteration may read ahead on a thread of its own once it is long (see
    /// [`Options::scan_read_ahead`](crate::Options::scan_read_ahead), which gives the default):
    /// `false` keeps every read on the iterating thread.
    #[must_use]
    pub fn read_ahead(mut self, read_ahead: bool) -> Self {
        self.ahead_allowed &= read_ahead;
        if !read_ahead && let Some(ahead) = &mut self.ahead {
            ahead.settle();
        }
        self
    }

    /// Start the read-ahead thread when a forward scan has fetched `AHEAD_AFTER_CHUNKS` chunks
    /// and produced them, the store allows it (`Options::scan_read_ahead`, `background`) and
    /// another core exists to run it.
    fn start_read_ahead(&mut self) {
        if !self.ahead_allowed
            || self.cursor.refills[0] < AHEAD_AFTER_CHUNKS
            || !self.cursor.front.is_empty()
            || self.cursor.exhausted
        {
            return;
        }
        self.ahead_allowed = false;
        let options = &self.db.inner.options;
        if options.scan_read_ahead
            && options.background
            && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1)
        {
            self.ahead = ReadAhead::start(&self.db);
        }
    }

    /// Whether a read-ahead thread serves this iterator (see [`Iter::read_ahead`]): it starts
    /// once a forward scan has produced its first chunks, if the store allows it.
    pub fn reading_ahead(&self) -> bool {
        self.ahead.as_ref().is_some_and(ReadAhead::running)
    }
}

/// `key` and `value` as owned values: small ones slices of `arena`'s current block (a new block
/// when it is full).
fn item(arena: &mut BytesMut, key: &[u8], value: &[u8]) -> (Value, Value) {
    let len = key.len() + value.len();
    if len > ARENA_ITEM_MAX {
        return (Value::copy_from_slice(key), Value::copy_from_slice(value));
    }
    if arena.capacity() - arena.len() < len {
        *arena = BytesMut::with_capacity(ARENA_BLOCK_BYTES);
    }
    arena.extend_from_slice(key);
    let key = Value::from_bytes(arena.split().freeze());
    arena.extend_from_slice(value);
    (key, Value::from_bytes(arena.split().freeze()))
}

impl Iterator for Iter {
    type Item = Result<(Value, Value)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_item(false)
    }
}

impl DoubleEndedIterator for Iter {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.next_item(true)
    }
}

impl Keys {
    pub(crate) fn new(db: Db, low: Bound<Arc<[u8]>>, high: Bound<Arc<[u8]>>) -> Self {
        Self { db, cursor: Cursor::new(low, high) }
    }

    fn next_item(&mut self, reverse: bool) -> Option<Value> {
        loop {
            let db = &self.db;
            let key = self.cursor.next_key(db, reverse, |keys| {
                for key in keys {
                    db.inner.index.prefetch(key);
                }
            })?;
            // A key removed since its chunk was fetched is skipped, as `Iter` skips it.
            if db.inner.index.get(&key).is_some() {
                return Some(Value::copy_from_slice(&key));
            }
        }
    }
}

impl Iterator for Keys {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        self.next_item(false)
    }
}

impl DoubleEndedIterator for Keys {
    fn next_back(&mut self) -> Option<Value> {
        self.next_item(true)
    }
}

#[cfg(test)]
mod tests {
    use mcstore_pmem::SimMedium;

    use crate::error::Error;
    use crate::test_support::{sim_db, small_options};

    fn keys(
        items: impl Iterator<Item = crate::Result<(crate::Value, crate::Value)>>,
    ) -> Vec<Vec<u8>> {
        items.map(|item| item.unwrap().0.to_vec()).collect()
    }

    fn k(i: u32) -> Vec<u8> {
        format!("key{i:04}").into_bytes()
    }

    #[test]
    fn range_and_prefix_in_both_directions() {
        let (_sim, db) = sim_db(1 << 20, small_options());
        for i in 0..300u32 {
            db.put(k(i), i.to_le_bytes()).unwrap();
        }
        db.put("other", "x").unwrap();
        db.put([0xffu8, 0xff], "high").unwrap();
        let forward = keys(db.range(k(10)..k(200)));
        assert_eq!(forward, (10..200).map(k).collect::<Vec<_>>());
        let backward = keys(db.range(k(10)..=k(200)).rev());
        assert_eq!(backward, (10..=200).rev().map(k).collect::<Vec<_>>());
        assert_eq!(keys(db.prefix("key01")), (100..200).map(k).collect::<Vec<_>>());
        assert_eq!(keys(db.prefix("key01").rev()), (100..200).rev().map(k).collect::<Vec<_>>());
        assert_eq!(keys(db.prefix([0xffu8])), vec![vec![0xff, 0xff]]);
        assert_eq!(keys(db.prefix("")).len(), 302);
        assert!(keys(db.range(k(20)..k(10))).is_empty());
        let (key, value) = db.range(k(7)..).next().unwrap().unwrap();
        assert_eq!((key.to_vec(), value.to_vec()), (k(7), 7u32.to_le_bytes().to_vec()));
        assert_eq!(keys(db.iter()).len(), 302);
        let shown = format!("{:?} {:?}", db.range(k(1)..), db.keys(..k(2)).unwrap());
        assert_eq!(
            shown,
            r#"Iter { low: Included([107, 101, 121, 48, 48, 48, 49]), high: Unbounded } Keys { low: Unbounded, high: Excluded([107, 101, 121, 48, 48, 48, 50]) }"#
        );
    }

    /// Keys 0..n with values of several lengths (small ones share the item blocks, some over
    /// `ARENA_ITEM_MAX` and over a small record), in a store whose background work may run.
    fn long_store(n: u32, options: crate::Options) -> (std::sync::Arc<SimMedium>, crate::Db) {
        let (sim, db) = sim_db(16 << 20, options.background(true));
        for i in 0..n {
            db.put(k(i), value(i)).unwrap();
        }
        (sim, db)
    }

    fn value(i: u32) -> Vec<u8> {
        vec![i as u8; [3, 100, 700, 1500][i as usize % 4]]
    }

    /// A long forward scan starts its read-ahead thread and still yields every item once, in
    /// key order, with its bytes; with the option off it yields the same without one.
    #[test]
    fn a_long_forward_scan_reads_ahead_and_keeps_every_item_in_order() {
        for read_ahead in [true, false] {
            let (_sim, db) = long_store(3000, small_options().scan_read_ahead(read_ahead));
            let mut iter = db.iter();
            let mut seen = Vec::new();
            let mut started = false;
            while let Some(item) = iter.next() {
                let (key, value) = item.unwrap();
                seen.push((key.to_vec(), value.to_vec()));
                started |= iter.reading_ahead();
            }
            assert_eq!(started, read_ahead);
            let expected: Vec<(Vec<u8>, Vec<u8>)> = (0..3000).map(|i| (k(i), value(i))).collect();
            assert!(seen == expected, "read ahead {read_ahead}: items differ");
        }
    }

    /// A read-ahead over values of 20 KiB (chunks cut at their byte bound) yields every item
    /// in order with its bytes.
    #[test]
    fn a_read_ahead_over_large_values_keeps_every_item() {
        let (_sim, db) = sim_db(16 << 20, small_options().background(true));
        let value = |i: u32| vec![i as u8; 20 << 10];
        for i in 0..400 {
            db.put(k(i), value(i)).unwrap();
        }
        let mut iter = db.iter();
        let mut seen = Vec::new();
        let mut started = false;
        while let Some(item) = iter.next() {
            let (key, bytes) = item.unwrap();
            started |= iter.reading_ahead();
            seen.push((key.to_vec(), bytes.to_vec()));
        }
        assert!(started);
        assert!(seen == (0..400).map(|i| (k(i), value(i))).collect::<Vec<_>>());
    }

    /// The back end, used after the front end read ahead, takes what the front end fetched
    /// last: the two ends meet with every key produced exactly once, each end in its order.
    #[test]
    fn both_ends_meet_after_a_read_ahead() {
        let (_sim, db) = long_store(3000, small_options());
        let mut iter = db.iter();
        let mut front: Vec<Vec<u8>> = Vec::new();
        while front.len() < 1000 {
            front.push(iter.next().unwrap().unwrap().0.to_vec());
        }
        assert!(iter.reading_ahead());
        let mut back = Vec::new();
        let mut from_back = true;
        loop {
            let item = if from_back { iter.next_back() } else { iter.next() };
            let Some(item) = item else { break };
            let key = item.unwrap().0.to_vec();
            if from_back {
                back.push(key)
            } else {
                front.push(key)
            }
            from_back = !from_back;
        }
        assert!(!iter.reading_ahead(), "the back end stopped the thread");
        assert!(front.windows(2).all(|w| w[0] < w[1]) && back.windows(2).all(|w| w[0] > w[1]));
        back.reverse();
        front.extend(back);
        assert_eq!(front, (0..3000).map(k).collect::<Vec<_>>());
    }

    /// A key removed, and one overwritten, just after the position the iterator reached, where
    /// the read-ahead has fetched them and may have read them already: the first is skipped, the
    /// second read as it is now, as without read-ahead.
    #[test]
    fn keys_changed_after_they_were_read_ahead_are_read_as_they_are() {
        for (removed, changed) in [(350, 360), (2000, 2500)] {
            let (_sim, db) = long_store(3000, small_options());
            let mut iter = db.iter();
            for _ in 0..300 {
                iter.next().unwrap().unwrap();
            }
            assert!(iter.reading_ahead());
            // Give the thread time to read what it was sent.
            std::thread::sleep(std::time::Duration::from_millis(20));
            rest_after_changes(iter, &db, removed, changed, 2699);
        }
    }

    /// Poisoned records in consecutive chunks (read by the read-ahead thread and by the
    /// iterating thread in turn) each yield a media error in their place; the scan goes on.
    #[test]
    fn media_errors_met_ahead_come_in_their_place() {
        let (sim, db) = long_store(3000, small_options());
        let bad: Vec<u32> = (0..6).map(|j| 1001 + 64 * j).collect();
        for &i in &bad {
            let location = db.inner.index.get(&k(i)).unwrap();
            // A line inside the 152-byte record: no neighbour shares it.
            sim.inject_poison((location.offset + 63) & !63, 64).unwrap();
        }
        let mut iter = db.iter();
        let mut order = Vec::new();
        let mut started = false;
        while let Some(item) = iter.next() {
            started |= iter.reading_ahead();
            order.push(match item {
                Ok((key, _)) => Ok(key.to_vec()),
                Err(Error::Media { key, .. }) => Err(key.unwrap().to_vec()),
                Err(other) => panic!("expected a media error, got {other:?}"),
            });
        }
        assert!(started);
        let expected: Vec<Result<Vec<u8>, Vec<u8>>> =
            (0..3000).map(|i| if bad.contains(&i) { Err(k(i)) } else { Ok(k(i)) }).collect();
        assert!(order == expected, "every item in its place, the poisoned ones as errors");
    }

    #[test]
    fn both_ends_meet_without_repeating_a_key() {
        let (_sim, db) = sim_db(1 << 20, small_options());
        for i in 0..200u32 {
            db.put(k(i), "v").unwrap();
        }
        let mut iter = db.range(k(0)..k(200));
        let mut seen = Vec::new();
        let mut from_back = true;
        while let Some(item) = if from_back { iter.next_back() } else { iter.next() } {
            seen.push(item.unwrap().0.to_vec());
            from_back = seen.len() % 3 != 0;
        }
        seen.sort();
        assert_eq!(seen, (0..200).map(k).collect::<Vec<_>>());
    }

    #[test]
    fn keys_removed_before_their_turn_are_skipped() {
        let (_sim, db) = sim_db(1 << 20, small_options());
        for i in 0..10u32 {
            db.put(k(i), "v").unwrap();
        }
        let mut iter = db.iter();
        assert_eq!(iter.next().unwrap().unwrap().0.to_vec(), k(0));
        rest_after_changes(iter, &db, 5, 6, 8);
    }

    /// Remove key `removed` and overwrite key `changed`, then check that the rest of `iter`
    /// holds `left` items, not the removed key, and the changed key's new value.
    fn rest_after_changes(
        iter: super::Iter,
        db: &crate::Db,
        removed: u32,
        changed: u32,
        left: usize,
    ) {
        db.remove(k(removed)).unwrap();
        db.put(k(changed), "changed").unwrap();
        let rest: Vec<(Vec<u8>, Vec<u8>)> =
            iter.map(|item| item.map(|(a, b)| (a.to_vec(), b.to_vec())).unwrap()).collect();
        assert_eq!(rest.len(), left);
        assert!(!rest.iter().any(|(key, _)| *key == k(removed)));
        assert!(rest.contains(&(k(changed), b"changed".to_vec())));
    }

    #[test]
    fn keys_list_a_range_both_ways_without_reading_values_and_skip_removed_keys() {
        let (sim, db) = sim_db(1 << 20, small_options());
        for i in 0..150u32 {
            db.put(k(i), i.to_le_bytes()).unwrap();
        }
        let listed = |items: &mut dyn Iterator<Item = crate::Value>| -> Vec<Vec<u8>> {
            items.map(|key| key.to_vec()).collect()
        };
        let all: Vec<Vec<u8>> = (0..150).map(k).collect();
        assert_eq!(listed(&mut db.keys(k(5)..k(120)).unwrap()), all[5..120]);
        let mut down = db.keys(..=k(40)).unwrap().rev();
        assert_eq!(listed(&mut down), all[..=40].iter().rev().cloned().collect::<Vec<_>>());
        let mut keys = db.keys::<Vec<u8>, _>(..).unwrap();
        assert_eq!(keys.next().unwrap().to_vec(), k(0));
        assert_eq!(keys.next_back().unwrap().to_vec(), k(149));
        db.remove(k(1)).unwrap();
        db.remove(k(148)).unwrap();
        let rest = listed(&mut keys);
        assert_eq!(rest, [&all[2..148], &all[149..149]].concat());
        // Values are never read: with poison over the whole log every value read fails, and the
        // keys are still listed.
        sim.inject_poison(0, 1 << 20).unwrap();
        assert!(db.iter().all(|item| item.is_err()));
        assert_eq!(listed(&mut db.keys::<Vec<u8>, _>(..).unwrap()).len(), 148);
    }

    /// Small items are slices of shared blocks, large ones their own: every item keeps its own
    /// bytes, across blocks and after the iterator is gone, in both directions.
    #[test]
    fn items_of_every_size_keep_their_bytes_after_the_iterator() {
        let (_sim, db) = sim_db(4 << 20, small_options());
        let value = |i: u32| vec![(i % 251) as u8; (i as usize * 37) % 3000];
        for i in 0..400u32 {
            db.put(k(i), value(i)).unwrap();
        }
        let forward: Vec<(crate::Value, crate::Value)> =
            db.iter().map(|item| item.unwrap()).collect();
        let backward: Vec<(crate::Value, crate::Value)> =
            db.iter().rev().map(|item| item.unwrap()).collect();
        for (i, (key, got)) in forward.iter().enumerate() {
            assert_eq!(key.as_slice(), k(i as u32).as_slice());
            assert_eq!(got.as_slice(), value(i as u32).as_slice(), "item {i}");
        }
        for (j, (key, got)) in backward.iter().enumerate() {
            let i = 399 - j as u32;
            assert_eq!((key.as_slice(), got.as_slice()), (k(i).as_slice(), value(i).as_slice()));
        }
    }
}
