//! Reading a pool back: superblock choice, segment walk, record verification, bulk index build.
//!
//! INVARIANT: a pure read (idempotent), bounded (every loop advances by at least 8 bytes or one
//! segment), panic-free on any bytes; damage is listed, never truncated.

mod committed;
mod damage;
mod fast_open;
mod index;
mod key;
mod options;
mod records;
mod recover;
mod recovered;
mod report;
mod segment_table;
mod segments;
mod sketch;
mod snapshot;
mod superblock;
mod tally;
mod walk;

pub use damage::{Damage, DamageKind};
pub use index::{IndexEntry, WalkedEntries, WalkedEntry, version_rank};
pub use key::EntryKey;
pub use options::{Progress, Repairer, ScanOptions, ShutdownEvidence};
pub use recover::recover;
pub use recovered::{Recovered, SegmentInfo, SegmentStatus};
pub use report::{OpenKind, RecoveryReport};
pub use snapshot::{
    IndexSnapshot, SNAPSHOT_MAGIC, SegmentMark, load_snapshot, read_unsafe_shutdown_count,
    segment_marks, snapshot_path, store_snapshot,
};
