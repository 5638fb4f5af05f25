//! The committed-tail word: ONE aligned u64, written by one `store_u64`, alone in its cache line.
//!
//! Low 32 bits: bytes used in the segment's data area, in 8-byte units. High 32 bits: CRC-32 of
//! (units, segment sequence, set uuid). The word 0 means "empty segment" (what re-initialisation
//! stores); every other valid word has a nonzero unit count and check. INVARIANT: a single flipped
//! bit in a valid word never decodes (a CRC detects every single-bit error), so damage is never
//! read as a shorter log.

use super::checksum::tail_check;
use super::error::FormatError;
use super::ids::Uuid;

/// The word for `tail` bytes used (a multiple of 8, < 32 GiB) in a segment of `segment_seq`.
/// Panics (a programmer error) if `tail` is not 8-aligned or too large.
pub fn encode_tail(tail: u64, segment_seq: u64, set_uuid: &Uuid) -> u64 {
    TailWords::new(segment_seq, set_uuid).encode(tail)
}

/// The tail words of one segment (its sequence and set fixed), each made in a few instructions
/// rather than a CRC over 28 bytes: CRC-32 is affine in its input, so the check of
/// `units ‖ seq ‖ uuid` is the CRC of `0 ‖ seq ‖ uuid`, computed once here, XOR the units'
/// own term, which four table lookups give. The same words as [`encode_tail`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TailWords {
    /// CRC-32 of `0u32 ‖ seq ‖ uuid`.
    rest: u32,
}

impl TailWords {
    /// The words of segment `segment_seq` of set `set_uuid`.
    pub fn new(segment_seq: u64, set_uuid: &Uuid) -> Self {
        TailWords { rest: tail_check(0, segment_seq, &set_uuid.0) }
    }

    /// The word for `tail` bytes used (see [`encode_tail`]). Panics (a programmer error) if
    /// `tail` is not 8-aligned or too large.
    #[inline]
    pub fn encode(&self, tail: u64) -> u64 {
        assert!(tail.is_multiple_of(8), "tail {tail} is not 8-aligned");
        let units = u32::try_from(tail / 8).expect("tail fits 32 bits of 8-byte units");
        if units == 0 {
            return 0;
        }
        let check = match self.rest ^ units_term(units) {
            0 => ZERO_CHECK,
            c => c,
        };
        (u64::from(check) << 32) | u64::from(units)
    }
}

/// What a zero CRC is stored as: a valid word's check is never 0.
const ZERO_CHECK: u32 = 0x8000_0001;

/// Bytes the tail check covers: units (4), sequence (8), set uuid (16).
const CHECKED_BYTES: usize = 28;

/// CRC-32 (IEEE: reflected polynomial 0xEDB88320, initial value and final XOR all ones) of
/// `bytes`, bit by bit: only for building `UNITS_TERMS` at compile time.
const fn crc32_bitwise(bytes: &[u8; CHECKED_BYTES]) -> u32 {
    let mut crc = u32::MAX;
    let mut i = 0;
    while i < CHECKED_BYTES {
        crc ^= bytes[i] as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            bit += 1;
        }
        i += 1;
    }
    !crc
}

/// `UNITS_TERMS[k][b]`: the term of units byte `k` holding `b`, i.e. CRC(that byte in place,
/// every other byte 0) XOR CRC(28 zero bytes). Built from the 32 one-bit terms (the term is
/// linear in the units), so compile-time evaluation stays small.
const UNITS_TERMS: [[u32; 256]; 4] = {
    let zero = crc32_bitwise(&[0; CHECKED_BYTES]);
    let mut bits = [0u32; 32];
    let mut bit = 0;
    while bit < 32 {
        let mut bytes = [0u8; CHECKED_BYTES];
        bytes[bit / 8] = 1 << (bit % 8);
        bits[bit] = crc32_bitwise(&bytes) ^ zero;
        bit += 1;
    }
    let mut terms = [[0u32; 256]; 4];
    let mut k = 0;
    while k < 4 {
        let mut b = 0;
        while b < 256 {
            let mut term = 0;
            let mut i = 0;
            while i < 8 {
                if b & (1 << i) != 0 {
                    term ^= bits[k * 8 + i];
                }
                i += 1;
            }
            terms[k][b] = term;
            b += 1;
        }
        k += 1;
    }
    terms
};

/// The units' term of the tail check (see [`TailWords`]).
#[inline]
fn units_term(units: u32) -> u32 {
    let [b0, b1, b2, b3] = units.to_le_bytes();
    UNITS_TERMS[0][usize::from(b0)]
        ^ UNITS_TERMS[1][usize::from(b1)]
        ^ UNITS_TERMS[2][usize::from(b2)]
        ^ UNITS_TERMS[3][usize::from(b3)]
}

