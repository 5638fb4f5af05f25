//! The global ring of asynchronous poison notices (`BUS_MCEERR_AO`): the signal handler pushes
//! `(addr, lsb)`, normal code drains it later.
//!
//! A bounded multi-producer queue of fixed capacity with a sequence stamp per slot; atomics only,
//! so a push is safe inside a signal handler on any thread. INVARIANT: a push never blocks and
//! never waits for the consumer; when the ring is full the notice is dropped and counted.

use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};

use crate::limits::AO_RING_CAPACITY;

struct Slot {
    /// The slot's sequence number minus its index (so all-zero is the initial state): equal to
    /// the position for a writer when free, to position + 1 for a reader when full.
    stamp: AtomicUsize,
    addr: AtomicUsize,
    lsb: AtomicU8,
}

impl Slot {
    const fn empty() -> Slot {
        Slot { stamp: AtomicUsize::new(0), addr: AtomicUsize::new(0), lsb: AtomicU8::new(0) }
    }
}

/// A fixed-capacity lock-free ring of `(addr, lsb)` notices.
pub(crate) struct AoRing<const N: usize> {
    slots: [Slot; N],
    head: AtomicUsize,
    tail: AtomicUsize,
    overflow: AtomicU64,
}

/// The process-wide ring the SIGBUS handler pushes into.
pub(crate) static AO_RING: AoRing<AO_RING_CAPACITY> = AoRing::new();

impl<const N: usize> AoRing<N> {
    /// An empty ring.
    pub(crate) const fn new() -> Self {
        Self {
            slots: [const { Slot::empty() }; N],
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            overflow: AtomicU64::new(0),
        }
    }

    fn sequence(&self, index: usize) -> usize {
        self.slots[index].stamp.load(Ordering::Acquire).wrapping_add(index)
    }

    /// Append a notice; async-signal-safe. Returns `false` (and counts it) when full.
    pub(crate) fn push(&self, addr: usize, lsb: u8) -> bool {
        let mut pos = self.tail.load(Ordering::Relaxed);
        loop {
            let index = pos % N;
            let lag = self.sequence(index).wrapping_sub(pos) as isize;
            if lag == 0 {
                match self.tail.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let slot = &self.slots[index];
                        slot.addr.store(addr, Ordering::Relaxed);
                        slot.lsb.store(lsb, Ordering::Relaxed);
                        // INVARIANT: the Release publishes addr and lsb to the reader's Acquire.
                        slot.stamp
                            .store(pos.wrapping_add(1).wrapping_sub(index), Ordering::Release);
                        return true;
                    }
                    Err(now) => pos = now,
                }
            } else if lag < 0 {
                self.overflow.fetch_add(1, Ordering::Relaxed);
                return false;
            } else {
                pos = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Take the oldest notice, if one is complete.
    pub(crate) fn pop(&self) -> Option<(usize, u8)> {
        let mut pos = self.head.load(Ordering::Relaxed);
        loop {
            let index = pos % N;
            let lag = self.sequence(index).wrapping_sub(pos.wrapping_add(1)) as isize;
            if lag == 0 {
                match self.head.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let slot = &self.slots[index];
                        let notice =
                            (slot.addr.load(Ordering::Relaxed), slot.lsb.load(Ordering::Relaxed));
                        let next = pos.wrapping_add(N).wrapping_sub(index);
                        slot.stamp.store(next, Ordering::Release);
                        return Some(notice);
                    }
                    Err(now) => pos = now,
                }
            } else if lag < 0 {
                return None;
            } else {
                pos = self.head.load(Ordering::Relaxed);
            }
        }
    }

    /// Notices dropped because the ring was full, since the process started.
    pub(crate) fn overflow_count(&self) -> u64 {
        self.overflow.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_order_and_overflow_count() {
        let ring = AoRing::<4>::new();
        assert_eq!(ring.pop(), None);
        for i in 0..4 {
            assert!(ring.push(0x1000 * (i + 1), i as u8));
        }
        assert!(!ring.push(0x9000, 9));
        assert!(!ring.push(0xa000, 9));
        assert_eq!(ring.overflow_count(), 2);
        for i in 0..4 {
            assert_eq!(ring.pop(), Some((0x1000 * (i + 1), i as u8)));
        }
        assert_eq!(ring.pop(), None);
        // Wraps around many laps.
        for lap in 0..10usize {
            assert!(ring.push(lap, 1));
            assert!(ring.push(lap + 100, 2));
            assert_eq!(ring.pop(), Some((lap, 1)));
            assert_eq!(ring.pop(), Some((lap + 100, 2)));
        }
        assert_eq!(ring.overflow_count(), 2);
    }

    #[test]
    fn concurrent_producers_lose_nothing_that_fit() {
        let ring = AoRing::<1024>::new();
        std::thread::scope(|s| {
            for t in 0..4usize {
                let ring = &ring;
                s.spawn(move || {
                    for i in 0..200usize {
                        assert!(ring.push(t * 1000 + i, t as u8));
                    }
                });
            }
        });
        let mut seen = Vec::new();
        while let Some((addr, lsb)) = ring.pop() {
            assert_eq!(addr / 1000, lsb as usize);
            seen.push(addr);
        }
        seen.sort_unstable();
        let expected: Vec<usize> =
            (0..4).flat_map(|t| (0..200).map(move |i| t * 1000 + i)).collect();
        assert_eq!(seen, expected);
        assert_eq!(ring.overflow_count(), 0);
    }
}
