//! Opening a replica set: each member checked against the newest set-state table, a replaced
//! member formatted afresh, then (unless read-only) poisoned table slots healed, in-sync
//! replicas reconciled to the primary, known bad blocks repaired or quarantined, states persisted.
//!
//! INVARIANT: after `open` returns, every member not `Stale` carries this set's uuid, its own
//! index and pool uuid, the primary's geometry, the primary's superblocks (re-encoded for it) and
//! the primary's committed tails — so writes may be accepted; a member that fails any check is
//! an error, or `Stale` (absent) when the caller asked for a degraded open.

use std::sync::Arc;

use mcstore_pmem::poolset::MemberFailure;
use mcstore_pmem::{Medium, MemberId};

use super::absent::Absent;
use super::error::ReplicaError;
use super::identity::Identity;
use super::reconcile::reconcile_member;
use super::set::{ReplicaSet, Result, quarantine_ranges, read_superblock};
use super::table::{Quarantined, SetTable, TableMember};
use crate::format::{MemberState, Superblock, Uuid};
use crate::pool::{self, CreateParams};

/// How to open a set.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenSetOptions {
    /// Open with missing, foreign or misplaced replicas left out (stale), instead of refusing.
    /// The primary is never left out.
    pub allow_degraded: bool,
    /// What a replica's failing write does (default: mark it stale and carry on).
    pub on_member_failure: MemberFailure,
    /// Replace this replica (offline): the medium given in its place is formatted as that
    /// member with a new pool uuid, recorded `Stale`; [`ReplicaSet::resilver`] admits it.
    pub replace: Option<MemberId>,
    /// Open without writing: members are checked (and left out when degraded), but neither
    /// reconciled, repaired nor their states persisted. `replace` is refused.
    pub read_only: bool,
}

/// What opening a set found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Every member's state after open, the primary first.
    pub states: Vec<MemberState>,
    /// Members left out or found stale, and why.
    pub degraded: Vec<(MemberId, String)>,
    /// Members whose superblocks were rewritten from the primary's (they lagged a generation,
    /// or both their slots were poisoned).
    pub superblocks_reconciled: Vec<MemberId>,
    /// `(member, segments)` whose header, tail and committed bytes were brought to the primary's.
    pub segments_reconciled: Vec<(MemberId, u32)>,
    /// Known bad ranges repaired from another member before use.
    pub bad_blocks_repaired: Vec<Quarantined>,
    /// Known bad ranges that no member could supply: quarantined (persisted in the table).
    pub quarantined: Vec<Quarantined>,
    /// Poisoned set-table slots healed before the table was written (copied from another
    /// member, or rewritten from the chosen table).
    pub table_slots_healed: Vec<super::table_heal::HealedTableSlot>,
}

impl ReplicaSet {
    /// Open a set from its members in index order (`None`: the member could not be opened).
    /// Checks every member against the set table (foreign, misplaced, missing), reconciles the
    /// in-sync replicas' superblocks and committed tails to the primary's, repairs known bad
    /// blocks from other members and quarantines what cannot be repaired. See the module docs.
    pub fn open(
        members: Vec<Option<Arc<dyn Medium>>>,
        options: OpenSetOptions,
    ) -> Result<(Self, OpenReport)> {
        let mut found = Found::read(members)?;
        let mut report = OpenReport::default();
        if !options.read_only {
            report.superblocks_reconciled = found.heal_replica_superblocks();
        }
        let count = found.table.members.len();
        let mut media: Vec<Arc<dyn Medium>> = Vec::with_capacity(count);
        let mut identities = Vec::with_capacity(count);
        for i in 0..count {
            let id = MemberId(i as u8);
            let given = found.members.get(i).cloned().flatten();
            if let Some(medium) = given
                .clone()
                .filter(|_| options.replace == Some(id) && i != 0 && !options.read_only)
            {
                identities.push(found.replace(i, medium.as_ref())?);
                report.degraded.push((id, "replaced: awaiting resilver".into()));
                media.push(medium);
                continue;
            }
            let pool_uuid = found.table.members[i].pool_uuid;
            let (medium, state): (Arc<dyn Medium>, MemberState) = match (found.check(i), given) {
                (Some(err), _) if i == 0 || !options.allow_degraded => return Err(err),
                (Some(err), _) => {
                    report.degraded.push((id, err.to_string()));
                    (Arc::new(Absent { member: id }), MemberState::Stale)
                }
                (None, Some(medium)) => (medium, found.state(i, &mut report.degraded)),
                // `check` reports a member not given as missing.
                (None, None) => return Err(Found::missing(id)),
            };
            media.push(medium);
            identities.push(Identity { pool_uuid, state });
        }
        let Found { table, reference, .. } = found;
        let set = Self::assemble(media, identities, reference.geometry, table.set_uuid, options)?;
        set.poolset.set_quarantine(quarantine_ranges(&table.quarantine));
        *set.table.lock() = table;
        if !options.read_only {
            set.settle(&mut report)?;
        }
        report.states = set.states();
        Ok((set, report))
    }

