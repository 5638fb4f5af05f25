//! Building the index in bulk: collect every verified record, sort by key then newest first,
//! keep the newest per key. Tombstones are kept (as `Delete`): a tombstone can only be dropped
//! by compaction, which knows whether an older segment still holds the key.
//!
//! The sort is a bucket pass then small sorts: each walked part is distributed (sequentially,
//! on several threads) into buckets by a few bits of the key's first 8 bytes, so bucket order is
//! key order; each bucket is then sorted on its own, small enough to stay in cache, and only
//! entries whose first 8 bytes tie compare their keys. No pass touches the entries in random
//! order (a random pass over ~100 MB costs a cache and TLB miss per entry).

use std::cmp::Ordering;

use super::key::EntryKey;
use super::sketch::KeySketch;
use crate::format::{Lsn, RecordKind};

/// One key's newest version as recovery found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// The key (in place up to [`EntryKey::INLINE_BYTES`], else shared).
    pub key: EntryKey,
    /// Put or Delete (a tombstone).
    pub kind: RecordKind,
    /// Its LSN.
    pub lsn: Lsn,
    /// Pool offset of the record.
    pub offset: u64,
    /// Encoded length of the record.
    pub len: u32,
    /// Sequence of the segment holding it.
    pub segment_seq: u64,
}

/// The entries of one walked range, in log order, each beside its key's [`EntryKey::prefix`], with the
/// range of those prefixes.
#[derive(Clone, Debug)]
pub(crate) struct Part {
    entries: Vec<Keyed>,
    /// How many of them are `Clear` records.
    clears: usize,
    /// Smallest and largest prefix of the entries (`u64::MAX`, 0 when empty).
    prefix_min: u64,
    prefix_max: u64,
    /// The distinct keys among the entries, estimated.
    keys: KeySketch,
}

impl Part {
    /// An empty part.
    pub(crate) fn new() -> Self {
        Part {
            entries: Vec::new(),
            clears: 0,
            prefix_min: u64::MAX,
            prefix_max: 0,
            keys: KeySketch::new(),
        }
    }

    /// Append the entry of a verified record (its key is at hand: the prefix is taken now, not
    /// in a later pass; a short key is copied in place, not allocated).
    pub(crate) fn push(&mut self, key: &[u8], record: Located) {
        self.keys.add(key);
        let key = EntryKey::from(key);
        let p = key.prefix();
        self.prefix_min = self.prefix_min.min(p);
        self.prefix_max = self.prefix_max.max(p);
        self.clears += usize::from(record.kind == RecordKind::Clear);
        self.entries.push(WalkedEntry(p, Walked { key, record }));
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Drop every entry (the allocation is kept).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.clears = 0;
        self.prefix_min = u64::MAX;
        self.prefix_max = 0;
        self.keys.clear();
    }

    /// Move every entry of `other` to the end of this part (`other` keeps its allocation).
    pub(crate) fn append(&mut self, other: &mut Part) {
        self.prefix_min = self.prefix_min.min(other.prefix_min);
        self.prefix_max = self.prefix_max.max(other.prefix_max);
        self.clears += other.clears;
        self.keys.merge(&other.keys);
        self.entries.append(&mut other.entries);
        other.clear();
    }
}

/// The distinct keys among the entries of `parts`, estimated (at most their entries).
pub(crate) fn estimated_keys<'p>(parts: impl Iterator<Item = &'p Part>) -> usize {
    let mut keys = KeySketch::new();
    let mut entries = 0;
    for part in parts {
        keys.merge(&part.keys);
        entries += part.len();
    }
    usize::try_from(keys.estimate()).map_or(entries, |estimate| estimate.min(entries))
}

/// Entries below this are sorted on one thread.
const PARALLEL_SORT_MIN: usize = 1 << 16;
/// Threads that sort at most.
const SORT_THREADS_MAX: usize = 4;
/// Entries at most in a bucket that is sorted by comparison (~56 bytes each: it stays in L2).
const BUCKET_ENTRIES_TARGET: usize = 4096;
/// Bits of the prefix one bucket pass looks at: 32 buckets, so the places the pass writes to
/// stay few enough for the caches to follow (with 512, every swap waited on a DRAM miss).
const FLAG_BITS: u32 = 5;

