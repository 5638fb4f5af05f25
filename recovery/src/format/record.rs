//! Records: a 32-byte header, the key, the value, zero padding to a multiple of 8 bytes.
//!
//! INVARIANT: a record validates only at the pool offset, in the segment sequence and in the
//! replica set it was encoded for: its checksum is xxh3-64 over bytes [8, len) (header fields,
//! key, value, padding) XOR a mix of (offset, segment sequence, set uuid).

use super::bytes::{put_u32, put_u64, u32_at, u64_at};
use super::checksum::{Hash64Stream, context_mix, hash64};
use super::error::FormatError;
use super::ids::{Lsn, Uuid};
use crate::limits::KEY_BYTES_MAX;
use mcstore_pmem::xxh3::Xxh3Stream;

/// Bytes of a record header.
pub const RECORD_HEADER_BYTES: usize = 32;
/// Marker in every record header (bytes 28..32, "mcR1"): a cheap first filter when resyncing.
pub const RECORD_MARKER: u32 = u32::from_le_bytes(*b"mcR1");

const OFF_CHECKSUM: usize = 0;
const OFF_LSN: usize = 8;
const OFF_KEY_LEN: usize = 16;
const OFF_VALUE_LEN: usize = 20;
const OFF_KIND: usize = 24;
const OFF_FLAGS: usize = 25;
const OFF_RESERVED: usize = 26;
const OFF_MARKER: usize = 28;
const _: () = assert!(OFF_MARKER + 4 == RECORD_HEADER_BYTES);
const _: () = assert!(RECORD_HEADER_BYTES.is_multiple_of(8));

/// What a record does to its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecordKind {
    /// Sets the key to the value.
    Put,
    /// Removes the key (a tombstone; its value is empty).
    Delete,
    /// Removes every key written before it (lower LSN): one record for an atomic `clear()`.
    /// Its key and value are empty.
    Clear,
}

impl RecordKind {
    /// The on-media code.
    pub fn code(self) -> u8 {
        match self {
            RecordKind::Put => 1,
            RecordKind::Delete => 2,
            RecordKind::Clear => 3,
        }
    }

    /// The kind for an on-media code.
    pub fn from_code(code: u8) -> Result<Self, FormatError> {
        match code {
            1 => Ok(RecordKind::Put),
            2 => Ok(RecordKind::Delete),
            3 => Ok(RecordKind::Clear),
            _ => Err(FormatError::InvalidField { field: "record kind", value: u64::from(code) }),
        }
    }
}

/// Where a record lives: the inputs its checksum binds it to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordContext {
    /// Pool offset of the record's first byte.
    pub offset: u64,
    /// Sequence of the segment holding it.
    pub segment_seq: u64,
    /// The replica set's uuid.
    pub set_uuid: Uuid,
}

/// A decoded record header (not yet verified against the payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// What the record does.
    pub kind: RecordKind,
    /// Its log sequence number.
    pub lsn: Lsn,
    /// Key length in bytes.
    pub key_len: u32,
    /// Value length in bytes.
    pub value_len: u32,
    /// The stored checksum.
    pub checksum: u64,
}

impl RecordHeader {
    /// Bytes the whole record occupies (header + payload, 8-padded).
    pub fn encoded_len(&self) -> u64 {
        encoded_len(self.key_len as usize, self.value_len as usize)
    }
}

/// A verified record, borrowing its key and value from the decoded bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// What the record does.
    pub kind: RecordKind,
    /// Its log sequence number.
    pub lsn: Lsn,
    /// The key.
    pub key: &'a [u8],
    /// The value (empty for a delete).
    pub value: &'a [u8],
}

/// Bytes a record with these lengths occupies: header + key + value, padded to 8.
pub fn encoded_len(key_len: usize, value_len: usize) -> u64 {
    let payload = (key_len as u64).saturating_add(value_len as u64);
    (RECORD_HEADER_BYTES as u64).saturating_add(payload.saturating_add(7) & !7)
}

