//! The read path: the record copied through the machine-check-safe copy (a small one whole; a
//! large one head first, then its value copied and hashed in one pass), verified, then the
//! commit barrier's check — clean register and good checksum → the value; otherwise re-look-up
//! once, then the User policy (`docs/policy.md`).
//!
//! INVARIANT: bytes are returned only from a record whose checksum (over header, key, value,
//! its own offset, segment sequence and set uuid) verified and whose key equals the key asked
//! for, read with a clean register.

use mcstore_pmem::{Domain, ErrorRegister, Fault, Medium, PoolSet, RetryOutcome};
use mcstore_recovery::format::record::RecordVerifier;
use mcstore_recovery::format::{
    RECORD_HEADER_BYTES, RecordContext, RecordKind, Uuid, decode_record,
};

use crate::error::{Error, Result};
use crate::index::Location;
use crate::policy::{HaltReport, Policy, UserFallback};

/// Why one attempt to read a record did not produce its value.
#[derive(Debug)]
pub(crate) enum BadRead {
    /// The copy met poison (the first fault, or the whole range on overflow).
    Media(Fault),
    /// The bytes read cleanly but did not verify.
    Corrupt { offset: u64, reason: String, source: Option<mcstore_recovery::FormatError> },
}

/// Records up to this many bytes are copied whole into a stack buffer and verified in one
/// pass; the value is then copied out (cheap at this size). Larger records are read in two
/// parts, the head and then the value, which is copied once, straight into the caller's buffer,
/// and hashed as it is copied.
const SMALL_RECORD_BYTES: usize = 512;
/// Header and key bytes read into a stack buffer on the large-record path (longer keys use a
/// heap buffer).
const HEAD_STACK_BYTES: usize = RECORD_HEADER_BYTES + 224;
/// Bytes of a large record's start whose lines are all prefetched before its head is read: the
/// misses of the head and of the value's first lines overlap, where the head's read and then the
/// value's copy would take them one after another. The rest of a long value is streamed by its
/// own read (the one-pass copy prefetches ahead of itself). A small record's copy gained
/// nothing measurable from it (docs/performance.md).
const PREFETCH_HEAD_BYTES: u64 = 1024;

/// Read the record at `location` into `buf` and verify it is a put of `key`. On success `buf`
/// holds exactly the value. `buf` is resized, never zero-filled beyond what it grows by, so a
/// reused buffer costs no allocation and no memset.
pub(crate) fn read_value_into(
    medium: &dyn Medium,
    set_uuid: &Uuid,
    key: &[u8],
    location: Location,
    buf: &mut Vec<u8>,
) -> Result<std::result::Result<(), BadRead>> {
    let ctx = context(set_uuid, location);
    let len = location.len as usize;
    if len > SMALL_RECORD_BYTES {
        return read_large_into(medium, &ctx, key, location, buf);
    }
    let mut scratch = [0u8; SMALL_RECORD_BYTES];
    let record = &mut scratch[..len];
    let mut register = ErrorRegister::deferred();
    medium
        .read(location.offset, record, &mut register, Domain::User)
        .map_err(|error| Error::pmem("reading a record", error))?;
    if let Some(fault) = fault_of(medium, &register, location) {
        return Ok(Err(BadRead::Media(fault)));
    }
    match decode_record(record, &ctx) {
        Ok(decoded) => match check_put_of(key, decoded.key, decoded.kind, location) {
            Ok(()) => {
                resize_for_overwrite(buf, decoded.value.len());
                buf.copy_from_slice(decoded.value);
                Ok(Ok(()))
            }
            Err(bad) => Ok(Err(bad)),
        },
        Err(error) => Ok(Err(corrupt(location, error))),
    }
}

