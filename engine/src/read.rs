//! The read path: one machine-check-safe copy of a whole record, verified, then the commit
//! barrier's check — clean register and good checksum → the value; otherwise re-look-up once,
//! then the User policy (`docs/policy.md`).
//!
//! INVARIANT: bytes are returned only from a record whose checksum (over header, key, value,
//! its own offset, segment sequence and set uuid) verified and whose key equals the key asked
//! for, read with a clean register.

use mcstore_pmem::{Domain, ErrorRegister, Fault, Medium};
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
    let ctx = RecordContext {
        offset: location.offset,
        segment_seq: location.segment_seq,
        set_uuid: *set_uuid,
    };
    let value_range = match decode_record(buf, &ctx) {
        Ok(record) if record.key != key => {
            return Ok(Err(BadRead::Corrupt {
                offset: location.offset,
                reason: "the record holds another key".to_string(),
                source: None,
            }));
        }
        Ok(record) if record.kind != RecordKind::Put => {
            return Ok(Err(BadRead::Corrupt {
                offset: location.offset,
                reason: "the indexed record is not a put".to_string(),
                source: None,
            }));
        }
        Ok(record) => {
            // The value is a sub-slice of `buf`; find where, to move it to the front in place.
            let start = record.value.as_ptr() as usize - buf.as_ptr() as usize;
            start..start + record.value.len()
        }
        Err(error) => {
            return Ok(Err(BadRead::Corrupt {
                offset: location.offset,
                reason: error.to_string(),
                source: Some(error),
            }));
        }
    };
    let len = value_range.len();
    buf.copy_within(value_range, 0);
    buf.truncate(len);
    Ok(Ok(()))
}

/// Apply the User policy to a bad read of `key` at `site`: `Fail` returns the error naming the
/// key; `Halt` calls the hook and aborts. (`retry_replica` finds no replica yet: a no-op.)
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
