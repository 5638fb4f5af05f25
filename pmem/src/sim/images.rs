//! Crash images: the byte contents a power loss could leave, from a snapshot of the persistent
//! bytes and the pending stores.
//!
//! Two modes ([`CrashMode`]); the number of images is the test oracle: Π(nᵢ+1) per-line prefixes
//! and 2^Σnᵢ subsets (nᵢ = pending words of line i, saturating). Enumeration is exhaustive when
//! that count fits the caller's limit, else sampled reproducibly from a seed with a SplitMix64
//! generator. INVARIANT: an image never builds per-byte over the medium per pending word: it is
//! one clone of the persistent bytes plus the chosen words applied on top.

use super::lines::{Pending, PendingWord};

/// How a simulated power loss treats the stores that were not yet persistent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CrashMode {
    /// Each line keeps a prefix of its pending stores, flushed or not (TSO write-back order).
    PerLinePrefix,
    /// Any subset of the pending words persists (non-temporal and fast-string stores).
    AnySubset,
}

/// Images a power loss could leave, given the pending word count of each line (saturating).
pub(super) fn image_count(mode: CrashMode, line_words: impl Iterator<Item = usize>) -> u128 {
    match mode {
        CrashMode::PerLinePrefix => {
            line_words.fold(1u128, |acc, words| acc.saturating_mul(words as u128 + 1))
        }
        CrashMode::AnySubset => {
            let words: usize = line_words.sum();
            if words >= 128 { u128::MAX } else { 1u128 << words }
        }
    }
}

/// SplitMix64: a small, fast, well-mixed generator; reproducible from its seed.
#[derive(Clone, Debug)]
pub(super) struct SplitMix64(u64);

