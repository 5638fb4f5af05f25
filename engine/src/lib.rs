//! mcstore-engine: the running store — write path, commit barrier, policy, index, API.
//!
//! [`Db`] is the handle users hold (through the `mcstore` facade). Writes go through one
//! [`writer`] (reserve → encode → persist → publish → index → acknowledge, `docs/commit.md`);
//! reads go through the commit barrier ([`read`], `docs/policy.md`); the DRAM [`index`] is
//! bulk-loaded from recovery at open ([`open`]). Limits live in [`limits`] (`docs/limits.md`).
#![forbid(unsafe_code)]

pub mod batch;
pub mod db;
pub mod error;
pub mod index;
pub mod iter;
mod latch;
pub mod limits;
mod open;
pub mod options;
pub mod policy;
mod read;
pub mod stats;
#[cfg(test)]
mod test_support;
pub mod value;
mod write;
mod writer;

pub use batch::{Batch, BatchOp};
pub use db::Db;
pub use error::{Error, Result};
pub use iter::Iter;
pub use options::{Durability, Mode, Options, ProgressHook};
pub use policy::{DomainPolicy, EngineFallback, HaltHook, HaltReport, Policy, UserFallback};
pub use stats::Stats;
pub use value::{CasError, Value};

pub use mcstore_pmem::{Domain, MemberId};
pub use mcstore_recovery::{Progress, RecoveryReport};
