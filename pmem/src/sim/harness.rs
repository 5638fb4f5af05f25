//! The harness's hand on a [`SimMedium`]: crash plans and fence accounting, crash images,
//! the "acknowledged ranges are persisted" check, poison injection and failure points.
//!
//! None of these are [`crate::Medium`] calls: they keep working after the simulated process
//! died (a crashed medium is exactly what a harness takes images of).

use std::ops::Range;

use super::crash::{CrashPlan, SimOp};
use super::images::{CrashImages, CrashMode, Snapshot, image_count};
use super::lines::line_of;
use super::medium::SimMedium;
use super::poison::POISON_PATTERN;
use crate::error::Result;
use crate::limits::CACHE_LINE;
use crate::medium::FenceSite;

/// A range that [`SimMedium::assert_persisted`] found still pending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "[{offset}, +{len}) not persisted: {pending_words} pending store(s), first at byte {first_pending}"
)]
pub struct NotPersisted {
    /// Start of the range asked about.
    pub offset: u64,
    /// Its length.
    pub len: u64,
    /// The lowest byte of the range some pending store wrote.
    pub first_pending: u64,
    /// How many pending word stores wrote into the range.
    pub pending_words: usize,
}

impl SimMedium {
    // ---- crash plan and fence accounting ----

    /// Crash when the n-th fence (1-based, since construction or [`Self::reset_fences`]) is
    /// reached, before it applies anything; `None` never.
    pub fn crash_at_fence(&self, n: Option<u64>) {
        self.set_crash_plan(n.map_or(CrashPlan::Never, CrashPlan::AtFence));
    }

    /// Set when the simulated process dies (counting site reaches already logged).
    pub fn set_crash_plan(&self, plan: CrashPlan) {
        self.state.lock().control.set_plan(plan);
    }

    /// The current crash plan.
    pub fn crash_plan(&self) -> CrashPlan {
        self.state.lock().control.plan()
    }

    /// Crash now, without a fence: every later [`crate::Medium`] call returns [`crate::Error::Crashed`].
    pub fn freeze(&self) {
        self.state.lock().control.freeze();
    }

    /// Whether the simulated process is dead.
    pub fn is_crashed(&self) -> bool {
        self.state.lock().control.is_crashed()
    }

    /// The fence number and site the crash plan fired at (`None` if alive or frozen by hand).
    pub fn crashed_at(&self) -> Option<(u64, FenceSite)> {
        self.state.lock().control.crashed_at()
    }

    /// Fences reached so far (the one a crash fired at included; injected failures excluded).
    pub fn fences_seen(&self) -> u64 {
        self.state.lock().control.fences_seen()
    }

    /// The site of every fence reached, in order.
    pub fn fence_log(&self) -> Vec<FenceSite> {
        self.state.lock().control.fence_log().to_vec()
    }

    /// Count fences from zero again (the crash plan counts from here).
    pub fn reset_fences(&self) {
        self.state.lock().control.reset_fences();
    }

    // ---- failure injection ----

    /// Make the n-th call of `op` from now (1-based) return [`crate::Error::Injected`] having done
    /// nothing; with `persistent`, every later call too. Replaces an earlier point for `op`.
    pub fn fail_nth(&self, op: SimOp, n: u64, persistent: bool) {
        self.state.lock().control.fail_nth(op, n, persistent);
    }

    /// Remove every failure point.
    pub fn clear_failures(&self) {
        self.state.lock().control.clear_failures();
    }

    /// Calls of `op` so far (failed ones included; `store_u64` counts as a write).
    pub fn op_count(&self, op: SimOp) -> u64 {
        self.state.lock().control.calls(op)
    }

    // ---- crash images ----

    /// How many crash images `mode` allows now: Π(nᵢ+1) or 2^Σnᵢ, saturating.
    pub fn image_count(&self, mode: CrashMode) -> u128 {
        let state = self.state.lock();
        image_count(mode, state.pending.queues().map(|queue| queue.words.len()))
    }

    /// Crash images of the current (or frozen) state: all of them when [`Self::image_count`]
    /// is at most `limit`, else `limit` samples reproducible from `seed`.
    pub fn crash_images(&self, mode: CrashMode, limit: usize, seed: u64) -> CrashImages {
        CrashImages::new(self.snapshot(), mode, limit, seed)
    }

    /// One crash image drawn from `seed` (the same seed gives the same image).
    pub fn crash_image(&self, mode: CrashMode, seed: u64) -> Vec<u8> {
        self.snapshot().image_from_seed(mode, seed)
    }

    /// The bytes that survive for sure: only fenced stores.
    pub fn persistent_image(&self) -> Vec<u8> {
        self.state.lock().persistent.clone()
    }

