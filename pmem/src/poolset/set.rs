//! The members of a [`PoolSet`], their states, and the lockstep [`Medium`] implementation.
//!
//! INVARIANT: a write, store, flush, fence or grow that returns `Ok` reached the primary and
//! every member not `Stale`; a member that failed one is `Stale` from then on and receives no
//! more writes. A member (the primary too) that refuses a write because the page is known
//! poisoned (media check their poison map before any store, so nothing landed) is healed in
//! place from a good member and the write re-run; only a failed heal makes a replica `Stale`
//! (and fails the operation, typed, for the primary). Reads go to the primary only.
//! Writers hold `gate` shared and a repair holds it exclusively, so a page copied from a peer is
//! never half-way through a lockstep write.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock, RwLockReadGuard};

use super::heal::HealOutcome;
use super::options::{MemberFailure, PoolSetOptions};
use crate::error::{Error, Result};
use crate::mcsafe::MappingId;
use crate::medium::{FenceSite, Medium, MemberId};
use crate::register::{Domain, ErrorRegister};

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
    fn code(self) -> u8 {
        match self {
            MemberState::InSync => 0,
            MemberState::Stale => 1,
            MemberState::Resilvering => 2,
        }
    }

    fn from_code(code: u8) -> Self {
        match code {
            0 => MemberState::InSync,
            1 => MemberState::Stale,
            _ => MemberState::Resilvering,
        }
    }
}

/// A member as [`PoolSet::members`] lists it.
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

/// Counters of retries and repairs since the set was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RepairStats {
    /// Reads retried from a replica ([`PoolSet::retry_read`]).
    pub retries: u64,
    /// Ranges of a member rewritten from a good member and verified.
    pub repairs: u64,
    /// Bytes those repairs rewrote (whole pages).
    pub bytes_repaired: u64,
    /// Heals that found no good copy anywhere.
    pub no_good_copy: u64,
    /// Member pages (the primary's or a replica's) a lockstep write found poisoned and healed
    /// in place before writing.
    pub write_heals: u64,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) retries: AtomicU64,
    pub(super) repairs: AtomicU64,
    pub(super) bytes_repaired: AtomicU64,
    pub(super) no_good_copy: AtomicU64,
    pub(super) write_heals: AtomicU64,
}

/// Most heals one lockstep operation on one member may run before the member is given up
/// (each heal clears at least the first poisoned span the member reported).
const WRITE_HEALS_MAX: u32 = 64;

struct Member {
    medium: Arc<dyn Medium>,
    state: AtomicU8,
}

/// A primary and zero or more replicas written in lockstep. See the module docs.
pub struct PoolSet {
    members: Vec<Member>,
    pub(super) options: PoolSetOptions,
    pub(super) gate: RwLock<()>,
    pub(super) counters: Counters,
    events: Mutex<Vec<StaleEvent>>,
    /// Ranges no member holds good bytes for (the layer above's persisted quarantine): reported
    /// by `bad_blocks` so an allocator never writes there.
    quarantine: RwLock<Vec<(u64, u64)>>,
    /// Member state changes since the set was made (one per `set_state`, so per `mark_stale`):
    /// the layer above compares it with the count it last persisted, one load per group commit.
    state_changes: AtomicU64,
}

impl std::fmt::Debug for PoolSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolSet")
            .field("members", &self.members())
            .field("options", &self.options)
            .field("stats", &self.stats())
            .finish()
    }
}

impl PoolSet {
    /// A set of `members`, the primary first, all `InSync`. Replicas shorter than the primary
    /// are grown to its length.
    ///
    /// Panics unless there is at least one member and member `i` reports `MemberId(i)` (faults
    /// name members by index; a mismatch is a programmer error).
    pub fn new(members: Vec<Arc<dyn Medium>>, options: PoolSetOptions) -> Result<Self> {
        assert!(!members.is_empty(), "a pool set needs a primary");
        assert!(members.len() <= usize::from(u8::MAX), "too many members");
        for (i, m) in members.iter().enumerate() {
            assert_eq!(m.member(), MemberId(i as u8), "member {i} reports {:?}", m.member());
        }
        let len = members[0].len();
        for m in &members[1..] {
            m.grow(len)?;
        }
        let members = members
            .into_iter()
            .map(|medium| Member { medium, state: AtomicU8::new(MemberState::InSync.code()) })
            .collect();
        Ok(Self {
            members,
            options,
            gate: RwLock::new(()),
            counters: Counters::default(),
            events: Mutex::new(Vec::new()),
            quarantine: RwLock::new(Vec::new()),
            state_changes: AtomicU64::new(0),
        })
    }