/// Append the encoding of one record to `out`: exactly `encoded_len(key.len(), value.len())`
/// bytes. Panics (a programmer error) if the key exceeds `KEY_BYTES_MAX` or the value `u32`.
pub fn encode_record(
    out: &mut Vec<u8>,
    kind: RecordKind,
    lsn: Lsn,
    key: &[u8],
    value: &[u8],
    ctx: &RecordContext,
) {
    let start = out.len();
    let len = encoded_len(key.len(), value.len()) as usize;
    write_head(out, kind, lsn, key, value.len());
    out.extend_from_slice(value);
    out.resize(start + len, 0);
    let rec = &mut out[start..];
    let sum =
        hash64(&rec[OFF_LSN..len]) ^ context_mix(ctx.offset, ctx.segment_seq, &ctx.set_uuid.0);
    put_u64(rec, OFF_CHECKSUM, sum);
}

/// Append the header and key of one record to `out` — the record's first
/// `RECORD_HEADER_BYTES + key.len()` bytes, checksum included — and return how many zero bytes
/// of padding follow `value`. The caller writes `value` and the padding after them itself, so a
/// large value goes from its buffer to the medium in one copy. The bytes are identical to
/// [`encode_record`]'s. Panics as `encode_record` does.
pub fn encode_record_head(
    out: &mut Vec<u8>,
    kind: RecordKind,
    lsn: Lsn,
    key: &[u8],
    value: &[u8],
    ctx: &RecordContext,
) -> usize {
    let start = out.len();
    let len = encoded_len(key.len(), value.len()) as usize;
    write_head(out, kind, lsn, key, value.len());
    let padding = len - (out.len() - start) - value.len();
    let mut hasher = Hash64Stream::new();
    hasher.update(&out[start + OFF_LSN..]);
    hasher.update(value);
    hasher.update(&[0u8; 8][..padding]);
    let sum = hasher.digest() ^ context_mix(ctx.offset, ctx.segment_seq, &ctx.set_uuid.0);
    put_u64(&mut out[start..], OFF_CHECKSUM, sum);
    padding
}

/// Append a record's header (checksum zero) and key.
fn write_head(out: &mut Vec<u8>, kind: RecordKind, lsn: Lsn, key: &[u8], value_len: usize) {
    assert!(key.len() <= KEY_BYTES_MAX, "key of {} bytes exceeds the limit", key.len());
    let value_len = u32::try_from(value_len).expect("value length fits u32 (limits.rs)");
    let mut header = [0u8; RECORD_HEADER_BYTES];
    put_u64(&mut header, OFF_LSN, lsn.0);
    put_u32(&mut header, OFF_KEY_LEN, key.len() as u32);
    put_u32(&mut header, OFF_VALUE_LEN, value_len);
    header[OFF_KIND] = kind.code();
    put_u32(&mut header, OFF_MARKER, RECORD_MARKER);
    out.extend_from_slice(&header);
    out.extend_from_slice(key);
}

/// A record's padding is zero (docs/format.md): the checksum covers it, so only a record
/// written with other padding and a checksum over it (never this encoder) can fail here; such a
/// record is not the one its fields would encode, and decodes as an error.
fn check_padding(padding: &[u8]) -> Result<(), FormatError> {
    first_nonzero(padding).map_or(Ok(()), |b| Err(bad_padding(b)))
}

/// The first byte of `bytes` that is not zero.
fn first_nonzero(bytes: &[u8]) -> Option<u8> {
    bytes.iter().copied().find(|&b| b != 0)
}

/// The error of a record whose padding holds `byte`.
fn bad_padding(byte: u8) -> FormatError {
    FormatError::InvalidField { field: "record padding", value: byte.into() }
}