/// The large-record path of [`read_value_into`]: header and key into a small buffer, the value
/// and its padding straight into `buf`, hashed as they are copied (`Medium::read_hashing`); the
/// padding is cut off once the checksum verified.
fn read_large_into(
    medium: &dyn Medium,
    ctx: &RecordContext,
    key: &[u8],
    location: Location,
    buf: &mut Vec<u8>,
) -> Result<std::result::Result<(), BadRead>> {
    let len = location.len as usize;
    let head_len = RECORD_HEADER_BYTES + key.len();
    // A record shorter than a header and this key cannot be a put of it (and its value length
    // would underflow): the index and the medium disagree.
    let Some(body_len) = len.checked_sub(head_len) else {
        return Ok(Err(BadRead::Corrupt {
            offset: location.offset,
            reason: "the indexed record is shorter than its key".to_string(),
            source: None,
        }));
    };
    medium.prefetch(location.offset, (len as u64).min(PREFETCH_HEAD_BYTES));
    let mut stack = [0u8; HEAD_STACK_BYTES];
    let mut heap = Vec::new();
    let head: &mut [u8] = if head_len <= HEAD_STACK_BYTES {
        &mut stack[..head_len]
    } else {
        heap.resize(head_len, 0);
        &mut heap
    };
    let mut register = ErrorRegister::deferred();
    medium
        .read(location.offset, head, &mut register, Domain::User)
        .map_err(|error| Error::pmem("reading a record header", error))?;
    if let Some(fault) = fault_of(medium, &register, location) {
        return Ok(Err(BadRead::Media(fault)));
    }
    // The header says how the body splits into value and padding; a header that does not fit
    // the indexed length is corrupt (the checksum is checked below).
    let mut verifier = match RecordVerifier::new(head, ctx) {
        Ok(verifier)
            if verifier.header().encoded_len() == len as u64
                && verifier.header().value_len as usize <= body_len =>
        {
            verifier
        }
        Ok(_) => {
            return Ok(Err(BadRead::Corrupt {
                offset: location.offset,
                reason: "the record header does not match the indexed length".to_string(),
                source: None,
            }));
        }
        Err(error) => return Ok(Err(corrupt(location, error))),
    };
    let value_len = verifier.header().value_len as usize;
    resize_for_overwrite(buf, body_len);
    let body_at = location.offset + head_len as u64;
    verifier
        .update_with(buf, |body, stream| {
            medium.read_hashing(body_at, body, &mut register, Domain::User, stream)
        })
        .map_err(|error| Error::pmem("reading a record value", error))?;
    if let Some(fault) = fault_of(medium, &register, location) {
        return Ok(Err(BadRead::Media(fault)));
    }
    match verifier.finish() {
        Ok(header) => {
            buf.truncate(value_len);
            Ok(check_put_of(key, &head[RECORD_HEADER_BYTES..], header.kind, location))
        }
        Err(error) => Ok(Err(corrupt(location, error))),
    }
}

/// Make `buf` exactly `len` bytes long for a copy that overwrites all of it: only the bytes it
/// grows by are initialised.
fn resize_for_overwrite(buf: &mut Vec<u8>, len: usize) {
    if buf.len() >= len {
        buf.truncate(len);
    } else {
        buf.resize(len, 0);
    }
}

/// The first fault the register holds (or one covering the record, on overflow), if any.
fn fault_of(medium: &dyn Medium, register: &ErrorRegister, location: Location) -> Option<Fault> {
    if register.is_clean() {
        return None;
    }
    Some(register.first().copied().unwrap_or(Fault {
        member: medium.member(),
        offset: location.offset,
        len: u64::from(location.len),
        domain: Domain::User,
        code: mcstore_pmem::FaultCode::Simulated,
    }))
}

fn context(set_uuid: &Uuid, location: Location) -> RecordContext {
    RecordContext {
        offset: location.offset,
        segment_seq: location.segment_seq,
        set_uuid: *set_uuid,
    }
}

fn corrupt(location: Location, error: mcstore_recovery::FormatError) -> BadRead {
    BadRead::Corrupt { offset: location.offset, reason: error.to_string(), source: Some(error) }
}

/// A verified record is what the read wanted: a put of `key`.
fn check_put_of(
    key: &[u8],
    found: &[u8],
    kind: RecordKind,
    location: Location,
) -> std::result::Result<(), BadRead> {
    if found != key {
        return Err(BadRead::Corrupt {
            offset: location.offset,
            reason: "the record holds another key".to_string(),
            source: None,
        });
    }
    if kind != RecordKind::Put {
        return Err(BadRead::Corrupt {
            offset: location.offset,
            reason: "the indexed record is not a put".to_string(),
            source: None,
        });
    }
    Ok(())
}

