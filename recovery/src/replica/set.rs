//! `ReplicaSet`: a `PoolSet` whose members are formatted pools tied by one set uuid, each with
//! its own superblock identity, plus the set-state table. Creating and opening one.
//!
//! INVARIANT: after `open` returns, every member not `Stale` carries this set's uuid, its own
//! index and pool uuid, the primary's geometry, the primary's superblocks (re-encoded for it) and
//! the primary's committed tails — so writes may be accepted; a member that fails any check is
//! an error, or `Stale` (absent) when the caller asked for a degraded open.

use std::sync::Arc;

use mcstore_pmem::poolset::{MemberFailure, PoolSetOptions, StaleEvent};
use mcstore_pmem::{Domain, ErrorRegister, Medium, MemberId, PoolSet};
use parking_lot::Mutex;

use super::absent::Absent;
use super::error::ReplicaError;
use super::identity::{Identity, SuperblockRewrite};
use super::reconcile::reconcile_member;
use super::repairer::SetRepairer;
use super::table::{MEMBERS_MAX, Quarantined, SetTable, TABLE_SLOT_OFFSETS, TableMember};
use crate::format::{
    Geometry, MemberState, SUPERBLOCK_BYTES, SUPERBLOCK_SLOT_OFFSETS, Superblock, Uuid,
};
use crate::pool::{self, CreateParams};
use crate::scan::{Recovered, ScanOptions, recover};

/// Result alias for replica sets.
pub type Result<T, E = ReplicaError> = std::result::Result<T, E>;

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

/// A replica set: the `PoolSet` the store writes through, and what ties its members.
pub struct ReplicaSet {
    pub(super) poolset: Arc<PoolSet>,
    pub(super) identities: Arc<SuperblockRewrite>,
    pub(super) table: Mutex<SetTable>,
    pub(super) geometry: Geometry,
    pub(super) set_uuid: Uuid,
    pub(super) scrubber: Mutex<Option<super::scrubber::Scrubber>>,
    pub(super) scrubber_status: Arc<Mutex<super::scrubber::ScrubberStatus>>,
}

impl Drop for ReplicaSet {
    fn drop(&mut self) {
        self.stop_scrubber();
    }
}

impl std::fmt::Debug for ReplicaSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaSet")
            .field("set_uuid", &self.set_uuid)
            .field("poolset", &self.poolset)
            .field("table", &*self.table.lock())
            .finish()
    }
}

/// The valid superblock slot of the higher generation, read through the safe copy.
pub(super) fn read_superblock(medium: &dyn Medium) -> Option<Superblock> {
    let mut best: Option<Superblock> = None;
    for (slot, &offset) in SUPERBLOCK_SLOT_OFFSETS.iter().enumerate() {
        let mut bytes = [0u8; SUPERBLOCK_BYTES];
        let mut register = ErrorRegister::deferred();
        if medium.read(offset, &mut bytes, &mut register, Domain::Engine).is_err()
            || !register.is_clean()
        {
            continue;
        }
        if let Ok(sb) = Superblock::decode(&bytes, slot)
            && best.as_ref().is_none_or(|b| sb.generation > b.generation)
        {
            best = Some(sb);
        }
    }
    best
}

