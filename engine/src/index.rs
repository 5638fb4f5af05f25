//! The DRAM index: key → location of its newest committed record.
//!
//! A hash map answers point lookups without paying for order; a `BTreeSet` of the same
//! reference-counted keys answers ranges. INVARIANT: both hold exactly the same key set (every
//! mutation goes through `insert`/`remove`, which update both), and only live keys (tombstones
//! are not indexed: nothing older can resurface without compaction, which arrives in [3]).

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

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

/// The index of live keys.
#[derive(Debug, Default)]
pub struct Index {
    map: HashMap<Arc<[u8]>, Location>,
    order: BTreeSet<Arc<[u8]>>,
    key_bytes: usize,
}

/// Approximate DRAM overhead per key beyond its bytes: two `Arc` headers and pointers, a hash
/// slot with its location, a B-tree slot.
const OVERHEAD_BYTES_PER_KEY: usize = 16 + 16 + 40 + 16;

impl Index {
    /// Build from `(key, location)` pairs sorted by key without duplicates (the recovered
    /// entries): the ordered set is bulk-built.
    pub fn bulk_load(entries: impl IntoIterator<Item = (Arc<[u8]>, Location)>) -> Self {
        let mut map = HashMap::new();
        let mut keys = Vec::new();
        let mut key_bytes = 0;
        for (key, location) in entries {
            key_bytes += key.len();
            if map.insert(Arc::clone(&key), location).is_none() {
                keys.push(key);
            }
        }
        map.shrink_to_fit();
        Self { map, order: keys.into_iter().collect(), key_bytes }
    }

    /// The location of `key`, if live.
    pub fn get(&self, key: &[u8]) -> Option<Location> {
        self.map.get(key).copied()
    }

    /// Point `key` at `location`; returns the previous location.
    pub fn insert(&mut self, key: &[u8], location: Location) -> Option<Location> {
        if let Some(slot) = self.map.get_mut(key) {
            return Some(std::mem::replace(slot, location));
        }
        let key: Arc<[u8]> = Arc::from(key);
        self.key_bytes += key.len();
        self.order.insert(Arc::clone(&key));
        self.map.insert(key, location);
        None
    }

    /// Forget `key`; returns its location.
    pub fn remove(&mut self, key: &[u8]) -> Option<Location> {
        let (_, location) = self.map.remove_entry(key)?;
        self.order.remove(key);
        self.key_bytes -= key.len();
        Some(location)
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is live.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Up to `limit` keys within `(low, high)`, ascending from `low` (or descending from `high`
    /// when `reverse`).
    pub fn keys_between(
        &self,
        low: Bound<&[u8]>,
        high: Bound<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Vec<Arc<[u8]>> {
        if range_is_empty(low, high) {
            return Vec::new();
        }
        let range = self.order.range::<[u8], _>((low, high));
        if reverse {
            range.rev().take(limit).cloned().collect()
        } else {
            range.take(limit).cloned().collect()
        }
    }

    /// Approximate DRAM bytes the index uses.
    pub fn approx_bytes(&self) -> usize {
        self.key_bytes + self.len() * OVERHEAD_BYTES_PER_KEY
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

    fn at(offset: u64) -> Location {
        Location { offset, len: 64, segment_seq: 1, lsn: offset }
    }

    #[test]
    fn insert_get_remove_keep_both_structures_in_step() {
        let mut index = Index::default();
        assert_eq!(index.insert(b"b", at(1)), None);
        assert_eq!(index.insert(b"a", at(2)), None);
        assert_eq!(index.insert(b"b", at(3)), Some(at(1)));
        assert_eq!(index.get(b"b"), Some(at(3)));
        assert_eq!(index.len(), 2);
        assert_eq!(index.remove(b"a"), Some(at(2)));
        assert_eq!(index.remove(b"a"), None);
        let keys = index.keys_between(Bound::Unbounded, Bound::Unbounded, 10, false);
        assert_eq!(keys, vec![Arc::<[u8]>::from(&b"b"[..])]);
        assert_eq!(index.approx_bytes(), 1 + OVERHEAD_BYTES_PER_KEY);
    }

    #[test]
    fn ranges_both_directions_and_empty_ranges() {
        let keys: Vec<Arc<[u8]>> = (0u8..10).map(|i| Arc::from(&[i][..])).collect();
        let index = Index::bulk_load(keys.iter().cloned().map(|k| (k, at(0))));
        assert_eq!(index.len(), 10);
        let low = Bound::Included(&[3u8][..]);
        let high = Bound::Excluded(&[7u8][..]);
        assert_eq!(index.keys_between(low, high, 2, false), keys[3..5].to_vec());
        assert_eq!(index.keys_between(low, high, 2, true), vec![keys[6].clone(), keys[5].clone()]);
        let backwards = (Bound::Included(&[7u8][..]), Bound::Excluded(&[3u8][..]));
        assert!(index.keys_between(backwards.0, backwards.1, 10, false).is_empty());
        let same = Bound::Excluded(&[3u8][..]);
        assert!(index.keys_between(same, same, 10, false).is_empty());
    }
}
