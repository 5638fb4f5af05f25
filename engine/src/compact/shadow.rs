//! The exact tombstone check of an explicit compaction: a tombstone that `SpaceMap` cannot
//! clear by its per-segment bounds may still go when none of the sealed segments those bounds
//! name actually holds an older record of its key. Those segments are read once per pass (at
//! most `SEGMENTS_READ_MAX`), into a map from key hash to the lowest LSN of a put of that key there.
//!
//! INVARIANT: a verdict errs only towards keeping: a segment not read (open, over budget,
//! unreadable) shadows everything; a hash collision counts as the key being there.

use std::collections::HashMap;
use std::hash::BuildHasher;

use mcstore_recovery::format::RecordKind;

use super::{Found, Victim};
use crate::db::Inner;

/// Segments an explicit pass reads to check tombstones exactly (bounds its time and memory:
/// about 16 bytes per record read).
const SEGMENTS_READ_MAX: usize = 64;

/// Per pass: the segments read so far, by `(segment, sequence)` (`None`: could not be read).
#[derive(Debug, Default)]
pub(super) struct Shadows {
    read: HashMap<(u32, u64), Option<HashMap<u64, u64>>>,
}

/// One tombstone the per-segment bounds keep, and the segments they name.
struct Candidate {
    at: usize,
    hash: u64,
    lsn: u64,
    segments: Vec<(u32, u64, u64)>,
}

fn key_hash(key: &[u8]) -> u64 {
    foldhash::fast::FixedState::default().hash_one(key)
}

impl Shadows {
    /// Mark the tombstones of `found` (the records of `victim`) that no other segment shadows
    /// `shadow_free`. Reads segments without the commit lock held.
    pub(super) fn check(&mut self, inner: &Inner, victim: Victim, found: &mut [Found]) {
        let (open, shadowers) = {
            let st = inner.commit.lock();
            let open = st.writer.as_ref().and_then(|w| w.open_segment()).map(|s| s.id.0);
            (open, st.space.shadowers(victim.id).collect::<Vec<_>>())
        };
        let candidates: Vec<Candidate> = found
            .iter()
            .enumerate()
            .filter(|(_, f)| f.kind == RecordKind::Delete && inner.index.get(&f.key).is_none())
            .filter_map(|(at, f)| {
                let lsn = f.location.lsn;
                let segments: Vec<_> = shadowers
                    .iter()
                    .filter(|s| s.0 < lsn)
                    .map(|&(_, id, seq, used)| (id, seq, used))
                    .collect();
                // The open segment is still written: it is never read here.
                let any_open = segments.iter().any(|s| Some(s.0) == open);
                (!segments.is_empty() && !any_open).then(|| Candidate {
                    at,
                    hash: key_hash(&f.key),
                    lsn,
                    segments,
                })
            })
            .collect();
        for candidate in &candidates {
            for &(id, seq, used) in &candidate.segments {
                self.read_segment(inner, id, seq, used);
            }
        }
        for candidate in candidates {
            let free = candidate.segments.iter().all(|&(id, seq, _)| {
                self.read.get(&(id, seq)).is_some_and(|map| {
                    map.as_ref().is_some_and(|map| {
                        map.get(&candidate.hash).is_none_or(|&m| m >= candidate.lsn)
                    })
                })
            });
            found[candidate.at].shadow_free = free;
        }
    }

    /// Read sealed segment `id` (of sequence `seq`, `used` bytes) into the map, once, while
    /// the budget lasts.
    fn read_segment(&mut self, inner: &Inner, id: u32, seq: u64, used: u64) {
        if self.read.contains_key(&(id, seq)) || self.read.len() >= SEGMENTS_READ_MAX {
            return;
        }
        let records = inner.read_victim(Victim { id, seq, used, live: 0 });
        let map = records.map(|records| {
            let mut map = HashMap::with_capacity(records.len());
            // Only puts: an older tombstone of the key left behind deletes it all the same (a
            // put between the two is older than the tombstone, so its own segment is checked).
            for f in records.into_iter().filter(|f| f.kind == RecordKind::Put) {
                let lowest = map.entry(key_hash(&f.key)).or_insert(u64::MAX);
                *lowest = (*lowest).min(f.location.lsn);
            }
            map
        });
        self.read.insert((id, seq), map);
    }
}

