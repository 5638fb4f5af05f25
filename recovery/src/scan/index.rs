//! Building the index in bulk: collect every verified record, sort by key then newest first,
//! keep the newest per key. Tombstones are kept (as `Delete`): a tombstone can only be dropped
//! by compaction, which knows whether an older segment still holds the key.

use crate::format::{Lsn, RecordKind};

/// One key's newest version as recovery found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// The key.
    pub key: Box<[u8]>,
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

/// Sort `entries` by key and keep the newest (highest LSN; then higher segment sequence, then
/// higher offset, so the result never depends on the order of collection). A `Clear` record
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
    entries.sort_unstable_by(|a, b| {
        a.key
            .cmp(&b.key)
            .then(b.lsn.cmp(&a.lsn))
            .then(b.segment_seq.cmp(&a.segment_seq))
            .then(b.offset.cmp(&a.offset))
    });
    entries.dedup_by(|later, first| later.key == first.key);
    if let Some(clear) = newest_clear {
        entries.push(clear);
    }
    entries
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