/// Where a verified record is and what it does: an [`IndexEntry`] without its key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Located {
    pub(crate) kind: RecordKind,
    pub(crate) lsn: Lsn,
    pub(crate) offset: u64,
    pub(crate) len: u32,
    pub(crate) segment_seq: u64,
}

/// One entry while the index is sorted.
#[derive(Clone, Debug)]
struct Walked {
    key: EntryKey,
    record: Located,
}

impl Walked {
    fn into_entry(self) -> IndexEntry {
        let Located { kind, lsn, offset, len, segment_seq } = self.record;
        IndexEntry { key: self.key, kind, lsn, offset, len, segment_seq }
    }
}

/// Which of two versions of one key is the newer, as a value to compare: the higher LSN wins,
/// then the higher segment sequence, then the higher offset — so the choice never depends on
/// the order the versions are met in. The one rule for the sorted index (`newest_first`) and
/// for an index built from the unsorted walk (the engine's newest-wins fill).
pub fn version_rank(lsn: Lsn, segment_seq: u64, offset: u64) -> (Lsn, u64, u64) {
    (lsn, segment_seq, offset)
}

/// The order of the index: key ascending, then newest first ([`version_rank`] descending).
fn newest_first(a: &Walked, b: &Walked) -> Ordering {
    let rank = |w: &Walked| version_rank(w.record.lsn, w.record.segment_seq, w.record.offset);
    a.key.as_slice().cmp(b.key.as_slice()).then_with(|| rank(b).cmp(&rank(a)))
}

/// An entry with its prefix beside it, so most comparisons read neither the key nor its bytes.
type Keyed = WalkedEntry;

/// One verified record as the walk found it, before any sort: its key (with the key's
/// [`EntryKey::prefix`] beside it) and where it is. See [`WalkedEntries`].
#[derive(Clone, Debug)]
pub struct WalkedEntry(u64, Walked);

impl WalkedEntry {
    /// The record's key (empty for a `Clear`).
    pub fn key(&self) -> &[u8] {
        self.1.key.as_slice()
    }

    /// Put, Delete or Clear.
    pub fn kind(&self) -> RecordKind {
        self.1.record.kind
    }

    /// The record's LSN.
    pub fn lsn(&self) -> Lsn {
        self.1.record.lsn
    }

    /// Pool offset of the record.
    pub fn offset(&self) -> u64 {
        self.1.record.offset
    }

    /// Encoded length of the record.
    pub fn record_len(&self) -> u32 {
        self.1.record.len
    }

    /// Sequence of the segment holding it.
    pub fn segment_seq(&self) -> u64 {
        self.1.record.segment_seq
    }
}

/// Every verified record a full scan walked, unsorted, with every version of each key (see
/// [`super::ScanOptions::defer_index`]): for a caller that indexes the newest version of each
/// key itself, without waiting for the sort [`WalkedEntries::into_index`] does.
#[derive(Clone, Debug)]
pub struct WalkedEntries {
    parts: Vec<Part>,
}

impl WalkedEntries {
    pub(crate) fn new(parts: Vec<Part>) -> Self {
        WalkedEntries { parts }
    }

    /// Entries walked (every version of every key, and each `Clear`).
    pub fn len(&self) -> usize {
        self.parts.iter().map(Part::len).sum()
    }

    /// Whether nothing was walked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries, in pieces (each piece in log order).
    pub fn pieces(&self) -> Vec<&[WalkedEntry]> {
        self.parts.iter().map(|part| &part.entries[..]).filter(|p| !p.is_empty()).collect()
    }

    /// How many distinct keys the entries hold, estimated (~2 % error; at most [`Self::len`]).
    pub fn estimated_keys(&self) -> usize {
        estimated_keys(self.parts.iter())
    }

