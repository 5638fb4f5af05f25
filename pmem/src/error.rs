//! The device layer's one error type. Every failure a caller can meet at this layer is a variant
//! here with the context needed to act on it; a poisoned line met by a read is *not* an error
//! (it goes to the caller's [`crate::ErrorRegister`]).

use std::path::PathBuf;

/// Result alias for the device layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the device layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The pool file does not exist.
    #[error("{path}: no such file")]
    NotFound {
        /// The path asked for.
        path: PathBuf,
    },
    /// `create` found a file already there.
    #[error("{path}: already exists")]
    AlreadyExists {
        /// The path asked for.
        path: PathBuf,
    },
    /// The file is smaller than the minimum or not a whole number of pages.
    #[error("{path}: size {len} bytes is invalid: {reason}")]
    BadSize {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        len: u64,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Not a regular file (a directory, a device such as devdax, a socket ...).
    #[error("{path}: not a regular file: {reason}")]
    NotRegularFile {
        /// The path.
        path: PathBuf,
        /// What it is and why it is refused.
        reason: String,
    },
    /// Another open handle (in this process or another) holds the pool's lock.
    #[error("{path}: locked by another open handle")]
    Locked {
        /// The locked file.
        path: PathBuf,
    },
    /// The requested mode cannot be had on this file.
    #[error("{path}: mode {mode} unavailable: {reason}")]
    ModeUnavailable {
        /// The file.
        path: PathBuf,
        /// The mode asked for.
        mode: &'static str,
        /// Why not.
        reason: String,
    },
    /// Growing the file failed for lack of space on its file system.
    #[error("out of space growing to {requested} bytes")]
    OutOfSpace {
        /// The length asked for.
        requested: u64,
    },
    /// A change (write, store, grow, poison injection, repair) on a medium opened read-only.
    #[error("{path}: {what} refused: opened read-only")]
    ReadOnly {
        /// The file.
        path: PathBuf,
        /// What was refused.
        what: String,
    },
    /// A grow beyond the reserved maximum.
    #[error("grow to {requested} bytes exceeds the reserved maximum of {max} bytes")]
    BeyondMax {
        /// The length asked for.
        requested: u64,
        /// The reserved maximum.
        max: u64,
    },
    /// A read, write, store or flush outside `[0, len)`.
    #[error("access [{offset}, {offset}+{len}) out of bounds of medium of {medium_len} bytes")]
    OutOfBounds {
        /// Start of the access.
        offset: u64,
        /// Length of the access.
        len: u64,
        /// The medium's length.
        medium_len: u64,
    },
    /// The kernel's `vm.max_map_count` is exhausted (each poisoned range splits a mapping).
    #[error("vm.max_map_count exhausted: too many mappings (raise the sysctl or clear poison)")]
    MapCountExhausted,
    /// A write, store or flush touched a page known to be poisoned; nothing was written there.
    #[error("write to poisoned range at offset {offset} (+{len}): repair or quarantine it first")]
    Poisoned {
        /// Start of the poisoned unit met.
        offset: u64,
        /// Its length.
        len: u64,
    },
    /// The SIGBUS handler could not be installed or was replaced by another.
    #[error("SIGBUS handler: {0}")]
    Handler(String),
    /// A simulated crash happened at a fence; the medium accepts no more operations.
    #[error("simulated crash: the medium is frozen")]
    Crashed,
    /// Injected failure (failure-point testing).
    #[error("injected failure: {0}")]
    Injected(&'static str),
    /// A malformed badblocks sidecar or sysfs list.
    #[error("{path}:{line}: {reason}")]
    BadBlocksFormat {
        /// The file.
        path: PathBuf,
        /// One-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Any other I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// An [`Error::Io`] from the last OS error, with context.
    pub fn last_os(context: impl Into<String>) -> Self {
        Error::Io { context: context.into(), source: std::io::Error::last_os_error() }
    }

    /// An [`Error::Io`] with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }
}
