//! Crash-image deduplication by a 128-bit hash (xxh3-128): two images with the same hash are
//! treated as the same image, so each distinct outcome is recovered and checked once.
//!
//! INVARIANT: a collision would only skip a check (never fail one); at 128 bits over a few
//! hundred thousand images per run its probability is negligible.

use std::collections::HashSet;

/// The set of images seen so far.
#[derive(Debug, Default)]
pub struct ImageSet {
    seen: HashSet<u128>,
    offered: u64,
}

impl ImageSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record `image`; `true` if it was not seen before.
    pub fn insert(&mut self, image: &[u8]) -> bool {
        self.offered += 1;
        self.seen.insert(image_hash(image))
    }

    /// Distinct images seen.
    pub fn distinct(&self) -> usize {
        self.seen.len()
    }

    /// Images offered, duplicates included.
    pub fn offered(&self) -> u64 {
        self.offered
    }
}

/// The 128-bit hash images are deduplicated by.
pub fn image_hash(image: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_recognised_and_one_bit_differs() {
        let mut set = ImageSet::new();
        let mut image = vec![0u8; 4096];
        assert!(set.insert(&image));
        assert!(!set.insert(&image.clone()));
        image[4095] ^= 1;
        assert!(set.insert(&image));
        assert_eq!((set.distinct(), set.offered()), (2, 3));
    }
}