    /// The writing half of an open (not read-only): heal poisoned table slots, reconcile the
    /// in-sync replicas, repair or quarantine known bad blocks, persist the states.
    fn settle(&self, report: &mut OpenReport) -> Result<()> {
        // Before anything writes the table (reconcile's superblock rewrites do not; the
        // states persisted below do): a store into a poisoned slot would be refused.
        report.table_slots_healed = self.heal_table_slots()?;
        for i in 1..self.poolset.member_count() {
            let id = MemberId(i as u8);
            if self.poolset.state(id) != MemberState::InSync {
                continue;
            }
            let done = reconcile_member(self, id)?;
            if done.superblocks {
                report.superblocks_reconciled.push(id);
            }
            if done.segments > 0 {
                report.segments_reconciled.push((id, done.segments));
            }
        }
        let (repaired, quarantined) = self.repair_bad_blocks()?;
        report.bad_blocks_repaired = repaired;
        report.quarantined = quarantined;
        self.persist_states()?;
        Ok(())
    }
}

/// What an open reads from the members before it assembles the set.
struct Found {
    /// The members as given, the primary first.
    members: Vec<Option<Arc<dyn Medium>>>,
    /// Each member's newest valid superblock.
    superblocks: Vec<Option<Superblock>>,
    /// The newest set-state table any member holds.
    table: SetTable,
    /// The first readable superblock (the primary's when it has one).
    reference: Superblock,
    /// Why no replica can be proven in sync (a damaged primary table slot), if so.
    unproven: Option<String>,
}

impl Found {
    fn read(members: Vec<Option<Arc<dyn Medium>>>) -> Result<Self> {
        let Some(Some(primary)) = members.first().cloned() else {
            return Err(ReplicaError::MissingMember {
                member: MemberId(0),
                reason: "the primary was not given".into(),
            });
        };
        let superblocks: Vec<Option<Superblock>> =
            members.iter().map(|m| m.as_ref().and_then(|m| read_superblock(m.as_ref()))).collect();
        // The newest table any member holds: in-sync members carry the newest generation; a
        // stale member's copy is older and loses.
        let table = members
            .iter()
            .flatten()
            .filter_map(|m| SetTable::read(m.as_ref()))
            .max_by_key(|t| t.generation)
            .ok_or_else(|| ReplicaError::NoSetTable {
                reason: "not a replica set, or every copy is damaged".into(),
            })?;
        // A damaged primary slot may have held a newer table (one that marked a replica
        // stale): then no replica can be proven in sync, and each is opened stale.
        let unproven = SetTable::newer_on_primary_may_be_lost(primary.as_ref(), &table);
        let reference = superblocks.iter().flatten().next().cloned().ok_or_else(|| {
            ReplicaError::MissingMember {
                member: MemberId(0),
                reason: "no member has a readable superblock".into(),
            }
        })?;
        if members.len() > table.members.len() {
            return Err(ReplicaError::TooManyMembers {
                expected: table.members.len(),
                given: members.len(),
            });
        }
        Ok(Self { members, superblocks, table, reference, unproven })
    }

