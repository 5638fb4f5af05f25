//! The newest-wins fill of a point table ([`PointTable::build_newest`]): recovery's walked
//! entries, every version of every key in any order, placed on several threads at once; each key
//! keeps its newest version, and a key whose newest version is a tombstone is left out.
//!
//! INVARIANT: while the table is unpublished, a slot's sequence word is a lock between the
//! filling threads (0: never claimed; odd: being written), so a slot's key is compared only once
//! it is written whole, and two versions of one key are decided one after the other.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{DELETED, PointTable, PreparedTable, Probe, Table, Writer, on_threads};
use mcstore_recovery::format::Lsn;
use mcstore_recovery::scan::version_rank;

use crate::index::Location;

/// One version of a key met by a newest-wins fill ([`PointTable::build_newest`]): a put, or a
/// tombstone (`put == false`), which removes the key if it is the newest.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Version<'k> {
    pub(crate) key: &'k [u8],
    pub(crate) location: Location,
    pub(crate) put: bool,
}

/// What a newest-wins fill found besides the table: the live keys' record bytes per segment
/// (by the index `segment_of` gave) and the live keys' lengths summed.
#[derive(Debug, Default)]
pub(crate) struct Newest {
    pub(crate) live_bytes: Vec<u64>,
    pub(crate) key_bytes: usize,
}

/// In a newest-wins fill, a slot whose version is a tombstone has this bit set in its record
/// length until the fill ends (a record is shorter than 2^31 bytes).
const TOMBSTONE_BIT: u32 = 1 << 31;
const _: () = assert!(mcstore_recovery::limits::SEGMENT_BYTES_MAX < TOMBSTONE_BIT as u64);

/// Slots a newest-wins fill's thread places at most before it adds them to the shared count
/// (which bounds the table's fill: see `build_newest`).
const NEWEST_COUNT_EVERY: usize = 256;

/// One thread's share of a newest-wins fill.
struct NewestPart {
    /// Keys placed (puts and tombstones).
    placed: usize,
    /// Slots whose version became a tombstone (some later replaced by a newer put).
    tombstones: Vec<usize>,
    /// Per segment, live record bytes added and removed.
    live_bytes: Vec<i64>,
    /// Live key bytes added and removed.
    key_bytes: i64,
}

/// `pieces` cut into at most `runs` runs of about equal length, in order.
fn split_runs<'p, T>(pieces: &[&'p [T]], runs: usize) -> Vec<Vec<&'p [T]>> {
    let total: usize = pieces.iter().map(|p| p.len()).sum();
    let per = total.div_ceil(runs.max(1)).max(1);
    let mut out: Vec<Vec<&'p [T]>> = vec![Vec::new()];
    let mut filled = 0;
    for &piece in pieces {
        let mut rest = piece;
        while !rest.is_empty() {
            if filled == per {
                out.push(Vec::new());
                filled = 0;
            }
            let (now, later) = rest.split_at((per - filled).min(rest.len()));
            filled += now.len();
            if let Some(run) = out.last_mut() {
                run.push(now);
            }
            rest = later;
        }
    }
    out
}

impl Table {
    /// Place `v` for `probe` in a newest-wins fill (see [`PointTable::build_newest`]): a new key
    /// claims an empty slot; a key already placed keeps the newer of its two versions. Returns
    /// whether a slot was claimed. Records each change's live bytes and tombstones in `part`.
    fn place_newest<S>(
        &self,
        probe: &Probe<'_>,
        v: &Version<'_>,
        segment_of: &S,
        part: &mut NewestPart,
    ) -> bool
    where
        S: Fn(u64) -> Option<usize>,
    {
        let key_len = probe.key.len() as u64;
        let stored = |location: Location, put: bool| Location {
            len: if put { location.len } else { location.len | TOMBSTONE_BIT },
            ..location
        };
        let count = |location: Location, key_len: u64, sign: i64, part: &mut NewestPart| {
            if let Some(bytes) =
                segment_of(location.offset).and_then(|s| part.live_bytes.get_mut(s))
            {
                *bytes += sign * i64::from(location.len);
            }
            part.key_bytes += sign * key_len as i64;
        };
        let mut i = probe.hash as usize & self.mask;
        loop {
            let slot = &self.slots[i];
            let seq = slot.seq.load(Ordering::Acquire);
            if seq & 1 == 1 {
                // Another thread is writing the slot.
                std::hint::spin_loop();
                continue;
            }
            if seq == 0 {
                // Never claimed: claim it, or look again once whoever did has written it.
                if slot.seq.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
                    continue;
                }
                slot.fill_key(probe);
                slot.store_location(key_len, stored(v.location, v.put));
                slot.seq.store(2, Ordering::Release);
                part.placed += 1;
                if v.put {
                    count(v.location, key_len, 1, part);
                } else {
                    part.tombstones.push(i);
                }
                return true;
            }
            // Claimed and written whole (the Acquire above): its key no longer changes.
            if slot.hash.load(Ordering::Relaxed) == probe.hash && slot.holds(probe) {
                if slot
                    .seq
                    .compare_exchange(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_err()
                {
                    continue;
                }
                let old = slot.location();
                let old_put = old.len & TOMBSTONE_BIT == 0;
                let rank = |l: &Location| version_rank(Lsn(l.lsn), l.segment_seq, l.offset);
                let newer = rank(&v.location) > rank(&old);
                if newer {
                    if old_put {
                        count(old, key_len, -1, part);
                    }
                    slot.store_location(key_len, stored(v.location, v.put));
                    if v.put {
                        count(v.location, key_len, 1, part);
                    } else if old_put {
                        part.tombstones.push(i);
                    }
                }
                slot.seq.store(seq + 2, Ordering::Release);
                return false;
            }
            i = (i + 1) & self.mask;
        }
    }
}

