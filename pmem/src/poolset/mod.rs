//! `PoolSet`: a primary and zero or more replicas written in lockstep, itself a [`crate::Medium`].
//!
//! `options` (what a set does when a member fails, and the member-specific prefix hook),
//! `member` (a member's state and stale events), `set` (the members, their states, quarantine,
//! counters), `lockstep` (the lockstep `Medium` implementation, healing before a write), `heal`
//! (rewriting a damaged member's pages from a good one; retry of a read from a replica), `notices`
//! (asynchronous poison notices mapped to members), `resilver` (a stale member copied back in
//! sync online). The set knows nothing of records: the layer above supplies verification
//! (`verify` closures) and the member-specific bytes ([`MemberRewrite`]).

mod heal;
mod lockstep;
mod member;
mod notices;
mod options;
mod resilver;
mod set;

pub use heal::{HealOutcome, Miss, MissKind, RetryOutcome};
pub use member::{MemberInfo, MemberState, StaleEvent};
pub use notices::{NoticeRange, Notices};
pub use options::{MemberFailure, MemberRewrite, PoolSetOptions};
pub use resilver::ResilverReport;
pub use set::{PoolSet, RepairStats};