    /// Every member with its state, the primary first.
    pub fn members(&self) -> Vec<MemberInfo> {
        (0..self.members.len())
            .map(|i| MemberInfo { id: MemberId(i as u8), state: self.state(MemberId(i as u8)) })
            .collect()
    }

    /// Number of members (the primary included).
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// The medium of `member`. Panics if there is no such member.
    pub fn medium(&self, member: MemberId) -> &Arc<dyn Medium> {
        &self.members[usize::from(member.0)].medium
    }

    /// The state of `member`. Panics if there is no such member.
    pub fn state(&self, member: MemberId) -> MemberState {
        MemberState::from_code(self.members[usize::from(member.0)].state.load(Ordering::Acquire))
    }

    /// Set `member`'s state (the layer above does this after reading member superblocks, and
    /// when a resilver completes). The primary is always `InSync`: panics otherwise.
    pub fn set_state(&self, member: MemberId, state: MemberState) {
        assert!(member.0 != 0 || state == MemberState::InSync, "the primary cannot be {state:?}");
        self.members[usize::from(member.0)].state.store(state.code(), Ordering::Release);
        // INVARIANT: counted after the state is stored, so a reader that sees the new count
        // (Acquire) also sees the new state.
        self.state_changes.fetch_add(1, Ordering::AcqRel);
    }

    /// How many member state changes ([`Self::set_state`], [`Self::mark_stale`]) there have been.
    /// A caller that persisted the states after reading `n` here has nothing new to persist
    /// while it still reads `n`: one Acquire load instead of a comparison under a lock.
    pub fn state_changes(&self) -> u64 {
        self.state_changes.load(Ordering::Acquire)
    }

    /// Mark `member` stale because of `reason`: it receives no more writes and is no repair
    /// source. Recorded for [`Self::stale_events`]. Panics for the primary.
    pub fn mark_stale(&self, member: MemberId, reason: impl Into<String>) {
        self.set_state(member, MemberState::Stale);
        self.events.lock().push(StaleEvent { member, reason: reason.into() });
    }

    /// Take the stale events recorded since the last call (the layer above persists them).
    pub fn stale_events(&self) -> Vec<StaleEvent> {
        std::mem::take(&mut *self.events.lock())
    }

    /// Whether every replica is in sync (no member stale or resilvering).
    pub fn is_degraded(&self) -> bool {
        self.members().iter().any(|m| m.state != MemberState::InSync)
    }

    /// Counters of retries and repairs.
    pub fn stats(&self) -> RepairStats {
        let c = &self.counters;
        RepairStats {
            retries: c.retries.load(Ordering::Relaxed),
            repairs: c.repairs.load(Ordering::Relaxed),
            bytes_repaired: c.bytes_repaired.load(Ordering::Relaxed),
            no_good_copy: c.no_good_copy.load(Ordering::Relaxed),
            write_heals: c.write_heals.load(Ordering::Relaxed),
        }
    }

    /// Replace the quarantined ranges `(offset, len)`: ranges no member holds good bytes for.
    /// [`Medium::bad_blocks`] of the set lists them (with the primary's own bad blocks), so the
    /// store's allocator never writes there.
    pub fn set_quarantine(&self, ranges: Vec<(u64, u64)>) {
        *self.quarantine.write() = ranges;
    }

    /// The quarantined ranges `(offset, len)` (see [`Self::set_quarantine`]).
    pub fn quarantined(&self) -> Vec<(u64, u64)> {
        self.quarantine.read().clone()
    }

    /// Machine-check-safe read of `[offset, offset + dst.len())` from one member (faults are
    /// recorded with that member's id).
    pub fn read_member(
        &self,
        member: MemberId,
        offset: u64,
        dst: &mut [u8],
        register: &mut ErrorRegister,
        domain: Domain,
    ) -> Result<()> {
        self.medium(member).read(offset, dst, register, domain)
    }

