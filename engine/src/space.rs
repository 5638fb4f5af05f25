//! `SpaceMap`: per segment, the data bytes used and the encoded bytes of the live records in
//! it — what compaction chooses by and `stats()` reports. Kept behind the commit lock.
//!
//! INVARIANT: `live[s] ≤ used[s]`; a put adds its record to its segment's live bytes and
//! removes the record it replaces from that one's; deletes and clears remove; tombstones and
//! clear records are used but never live.
//! INVARIANT: `first_high[s]` ≤ every LSN issued after `s` first received a record, and
//! `min_lsn[s]` ≤ every LSN in `s`: together they bound which tombstones `s` may still shadow
//! (`shadowers`, argued in `docs/compaction.md`).

/// Per-segment space accounting.
#[derive(Debug, Default)]
pub(crate) struct SpaceMap {
    used: Vec<u64>,
    live: Vec<u64>,
    /// Lowest LSN of any record in the segment (`u64::MAX`: none; 0: unknown, recovered).
    min_lsn: Vec<u64>,
    /// The segment's sequence (its records' checksum context).
    seq: Vec<u64>,
    /// The highest LSN noted anywhere when the segment received its first record (`u64::MAX`:
    /// none yet; 0: unknown, recovered). Every record appended to it later — fresh, or a copy
    /// compaction moved while its key was live — was appended after that moment.
    first_high: Vec<u64>,
    /// The highest LSN noted so far (fresh records only raise it; 0 right after an open).
    high: u64,
}

impl SpaceMap {
    fn slot(v: &mut Vec<u64>, segment: u32) -> &mut u64 {
        let i = segment as usize;
        if v.len() <= i {
            v.resize(i + 1, 0);
        }
        &mut v[i]
    }

    /// `bytes` more of `segment`'s data area are used.
    pub(crate) fn use_bytes(&mut self, segment: u32, bytes: u64) {
        *Self::slot(&mut self.used, segment) += bytes;
    }

    /// Set `segment`'s used bytes (at open, from its committed tail).
    pub(crate) fn set_used(&mut self, segment: u32, bytes: u64) {
        *Self::slot(&mut self.used, segment) = bytes;
    }

    /// A live record of `bytes` is in `segment`.
    pub(crate) fn add_live(&mut self, segment: u32, bytes: u64) {
        *Self::slot(&mut self.live, segment) += bytes;
    }

    /// A record of `bytes` in `segment` is no longer live.
    pub(crate) fn remove_live(&mut self, segment: u32, bytes: u64) {
        let live = Self::slot(&mut self.live, segment);
        *live = live.saturating_sub(bytes);
    }

    /// Nothing is live any more (a clear).
    pub(crate) fn clear_live(&mut self) {
        self.live.iter_mut().for_each(|b| *b = 0);
    }

    /// `segment` was reclaimed: nothing used, nothing live.
    pub(crate) fn reclaim(&mut self, segment: u32) {
        *Self::slot(&mut self.used, segment) = 0;
        *Self::slot(&mut self.live, segment) = 0;
        let i = segment as usize;
        if let Some(min) = self.min_lsn.get_mut(i) {
            *min = u64::MAX;
        }
        if let Some(first) = self.first_high.get_mut(i) {
            *first = u64::MAX;
        }
    }

    /// A record of LSN `lsn` was appended to `segment`, in append order (0 at open: the
    /// segment may hold any older record).
    pub(crate) fn note_lsn(&mut self, segment: u32, lsn: u64) {
        let i = segment as usize;
        if self.min_lsn.len() <= i {
            self.min_lsn.resize(i + 1, u64::MAX);
        }
        if self.first_high.len() <= i {
            self.first_high.resize(i + 1, u64::MAX);
        }
        self.min_lsn[i] = self.min_lsn[i].min(lsn);
        if self.first_high[i] == u64::MAX {
            self.first_high[i] = if lsn == 0 { 0 } else { self.high };
        }
        self.high = self.high.max(lsn);
    }

    /// Whether any segment other than `except` may hold a record a tombstone or clear of LSN
    /// `lsn` in `except` shadows (then it must be kept; see `shadowers`).
    #[cfg(test)]
    pub(crate) fn older_elsewhere(&self, except: u32, lsn: u64) -> bool {
        lsn > self.shadow_floor(except)
    }

    /// The highest LSN a tombstone or clear in `except` may have and not be kept by another
    /// segment: the least bound of `shadowers(except)` (one walk for a whole victim).
    pub(crate) fn shadow_floor(&self, except: u32) -> u64 {
        self.shadowers(except).map(|(bound, ..)| bound).min().unwrap_or(u64::MAX)
    }