/// Decode the first `RECORD_HEADER_BYTES` of `bytes`: structural checks only (marker, kind,
/// reserved bits, key length); the checksum is verified by [`decode_record`].
pub fn decode_header(bytes: &[u8]) -> Result<RecordHeader, FormatError> {
    if bytes.len() < RECORD_HEADER_BYTES {
        return Err(FormatError::Truncated {
            what: "record header",
            needed: RECORD_HEADER_BYTES as u64,
            got: bytes.len() as u64,
        });
    }
    if u32_at(bytes, OFF_MARKER) != RECORD_MARKER {
        return Err(FormatError::BadMagic { what: "record header" });
    }
    let kind = RecordKind::from_code(bytes[OFF_KIND])?;
    let reserved = u32_at(bytes, OFF_KIND) >> 8;
    if reserved != 0 || bytes[OFF_FLAGS] != 0 || bytes[OFF_RESERVED] != 0 {
        return Err(FormatError::InvalidField {
            field: "record reserved bits",
            value: reserved.into(),
        });
    }
    let key_len = u32_at(bytes, OFF_KEY_LEN);
    if key_len as usize > KEY_BYTES_MAX {
        return Err(FormatError::InvalidField {
            field: "record key length",
            value: key_len.into(),
        });
    }
    Ok(RecordHeader {
        kind,
        lsn: Lsn(u64_at(bytes, OFF_LSN)),
        key_len,
        value_len: u32_at(bytes, OFF_VALUE_LEN),
        checksum: u64_at(bytes, OFF_CHECKSUM),
    })
}

/// Decode and verify the record at the start of `bytes` (which may run past its end) as living
/// at `ctx`. Any bit flipped in it, or a valid record read at another context, is `Err`.
pub fn decode_record<'a>(
    bytes: &'a [u8],
    ctx: &RecordContext,
) -> Result<RecordRef<'a>, FormatError> {
    let header = decode_header(bytes)?;
    verify_decoded(bytes, &header, ctx)
}

/// The rest of [`decode_record`] once `header` (decoded from the start of `bytes`) is known: the
/// length, checksum and payload checks. The scan decodes each header once for its walk and this.
pub(crate) fn verify_decoded<'a>(
    bytes: &'a [u8],
    header: &RecordHeader,
    ctx: &RecordContext,
) -> Result<RecordRef<'a>, FormatError> {
    let len = header.encoded_len();
    let Some(rec) = usize::try_from(len).ok().and_then(|len| bytes.get(..len)) else {
        return Err(FormatError::Truncated {
            what: "record",
            needed: len,
            got: bytes.len() as u64,
        });
    };
    let covered = rec.get(OFF_LSN..).unwrap_or_default();
    let sum = hash64(covered) ^ context_mix(ctx.offset, ctx.segment_seq, &ctx.set_uuid.0);
    if sum != header.checksum {
        return Err(FormatError::BadChecksum { what: "record" });
    }
    let key_end = RECORD_HEADER_BYTES + header.key_len as usize;
    let value_end = key_end + header.value_len as usize;
    match (rec.get(RECORD_HEADER_BYTES..key_end), rec.get(key_end..value_end)) {
        (Some(key), Some(value)) => {
            check_padding(rec.get(value_end..).unwrap_or_default())?;
            Ok(RecordRef { kind: header.kind, lsn: header.lsn, key, value })
        }
        _ => Err(FormatError::Truncated {
            what: "record payload",
            needed: len,
            got: rec.len() as u64,
        }),
    }
}

/// A record verified as it is read: start with its head (header and key), feed the rest of its
/// bytes (value, then padding) in pieces of any size as they arrive, then [`finish`]. A reader
/// hashes each piece right after copying it, while it is still in cache, instead of hashing the
/// whole value again afterwards. Accepts exactly what [`decode_record`] accepts over the joined
/// bytes. Allocation-free.
///
/// [`finish`]: RecordVerifier::finish
#[derive(Clone)]
pub struct RecordVerifier {
    header: RecordHeader,
    hasher: Hash64Stream,
    mix: u64,
    /// Bytes fed so far, the head included.
    fed: u64,
    /// The first padding byte fed that was not zero, if any.
    bad_padding: Option<u8>,
}

impl RecordVerifier {
    /// Start verifying the record whose head is `head` (exactly `RECORD_HEADER_BYTES + key_len`
    /// bytes; its header is decoded and checked structurally) as living at `ctx`.
    pub fn new(head: &[u8], ctx: &RecordContext) -> Result<Self, FormatError> {
        let header = decode_header(head)?;
        if head.len() != RECORD_HEADER_BYTES + header.key_len as usize {
            return Err(FormatError::Truncated {
                what: "record head",
                needed: (RECORD_HEADER_BYTES + header.key_len as usize) as u64,
                got: head.len() as u64,
            });
        }
        let mut hasher = Hash64Stream::new();
        hasher.update(&head[OFF_LSN..]);
        let mix = context_mix(ctx.offset, ctx.segment_seq, &ctx.set_uuid.0);
        Ok(RecordVerifier { header, hasher, mix, fed: head.len() as u64, bad_padding: None })
    }

