//! The recovery crate's one error type.
//!
//! Damage inside the log is not an error (it is listed in `Recovered::damage` for the engine's
//! policy); errors are what stops a pool from being read at all.

use crate::format::FormatError;
use crate::scan::RecoveryReport;

/// Result alias for the recovery crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a pool's format is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnsupportedReason {
    /// Neither slot carries mcstore's magic: not an mcstore pool (or wiped).
    BadMagic,
    /// Written by a newer format version.
    NewerVersion {
        /// Version on the medium.
        found: u32,
        /// Newest this build reads.
        supported: u32,
    },
    /// Incompatible features this build does not know.
    UnknownIncompat {
        /// The unknown bits.
        flags: u64,
    },
}

impl std::fmt::Display for UnsupportedReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnsupportedReason::BadMagic => write!(f, "not an mcstore pool (bad magic)"),
            UnsupportedReason::NewerVersion { found, supported } => {
                write!(f, "format version {found} is newer than supported {supported}")
            }
            UnsupportedReason::UnknownIncompat { flags } => {
                write!(f, "unknown incompatible features {flags:#x}")
            }
        }
    }
}

/// Errors of the recovery crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bytes that do not decode, or an impossible layout request.
    #[error("format: {0}")]
    Format(#[from] FormatError),
    /// The device layer failed (out of bounds, crashed medium, I/O).
    #[error("medium: {0}")]
    Pmem(#[from] mcstore_pmem::Error),
    /// Damage that recovery cannot decide about alone (e.g. poison on a superblock slot that may
    /// be the newer one): the report says what and where.
    #[error("pool damaged: {0}")]
    Damaged(Box<RecoveryReport>),
    /// A foreign or newer format.
    #[error("unsupported format: {reason}")]
    UnsupportedFormat {
        /// Why.
        reason: UnsupportedReason,
    },
    /// The pool's own structures are inconsistent (both superblock slots invalid, ...).
    #[error("corrupt pool: {reason}")]
    Corrupt {
        /// What is wrong.
        reason: String,
    },
}
