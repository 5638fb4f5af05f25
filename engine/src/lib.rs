//! mcstore-engine: the running store — write path, commit barrier, policy, index, API.
//!
//! [`Db`] is the handle users hold (through the `mcstore` facade). Writes are group-committed
//! (`commit`: reserve → copy → one leader persists and publishes → index → acknowledge,
//! `docs/commit.md`); reads take no lock and go through the commit barrier (`read`,
//! `docs/policy.md`); the DRAM [`index`] is bulk-loaded at open (`open`); space is reclaimed
//! by [`compact`]. What readers and writers observe: `docs/concurrency.md`. Limits live in
//! [`limits`] (`docs/limits.md`).
#![forbid(unsafe_code)]

mod background;
pub mod batch;
mod close;
mod commit;
pub mod compact;
pub mod db;
mod epoch;
pub mod error;
pub mod index;
pub mod iter;
mod key_order;
mod latch;
pub mod limits;
mod open;
pub mod options;
mod point_table;
pub mod policy;
mod read;
mod replicas;
mod space;
pub mod stats;
#[cfg(test)]
mod test_support;
pub mod transaction;
pub mod value;
mod write;
mod writer;

pub use batch::{Batch, BatchOp};
pub use compact::CompactionSummary;
pub use db::Db;
pub use error::{Error, Result};
pub use iter::{Iter, Keys};
pub use options::{Durability, Mode, Options, ProgressHook};
pub use policy::{DomainPolicy, EngineFallback, HaltHook, HaltReport, Policy, UserFallback};
pub use stats::Stats;
pub use transaction::Transaction;
pub use value::{CasError, Value};

pub use mcstore_pmem::{Domain, MemberId};
pub use mcstore_recovery::{Progress, RecoveryReport};