impl SplitMix64 {
    pub(super) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound > 0`), by multiply-shift.
    pub(super) fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

/// The persistent bytes and the pending stores at one moment, detached from the medium.
#[derive(Clone, Debug)]
pub(super) struct Snapshot {
    base: Vec<u8>,
    lines: Vec<Vec<PendingWord>>,
}

impl Snapshot {
    pub(super) fn new(persistent: &[u8], pending: &Pending) -> Self {
        Self {
            base: persistent.to_vec(),
            lines: pending.queues().map(|queue| queue.words.clone()).collect(),
        }
    }

    fn count(&self, mode: CrashMode) -> u128 {
        image_count(mode, self.lines.iter().map(Vec::len))
    }

    /// The image numbered `index` in `0..count(mode)` (mixed radix for prefixes, a bit set for
    /// subsets, lines in offset order and words in issue order).
    fn image_at(&self, mode: CrashMode, mut index: u128) -> Vec<u8> {
        let mut image = self.base.clone();
        match mode {
            CrashMode::PerLinePrefix => {
                for words in &self.lines {
                    let radix = words.len() as u128 + 1;
                    let keep = (index % radix) as usize;
                    index /= radix;
                    words[..keep].iter().for_each(|word| word.apply(&mut image));
                }
            }
            CrashMode::AnySubset => {
                for word in self.lines.iter().flatten() {
                    if index & 1 == 1 {
                        word.apply(&mut image);
                    }
                    index >>= 1;
                }
            }
        }
        image
    }

    /// One image drawn from `rng`: a uniform prefix length per line, or a fair coin per word.
    fn sample(&self, mode: CrashMode, rng: &mut SplitMix64) -> Vec<u8> {
        let mut image = self.base.clone();
        for words in &self.lines {
            match mode {
                CrashMode::PerLinePrefix => {
                    let keep = rng.below(words.len() as u64 + 1) as usize;
                    words[..keep].iter().for_each(|word| word.apply(&mut image));
                }
                CrashMode::AnySubset => {
                    for word in words {
                        if rng.next_u64() & 1 == 1 {
                            word.apply(&mut image);
                        }
                    }
                }
            }
        }
        image
    }

    /// The image in which every pending store persisted.
    fn everything(&self) -> Vec<u8> {
        let mut image = self.base.clone();
        self.lines.iter().flatten().for_each(|word| word.apply(&mut image));
        image
    }

    /// One sampled image from `seed`.
    pub(super) fn image_from_seed(&self, mode: CrashMode, seed: u64) -> Vec<u8> {
        self.sample(mode, &mut SplitMix64::new(seed))
    }
}

#[derive(Clone, Debug)]
enum Order {
    Exhaustive { next: u128 },
    Sampled { rng: SplitMix64, emitted: usize },
}

/// Iterator over crash images of a [`super::SimMedium`]; owns its snapshot, so the medium may
/// go on (or be dropped) meanwhile.
///
/// Exhaustive (every image exactly once, in a fixed order) when the image count is at most the
/// limit. Otherwise `limit` samples reproducible from the seed: first the image where no pending
/// store persisted, then the one where all did, then random draws (which may repeat).
#[derive(Clone, Debug)]
pub struct CrashImages {
    snapshot: Snapshot,
    mode: CrashMode,
    order: Order,
    total: u128,
    remaining: usize,
}

impl CrashImages {
    pub(super) fn new(snapshot: Snapshot, mode: CrashMode, limit: usize, seed: u64) -> Self {
        let total = snapshot.count(mode);
        let (order, remaining) = if total <= limit as u128 {
            (Order::Exhaustive { next: 0 }, total as usize)
        } else {
            (Order::Sampled { rng: SplitMix64::new(seed), emitted: 0 }, limit)
        };
        Self { snapshot, mode, order, total, remaining }
    }

    /// Whether every possible image is yielded (else a sample).
    pub fn is_exhaustive(&self) -> bool {
        matches!(self.order, Order::Exhaustive { .. })
    }

    /// How many distinct crash outcomes the mode allows (saturating): the count formula.
    pub fn image_count(&self) -> u128 {
        self.total
    }

    /// The crash mode.
    pub fn mode(&self) -> CrashMode {
        self.mode
    }
}

impl Iterator for CrashImages {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        Some(match &mut self.order {
            Order::Exhaustive { next } => {
                let image = self.snapshot.image_at(self.mode, *next);
                *next += 1;
                image
            }
            Order::Sampled { rng, emitted } => {
                *emitted += 1;
                match *emitted {
                    1 => self.snapshot.base.clone(),
                    2 => self.snapshot.everything(),
                    _ => self.snapshot.sample(self.mode, rng),
                }
            }
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for CrashImages {}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;
    use crate::medium::{FenceSite, Medium};
    use crate::sim::SimMedium;
    use crate::sim::medium::tests::config;

    const SITE: FenceSite = FenceSite("test.images");
    const MODES: [CrashMode; 2] = [CrashMode::PerLinePrefix, CrashMode::AnySubset];

    #[test]
    fn splitmix_is_reproducible_and_bounded() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut seen = [false; 5];
        for _ in 0..200 {
            seen[a.below(5) as usize] = true;
        }
        assert_eq!(seen, [true; 5]);
        assert_ne!(SplitMix64::new(1).next_u64(), SplitMix64::new(2).next_u64());
    }

    #[test]
    fn counts_saturate() {
        let mut pending = Pending::default();
        pending.push_write(0, &vec![1u8; 64 * 200]);
        let lens = || pending.queues().map(|queue| queue.words.len());
        assert_eq!(image_count(CrashMode::AnySubset, lens()), u128::MAX);
        assert_eq!(image_count(CrashMode::PerLinePrefix, lens()), u128::MAX);
        let snapshot = Snapshot::new(&vec![0u8; 64 * 200], &pending);
        assert_eq!(snapshot.count(CrashMode::AnySubset), u128::MAX);
    }

    #[test]
    fn sampled_iterator_starts_with_the_extremes() {
        let mut pending = Pending::default();
        pending.push_write(0, &[9u8; 64 * 4]);
        let snapshot = Snapshot::new(&[0u8; 256], &pending);
        let images: Vec<Vec<u8>> = CrashImages::new(snapshot, CrashMode::AnySubset, 5, 7).collect();
        assert_eq!(images.len(), 5);
        assert_eq!(images[0], vec![0u8; 256]);
        assert_eq!(images[1], vec![9u8; 256]);
    }

    #[test]
    fn exhaustive_images_are_distinct_and_as_many_as_the_formula() {
        let medium = SimMedium::new(256);
        medium.store_u64(0, 1).unwrap();
        medium.store_u64(8, 2).unwrap();
        medium.store_u64(64, 3).unwrap();
        medium.flush(0, 128).unwrap();
        medium.store_u64(128, 4).unwrap();
        medium.store_u64(136, 5).unwrap();
        medium.store_u64(144, 6).unwrap();
        assert_eq!(medium.pending_lines(), 3);
        assert_eq!(medium.image_count(CrashMode::PerLinePrefix), 3 * 2 * 4);
        assert_eq!(medium.image_count(CrashMode::AnySubset), 1 << 6);
        for mode in MODES {
            let images = medium.crash_images(mode, 4096, 0);
            assert!(images.is_exhaustive());
            assert_eq!(images.len() as u128, medium.image_count(mode));
            let count = images.len();
            let distinct: HashSet<Vec<u8>> = images.collect();
            assert_eq!(distinct.len(), count);
        }
        // Rewriting a word within a line: prefixes stay distinct (A, AB, then C over A).
        let medium = SimMedium::new(64);
        medium.store_u64(0, 1).unwrap();
        medium.store_u64(8, 2).unwrap();
        medium.store_u64(0, 3).unwrap();
        let distinct: HashSet<Vec<u8>> =
            medium.crash_images(CrashMode::PerLinePrefix, 4096, 0).collect();
        assert_eq!(distinct.len(), 4);
        assert!(
            !distinct
                .iter()
                .any(|image| image[..16] == [[3, 0, 0, 0, 0, 0, 0, 0], [0; 8]].concat())
        );
    }

    #[test]
    fn sampling_is_reproducible_and_used_beyond_the_limit() {
        let medium = SimMedium::new(8 * 1024);
        medium.write(0, &vec![0x5A; 64 * 64]).unwrap();
        medium.flush(0, 4096).unwrap();
        for mode in MODES {
            assert_eq!(medium.crash_image(mode, 11), medium.crash_image(mode, 11));
            let seeds: HashSet<Vec<u8>> =
                (0..8).map(|seed| medium.crash_image(mode, seed)).collect();
            assert!(seeds.len() > 1);
            let images = medium.crash_images(mode, 10, 5);
            assert!(!images.is_exhaustive());
            assert_eq!(images.len(), 10);
            let again: Vec<Vec<u8>> = medium.crash_images(mode, 10, 5).collect();
            assert_eq!(images.collect::<Vec<_>>(), again);
            let other: Vec<Vec<u8>> = medium.crash_images(mode, 10, 6).collect();
            assert_ne!(again, other);
        }
        // Exactly at the limit: exhaustive.
        let small = SimMedium::new(128);
        small.store_u64(0, 1).unwrap();
        small.store_u64(64, 1).unwrap();
        assert!(small.crash_images(CrashMode::PerLinePrefix, 4, 0).is_exhaustive());
        assert!(!small.crash_images(CrashMode::PerLinePrefix, 3, 0).is_exhaustive());
    }

    #[test]
    #[cfg_attr(miri, ignore = "megabytes of images are too slow under Miri")]
    fn large_pools_yield_whole_images_built_on_the_persistent_bytes() {
        let medium = SimMedium::new(1 << 20);
        medium.write(0, &vec![1u8; 1 << 18]).unwrap();
        medium.flush(0, 1 << 17).unwrap();
        medium.fence(SITE).unwrap();
        assert_eq!(medium.pending_words(), (1 << 17) / 8);
        for mode in MODES {
            let images: Vec<Vec<u8>> = medium.crash_images(mode, 16, 3).collect();
            assert_eq!(images.len(), 16);
            assert_eq!(images[0], medium.persistent_image());
            assert_eq!(images[1], medium.visible_image());
            for image in &images[2..] {
                assert_eq!(image.len(), 1 << 20);
                assert!(image[..1 << 17].iter().all(|b| *b == 1));
                assert!(image[1 << 18..].iter().all(|b| *b == 0));
                assert!(image[1 << 17..1 << 18].contains(&1));
                assert!(image[1 << 17..1 << 18].contains(&0));
            }
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Store(u64, u8),
        Flush(u64),
        Fence,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..32u64, 1..=255u8).prop_map(|(word, value)| Op::Store(word * 8, value)),
            1 => (0..4u64).prop_map(Op::Flush),
            1 => Just(Op::Fence),
        ]
    }

    proptest! {
        #![proptest_config(config(200))]

        /// Brute force over a word-level reference: the exhaustive image set of each mode equals
        /// every per-line prefix (or every subset) of the pending stores applied to the fenced bytes.
        #[test]
        fn image_sets_equal_a_brute_force_enumeration(ops in proptest::collection::vec(op(), 1..16)) {
            let medium = SimMedium::new(256);
            let mut fenced = vec![0u8; 256];
            let mut pending: Vec<(u64, u8, bool)> = Vec::new();
            for op in ops {
                match op {
                    Op::Store(off, value) => {
                        medium.store_u64(off, u64::from(value) * 0x0101_0101_0101_0101).unwrap();
                        pending.push((off, value, false));
                    }
                    Op::Flush(line) => {
                        medium.flush(line * 64, 64).unwrap();
                        pending.iter_mut().filter(|p| p.0 / 64 == line).for_each(|p| p.2 = true);
                    }
                    Op::Fence => {
                        medium.fence(SITE).unwrap();
                        for (off, value, _) in pending.iter().filter(|p| p.2) {
                            fenced[*off as usize..*off as usize + 8].fill(*value);
                        }
                        pending.retain(|p| !p.2);
                    }
                }
            }
            let apply = |image: &mut Vec<u8>, stores: &[&(u64, u8, bool)]| {
                for (off, value, _) in stores {
                    image[*off as usize..*off as usize + 8].fill(*value);
                }
            };
            // Per-line prefixes: the cartesian product of each line's possible prefixes.
            let mut expected: HashSet<Vec<u8>> = HashSet::from([fenced.clone()]);
            let mut formula = 1u128;
            for line in 0..4u64 {
                let stores: Vec<&(u64, u8, bool)> = pending.iter().filter(|p| p.0 / 64 == line).collect();
                formula *= stores.len() as u128 + 1;
                expected = expected
                    .iter()
                    .flat_map(|image| {
                        (0..=stores.len()).map(|keep| {
                            let mut image = image.clone();
                            apply(&mut image, &stores[..keep]);
                            image
                        })
                    })
                    .collect();
            }
            prop_assert_eq!(medium.image_count(CrashMode::PerLinePrefix), formula);
            let images = medium.crash_images(CrashMode::PerLinePrefix, 1 << 16, 0);
            prop_assert!(images.is_exhaustive());
            prop_assert_eq!(images.collect::<HashSet<_>>(), expected);
            // Any subset: every subset of the pending stores, applied in issue order.
            prop_assert_eq!(medium.image_count(CrashMode::AnySubset), 1u128 << pending.len());
            let expected: HashSet<Vec<u8>> = (0..1u32 << pending.len())
                .map(|set| {
                    let mut image = fenced.clone();
                    let chosen: Vec<&(u64, u8, bool)> =
                        pending.iter().enumerate().filter(|(i, _)| set & (1 << i) != 0).map(|(_, p)| p).collect();
                    apply(&mut image, &chosen);
                    image
                })
                .collect();
            let images = medium.crash_images(CrashMode::AnySubset, 1 << 16, 0);
            prop_assert!(images.is_exhaustive());
            prop_assert_eq!(images.collect::<HashSet<_>>(), expected);
        }
    }
}
