//! Identities and quantities that cross the format boundary: `Uuid`, `Lsn`, `SegmentId`.
//!
//! `Uuid::random` draws from the OS generator (`/dev/urandom`, else std's randomly keyed
//! SipHash); a pool's set uuid goes into every record checksum, so it must not repeat.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;

/// A 16-byte identifier (pool uuid, replica-set uuid). Displayed as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// The all-zero uuid (never issued by [`Uuid::random`]).
    pub const NIL: Uuid = Uuid([0; 16]);

    /// A fresh random (version 4) uuid.
    pub fn random() -> Uuid {
        let mut bytes = [0u8; 16];
        // Miri's isolation has no files and no clock; std's hasher keys still come from its
        // generator there.
        let from_os = !cfg!(miri)
            && std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut bytes))
                .is_ok();
        if !from_os || bytes == [0; 16] {
            // std keys each RandomState from the OS generator; two hashers give 128 bits.
            for (i, chunk) in bytes.chunks_mut(8).enumerate() {
                let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
                hasher.write_usize(i);
                hasher.write_u128(if cfg!(miri) {
                    0
                } else {
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos())
                });
                chunk.copy_from_slice(&hasher.finish().to_le_bytes());
            }
        }
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Uuid(bytes)
    }

    /// Whether this is the nil uuid.
    pub fn is_nil(&self) -> bool {
        self.0 == [0; 16]
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uuid({self})")
    }
}

/// Log sequence number: orders every record over the pool's life (newest wins).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// The next LSN.
    pub fn next(self) -> Lsn {
        Lsn(self.0.saturating_add(1))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Index of a segment: its position in the pool (offset = segments_start + id × size).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SegmentId(pub u32);

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_uuids_differ_and_are_version_4() {
        let a = Uuid::random();
        let b = Uuid::random();
        assert_ne!(a, b);
        assert!(!a.is_nil());
        assert_eq!(a.0[6] >> 4, 4);
        assert_eq!(a.0[8] >> 6, 2);
    }

    #[test]
    fn uuid_displays_as_hex() {
        let mut bytes = [0u8; 16];
        bytes[0] = 0xab;
        bytes[15] = 0x01;
        assert_eq!(Uuid(bytes).to_string(), "ab000000000000000000000000000001");
    }
}
