//! `KeyOrder`: the ordered set of live keys behind the index, kept for ranges and iterators.
//! New keys are appended unsorted to a pending run (O(1) per write: the hot write path pays no
//! B-tree descent and no merge); the run is sorted and merged into the B-tree only when an
//! ordered read (a range, an iterator's chunk, the shutdown snapshot) or the removal of a pending
//! key needs it. So a write-only phase never sorts; the next ordered read pays for the keys
//! written since the last one (a sort of the run, then a rebuild or key-by-key inserts).
//!
//! A large recovered key set is built into the tree on a background thread (`in_background`):
//! the store opens once its point table is filled, new keys go to the run meanwhile, and the
//! first operation that needs the tree (an ordered read, a removal, a clear) waits for it.
//!
//! INVARIANT: `sorted` (or the tree being built), and `pending` are disjoint and together hold
//! exactly the live keys; a key is inserted only when it is not live (the point map said so
//! under the commit lock); while a tree is being built, `sorted` is empty.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::ops::Bound;
use std::thread::JoinHandle;

use mcstore_recovery::format::RecordKind;
use mcstore_recovery::scan::WalkedEntries;

/// A merge rebuilds the tree from one sorted sequence when the run is at least this fraction of
/// the tree (1/`REBUILD_DIVISOR`); smaller runs are inserted key by key.
const REBUILD_DIVISOR: usize = 8;

/// The largest chunk of the pending run, in keys.
const RUN_CHUNK_MAX: usize = 16 << 10;
/// The smallest.
const RUN_CHUNK_MIN: usize = 64;

/// The pending run: keys in chunks, each as large as the run before it (from `RUN_CHUNK_MIN`
/// up to `RUN_CHUNK_MAX` keys), so a push never moves the run. One vector's doubling copied
/// it whole: a put stalled 16 ms when the run reached 512 k keys (docs/performance.md,
/// session 14).
#[derive(Debug, Default)]
struct Run {
    chunks: Vec<Vec<OrderKey>>,
    len: usize,
}

impl Run {
    fn push(&mut self, key: OrderKey) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < chunk.capacity() => chunk.push(key),
            _ => {
                let mut chunk = Vec::with_capacity(self.len.clamp(RUN_CHUNK_MIN, RUN_CHUNK_MAX));
                chunk.push(key);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The keys in one vector, in the order pushed.
    fn into_vec(mut self) -> Vec<OrderKey> {
        if self.chunks.len() == 1 {
            return self.chunks.pop().unwrap_or_default();
        }
        let mut keys = Vec::with_capacity(self.len);
        for chunk in self.chunks {
            keys.extend(chunk);
        }
        keys
    }
}

/// The ordered set of live keys.
#[derive(Debug, Default)]
pub(crate) struct KeyOrder {
    sorted: BTreeSet<OrderKey>,
    pending: Run,
    /// The recovered keys' tree, while a background thread builds it.
    building: Option<JoinHandle<BTreeSet<OrderKey>>>,
}

/// A live key as the key order holds it and hands it out: recovery's key type, so short keys
/// (up to `EntryKey::INLINE_BYTES`) are held in place — no allocation, and copying one out of
/// the tree reads only the tree's own nodes — and longer keys are shared.
pub use mcstore_recovery::EntryKey as IndexKey;

/// A key with its 8-byte [prefix](IndexKey::prefix) beside it: most comparisons end on the
/// prefixes without touching the key's bytes.
///
/// INVARIANT: its order is exactly the byte order of `key` (prefixes first agree with it
/// wherever they differ), so `Borrow<[u8]>` is lawful and ranges take `&[u8]` bounds.
#[derive(Clone, Debug)]
struct OrderKey {
    prefix: u64,
    key: IndexKey,
}

impl OrderKey {
    fn new(key: IndexKey) -> Self {
        Self { prefix: key.prefix(), key }
    }
}

impl Ord for OrderKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.prefix.cmp(&other.prefix).then_with(|| self.key.as_slice().cmp(other.key.as_slice()))
    }
}

