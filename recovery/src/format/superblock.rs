//! The superblock: two slots on different 4 KiB pages (A at 0, B at 4096), each 256 bytes,
//! checksummed and generation-numbered. Generation g lives in slot g % 2, so an update never
//! overwrites the newest valid copy.
//!
//! INVARIANT: magic, version and checksum (xxh3-64 of `[0, 248)` at 248) sit where they are in
//! every version, so a newer version is recognised from a slot that verifies and damage never
//! passes for one; the checksum covers every other byte of the slot, including its slot number,
//! so a slot copied to the other page does not validate.

use super::bytes::{array16_at, put_u32, put_u64, u32_at, u64_at};
use super::checksum::hash64;
use super::error::FormatError;
use super::features::Features;
use super::geometry::Geometry;
use super::ids::{Lsn, Uuid};
use crate::limits::CREATED_BY_BYTES_MAX;

/// The pool magic (bytes 0..8 of each slot).
pub const MAGIC: [u8; 8] = *b"MCSTPOOL";
/// The format this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of one superblock slot.
pub const SUPERBLOCK_BYTES: usize = 256;
/// Pool offsets of slot A and slot B.
pub const SUPERBLOCK_SLOT_OFFSETS: [u64; 2] = [0, 4096];

const OFF_VERSION: usize = 8;
const OFF_SLOT: usize = 12;
const OFF_GENERATION: usize = 16;
const OFF_COMPAT: usize = 24;
const OFF_RO_COMPAT: usize = 32;
const OFF_INCOMPAT: usize = 40;
const OFF_POOL_UUID: usize = 48;
const OFF_SET_UUID: usize = 64;
const OFF_MEMBER_INDEX: usize = 80;
const OFF_MEMBER_STATE: usize = 84;
const OFF_SEGMENT_SIZE: usize = 88;
const OFF_SEGMENTS_START: usize = 96;
const OFF_HIGHEST_SEQ: usize = 104;
const OFF_LSN_FLOOR: usize = 112;
const OFF_CLEAN: usize = 120;
const OFF_PID: usize = 124;
const OFF_CREATED_SECS: usize = 128;
const OFF_CREATED_BY_LEN: usize = 136;
const OFF_SEGMENT_COUNT: usize = 140;
const OFF_CREATED_BY: usize = 144;
const OFF_SHUTDOWN_COUNT: usize = OFF_CREATED_BY + CREATED_BY_BYTES_MAX;
const OFF_RESERVED: usize = OFF_SHUTDOWN_COUNT + 8;
const OFF_CHECKSUM: usize = 248;
const _: () = assert!(OFF_SHUTDOWN_COUNT == 208);
const _: () = assert!(OFF_RESERVED == 216);
const _: () = assert!(OFF_CHECKSUM + 8 == SUPERBLOCK_BYTES);

/// A replica-set member's state: the one type `mcstore_pmem::poolset` keeps at run time,
/// re-exported so the format and the set share it. Its on-media code is defined here only.
pub use mcstore_pmem::poolset::MemberState;

/// The on-media code of a member state (superblock `member_state`, member-table `state`).
pub(crate) fn member_state_code(state: MemberState) -> u32 {
    match state {
        MemberState::InSync => 1,
        MemberState::Stale => 2,
        MemberState::Resilvering => 3,
    }
}

/// Decodes [`member_state_code`]; `None` for a code no version writes.
pub(crate) fn member_state_from_code(code: u32) -> Option<MemberState> {
    match code {
        1 => Some(MemberState::InSync),
        2 => Some(MemberState::Stale),
        3 => Some(MemberState::Resilvering),
        _ => None,
    }
}

