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
use std::sync::Arc;

use crate::format::{Lsn, RecordKind};

/// One key's newest version as recovery found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// The key (shared: the engine's index keeps this allocation).
    pub key: Arc<[u8]>,
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

/// The entries of one walked range, in log order, each beside its key's [`prefix`], with the
/// range of those prefixes.
#[derive(Debug)]
pub(crate) struct Part {
    entries: Vec<Keyed>,
    /// Smallest and largest prefix of the entries (`u64::MAX`, 0 when empty).
    prefix_min: u64,
    prefix_max: u64,
}

impl Part {
    /// An empty part.
    pub(crate) fn new() -> Self {
        Part { entries: Vec::new(), prefix_min: u64::MAX, prefix_max: 0 }
    }

    /// Append `entry` (its key is at hand: the prefix is taken now, not in a later pass).
    pub(crate) fn push(&mut self, entry: IndexEntry) {
        let p = prefix(&entry.key);
        self.prefix_min = self.prefix_min.min(p);
        self.prefix_max = self.prefix_max.max(p);
        self.entries.push((p, entry));
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Entries below this are sorted on one thread.
const PARALLEL_SORT_MIN: usize = 1 << 16;
/// Threads that sort at most.
const SORT_THREADS_MAX: usize = 4;
/// Entries per bucket the bucket count aims at: a bucket (~56 bytes per entry) sorts in L2.
const BUCKET_ENTRIES_TARGET: usize = 4096;
/// Most bits of the prefix that pick a bucket (the bucket pass writes that many streams).
const BUCKET_BITS_MAX: u32 = 10;

/// The order of the index: key ascending, then newest first (highest LSN; then higher segment
/// sequence, then higher offset, so the result never depends on the order of collection).
fn newest_first(a: &IndexEntry, b: &IndexEntry) -> Ordering {
    a.key
        .cmp(&b.key)
        .then(b.lsn.cmp(&a.lsn))
        .then(b.segment_seq.cmp(&a.segment_seq))
        .then(b.offset.cmp(&a.offset))
}

/// The first 8 bytes of `key`, big-endian, zero-padded: ordered like the keys whenever they differ.
fn prefix(key: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    let n = key.len().min(8);
    word[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(word)
}

/// An entry with its prefix beside it, so most comparisons read neither the key nor its bytes.
type Keyed = (u64, IndexEntry);

/// Which bucket a prefix goes to. INVARIANT: monotonic in the prefix, so buckets in index order
/// hold keys in key order, and equal keys (equal prefixes) share a bucket.
#[derive(Clone, Copy, Debug)]
struct Buckets {
    /// Leading bits every prefix shares (skipped: they would put everything in one bucket).
    shared: u32,
    /// Bits of the prefix after those that pick the bucket (0: one bucket).
    bits: u32,
}

impl Buckets {
    fn new(prefix_min: u64, prefix_max: u64, entries: usize) -> Self {
        let wanted = (entries / BUCKET_ENTRIES_TARGET).max(1);
        let bits = wanted.next_power_of_two().trailing_zeros().min(BUCKET_BITS_MAX);
        let shared = (prefix_min ^ prefix_max).leading_zeros();
        if prefix_min > prefix_max || shared >= 64 {
            // No entry, or one prefix shared by all: one bucket.
            return Buckets { shared: 0, bits: 0 };
        }
        Buckets { shared, bits }
    }

    fn count(self) -> usize {
        1 << self.bits
    }

    fn of(self, prefix: u64) -> usize {
        if self.bits == 0 {
            return 0;
        }
        // `shared < 64` (checked in `new`); the skipped bits are equal in every prefix.
        ((prefix << self.shared) >> (64 - self.bits)) as usize
    }
}

/// Distribute the entries of `parts` into buckets (in part order; `Clear` records aside). A
/// part is freed as soon as it is distributed, so the buckets (growing as they fill) reuse its
/// memory instead of faulting in fresh pages.
fn distribute(
    parts: Vec<Part>,
    buckets: Buckets,
    expected: usize,
) -> (Vec<Vec<Keyed>>, Vec<IndexEntry>) {
    let per_bucket = expected / buckets.count() / 2;
    let mut out: Vec<Vec<Keyed>> =
        (0..buckets.count()).map(|_| Vec::with_capacity(per_bucket)).collect();
    let mut clears = Vec::new();
    for part in parts {
        for (p, entry) in part.entries {
            if entry.kind == RecordKind::Clear {
                clears.push(entry);
                continue;
            }
            out[buckets.of(p)].push((p, entry));
        }
    }
    (out, clears)
}

/// Sort one bucket (the pieces the bucket pass left for it) in place and keep, in place, the
/// newest entry of each key unless its LSN is at most `cleared` (the newest `Clear`'s, or 0).
fn sort_bucket(pieces: &mut Vec<Vec<Keyed>>, cleared: Lsn) {
    if pieces.len() > 1 {
        let mut all = Vec::with_capacity(pieces.iter().map(Vec::len).sum());
        for piece in pieces.iter_mut() {
            all.append(piece);
        }
        *pieces = vec![all];
    }
    let Some(bucket) = pieces.first_mut() else { return };
    bucket.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| newest_first(&a.1, &b.1)));
    // INVARIANT: newest first within a key, so the first of each key is its newest version.
    bucket.dedup_by(|later, first| later.0 == first.0 && later.1.key == first.1.key);
    bucket.retain(|(_, entry)| entry.lsn > cleared);
}

/// Sort the entries of `parts` by key and keep the newest of each (see [`newest_first`]). A
/// `Clear` record removes every entry of a lower LSN; the newest clear is kept as the one entry
/// of its kind (compaction needs to know it exists), after the keys: it is not a key.
pub(crate) fn build(parts: Vec<Part>) -> Vec<IndexEntry> {
    let total: usize = parts.iter().map(Part::len).sum();
    let prefix_min = parts.iter().map(|p| p.prefix_min).min().unwrap_or(u64::MAX);
    let prefix_max = parts.iter().map(|p| p.prefix_max).max().unwrap_or(0);
    let buckets = Buckets::new(prefix_min, prefix_max, total);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(SORT_THREADS_MAX)
        .min(parts.len());
    let threads = if total < PARALLEL_SORT_MIN { 1 } else { threads.max(1) };
    // The bucket pass: each thread distributes a share of the parts (by entry count).
    let shares = split_parts(parts, threads);
    let share_len = total.div_ceil(threads.max(1));
    let distributed: Vec<(Vec<Vec<Keyed>>, Vec<IndexEntry>)> = if threads == 1 {
        shares.into_iter().map(|share| distribute(share, buckets, share_len)).collect()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = shares
                .into_iter()
                .map(|share| scope.spawn(move || distribute(share, buckets, share_len)))
                .collect();
            handles.into_iter().map(join).collect()
        })
    };
    // Per bucket, the pieces every thread left for it; the clears aside.
    let mut per_bucket: Vec<Vec<Vec<Keyed>>> =
        (0..buckets.count()).map(|_| Vec::with_capacity(threads)).collect();
    let mut clears = Vec::new();
    for (pieces, mut cleared) in distributed {
        for (b, piece) in pieces.into_iter().enumerate() {
            if !piece.is_empty() {
                per_bucket[b].push(piece);
            }
        }
        clears.append(&mut cleared);
    }
    let newest_clear = clears.into_iter().max_by_key(|e| (e.lsn, e.segment_seq, e.offset));
    let cleared = newest_clear.as_ref().map_or(Lsn(0), |c| c.lsn);
    // The sort pass: each thread sorts a run of consecutive buckets in place.
    let sort_run = |run: &mut [Vec<Vec<Keyed>>]| {
        for pieces in run {
            sort_bucket(pieces, cleared);
        }
    };
    if threads == 1 {
        sort_run(&mut per_bucket);
    } else {
        let runs = split_buckets(&mut per_bucket, threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> =
                runs.into_iter().map(|run| scope.spawn(move || sort_run(run))).collect();
            handles.into_iter().for_each(join);
        });
    }
    // The buckets in order are the index: one sequential copy into it.
    let kept = per_bucket.iter().flatten().map(Vec::len).sum::<usize>();
    let mut out = Vec::with_capacity(kept + 1);
    for pieces in per_bucket {
        for piece in pieces {
            out.extend(piece.into_iter().map(|(_, entry)| entry));
        }
    }
    if let Some(clear) = newest_clear {
        out.push(clear);
    }
    out
}