impl PartialOrd for OrderKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for OrderKey {
    fn eq(&self, other: &Self) -> bool {
        self.prefix == other.prefix && self.key.as_slice() == other.key.as_slice()
    }
}

impl Eq for OrderKey {}

impl Borrow<[u8]> for OrderKey {
    fn borrow(&self) -> &[u8] {
        self.key.as_slice()
    }
}

impl KeyOrder {
    /// From keys sorted ascending without duplicates (recovery's bulk load), with the sum of
    /// their lengths.
    pub(crate) fn from_sorted<'k>(keys: impl Iterator<Item = &'k [u8]>) -> (Self, usize) {
        let mut key_bytes = 0;
        let sorted = tree_of(keys.inspect(|key| key_bytes += key.len()));
        (Self { sorted, pending: Run::default(), building: None }, key_bytes)
    }

    /// [`KeyOrder::from_sorted`] on a background thread that owns `items` (and drops them when
    /// done): `keys` picks each item's key, ascending without duplicates. Builds on this thread
    /// if no thread can be started.
    pub(crate) fn in_background<T, F>(items: Vec<T>, keys: F) -> Self
    where
        T: Send + 'static,
        F: Fn(&T) -> Option<&[u8]> + Send + 'static,
    {
        Self::in_background_with((items, keys), |(items, keys)| {
            tree_of(items.iter().filter_map(keys))
        })
    }

    /// The key order of the live keys among recovery's unsorted `walked` entries (the newest
    /// version of each key, a put), sorted and built on a background thread that owns them
    /// (here if no thread can be started, or when `background` is false).
    pub(crate) fn of_walked(walked: WalkedEntries, background: bool) -> Self {
        fn tree(walked: WalkedEntries) -> BTreeSet<OrderKey> {
            let entries = walked.into_index();
            tree_of(entries.iter().filter(|e| e.kind == RecordKind::Put).map(|e| &e.key[..]))
        }
        if !background {
            return Self { sorted: tree(walked), pending: Run::default(), building: None };
        }
        Self::in_background_with(walked, tree)
    }

    /// Run `build(work)` on a background thread, or here if none can be started.
    fn in_background_with<W, B>(work: W, build: B) -> Self
    where
        W: Send + 'static,
        B: FnOnce(W) -> BTreeSet<OrderKey> + Send + 'static,
    {
        // The work goes to the thread only once it runs, so a failed start keeps it here.
        let (tx, rx) = std::sync::mpsc::sync_channel::<(W, B)>(1);
        let started = std::thread::Builder::new()
            .name("mcstore-key-order".into())
            .spawn(move || rx.recv().map(|(work, build)| build(work)).unwrap_or_default());
        let job = (work, build);
        let (work, build) = match started {
            Ok(handle) => match tx.send(job) {
                Ok(()) => {
                    return Self {
                        sorted: BTreeSet::new(),
                        pending: Run::default(),
                        building: Some(handle),
                    };
                }
                Err(std::sync::mpsc::SendError(job)) => job,
            },
            Err(_) => job,
        };
        Self { sorted: build(work), pending: Run::default(), building: None }
    }

    /// The tree, once the background build (if any) has finished.
    fn tree(&mut self) -> &mut BTreeSet<OrderKey> {
        if let Some(handle) = self.building.take() {
            debug_assert!(self.sorted.is_empty());
            self.sorted = handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        }
        &mut self.sorted
    }

    /// Add `key`, which is not live. O(1).
    pub(crate) fn insert_new(&mut self, key: &[u8]) {
        self.pending.push(OrderKey::new(IndexKey::from(key)));
    }

    /// Forget `key` (live); whether it was present.
    pub(crate) fn remove(&mut self, key: &[u8]) -> bool {
        if self.tree().remove(key) {
            return true;
        }
        // Not in the tree: in the pending run, if anywhere. Merging (rather than scanning the
        // run) keeps a remove O(log n) amortized: each key is merged once.
        self.settle();
        self.sorted.remove(key)
    }

    /// Forget every key; returns them (in no particular order) for the caller to drop from the
    /// point map.
    pub(crate) fn take_all(&mut self) -> impl Iterator<Item = IndexKey> {
        let sorted = std::mem::take(self.tree()).into_iter();
        sorted.chain(std::mem::take(&mut self.pending).chunks.into_iter().flatten()).map(|k| k.key)
    }

    /// Whether a background build has not yet been waited for.
    #[cfg(test)]
    pub(crate) fn is_building(&self) -> bool {
        self.building.is_some()
    }

    /// The number of keys held.
    #[cfg(test)]
    pub(crate) fn len(&mut self) -> usize {
        self.tree().len() + self.pending.len()
    }

    /// Merge the pending run into the tree.
    fn settle(&mut self) {
        self.tree();
        if self.pending.is_empty() {
            return;
        }
        let mut run = std::mem::take(&mut self.pending).into_vec();
        run.sort_unstable();
        if run.len() * REBUILD_DIVISOR < self.sorted.len() {
            for key in run {
                self.sorted.insert(key);
            }
            return;
        }
        // INVARIANT: disjoint inputs, both ascending: the merge is ascending without
        // duplicates, and `BTreeSet::from_iter` bulk-builds it in linear time.
        let old = std::mem::take(&mut self.sorted);
        let mut merged = Vec::with_capacity(old.len() + run.len());
        let mut old = old.into_iter().peekable();
        let mut run = run.into_iter().peekable();
        loop {
            let take_old = match (old.peek(), run.peek()) {
                (Some(a), Some(b)) => a.cmp(b) == Ordering::Less,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let next = if take_old { old.next() } else { run.next() };
            merged.extend(next);
        }
        self.sorted = merged.into_iter().collect();
    }

    /// Up to `limit` keys within `(low, high)`, ascending from `low` (or descending from `high`
    /// when `reverse`). The range must not be empty (`BTreeSet::range` panics on such ranges).
    pub(crate) fn range(
        &mut self,
        low: Bound<&[u8]>,
        high: Bound<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Vec<IndexKey> {
        self.settle();
        let range = self.sorted.range::<[u8], _>((low, high));
        if reverse {
            range.rev().take(limit).map(|k| k.key.clone()).collect()
        } else {
            range.take(limit).map(|k| k.key.clone()).collect()
        }
    }
}

impl Drop for KeyOrder {
    fn drop(&mut self) {
        // A store closed before its tree was needed still waits for the build: no thread of
        // its outlives it.
        self.tree();
    }
}

/// A tree of `keys`, ascending without duplicates: `BTreeSet::from_iter` bulk-builds it (its
/// sort finds one ascending run); each key is made an `IndexKey` once, from the caller's bytes.
fn tree_of<'k>(keys: impl Iterator<Item = &'k [u8]>) -> BTreeSet<OrderKey> {
    keys.map(|key| OrderKey::new(IndexKey::from(key))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(bytes: &[u8]) -> Vec<u8> {
        bytes.to_vec()
    }

    fn owned(keys: Vec<IndexKey>) -> Vec<Vec<u8>> {
        keys.iter().map(|k| k.to_vec()).collect()
    }

    fn all(order: &mut KeyOrder) -> Vec<Vec<u8>> {
        owned(order.range(Bound::Unbounded, Bound::Unbounded, usize::MAX, false))
    }

    /// Against a `BTreeSet` model: inserts of new keys, removes from the tree and from the
    /// pending run, ranges both ways, across merges by insertion and by rebuild.
    #[test]
    fn matches_a_btreeset_across_merges_and_removes() {
        let (mut order, bytes) = KeyOrder::from_sorted([&b"m"[..]].into_iter());
        assert_eq!(bytes, 1);
        let mut model: BTreeSet<Vec<u8>> = BTreeSet::from([key(b"m")]);
        let mut x = 7u64;
        for round in 0..6u32 {
            for _ in 0..(1 << (round * 3)).min(3 << 16) {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                // Short keys (held in place) and long ones (shared).
                let mut k = key(&(x >> 40).to_be_bytes()[3..]);
                if x & 1 == 1 {
                    k.extend_from_slice(&[k[0]; 24]);
                }
                if model.insert(k.clone()) {
                    order.insert_new(&k);
                }
            }
            for k in model.iter().step_by(5).cloned().collect::<Vec<_>>() {
                assert!(order.remove(&k));
                model.remove(&k);
            }
            assert!(!order.remove(b"absent key"));
            assert_eq!(order.len(), model.len());
            let low = Bound::Included(&b"\x40"[..]);
            let high = Bound::Excluded(&b"\xc0"[..]);
            let want: Vec<_> = model.range::<[u8], _>((low, high)).take(100).cloned().collect();
            assert_eq!(owned(order.range(low, high, 100, false)), want);
            let want: Vec<_> = model.range::<[u8], _>((low, high)).rev().take(7).cloned().collect();
            assert_eq!(owned(order.range(low, high, 7, true)), want);
        }
        assert_eq!(all(&mut order), model.iter().cloned().collect::<Vec<_>>());
        let taken: BTreeSet<_> = order.take_all().map(|k| k.to_vec()).collect();
        assert_eq!(taken, model);
        assert!(all(&mut order).is_empty());
    }

    /// The pending run keeps its keys where they were first put (no chunk is ever moved or
    /// outgrows `RUN_CHUNK_MAX`) and gives them back in the order put.
    #[test]
    fn the_pending_run_never_moves_its_keys() {
        let mut run = Run::default();
        for i in 0..100_000u64 {
            let before: Vec<*const OrderKey> = run.chunks.iter().map(|c| c.as_ptr()).collect();
            run.push(OrderKey::new(IndexKey::from(&i.to_be_bytes()[..])));
            assert!(run.chunks.iter().zip(&before).all(|(c, &then)| c.as_ptr() == then));
        }
        assert!(run.chunks.iter().all(|c| c.capacity() <= RUN_CHUNK_MAX));
        assert_eq!(run.len(), 100_000);
        let keys = run.into_vec();
        assert!(keys.iter().enumerate().all(|(i, k)| k.key[..] == (i as u64).to_be_bytes()));
    }

    /// Inserts only append; an ordered read merges the run (a rebuild when it is large against
    /// the tree, key by key when it is small), and so does removing a key still in the run.
    #[test]
    fn the_pending_run_merges_only_when_read_in_order_or_removed_from() {
        let mut order = KeyOrder::default();
        for i in 0..100_000u32 {
            order.insert_new(&i.to_be_bytes());
        }
        assert_eq!((order.pending.len(), order.sorted.len()), (100_000, 0), "writes never merge");
        let first = order.range(Bound::Unbounded, Bound::Unbounded, 2, false);
        assert_eq!(owned(first), vec![0u32.to_be_bytes().to_vec(), 1u32.to_be_bytes().to_vec()]);
        assert_eq!((order.pending.len(), order.sorted.len()), (0, 100_000), "rebuilt");
        order.insert_new(b"\xff late");
        order.insert_new(b"\x00");
        assert!(order.remove(&7u32.to_be_bytes()), "a tree key: no merge");
        assert_eq!(order.pending.len(), 2);
        assert!(order.remove(b"\xff late"), "a pending key: merged (key by key), then removed");
        assert_eq!((order.pending.len(), order.sorted.len()), (0, 100_000));
        let last = order.range(Bound::Unbounded, Bound::Unbounded, 1, true);
        assert_eq!(owned(last), vec![99_999u32.to_be_bytes().to_vec()]);
        assert_eq!(
            owned(order.range(Bound::Unbounded, Bound::Unbounded, 1, false)),
            vec![b"\x00".to_vec()]
        );
    }
}
