//! The engine's one error type, `Error`, and the mapping of the lower layers' errors into it.
//!
//! Every variant carries what a caller needs to act: a media error names the member, range and
//! key; lower-layer errors are kept as `#[source]`. INVARIANT: `Failed` is returned only by a
//! store in the sticky failed state (or by the call that latched it).

use std::path::PathBuf;

use mcstore_pmem::{Domain, MemberId};
use mcstore_recovery::RecoveryReport;

/// Result alias of the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A boxed lower-layer error kept as a source.
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A read met poisoned media and the policy failed the operation; nothing was committed.
    #[error("media error ({domain:?} domain) at member {} offset {offset} (+{len}){}",
        member.0, key_suffix(key.as_deref()))]
    Media {
        /// Whose bytes were lost.
        domain: Domain,
        /// Which member of the pool set.
        member: MemberId,
        /// Start of the poisoned range, in bytes from the start of the member.
        offset: u64,
        /// Its length.
        len: u64,
        /// The key of the operation, if it had one.
        key: Option<Vec<u8>>,
    },
    /// Bytes read cleanly but did not verify (checksum, key or structure mismatch).
    #[error("corrupt data at offset {offset}: {reason}{}", key_suffix(key.as_deref()))]
    Corrupt {
        /// Pool offset of the structure that did not verify.
        offset: u64,
        /// What did not verify.
        reason: String,
        /// The key of the operation, if it had one.
        key: Option<Vec<u8>>,
        /// The decoder's error.
        #[source]
        source: Option<Source>,
    },
    /// Recovery found damage the policy would not accept; the report lists it.
    #[error("the pool is damaged: {0}")]
    Damaged(Box<RecoveryReport>),
    /// No free segment and the pool cannot grow; nothing was written.
    #[error(
        "out of space: {needed} bytes needed, pool of {pool_bytes} bytes (max {max_bytes}) is full"
    )]
    OutOfSpace {
        /// Bytes the operation needed in one segment.
        needed: u64,
        /// Current pool size.
        pool_bytes: u64,
        /// The size the pool may grow to.
        max_bytes: u64,
    },
    /// A key longer than the limit.
    #[error("key of {len} bytes exceeds the limit of {max} bytes")]
    KeyTooLarge {
        /// The key's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A value longer than the limit (or than fits in one segment with its key).
    #[error("value of {len} bytes exceeds the limit of {max} bytes")]
    ValueTooLarge {
        /// The value's length.
        len: usize,
        /// The limit for this key in this pool.
        max: usize,
    },
    /// A batch that does not fit in one segment, or has too many operations.
    #[error(
        "batch of {ops} operations and {bytes} encoded bytes exceeds the limit ({max_bytes} bytes, {max_ops} operations)"
    )]
    BatchTooLarge {
        /// Operations in the batch.
        ops: usize,
        /// Its encoded size.
        bytes: u64,
        /// Bytes one segment holds.
        max_bytes: u64,
        /// Operations a batch may hold.
        max_ops: usize,
    },
    /// `open` of a pool that does not exist.
    #[error("{path}: not found")]
    NotFound {
        /// The path.
        path: PathBuf,
        /// The device layer's error.
        #[source]
        source: Option<Source>,
    },
    /// `create` of a pool that already exists.
    #[error("{path}: already exists")]
    AlreadyExists {
        /// The path.
        path: PathBuf,
        /// The device layer's error.
        #[source]
        source: Option<Source>,
    },
    /// Another handle (in this process or another) has the pool open.
    #[error("{path}: locked by another open handle")]
    Locked {
        /// The path.
        path: PathBuf,
        /// The device layer's error.
        #[source]
        source: Option<Source>,
    },
    /// Not an mcstore pool, or a format this version cannot read.
    #[error("unsupported format: {reason}")]
    UnsupportedFormat {
        /// Why (bad magic, newer version, unknown incompatible feature ...).
        reason: String,
        /// The decoder's error.
        #[source]
        source: Option<Source>,
    },
    /// A write through a read-only handle.
    #[error("the store is open read-only")]
    ReadOnly,
    /// The store is in the sticky failed state (a failed persist or Engine-domain damage under
    /// `Latch`); reopen it.
    #[error("the store has failed and must be reopened: {reason}")]
    Failed {
        /// What latched it.
        reason: String,
    },
    /// A transaction kept meeting conflicting writes and gave up.
    #[error("transaction gave up after {attempts} conflicting attempts")]
    Conflict {
        /// Attempts made.
        attempts: u32,
    },
    /// Options out of range.
    #[error("invalid options: {reason}")]
    InvalidOptions {
        /// What is wrong.
        reason: String,
    },
    /// The device failed (I/O, mapping, mode, persist); the source says how.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The device layer's error.
        #[source]
        source: Source,
    },
}

fn key_suffix(key: Option<&[u8]>) -> String {
    match key {
        Some(key) => format!(" (key {})", key.escape_ascii()),
        None => String::new(),
    }
}

impl Error {
    /// Map a device-layer error met while `context`.
    pub(crate) fn pmem(context: &str, error: mcstore_pmem::Error) -> Self {
        use mcstore_pmem::Error as P;
        match error {
            P::NotFound { ref path } => {
                Error::NotFound { path: path.clone(), source: Some(error.into()) }
            }
            P::AlreadyExists { ref path } => {
                Error::AlreadyExists { path: path.clone(), source: Some(error.into()) }
            }
            P::Locked { ref path } => {
                Error::Locked { path: path.clone(), source: Some(error.into()) }
            }
            P::ReadOnly { .. } => Error::ReadOnly,
            other => Error::Io { context: context.to_string(), source: Box::new(other) },
        }
    }

    /// Map a recovery-layer error met while `context`.
    pub(crate) fn recovery(context: &str, error: mcstore_recovery::Error) -> Self {
        use mcstore_recovery::Error as R;
        match error {
            R::Pmem(inner) => Error::pmem(context, inner),
            R::Damaged(report) => Error::Damaged(report),
            R::UnsupportedFormat { .. } => Error::UnsupportedFormat {
                reason: error.to_string(),
                source: Some(Box::new(error)),
            },
            other => Error::Corrupt {
                offset: 0,
                reason: format!("{context}: {other}"),
                key: None,
                source: Some(Box::new(other)),
            },
        }
    }

    /// Whether this is `Error::Failed`.
    pub fn is_failed(&self) -> bool {
        matches!(self, Error::Failed { .. })
    }

    /// The key a media or corruption error names.
    pub fn key(&self) -> Option<&[u8]> {
        match self {
            Error::Media { key, .. } | Error::Corrupt { key, .. } => key.as_deref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_error_names_the_key() {
        let error = Error::Media {
            domain: Domain::User,
            member: MemberId(0),
            offset: 8192,
            len: 64,
            key: Some(b"user:1".to_vec()),
        };
        let text = error.to_string();
        assert!(text.contains("offset 8192") && text.contains("key user:1"), "{text}");
        assert_eq!(error.key(), Some(&b"user:1"[..]));
    }

    #[test]
    fn locked_keeps_the_device_error_as_source() {
        let path = PathBuf::from("/x/pool");
        let error = Error::pmem("open", mcstore_pmem::Error::Locked { path: path.clone() });
        assert!(matches!(&error, Error::Locked { path: p, .. } if *p == path));
        assert!(std::error::Error::source(&error).is_some());
        let io = Error::pmem("grow", mcstore_pmem::Error::MapCountExhausted);
        assert!(matches!(io, Error::Io { .. }));
    }
}