    /// The decoded header (not yet verified against the payload).
    pub fn header(&self) -> &RecordHeader {
        &self.header
    }

    /// Feed the next bytes of the record after its head (value, then padding).
    #[inline]
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.note_fed(bytes);
    }

    /// Feed the next `dst.len()` bytes of the record after its head as `fill` writes them:
    /// `fill(dst, stream)` must fill `dst` whole and feed the stream exactly the bytes it left
    /// there, as [`Medium::read_hashing`] does (which copies and hashes in one pass). Returns what
    /// `fill` returns.
    ///
    /// [`Medium::read_hashing`]: mcstore_pmem::Medium::read_hashing
    #[inline]
    pub fn update_with<R>(
        &mut self,
        dst: &mut [u8],
        fill: impl FnOnce(&mut [u8], &mut Xxh3Stream) -> R,
    ) -> R {
        let filled = fill(dst, self.hasher.stream_mut());
        self.note_fed(dst);
        filled
    }

    /// Count `bytes` as fed (their hash is the caller's) and check what of the padding they hold.
    #[inline]
    fn note_fed(&mut self, bytes: &[u8]) {
        // The padding is the record's last bytes: whatever of it this piece holds must be zero.
        let padding_at = RECORD_HEADER_BYTES as u64
            + u64::from(self.header.key_len)
            + u64::from(self.header.value_len);
        let end = self.fed + bytes.len() as u64;
        if end > padding_at {
            let from = usize::try_from(padding_at.saturating_sub(self.fed)).unwrap_or(usize::MAX);
            if self.bad_padding.is_none() {
                self.bad_padding = first_nonzero(bytes.get(from..).unwrap_or_default());
            }
        }
        self.fed += bytes.len() as u64;
    }

    /// The verdict: `Ok(header)` when exactly the record's length was fed and the checksum over
    /// it, at its context, matches the stored one.
    pub fn finish(&self) -> Result<RecordHeader, FormatError> {
        if self.fed != self.header.encoded_len() {
            return Err(FormatError::Truncated {
                what: "record parts",
                needed: self.header.encoded_len(),
                got: self.fed,
            });
        }
        if self.hasher.digest() ^ self.mix != self.header.checksum {
            return Err(FormatError::BadChecksum { what: "record" });
        }
        self.bad_padding.map_or(Ok(self.header), |b| Err(bad_padding(b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ctx() -> RecordContext {
        RecordContext { offset: (2 << 20) + 128, segment_seq: 7, set_uuid: Uuid([0x5a; 16]) }
    }

    fn encode(
        kind: RecordKind,
        lsn: u64,
        key: &[u8],
        value: &[u8],
        ctx: &RecordContext,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        encode_record(&mut out, kind, Lsn(lsn), key, value, ctx);
        out
    }

    /// The head encoding plus the value and its padding is byte for byte the whole encoding.
    #[test]
    fn head_value_and_padding_join_to_the_whole_record() {
        for (key, value) in [(&b""[..], &b""[..]), (b"k", b"v"), (b"key-16-bytes-abc", &[3u8; 100])]
            .into_iter()
            .chain([(&b"large"[..], &[9u8; 70_001][..])])
        {
            let whole = encode(RecordKind::Put, 11, key, value, &ctx());
            let mut joined = vec![0xee; 8];
            let padding =
                encode_record_head(&mut joined, RecordKind::Put, Lsn(11), key, value, &ctx());
            assert_eq!(joined.len(), 8 + RECORD_HEADER_BYTES + key.len());
            joined.extend_from_slice(value);
            joined.extend(std::iter::repeat_n(0, padding));
            assert_eq!(joined[8..], whole[..], "{} {}", key.len(), value.len());
        }
    }

    /// A record whose padding is not zero, with a checksum computed over that padding (as the
    /// codec fuzz target built one), is an error for the whole-record decode and for the
    /// streamed verifier fed in any pieces; with zero padding and the same fields it decodes.
    #[test]
    fn nonzero_padding_under_a_matching_checksum_is_refused() {
        for value_len in [1usize, 100, 600, 70_001] {
            let value = vec![0x27u8; value_len];
            let mut rec = encode(RecordKind::Put, 4, b"key", &value, &ctx());
            let value_end = RECORD_HEADER_BYTES + 3 + value_len;
            assert!(rec.len() > value_end, "{value_len}: the record has padding");
            *rec.last_mut().unwrap() = 0x65;
            let mix = context_mix(ctx().offset, ctx().segment_seq, &ctx().set_uuid.0);
            let sum = hash64(&rec[OFF_LSN..]) ^ mix;
            rec[OFF_CHECKSUM..OFF_CHECKSUM + 8].copy_from_slice(&sum.to_le_bytes());
            let refused = |e: FormatError| {
                matches!(e, FormatError::InvalidField { field: "record padding", value: 0x65 })
            };
            assert!(decode_record(&rec, &ctx()).is_err_and(refused), "{value_len}");
            for piece in [1usize, 7, 4096, usize::MAX] {
                let head = RECORD_HEADER_BYTES + 3;
                let mut verifier = RecordVerifier::new(&rec[..head], &ctx()).unwrap();
                for part in rec[head..].chunks(piece.min(rec.len())) {
                    verifier.update(part);
                }
                assert!(verifier.finish().is_err_and(refused), "{value_len} in pieces of {piece}");
            }
        }
    }

    proptest! {
        #[test]
        fn round_trip(key in proptest::collection::vec(any::<u8>(), 0..300),
                      value in proptest::collection::vec(any::<u8>(), 0..700),
                      lsn in any::<u64>(), delete in any::<bool>(), prefix in 0usize..3) {
            let kind = if delete { RecordKind::Delete } else { RecordKind::Put };
            let mut out = vec![0xee; prefix * 8];
            encode_record(&mut out, kind, Lsn(lsn), &key, &value, &ctx());
            prop_assert_eq!(out.len() as u64 - prefix as u64 * 8, encoded_len(key.len(), value.len()));
            prop_assert_eq!(out.len() % 8, 0);
            out.extend_from_slice(&[0xff; 24]); // trailing bytes are not part of the record
            let rec = decode_record(&out[prefix * 8..], &ctx()).unwrap();
            prop_assert_eq!(rec, RecordRef { kind, lsn: Lsn(lsn), key: &key, value: &value });
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_header(&bytes);
            prop_assert!(decode_record(&bytes, &ctx()).is_err());
        }

        #[test]
        fn mutated_records_never_validate(key in proptest::collection::vec(any::<u8>(), 0..40),
                                          value in proptest::collection::vec(any::<u8>(), 0..90),
                                          at in any::<prop::sample::Index>(), byte in 1u8..) {
            let mut rec = encode(RecordKind::Put, 3, &key, &value, &ctx());
            let i = at.index(rec.len());
            rec[i] ^= byte;
            prop_assert!(decode_record(&rec, &ctx()).is_err());
            let cut = at.index(rec.len());
            prop_assert!(decode_record(&rec[..cut], &ctx()).is_err());
        }
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        for (key, value) in [(&b"k"[..], &b""[..]), (b"user:0042", &[0x11; 100][..]), (b"", b"v")] {
            let rec = encode(RecordKind::Put, 99, key, value, &ctx());
            assert!(decode_record(&rec, &ctx()).is_ok());
            for bit in 0..rec.len() * 8 {
                let mut bad = rec.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(decode_record(&bad, &ctx()).is_err(), "flip of bit {bit} undetected");
            }
        }
    }

    #[test]
    fn record_elsewhere_does_not_validate() {
        let rec = encode(RecordKind::Put, 5, b"key", b"value", &ctx());
        let moved = RecordContext { offset: ctx().offset + 8, ..ctx() };
        let other_seq = RecordContext { segment_seq: 8, ..ctx() };
        let foreign = RecordContext { set_uuid: Uuid([0x5b; 16]), ..ctx() };
        for wrong in [moved, other_seq, foreign] {
            assert_eq!(
                decode_record(&rec, &wrong),
                Err(FormatError::BadChecksum { what: "record" })
            );
        }
        assert!(decode_record(&rec, &ctx()).is_ok());
    }

    #[test]
    fn huge_lengths_are_rejected_not_allocated() {
        let mut rec = encode(RecordKind::Put, 1, b"k", b"v", &ctx());
        rec[OFF_VALUE_LEN..OFF_VALUE_LEN + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode_record(&rec, &ctx()), Err(FormatError::Truncated { .. })));
        rec[OFF_KEY_LEN..OFF_KEY_LEN + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode_header(&rec), Err(FormatError::InvalidField { .. })));
    }

    /// Verify `rec` through a [`RecordVerifier`]: head, then the rest in pieces of `piece`.
    fn verify_streamed(
        rec: &[u8],
        head_len: usize,
        piece: usize,
        ctx: &RecordContext,
    ) -> Result<RecordHeader, FormatError> {
        let (head, rest) = rec.split_at(head_len.min(rec.len()));
        let mut verifier = RecordVerifier::new(head, ctx)?;
        for chunk in rest.chunks(piece.max(1)) {
            verifier.update(chunk);
        }
        verifier.finish()
    }

    #[test]
    fn streamed_verification_accepts_exactly_the_joined_record() {
        for (key, value) in
            [(&b"k"[..], &[7u8; 5000][..]), (b"user:0042", &[0x11; 100][..]), (b"", b"")]
        {
            let rec = encode(RecordKind::Put, 9, key, value, &ctx());
            let head_end = RECORD_HEADER_BYTES + key.len();
            let value_end = head_end + value.len();
            for piece in [1, 7, 64, 4096, rec.len()] {
                let header = verify_streamed(&rec, head_end, piece, &ctx()).unwrap();
                assert_eq!(
                    (header.kind, header.lsn, header.value_len as usize),
                    (RecordKind::Put, Lsn(9), value.len())
                );
            }
            for at in [8, head_end - 1, value_end.saturating_sub(1), rec.len() - 1] {
                let mut bad = rec.clone();
                bad[at] ^= 0x20;
                assert!(verify_streamed(&bad, head_end, 64, &ctx()).is_err(), "flip at {at}");
            }
            let moved = RecordContext { offset: ctx().offset + 8, ..ctx() };
            assert!(verify_streamed(&rec, head_end, 64, &moved).is_err());
            // A head that does not end where the header says, or too few or too many bytes
            // fed after it, is refused.
            let mut longer = rec.clone();
            longer.push(0);
            assert!(RecordVerifier::new(&rec[..head_end - 1], &ctx()).is_err());
            assert!(RecordVerifier::new(&longer[..head_end + 1], &ctx()).is_err());
            assert!(verify_streamed(&rec[..rec.len() - 1], head_end, 64, &ctx()).is_err());
            assert!(verify_streamed(&longer, head_end, 64, &ctx()).is_err());
        }
    }

    proptest! {
        /// Streamed verification, in pieces of any size, decides as `decode_record` does over
        /// the joined bytes, for intact and for mutated records.
        #[test]
        fn streamed_verification_agrees_with_decode(
            key in proptest::collection::vec(any::<u8>(), 0..40),
            value in proptest::collection::vec(any::<u8>(), 0..3000),
            at in any::<prop::sample::Index>(), byte in any::<u8>(), piece in 1usize..700) {
            let mut rec = encode(RecordKind::Put, 3, &key, &value, &ctx());
            let i = at.index(rec.len());
            rec[i] ^= byte;
            let head_len = RECORD_HEADER_BYTES + key.len();
            let whole = decode_record(&rec, &ctx()).map(|r| (r.kind, r.lsn, r.value.len()));
            let streamed = verify_streamed(&rec, head_len, piece, &ctx())
                .map(|h| (h.kind, h.lsn, h.value_len as usize));
            // A flip in the key length moves the head's end: both refuse, maybe differently.
            prop_assert_eq!(whole.is_ok(), streamed.is_ok());
            prop_assert_eq!(whole.is_ok(), byte == 0);
            if let (Ok(w), Ok(s)) = (whole, streamed) {
                prop_assert_eq!(w, s);
            }
        }
    }
}