    /// A replica whose superblock is poisoned is still this set's member (the table names it):
    /// its superblock is re-encoded from the reference, as reconcile would. The members healed.
    fn heal_replica_superblocks(&mut self) -> Vec<MemberId> {
        let mut healed = Vec::new();
        for (i, given) in self.members.iter().enumerate().skip(1) {
            if let (Some(medium), None) = (given, &self.superblocks[i]) {
                let listed = self.table.members[i];
                let sb = Superblock {
                    pool_uuid: listed.pool_uuid,
                    member_index: i as u32,
                    member_state: listed.state,
                    ..self.reference.clone()
                };
                if super::identity::heal_poisoned_superblock(medium.as_ref(), &sb) {
                    self.superblocks[i] = Some(sb);
                    healed.push(MemberId(i as u8));
                }
            }
        }
        healed
    }

    /// Format `medium` afresh as replica `i` (a replacement), recorded `Stale` in the table.
    fn replace(&mut self, i: usize, medium: &dyn Medium) -> Result<Identity> {
        let params = CreateParams {
            segment_size_bytes: self.reference.geometry.segment_size_bytes,
            pool_uuid: Uuid::random(),
            set_uuid: self.table.set_uuid,
            member_index: i as u32,
            member_state: MemberState::Stale,
            ..CreateParams::default()
        };
        medium.grow(self.members[0].as_ref().map_or(0, |p| p.len()))?;
        let sb = pool::create(medium, &params)?;
        self.table.members[i] = TableMember { pool_uuid: sb.pool_uuid, state: MemberState::Stale };
        Ok(Identity { pool_uuid: sb.pool_uuid, state: MemberState::Stale })
    }

    /// Member `member` was not given.
    fn missing(member: MemberId) -> ReplicaError {
        ReplicaError::MissingMember {
            member,
            reason: "not given (file missing or not openable)".into(),
        }
    }

    /// Why member `i` cannot be taken as the table lists it: not given, no superblock (a
    /// replica's; the primary's may be repaired by the scan), another set's, another member's,
    /// another geometry.
    fn check(&self, i: usize) -> Option<ReplicaError> {
        let id = MemberId(i as u8);
        let listed = self.table.members[i];
        let given = self.members.get(i).cloned().flatten();
        match (&given, self.superblocks.get(i).cloned().flatten()) {
            (None, _) => Some(Self::missing(id)),
            (Some(_), None) if i == 0 => None,
            (Some(_), None) => Some(ReplicaError::MissingMember {
                member: id,
                reason: "no readable superblock".into(),
            }),
            (Some(_), Some(sb)) if sb.set_uuid != self.table.set_uuid => {
                Some(ReplicaError::ForeignMember {
                    member: id,
                    expected: self.table.set_uuid,
                    found: sb.set_uuid,
                })
            }
            (Some(_), Some(sb))
                if sb.pool_uuid != listed.pool_uuid || sb.member_index != i as u32 =>
            {
                Some(ReplicaError::MisplacedMember {
                    member: id,
                    found_index: sb.member_index,
                    found_pool: sb.pool_uuid,
                })
            }
            (Some(_), Some(sb)) if sb.geometry != self.reference.geometry => {
                Some(ReplicaError::GeometryMismatch { member: id })
            }
            _ => None,
        }
    }

