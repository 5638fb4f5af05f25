//! A member of a [`super::PoolSet`] as the set records it: its state (in sync, stale,
//! resilvering), the listing [`super::PoolSet::members`] returns, and the event a member's
//! marking stale leaves for the layer above.
//!
//! INVARIANT: a state is kept as one byte (`code`/`from_code`) so a member's state is one atomic
//! load; the primary is never anything but `InSync` (the set asserts it).

use crate::medium::MemberId;

/// A member's state in the set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum MemberState {
    /// Holds every committed write; written in lockstep; a source for repairs.
    #[default]
    InSync,
    /// Missed writes: receives none, is never a source, must be resilvered.
    Stale,
    /// Being copied from a good member: receives writes, is not yet a source.
    Resilvering,
}

impl MemberState {
    pub(super) fn code(self) -> u8 {
        match self {
            MemberState::InSync => 0,
            MemberState::Stale => 1,
            MemberState::Resilvering => 2,
        }
    }

    pub(super) fn from_code(code: u8) -> Self {
        match code {
            0 => MemberState::InSync,
            1 => MemberState::Stale,
            _ => MemberState::Resilvering,
        }
    }
}

/// A member as [`PoolSet::members`](super::PoolSet::members) lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// Its index (0 = primary).
    pub id: MemberId,
    /// Its state now.
    pub state: MemberState,
}

/// A member that was marked stale, and why (what failed, with the error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleEvent {
    /// The member.
    pub member: MemberId,
    /// What failed.
    pub reason: String,
}
