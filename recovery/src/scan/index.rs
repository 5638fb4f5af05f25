//! Building the index in bulk: collect every verified record, sort by key then newest first,
//! keep the newest per key. Tombstones are kept (as `Delete`): a tombstone can only be dropped
//! by compaction, which knows whether an older segment still holds the key.
//!
//! The sort runs on 16-byte words (a key's first 8 bytes, big-endian, beside the entry's
//! position), in two halves on two threads, so most comparisons touch neither the key nor the
//! entry; only entries whose first 8 bytes tie are compared in full.

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

/// Entries below this are sorted on one thread.
const PARALLEL_SORT_MIN: usize = 1 << 16;

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

/// Sort `words` (prefix << 64 | position) by prefix, ties by the full order of the entries.
fn sort_words(words: &mut [u128], entries: &[IndexEntry]) {
    let full = |a: &u128, b: &u128| {
        (a >> 64)
            .cmp(&(b >> 64))
            .then_with(|| newest_first(&entries[*a as u64 as usize], &entries[*b as u64 as usize]))
    };
    if words.len() < PARALLEL_SORT_MIN {
        words.sort_unstable_by(full);
        return;
    }
    let mid = words.len() / 2;
    let (left, right) = words.split_at_mut(mid);
    std::thread::scope(|scope| {
        scope.spawn(|| left.sort_unstable_by(full));
        right.sort_unstable_by(full);
    });
    let mut merged = Vec::with_capacity(words.len());
    let (mut i, mut j) = (0, mid);
    while i < mid && j < words.len() {
        if full(&words[j], &words[i]) == Ordering::Less {
            merged.push(words[j]);
            j += 1;
        } else {
            merged.push(words[i]);
            i += 1;
        }
    }
    merged.extend_from_slice(&words[i..mid]);
    merged.extend_from_slice(&words[j..]);
    words.copy_from_slice(&merged);
}

/// Sort `entries` by key and keep the newest of each (see [`newest_first`]). A `Clear` record
/// removes every entry of a lower LSN; the newest clear is kept as the one entry of its kind
/// (compaction needs to know it exists), and it is not a key.
pub(crate) fn build(mut entries: Vec<IndexEntry>) -> Vec<IndexEntry> {
    let newest_clear = entries
        .iter()
        .filter(|e| e.kind == RecordKind::Clear)
        .max_by_key(|e| (e.lsn, e.segment_seq, e.offset))
        .cloned();
    if let Some(clear) = &newest_clear {
        entries.retain(|e| e.lsn > clear.lsn && e.kind != RecordKind::Clear);
    }
    let mut words: Vec<u128> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (u128::from(prefix(&e.key)) << 64) | i as u128)
        .collect();
    sort_words(&mut words, &entries);
    let mut slots: Vec<Option<IndexEntry>> = entries.into_iter().map(Some).collect();
    let mut out: Vec<IndexEntry> = Vec::with_capacity(slots.len());
    for word in words {
        let Some(entry) = slots[word as u64 as usize].take() else { continue };
        // INVARIANT: sorted newest first within a key, so the first of each key is kept.
        if out.last().is_none_or(|last| last.key != entry.key) {
            out.push(entry);
        }
    }
    if let Some(clear) = newest_clear {
        out.push(clear);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let built = build(vec![
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
        assert_eq!(build(entries), expected);
    }

    #[test]
    fn a_clear_drops_every_older_entry_and_comes_last() {
        let clear = |lsn: u64| IndexEntry { kind: RecordKind::Clear, ..entry("", lsn, 900 + lsn) };
        let built = build(vec![
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