    /// The bytes reads see: every store.
    pub fn visible_image(&self) -> Vec<u8> {
        self.state.lock().visible.clone()
    }

    fn snapshot(&self) -> Snapshot {
        let state = self.state.lock();
        Snapshot::new(&state.persistent, &state.pending)
    }

    // ---- acknowledgement check and pending state ----

    /// `Ok` iff no store into `[offset, offset + len)` is still pending (flushed-but-unfenced
    /// counts as pending). Call it where the caller acknowledges a write.
    pub fn assert_persisted(&self, offset: u64, len: u64) -> Result<(), NotPersisted> {
        let end = offset.saturating_add(len);
        match self.state.lock().pending.overlapping(offset, end) {
            None => Ok(()),
            Some((first_pending, pending_words)) => {
                Err(NotPersisted { offset, len, first_pending, pending_words })
            }
        }
    }

    /// Whether `[offset, offset + len)` has no pending store.
    pub fn is_persisted(&self, offset: u64, len: u64) -> bool {
        self.assert_persisted(offset, len).is_ok()
    }

    /// Pending word stores in all lines.
    pub fn pending_words(&self) -> usize {
        self.state.lock().pending.word_count()
    }

    /// Lines with a pending store.
    pub fn pending_lines(&self) -> usize {
        self.state.lock().pending.line_count()
    }

    // ---- poison ----

    /// Poison the lines covering `[offset, offset + len)`. Destructive, as real poison: their
    /// bytes become a pattern in both layers and their pending stores are lost. Works on a
    /// crashed medium too (it is the harness's hand, not the process's).
    pub fn inject_poison(&self, offset: u64, len: u64) -> Result<()> {
        let mut state = self.state.lock();
        state.check_bounds(offset, len)?;
        if len == 0 {
            return Ok(());
        }
        let (first, last) = (line_of(offset), line_of(offset + len - 1));
        let bytes =
            (first * CACHE_LINE) as usize..(((last + 1) * CACHE_LINE).min(state.len())) as usize;
        state.visible[bytes.clone()].fill(POISON_PATTERN);
        state.persistent[bytes].fill(POISON_PATTERN);
        state.pending.discard(first, last);
        state.poison.insert(first, last);
        Ok(())
    }

    /// Clear poison on the lines covering `[offset, offset + len)`; their bytes keep the
    /// pattern until rewritten (the data is gone).
    pub fn clear_poison(&self, offset: u64, len: u64) -> Result<()> {
        let mut state = self.state.lock();
        state.check_bounds(offset, len)?;
        if len > 0 {
            state.poison.remove(line_of(offset), line_of(offset + len - 1));
        }
        Ok(())
    }

