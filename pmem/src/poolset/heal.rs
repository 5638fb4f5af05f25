//! Healing: rewriting a member's damaged pages from a member that holds good bytes, and the
//! retry of a read from a replica built on it.
//!
//! INVARIANT: a heal copies only bytes that read clean through the machine-check-safe copy and
//! pass the caller's `verify`; it rewrites whole aligned pages through [`Medium::repair`] (member
//! bytes re-made by the [`super::MemberRewrite`] hook inside the private prefix), then re-reads
//! and verifies the target before it reports success. Stale members are never a source.

use std::sync::atomic::Ordering;

use super::member::MemberState;
use super::set::PoolSet;
use crate::error::Result;
use crate::limits::PAGE_SIZE;
use crate::medium::{Medium, MemberId};
use crate::register::{Domain, ErrorRegister};

/// Why a member was no source for a heal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MissKind {
    /// The member is stale.
    Stale,
    /// Its copy of the range is poisoned too.
    Poisoned,
    /// Its copy read clean but failed the caller's verification.
    Unverified,
    /// Reading it failed (out of bounds: a shorter member, a crashed medium ...).
    ReadError(String),
    /// It is the member being healed and its copy could not be rewritten (the error).
    RepairFailed(String),
}

/// A member that could not supply (or take) good bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Miss {
    /// The member.
    pub member: MemberId,
    /// Why.
    pub kind: MissKind,
}

/// What [`PoolSet::heal`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealOutcome {
    /// The target's pages were rewritten from `from`, re-read clean and verified.
    Healed {
        /// The source member.
        from: MemberId,
        /// Bytes rewritten (whole pages).
        bytes_repaired: u64,
        /// Members that were no source on the way.
        misses: Vec<Miss>,
    },
    /// `from` holds good bytes, but the target could not be repaired.
    SourceOnly {
        /// The source member.
        from: MemberId,
        /// Why the target was not repaired (and the other misses).
        misses: Vec<Miss>,
    },
    /// No member holds good bytes for the range.
    NoGoodCopy {
        /// Why each member was no source.
        misses: Vec<Miss>,
    },
}

/// What [`PoolSet::retry_read`] did. Only the first two leave good bytes in `dst`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryOutcome {
    /// `dst` holds verified bytes from `from`; the primary was repaired and re-verified; so
    /// were `replicas_repaired` damaged replicas met on the way.
    Repaired {
        /// The source member.
        from: MemberId,
        /// Bytes rewritten on the primary (whole pages).
        bytes_repaired: u64,
        /// Replicas found damaged and repaired from the primary.
        replicas_repaired: u32,
    },
    /// `dst` holds verified bytes from `from`, but the primary could not be repaired.
    Unrepaired {
        /// The source member.
        from: MemberId,
        /// Why.
        misses: Vec<Miss>,
    },
    /// No good copy anywhere: `dst` holds nothing to use (zero-filled); the caller's fallback
    /// decides.
    NoGoodCopy {
        /// Why each replica was no source.
        misses: Vec<Miss>,
    },
}

impl RetryOutcome {
    /// Whether `dst` holds verified bytes.
    pub fn has_good_bytes(&self) -> bool {
        !matches!(self, RetryOutcome::NoGoodCopy { .. })
    }
}

/// The pages covering `[offset, offset + len)`, clipped to `limit`.
fn page_span(offset: u64, len: u64, limit: u64) -> (u64, u64) {
    let start = offset / PAGE_SIZE * PAGE_SIZE;
    let end = offset.saturating_add(len).div_ceil(PAGE_SIZE).saturating_mul(PAGE_SIZE).min(limit);
    (start, end.max(start))
}

impl PoolSet {
    /// Rewrite `target`'s pages covering `[offset, offset + len)` from the first other member
    /// (the primary first, then replicas in order; stale ones skipped) whose copy reads clean
    /// and whose bytes of the range pass `verify`. See the module docs.
    pub fn heal(
        &self,
        target: MemberId,
        offset: u64,
        len: u64,
        verify: &dyn Fn(&[u8]) -> bool,
    ) -> Result<HealOutcome> {
        Ok(self.heal_with_bytes(target, offset, len, verify)?.0)
    }

