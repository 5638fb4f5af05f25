//! Replica sets on top of `mcstore_pmem::PoolSet`: creating and opening a set whose members are
//! tied by the set uuid, reconciling members at open, repairing the primary during recovery,
//! scrubbing every member, bad blocks and asynchronous poison notices. `docs/replicas.md`.
//!
//! `error` (what refuses a set), `table` (the set-state table: member states and quarantine,
//! in the unused pages after the superblocks), `table_heal` (its poisoned slots healed at open),
//! `identity` (member-specific superblocks, rewritten logically per member), `absent` (the
//! stand-in for a missing member of a degraded set), `set` (`ReplicaSet`: create, states,
//! quarantine), `open` (members checked against the table, then reconciled and repaired),
//! `reconcile` (member tails and superblocks to the primary's), `repairer` (the scan's hook),
//! `scrub` (every live byte of every member; notices; bad blocks), `resilver` (a stale or
//! replaced member copied back in sync online), `scrubber` (the background thread: notices,
//! stale members, rate-limited full scrubs).

mod absent;
mod error;
mod identity;
mod open;
mod reconcile;
mod repairer;
mod resilver;
mod scrub;
mod scrubber;
mod set;
mod table;
mod table_heal;

pub use error::ReplicaError;
pub use identity::SuperblockRewrite;
pub use open::{OpenReport, OpenSetOptions};
pub use repairer::SetRepairer;
pub use resilver::RESILVER_CHUNK_BYTES;
pub use scrub::{ScrubFinding, ScrubProgress, ScrubReport};
pub use scrubber::{ScrubberOptions, ScrubberStatus};
pub use set::ReplicaSet;
pub use table::{Quarantined, SetTable, TABLE_BYTES, TABLE_SLOT_OFFSETS, TableMember};
pub use table_heal::{HealedTableSlot, TableSlotHeal};