/// Verify that `buf` holds the record at `location` as a put of `key`, and leave exactly its
/// value in `buf`.
fn extract_value(
    buf: &mut Vec<u8>,
    set_uuid: &Uuid,
    key: &[u8],
    location: Location,
) -> std::result::Result<(), BadRead> {
    let value_range = match decode_record(buf, &context(set_uuid, location)) {
        Ok(record) => {
            check_put_of(key, record.key, record.kind, location)?;
            // The value is a sub-slice of `buf`; find where, to move it to the front in place.
            let start = record.value.as_ptr() as usize - buf.as_ptr() as usize;
            start..start + record.value.len()
        }
        Err(error) => return Err(corrupt(location, error)),
    };
    let len = value_range.len();
    buf.copy_within(value_range, 0);
    buf.truncate(len);
    Ok(())
}

/// The commit barrier's middle choice for a bad read of `key` at `location`: read the record
/// from each replica of `poolset` through the machine-check-safe copy, accept the first copy
/// that verifies as a put of `key` (checksum over its offset, segment sequence and set uuid),
/// repair the primary from it and re-read (`PoolSet::retry_read`). `Some(outcome)`: `buf`
/// holds the verified value; `None`: no good copy anywhere (the fallback decides).
pub(crate) fn retry_from_replica(
    poolset: &PoolSet,
    set_uuid: &Uuid,
    key: &[u8],
    location: Location,
    buf: &mut Vec<u8>,
) -> Result<Option<RetryOutcome>> {
    let ctx = context(set_uuid, location);
    let verify = |bytes: &[u8]| {
        decode_record(bytes, &ctx).is_ok_and(|r| r.key == key && r.kind == RecordKind::Put)
    };
    buf.clear();
    buf.resize(location.len as usize, 0);
    let mut register = ErrorRegister::deferred();
    let outcome = poolset
        .retry_read(location.offset, buf, &mut register, Domain::User, &verify)
        .map_err(|error| Error::pmem("retrying a read from a replica", error))?;
    if !outcome.has_good_bytes() {
        buf.clear();
        return Ok(None);
    }
    // INVARIANT: `verify` accepted these bytes, so extracting cannot fail; if it did, the
    // bytes are not returned.
    match extract_value(buf, set_uuid, key, location) {
        Ok(()) => Ok(Some(outcome)),
        Err(_) => {
            buf.clear();
            Ok(None)
        }
    }
}