    /// [`Self::heal`], also handing back the verified bytes of the range when a source had them.
    fn heal_with_bytes(
        &self,
        target: MemberId,
        offset: u64,
        len: u64,
        verify: &dyn Fn(&[u8]) -> bool,
    ) -> Result<(HealOutcome, Option<Vec<u8>>)> {
        let target_medium = self.medium(target);
        if offset.checked_add(len).is_none_or(|end| end > target_medium.len()) {
            return Err(crate::Error::OutOfBounds { offset, len, medium_len: target_medium.len() });
        }
        let (start, end) = page_span(offset, len, target_medium.len());
        let range = (offset - start) as usize..(offset - start + len) as usize;
        // A repair never races a lockstep write over the same pages (see `set`).
        let _repair = self.gate.write();
        let mut misses = Vec::new();
        let mut sources: Vec<MemberId> =
            (0..self.member_count()).map(|i| MemberId(i as u8)).filter(|&m| m != target).collect();
        sources.sort_by_key(|m| m.0); // the primary first
        for source in sources {
            let miss = |kind| Miss { member: source, kind };
            if self.state(source) != MemberState::InSync {
                misses.push(miss(MissKind::Stale));
                continue;
            }
            let mut page = vec![0u8; (end - start) as usize];
            let mut register = ErrorRegister::deferred();
            if let Err(err) =
                self.read_member(source, start, &mut page, &mut register, Domain::Engine)
            {
                misses.push(miss(MissKind::ReadError(err.to_string())));
                continue;
            }
            if !register.is_clean() {
                misses.push(miss(MissKind::Poisoned));
                continue;
            }
            if !verify(&page[range.clone()]) {
                misses.push(miss(MissKind::Unverified));
                continue;
            }
            let good = page[range.clone()].to_vec();
            let outcome = match self.rewrite_target(target, start, &page, &range, verify) {
                Ok(()) => {
                    self.counters.repairs.fetch_add(1, Ordering::Relaxed);
                    self.counters.bytes_repaired.fetch_add(end - start, Ordering::Relaxed);
                    HealOutcome::Healed { from: source, bytes_repaired: end - start, misses }
                }
                Err(why) => {
                    misses.push(Miss { member: target, kind: MissKind::RepairFailed(why) });
                    HealOutcome::SourceOnly { from: source, misses }
                }
            };
            return Ok((outcome, Some(good)));
        }
        self.counters.no_good_copy.fetch_add(1, Ordering::Relaxed);
        Ok((HealOutcome::NoGoodCopy { misses }, None))
    }

    /// Write `page` (another member's bytes of `[start, +len)`) to `target` through its repair
    /// primitive, then re-read and verify the range. `Err` says why not.
    fn rewrite_target(
        &self,
        target: MemberId,
        start: u64,
        page: &[u8],
        range: &std::ops::Range<usize>,
        verify: &dyn Fn(&[u8]) -> bool,
    ) -> std::result::Result<(), String> {
        let bytes = self.bytes_for(target, start, page).map_err(|e| e.to_string())?;
        let medium = self.medium(target);
        medium.repair(start, &bytes).map_err(|e| e.to_string())?;
        let mut check = vec![0u8; page.len()];
        let mut register = ErrorRegister::deferred();
        medium.read(start, &mut check, &mut register, Domain::Engine).map_err(|e| e.to_string())?;
        if !register.is_clean() {
            return Err(format!("still poisoned after repair: {:?}", register.faults()));
        }
        if check[..] != bytes[..] || !verify(&check[range.clone()]) {
            return Err("repaired pages read back different".to_string());
        }
        Ok(())
    }