    /// The state of member `i`, which passed [`Found::check`]: the table's, or its superblock's
    /// if that says not in sync, or `Stale` when a replica cannot be proven in sync (a damaged
    /// primary table slot) or missed a whole superblock update. Each replica not in sync is
    /// listed in `degraded`, with why.
    fn state(&self, i: usize, degraded: &mut Vec<(MemberId, String)>) -> MemberState {
        let id = MemberId(i as u8);
        let mut state = self.table.members[i].state;
        let sb = self.superblocks.get(i).cloned().flatten();
        if let Some(sb) = &sb
            && sb.member_state != MemberState::InSync
            && state == MemberState::InSync
        {
            state = sb.member_state;
        }
        if i == 0 {
            return state;
        }
        let primary_generation = self.superblocks[0].as_ref().map(|sb| sb.generation);
        if let Some(why) = &self.unproven
            && state == MemberState::InSync
        {
            degraded.push((id, format!("not provably in sync: the primary's {why}")));
            state = MemberState::Stale;
        } else if let (Some(sb), Some(g)) = (&sb, primary_generation)
            && g.abs_diff(sb.generation) >= 2
            && state == MemberState::InSync
        {
            degraded.push((
                id,
                format!("superblock generation {} vs the primary's {g}", sb.generation),
            ));
            state = MemberState::Stale;
        } else if state != MemberState::InSync {
            degraded.push((id, format!("marked {state:?} in the set table")));
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use mcstore_pmem::{Domain, ErrorRegister, SimOp};

    use super::*;
    use crate::format::{SUPERBLOCK_SLOT_OFFSETS, SegmentId};
    use crate::replica::set::tests::{dyns, fill, given, keys, params, sims};
    use crate::replica::table::TABLE_SLOT_OFFSETS;
    use crate::scan::{ScanOptions, recover};
    use crate::testing::Appender;

    #[test]
    fn foreign_misplaced_and_missing_members_are_errors_or_degraded() {
        let ours = sims(3);
        ReplicaSet::create(dyns(&ours), &params(), OpenSetOptions::default()).unwrap();
        let theirs = sims(2);
        ReplicaSet::create(dyns(&theirs), &params(), OpenSetOptions::default()).unwrap();
        let strict = OpenSetOptions::default();
        let degraded = OpenSetOptions { allow_degraded: true, ..OpenSetOptions::default() };

        let mut foreign = given(&ours);
        foreign[1] = Some(theirs[1].clone());
        match ReplicaSet::open(foreign.clone(), strict) {
            Err(ReplicaError::ForeignMember { member, found, .. }) => {
                assert_eq!(member, MemberId(1));
                assert_ne!(found, read_superblock(ours[0].as_ref()).unwrap().set_uuid);
            }
            other => panic!("{other:?}"),
        }
        let (set, report) = ReplicaSet::open(foreign, degraded).unwrap();
        assert_eq!(
            report.states,
            vec![MemberState::InSync, MemberState::Stale, MemberState::InSync]
        );
        assert!(report.degraded[0].1.contains("belongs to replica set"), "{:?}", report.degraded);
        drop(set);

        let mut swapped = given(&ours);
        swapped.swap(1, 2);
        let err = ReplicaSet::open(swapped, strict).unwrap_err();
        assert!(matches!(err, ReplicaError::MisplacedMember { found_index: 2, .. }), "{err}");

        let mut missing = given(&ours);
        missing[2] = None;
        let err = ReplicaSet::open(missing.clone(), strict).unwrap_err();
        assert_eq!(err.member(), Some(MemberId(2)));
        assert!(err.to_string().contains("missing"), "{err}");
        missing.truncate(2);
        assert!(matches!(
            ReplicaSet::open(missing.clone(), strict),
            Err(ReplicaError::MissingMember { member: MemberId(2), .. })
        ));
        let (_, report) = ReplicaSet::open(missing, degraded).unwrap();
        assert_eq!(report.states[2], MemberState::Stale);
        // The primary is never left out.
        let mut no_primary = given(&ours);
        no_primary[0] = Some(theirs[0].clone());
        assert!(ReplicaSet::open(no_primary, degraded).is_err());
    }

    #[test]
    fn a_failing_replica_is_marked_stale_persisted_and_reported_at_open() {
        let sims = sims(3);
        let set = ReplicaSet::create(dyns(&sims), &params(), OpenSetOptions::default()).unwrap();
        fill(&set, 3);
        sims[2].fail_nth(SimOp::Write, 1, true);
        fill(&set, 1);
        let events = set.persist_states().unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].member, MemberId(2));
        assert_eq!(set.states()[2], MemberState::Stale);
        drop(set);
        sims[2].clear_failures();
        let (set, report) = ReplicaSet::open(given(&sims), OpenSetOptions::default()).unwrap();
        assert_eq!(
            report.states,
            vec![MemberState::InSync, MemberState::InSync, MemberState::Stale]
        );
        assert_eq!(report.degraded[0].0, MemberId(2));
        assert!(set.poolset().is_degraded());
    }