    /// The LSN of the newest `Clear` walked, or 0: every entry at or below it is removed.
    pub fn cleared(&self) -> Lsn {
        self.parts
            .iter()
            .filter(|part| part.clears > 0)
            .flat_map(|part| part.entries.iter())
            .filter(|e| e.kind() == RecordKind::Clear)
            .map(WalkedEntry::lsn)
            .max()
            .unwrap_or(Lsn(0))
    }

    /// The index the entries make: what [`super::Recovered::entries`] holds after a scan that
    /// did not defer it (sorted by key, newest version of each, tombstones kept, the newest
    /// clear last).
    pub fn into_index(self) -> Vec<IndexEntry> {
        build(self.parts)
    }
}

/// Which bucket a prefix goes to at one level of the bucket passes. INVARIANT: monotonic in
/// the prefix, so buckets in index order hold keys in key order, and equal keys (equal
/// prefixes) share a bucket.
#[derive(Clone, Copy, Debug)]
struct Buckets {
    /// Leading bits skipped: shared by every prefix, or looked at by the levels above.
    shared: u32,
    /// Bits of the prefix after those that pick the bucket (0: one bucket).
    bits: u32,
}

impl Buckets {
    /// The first level for prefixes in `[prefix_min, prefix_max]`: the bits after those all of
    /// them share (a common key prefix would otherwise put everything in one bucket).
    fn new(prefix_min: u64, prefix_max: u64) -> Self {
        let shared = (prefix_min ^ prefix_max).leading_zeros();
        if prefix_min > prefix_max || shared >= 64 {
            // No entry, or one prefix shared by all: one bucket.
            return Buckets { shared: 0, bits: 0 };
        }
        Buckets { shared, bits: FLAG_BITS.min(64 - shared) }
    }

    /// The level below (the next bits), if any bits are left.
    fn next(self) -> Option<Self> {
        let shared = self.shared + self.bits;
        (self.bits > 0 && shared < 64).then(|| Buckets { shared, bits: FLAG_BITS.min(64 - shared) })
    }

    fn count(self) -> usize {
        1 << self.bits
    }

    fn of(self, prefix: u64) -> usize {
        if self.bits == 0 {
            return 0;
        }
        // `shared < 64` and `bits <= 64 - shared` (`new`, `next`): exactly bits
        // [shared, shared + bits) of the prefix.
        ((prefix << self.shared) >> (64 - self.bits)) as usize
    }
}

/// Sort `entries` by prefix, then by the full order where prefixes tie: bucket passes while the
/// slice is larger than a cache-sized bucket and prefix bits are left, then a comparison sort.
fn sort_entries(entries: &mut [Keyed], level: Option<Buckets>) {
    match level {
        Some(level) if entries.len() > BUCKET_ENTRIES_TARGET => {
            let starts = distribute(entries, level);
            let mut rest = entries;
            for b in 0..level.count() {
                let (bucket, tail) = rest.split_at_mut(starts[b + 1] - starts[b]);
                sort_entries(bucket, level.next());
                rest = tail;
            }
        }
        _ => entries.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| newest_first(&a.1, &b.1))),
    }
}

/// Sort `bucket` in place (its sub-levels below `level`) and keep, at its front, the newest entry
/// of each key unless its LSN is at most `cleared` (the newest `Clear`'s, or 0). Returns how many
/// are kept.
fn sort_bucket(bucket: &mut [Keyed], level: Option<Buckets>, cleared: Lsn) -> usize {
    sort_entries(bucket, level);
    // INVARIANT: newest first within a key, so the first of each key is its newest version;
    // `bucket[kept - 1]` is always the last key kept.
    let mut kept = 0;
    for at in 0..bucket.len() {
        let first_of_key = kept == 0 || {
            let (last, this) = (&bucket[kept - 1], &bucket[at]);
            last.0 != this.0 || last.1.key.as_slice() != this.1.key.as_slice()
        };
        if first_of_key {
            bucket.swap(kept, at);
            kept += 1;
        }
    }
    // A key whose newest version predates the clear is gone (its older versions too).
    let mut live = 0;
    for at in 0..kept {
        if bucket[at].1.record.lsn > cleared {
            bucket.swap(live, at);
            live += 1;
        }
    }
    live
}