/// The decoded contents of a superblock slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// The format version found (this build writes [`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Update counter; generation g is stored in slot g % 2.
    pub generation: u64,
    /// Feature flags.
    pub features: Features,
    /// This member's own uuid.
    pub pool_uuid: Uuid,
    /// The replica set's uuid (shared by members; bound into every record checksum).
    pub set_uuid: Uuid,
    /// This member's index in the set (0 = primary).
    pub member_index: u32,
    /// This member's state.
    pub member_state: MemberState,
    /// Segment size and placement.
    pub geometry: Geometry,
    /// Highest segment sequence ever issued; a segment header above it is stale.
    pub highest_segment_seq: u64,
    /// Every LSN ever issued is below this (recovery starts at least here).
    pub next_lsn_floor: Lsn,
    /// The last opener closed cleanly.
    pub clean_shutdown: bool,
    /// Pid of the process that opened the pool last.
    pub opener_pid: u32,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix_secs: u64,
    /// What created the pool (e.g. "mcstore 0.1.0"), at most 64 bytes of UTF-8.
    pub created_by: String,
    /// Segments the pool has (recorded at creation and at every growth, before a grown segment
    /// is used); a file holding fewer was truncated. 0: not recorded (pools written before this
    /// field existed), so no check.
    pub segment_count: u32,
    /// The device's unsafe-shutdown count when the pool was last closed cleanly, if the opener
    /// was told where to read it (`Features::COMPAT_SHUTDOWN_COUNT` marks it present). A count
    /// that differs at the next open forces the full verifying scan.
    pub unsafe_shutdown_count: Option<u64>,
}

impl Superblock {
    /// The slot (0 = A, 1 = B) this superblock's generation is written to.
    pub fn slot(&self) -> usize {
        (self.generation % 2) as usize
    }

    /// The 256 bytes of this superblock for its slot, checksum included.
    pub fn encode(&self) -> [u8; SUPERBLOCK_BYTES] {
        let mut out = [0u8; SUPERBLOCK_BYTES];
        out[0..8].copy_from_slice(&MAGIC);
        put_u32(&mut out, OFF_VERSION, FORMAT_VERSION);
        put_u32(&mut out, OFF_SLOT, self.slot() as u32);
        put_u64(&mut out, OFF_GENERATION, self.generation);
        let mut compat = self.features.compat & !Features::COMPAT_SHUTDOWN_COUNT;
        if let Some(count) = self.unsafe_shutdown_count {
            compat |= Features::COMPAT_SHUTDOWN_COUNT;
            put_u64(&mut out, OFF_SHUTDOWN_COUNT, count);
        }
        put_u64(&mut out, OFF_COMPAT, compat);
        put_u64(&mut out, OFF_RO_COMPAT, self.features.ro_compat);
        put_u64(&mut out, OFF_INCOMPAT, self.features.incompat);
        out[OFF_POOL_UUID..OFF_POOL_UUID + 16].copy_from_slice(&self.pool_uuid.0);
        out[OFF_SET_UUID..OFF_SET_UUID + 16].copy_from_slice(&self.set_uuid.0);
        put_u32(&mut out, OFF_MEMBER_INDEX, self.member_index);
        put_u32(&mut out, OFF_MEMBER_STATE, member_state_code(self.member_state));
        put_u64(&mut out, OFF_SEGMENT_SIZE, self.geometry.segment_size_bytes);
        put_u64(&mut out, OFF_SEGMENTS_START, self.geometry.segments_start);
        put_u64(&mut out, OFF_HIGHEST_SEQ, self.highest_segment_seq);
        put_u64(&mut out, OFF_LSN_FLOOR, self.next_lsn_floor.0);
        put_u32(&mut out, OFF_CLEAN, u32::from(self.clean_shutdown));
        put_u32(&mut out, OFF_PID, self.opener_pid);
        put_u64(&mut out, OFF_CREATED_SECS, self.created_unix_secs);
        let created_by = truncate_utf8(&self.created_by, CREATED_BY_BYTES_MAX);
        put_u32(&mut out, OFF_CREATED_BY_LEN, created_by.len() as u32);
        put_u32(&mut out, OFF_SEGMENT_COUNT, self.segment_count);
        out[OFF_CREATED_BY..OFF_CREATED_BY + created_by.len()]
            .copy_from_slice(created_by.as_bytes());
        let sum = hash64(&out[..OFF_CHECKSUM]);
        put_u64(&mut out, OFF_CHECKSUM, sum);
        out
    }