/// The committed tail in bytes carried by `word`, verified against `segment_seq` and `set_uuid`.
pub fn decode_tail(word: u64, segment_seq: u64, set_uuid: &Uuid) -> Result<u64, FormatError> {
    if word == 0 {
        return Ok(0);
    }
    let units = word as u32;
    let stored = (word >> 32) as u32;
    if units == 0 || stored != check(units, segment_seq, set_uuid) {
        return Err(FormatError::BadChecksum { what: "committed-tail word" });
    }
    Ok(u64::from(units) * 8)
}

/// The check for a nonzero unit count; never 0, so a valid word has at least two bits set.
fn check(units: u32, segment_seq: u64, set_uuid: &Uuid) -> u32 {
    match tail_check(units, segment_seq, &set_uuid.0) {
        0 => ZERO_CHECK,
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const UUID: Uuid = Uuid([0x33; 16]);

    proptest! {
        #[test]
        fn round_trip_and_every_bit_flip(units in 0u64..(1 << 27), seq in 1u64..u64::MAX) {
            let tail = units * 8;
            let word = encode_tail(tail, seq, &UUID);
            prop_assert_eq!(decode_tail(word, seq, &UUID), Ok(tail));
            for bit in 0..64 {
                prop_assert!(decode_tail(word ^ (1 << bit), seq, &UUID).is_err(), "bit {}", bit);
            }
            if tail != 0 {
                prop_assert!(decode_tail(word, seq + 1, &UUID).is_err());
                prop_assert!(decode_tail(word, seq, &Uuid([0x34; 16])).is_err());
            }
        }

        #[test]
        fn arbitrary_words_never_panic(word in any::<u64>(), seq in any::<u64>()) {
            if let Ok(tail) = decode_tail(word, seq, &UUID) {
                prop_assert_eq!(encode_tail(tail, seq, &UUID), word);
            }
        }
    }

    proptest! {
        /// The table-driven words are the CRC's: equal to a check computed over all 28 bytes,
        /// for any count, sequence and set.
        #[test]
        fn tail_words_match_the_full_crc(
            units in 1u32..=u32::MAX, seq in any::<u64>(), uuid in any::<[u8; 16]>()
        ) {
            let uuid = Uuid(uuid);
            let word = TailWords::new(seq, &uuid).encode(u64::from(units) * 8);
            prop_assert_eq!(word as u32, units);
            prop_assert_eq!((word >> 32) as u32, check(units, seq, &uuid));
            let mut bytes = [0u8; CHECKED_BYTES];
            bytes[..4].copy_from_slice(&units.to_le_bytes());
            bytes[4..12].copy_from_slice(&seq.to_le_bytes());
            bytes[12..].copy_from_slice(&uuid.0);
            prop_assert_eq!(crc32_bitwise(&bytes), tail_check(units, seq, &uuid.0));
        }
    }

    /// The count whose check is 0 for `words`: the units' term is linear and one-to-one, so
    /// solve `units_term(u) == rest` over GF(2) (Gaussian elimination on the 32 one-bit terms).
    fn units_with_zero_crc(words: TailWords) -> u32 {
        // Rows: (term, the units giving it); reduce to one row per leading bit.
        let mut rows: Vec<(u32, u32)> = (0..32).map(|i| (units_term(1 << i), 1 << i)).collect();
        let mut pivots: Vec<(u32, u32)> = Vec::new();
        for bit in (0..32).rev() {
            let Some(at) = rows.iter().position(|&(t, _)| t >> bit & 1 == 1) else { continue };
            let pivot = rows.swap_remove(at);
            for row in rows.iter_mut().chain(pivots.iter_mut()) {
                if row.0 >> bit & 1 == 1 {
                    *row = (row.0 ^ pivot.0, row.1 ^ pivot.1);
                }
            }
            pivots.push(pivot);
        }
        // Fully reduced and of full rank: each pivot's term is the one bit it leads with.
        assert_eq!(pivots.len(), 32, "the units' term is one-to-one");
        pivots.iter().filter(|&&(t, _)| t & words.rest != 0).fold(0, |u, &(_, units)| u ^ units)
    }

    /// A CRC of 0 is stored as `ZERO_CHECK` by both paths, and decodes.
    #[test]
    fn a_zero_crc_is_stored_as_its_stand_in() {
        let uuid = Uuid([0x5a; 16]);
        let words = TailWords::new(9, &uuid);
        let units = units_with_zero_crc(words);
        assert_eq!(tail_check(units, 9, &uuid.0), 0, "units {units} has a zero CRC");
        let word = words.encode(u64::from(units) * 8);
        assert_eq!((word >> 32) as u32, ZERO_CHECK);
        assert_eq!(decode_tail(word, 9, &uuid), Ok(u64::from(units) * 8));
    }

    #[test]
    fn zero_is_empty() {
        assert_eq!(encode_tail(0, 5, &UUID), 0);
        assert_eq!(decode_tail(0, 5, &UUID), Ok(0));
        assert_eq!(decode_tail(0, 6, &Uuid::NIL), Ok(0));
    }
}
