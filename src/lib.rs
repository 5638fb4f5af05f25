//! mcstore: a log-structured key-value store for persistent memory that keeps working when the
//! memory itself fails. This facade only re-exports; see the crates `mcstore-pmem`,
//! `mcstore-recovery` and `mcstore-engine`.
#![forbid(unsafe_code)]

pub use mcstore_pmem as pmem;
pub use mcstore_recovery as recovery;
