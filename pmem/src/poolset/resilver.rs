//! Resilvering: bringing a stale (or new) replica back in sync online, by copying the primary
//! in chunks while the set keeps writing, then verifying every chunk before admitting it.
//!
//! INVARIANT: the member is `Resilvering` during the copy, so it receives every lockstep write;
//! each chunk is read from the primary and written to the member under the set's gate held
//! exclusively, so a chunk never mixes bytes from before and after a concurrent write — chunks
//! already copied are kept current by the lockstep writes, chunks not yet copied are overwritten
//! by the copy. The member becomes `InSync` only after a full comparison pass.

use super::heal::HealOutcome;
use super::member::MemberState;
use super::set::PoolSet;
use crate::error::{Error, Result};
use crate::limits::PAGE_SIZE;
use crate::medium::{Medium, MemberId};
use crate::register::{Domain, ErrorRegister};

/// What a completed resilver did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResilverReport {
    /// Bytes copied from the primary.
    pub bytes_copied: u64,
    /// Bytes compared in the verification pass.
    pub bytes_verified: u64,
    /// Poisoned units of the primary healed from another replica on the way.
    pub primary_units_healed: u32,
}

fn refused(reason: String) -> Error {
    Error::io(reason, std::io::Error::from(std::io::ErrorKind::InvalidData))
}

impl PoolSet {
    /// Resilver `member` (not the primary) from the primary in chunks of `chunk_bytes` (a whole
    /// number of pages): mark it `Resilvering`, copy every chunk through the member's repair
    /// primitive (clearing its poison; its private prefix re-made for it), compare every chunk,
    /// and mark it `InSync`. A poisoned unit of the primary is healed from another in-sync
    /// replica first. On error the member is marked `Stale` again.
    pub fn resilver(&self, member: MemberId, chunk_bytes: u64) -> Result<ResilverReport> {
        assert!(member.0 != 0, "the primary is the source of a resilver");
        assert!(
            chunk_bytes > 0 && chunk_bytes.is_multiple_of(PAGE_SIZE),
            "resilver chunks are whole pages"
        );
        self.set_state(member, MemberState::Resilvering);
        let result = self.copy_and_verify(member, chunk_bytes);
        match &result {
            Ok(_) => self.set_state(member, MemberState::InSync),
            Err(err) => self.mark_stale(member, format!("resilver failed: {err}")),
        }
        result
    }

    fn copy_and_verify(&self, member: MemberId, chunk_bytes: u64) -> Result<ResilverReport> {
        let mut report = ResilverReport::default();
        self.medium(member).grow(self.len())?;
        let mut pos = 0;
        while pos < self.len() {
            let end = (pos + chunk_bytes).min(self.len());
            match self.copy_chunk(member, pos, end)? {
                None => {
                    report.bytes_copied += end - pos;
                    pos = end;
                }
                Some((offset, len)) => {
                    // The primary's chunk is poisoned there: heal it (outside the gate), retry.
                    match self.heal(MemberId(0), offset, len, &|_| true)? {
                        HealOutcome::Healed { .. } => report.primary_units_healed += 1,
                        _ => {
                            return Err(refused(format!(
                                "primary poisoned at [{offset}, +{len}) with no good copy"
                            )));
                        }
                    }
                }
            }
        }
        let mut pos = 0;
        while pos < self.len() {
            let end = (pos + chunk_bytes).min(self.len());
            self.verify_chunk(member, pos, end)?;
            report.bytes_verified += end - pos;
            pos = end;
        }
        Ok(report)
    }

