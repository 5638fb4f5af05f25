//! Simulated poison: a set of poisoned 64-byte lines, and the read path that honours it.
//!
//! A read through [`read_through`] behaves as the mapped medium's machine-check-safe copy, at
//! cache-line units: each poisoned line it meets is recorded in the caller's register as
//! `Fault { offset: line_start, len: 64, code: Simulated }` (adjacent lines coalesce in the
//! register), the destination is zero-filled over the intersection, and the copy carries on —
//! or, with `Mask::Immediate`, stops at the first one and zero-fills the rest.

use std::collections::BTreeSet;
use std::ops::Range;

use crate::limits::CACHE_LINE;
use crate::medium::MemberId;
use crate::register::{Domain, ErrorRegister, Fault, FaultCode, Mask};

/// Byte written over poisoned lines: real poison loses the data, so must the simulation.
pub(super) const POISON_PATTERN: u8 = 0xA5;

/// The poisoned lines of one medium, by line index.
#[derive(Clone, Debug, Default)]
pub(super) struct PoisonSet {
    lines: BTreeSet<u64>,
}

impl PoisonSet {
    /// Poison lines `first..=last`.
    pub(super) fn insert(&mut self, first: u64, last: u64) {
        self.lines.extend(first..=last);
    }

    /// Clear lines `first..=last`.
    pub(super) fn remove(&mut self, first: u64, last: u64) {
        let cleared: Vec<u64> = self.lines.range(first..=last).copied().collect();
        for line in cleared {
            self.lines.remove(&line);
        }
    }

    /// The first poisoned line among `first..=last`.
    pub(super) fn first_in(&self, first: u64, last: u64) -> Option<u64> {
        self.lines.range(first..=last).next().copied()
    }

    /// Poisoned byte ranges, coalesced, in offset order.
    pub(super) fn ranges(&self) -> Vec<Range<u64>> {
        let mut ranges: Vec<Range<u64>> = Vec::new();
        for line in &self.lines {
            let start = line * CACHE_LINE;
            match ranges.last_mut() {
                Some(last) if last.end == start => last.end += CACHE_LINE,
                _ => ranges.push(start..start + CACHE_LINE),
            }
        }
        ranges
    }

    /// Whether no line is poisoned.
    pub(super) fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// Copy `[offset, offset + dst.len())` of `visible` into `dst`, honouring `poison` (bounds
/// already checked, `dst` non-empty).
pub(super) fn read_through(
    visible: &[u8],
    poison: &PoisonSet,
    offset: u64,
    dst: &mut [u8],
    register: &mut ErrorRegister,
    fault_of: (MemberId, Domain),
) {
    let end = offset + dst.len() as u64;
    let src = |from: u64, to: u64| &visible[from as usize..to as usize];
    let mut cursor = offset;
    for line in poison.lines.range(offset / CACHE_LINE..=(end - 1) / CACHE_LINE) {
        let line_start = line * CACHE_LINE;
        let hole_start = line_start.max(offset);
        let hole_end = (line_start + CACHE_LINE).min(end);
        let at = |byte: u64| (byte - offset) as usize;
        dst[at(cursor)..at(hole_start)].copy_from_slice(src(cursor, hole_start));
        dst[at(hole_start)..at(hole_end)].fill(0);
        register.record(Fault {
            member: fault_of.0,
            offset: line_start,
            len: CACHE_LINE,
            domain: fault_of.1,
            code: FaultCode::Simulated,
        });
        cursor = hole_end;
        if register.mask() == Mask::Immediate {
            dst[at(cursor)..].fill(0);
            return;
        }
    }
    let start = (cursor - offset) as usize;
    dst[start..].copy_from_slice(src(cursor, end));
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHO: (MemberId, Domain) = (MemberId(2), Domain::Engine);

    fn fault(offset: u64, len: u64) -> Fault {
        Fault {
            member: MemberId(2),
            offset,
            len,
            domain: Domain::Engine,
            code: FaultCode::Simulated,
        }
    }

    fn visible() -> Vec<u8> {
        (0..512u64).map(|i| (i % 251) as u8 + 1).collect()
    }

    #[test]
    fn deferred_read_records_every_line_and_zero_fills_the_intersection() {
        let mut poison = PoisonSet::default();
        poison.insert(1, 1);
        poison.insert(3, 4);
        let visible = visible();
        let mut dst = vec![0xEE; 300];
        let mut register = ErrorRegister::deferred();
        read_through(&visible, &poison, 100, &mut dst, &mut register, WHO);
        assert_eq!(register.faults(), &[fault(64, 64), fault(192, 128)]);
        for (i, byte) in dst.iter().enumerate() {
            let at = 100 + i;
            let poisoned = (100..128).contains(&at) || (192..320).contains(&at);
            assert_eq!(*byte, if poisoned { 0 } else { visible[at] }, "byte {at}");
        }
    }

    #[test]
    fn immediate_read_stops_at_the_first_line() {
        let mut poison = PoisonSet::default();
        poison.insert(2, 2);
        poison.insert(5, 5);
        let visible = visible();
        let mut dst = vec![0xEE; 400];
        let mut register = ErrorRegister::immediate();
        read_through(&visible, &poison, 10, &mut dst, &mut register, WHO);
        assert_eq!(register.faults(), &[fault(128, 64)]);
        assert_eq!(&dst[..118], &visible[10..128]);
        assert!(dst[118..].iter().all(|b| *b == 0));
    }

    #[test]
    fn ranges_coalesce_and_clear() {
        let mut poison = PoisonSet::default();
        poison.insert(1, 2);
        poison.insert(3, 3);
        poison.insert(7, 7);
        assert_eq!(poison.ranges(), vec![64..256, 448..512]);
        poison.remove(2, 7);
        assert_eq!(poison.ranges(), vec![64..128]);
        assert_eq!(poison.first_in(0, 9), Some(1));
        poison.remove(0, 9);
        assert!(poison.is_empty());
    }
}