/// Reorder `entries` in place so each bucket's entries are contiguous, buckets in order (an
/// American-flag pass: every entry is swapped straight to its bucket's next free place).
/// Returns where each bucket starts, and where the last ends.
fn distribute(entries: &mut [Keyed], buckets: Buckets) -> Vec<usize> {
    let mut starts = vec![0usize; buckets.count() + 1];
    for WalkedEntry(p, _) in entries.iter() {
        starts[buckets.of(*p) + 1] += 1;
    }
    for b in 0..buckets.count() {
        starts[b + 1] += starts[b];
    }
    let mut next = starts.clone();
    for b in 0..buckets.count() {
        // INVARIANT: every place before `next[b]` in bucket b holds an entry of bucket b; each
        // swap moves one entry to its own bucket for good, so this ends.
        while next[b] < starts[b + 1] {
            let to = buckets.of(entries[next[b]].0);
            if to == b {
                next[b] += 1;
            } else {
                entries.swap(next[b], next[to]);
                next[to] += 1;
            }
        }
    }
    starts
}

/// Sort the entries of `parts` by key and keep the newest of each (see [`newest_first`]). A
/// `Clear` record removes every entry of a lower LSN; the newest clear is kept as the one entry
/// of its kind (compaction needs to know it exists), after the keys: it is not a key.
///
/// Everything happens in the largest part's memory (the others appended to it): bucketed in
/// place, each bucket sorted and deduplicated in place (on several threads), the kept entries
/// moved to the front, the prefixes dropped in place.
pub(crate) fn build(mut parts: Vec<Part>) -> Vec<IndexEntry> {
    parts.sort_by_key(|part| std::cmp::Reverse(part.len()));
    let mut parts = parts.into_iter();
    let mut all = parts.next().unwrap_or_else(Part::new);
    for mut part in parts {
        all.append(&mut part);
    }
    let Part { entries: mut v, clears, prefix_min, prefix_max, .. } = all;
    // Clears aside (rare: one record per `clear()`); removing them reorders nothing that matters.
    let at: Vec<usize> = if clears == 0 {
        Vec::new()
    } else {
        (0..v.len()).filter(|&i| v[i].1.record.kind == RecordKind::Clear).collect()
    };
    let mut clears: Vec<IndexEntry> =
        at.iter().rev().map(|&i| v.swap_remove(i).1.into_entry()).collect();
    clears.sort_by_key(|e| (e.lsn, e.segment_seq, e.offset));
    let newest_clear = clears.pop();
    let cleared = newest_clear.as_ref().map_or(Lsn(0), |c| c.lsn);
    let buckets = Buckets::new(prefix_min, prefix_max);
    let starts = distribute(&mut v, buckets);
    // Each bucket as its own slice, then runs of consecutive buckets of about equal entry counts,
    // one per thread.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(SORT_THREADS_MAX);
    let threads = if v.len() < PARALLEL_SORT_MIN { 1 } else { threads };
    let mut slices: Vec<&mut [Keyed]> = Vec::with_capacity(buckets.count());
    let mut rest: &mut [Keyed] = &mut v;
    for b in 0..buckets.count() {
        let (bucket, tail) = rest.split_at_mut(starts[b + 1] - starts[b]);
        slices.push(bucket);
        rest = tail;
    }
    let per = v_len_per(&starts, threads);
    let mut runs: Vec<Vec<&mut [Keyed]>> = vec![Vec::new()];
    let mut filled = 0usize;
    for slice in slices {
        if filled >= per && runs.len() < threads {
            runs.push(Vec::new());
            filled = 0;
        }
        filled += slice.len();
        if let Some(run) = runs.last_mut() {
            run.push(slice);
        }
    }
    let sort_run = |run: Vec<&mut [Keyed]>| {
        run.into_iter().map(|b| sort_bucket(b, buckets.next(), cleared)).collect()
    };
    let live: Vec<usize> = if runs.len() == 1 {
        runs.into_iter().flat_map(sort_run).collect()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = runs
                .into_iter()
                .map(|run| scope.spawn(move || -> Vec<usize> { sort_run(run) }))
                .collect();
            handles.into_iter().flat_map(join).collect()
        })
    };
    // The kept entries of every bucket, in bucket order, to the front; the rest dropped.
    let mut kept = 0usize;
    for (b, &n) in live.iter().enumerate() {
        for at in starts[b]..starts[b] + n {
            if at != kept {
                v.swap(kept, at);
            }
            kept += 1;
        }
    }
    v.truncate(kept);
    // Same alignment, smaller elements: collected in place, no second allocation.
    let mut out: Vec<IndexEntry> =
        v.into_iter().map(|WalkedEntry(_, entry)| entry.into_entry()).collect();
    out.extend(newest_clear);
    out
}

