//! `KeySketch`: how many distinct keys a walk met, estimated as it goes (a HyperLogLog of
//! 2^11 one-byte registers over each key's XXH3-64, standard error ~2.3 %), so a caller can
//! size the index before the walk's entries are sorted and deduplicated — a log that rewrote
//! its keys many times holds many more entries than keys, and memory sized by entries would be
//! wasted. An estimate only: nothing that decides what the index holds reads it.

use crate::format::checksum::hash64;

/// Bits of a key's hash that pick its register.
const INDEX_BITS: u32 = 11;
/// Registers (2^`INDEX_BITS`).
const REGISTERS: usize = 1 << INDEX_BITS;

/// A distinct-count estimate over the keys added to it; mergeable.
#[derive(Clone)]
pub(crate) struct KeySketch {
    /// Per register, the highest rank seen (the position of the first 1 bit after the index
    /// bits, from 1; 0 = no key reached the register).
    registers: Box<[u8; REGISTERS]>,
}

impl std::fmt::Debug for KeySketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySketch").field("estimate", &self.estimate()).finish()
    }
}

impl KeySketch {
    /// A sketch that has seen no key.
    pub(crate) fn new() -> Self {
        KeySketch { registers: Box::new([0; REGISTERS]) }
    }

    /// Count `key` (again: a key added twice counts once).
    #[inline]
    pub(crate) fn add(&mut self, key: &[u8]) {
        let hash = hash64(key);
        let register = (hash >> (64 - INDEX_BITS)) as usize;
        // The bits after the index, with a guard bit so the rank stays within 64 - INDEX_BITS + 1.
        let rest = (hash << INDEX_BITS) | (1 << (INDEX_BITS - 1));
        let rank = rest.leading_zeros() as u8 + 1;
        let slot = &mut self.registers[register];
        *slot = (*slot).max(rank);
    }

    /// Count every key `other` counted.
    pub(crate) fn merge(&mut self, other: &KeySketch) {
        for (mine, theirs) in self.registers.iter_mut().zip(other.registers.iter()) {
            *mine = (*mine).max(*theirs);
        }
    }

    /// Forget every key.
    pub(crate) fn clear(&mut self) {
        self.registers.fill(0);
    }

    /// The estimated number of distinct keys added.
    pub(crate) fn estimate(&self) -> u64 {
        let m = REGISTERS as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = self.registers.iter().map(|&r| (-f64::from(r)).exp2()).sum();
        let raw = alpha * m * m / sum;
        let empty = self.registers.iter().filter(|&&r| r == 0).count();
        // Few keys: linear counting over the empty registers is the better estimate.
        let estimate = if raw <= 2.5 * m && empty > 0 { m * (m / empty as f64).ln() } else { raw };
        estimate.round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(b"user:000");
        k[8..].copy_from_slice(&i.to_be_bytes());
        k
    }

    fn within(estimate: u64, truth: u64, tolerance: f64) -> bool {
        (estimate as f64 - truth as f64).abs() <= truth as f64 * tolerance
    }

    #[test]
    fn an_empty_sketch_estimates_zero() {
        assert_eq!(KeySketch::new().estimate(), 0);
    }

    #[test]
    fn distinct_keys_are_estimated_within_a_few_percent_at_every_scale() {
        for n in [10u64, 1_000, 50_000, 400_000] {
            let mut sketch = KeySketch::new();
            (0..n).for_each(|i| sketch.add(&key(i)));
            let estimate = sketch.estimate();
            // 2.3 % standard error: 4 standard errors, or 1 key for tiny counts.
            assert!(within(estimate, n, 0.092) || estimate.abs_diff(n) <= 1, "{n}: {estimate}");
        }
    }

    #[test]
    fn repeated_keys_count_once() {
        let mut sketch = KeySketch::new();
        for _ in 0..20 {
            (0..30_000).for_each(|i| sketch.add(&key(i)));
        }
        assert!(within(sketch.estimate(), 30_000, 0.092), "{}", sketch.estimate());
    }

    #[test]
    fn merged_sketches_estimate_the_union_and_clear_forgets() {
        let (mut a, mut b) = (KeySketch::new(), KeySketch::new());
        (0..60_000).for_each(|i| a.add(&key(i)));
        (40_000..100_000).for_each(|i| b.add(&key(i)));
        a.merge(&b);
        assert!(within(a.estimate(), 100_000, 0.092), "{}", a.estimate());
        a.clear();
        assert_eq!(a.estimate(), 0);
    }
}
