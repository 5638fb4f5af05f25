//! mcstore: a log-structured key-value store for persistent memory that keeps working when the
//! memory itself fails. This facade only re-exports; see the crates `mcstore-pmem`,
//! `mcstore-recovery` and `mcstore-engine`.
//!
//! ```no_run
//! let db = mcstore::Db::open_or_create("/dev/shm/example.pool", mcstore::Options::default())?;
//! db.put("key", "value")?;
//! assert_eq!(db.get("key")?.as_deref(), Some(&b"value"[..]));
//! # Ok::<(), mcstore::Error>(())
//! ```
#![forbid(unsafe_code)]

pub use mcstore_engine::{
    Batch, BatchOp, CasError, CompactionSummary, Db, Domain, DomainPolicy, Durability,
    EngineFallback, Error, HaltHook, HaltReport, Iter, Keys, MemberId, Mode, Options, Policy,
    Progress, ProgressHook, RecoveryReport, Result, Stats, Transaction, UserFallback, Value,
    limits,
};
pub use mcstore_pmem as pmem;
pub use mcstore_recovery as recovery;
pub use mcstore_recovery::replica::{ScrubReport, ScrubberOptions};
