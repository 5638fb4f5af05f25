//! Asynchronous poison notices (`BUS_MCEERR_AO`) mapped to the members of a set.
//!
//! INVARIANT: draining hands every pending notice either to this set (as a member range) or
//! back to the caller as unmatched, so notices for other pools in the process are not lost.

use super::set::PoolSet;
use crate::limits::CACHE_LINE;
use crate::mcsafe::{AsyncNotice, drain_async_notices};
use crate::medium::MemberId;

/// A range of one member the platform reported poisoned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoticeRange {
    /// The member.
    pub member: MemberId,
    /// Start of the poisoned unit, in bytes from the start of the member.
    pub offset: u64,
    /// Length of the unit (`max(64, 1 << lsb)`).
    pub len: u64,
}

/// What one drain found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notices {
    /// Notices that fall in a member of this set.
    pub ranges: Vec<NoticeRange>,
    /// Notices for other mappings (or none): the caller forwards or logs them.
    pub unmatched: Vec<AsyncNotice>,
}

impl PoolSet {
    /// Drain the process's ring of asynchronous poison notices and map each to a member of this
    /// set by its registered mapping. Call from the scrubber thread (which opted in to early
    /// notices with [`crate::mcsafe::enable_early_notices`]).
    pub fn drain_notices(&self) -> Notices {
        let mut notices = Notices::default();
        drain_async_notices(|notice| match self.locate(&notice) {
            Some(range) => notices.ranges.push(range),
            None => notices.unmatched.push(notice),
        });
        notices
    }

    /// The member range of `notice`, if it lies in one of this set's mappings.
    pub fn locate(&self, notice: &AsyncNotice) -> Option<NoticeRange> {
        let mapping = notice.mapping?;
        let offset = notice.offset?;
        let member = (0..self.member_count())
            .map(|i| MemberId(i as u8))
            .find(|&m| self.medium(m).mapping() == Some(mapping))?;
        let len = (1u64 << notice.lsb.min(40)).max(CACHE_LINE);
        Some(NoticeRange { member, offset: offset / len * len, len })
    }
}