impl ReplicaSet {
    /// Format every member (the primary first; member `i` must report `MemberId(i)`) as a pool
    /// of one new replica set: each gets its own pool uuid and index, all share `params`'s set
    /// uuid and geometry; then write the set-state table to all. `params.member_index`,
    /// `member_state` and `pool_uuid` are ignored (per member).
    pub fn create(
        members: Vec<Arc<dyn Medium>>,
        params: &CreateParams,
        options: OpenSetOptions,
    ) -> Result<Self> {
        assert!(!members.is_empty() && members.len() <= MEMBERS_MAX, "1..=16 members");
        let len = members[0].len();
        let geometry =
            Geometry::for_pool(len, params.segment_size_bytes).map_err(crate::Error::from)?;
        let mut identities = Vec::with_capacity(members.len());
        for (i, medium) in members.iter().enumerate() {
            medium.grow(len)?;
            let member_params = CreateParams {
                pool_uuid: Uuid::random(),
                member_index: i as u32,
                member_state: MemberState::InSync,
                ..params.clone()
            };
            let sb = pool::create(medium.as_ref(), &member_params)?;
            identities.push(Identity { pool_uuid: sb.pool_uuid, state: MemberState::InSync });
        }
        assert!(
            geometry.segments_start >= TABLE_SLOT_OFFSETS[1] + super::table::TABLE_BYTES as u64,
            "segments overlap the set-state table"
        );
        let mut table = SetTable {
            generation: 0,
            set_uuid: params.set_uuid,
            members: identities
                .iter()
                .map(|id| TableMember { pool_uuid: id.pool_uuid, state: id.state })
                .collect(),
            quarantine: Vec::new(),
        };
        let set = Self::assemble(members, identities, geometry, params.set_uuid, options)?;
        table.write(set.poolset.as_ref())?;
        *set.table.lock() = table;
        Ok(set)
    }

    fn assemble(
        members: Vec<Arc<dyn Medium>>,
        identities: Vec<Identity>,
        geometry: Geometry,
        set_uuid: Uuid,
        options: OpenSetOptions,
    ) -> Result<Self> {
        let states: Vec<MemberState> = identities.iter().map(|i| i.state).collect();
        let identities = Arc::new(SuperblockRewrite::new(identities));
        let set_options = PoolSetOptions::new()
            .on_member_failure(options.on_member_failure)
            .rewrite(identities.clone());
        let poolset = Arc::new(PoolSet::new(members, set_options)?);
        for (i, state) in states.into_iter().enumerate().skip(1) {
            poolset.set_state(MemberId(i as u8), state);
        }
        let table =
            SetTable { generation: 0, set_uuid, members: Vec::new(), quarantine: Vec::new() };
        Ok(Self {
            poolset,
            identities,
            table: Mutex::new(table),
            geometry,
            set_uuid,
            scrubber: Mutex::new(None),
            scrubber_status: Arc::default(),
        })
    }