    /// Found by the `poison_ops` fuzz target: the primary's newest table slot — the one that
    /// marked a failing replica stale — is damaged (poisoned past its header line, then the
    /// poison cleared). The replica's own table, one generation older, called it in sync, so the
    /// open took the replica as a good copy, the scan healed a page of the primary from its
    /// older bytes, and an acknowledged write was gone. Now a primary slot that may have held a
    /// newer generation leaves every replica stale; an older slot damaged past its header, or a
    /// newest slot the replica holds too, does not.
    #[test]
    fn a_damaged_newest_table_slot_on_the_primary_leaves_no_replica_in_sync() {
        for clear in [false, true] {
            for line in [0u64, 13, 63] {
                let sims = sims(2);
                let set =
                    ReplicaSet::create(dyns(&sims), &params(), OpenSetOptions::default()).unwrap();
                fill(&set, 2);
                sims[1].fail_nth(SimOp::Write, 1, true);
                fill(&set, 1);
                set.persist_states().unwrap();
                let newest = set.table.lock().clone();
                drop(set);
                sims[1].clear_failures();
                let at = TABLE_SLOT_OFFSETS[newest.slot()] + line * 64;
                sims[0].inject_poison(at, 8).unwrap();
                if clear {
                    sims[0].clear_poison(at, 8).unwrap();
                }
                let (_, report) =
                    ReplicaSet::open(given(&sims), OpenSetOptions::default()).unwrap();
                assert_eq!(report.states, vec![MemberState::InSync, MemberState::Stale]);
                assert!(
                    report.degraded[0].1.contains("not provably in sync"),
                    "clear {clear} line {line}: {:?}",
                    report.degraded
                );
            }
        }
        // The same damage where no newer generation can be lost: the replica stays in sync.
        for older in [true, false] {
            let sims = sims(2);
            let set =
                ReplicaSet::create(dyns(&sims), &params(), OpenSetOptions::default()).unwrap();
            fill(&set, 2);
            set.persist_states().unwrap();
            let newest = set.table.lock().clone();
            drop(set);
            let slot = if older { 1 - newest.slot() } else { newest.slot() };
            let at = TABLE_SLOT_OFFSETS[slot] + 13 * 64;
            sims[0].inject_poison(at, 8).unwrap();
            sims[0].clear_poison(at, 8).unwrap();
            let (_, report) = ReplicaSet::open(given(&sims), OpenSetOptions::default()).unwrap();
            assert_eq!(report.states, vec![MemberState::InSync; 2], "older slot {older}");
            assert!(report.degraded.is_empty(), "{:?}", report.degraded);
        }
    }

