//! `SpaceMap`: per segment, the data bytes used and the encoded bytes of the live records in
//! it — what compaction chooses by and `stats()` reports. Kept behind the commit lock.
//!
//! INVARIANT: `live[s] ≤ used[s]`; a put adds its record to its segment's live bytes and
//! removes the record it replaces from that one's; deletes and clears remove; tombstones and
//! clear records are used but never live.

/// Per-segment space accounting.
#[derive(Debug, Default)]
pub(crate) struct SpaceMap {
    used: Vec<u64>,
    live: Vec<u64>,
    /// Lowest LSN of any record in the segment (`u64::MAX`: none; 0: unknown, recovered).
    min_lsn: Vec<u64>,
    /// The segment's sequence (its records' checksum context).
    seq: Vec<u64>,
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
    }

    /// A record of LSN `lsn` was written to `segment` (0 at open: the segment may hold any
    /// older record).
    pub(crate) fn note_lsn(&mut self, segment: u32, lsn: u64) {
        let i = segment as usize;
        if self.min_lsn.len() <= i {
            self.min_lsn.resize(i + 1, u64::MAX);
        }
        self.min_lsn[i] = self.min_lsn[i].min(lsn);
    }

    /// Whether any segment other than `except` may hold a record older than `lsn` (then a
    /// tombstone or clear of that LSN in `except` must be kept).
    pub(crate) fn older_elsewhere(&self, except: u32, lsn: u64) -> bool {
        self.min_lsn.iter().enumerate().any(|(i, &min)| {
            i != except as usize && min < lsn && self.used.get(i).copied().unwrap_or(0) > 0
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
}
