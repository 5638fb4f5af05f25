//! Admitting a member back into the set: an online resilver of a stale (or replaced) replica
//! from the primary, then its state persisted.
//!
//! INVARIANT: the member's superblock identity says `InSync` before the copy, so the slots the
//! copy writes need no second update; should the resilver fail, the set table (which rules at
//! open) records the member `Stale`.

use mcstore_pmem::MemberId;
use mcstore_pmem::poolset::ResilverReport;

use super::set::{ReplicaSet, Result};
use crate::format::MemberState;

pub use crate::limits::RESILVER_CHUNK_BYTES;

impl ReplicaSet {
    /// Copy the primary to `member` online in chunks while writes continue, verify it, and mark
    /// it in sync (persisted). On failure it stays stale (persisted) and the error says why.
    pub fn resilver(&self, member: MemberId) -> Result<ResilverReport> {
        self.identities.set_state(member, MemberState::InSync);
        let copied = self.poolset.resilver(member, RESILVER_CHUNK_BYTES);
        self.persist_states()?;
        Ok(copied?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mcstore_pmem::{Medium, SimMedium};

    use super::*;
    use crate::replica::set::read_superblock;
    use crate::replica::set::tests::{LEN, dyns, fill, given, keys, params, sims};
    use crate::replica::{OpenSetOptions, ReplicaError};
    use crate::scan::{ScanOptions, recover};

    #[test]
    fn a_replaced_member_is_formatted_resilvered_and_admitted() {
        let sims = sims(2);
        let set = ReplicaSet::create(dyns(&sims), &params(), OpenSetOptions::default()).unwrap();
        fill(&set, 5);
        let expected = keys(&set.recover(ScanOptions::default()).unwrap());
        drop(set);
        // The replica's device died: a blank one takes its place.
        let blank = Arc::new(SimMedium::with_member(LEN, MemberId(1)));
        let mut members = given(&sims);
        members[1] = Some(blank.clone() as Arc<dyn Medium>);
        assert!(matches!(
            ReplicaSet::open(members.clone(), OpenSetOptions::default()),
            Err(ReplicaError::MissingMember { member: MemberId(1), .. })
        ));
        let options = OpenSetOptions { replace: Some(MemberId(1)), ..OpenSetOptions::default() };
        let (set, report) = ReplicaSet::open(members.clone(), options).unwrap();
        assert_eq!(report.states, vec![MemberState::InSync, MemberState::Stale]);
        let copied = set.resilver(MemberId(1)).unwrap();
        assert_eq!(copied.bytes_verified, LEN);
        assert_eq!(set.states(), vec![MemberState::InSync; 2]);
        let sb = read_superblock(blank.as_ref()).unwrap();
        assert_eq!((sb.member_index, sb.member_state), (1, MemberState::InSync));
        assert_ne!(sb.pool_uuid, read_superblock(sims[1].as_ref()).unwrap().pool_uuid);
        assert_eq!(keys(&recover(blank.as_ref(), &ScanOptions::default()).unwrap()), expected);
        drop(set);
        let (_, report) = ReplicaSet::open(members, OpenSetOptions::default()).unwrap();
        assert_eq!(report.states, vec![MemberState::InSync; 2]);
        assert!(report.degraded.is_empty(), "{:?}", report.degraded);
        // The old device is no member any more.
        assert!(matches!(
            ReplicaSet::open(given(&sims), OpenSetOptions::default()),
            Err(ReplicaError::MisplacedMember { .. })
        ));
    }
}