    /// Found by the `poison_ops` fuzz target: a replica whose superblock slots are all poisoned
    /// (the second slot never written yet) is healed from the primary's superblock with its own
    /// identity; one whose slots read clean but are not a superblock is still refused.
    #[test]
    fn a_replica_with_every_superblock_slot_poisoned_is_rewritten() {
        let sims = sims(2);
        let set = ReplicaSet::create(dyns(&sims), &params(), OpenSetOptions::default()).unwrap();
        fill(&set, 3);
        let before = read_superblock(sims[1].as_ref()).unwrap();
        drop(set);
        for offset in SUPERBLOCK_SLOT_OFFSETS {
            sims[1].inject_poison(offset, 64).unwrap();
        }
        assert!(read_superblock(sims[1].as_ref()).is_none());
        let (set, report) = ReplicaSet::open(given(&sims), OpenSetOptions::default()).unwrap();
        assert_eq!(report.superblocks_reconciled, vec![MemberId(1)]);
        assert!(sims[1].poisoned_ranges().is_empty());
        let after = read_superblock(sims[1].as_ref()).unwrap();
        assert_eq!((after.pool_uuid, after.member_index), (before.pool_uuid, 1));
        assert_eq!(after.generation, read_superblock(sims[0].as_ref()).unwrap().generation);
        drop(set);

        // Garbage that reads clean is not this set's superblock: refused as before.
        for offset in SUPERBLOCK_SLOT_OFFSETS {
            sims[1].write(offset, &[0x5a; 64]).unwrap();
        }
        let refused = ReplicaSet::open(given(&sims), OpenSetOptions::default());
        assert!(matches!(refused, Err(ReplicaError::MissingMember { .. })), "{:?}", refused.err());
    }

    #[test]
    fn a_lagging_replica_is_reconciled_to_the_primarys_tail_and_superblock() {
        let sims = sims(2);
        let set = ReplicaSet::create(dyns(&sims), &params(), OpenSetOptions::default()).unwrap();
        fill(&set, 4);
        let g = set.geometry();
        let tail_at = g.tail_offset(SegmentId(1));
        let mut register = ErrorRegister::deferred();
        let before =
            mcstore_pmem::read_u64(sims[1].as_ref(), tail_at, &mut register, Domain::Engine)
                .unwrap();
        // The last commit reached the primary only (a crash between the members' fences), and
        // so did the last superblock update.
        let medium = set.poolset().as_ref();
        let mut sb = read_superblock(medium).unwrap();
        let mut appender = Appender { id: SegmentId(1), seq: 2, tail: 0 };
        appender.tail = crate::format::decode_tail(before, 2, &sb.set_uuid).unwrap();
        appender.put(medium, &sb, 99, "late", "value");
        sims[1].store_u64(tail_at, before).unwrap();
        drop(set);
        pool::write_superblock(sims[0].as_ref(), &mut sb).unwrap();
        let lagging = recover(sims[1].as_ref(), &ScanOptions::default()).unwrap();
        assert_eq!(lagging.entries.len(), 6);

        let (set, report) = ReplicaSet::open(given(&sims), OpenSetOptions::default()).unwrap();
        assert_eq!(report.segments_reconciled, vec![(MemberId(1), 1)]);
        assert_eq!(report.superblocks_reconciled, vec![MemberId(1)]);
        let replica_sb = read_superblock(sims[1].as_ref()).unwrap();
        assert_eq!(replica_sb.generation, sb.generation);
        assert_eq!(replica_sb.member_index, 1);
        let replica = recover(sims[1].as_ref(), &ScanOptions::default()).unwrap();
        assert_eq!(keys(&replica), keys(&set.recover(ScanOptions::default()).unwrap()));
        assert_eq!(replica.entries.len(), 7);

        // A repair from the other member: every fence either member met (create, append,
        // superblock, table, reconcile, repair) is one the crash harness knows.
        sims[1].inject_poison(g.data_start(SegmentId(0)), 1).unwrap();
        set.scrub(&|_| {}).unwrap();
        for sim in &sims {
            let log = sim.fence_log();
            assert!(log.contains(&crate::sites::RECONCILE_DATA) || sim.member() == MemberId(0));
            for site in log {
                assert!(crate::sites::ALL.contains(&site), "{site:?} is not in sites::ALL");
            }
        }
        assert!(sims[1].fence_log().contains(&crate::sites::PMEM_REPAIR));
    }
}
