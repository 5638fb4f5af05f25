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
    assert!(tail.is_multiple_of(8), "tail {tail} is not 8-aligned");
    let units = u32::try_from(tail / 8).expect("tail fits 32 bits of 8-byte units");
    if units == 0 {
        return 0;
    }
    (u64::from(check(units, segment_seq, set_uuid)) << 32) | u64::from(units)
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
        0 => 0x8000_0001,
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

    #[test]
    fn zero_is_empty() {
        assert_eq!(encode_tail(0, 5, &UUID), 0);
        assert_eq!(decode_tail(0, 5, &UUID), Ok(0));
        assert_eq!(decode_tail(0, 6, &Uuid::NIL), Ok(0));
    }
}