    /// Open a set from its members in index order (`None`: the member could not be opened).
    /// Checks every member against the set table (foreign, misplaced, missing), reconciles the
    /// in-sync replicas' superblocks and committed tails to the primary's, repairs known bad
    /// blocks from other members and quarantines what cannot be repaired. See the module docs.
    pub fn open(
        members: Vec<Option<Arc<dyn Medium>>>,
        options: OpenSetOptions,
    ) -> Result<(Self, OpenReport)> {
        let Some(Some(_)) = members.first() else {
            return Err(ReplicaError::MissingMember {
                member: MemberId(0),
                reason: "the primary was not given".into(),
            });
        };
        let mut superblocks: Vec<Option<Superblock>> =
            members.iter().map(|m| m.as_ref().and_then(|m| read_superblock(m.as_ref()))).collect();
        // The newest table any member holds: in-sync members carry the newest generation; a
        // stale member's copy is older and loses.
        let mut table = members
            .iter()
            .flatten()
            .filter_map(|m| SetTable::read(m.as_ref()))
            .max_by_key(|t| t.generation)
            .ok_or_else(|| ReplicaError::NoSetTable {
                reason: "not a replica set, or every copy is damaged".into(),
            })?;
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
        let mut healed_superblocks = Vec::new();
        if !options.read_only {
            // A replica whose superblock is poisoned is still this set's member (the table
            // names it): its superblock is re-encoded from the reference, as reconcile would.
            for (i, given) in members.iter().enumerate().skip(1) {
                if let (Some(medium), None) = (given, &superblocks[i]) {
                    let listed = table.members[i];
                    let sb = Superblock {
                        pool_uuid: listed.pool_uuid,
                        member_index: i as u32,
                        member_state: listed.state,
                        ..reference.clone()
                    };
                    if super::identity::heal_poisoned_superblock(medium.as_ref(), &sb) {
                        superblocks[i] = Some(sb);
                        healed_superblocks.push(MemberId(i as u8));
                    }
                }
            }
        }
        let mut report = OpenReport::default();
        report.superblocks_reconciled.extend(healed_superblocks);
        let mut media: Vec<Arc<dyn Medium>> = Vec::with_capacity(table.members.len());
        let mut identities = Vec::with_capacity(table.members.len());
        let primary_generation = superblocks[0].as_ref().map(|sb| sb.generation);
        for i in 0..table.members.len() {
            if let Some(replaced) =
                options.replace.filter(|r| r.0 != 0 && usize::from(r.0) == i && !options.read_only)
                && let Some(Some(medium)) = members.get(i)
            {
                let params = CreateParams {
                    segment_size_bytes: reference.geometry.segment_size_bytes,
                    pool_uuid: Uuid::random(),
                    set_uuid: table.set_uuid,
                    member_index: i as u32,
                    member_state: MemberState::Stale,
                    ..CreateParams::default()
                };
                medium.grow(members[0].as_ref().map_or(0, |p| p.len()))?;
                let sb = pool::create(medium.as_ref(), &params)?;
                table.members[i] =
                    TableMember { pool_uuid: sb.pool_uuid, state: MemberState::Stale };
                report.degraded.push((replaced, "replaced: awaiting resilver".into()));
                media.push(medium.clone());
                identities.push(Identity { pool_uuid: sb.pool_uuid, state: MemberState::Stale });
                continue;
            }
            let listed = table.members[i];
            let id = MemberId(i as u8);
            let given = members.get(i).cloned().flatten();
            let sb = superblocks.get(i).cloned().flatten();
            let problem = match (&given, &sb) {
                (None, _) => Some(ReplicaError::MissingMember {
                    member: id,
                    reason: "not given (file missing or not openable)".into(),
                }),
                // The primary's superblock may be repaired from a replica by the scan.
                (Some(_), None) if i == 0 => None,
                (Some(_), None) => Some(ReplicaError::MissingMember {
                    member: id,
                    reason: "no readable superblock".into(),
                }),
                (Some(_), Some(sb)) if sb.set_uuid != table.set_uuid => {
                    Some(ReplicaError::ForeignMember {
                        member: id,
                        expected: table.set_uuid,
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
                (Some(_), Some(sb)) if sb.geometry != reference.geometry => {
                    Some(ReplicaError::GeometryMismatch { member: id })
                }
                _ => None,
            };
            let mut state = listed.state;
            if let Some(err) = problem {
                if i == 0 || !options.allow_degraded {
                    return Err(err);
                }
                report.degraded.push((id, err.to_string()));
                media.push(Arc::new(Absent { member: id }));
                state = MemberState::Stale;
            } else if let Some(medium) = given {
                if let Some(sb) = &sb
                    && sb.member_state != MemberState::InSync
                    && state == MemberState::InSync
                {
                    state = sb.member_state;
                }
                if let (Some(sb), Some(g)) = (&sb, primary_generation)
                    && i > 0
                    && g.abs_diff(sb.generation) >= 2
                    && state == MemberState::InSync
                {
                    report.degraded.push((
                        id,
                        format!("superblock generation {} vs the primary's {g}", sb.generation),
                    ));
                    state = MemberState::Stale;
                } else if i > 0 && state != MemberState::InSync {
                    report.degraded.push((id, format!("marked {state:?} in the set table")));
                }
                media.push(medium);
            }
            identities.push(Identity { pool_uuid: listed.pool_uuid, state });
        }
        let set = Self::assemble(media, identities, reference.geometry, table.set_uuid, options)?;
        set.poolset.set_quarantine(quarantine_ranges(&table.quarantine));
        *set.table.lock() = table;
        if options.read_only {
            // Nothing is written: the members are checked, not reconciled or repaired.
            report.states = set.states();
            return Ok((set, report));
        }
        // Before anything writes the table (reconcile's superblock rewrites do not; the
        // states persisted below do): a store into a poisoned slot would be refused.
        report.table_slots_healed = set.heal_table_slots()?;
        for i in 1..set.poolset.member_count() {
            let id = MemberId(i as u8);
            if set.poolset.state(id) != MemberState::InSync {
                continue;
            }
            let done = reconcile_member(&set, id)?;
            if done.superblocks {
                report.superblocks_reconciled.push(id);
            }
            if done.segments > 0 {
                report.segments_reconciled.push((id, done.segments));
            }
        }
        let (repaired, quarantined) = set.repair_bad_blocks()?;
        report.bad_blocks_repaired = repaired;
        report.quarantined = quarantined;
        set.persist_states()?;
        report.states = set.states();
        Ok((set, report))
    }

    /// The `PoolSet` to write through (a `Medium`).
    pub fn poolset(&self) -> &Arc<PoolSet> {
        &self.poolset
    }

    /// The set as a `Medium` for the store.
    pub fn medium(&self) -> Arc<dyn Medium> {
        self.poolset.clone()
    }

    /// The set's uuid.
    pub fn set_uuid(&self) -> Uuid {
        self.set_uuid
    }

    /// The segment geometry every member shares.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Every member's state, the primary first.
    pub fn states(&self) -> Vec<MemberState> {
        self.poolset.members().iter().map(|m| m.state).collect()
    }

    /// The quarantined ranges (persisted in the set table).
    pub fn quarantined(&self) -> Vec<Quarantined> {
        self.table.lock().quarantine.clone()
    }

    /// The scan's repair hook over this set (damage in the primary repaired from a replica).
    pub fn repairer(&self) -> Arc<SetRepairer> {
        Arc::new(SetRepairer::new(self.poolset.clone()))
    }

    /// Recover the primary through the set, repairing damage from replicas as the scan meets it.
    pub fn recover(&self, options: ScanOptions) -> Result<Recovered> {
        let options = ScanOptions { repairer: Some(self.repairer()), ..options };
        Ok(recover(self.poolset.as_ref(), &options)?)
    }

    /// Persist member states: take the set's stale events, record every member's state in the
    /// table (written to every member not stale) and in the identities later superblock writes
    /// carry. Returns the events.
    pub fn persist_states(&self) -> Result<Vec<StaleEvent>> {
        let events = self.poolset.stale_events();
        let states = self.states();
        let mut table = self.table.lock();
        for (i, state) in states.iter().enumerate() {
            self.identities.set_state(MemberId(i as u8), *state);
            if let Some(member) = table.members.get_mut(i) {
                member.state = *state;
            }
        }
        table.write(self.poolset.as_ref())?;
        Ok(events)
    }

    /// Whether a member's state differs from what the table records (persist it).
    pub fn states_changed(&self) -> bool {
        let table = self.table.lock();
        self.states().iter().zip(&table.members).any(|(now, recorded)| *now != recorded.state)
    }

    /// Add `ranges` to the persisted quarantine (deduplicated; beyond the table's capacity the
    /// newest are dropped and reported by the caller's count).
    pub(super) fn quarantine(&self, ranges: &[Quarantined]) -> Result<()> {
        let mut table = self.table.lock();
        for q in ranges {
            if !table.quarantine.contains(q)
                && table.quarantine.len() < super::table::QUARANTINE_MAX
            {
                table.quarantine.push(*q);
            }
        }
        table.quarantine.sort();
        // The allocator sees the range before the table is persisted: never written either way.
        self.poolset.set_quarantine(quarantine_ranges(&table.quarantine));
        table.write(self.poolset.as_ref())?;
        Ok(())
    }
}

/// The quarantined ranges as the pool set reports them to the allocator: every member's, since
/// a lockstep write reaches every member.
fn quarantine_ranges(quarantine: &[Quarantined]) -> Vec<(u64, u64)> {
    quarantine.iter().map(|q| (q.offset, q.len)).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use mcstore_pmem::{SimMedium, SimOp};

    use super::*;
    use crate::format::{RecordKind, SegmentId};
    use crate::testing::Appender;

    pub(crate) const SEGMENTS: u64 = 4;
    pub(crate) const LEN: u64 = (64 << 10) * (SEGMENTS + 1);

    pub(crate) fn params() -> CreateParams {
        CreateParams { segment_size_bytes: 64 << 10, ..CreateParams::default() }
    }

    pub(crate) fn sims(n: u8) -> Vec<Arc<SimMedium>> {
        (0..n).map(|i| Arc::new(SimMedium::with_member(LEN, MemberId(i)))).collect()
    }

    pub(crate) fn dyns(sims: &[Arc<SimMedium>]) -> Vec<Arc<dyn Medium>> {
        sims.iter().map(|s| s.clone() as Arc<dyn Medium>).collect()
    }

    pub(crate) fn given(sims: &[Arc<SimMedium>]) -> Vec<Option<Arc<dyn Medium>>> {
        dyns(sims).into_iter().map(Some).collect()
    }

    /// Append `count` puts ("k0".., values of 100 bytes) through the set into segment 0 (and a
    /// second batch into segment 1); returns the record offsets.
    pub(crate) fn fill(set: &ReplicaSet, count: u64) -> Vec<u64> {
        let medium = set.poolset().as_ref();
        let mut sb = read_superblock(medium).unwrap();
        let mut offsets = Vec::new();
        for (segment, range) in [(0, 0..count), (1, count..count + 2)] {
            let mut appender = Appender::open(medium, &mut sb, SegmentId(segment));
            for i in range {
                let value = format!("{i:0100}");
                offsets.push(appender.put(medium, &sb, i + 1, &format!("k{i}"), &value));
            }
        }
        offsets
    }

    /// Read `[offset, +len)` of a member in the Engine domain: the bytes, and whether the read
    /// was clean.
    pub(crate) fn read(medium: &dyn Medium, offset: u64, len: usize) -> (Vec<u8>, bool) {
        let mut out = vec![0u8; len];
        let mut register = ErrorRegister::deferred();
        medium.read(offset, &mut out, &mut register, Domain::Engine).unwrap();
        (out, register.is_clean())
    }

    pub(crate) fn keys(rec: &Recovered) -> Vec<(Vec<u8>, RecordKind, u64)> {
        rec.entries.iter().map(|e| (e.key.to_vec(), e.kind, e.lsn.0)).collect()
    }

    #[test]
    fn members_share_the_set_and_keep_their_own_identity() {
        let sims = sims(3);
        let set = ReplicaSet::create(dyns(&sims), &params(), OpenSetOptions::default()).unwrap();
        fill(&set, 5);
        let sbs: Vec<Superblock> =
            sims.iter().map(|s| read_superblock(s.as_ref()).unwrap()).collect();
        for (i, sb) in sbs.iter().enumerate() {
            assert_eq!(sb.member_index, i as u32);
            assert_eq!((sb.set_uuid, sb.generation), (set.set_uuid(), sbs[0].generation));
        }
        assert!(sbs[0].pool_uuid != sbs[1].pool_uuid && sbs[1].pool_uuid != sbs[2].pool_uuid);
        // Every member holds the same log: each recovers alone to the same records.
        let alone: Vec<_> = sims
            .iter()
            .map(|s| keys(&recover(s.as_ref(), &ScanOptions::default()).unwrap()))
            .collect();
        assert_eq!(alone[0].len(), 7);
        assert!(alone.iter().all(|k| *k == alone[0]));
        drop(set);
        let (set, report) = ReplicaSet::open(given(&sims), OpenSetOptions::default()).unwrap();
        assert_eq!(report.states, vec![MemberState::InSync; 3]);
        assert!(report.degraded.is_empty() && report.segments_reconciled.is_empty());
        assert_eq!(keys(&set.recover(ScanOptions::default()).unwrap()), alone[0]);
    }

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