    /// Copy `[start, end)` of the primary to `member`; `Some(unit)` if the primary is poisoned.
    fn copy_chunk(&self, member: MemberId, start: u64, end: u64) -> Result<Option<(u64, u64)>> {
        let _exclusive = self.gate.write();
        if self.state(member) == MemberState::Stale {
            return Err(refused(format!("member {} failed a write while resilvering", member.0)));
        }
        let mut chunk = vec![0u8; (end - start) as usize];
        let mut register = ErrorRegister::deferred();
        self.read_member(MemberId(0), start, &mut chunk, &mut register, Domain::Engine)?;
        if let Some(fault) = register.first() {
            return Ok(Some((fault.offset, fault.len)));
        }
        let bytes = self.bytes_for(member, start, &chunk)?;
        self.medium(member).repair(start, &bytes)?;
        Ok(None)
    }

    /// Compare `[start, end)` of `member` with the primary's (re-made for it).
    fn verify_chunk(&self, member: MemberId, start: u64, end: u64) -> Result<()> {
        let _exclusive = self.gate.write();
        let len = (end - start) as usize;
        let (mut ours, mut theirs) = (vec![0u8; len], vec![0u8; len]);
        let mut register = ErrorRegister::deferred();
        self.read_member(MemberId(0), start, &mut ours, &mut register, Domain::Engine)?;
        self.read_member(member, start, &mut theirs, &mut register, Domain::Engine)?;
        if let Some(fault) = register.first() {
            return Err(Error::Poisoned { offset: fault.offset, len: fault.len });
        }
        if self.bytes_for(member, start, &ours)?[..] != theirs[..] {
            return Err(refused(format!(
                "member {} differs from the primary in [{start}, {end}) after the copy",
                member.0
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poolset::PoolSetOptions;
    use crate::poolset::set::tests::{SITE, read_clean, sim_set};

    const LEN: u64 = 64 << 10;

    #[test]
    fn a_stale_member_is_copied_verified_and_admitted() {
        let (set, sims) = sim_set(3, LEN, PoolSetOptions::new());
        set.write(0, &[1u8; 4096]).unwrap();
        set.mark_stale(MemberId(2), "test");
        set.write(8192, &[2u8; 4096]).unwrap(); // missed by member 2
        sims[2].inject_poison(40_000, 10).unwrap();
        sims[0].inject_poison(20_480, 64).unwrap(); // healed from member 1 on the way
        let report = set.resilver(MemberId(2), 16384).unwrap();
        assert_eq!(report.bytes_copied, LEN);
        assert_eq!(report.bytes_verified, LEN);
        assert_eq!(report.primary_units_healed, 1);
        assert_eq!(set.state(MemberId(2)), MemberState::InSync);
        assert_eq!(read_clean(sims[2].as_ref(), 8192, 4096), vec![2u8; 4096]);
        assert!(sims[2].poisoned_ranges().is_empty() && sims[0].poisoned_ranges().is_empty());
        // Admitted: it receives writes again.
        set.write(100, b"after").unwrap();
        set.flush(100, 5).unwrap();
        set.fence(SITE).unwrap();
        assert_eq!(read_clean(sims[2].as_ref(), 100, 5), b"after");
    }

    #[test]
    fn writes_during_the_resilver_reach_the_member() {
        let (set, sims) = sim_set(2, LEN, PoolSetOptions::new());
        let set = std::sync::Arc::new(set);
        set.mark_stale(MemberId(1), "test");
        let writer = {
            let set = set.clone();
            std::thread::spawn(move || {
                for i in 0..200u64 {
                    set.write((i * 312) % (LEN - 8), &i.to_le_bytes()).unwrap();
                }
            })
        };
        set.resilver(MemberId(1), 4096).unwrap();
        writer.join().unwrap();
        assert_eq!(sims[0].visible_image(), sims[1].visible_image());
    }

    #[test]
    fn no_good_copy_of_the_primary_leaves_the_member_stale() {
        let (set, sims) = sim_set(2, LEN, PoolSetOptions::new());
        set.mark_stale(MemberId(1), "test");
        sims[0].inject_poison(4096, 64).unwrap();
        assert!(set.resilver(MemberId(1), 8192).is_err());
        assert_eq!(set.state(MemberId(1)), MemberState::Stale);
    }
}
