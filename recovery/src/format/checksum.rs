//! The checksums of the format, chosen by measurement (see `docs/format.md`, "Checksums").
//!
//! Records, segment headers and superblocks: XXH3-64 with the default secret and seed 0 (faster
//! than CRC-32 on cold 150-byte records on this machine, and 64 bits wide), computed in one
//! call by `twox-hash`, which picks AVX2 at run time, and over parts by `mcstore_pmem::xxh3`. XXH3-64
//! is a specified function: any correct implementation gives the same value, which the tests
//! below check against `xxhash-rust`.
//! The committed-tail word: CRC-32, because its 32-bit check must detect every single-bit flip
//! of the word, which a CRC guarantees and a hash does not.

use mcstore_pmem::xxh3::Xxh3Stream;

/// XXH3-64 of `bytes`.
#[inline]
pub fn hash64(bytes: &[u8]) -> u64 {
    twox_hash::XxHash3_64::oneshot(bytes)
}

/// XXH3-64 of bytes fed in parts: the same value as [`hash64`] over the parts joined, however
/// they are split. Allocation-free (the default secret is static; the stripe buffer is inline).
#[derive(Clone)]
pub struct Hash64Stream(Xxh3Stream);

impl Hash64Stream {
    /// A stream that has seen no bytes.
    #[inline]
    pub fn new() -> Self {
        Hash64Stream(Xxh3Stream::new())
    }

    /// Feed the next `bytes`.
    #[inline]
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The XXH3 stream itself, for a reader that copies and hashes in one pass
    /// ([`mcstore_pmem::Medium::read_hashing`]).
    #[inline]
    pub(crate) fn stream_mut(&mut self) -> &mut Xxh3Stream {
        &mut self.0
    }

    /// The hash of every byte fed so far.
    #[inline]
    pub fn digest(&self) -> u64 {
        self.0.digest()
    }
}

impl Default for Hash64Stream {
    fn default() -> Self {
        Self::new()
    }
}

/// The 64-bit value mixed into a record's checksum for its context (pool offset, segment
/// sequence, set uuid), so a record copied elsewhere, into a segment of another sequence or from
/// another replica set does not validate.
pub fn context_mix(offset: u64, segment_seq: u64, set_uuid: &[u8; 16]) -> u64 {
    let mut ctx = [0u8; 32];
    ctx[0..8].copy_from_slice(&offset.to_le_bytes());
    ctx[8..16].copy_from_slice(&segment_seq.to_le_bytes());
    ctx[16..32].copy_from_slice(set_uuid);
    hash64(&ctx)
}

/// CRC-32 (IEEE) over the committed-tail inputs: tail units, segment sequence, set uuid.
pub fn tail_check(tail_units: u32, segment_seq: u64, set_uuid: &[u8; 16]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&tail_units.to_le_bytes());
    hasher.update(&segment_seq.to_le_bytes());
    hasher.update(set_uuid);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use xxhash_rust::xxh3::xxh3_64;

    #[test]
    fn context_mix_depends_on_every_input() {
        let uuid = [7u8; 16];
        let base = context_mix(4096, 3, &uuid);
        assert_ne!(base, context_mix(4104, 3, &uuid));
        assert_ne!(base, context_mix(4096, 4, &uuid));
        let mut other = uuid;
        other[15] ^= 1;
        assert_ne!(base, context_mix(4096, 3, &other));
    }

    #[test]
    fn hash_is_stable_across_builds() {
        // Pinned: a change of algorithm is a format change (FORMAT_VERSION).
        assert_eq!(hash64(b""), 0x2d06_8005_38d3_94c2);
        assert_eq!(Hash64Stream::new().digest(), 0x2d06_8005_38d3_94c2);
        assert_eq!(tail_check(0, 0, &[0; 16]), crc32fast::hash(&[0u8; 28]));
    }

    /// Bytes that differ at every position and between calls with different `salt`.
    fn bytes(len: usize, salt: u64) -> Vec<u8> {
        let mut state = salt.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    /// The stream over `input` cut at `cuts` (sorted positions), the middle part fed in pieces
    /// of `piece` bytes, as the read path feeds a value copied in chunks.
    fn streamed(input: &[u8], head: usize, tail: usize, piece: usize) -> u64 {
        let mut stream = Hash64Stream::new();
        stream.update(&input[..head]);
        for chunk in input[head..tail].chunks(piece.max(1)) {
            stream.update(chunk);
        }
        stream.update(&input[tail..]);
        stream.digest()
    }

    /// Every length up to 2 KiB and every split into head, middle and tail of the short ones:
    /// the one-shot and the streamed hash equal the reference XXH3-64.
    #[test]
    fn equals_the_reference_xxh3_for_every_split_of_short_inputs() {
        for len in 0..=2048 {
            let input = bytes(len, len as u64);
            let expected = xxh3_64(&input);
            assert_eq!(hash64(&input), expected, "one-shot, {len} bytes");
            if len <= 300 {
                for head in 0..=len {
                    for tail in (head..=len).step_by(if len <= 96 { 1 } else { 7 }) {
                        assert_eq!(
                            streamed(&input, head, tail, len),
                            expected,
                            "{len} {head} {tail}"
                        );
                    }
                }
            } else {
                for (head, tail) in [(0, len), (40, len - 3), (len / 2, len), (8, len / 3)] {
                    assert_eq!(streamed(&input, head, tail, 64), expected, "{len} {head} {tail}");
                }
            }
        }
    }

    /// Large inputs (past 1 MiB: many 1 KiB blocks, stripes split across parts) hash the same
    /// as the reference, one-shot and streamed in chunks.
    #[test]
    fn equals_the_reference_xxh3_on_large_inputs() {
        for (len, head, tail_back, piece) in [
            ((1 << 20) + 40, 40, 0, 64 << 10),
            ((1 << 20) + 36, 36, 4, 16 << 10),
            (3 << 20, 33, 7, 100_003),
            (1 << 20, 0, 0, 1 << 20),
        ] {
            let input = bytes(len, 99);
            let expected = xxh3_64(&input);
            assert_eq!(hash64(&input), expected, "one-shot, {len} bytes");
            assert_eq!(streamed(&input, head, len - tail_back, piece), expected, "{len}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Any length up to 80 KiB, any head, tail and chunk size: same value as the reference.
        #[test]
        fn streamed_in_any_parts_equals_the_reference(len in 0usize..80 << 10,
                                                       salt in any::<u64>(),
                                                       a in any::<prop::sample::Index>(),
                                                       b in any::<prop::sample::Index>(),
                                                       piece in 1usize..20_000) {
            let input = bytes(len, salt);
            let (x, y) = (a.index(len + 1), b.index(len + 1));
            let (head, tail) = (x.min(y), x.max(y));
            let expected = xxh3_64(&input);
            prop_assert_eq!(hash64(&input), expected);
            prop_assert_eq!(streamed(&input, head, tail, piece), expected);
        }
    }
}
