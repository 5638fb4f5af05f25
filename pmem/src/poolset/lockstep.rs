//! The lockstep [`Medium`] implementation of a [`PoolSet`]: every write, store, flush, fence and
//! grow applied to the primary, then to each member not stale; a member page refused as poisoned
//! is healed from a good member before the operation is re-run.
//!
//! INVARIANT: a write, store, flush, fence or grow that returns `Ok` reached the primary and
//! every member not `Stale`; a member that failed one is `Stale` from then on and receives no
//! more writes. A member (the primary too) that refuses a write because the page is known
//! poisoned (media check their poison map before any store, so nothing landed) is healed in
//! place from a good member and the write re-run; only a failed heal makes a replica `Stale`
//! (and fails the operation, typed, for the primary). Reads go to the primary only.

use std::sync::atomic::Ordering;

use parking_lot::RwLockReadGuard;

use super::heal::HealOutcome;
use super::member::MemberState;
use super::options::MemberFailure;
use super::set::PoolSet;
use crate::error::{Error, Result};
use crate::mcsafe::MappingId;
use crate::medium::{FenceSite, Medium, MemberId};
use crate::register::{Domain, ErrorRegister};
use crate::xxh3::Xxh3Stream;

/// Most heals one lockstep operation on one member may run before the member is given up
/// (each heal clears at least the first poisoned span the member reported).
const WRITE_HEALS_MAX: u32 = 64;

impl PoolSet {
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

    fn read_hashing(
        &self,
        offset: u64,
        dst: &mut [u8],
        register: &mut ErrorRegister,
        domain: Domain,
        hash: &mut Xxh3Stream,
    ) -> Result<()> {
        self.members[0].medium.read_hashing(offset, dst, register, domain, hash)
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
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::poolset::PoolSetOptions;
    use crate::poolset::set::tests::{SITE, read_clean, sim_set};
    use crate::sim::SimOp;

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
}
