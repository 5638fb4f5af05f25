//! Pending stores of a [`super::SimMedium`]: aligned 8-byte words queued in issue order per
//! 64-byte line, each either flushed or not yet.
//!
//! INVARIANT: in every line queue the flushed words form a prefix (a flush marks every word
//! issued before it; later stores are appended unflushed), and `flushed_lines` lists exactly
//! the lines whose flushed prefix is non-empty. `word_count` is the sum of the queue lengths.

use std::collections::BTreeMap;

use crate::limits::CACHE_LINE;

/// Bytes per simulated store unit.
pub(super) const WORD: u64 = 8;

/// One queued store: the bytes a write put into one aligned word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PendingWord {
    /// Offset of the aligned word in the medium.
    pub(super) offset: u64,
    /// The word's bytes as stored (only those in `mask` were written by this store).
    pub(super) bytes: [u8; 8],
    /// Bit `i` set: byte `offset + i` was written by this store. Always a contiguous run.
    pub(super) mask: u8,
}

impl PendingWord {
    /// First byte this store wrote.
    pub(super) fn first_byte(&self) -> u64 {
        self.offset + u64::from(self.mask.trailing_zeros())
    }

    /// One past the last byte this store wrote.
    pub(super) fn end_byte(&self) -> u64 {
        self.offset + WORD - u64::from(self.mask.leading_zeros())
    }

    /// Make this store's bytes land in `target` (a whole-medium buffer).
    pub(super) fn apply(&self, target: &mut [u8]) {
        let start = self.offset as usize;
        if self.mask == u8::MAX {
            target[start..start + 8].copy_from_slice(&self.bytes);
            return;
        }
        for (i, byte) in self.bytes.iter().enumerate() {
            if self.mask & (1 << i) != 0 {
                target[start + i] = *byte;
            }
        }
    }
}

/// The pending stores of one line, oldest first.
#[derive(Clone, Debug, Default)]
pub(super) struct LineQueue {
    pub(super) words: Vec<PendingWord>,
    /// Length of the flushed prefix of `words`.
    pub(super) flushed: usize,
}

/// Every pending store of the medium.
#[derive(Clone, Debug, Default)]
pub(super) struct Pending {
    lines: BTreeMap<u64, LineQueue>,
    flushed_lines: Vec<u64>,
    word_count: usize,
}

/// Index of the line holding byte `offset`.
pub(super) fn line_of(offset: u64) -> u64 {
    offset / CACHE_LINE
}

impl Pending {
    /// Queue the words a write of `data` at `offset` stores (bounds already checked).
    pub(super) fn push_write(&mut self, offset: u64, data: &[u8]) {
        let end = offset + data.len() as u64;
        let mut word = offset & !(WORD - 1);
        while word < end {
            let line = line_of(word);
            let line_end = (line + 1) * CACHE_LINE;
            let queue = self.lines.entry(line).or_default();
            while word < end && word < line_end {
                let lo = word.max(offset);
                let hi = (word + WORD).min(end);
                let mut bytes = [0u8; 8];
                let src = &data[(lo - offset) as usize..(hi - offset) as usize];
                bytes[(lo - word) as usize..(hi - word) as usize].copy_from_slice(src);
                let mask = (((1u16 << (hi - lo)) - 1) << (lo - word)) as u8;
                queue.words.push(PendingWord { offset: word, bytes, mask });
                self.word_count += 1;
                word += WORD;
            }
        }
    }

    /// Mark every store issued so far to lines `first..=last` as flushed.
    pub(super) fn flush(&mut self, first: u64, last: u64) {
        for (line, queue) in self.lines.range_mut(first..=last) {
            if queue.flushed == 0 && !queue.words.is_empty() {
                self.flushed_lines.push(*line);
            }
            queue.flushed = queue.words.len();
        }
    }

    /// Apply every flushed store to `persistent`, in order, and forget it.
    pub(super) fn fence(&mut self, persistent: &mut [u8]) {
        for line in self.flushed_lines.drain(..) {
            let Some(queue) = self.lines.get_mut(&line) else { continue };
            for word in queue.words.drain(..queue.flushed) {
                word.apply(persistent);
            }
            self.word_count -= queue.flushed;
            queue.flushed = 0;
            if queue.words.is_empty() {
                self.lines.remove(&line);
            }
        }
    }