/// Apply the User policy's fallback to a bad read of `key` at `site` (after
/// [`retry_from_replica`] found no good copy, or when the store has no replicas): `Fail`
/// returns the error naming the key; `Halt` calls the hook and aborts.
pub(crate) fn user_fallback(
    policy: &Policy,
    bad: BadRead,
    key: &[u8],
    site: &'static str,
) -> Error {
    let error = match bad {
        BadRead::Media(fault) => Error::Media {
            domain: fault.domain,
            member: fault.member,
            offset: fault.offset,
            len: fault.len,
            key: Some(key.to_vec()),
        },
        BadRead::Corrupt { offset, reason, source } => Error::Corrupt {
            offset,
            reason,
            key: Some(key.to_vec()),
            source: source.map(|s| Box::new(s) as crate::error::Source),
        },
    };
    match policy.user.fallback {
        UserFallback::Fail => error,
        UserFallback::Halt => {
            let (member, offset, len) = match &error {
                Error::Media { member, offset, len, .. } => (*member, *offset, *len),
                Error::Corrupt { offset, .. } => (mcstore_pmem::MemberId(0), *offset, 0),
                _ => (mcstore_pmem::MemberId(0), 0, 0),
            };
            policy.halt(&HaltReport {
                domain: Domain::User,
                member,
                offset,
                len,
                key: Some(key.to_vec()),
                site,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use mcstore_pmem::{Domain, ErrorRegister, Medium};

    use super::SMALL_RECORD_BYTES;
    use crate::error::Error;
    use crate::test_support::{sim_db, small_options};

    /// Values on both sides of the small-record limit, with short and long keys, read back
    /// exactly through `get` and through a reused `get_into` buffer of any prior length.
    #[test]
    fn small_and_large_records_read_back_exactly() {
        let (_sim, db) = sim_db(4 << 20, small_options());
        let long_key = vec![b'k'; 300];
        let sizes = [0, 1, 100, SMALL_RECORD_BYTES - 40, SMALL_RECORD_BYTES, 5000, 40_000];
        for (i, &size) in sizes.iter().enumerate() {
            let value: Vec<u8> = (0..size).map(|b| (b * 7 + i) as u8).collect();
            db.put(format!("key{i}"), &value).unwrap();
            let mut key = long_key.clone();
            key.push(i as u8);
            db.put(&key, &value).unwrap();
        }
        let mut out = vec![0xee; 70_000];
        for (i, &size) in sizes.iter().enumerate() {
            let value: Vec<u8> = (0..size).map(|b| (b * 7 + i) as u8).collect();
            assert_eq!(db.get(format!("key{i}")).unwrap().unwrap(), value, "size {size}");
            assert!(db.get_into(format!("key{i}"), &mut out).unwrap());
            assert_eq!(out, value, "get_into, size {size}");
            let mut key = long_key.clone();
            key.push(i as u8);
            assert!(db.get_into(&key, &mut out).unwrap());
            assert_eq!(out, value, "long key, size {size}");
        }
        assert!(!db.get_into("absent", &mut out).unwrap());
    }

    /// The piece a mapped medium copies, then hashes, when it does not do both in one pass
    /// (`mcsafe::read_safe_hashing`): positions on both sides of one are tested below.
    const PIECE: usize = 16 << 10;

    /// A flipped bit anywhere in a large record (header, key, value in any piece, padding) is
    /// never returned: the read fails with the key (User policy: Fail).
    #[test]
    fn a_flipped_bit_in_a_large_record_fails_the_read() {
        let (sim, db) = sim_db(4 << 20, small_options());
        // Several pieces: the largest value a test segment (64 KiB) holds.
        let big = 60_000;
        assert!(big > PIECE);
        db.put("big", vec![3u8; 3001]).unwrap();
        db.put("bigger", vec![6u8; big]).unwrap();
        db.put("other", vec![4u8; 3001]).unwrap();
        for (key, value) in [(&b"big"[..], vec![3u8; 3001]), (b"bigger", vec![6u8; big])] {
            let location = db.inner.index.get(key).unwrap();
            let len = u64::from(location.len);
            for at in
                [8, 20, 33, len / 2, PIECE as u64 + 50, len - 1].into_iter().filter(|&at| at < len)
            {
                let mut byte = [0u8];
                let mut register = ErrorRegister::deferred();
                sim.read(location.offset + at, &mut byte, &mut register, Domain::Engine).unwrap();
                sim.write(location.offset + at, &[byte[0] ^ 0x08]).unwrap();
                let mut out = Vec::new();
                match db.get_into(key, &mut out) {
                    Err(Error::Corrupt { key: named, .. }) => {
                        assert_eq!(named.as_deref(), Some(key))
                    }
                    other => panic!("flip at {at}: expected Corrupt, got {other:?}"),
                }
                sim.write(location.offset + at, &byte).unwrap();
                assert_eq!(db.get(key).unwrap().unwrap(), value);
            }
        }
        assert_eq!(db.get("other").unwrap().unwrap(), vec![4u8; 3001]);
    }

    /// Poison in a large record's value — in its middle, or in the last line of a value longer
    /// than a piece — is a media error naming the key.
    #[test]
    fn poison_in_a_large_value_is_a_media_error_anywhere() {
        // (value length, whether the poisoned line is the value's last one)
        for (len, at_end) in [(9000, false), (PIECE + 20_077, true)] {
            let (sim, db) = sim_db(4 << 20, small_options());
            db.put("big", vec![5u8; len]).unwrap();
            let location = db.inner.index.get(b"big").unwrap();
            let line = if at_end {
                (location.offset + u64::from(location.len) - 10) & !63
            } else {
                (location.offset + 4096) & !63
            };
            sim.inject_poison(line, 64).unwrap();
            let mut out = Vec::new();
            match db.get_into("big", &mut out) {
                Err(Error::Media { offset, key, .. }) => {
                    assert_eq!((offset, key.as_deref()), (line, Some(&b"big"[..])), "{len} B");
                }
                other => panic!("{len} B: expected Error::Media, got {other:?}"),
            }
        }
    }
}