impl PointTable {
    /// Build from every version of every key, unsorted (recovery's walked entries, as `version`
    /// picks them: `None` skips an item), keeping the newest version of each key (by
    /// `scan::version_rank`) and no key whose newest version is a tombstone. The
    /// table is sized for about `keys` distinct keys (`prepared`'s, if it fits). `None` if more
    /// distinct keys than that came (the estimate was wrong by far more than its error): the
    /// caller builds another way.
    ///
    /// On several threads when there are at least `parallel_min` items, each placing its own
    /// run of them: a slot's sequence word is its lock while the table is unpublished (0: never
    /// claimed; odd: being written), so a key is compared only once written whole, and two
    /// versions of one key met on two threads are decided one after the other.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn build_newest<T, F, S>(
        pieces: &[&[T]],
        version: &F,
        keys: usize,
        segment_of: &S,
        segments: usize,
        threads: usize,
        parallel_min: usize,
        prepared: Option<PreparedTable>,
    ) -> Option<(Self, Writer, Newest)>
    where
        T: Sync,
        F: for<'t> Fn(&'t T) -> Option<Version<'t>> + Sync,
        S: Fn(u64) -> Option<usize> + Sync,
    {
        let hasher = foldhash::fast::RandomState::default();
        let table = Table::prepared_or_bulk(prepared, keys);
        // A bulk-built table has no tags (`Table::tags`): the fill below stores none.
        debug_assert!(table.tags.is_none());
        let items: usize = pieces.iter().map(|p| p.len()).sum();
        let threads = if threads <= 1 || items < parallel_min { 1 } else { threads };
        // A fill past 3/4 full (keys far above the estimate) gives up. Each thread adds its
        // placements to the shared count at least every `every`, so at most a quarter of the
        // bound more are placed before every thread sees it: a probe always meets an empty slot.
        let bound = table.capacity() / 4 * 3;
        let runs = split_runs(pieces, threads);
        let every = (bound / (4 * runs.len())).clamp(1, NEWEST_COUNT_EVERY);
        let placed = AtomicUsize::new(0);
        let fill = |run: Vec<&[T]>| -> Option<NewestPart> {
            let mut part = NewestPart {
                placed: 0,
                tombstones: Vec::new(),
                live_bytes: vec![0; segments],
                key_bytes: 0,
            };
            let mut unreported = 0usize;
            let mut full = false;
            let versions = run
                .into_iter()
                .flat_map(|p| p.iter())
                .filter_map(version)
                .map(|v| (Probe::new(&hasher, v.key), v));
            table.place_ahead(versions, |probe, v| {
                if table.place_newest(&probe, &v, segment_of, &mut part) {
                    unreported += 1;
                    if unreported >= every {
                        let total = placed.fetch_add(unreported, Ordering::Relaxed) + unreported;
                        unreported = 0;
                        full = total > bound;
                    }
                }
                !full
            });
            (!full).then_some(part)
        };
        let parts = on_threads(runs, fill);
        let parts: Vec<NewestPart> = parts.into_iter().collect::<Option<_>>()?;
        // Tombstones that stayed the newest version leave their slots deleted.
        let mut removed = 0;
        for &i in parts.iter().flat_map(|p| p.tombstones.iter()) {
            let slot = &table.slots[i];
            if slot.hash.load(Ordering::Relaxed) != DELETED
                && slot.record_len.load(Ordering::Relaxed) & TOMBSTONE_BIT != 0
            {
                table.delete(i);
                removed += 1;
            }
        }
        let used: usize = parts.iter().map(|p| p.placed).sum();
        // One thread's counts may be negative (it replaced versions another placed); their sums
        // are not.
        let mut live_bytes = vec![0i64; segments];
        let mut key_bytes = 0i64;
        for part in &parts {
            for (total, delta) in live_bytes.iter_mut().zip(&part.live_bytes) {
                *total += delta;
            }
            key_bytes += part.key_bytes;
        }
        let newest = Newest {
            live_bytes: live_bytes.into_iter().map(|b| u64::try_from(b).unwrap_or(0)).collect(),
            key_bytes: usize::try_from(key_bytes).unwrap_or(0),
        };
        let (points, writer) = Self::built(table, hasher, used - removed, used);
        Some((points, writer, newest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::point_table::tests::{HASH_MASK, key};
    /// A newest-wins fill from versions met in any order, on several threads or one (with
    /// fingerprints shared by many keys): each key holds its newest version, a key whose newest
    /// version is a tombstone is absent, and the live bytes, key bytes and counts are the
    /// model's.
    #[test]
    fn a_newest_wins_fill_matches_a_model() {
        type Item = (Vec<u8>, Location, bool);
        fn version(item: &Item) -> Option<Version<'_>> {
            Some(Version { key: &item.0[..], location: item.1, put: item.2 })
        }
        let segment_of = |offset: u64| Some((offset / 10_000 % 8) as usize);
        for (mask, threads, parallel_min) in [(u64::MAX, 4, 100), (0x7, 1, usize::MAX)] {
            HASH_MASK.with(|m| m.set(mask));
            let mut x = 0x2545_f491_4f6c_dd1du64;
            let mut next = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            // 3000 versions of 600 keys (short and long), LSNs and offsets in random order;
            // some versions share an LSN and differ by segment sequence or offset.
            let items: Vec<Item> = (0..3000u64)
                .map(|n| {
                    let k = next() % 600;
                    let location = Location {
                        offset: n * 160 + 64,
                        len: 100 + (n % 50) as u32,
                        segment_seq: next() % 3,
                        lsn: next() % 2000 + 1,
                    };
                    (key(k, k % 4 == 0), location, next() % 5 != 0)
                })
                .collect();
            let mut model: std::collections::HashMap<&[u8], (Location, bool)> = Default::default();
            for (k, location, put) in &items {
                let rank = |l: &Location| (l.lsn, l.segment_seq, l.offset);
                let newest = model.get(&k[..]).is_none_or(|(old, _)| rank(location) > rank(old));
                if newest {
                    model.insert(&k[..], (*location, *put));
                }
            }
            let pieces: Vec<&[Item]> = items.chunks(700).collect();
            let (table, writer, newest) = PointTable::build_newest(
                &pieces,
                &version,
                600,
                &segment_of,
                8,
                threads,
                parallel_min,
                None,
            )
            .expect("the estimate was right");
            let live: Vec<(&[u8], Location)> =
                model.iter().filter(|(_, (_, put))| *put).map(|(k, (l, _))| (*k, *l)).collect();
            assert_eq!(writer.live(), live.len(), "mask {mask:#x}");
            assert_eq!(writer.used(), model.len());
            for (k, (location, put)) in &model {
                assert_eq!(table.get(k), put.then_some(*location), "mask {mask:#x}");
            }
            let mut bytes = vec![0u64; 8];
            for (_, l) in &live {
                bytes[segment_of(l.offset).unwrap()] += u64::from(l.len);
            }
            assert_eq!(newest.live_bytes, bytes);
            assert_eq!(newest.key_bytes, live.iter().map(|(k, _)| k.len()).sum::<usize>());
            // Far more keys than the estimate: the fill gives up instead of overfilling.
            let under = PointTable::build_newest(
                &pieces,
                &version,
                40,
                &segment_of,
                8,
                threads,
                parallel_min,
                None,
            );
            assert!(under.is_none(), "mask {mask:#x}");
        }
        HASH_MASK.with(|m| m.set(u64::MAX));
    }

    #[test]
    fn runs_cover_the_pieces_in_order_in_about_equal_lengths() {
        let items: Vec<u32> = (0..103).collect();
        let pieces: Vec<&[u32]> = vec![&items[..10], &items[10..10], &items[10..90], &items[90..]];
        for runs in [1, 2, 3, 4, 200] {
            let split = split_runs(&pieces, runs);
            let flat: Vec<u32> = split.iter().flatten().flat_map(|p| p.iter().copied()).collect();
            assert_eq!(flat, items, "{runs} runs");
            assert!(split.len() <= runs);
            let per = 103usize.div_ceil(runs);
            assert!(split.iter().all(|r| r.iter().map(|p| p.len()).sum::<usize>() <= per));
        }
    }
}
