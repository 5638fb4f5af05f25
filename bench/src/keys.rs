//! Keys, values and the random numbers the workloads draw: 16-byte keys that are unique by
//! construction, value bytes from one incompressible pool, and a small seeded generator.
//!
//! INVARIANT: `key(i)` is a bijection of `i` (its last 8 bytes are `i` itself), so a workload that
//! inserts `0..n` inserts `n` distinct keys in an order unrelated to their sort order.

/// Bytes in every key.
pub const KEY_BYTES: usize = 16;
/// A key.
pub type Key = [u8; KEY_BYTES];

/// SplitMix64's finaliser: a bijective mix of a 64-bit integer.
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The key of item `i`: a scrambled prefix (so consecutive items land far apart in key order)
/// followed by `i`.
pub fn key(i: u64) -> Key {
    let mut k = [0u8; KEY_BYTES];
    k[..8].copy_from_slice(&mix64(i).to_be_bytes());
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

/// A seeded pseudo-random generator (SplitMix64 sequence): fast, reproducible, not cryptographic.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.state)
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-shift (bias below 2^-32 for the sizes used here).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Incompressible bytes from which every value is sliced.
#[derive(Debug)]
pub struct ValuePool {
    bytes: Vec<u8>,
}

impl ValuePool {
    /// A pool able to serve values up to `max_value_bytes` long.
    pub fn new(max_value_bytes: usize) -> Self {
        let len = max_value_bytes + (1 << 20);
        let mut rng = Rng::new(0x005e_ed0f_7a1e);
        let mut bytes = Vec::with_capacity(len + 8);
        while bytes.len() < len {
            bytes.extend_from_slice(&rng.next_u64().to_le_bytes());
        }
        Self { bytes }
    }

    /// The value of item `i`, `len` bytes (`len` at most the pool's maximum).
    pub fn value(&self, i: u64, len: usize) -> &[u8] {
        let span = self.bytes.len() - len;
        let start = (mix64(i ^ 0xa5a5) as usize % span) & !7;
        &self.bytes[start..start + len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn keys_are_distinct_and_unordered() {
        let keys: Vec<Key> = (0..10_000).map(key).collect();
        let set: HashSet<Key> = keys.iter().copied().collect();
        assert_eq!(set.len(), keys.len());
        let ascending = keys.windows(2).filter(|w| w[0] < w[1]).count();
        assert!(ascending > 4000 && ascending < 6000, "insertion order is not key order");
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = Rng::new(7);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            let x = rng.below(10);
            assert!(x < 10);
            seen[x as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        let u = rng.unit();
        assert!((0.0..1.0).contains(&u));
    }

    #[test]
    fn values_have_the_asked_length_and_differ() {
        let pool = ValuePool::new(4096);
        assert_eq!(pool.value(3, 100).len(), 100);
        assert_eq!(pool.value(3, 4096).len(), 4096);
        assert_ne!(pool.value(1, 100), pool.value(2, 100));
    }
}