    /// The poisoned byte ranges, line-aligned and coalesced.
    pub fn poisoned_ranges(&self) -> Vec<Range<u64>> {
        self.state.lock().poison.ranges()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::medium::{Medium, MemberId};
    use crate::register::{Domain, ErrorRegister, Fault, FaultCode};
    use crate::sim::medium::tests::read_all;

    const SITE: FenceSite = FenceSite("test.site");
    const OTHER: FenceSite = FenceSite("test.other");

    #[test]
    fn crash_at_fence_freezes_before_applying_that_fence() {
        let medium = SimMedium::new(128);
        medium.crash_at_fence(Some(2));
        medium.write(0, &[1; 8]).unwrap();
        medium.flush(0, 8).unwrap();
        medium.fence(SITE).unwrap();
        medium.write(8, &[2; 8]).unwrap();
        medium.flush(8, 8).unwrap();
        assert!(matches!(medium.fence(OTHER), Err(Error::Crashed)));
        assert!(medium.is_crashed());
        assert_eq!(medium.crashed_at(), Some((2, OTHER)));
        assert_eq!(medium.fences_seen(), 2);
        assert_eq!(medium.fence_log(), vec![SITE, OTHER]);
        // The second fence did not apply: the word is still pending, images differ on it.
        assert_eq!(medium.pending_words(), 1);
        assert_eq!(medium.image_count(CrashMode::PerLinePrefix), 2);
        let mut register = ErrorRegister::deferred();
        assert!(matches!(medium.write(0, &[3]), Err(Error::Crashed)));
        assert!(matches!(medium.store_u64(0, 3), Err(Error::Crashed)));
        assert!(matches!(medium.flush(0, 8), Err(Error::Crashed)));
        assert!(matches!(medium.fence(SITE), Err(Error::Crashed)));
        assert!(matches!(medium.grow(4096), Err(Error::Crashed)));
        assert!(matches!(
            medium.read(0, &mut [0; 8], &mut register, Domain::User),
            Err(Error::Crashed)
        ));
        assert_eq!(medium.fences_seen(), 2);
        // Reopen a crash image.
        let reopened =
            SimMedium::from_image(medium.crash_image(CrashMode::PerLinePrefix, 3), MemberId(1));
        assert_eq!(read_all(&reopened, 0, 8), vec![1; 8]);
        assert_eq!(reopened.member(), MemberId(1));
        assert_eq!(reopened.pending_words(), 0);
    }

    #[test]
    fn crash_plans_by_site_and_freeze() {
        let medium = SimMedium::new(64);
        medium.fence(SITE).unwrap();
        medium.reset_fences();
        medium.set_crash_plan(CrashPlan::AtSite { site: SITE, nth: 2 });
        medium.fence(SITE).unwrap();
        medium.fence(OTHER).unwrap();
        assert!(medium.fence(SITE).is_err());
        assert_eq!(medium.crashed_at(), Some((3, SITE)));
        let frozen = SimMedium::new(64);
        frozen.freeze();
        assert!(frozen.is_crashed());
        assert_eq!(frozen.crashed_at(), None);
        assert!(matches!(frozen.write(0, &[1]), Err(Error::Crashed)));
    }

    #[test]
    fn poisoned_lines_are_destroyed_reported_and_refuse_writes() {
        let medium = SimMedium::with_member(512, MemberId(3));
        medium.write(0, &[7; 512]).unwrap();
        medium.flush(0, 512).unwrap();
        medium.fence(SITE).unwrap();
        medium.write(130, &[8; 4]).unwrap();
        medium.inject_poison(130, 70).unwrap(); // lines 2 and 3
        assert_eq!(medium.poisoned_ranges(), vec![128..256]);
        assert_eq!(medium.pending_words(), 0);
        assert!(medium.persistent_image()[128..256].iter().all(|b| *b == POISON_PATTERN));
        let mut dst = vec![0xEE; 200];
        let mut register = ErrorRegister::deferred();
        medium.read(100, &mut dst, &mut register, Domain::Engine).unwrap();
        let fault = Fault {
            member: MemberId(3),
            offset: 128,
            len: 128,
            domain: Domain::Engine,
            code: FaultCode::Simulated,
        };
        assert_eq!(register.faults(), &[fault]);
        assert_eq!(&dst[..28], &[7; 28]);
        assert_eq!(&dst[28..156], &[0; 128]);
        assert_eq!(&dst[156..], &[7; 44]);
        let mut register = ErrorRegister::immediate();
        medium.read(100, &mut dst, &mut register, Domain::User).unwrap();
        assert_eq!(register.faults().len(), 1);
        assert_eq!(register.faults()[0].len, 64);
        assert!(dst[28..].iter().all(|b| *b == 0));
        let before = medium.visible_image();
        assert!(matches!(
            medium.write(250, &[1; 10]),
            Err(Error::Poisoned { offset: 192, len: 64 })
        ));
        assert!(matches!(medium.store_u64(128, 1), Err(Error::Poisoned { offset: 128, len: 64 })));
        assert!(matches!(medium.flush(0, 200), Err(Error::Poisoned { offset: 128, len: 64 })));
        assert_eq!(medium.visible_image(), before);
        medium.clear_poison(128, 64).unwrap();
        assert_eq!(medium.poisoned_ranges(), vec![192..256]);
        medium.write(128, &[9; 64]).unwrap();
        assert_eq!(read_all(&medium, 128, 64), vec![9; 64]);
    }

    #[test]
    fn injected_failures_once_and_persistent_do_nothing() {
        let medium = SimMedium::new(128);
        medium.fail_nth(SimOp::Write, 2, false);
        medium.write(0, &[1]).unwrap();
        assert!(matches!(medium.store_u64(8, 2), Err(Error::Injected(_))));
        medium.write(16, &[3]).unwrap();
        assert_eq!(medium.pending_words(), 2);
        assert_eq!(&medium.visible_image()[8..16], &[0; 8]);
        medium.fail_nth(SimOp::Fence, 1, true);
        for _ in 0..3 {
            assert!(matches!(medium.fence(SITE), Err(Error::Injected(_))));
        }
        assert_eq!(medium.fences_seen(), 0);
        medium.fail_nth(SimOp::Grow, 1, false);
        assert!(matches!(medium.grow(4096), Err(Error::Injected(_))));
        assert_eq!(medium.len(), 128);
        medium.fail_nth(SimOp::Flush, 1, false);
        assert!(medium.flush(0, 64).is_err());
        medium.clear_failures();
        medium.flush(0, 64).unwrap();
        medium.fence(SITE).unwrap();
        assert_eq!(medium.pending_words(), 0);
        assert_eq!(medium.op_count(SimOp::Write), 3);
        assert_eq!(medium.op_count(SimOp::Fence), 4);
        assert_eq!(medium.op_count(SimOp::Flush), 2);
    }
}