    /// Retry a read of the primary that met poison or bytes that do not verify: fetch the same
    /// pages from each replica through the machine-check-safe copy, verify, repair the primary
    /// (whole pages), re-read and verify it, and repair every replica found damaged on the way
    /// from the primary. On an outcome with good bytes `dst` holds them; faults met by the final
    /// re-read of the primary are recorded in `register` (none when `Repaired`).
    pub fn retry_read(
        &self,
        offset: u64,
        dst: &mut [u8],
        register: &mut ErrorRegister,
        domain: Domain,
        verify: &dyn Fn(&[u8]) -> bool,
    ) -> Result<RetryOutcome> {
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
        let len = dst.len() as u64;
        let (outcome, good) = self.heal_with_bytes(MemberId(0), offset, len, verify)?;
        match (outcome, good) {
            (HealOutcome::Healed { from, bytes_repaired, misses }, Some(good)) => {
                // Re-run the read on the repaired primary: this is what the caller gets.
                let mut again = ErrorRegister::new(register.mask());
                self.read(offset, dst, &mut again, domain)?;
                if !again.is_clean() || !verify(dst) {
                    register.merge(&again);
                    dst.copy_from_slice(&good);
                    let why = MissKind::RepairFailed("re-read after repair failed".into());
                    return Ok(RetryOutcome::Unrepaired {
                        from,
                        misses: vec![Miss { member: MemberId(0), kind: why }],
                    });
                }
                let mut replicas_repaired = 0;
                for miss in misses {
                    if matches!(miss.kind, MissKind::Poisoned | MissKind::Unverified)
                        && matches!(
                            self.heal(miss.member, offset, len, verify)?,
                            HealOutcome::Healed { .. }
                        )
                    {
                        replicas_repaired += 1;
                    }
                }
                Ok(RetryOutcome::Repaired { from, bytes_repaired, replicas_repaired })
            }
            (HealOutcome::SourceOnly { from, misses }, Some(good)) => {
                dst.copy_from_slice(&good);
                Ok(RetryOutcome::Unrepaired { from, misses })
            }
            (HealOutcome::NoGoodCopy { misses }, _)
            | (HealOutcome::Healed { misses, .. } | HealOutcome::SourceOnly { misses, .. }, None) =>
            {
                dst.fill(0);
                Ok(RetryOutcome::NoGoodCopy { misses })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poolset::PoolSetOptions;
    use crate::poolset::set::tests::{SITE, read_clean, sim_set};
    use crate::register::FaultCode;

    const LEN: u64 = 64 << 10;

    fn pattern(offset: u64, len: usize) -> Vec<u8> {
        (0..len as u64).map(|i| ((offset + i) * 31 % 251) as u8).collect()
    }

    fn filled_sim_set(n: u8) -> (PoolSet, Vec<std::sync::Arc<crate::SimMedium>>) {
        let (set, sims) = sim_set(n, LEN, PoolSetOptions::new());
        set.write(0, &pattern(0, LEN as usize)).unwrap();
        set.flush(0, LEN).unwrap();
        set.fence(SITE).unwrap();
        (set, sims)
    }

    fn any(_: &[u8]) -> bool {
        true
    }

    #[test]
    fn retry_reads_a_replica_and_repairs_the_primary() {
        let (set, sims) = filled_sim_set(2);
        sims[0].inject_poison(20_000, 100).unwrap();
        let mut dst = vec![0u8; 300];
        let mut register = ErrorRegister::deferred();
        set.read(19_900, &mut dst, &mut register, Domain::User).unwrap();
        assert_eq!(register.first().map(|f| f.code), Some(FaultCode::Simulated));
        assert_ne!(dst, pattern(19_900, 300), "poison destroyed the primary's bytes");
        let expected = pattern(19_900, 300);
        let verify = |b: &[u8]| b == expected.as_slice();
        let mut again = ErrorRegister::deferred();
        let outcome = set.retry_read(19_900, &mut dst, &mut again, Domain::User, &verify).unwrap();
        assert_eq!(
            outcome,
            RetryOutcome::Repaired {
                from: MemberId(1),
                bytes_repaired: 4096,
                replicas_repaired: 0
            }
        );
        assert!(again.is_clean());
        assert_eq!(dst, expected);
        assert!(sims[0].poisoned_ranges().is_empty());
        assert_eq!(read_clean(sims[0].as_ref(), 16384, 4096), pattern(16384, 4096));
        assert!(sims[0].is_persisted(16384, 4096));
        let stats = set.stats();
        assert_eq!((stats.retries, stats.repairs, stats.bytes_repaired), (1, 1, 4096));
    }

    #[test]
    fn no_good_copy_leaves_nothing_to_use() {
        let (set, sims) = filled_sim_set(3);
        for sim in &sims {
            sim.inject_poison(4096, 64).unwrap();
        }
        let mut dst = vec![0xEEu8; 64];
        let outcome =
            set.retry_read(4096, &mut dst, &mut ErrorRegister::deferred(), Domain::User, &any);
        match outcome.unwrap() {
            RetryOutcome::NoGoodCopy { misses } => {
                let kinds: Vec<_> = misses.iter().map(|m| (m.member, m.kind.clone())).collect();
                assert_eq!(
                    kinds,
                    vec![(MemberId(1), MissKind::Poisoned), (MemberId(2), MissKind::Poisoned)]
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(dst, vec![0; 64]);
        assert_eq!(set.stats().no_good_copy, 1);
        assert_eq!(set.stats().repairs, 0);
    }

    #[test]
    fn a_copy_that_does_not_verify_is_no_source() {
        let (set, sims) = filled_sim_set(3);
        sims[0].inject_poison(8192, 64).unwrap();
        // Replica 1 holds a flipped byte (reads clean, fails verification); replica 2 is good.
        sims[1].write(8200, &[0]).unwrap();
        let expected = pattern(8192, 64);
        let verify = |b: &[u8]| b == expected.as_slice();
        let mut dst = vec![0u8; 64];
        let outcome = set
            .retry_read(8192, &mut dst, &mut ErrorRegister::deferred(), Domain::User, &verify)
            .unwrap();
        assert_eq!(
            outcome,
            RetryOutcome::Repaired {
                from: MemberId(2),
                bytes_repaired: 4096,
                replicas_repaired: 1
            }
        );
        assert_eq!(dst, expected);
        // The damaged replica was repaired from the (repaired) primary.
        assert_eq!(read_clean(sims[1].as_ref(), 8192, 64), expected);
        assert_eq!(set.stats().repairs, 2);
    }

    #[test]
    fn a_damaged_replica_is_healed_from_the_primary() {
        let (set, sims) = filled_sim_set(2);
        sims[1].inject_poison(30_000, 10).unwrap();
        let outcome = set.heal(MemberId(1), 30_000, 10, &any).unwrap();
        assert!(
            matches!(outcome, HealOutcome::Healed { from: MemberId(0), bytes_repaired: 4096, .. }),
            "{outcome:?}"
        );
        assert_eq!(read_clean(sims[1].as_ref(), 28672, 4096), pattern(28672, 4096));
    }

    #[test]
    fn stale_members_are_no_source() {
        let (set, sims) = filled_sim_set(2);
        set.mark_stale(MemberId(1), "test");
        sims[0].inject_poison(0, 64).unwrap();
        let mut dst = vec![0u8; 64];
        let outcome =
            set.retry_read(0, &mut dst, &mut ErrorRegister::deferred(), Domain::Engine, &any);
        assert_eq!(
            outcome.unwrap(),
            RetryOutcome::NoGoodCopy {
                misses: vec![Miss { member: MemberId(1), kind: MissKind::Stale }]
            }
        );
    }

    /// Real SIGBUS on mapped members in /dev/shm: the primary's page is destroyed by emulated
    /// poison and listed in its `.badblocks` sidecar; the retry serves the replica's bytes and
    /// the repaired primary reads clean with the sidecar line gone.
    #[test]
    fn retry_on_mapped_members_repairs_real_poison_and_the_sidecar() {
        use crate::mapped::{BadBlocks, MapOptions, MappedMedium, ModeRequest};
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let open = |i: u8| {
            let options = MapOptions::new().mode(ModeRequest::ForcedPmem).member(MemberId(i));
            let path = dir.path().join(format!("member-{i}"));
            std::sync::Arc::new(MappedMedium::create(&path, LEN, &options).unwrap())
        };
        let (primary, replica) = (open(0), open(1));
        let members: Vec<std::sync::Arc<dyn Medium>> = vec![primary.clone(), replica.clone()];
        let set = PoolSet::new(members, PoolSetOptions::new()).unwrap();
        set.write(0, &pattern(0, LEN as usize)).unwrap();
        set.flush(0, LEN).unwrap();
        set.fence(SITE).unwrap();
        let sidecar = BadBlocks::sidecar_path(primary.path());
        primary.inject_poison(12288, 4096).unwrap();
        BadBlocks::add(&sidecar, (12288, 4096)).unwrap();

        let mut dst = vec![0u8; 200];
        let mut register = ErrorRegister::deferred();
        set.read(12300, &mut dst, &mut register, Domain::User).unwrap();
        assert_eq!(register.first().map(|f| (f.code, f.offset)), Some((FaultCode::AdrErr, 12288)));
        let expected = pattern(12300, 200);
        let verify = |b: &[u8]| b == expected.as_slice();
        let mut again = ErrorRegister::deferred();
        let outcome = set.retry_read(12300, &mut dst, &mut again, Domain::User, &verify).unwrap();
        assert!(matches!(outcome, RetryOutcome::Repaired { from: MemberId(1), .. }), "{outcome:?}");
        assert_eq!(dst, expected);
        assert!(primary.poisoned_ranges().is_empty());
        assert_eq!(read_clean(primary.as_ref(), 12288, 4096), pattern(12288, 4096));
        assert!(BadBlocks::load(&sidecar).unwrap().ranges().is_empty(), "sidecar line gone");
    }

    #[test]
    fn heal_out_of_bounds_is_an_error() {
        let (set, _) = filled_sim_set(2);
        assert!(matches!(
            set.heal(MemberId(1), LEN - 8, 16, &any),
            Err(crate::Error::OutOfBounds { .. })
        ));
    }
}
