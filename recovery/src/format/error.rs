//! Errors from decoding untrusted bytes or from asking the format for an impossible layout.

/// Why bytes do not decode (or a layout request is invalid).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Fewer bytes than the structure needs.
    #[error("truncated: {what} needs {needed} bytes, got {got}")]
    Truncated {
        /// Which structure.
        what: &'static str,
        /// Bytes it needs.
        needed: u64,
        /// Bytes available.
        got: u64,
    },
    /// The magic number is not ours.
    #[error("bad magic in {what}")]
    BadMagic {
        /// Which structure.
        what: &'static str,
    },
    /// Written by a newer format version than this build reads.
    #[error("format version {found} is newer than supported version {supported}")]
    UnsupportedVersion {
        /// The version on the medium.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// Incompatible feature flags this build does not know.
    #[error("unknown incompatible feature flags {flags:#x}")]
    UnknownIncompatFeatures {
        /// The unknown bits.
        flags: u64,
    },
    /// The stored checksum does not match the bytes.
    #[error("bad checksum in {what}")]
    BadChecksum {
        /// Which structure.
        what: &'static str,
    },
    /// A field holds a value the format does not allow.
    #[error("invalid {field}: {value}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// The value found (widened).
        value: u64,
    },
    /// A geometry request the format cannot lay out.
    #[error("invalid geometry: {reason}")]
    BadGeometry {
        /// Why.
        reason: String,
    },
}