    /// Forget the pending stores of lines `first..=last` (their bytes were destroyed).
    pub(super) fn discard(&mut self, first: u64, last: u64) {
        let doomed: Vec<u64> = self.lines.range(first..=last).map(|(line, _)| *line).collect();
        for line in &doomed {
            if let Some(queue) = self.lines.remove(line) {
                self.word_count -= queue.words.len();
            }
        }
        self.flushed_lines.retain(|line| !(first..=last).contains(line));
    }

    /// The first pending store that wrote a byte of `[offset, end)`, and how many did.
    pub(super) fn overlapping(&self, offset: u64, end: u64) -> Option<(u64, usize)> {
        if offset >= end {
            return None;
        }
        let mut first: Option<u64> = None;
        let mut count = 0;
        for (_, queue) in self.lines.range(line_of(offset)..=line_of(end - 1)) {
            for word in &queue.words {
                if word.first_byte() < end && word.end_byte() > offset {
                    let start = word.first_byte().max(offset);
                    first = Some(first.map_or(start, |f| f.min(start)));
                    count += 1;
                }
            }
        }
        first.map(|f| (f, count))
    }

    /// Pending words in all lines.
    pub(super) fn word_count(&self) -> usize {
        self.word_count
    }

    /// Lines with at least one pending word.
    pub(super) fn line_count(&self) -> usize {
        self.lines.len()
    }

    /// The queues of the lines with pending words, in line order.
    pub(super) fn queues(&self) -> impl Iterator<Item = &LineQueue> {
        self.lines.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_splits_into_words_with_exact_masks() {
        let mut pending = Pending::default();
        pending.push_write(5, &[1, 2, 3, 4, 5, 6]);
        let words: Vec<PendingWord> = pending.queues().flat_map(|q| q.words.clone()).collect();
        assert_eq!(
            words,
            vec![
                PendingWord { offset: 0, bytes: [0, 0, 0, 0, 0, 1, 2, 3], mask: 0b1110_0000 },
                PendingWord { offset: 8, bytes: [4, 5, 6, 0, 0, 0, 0, 0], mask: 0b0000_0111 },
            ]
        );
        assert_eq!(words[0].first_byte(), 5);
        assert_eq!(words[1].end_byte(), 11);
    }

    #[test]
    fn a_write_across_lines_lands_in_each_line_queue() {
        let mut pending = Pending::default();
        pending.push_write(60, &[7; 8]);
        assert_eq!(pending.line_count(), 2);
        assert_eq!(pending.word_count(), 2);
    }

    #[test]
    fn fence_applies_only_the_flushed_prefix() {
        let mut pending = Pending::default();
        let mut persistent = vec![0u8; 128];
        pending.push_write(0, &[1; 8]);
        pending.flush(0, 1);
        pending.push_write(0, &[2; 8]);
        pending.push_write(64, &[3; 8]);
        pending.fence(&mut persistent);
        assert_eq!(&persistent[..8], &[1; 8]);
        assert_eq!(&persistent[64..72], &[0; 8]);
        assert_eq!(pending.word_count(), 2);
        assert_eq!(pending.line_count(), 2);
    }

    #[test]
    fn discard_forgets_lines_and_their_flush_marks() {
        let mut pending = Pending::default();
        let mut persistent = vec![0u8; 192];
        pending.push_write(0, &[1; 192]);
        pending.flush(0, 2);
        pending.discard(1, 1);
        assert_eq!(pending.word_count(), 16);
        pending.fence(&mut persistent);
        assert_eq!(&persistent[..64], &[1; 64]);
        assert_eq!(&persistent[64..128], &[0; 64]);
        assert_eq!(pending.word_count(), 0);
    }

    #[test]
    fn overlapping_is_byte_exact() {
        let mut pending = Pending::default();
        pending.push_write(2, &[9; 2]);
        assert_eq!(pending.overlapping(0, 2), None);
        assert_eq!(pending.overlapping(4, 8), None);
        assert_eq!(pending.overlapping(3, 8), Some((3, 1)));
    }
}
