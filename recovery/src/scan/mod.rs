//! Reading a pool back: superblock choice, segment walk, record verification, bulk index build.
//!
//! INVARIANT: a pure read (idempotent), bounded (every loop advances by at least 8 bytes or one
//! segment), panic-free on any bytes; damage is listed, never truncated.

mod damage;
mod report;

pub use damage::{Damage, DamageKind};
pub use report::RecoveryReport;
