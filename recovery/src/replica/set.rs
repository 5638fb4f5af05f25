//! `ReplicaSet`: a `PoolSet` whose members are formatted pools tied by one set uuid, each with
//! its own superblock identity, plus the set-state table. Creating a set, assembling one from
//! its members (`open.rs` opens one), persisting member states, recording the quarantine.
//!
//! INVARIANT: after `persist_states`, the table and the identities later superblock writes
//! carry hold the `PoolSet`'s member states; a quarantined range reaches the allocator before
//! the table that records it is written.

use std::sync::Arc;

use mcstore_pmem::poolset::{PoolSetOptions, StaleEvent};
use mcstore_pmem::{Domain, ErrorRegister, Medium, MemberId, PoolSet};
use parking_lot::Mutex;

use super::error::ReplicaError;
use super::identity::{Identity, SuperblockRewrite};
use super::open::OpenSetOptions;
use super::repairer::SetRepairer;
use super::table::{MEMBERS_MAX, Quarantined, SetTable, TABLE_SLOT_OFFSETS, TableMember};
use crate::format::{
    Geometry, MemberState, SUPERBLOCK_BYTES, SUPERBLOCK_SLOT_OFFSETS, Superblock, Uuid,
};
use crate::pool::{self, CreateParams};
use crate::scan::{Recovered, ScanOptions, recover};

/// Result alias for replica sets.
pub type Result<T, E = ReplicaError> = std::result::Result<T, E>;

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

    pub(super) fn assemble(
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
pub(super) fn quarantine_ranges(quarantine: &[Quarantined]) -> Vec<(u64, u64)> {
    quarantine.iter().map(|q| (q.offset, q.len)).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use mcstore_pmem::SimMedium;

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
}