/// Entries per thread for an even split of the buckets starting at `starts`.
fn v_len_per(starts: &[usize], threads: usize) -> usize {
    let total = starts.last().copied().unwrap_or(0);
    total.div_ceil(threads.max(1)).max(1)
}

/// A scoped thread's result; its panic (the sort does not panic on any input) is the caller's.
fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `entries` walked as parts of `per` entries each.
    fn parts(entries: Vec<IndexEntry>, per: usize) -> Vec<Part> {
        entries
            .chunks(per)
            .map(|chunk| {
                let mut part = Part::new();
                for e in chunk {
                    let IndexEntry { kind, lsn, offset, len, segment_seq, .. } = *e;
                    let located = Located { kind, lsn, offset, len, segment_seq };
                    part.push(&e.key, located);
                }
                assert_eq!(part.len(), chunk.len());
                part
            })
            .collect()
    }

    /// The order `build` must produce, written independently of it.
    fn newest_first(a: &IndexEntry, b: &IndexEntry) -> Ordering {
        a.key
            .cmp(&b.key)
            .then(b.lsn.cmp(&a.lsn))
            .then(b.segment_seq.cmp(&a.segment_seq))
            .then(b.offset.cmp(&a.offset))
    }

    fn build_one(entries: Vec<IndexEntry>) -> Vec<IndexEntry> {
        build(parts(entries, 2))
    }

    fn entry(key: &str, lsn: u64, offset: u64) -> IndexEntry {
        IndexEntry {
            key: key.as_bytes().into(),
            kind: if lsn.is_multiple_of(5) { RecordKind::Delete } else { RecordKind::Put },
            lsn: Lsn(lsn),
            offset,
            len: 48,
            segment_seq: 1,
        }
    }

    #[test]
    fn newest_wins_and_keys_are_sorted() {
        let built = build_one(vec![
            entry("b", 3, 100),
            entry("a", 7, 200),
            entry("b", 10, 300),
            entry("a", 2, 400),
            entry("c", 1, 500),
        ]);
        let summary: Vec<(&[u8], u64)> = built.iter().map(|e| (&e.key[..], e.lsn.0)).collect();
        assert_eq!(summary, vec![(&b"a"[..], 7), (b"b", 10), (b"c", 1)]);
        assert_eq!(built[1].kind, RecordKind::Delete);
    }

    /// Enough entries for the two-thread sort, with shared 8-byte prefixes and duplicates: the
    /// result equals a plain sort and dedup.
    #[test]
    fn parallel_prefix_sort_matches_a_plain_sort() {
        let mut entries = Vec::new();
        for i in 0..(PARALLEL_SORT_MIN as u64 + 999) {
            let n = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % 50_000;
            // Keys share their first 8 bytes in groups; some are shorter than 8 bytes.
            let key = if n % 7 == 0 { format!("{n}") } else { format!("prefix{:02}-{n}", n % 3) };
            entries.push(IndexEntry { key: key.as_bytes().into(), ..entry("", i + 1, i * 8) });
        }
        let mut expected = entries.clone();
        expected.sort_by(newest_first);
        expected.dedup_by(|later, first| later.key == first.key);
        assert_eq!(build(parts(entries.clone(), 1000)), expected);
        // One part, and parts of one entry: the same index.
        assert_eq!(build(parts(entries.clone(), entries.len())), expected);
        assert_eq!(build(parts(entries[..5000].to_vec(), 1)), {
            let mut few = entries[..5000].to_vec();
            few.sort_by(newest_first);
            few.dedup_by(|later, first| later.key == first.key);
            few
        });
    }

    /// Keys whose first bytes all agree (a common key prefix), of every length around 8 bytes,
    /// and random binary keys: many buckets, several threads, ties on the 8-byte prefix; the
    /// result equals a plain sort and dedup, with a clear in the middle of the LSNs.
    #[test]
    fn bucketed_sort_matches_a_plain_sort_for_any_key_shape() {
        for shape in 0..3u64 {
            let mut entries = Vec::new();
            for i in 0..(PARALLEL_SORT_MIN as u64 * 2 + 77) {
                let n = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (20 + shape * 8);
                let key: Vec<u8> = match shape {
                    0 => n.to_be_bytes().to_vec(),
                    1 => format!("user:{n}").into_bytes(),
                    _ => [&b"tenant-0001/"[..], &n.to_le_bytes()[..(n % 9) as usize]].concat(),
                };
                entries.push(IndexEntry { key: key[..].into(), ..entry("", i + 1, i * 8) });
            }
            let cleared = entries.len() as u64 / 3;
            let clear = IndexEntry { kind: RecordKind::Clear, ..entry("", cleared, 7) };
            let mut expected: Vec<IndexEntry> =
                entries.iter().filter(|e| e.lsn.0 > cleared).cloned().collect();
            expected.sort_by(newest_first);
            expected.dedup_by(|later, first| later.key == first.key);
            expected.push(clear.clone());
            entries.insert(entries.len() / 2, clear);
            assert_eq!(build(parts(entries, 4093)), expected, "shape {shape}");
        }
    }

    #[test]
    fn buckets_are_monotonic_in_the_prefix() {
        let b = Buckets::new(0x1234_0000_0000_0000, 0x1234_f800_0000_0000);
        assert_eq!(b.count(), 1 << FLAG_BITS);
        let mut last = 0;
        for p in (0..=0xffffu64).map(|x| 0x1234_0000_0000_0000 | (x << 32)) {
            let at = b.of(p);
            assert!(at >= last && at < b.count());
            last = at;
        }
        assert_eq!(last, b.count() - 1, "the whole range of buckets is used");
        assert_eq!(Buckets::new(5, 5).count(), 1);
        assert_eq!(Buckets::new(u64::MAX, 0).count(), 1);
        // The levels below look at the next bits, down to the last one.
        let mut level = Some(Buckets::new(0, u64::MAX));
        let mut levels = 0;
        while let Some(l) = level {
            assert_eq!(l.of(u64::MAX), l.count() - 1);
            assert_eq!(l.of(0), 0);
            levels += 1;
            level = l.next();
        }
        assert_eq!(levels, 64u32.div_ceil(FLAG_BITS));
    }

    #[test]
    fn a_clear_drops_every_older_entry_and_comes_last() {
        let clear = |lsn: u64| IndexEntry { kind: RecordKind::Clear, ..entry("", lsn, 900 + lsn) };
        let built = build_one(vec![
            entry("a", 2, 100),
            clear(4),
            entry("b", 6, 200),
            entry("c", 3, 300),
            clear(3),
            entry("", 1, 400),
        ]);
        let summary: Vec<(&[u8], u64, RecordKind)> =
            built.iter().map(|e| (&e.key[..], e.lsn.0, e.kind)).collect();
        assert_eq!(summary, vec![(&b"b"[..], 6, RecordKind::Put), (b"", 4, RecordKind::Clear)]);
    }
}