    /// The segments other than `except` that may hold a record some tombstone or clear in
    /// `except` shadows, as `(bound, segment, sequence, used bytes)`: a segment may hold a
    /// record older than LSN `lsn` of the key a tombstone of LSN `lsn` deletes (or of any key,
    /// for a clear) only if `bound < lsn`. The caller holds the commit lock and the tombstone
    /// is indexed. A segment may only if (1) it holds a record older than `lsn` (`min_lsn`);
    /// (2) it received its first record before `lsn` was issued (`first_high`): a record of the
    /// shadowed key older than `lsn` was appended before `lsn` was issued — fresh, or moved by
    /// compaction, which moves a put only while its key is live and no write to it is pending,
    /// so before the tombstone; (3) some of its bytes are not live: a shadowed record is dead,
    /// and every byte of a segment whose bytes are all live belongs to a put the index points
    /// at.
    pub(crate) fn shadowers(&self, except: u32) -> impl Iterator<Item = (u64, u32, u64, u64)> + '_ {
        (0..self.used.len()).filter_map(move |i| {
            let used = self.used[i];
            let may =
                i != except as usize && used > 0 && self.live.get(i).copied().unwrap_or(0) < used;
            let bound = self
                .min_lsn
                .get(i)
                .copied()
                .unwrap_or(0)
                .max(self.first_high.get(i).copied().unwrap_or(0));
            let id = u32::try_from(i).ok()?;
            may.then(|| (bound, id, self.seq(id), used))
        })
    }

    /// `segment` now carries sequence `seq`.
    pub(crate) fn set_seq(&mut self, segment: u32, seq: u64) {
        *Self::slot(&mut self.seq, segment) = seq;
    }

    /// The sequence `segment` carries (0: unknown).
    pub(crate) fn seq(&self, segment: u32) -> u64 {
        self.seq.get(segment as usize).copied().unwrap_or(0)
    }

    /// Segments holding records, with their used and live bytes.
    pub(crate) fn in_use(&self) -> impl Iterator<Item = (u32, u64, u64)> + '_ {
        self.used.iter().enumerate().filter(|(_, used)| **used > 0).map(|(i, &used)| {
            let id = u32::try_from(i).unwrap_or(u32::MAX);
            (id, used, self.live.get(i).copied().unwrap_or(0))
        })
    }

    /// Used and live bytes of `segment`.
    #[cfg(test)]
    pub(crate) fn of(&self, segment: u32) -> (u64, u64) {
        let i = segment as usize;
        (self.used.get(i).copied().unwrap_or(0), self.live.get(i).copied().unwrap_or(0))
    }

    /// Live bytes of every segment.
    pub(crate) fn live_total(&self) -> u64 {
        self.live.iter().sum()
    }

    /// Used bytes of every segment.
    pub(crate) fn used_total(&self) -> u64 {
        self.used.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounting_follows_puts_overwrites_and_reclaim() {
        let mut space = SpaceMap::default();
        space.use_bytes(2, 100);
        space.add_live(2, 100);
        space.use_bytes(2, 60);
        space.add_live(2, 60);
        space.remove_live(2, 100);
        assert_eq!(space.of(2), (160, 60));
        assert_eq!((space.used_total(), space.live_total()), (160, 60));
        space.clear_live();
        assert_eq!(space.of(2), (160, 0));
        space.note_lsn(2, 7);
        space.use_bytes(3, 10);
        space.note_lsn(3, 9);
        assert!(space.older_elsewhere(3, 8) && !space.older_elsewhere(2, 8));
        space.reclaim(2);
        assert_eq!(space.of(2), (0, 0));
        assert!(!space.older_elsewhere(3, 8));
        assert_eq!(space.of(9), (0, 0));
    }

    /// A segment that received its first record after a tombstone was issued never holds an
    /// older record of its key, even when compaction moved old LSNs into it; a recovered
    /// segment (LSN 0 noted) may hold anything.
    #[test]
    fn a_segment_started_after_a_tombstone_does_not_keep_it() {
        let mut space = SpaceMap::default();
        // Segment 0: puts 1..=10. Segment 1: tombstones 11..=15.
        space.use_bytes(0, 100);
        (1..=10).for_each(|lsn| space.note_lsn(0, lsn));
        space.use_bytes(1, 50);
        (11..=15).for_each(|lsn| space.note_lsn(1, lsn));
        // Segment 0 holds older records: every tombstone in 1 is kept.
        assert!((11..=15).all(|t| space.older_elsewhere(1, t)));
        // Compaction moves puts 2, 4, 6 (old LSNs) into segment 2, then reclaims 0.
        space.use_bytes(2, 30);
        [2, 4, 6].into_iter().for_each(|lsn| space.note_lsn(2, lsn));
        assert!(space.older_elsewhere(1, 11), "segment 0 is still there");
        space.reclaim(0);
        assert!((11..=15).all(|t| !space.older_elsewhere(1, t)), "segment 2 began after 15");
        // Segment 1's own older tombstones never keep its later ones from the victim's view;
        // from another victim's, a segment begun before the tombstone does.
        space.use_bytes(3, 10);
        space.note_lsn(3, 16);
        assert!(space.older_elsewhere(3, 17), "segment 1 began before 17 and holds 11..=15");
        assert!(!space.older_elsewhere(3, 11), "nothing in 1 or 2 is older than 11");
        // A fresh record after 15 into segment 2 does not move its start back.
        space.note_lsn(2, 17);
        assert!(!space.older_elsewhere(1, 12));
        // Recovered segments (LSN 0 at open) keep every tombstone elsewhere.
        let mut recovered = SpaceMap::default();
        recovered.set_used(0, 10);
        recovered.note_lsn(0, 0);
        recovered.use_bytes(1, 10);
        recovered.note_lsn(1, 5);
        assert!(recovered.older_elsewhere(1, 5));
        // ... unless every byte of it is live (nothing in it is shadowed).
        recovered.add_live(0, 10);
        assert!(!recovered.older_elsewhere(1, 5));
        recovered.remove_live(0, 1);
        assert!(recovered.older_elsewhere(1, 5));
        recovered.reclaim(0);
        assert!(!recovered.older_elsewhere(1, 5));
    }
}