    /// The bytes `target` must hold for `bytes` at `offset`: rewritten inside the private prefix
    /// (see [`super::MemberRewrite`]), unchanged beyond it.
    pub(super) fn bytes_for<'a>(
        &self,
        target: MemberId,
        offset: u64,
        bytes: &'a [u8],
    ) -> Result<std::borrow::Cow<'a, [u8]>> {
        let Some(rewrite) = &self.options.rewrite else { return Ok(bytes.into()) };
        let private_end = rewrite.private_end();
        if offset >= private_end {
            return Ok(bytes.into());
        }
        let split =
            usize::try_from(private_end - offset).map_or(bytes.len(), |n| n.min(bytes.len()));
        let mut out = rewrite.rewrite(target, offset, &bytes[..split])?;
        // INVARIANT: the hook keeps lengths (see MemberRewrite).
        assert_eq!(out.len(), split, "MemberRewrite changed the length of a write");
        out.extend_from_slice(&bytes[split..]);
        Ok(out.into())
    }

    /// Apply `op` to the primary, then to every member not stale; a member that refuses it for
    /// a poisoned page is healed first ([`Self::run_healing`]). A replica's failure is handled
    /// by [`MemberFailure`]; the primary's failure (a heal with no good copy included) is the
    /// operation's, and then no member received it.
    fn lockstep(&self, what: &str, op: impl Fn(&dyn Medium, MemberId) -> Result<()>) -> Result<()> {
        let mut writer = self.gate.read();
        self.run_healing(&mut writer, MemberId(0), &op)?;
        for i in 1..self.members.len() {
            let id = MemberId(i as u8);
            if self.state(id) == MemberState::Stale {
                continue;
            }
            if let Err(err) = self.run_healing(&mut writer, id, &op) {
                self.mark_stale(id, format!("{what} failed: {err}"));
                if self.options.on_member_failure == MemberFailure::FailWrite {
                    return Err(err);
                }
            }
        }
        Ok(())
    }

    /// Run `op` on member `id`; while it is refused with [`Error::Poisoned`] (nothing landed),
    /// heal the member's pages from a good member with the gate released and re-run it. The
    /// last error stands when a heal fails, a span is reported again after its heal, or
    /// [`WRITE_HEALS_MAX`] heals were run.
    fn run_healing(
        &self,
        writer: &mut RwLockReadGuard<'_, ()>,
        id: MemberId,
        op: &impl Fn(&dyn Medium, MemberId) -> Result<()>,
    ) -> Result<()> {
        let medium = self.medium(id).as_ref();
        let mut result = op(medium, id);
        let mut heals = 0;
        let mut last = None;
        while let Err(Error::Poisoned { offset, len }) = result {
            // A span reported again after a heal was not cleared: give up.
            if heals == WRITE_HEALS_MAX || last == Some((offset, len)) {
                break;
            }
            heals += 1;
            last = Some((offset, len));
            if !RwLockReadGuard::unlocked(writer, || self.heal_for_write(id, offset, len)) {
                break;
            }
            result = op(medium, id);
        }
        result
    }

    /// A lockstep operation found `[offset, +len)` of member `id` poisoned. Media check their
    /// poison map (emulated poison, the bad-block list mapped as poison) before any store, so
    /// nothing landed: rewrite the member's whole pages from a good member through its repair
    /// primitive, so the re-run stores into healthy pages. For a replica the primary is tried
    /// first (it already holds this operation's bytes); for the primary, the replicas in order
    /// (in sync only; their bytes of a free page may be garbage, which the re-run overwrites:
    /// what matters is that they read clean). `false`: no member could heal it.
    ///
    /// INVARIANT: called with the gate released; `heal` takes it exclusively, so no other
    /// lockstep operation is half-way through these pages. One that released the gate to heal
    /// the same member re-runs its own store afterwards, so its bytes are not lost.
    fn heal_for_write(&self, id: MemberId, offset: u64, len: u64) -> bool {
        // Clip to the medium: a poisoned span is reported in whole pages.
        let end = offset.saturating_add(len).min(self.medium(id).len());
        if end <= offset {
            return false;
        }
        match self.heal(id, offset, end - offset, &|_| true) {
            Ok(HealOutcome::Healed { .. }) => {
                self.counters.write_heals.fetch_add(1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }
}

impl Medium for PoolSet {
    fn len(&self) -> u64 {
        self.members[0].medium.len()
    }

    fn member(&self) -> MemberId {
        MemberId(0)
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.lockstep("write", |m, id| m.write(offset, &self.bytes_for(id, offset, data)?))
    }

    fn write_through(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.lockstep("write", |m, id| m.write_through(offset, &self.bytes_for(id, offset, data)?))
    }

    fn writes_through(&self) -> bool {
        self.members.iter().all(|m| m.medium.writes_through())
    }

    /// The primary's lines: reads are served from it.
    fn prefetch(&self, offset: u64, len: u64) {
        self.members[0].medium.prefetch(offset, len);
    }

    /// Every member not stale (a hint: a member's failure is ignored here, its writes report it).
    fn prefault(&self, offset: u64, len: u64) -> Result<()> {
        for (i, member) in self.members.iter().enumerate() {
            if self.state(MemberId(i as u8)) != MemberState::Stale {
                let _ = member.medium.prefault(offset, len);
            }
        }
        Ok(())
    }

    fn store_u64(&self, offset: u64, value: u64) -> Result<()> {
        self.lockstep("store", |m, id| {
            let raw = value.to_le_bytes();
            let bytes = self.bytes_for(id, offset, &raw)?;
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes);
            m.store_u64(offset, u64::from_le_bytes(word))
        })
    }

    fn flush(&self, offset: u64, len: u64) -> Result<()> {
        self.lockstep("flush", |m, _| m.flush(offset, len))
    }

    fn fence(&self, site: FenceSite) -> Result<()> {
        // PERSIST: every member's flushed stores are durable before the set's fence returns,
        // so what the caller publishes next is backed by every in-sync copy.
        self.lockstep("fence", |m, _| m.fence(site))
    }

    fn read(
        &self,
        offset: u64,
        dst: &mut [u8],
        register: &mut ErrorRegister,
        domain: Domain,
    ) -> Result<()> {
        self.members[0].medium.read(offset, dst, register, domain)
    }

    fn grow(&self, new_len: u64) -> Result<()> {
        self.lockstep("grow", |m, _| m.grow(new_len))
    }

    fn flush_is_noop(&self) -> bool {
        self.members.iter().all(|m| m.medium.flush_is_noop())
    }

    /// Repair `[offset, +len)` on every member not stale (each with its own private bytes).
    fn repair(&self, offset: u64, data: &[u8]) -> Result<()> {
        let _repair = self.gate.write();
        for (i, member) in self.members.iter().enumerate() {
            let id = MemberId(i as u8);
            if self.state(id) != MemberState::Stale {
                member.medium.repair(offset, &self.bytes_for(id, offset, data)?)?;
            }
        }
        Ok(())
    }

    /// The primary's bad blocks and the quarantined ranges (sorted; they may overlap).
    fn bad_blocks(&self) -> Vec<(u64, u64)> {
        let mut ranges = self.members[0].medium.bad_blocks();
        ranges.extend(self.quarantine.read().iter().copied());
        ranges.sort_unstable();
        ranges
    }

    fn mapping(&self) -> Option<MappingId> {
        self.members[0].medium.mapping()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::error::Error;
    use crate::poolset::MemberRewrite;
    use crate::sim::{SimMedium, SimOp};

    pub(crate) const SITE: FenceSite = FenceSite("poolset-test");

    /// A set of `n` SimMedia of `len` bytes, handles to each member kept for the test.
    pub(crate) fn sim_set(
        n: u8,
        len: u64,
        options: PoolSetOptions,
    ) -> (PoolSet, Vec<Arc<SimMedium>>) {
        let sims: Vec<Arc<SimMedium>> =
            (0..n).map(|i| Arc::new(SimMedium::with_member(len, MemberId(i)))).collect();
        let members = sims.iter().map(|s| s.clone() as Arc<dyn Medium>).collect();
        (PoolSet::new(members, options).unwrap(), sims)
    }

    pub(crate) fn read_clean(m: &dyn Medium, offset: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        let mut register = ErrorRegister::deferred();
        m.read(offset, &mut out, &mut register, Domain::User).unwrap();
        assert!(register.is_clean(), "{:?}", register.faults());
        out
    }

    #[test]
    fn writes_land_on_every_member_and_persist_at_the_set_fence() {
        let (set, sims) = sim_set(3, 64 << 10, PoolSetOptions::new());
        set.write(4000, b"lockstep").unwrap();
        set.store_u64(8192, 0xabcd).unwrap();
        set.flush(4000, 8).unwrap();
        set.flush(8192, 8).unwrap();
        set.fence(SITE).unwrap();
        for sim in &sims {
            assert_eq!(read_clean(sim.as_ref(), 4000, 8), b"lockstep");
            assert_eq!(read_clean(sim.as_ref(), 8192, 8), 0xabcdu64.to_le_bytes());
            assert!(sim.is_persisted(4000, 8) && sim.is_persisted(8192, 8));
        }
        assert_eq!(read_clean(&set, 4000, 8), b"lockstep");
        set.grow(128 << 10).unwrap();
        assert!(sims.iter().all(|s| s.len() == 128 << 10));
        assert!(!set.is_degraded());
    }

    #[test]
    fn a_failing_replica_is_marked_stale_and_the_set_carries_on() {
        let (set, sims) = sim_set(3, 64 << 10, PoolSetOptions::new());
        sims[2].fail_nth(SimOp::Write, 1, true);
        assert_eq!(set.state_changes(), 0);
        set.write(0, b"one").unwrap();
        assert_eq!(set.state_changes(), 1, "a member marked stale is a state change");
        set.write_through(64, b"two").unwrap();
        assert!(set.writes_through());
        assert_eq!(set.state_changes(), 1, "a stale member is not written, nor marked again");
        assert_eq!(set.state(MemberId(2)), MemberState::Stale);
        assert_eq!(set.state(MemberId(1)), MemberState::InSync);
        let events = set.stale_events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].member, MemberId(2));
        assert!(events[0].reason.starts_with("write failed"), "{}", events[0].reason);
        assert!(set.stale_events().is_empty());
        // The stale member received nothing after its failure.
        assert_eq!(read_clean(sims[2].as_ref(), 64, 3), [0; 3]);
        assert_eq!(read_clean(sims[1].as_ref(), 64, 3), b"two");
        assert!(set.is_degraded());
        set.set_state(MemberId(2), MemberState::Resilvering);
        assert_eq!(set.state_changes(), 2);
    }

    #[test]
    fn fail_write_option_returns_the_replicas_error() {
        let options = PoolSetOptions::new().on_member_failure(MemberFailure::FailWrite);
        let (set, sims) = sim_set(2, 64 << 10, options);
        sims[1].fail_nth(SimOp::Flush, 1, true);
        set.write(0, b"x").unwrap();
        assert!(matches!(set.flush(0, 1), Err(Error::Injected(_))));
        assert_eq!(set.state(MemberId(1)), MemberState::Stale);
    }

    #[test]
    fn a_failing_primary_fails_the_write_and_marks_nothing() {
        let (set, sims) = sim_set(2, 64 << 10, PoolSetOptions::new());
        sims[0].fail_nth(SimOp::Write, 1, true);
        assert!(set.write(0, b"x").is_err());
        assert!(!set.is_degraded());
        assert_eq!(read_clean(sims[1].as_ref(), 0, 1), [0]);
    }

    #[test]
    fn a_poisoned_replica_page_is_healed_before_the_write_lands() {
        let (set, sims) = sim_set(3, 64 << 10, PoolSetOptions::new());
        set.write(12288, &[7u8; 4096]).unwrap();
        // Replica 2's page is poisoned (its bytes destroyed); a write into it heals it from the
        // primary first, then lands.
        sims[2].inject_poison(12288 + 640, 64).unwrap();
        set.write(12288 + 600, b"healed in place").unwrap();
        set.flush(12288, 4096).unwrap();
        set.fence(SITE).unwrap();
        assert!(!set.is_degraded(), "{:?}", set.members());
        assert!(set.stale_events().is_empty());
        assert!(sims[2].poisoned_ranges().is_empty());
        let want = read_clean(sims[0].as_ref(), 12288, 4096);
        assert_eq!(&want[600..615], b"healed in place");
        assert_eq!(want[0], 7);
        for sim in &sims[1..] {
            assert_eq!(read_clean(sim.as_ref(), 12288, 4096), want);
            assert!(sim.is_persisted(12288, 4096));
        }
        let stats = set.stats();
        assert_eq!((stats.write_heals, stats.repairs, stats.bytes_repaired), (1, 1, 4096));
        // A store and a flush meet poison the same way.
        sims[1].inject_poison(20480, 8).unwrap();
        set.store_u64(20480, 0x55).unwrap();
        sims[2].inject_poison(20480, 8).unwrap();
        set.flush(20480, 8).unwrap();
        assert!(!set.is_degraded());
        assert_eq!(read_clean(sims[2].as_ref(), 20480, 8), 0x55u64.to_le_bytes());
        assert_eq!(set.stats().write_heals, 3);
    }

    #[test]
    fn a_replica_whose_heal_fails_is_marked_stale() {
        let (set, sims) = sim_set(2, 64 << 10, PoolSetOptions::new());
        sims[1].inject_poison(4096, 64).unwrap();
        // The write is refused for the poison (call 1), the heal's repair write fails (call 2).
        sims[1].fail_nth(SimOp::Write, 2, true);
        set.write(4096, b"x").unwrap();
        assert_eq!(set.state(MemberId(1)), MemberState::Stale);
        let events = set.stale_events();
        assert!(events[0].reason.contains("poisoned"), "{events:?}");
        assert_eq!(set.stats().write_heals, 0);
        assert_eq!(read_clean(sims[0].as_ref(), 4096, 1), b"x");
    }

    #[test]
    fn a_poisoned_primary_page_is_healed_from_a_replica_before_the_write_lands() {
        let (set, sims) = sim_set(3, 64 << 10, PoolSetOptions::new());
        set.write(8192, &[9u8; 4096]).unwrap();
        // The primary's page is poisoned (its bytes destroyed); the write heals it from
        // replica 1, then lands on every member.
        sims[0].inject_poison(8192 + 128, 64).unwrap();
        set.write(8192 + 100, b"primary healed").unwrap();
        set.flush(8192, 4096).unwrap();
        set.fence(SITE).unwrap();
        assert!(!set.is_degraded(), "{:?}", set.members());
        assert!(sims[0].poisoned_ranges().is_empty());
        let page = read_clean(sims[0].as_ref(), 8192, 4096);
        assert_eq!(&page[100..114], b"primary healed");
        assert_eq!((page[0], page[128], page[4095]), (9, 9, 9), "healed from the replica");
        for sim in &sims[1..] {
            assert_eq!(read_clean(sim.as_ref(), 8192, 4096), page);
        }
        assert_eq!(set.stats().write_heals, 1);
        // A flush meets poison on the primary after the store: the replica's stored bytes heal it.
        set.write(32768, b"stored, not flushed").unwrap();
        sims[0].inject_poison(32768, 8).unwrap();
        set.flush(32768, 19).unwrap();
        assert_eq!(read_clean(sims[0].as_ref(), 32768, 19), b"stored, not flushed");
        assert!(sims[0].is_persisted(32768, 19));
        assert_eq!(set.stats().write_heals, 2);
    }

    #[test]
    fn a_poisoned_primary_page_with_no_good_copy_fails_typed_and_writes_nothing() {
        let (set, sims) = sim_set(2, 64 << 10, PoolSetOptions::new());
        sims[0].inject_poison(4096, 64).unwrap();
        sims[1].inject_poison(4096 + 1024, 64).unwrap();
        assert!(matches!(set.write(4096, b"x"), Err(Error::Poisoned { offset: 4096, .. })));
        assert!(!set.is_degraded(), "the replica did not fail: it was not written");
        assert_eq!(read_clean(sims[1].as_ref(), 4096, 1), [0]);
        let stats = set.stats();
        assert_eq!((stats.write_heals, stats.no_good_copy), (0, 1));
        // A stale replica is no source either.
        let (set, sims) = sim_set(2, 64 << 10, PoolSetOptions::new());
        set.mark_stale(MemberId(1), "test");
        sims[0].inject_poison(4096, 64).unwrap();
        assert!(matches!(set.store_u64(4096, 1), Err(Error::Poisoned { .. })));
    }

    #[test]
    fn quarantined_ranges_are_reported_as_bad_blocks() {
        let (set, _) = sim_set(2, 64 << 10, PoolSetOptions::new());
        assert!(set.bad_blocks().is_empty());
        set.set_quarantine(vec![(40960, 4096), (8192, 64)]);
        assert_eq!(set.bad_blocks(), vec![(8192, 64), (40960, 4096)]);
        assert_eq!(set.quarantined(), vec![(40960, 4096), (8192, 64)]);
    }

    /// Real emulated poison on member `poisoned` of a mapped pair in /dev/shm (a store there
    /// would SIGBUS), listed in its sidecar: the write heals the page first from the other member
    /// (read through the machine-check-safe copy; pwrite, poison cleared, sidecar line removed),
    /// then lands on both.
    fn a_write_heals_real_poison_on_a_mapped_member(poisoned: usize, page_at: u64, text: &[u8]) {
        use crate::mapped::{BadBlocks, MapOptions, MappedMedium, ModeRequest};
        const LEN: u64 = 64 << 10;
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let open = |i: u8| {
            let options = MapOptions::new().mode(ModeRequest::ForcedPmem).member(MemberId(i));
            let path = dir.path().join(format!("member-{i}"));
            Arc::new(MappedMedium::create(&path, LEN, &options).unwrap())
        };
        let members = [open(0), open(1)];
        let dyn_members: Vec<Arc<dyn Medium>> =
            members.iter().map(|m| m.clone() as Arc<dyn Medium>).collect();
        let set = PoolSet::new(dyn_members, PoolSetOptions::new()).unwrap();
        set.write(0, &[5u8; LEN as usize]).unwrap();
        let target = &members[poisoned];
        let sidecar = BadBlocks::sidecar_path(target.path());
        target.inject_poison(page_at, 4096).unwrap();
        BadBlocks::add(&sidecar, (page_at, 4096)).unwrap();
        set.write(page_at + 10, text).unwrap();
        set.flush(page_at, 4096).unwrap();
        set.fence(SITE).unwrap();
        assert!(!set.is_degraded());
        assert!(target.poisoned_ranges().is_empty());
        assert!(BadBlocks::load(&sidecar).unwrap().ranges().is_empty(), "sidecar line gone");
        let page = read_clean(members[0].as_ref(), page_at, 4096);
        assert_eq!(page, read_clean(members[1].as_ref(), page_at, 4096));
        assert_eq!(&page[10..10 + text.len()], text);
        assert_eq!((page[0], page[4095]), (5, 5));
        assert_eq!(set.stats().write_heals, 1);
    }

    #[test]
    fn a_write_heals_real_poison_on_a_mapped_replica() {
        a_write_heals_real_poison_on_a_mapped_member(1, 16384, b"over the poison");
    }

    #[test]
    fn a_write_heals_real_poison_on_a_mapped_primary() {
        a_write_heals_real_poison_on_a_mapped_member(0, 24576, b"onto the primary");
    }

    /// Member-specific prefix: each member stores the bytes XORed with its index.
    pub(crate) struct XorPrefix;
    impl MemberRewrite for XorPrefix {
        fn private_end(&self) -> u64 {
            8192
        }
        fn rewrite(&self, target: MemberId, _offset: u64, bytes: &[u8]) -> Result<Vec<u8>> {
            // Undo whichever member's XOR the bytes carry is the caller's business; here the
            // bytes are always the primary's (index 0), so XOR with the target gives its own.
            Ok(bytes.iter().map(|b| b ^ target.0).collect())
        }
    }

    #[test]
    fn the_private_prefix_is_rewritten_per_member() {
        let options = PoolSetOptions::new().rewrite(Arc::new(XorPrefix));
        let (set, sims) = sim_set(3, 64 << 10, options);
        set.write(8190, &[0x10; 4]).unwrap(); // straddles the prefix end
        set.store_u64(16, 0x0101).unwrap();
        assert_eq!(read_clean(sims[0].as_ref(), 8190, 4), [0x10; 4]);
        assert_eq!(read_clean(sims[2].as_ref(), 8190, 4), [0x12, 0x12, 0x10, 0x10]);
        assert_eq!(read_clean(sims[1].as_ref(), 16, 2), [0x00, 0x00]);
    }
}