/// A scoped thread's result; its panic (the sort does not panic on any input) is the caller's.
fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// `parts` in `threads` shares of about equal entry counts (order kept).
fn split_parts(parts: Vec<Part>, threads: usize) -> Vec<Vec<Part>> {
    let total: usize = parts.iter().map(Part::len).sum();
    let per = total.div_ceil(threads.max(1)).max(1);
    let mut shares: Vec<Vec<Part>> = vec![Vec::new()];
    let mut filled = 0usize;
    for part in parts {
        if filled >= per && shares.len() < threads {
            shares.push(Vec::new());
            filled = 0;
        }
        filled += part.len();
        if let Some(share) = shares.last_mut() {
            share.push(part);
        }
    }
    shares
}

/// `per_bucket` cut into at most `threads` runs of consecutive buckets of about equal entry
/// counts.
fn split_buckets(
    mut per_bucket: &mut [Vec<Vec<Keyed>>],
    threads: usize,
) -> Vec<&mut [Vec<Vec<Keyed>>]> {
    let size = |pieces: &Vec<Vec<Keyed>>| pieces.iter().map(Vec::len).sum::<usize>();
    let total: usize = per_bucket.iter().map(size).sum();
    let per = total.div_ceil(threads.max(1)).max(1);
    let mut runs = Vec::with_capacity(threads);
    while runs.len() + 1 < threads {
        let mut filled = 0usize;
        let cut = per_bucket
            .iter()
            .position(|pieces| {
                filled += size(pieces);
                filled >= per
            })
            .map_or(per_bucket.len(), |at| at + 1);
        let (run, rest) = per_bucket.split_at_mut(cut);
        runs.push(run);
        per_bucket = rest;
    }
    runs.push(per_bucket);
    runs
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
                    part.push(e.clone());
                }
                assert_eq!(part.len(), chunk.len());
                part
            })
            .collect()
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
                entries.push(IndexEntry { key: key.into(), ..entry("", i + 1, i * 8) });
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
        let b = Buckets::new(0x1234_0000_0000_0000, 0x1234_ffff_0000_0000, 1 << 22);
        assert_eq!(b.count(), 1 << BUCKET_BITS_MAX);
        let mut last = 0;
        for p in (0..=0xffffu64).map(|x| 0x1234_0000_0000_0000 | (x << 32)) {
            let at = b.of(p);
            assert!(at >= last && at < b.count());
            last = at;
        }
        assert_eq!(last, b.count() - 1, "the whole range of buckets is used");
        assert_eq!(Buckets::new(5, 5, 1 << 22).count(), 1);
        assert_eq!(Buckets::new(u64::MAX, 0, 0).count(), 1);
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
