//! The YCSB request distributions: zipfian over `0..n` (skew θ, hot items scattered over the key
//! space by a hash) and "latest" (zipfian over recency: the newest item is the hottest).
//!
//! Sampling follows Gray et al., "Quickly Generating Billion-Record Synthetic Databases" (SIGMOD
//! 1994): with ζ(n, θ) = Σ_{i=1..n} i^-θ precomputed, one uniform draw maps to a rank in O(1).
//! Growing `n` (inserts in YCSB D) extends ζ incrementally, so the cost stays O(inserted).

use crate::keys::{Rng, mix64};

/// Zipfian ranks over `0..n`: rank 0 is the most popular.
#[derive(Clone, Debug)]
pub struct Zipfian {
    n: u64,
    theta: f64,
    alpha: f64,
    zeta_n: f64,
    zeta_2: f64,
    eta: f64,
}

fn zeta_range(from: u64, to: u64, theta: f64) -> f64 {
    (from + 1..=to).map(|i| (i as f64).powf(-theta)).sum()
}

impl Zipfian {
    /// A distribution over `0..n` (`n ≥ 2`) with skew `theta` in `(0, 1)`.
    pub fn new(n: u64, theta: f64) -> Self {
        assert!(n >= 2 && theta > 0.0 && theta < 1.0, "zipfian needs n >= 2 and 0 < theta < 1");
        let zeta_2 = zeta_range(0, 2, theta);
        let zeta_n = zeta_range(0, n, theta);
        let mut z = Self { n, theta, alpha: 1.0 / (1.0 - theta), zeta_n, zeta_2, eta: 0.0 };
        z.eta = z.compute_eta();
        z
    }

    fn compute_eta(&self) -> f64 {
        (1.0 - (2.0 / self.n as f64).powf(1.0 - self.theta)) / (1.0 - self.zeta_2 / self.zeta_n)
    }

    /// Items covered.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// Extend the distribution to `0..n` (`n` not smaller than today's).
    pub fn grow(&mut self, n: u64) {
        assert!(n >= self.n, "a zipfian distribution only grows");
        if n > self.n {
            self.zeta_n += zeta_range(self.n, n, self.theta);
            self.n = n;
            self.eta = self.compute_eta();
        }
    }

    /// A rank in `0..n`; small ranks are the most likely.
    pub fn rank(&self, rng: &mut Rng) -> u64 {
        let u = rng.unit();
        let uz = u * self.zeta_n;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1;
        }
        let r = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        r.min(self.n - 1)
    }

    /// An item in `0..n` whose popularity follows the ranks but whose position is scattered, so
    /// the hot items are not neighbours in key order (YCSB's "scrambled zipfian").
    pub fn scrambled(&self, rng: &mut Rng) -> u64 {
        mix64(self.rank(rng)) % self.n
    }

    /// An item in `0..n` where the newest (`n − 1`) is the most popular (YCSB's "latest").
    pub fn latest(&self, rng: &mut Rng) -> u64 {
        self.n - 1 - self.rank(rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_are_skewed_like_zipf() {
        let z = Zipfian::new(1000, 0.99);
        let mut rng = Rng::new(1);
        let mut counts = vec![0u32; 1000];
        for _ in 0..200_000 {
            counts[z.rank(&mut rng) as usize] += 1;
        }
        // P(rank 0) = 1/ζ(1000, 0.99) ≈ 0.13; P(rank 1) ≈ P(rank 0) / 2^0.99.
        let p0 = f64::from(counts[0]) / 200_000.0;
        assert!((p0 - 1.0 / z.zeta_n).abs() < 0.01, "p0 {p0}");
        let ratio = f64::from(counts[0]) / f64::from(counts[1]);
        assert!((1.8..2.2).contains(&ratio), "rank 0 / rank 1 = {ratio}");
        assert!(counts[0] > counts[10] && counts[10] > counts[500]);
    }

    #[test]
    fn grow_matches_a_fresh_distribution() {
        let mut grown = Zipfian::new(100, 0.99);
        grown.grow(5000);
        let fresh = Zipfian::new(5000, 0.99);
        assert!((grown.zeta_n - fresh.zeta_n).abs() < 1e-9);
        assert!((grown.eta - fresh.eta).abs() < 1e-12);
        assert_eq!(grown.len(), 5000);
    }

    #[test]
    fn latest_prefers_the_newest_and_scrambled_stays_in_range() {
        let z = Zipfian::new(10_000, 0.99);
        let mut rng = Rng::new(2);
        let newest = (0..10_000).filter(|_| z.latest(&mut rng) >= 9_990).count();
        assert!(newest > 2_000, "newest ten drawn {newest} times of 10000");
        assert!((0..10_000).all(|_| z.scrambled(&mut rng) < 10_000));
    }
}
