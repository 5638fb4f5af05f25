//! `RangeSet`: a coalesced set of byte ranges (poisoned pages, bad blocks).
//!
//! INVARIANT: spans are half-open `[start, end)`, non-empty, sorted, and neither overlap nor
//! touch (adjacent spans are merged), so each span is one mapping and the list is minimal.

/// A coalesced set of half-open byte ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct RangeSet {
    spans: Vec<(u64, u64)>,
}

impl RangeSet {
    /// Whether the set is empty.
    pub(super) fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Add `[start, end)`; returns the coalesced span that now contains it.
    pub(super) fn insert(&mut self, start: u64, end: u64) -> (u64, u64) {
        assert!(start < end, "empty range");
        // Spans that overlap or touch [start, end) are merged into one.
        let first = self.spans.partition_point(|&(_, e)| e < start);
        let last = self.spans.partition_point(|&(s, _)| s <= end);
        let merged = self.spans[first..last]
            .iter()
            .fold((start, end), |(s, e), &(a, b)| (s.min(a), e.max(b)));
        self.spans.splice(first..last, [merged]);
        merged
    }

    /// Remove `[start, end)`; returns the pieces that were in the set, in order.
    pub(super) fn remove(&mut self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let removed = self.intersections(start, end);
        if removed.is_empty() {
            return removed;
        }
        let first = self.spans.partition_point(|&(_, e)| e <= start);
        let last = self.spans.partition_point(|&(s, _)| s < end);
        let mut kept = Vec::with_capacity(2);
        if let Some(&(s, _)) = self.spans.get(first)
            && s < start
        {
            kept.push((s, start));
        }
        if let Some(&(_, e)) = last.checked_sub(1).and_then(|i| self.spans.get(i))
            && e > end
        {
            kept.push((end, e));
        }
        self.spans.splice(first..last, kept);
        removed
    }

    /// The parts of the set inside `[start, end)`, in order.
    pub(super) fn intersections(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let first = self.spans.partition_point(|&(_, e)| e <= start);
        self.spans[first..]
            .iter()
            .take_while(|&&(s, _)| s < end)
            .map(|&(s, e)| (s.max(start), e.min(end)))
            .collect()
    }

    /// The first part of the set inside `[start, end)`.
    pub(super) fn first_overlap(&self, start: u64, end: u64) -> Option<(u64, u64)> {
        let first = self.spans.partition_point(|&(_, e)| e <= start);
        self.spans.get(first).filter(|&&(s, _)| s < end).map(|&(s, e)| (s.max(start), e.min(end)))
    }

    /// Whether `[start, end)` (non-empty) lies wholly in the set.
    pub(super) fn covers(&self, start: u64, end: u64) -> bool {
        self.first_overlap(start, end) == Some((start, end))
    }

    /// The spans as `(offset, len)` pairs.
    pub(super) fn offset_len(&self) -> Vec<(u64, u64)> {
        self.spans.iter().map(|&(s, e)| (s, e - s)).collect()
    }
}

/// Round `[offset, offset + len)` outward to whole `unit`s; `None` on overflow.
pub(super) fn round_out(offset: u64, len: u64, unit: u64) -> Option<(u64, u64)> {
    let start = offset / unit * unit;
    let end = offset.checked_add(len)?.checked_next_multiple_of(unit)?;
    Some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_coalesces_touching_and_overlapping() {
        let mut set = RangeSet::default();
        assert_eq!(set.insert(10, 20), (10, 20));
        assert_eq!(set.insert(30, 40), (30, 40));
        assert_eq!(set.insert(20, 30), (10, 40));
        assert_eq!(set.offset_len(), vec![(10, 30)]);
        assert_eq!(set.insert(50, 60), (50, 60));
        assert_eq!(set.insert(5, 55), (5, 60));
        assert_eq!(set.offset_len(), vec![(5, 55)]);
    }

    #[test]
    fn remove_splits_and_reports_pieces() {
        let mut set = RangeSet::default();
        set.insert(0, 100);
        set.insert(200, 300);
        assert_eq!(set.remove(50, 250), vec![(50, 100), (200, 250)]);
        assert_eq!(set.offset_len(), vec![(0, 50), (250, 50)]);
        assert_eq!(set.remove(10, 20), vec![(10, 20)]);
        assert_eq!(set.offset_len(), vec![(0, 10), (20, 30), (250, 50)]);
        assert!(set.remove(100, 200).is_empty());
        assert_eq!(set.remove(0, 1000).len(), 3);
        assert!(set.is_empty());
    }

    #[test]
    fn overlap_queries() {
        let mut set = RangeSet::default();
        set.insert(4096, 8192);
        assert_eq!(set.first_overlap(0, 4096), None);
        assert_eq!(set.first_overlap(8192, 9000), None);
        assert_eq!(set.first_overlap(4000, 5000), Some((4096, 5000)));
        assert_eq!(set.intersections(0, 1 << 20), vec![(4096, 8192)]);
    }

    #[test]
    fn rounding() {
        assert_eq!(round_out(1, 1, 4096), Some((0, 4096)));
        assert_eq!(round_out(4096, 4096, 4096), Some((4096, 8192)));
        assert_eq!(round_out(4095, 2, 4096), Some((0, 8192)));
        assert_eq!(round_out(u64::MAX - 1, 2, 4096), None);
    }
}
