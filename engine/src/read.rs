//! The read path: one machine-check-safe copy of a whole record, verified, then the commit
//! barrier's check — clean register and good checksum → the value; otherwise re-look-up once,
//! then the User policy (`docs/policy.md`).
//!
//! INVARIANT: bytes are returned only from a record whose checksum (over header, key, value,
//! its own offset, segment sequence and set uuid) verified and whose key equals the key asked
//! for, read with a clean register.

use mcstore_pmem::{Domain, ErrorRegister, Fault, Medium, PoolSet, RetryOutcome};
use mcstore_recovery::format::{RecordContext, RecordKind, Uuid, decode_record};

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

/// Read the record at `location` into `buf` and verify it is a put of `key`. On success `buf`
/// holds exactly the value.
pub(crate) fn read_value_into(
    medium: &dyn Medium,
    set_uuid: &Uuid,
    key: &[u8],
    location: Location,
    buf: &mut Vec<u8>,
) -> Result<std::result::Result<(), BadRead>> {
    buf.clear();
    buf.resize(location.len as usize, 0);
    let mut register = ErrorRegister::deferred();
    medium
        .read(location.offset, buf, &mut register, Domain::User)
        .map_err(|error| Error::pmem("reading a record", error))?;
    if !register.is_clean() {
        let fault = register.first().copied().unwrap_or(Fault {
            member: medium.member(),
            offset: location.offset,
            len: u64::from(location.len),
            domain: Domain::User,
            code: mcstore_pmem::FaultCode::Simulated,
        });
        return Ok(Err(BadRead::Media(fault)));
    }
    Ok(extract_value(buf, set_uuid, key, location))
}

/// Verify that `buf` holds the record at `location` as a put of `key`, and leave exactly its
/// value in `buf`.
fn extract_value(
    buf: &mut Vec<u8>,
    set_uuid: &Uuid,
    key: &[u8],
    location: Location,
) -> std::result::Result<(), BadRead> {
    let ctx = RecordContext {
        offset: location.offset,
        segment_seq: location.segment_seq,
        set_uuid: *set_uuid,
    };
    let value_range = match decode_record(buf, &ctx) {
        Ok(record) if record.key != key => {
            return Err(BadRead::Corrupt {
                offset: location.offset,
                reason: "the record holds another key".to_string(),
                source: None,
            });
        }
        Ok(record) if record.kind != RecordKind::Put => {
            return Err(BadRead::Corrupt {
                offset: location.offset,
                reason: "the indexed record is not a put".to_string(),
                source: None,
            });
        }
        Ok(record) => {
            // The value is a sub-slice of `buf`; find where, to move it to the front in place.
            let start = record.value.as_ptr() as usize - buf.as_ptr() as usize;
            start..start + record.value.len()
        }
        Err(error) => {
            return Err(BadRead::Corrupt {
                offset: location.offset,
                reason: error.to_string(),
                source: Some(error),
            });
        }
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
    let ctx = RecordContext {
        offset: location.offset,
        segment_seq: location.segment_seq,
        set_uuid: *set_uuid,
    };
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