#[cfg(test)]
mod tests {
    use crate::db::Db;
    use crate::test_support::{reopen, sim_db, small_options};

    /// The segment the index places `key` in.
    fn segment_of(db: &Db, key: &[u8]) -> u32 {
        let location = db.inner.index.get(key).expect("indexed");
        db.inner.geometry.segment_of(location.offset).expect("in a segment").0
    }

    /// Cold keys of 1000-byte values until the open segment rolls past `segment`.
    fn fill_past(db: &Db, segment: u32, prefix: &str) {
        for i in 0.. {
            let key = format!("{prefix}{i:04}");
            db.put(&key, [1u8; 1000]).unwrap();
            if segment_of(db, key.as_bytes()) != segment {
                return;
            }
        }
    }

    /// Overwritten fillers: the segments they fill become victims.
    fn junk(db: &Db, prefix: &str) {
        for round in 0..2 {
            for i in 0..70u32 {
                db.put(format!("{prefix}{i:02}"), vec![round; 900]).unwrap();
            }
        }
    }

    /// A tombstone whose older put still sits in a segment the pass does not clean is kept,
    /// even though the exact check reads that segment: the key stays removed after a reopen.
    #[test]
    fn a_tombstone_whose_put_is_still_there_is_kept() {
        let (sim, db) = sim_db(2 << 20, small_options());
        // Segment `a`: the put of `victim-key` among cold keys (all live but that one, so not
        // a victim even of an explicit pass); the remove lands in the next segment, which the
        // fillers make a victim.
        db.put("victim-key", b"old").unwrap();
        db.put("other", b"x").unwrap();
        let a = segment_of(&db, b"victim-key");
        fill_past(&db, a, "cold");
        db.remove("victim-key").unwrap();
        junk(&db, "junk");
        let (used, live) = db.inner.commit.lock().space.of(a);
        assert!(live < used && live * 16 > used * 15, "segment {a} must stay: {used} {live}");
        let summary = db.compact().unwrap();
        assert!(summary.segments_reclaimed >= 1, "{summary:?}");
        assert_eq!(db.inner.commit.lock().space.of(a), (used, live), "segment {a} untouched");
        assert_eq!(summary.tombstones_dropped, 0, "{summary:?}");
        drop(db);
        let db = reopen(&sim, small_options());
        assert_eq!(db.get("victim-key").unwrap(), None, "the removed key came back");
        assert_eq!(db.get("other").unwrap().as_deref(), Some(&b"x"[..]));
    }

    /// The same tombstone goes when the segment the per-segment bounds name holds only other
    /// keys: its put was in an older segment, reclaimed first (oldest first).
    #[test]
    fn a_tombstone_whose_put_is_gone_is_dropped() {
        let (sim, db) = sim_db(2 << 20, small_options());
        // The put of `k` in a segment of its own that empties (overwritten fillers).
        db.put("k", b"old").unwrap();
        let first = segment_of(&db, b"k");
        junk(&db, "early");
        assert_ne!(segment_of(&db, b"early69"), first);
        // Segment `a`: an overwritten key (one dead record) among cold keys.
        db.put("x", b"first").unwrap();
        let a = segment_of(&db, b"x");
        fill_past(&db, a, "cold");
        db.put("x", b"second").unwrap();
        db.remove("k").unwrap();
        junk(&db, "junk");
        let (used, live) = db.inner.commit.lock().space.of(a);
        assert!(live < used && live * 16 > used * 15, "segment {a} must stay: {used} {live}");
        let summary = db.compact().unwrap();
        assert!(summary.tombstones_dropped >= 1, "{summary:?}");
        assert_eq!(db.inner.commit.lock().space.of(a), (used, live), "segment {a} untouched");
        drop(db);
        let db = reopen(&sim, small_options());
        assert_eq!(db.get("k").unwrap(), None, "the removed key came back");
        assert_eq!(db.get("x").unwrap().as_deref(), Some(&b"second"[..]));
    }
}
