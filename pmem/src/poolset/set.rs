//! The members of a [`PoolSet`], their states, the quarantine, the repair counters, and the
//! member-specific bytes a write carries (`bytes_for`). The lockstep [`Medium`] implementation
//! is `lockstep.rs`; member states and events are `member.rs`.
//!
//! INVARIANT: a member's state changes only through `set_state` (`mark_stale` included), which
//! counts every change after storing it; the primary is always `InSync`. Writers hold `gate`
//! shared and a repair holds it exclusively, so a page copied from a peer is never half-way
//! through a lockstep write.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use super::member::{MemberInfo, MemberState, StaleEvent};
use super::options::PoolSetOptions;
use crate::error::Result;
use crate::medium::{Medium, MemberId};
use crate::register::{Domain, ErrorRegister};

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

pub(super) struct Member {
    pub(super) medium: Arc<dyn Medium>,
    state: AtomicU8,
}

/// A primary and zero or more replicas written in lockstep. See the module docs here and in
/// `lockstep.rs` (what a write that returns `Ok` reached).
pub struct PoolSet {
    pub(super) members: Vec<Member>,
    pub(super) options: PoolSetOptions,
    pub(super) gate: RwLock<()>,
    pub(super) counters: Counters,
    events: Mutex<Vec<StaleEvent>>,
    /// Ranges no member holds good bytes for (the layer above's persisted quarantine): reported
    /// by `bad_blocks` so an allocator never writes there.
    pub(super) quarantine: RwLock<Vec<(u64, u64)>>,
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
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::medium::FenceSite;
    use crate::poolset::MemberRewrite;
    use crate::sim::SimMedium;

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

    pub(crate) use crate::medium::read_clean;

    #[test]
    fn quarantined_ranges_are_reported_as_bad_blocks() {
        let (set, _) = sim_set(2, 64 << 10, PoolSetOptions::new());
        assert!(set.bad_blocks().is_empty());
        set.set_quarantine(vec![(40960, 4096), (8192, 64)]);
        assert_eq!(set.bad_blocks(), vec![(8192, 64), (40960, 4096)]);
        assert_eq!(set.quarantined(), vec![(40960, 4096), (8192, 64)]);
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