    /// Decode the slot read from position `slot` (0 = A, 1 = B). Order of checks: length,
    /// magic, checksum, version, slot number, fields, incompat features. Every version keeps the
    /// magic, the version and the checksum (xxh3-64 of `[0, 248)` at 248) where they are.
    pub fn decode(bytes: &[u8], slot: usize) -> Result<Self, FormatError> {
        let Some(raw) = bytes.get(..SUPERBLOCK_BYTES) else {
            return Err(FormatError::Truncated {
                what: "superblock",
                needed: SUPERBLOCK_BYTES as u64,
                got: bytes.len() as u64,
            });
        };
        if raw[0..8] != MAGIC {
            return Err(FormatError::BadMagic { what: "superblock" });
        }
        // The checksum's place and hash are part of the version-independent prefix (with the
        // magic and the version), so a version above ours is believed only from a slot that
        // verifies: damage that reads clean (cleared poison, a torn word) is a bad slot, never a
        // newer pool.
        if hash64(&raw[..OFF_CHECKSUM]) != u64_at(raw, OFF_CHECKSUM) {
            return Err(FormatError::BadChecksum { what: "superblock" });
        }
        let format_version = u32_at(raw, OFF_VERSION);
        if format_version > FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion {
                found: format_version,
                supported: FORMAT_VERSION,
            });
        }
        if format_version == 0 {
            return Err(FormatError::InvalidField { field: "format version", value: 0 });
        }
        let generation = u64_at(raw, OFF_GENERATION);
        let stored_slot = u32_at(raw, OFF_SLOT);
        if stored_slot as usize != slot || generation % 2 != slot as u64 {
            return Err(FormatError::InvalidField {
                field: "superblock slot",
                value: stored_slot.into(),
            });
        }
        let segment_size_bytes = u64_at(raw, OFF_SEGMENT_SIZE);
        let geometry = Geometry::for_segment_size(segment_size_bytes)?;
        let segments_start = u64_at(raw, OFF_SEGMENTS_START);
        if segments_start != geometry.segments_start {
            return Err(FormatError::InvalidField {
                field: "segments start",
                value: segments_start,
            });
        }
        let clean = u32_at(raw, OFF_CLEAN);
        if clean > 1 {
            return Err(FormatError::InvalidField {
                field: "clean-shutdown flag",
                value: clean.into(),
            });
        }
        let created_by_len = u32_at(raw, OFF_CREATED_BY_LEN) as usize;
        let created_by = raw
            .get(OFF_CREATED_BY..OFF_CREATED_BY + created_by_len.min(CREATED_BY_BYTES_MAX))
            .filter(|_| created_by_len <= CREATED_BY_BYTES_MAX)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or(FormatError::InvalidField {
                field: "created_by",
                value: created_by_len as u64,
            })?;
        let features = Features {
            compat: u64_at(raw, OFF_COMPAT),
            ro_compat: u64_at(raw, OFF_RO_COMPAT),
            incompat: u64_at(raw, OFF_INCOMPAT),
        };
        if features.unknown_incompat() != 0 {
            return Err(FormatError::UnknownIncompatFeatures {
                flags: features.unknown_incompat(),
            });
        }
        Ok(Superblock {
            format_version,
            generation,
            features,
            pool_uuid: Uuid(array16_at(raw, OFF_POOL_UUID)),
            set_uuid: Uuid(array16_at(raw, OFF_SET_UUID)),
            member_index: u32_at(raw, OFF_MEMBER_INDEX),
            member_state: {
                let code = u32_at(raw, OFF_MEMBER_STATE);
                member_state_from_code(code).ok_or(FormatError::InvalidField {
                    field: "member state",
                    value: code.into(),
                })?
            },
            geometry,
            highest_segment_seq: u64_at(raw, OFF_HIGHEST_SEQ),
            next_lsn_floor: Lsn(u64_at(raw, OFF_LSN_FLOOR)),
            clean_shutdown: clean == 1,
            opener_pid: u32_at(raw, OFF_PID),
            created_unix_secs: u64_at(raw, OFF_CREATED_SECS),
            created_by: created_by.to_owned(),
            segment_count: u32_at(raw, OFF_SEGMENT_COUNT),
            unsafe_shutdown_count: (features.compat & Features::COMPAT_SHUTDOWN_COUNT != 0)
                .then(|| u64_at(raw, OFF_SHUTDOWN_COUNT)),
        })
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn truncate_utf8(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample(generation: u64) -> Superblock {
        Superblock {
            format_version: FORMAT_VERSION,
            generation,
            features: Features::default(),
            pool_uuid: Uuid([1; 16]),
            set_uuid: Uuid([2; 16]),
            member_index: 0,
            member_state: MemberState::InSync,
            geometry: Geometry::for_segment_size(64 << 10).unwrap(),
            highest_segment_seq: 4,
            next_lsn_floor: Lsn(10),
            clean_shutdown: true,
            opener_pid: 4242,
            created_unix_secs: 1_800_000_000,
            created_by: "mcstore-recovery test".into(),
            segment_count: 7,
            unsafe_shutdown_count: None,
        }
    }

    #[test]
    fn round_trip_in_its_slot_only() {
        for generation in [0, 1, 2, 77] {
            let sb = sample(generation);
            let bytes = sb.encode();
            assert_eq!(Superblock::decode(&bytes, sb.slot()), Ok(sb.clone()));
            assert!(Superblock::decode(&bytes, 1 - sb.slot()).is_err(), "swapped slot accepted");
        }
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let bytes = sample(6).encode();
        for bit in 0..SUPERBLOCK_BYTES * 8 {
            let mut bad = bytes;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(Superblock::decode(&bad, 0).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn newer_version_and_unknown_incompat_are_unsupported() {
        let mut bytes = sample(2).encode();
        bytes[OFF_VERSION..OFF_VERSION + 4].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        // Damage that reads clean is not a newer pool: the version is believed only from a
        // slot whose checksum verifies (a `poison_ops` finding: a cleared poisoned line kept
        // the magic and read as format version 0xA5A5A5A5).
        assert_eq!(
            Superblock::decode(&bytes, 0),
            Err(FormatError::BadChecksum { what: "superblock" })
        );
        let sum = hash64(&bytes[..OFF_CHECKSUM]);
        bytes[OFF_CHECKSUM..].copy_from_slice(&sum.to_le_bytes());
        assert!(matches!(
            Superblock::decode(&bytes, 0),
            Err(FormatError::UnsupportedVersion { .. })
        ));
        let mut sb = sample(2);
        sb.features.incompat = 1 << 40;
        assert_eq!(
            Superblock::decode(&sb.encode(), 0),
            Err(FormatError::UnknownIncompatFeatures { flags: 1 << 40 })
        );
        sb.features = Features { compat: 1 << 3, ro_compat: 0, incompat: 0 };
        assert!(Superblock::decode(&sb.encode(), 0).is_ok());
    }

    #[test]
    fn zeroed_and_truncated_slots_are_errors() {
        assert_eq!(
            Superblock::decode(&[0u8; 256], 0),
            Err(FormatError::BadMagic { what: "superblock" })
        );
        assert!(matches!(
            Superblock::decode(&sample(0).encode()[..255], 0),
            Err(FormatError::Truncated { .. })
        ));
    }

    #[test]
    fn unsafe_shutdown_count_round_trips_behind_its_compat_bit() {
        let mut sb = sample(4);
        for count in [Some(0), Some(17), Some(u64::MAX), None] {
            sb.unsafe_shutdown_count = count;
            let bytes = sb.encode();
            let back = Superblock::decode(&bytes, 0).unwrap();
            assert_eq!(back.unsafe_shutdown_count, count);
            assert_eq!(
                back.features.compat & Features::COMPAT_SHUTDOWN_COUNT != 0,
                count.is_some()
            );
            assert_eq!(back, Superblock { features: back.features, ..sb.clone() });
        }
    }

    #[test]
    fn created_by_is_truncated_on_a_char_boundary() {
        let mut sb = sample(0);
        sb.created_by = "é".repeat(40);
        let back = Superblock::decode(&sb.encode(), 0).unwrap();
        assert_eq!(back.created_by, "é".repeat(32));
    }
}
