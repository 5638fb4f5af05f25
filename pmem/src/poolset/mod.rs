//! `PoolSet`: a primary and zero or more replicas written in lockstep, itself a [`crate::Medium`].
//!
//! `options` (what a set does when a member fails, and the member-specific prefix hook),
//! `set` (the members, their states, the lockstep `Medium` implementation, counters), `heal`
//! (rewriting a damaged member's pages from a good one; retry of a read from a replica), `notices`
//! (asynchronous poison notices mapped to members), `resilver` (a stale member copied back in
//! sync online). The set knows nothing of records: the layer above supplies verification
//! (`verify` closures) and the member-specific bytes ([`MemberRewrite`]).

mod heal;
mod notices;
mod options;
mod resilver;
mod set;

pub use heal::{HealOutcome, Miss, MissKind, RetryOutcome};
pub use notices::{NoticeRange, Notices};
pub use options::{MemberFailure, MemberRewrite, PoolSetOptions};
pub use resilver::ResilverReport;
pub use set::{MemberInfo, MemberState, PoolSet, RepairStats, StaleEvent};
