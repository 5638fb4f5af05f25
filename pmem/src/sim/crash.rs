//! The life of a simulated process: fences counted and logged, a crash plan that freezes the
//! medium when a chosen fence is reached, and failure points injected into chosen operations.
//!
//! INVARIANT: once crashed, the medium stays crashed; `Control::begin` refuses every operation
//! with `Error::Crashed`. A crash at a fence happens *before* that fence applies anything, so
//! the frozen pending state is the one the fence would have started from.

use crate::error::{Error, Result};
use crate::medium::FenceSite;

/// An operation of the simulated medium that failure points can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SimOp {
    /// `write` and `store_u64`.
    Write,
    /// `flush`.
    Flush,
    /// `fence`.
    Fence,
    /// `grow`.
    Grow,
}

impl SimOp {
    fn index(self) -> usize {
        match self {
            SimOp::Write => 0,
            SimOp::Flush => 1,
            SimOp::Fence => 2,
            SimOp::Grow => 3,
        }
    }

    fn failure(self) -> &'static str {
        match self {
            SimOp::Write => "simulated write failure",
            SimOp::Flush => "simulated flush failure",
            SimOp::Fence => "simulated fence failure",
            SimOp::Grow => "simulated grow failure",
        }
    }
}

/// When the simulated process dies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CrashPlan {
    /// Never (until [`super::SimMedium::freeze`]).
    #[default]
    Never,
    /// When the n-th fence (1-based, since construction or the last fence reset) is reached.
    AtFence(u64),
    /// When the n-th fence naming `site` (1-based, same counting) is reached.
    AtSite {
        /// The persist point.
        site: FenceSite,
        /// Which reach of it.
        nth: u64,
    },
}

/// Why the medium is frozen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Crash {
    /// `freeze()` was called.
    Frozen,
    /// The plan fired at this fence number and site.
    AtFence(u64, FenceSite),
}

#[derive(Clone, Copy, Debug)]
struct FailPoint {
    /// Value of the op's call counter at which it fails.
    at: u64,
    /// Fail every call from `at` on, not just that one.
    persistent: bool,
}

/// Fence accounting, crash plan and failure points of one medium.
#[derive(Clone, Debug, Default)]
pub(super) struct Control {
    fences: u64,
    fence_log: Vec<FenceSite>,
    plan: CrashPlan,
    plan_site_reaches: u64,
    crash: Option<Crash>,
    calls: [u64; 4],
    fail_points: [Option<FailPoint>; 4],
}

impl Control {
    /// Start an operation: refused once crashed; counted; failed if a failure point says so.
    pub(super) fn begin(&mut self, op: SimOp) -> Result<()> {
        self.alive()?;
        let calls = &mut self.calls[op.index()];
        *calls += 1;
        match self.fail_points[op.index()] {
            Some(point) if *calls == point.at || (point.persistent && *calls > point.at) => {
                Err(Error::Injected(op.failure()))
            }
            _ => Ok(()),
        }
    }

    /// `Err(Crashed)` once the process is dead.
    pub(super) fn alive(&self) -> Result<()> {
        match self.crash {
            Some(_) => Err(Error::Crashed),
            None => Ok(()),
        }
    }

    /// A fence at `site` is reached: count and log it, and crash here if the plan says so.
    pub(super) fn reach_fence(&mut self, site: FenceSite) -> Result<()> {
        self.fences += 1;
        self.fence_log.push(site);
        let fire = match self.plan {
            CrashPlan::Never => false,
            CrashPlan::AtFence(n) => self.fences == n,
            CrashPlan::AtSite { site: planned, nth } => {
                if planned == site {
                    self.plan_site_reaches += 1;
                }
                planned == site && self.plan_site_reaches == nth
            }
        };
        if fire {
            self.crash = Some(Crash::AtFence(self.fences, site));
            return Err(Error::Crashed);
        }
        Ok(())
    }

    pub(super) fn set_plan(&mut self, plan: CrashPlan) {
        self.plan = plan;
        self.plan_site_reaches = match plan {
            CrashPlan::AtSite { site, .. } => {
                self.fence_log.iter().filter(|seen| **seen == site).count() as u64
            }
            CrashPlan::Never | CrashPlan::AtFence(_) => 0,
        };
    }

    pub(super) fn plan(&self) -> CrashPlan {
        self.plan
    }

    pub(super) fn freeze(&mut self) {
        self.crash.get_or_insert(Crash::Frozen);
    }

    pub(super) fn is_crashed(&self) -> bool {
        self.crash.is_some()
    }

    pub(super) fn crashed_at(&self) -> Option<(u64, FenceSite)> {
        match self.crash {
            Some(Crash::AtFence(n, site)) => Some((n, site)),
            Some(Crash::Frozen) | None => None,
        }
    }

    pub(super) fn fences_seen(&self) -> u64 {
        self.fences
    }

    pub(super) fn fence_log(&self) -> &[FenceSite] {
        &self.fence_log
    }

    /// Start counting fences (and site reaches) from zero again.
    pub(super) fn reset_fences(&mut self) {
        self.fences = 0;
        self.fence_log.clear();
        self.plan_site_reaches = 0;
    }

    /// Fail the n-th (1-based) call of `op` from now on, and every later one if `persistent`.
    pub(super) fn fail_nth(&mut self, op: SimOp, n: u64, persistent: bool) {
        assert!(n >= 1, "fail_nth counts calls from 1");
        let at = self.calls[op.index()] + n;
        self.fail_points[op.index()] = Some(FailPoint { at, persistent });
    }

    pub(super) fn clear_failures(&mut self) {
        self.fail_points = [None; 4];
    }

    pub(super) fn calls(&self, op: SimOp) -> u64 {
        self.calls[op.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: FenceSite = FenceSite("a");
    const B: FenceSite = FenceSite("b");

    #[test]
    fn crash_at_the_nth_fence_freezes_for_good() {
        let mut control = Control::default();
        control.set_plan(CrashPlan::AtFence(2));
        assert!(control.reach_fence(A).is_ok());
        assert!(matches!(control.reach_fence(B), Err(Error::Crashed)));
        assert_eq!(control.crashed_at(), Some((2, B)));
        assert!(matches!(control.begin(SimOp::Write), Err(Error::Crashed)));
        assert_eq!(control.fence_log(), &[A, B]);
    }

    #[test]
    fn crash_at_the_nth_reach_of_a_site() {
        let mut control = Control::default();
        control.reach_fence(B).unwrap();
        control.reach_fence(A).unwrap();
        control.set_plan(CrashPlan::AtSite { site: A, nth: 3 });
        control.reach_fence(A).unwrap();
        control.reach_fence(B).unwrap();
        assert!(control.reach_fence(A).is_err());
        assert_eq!(control.crashed_at(), Some((5, A)));
    }

    #[test]
    fn failure_points_once_and_persistent() {
        let mut control = Control::default();
        control.begin(SimOp::Flush).unwrap();
        control.fail_nth(SimOp::Flush, 2, false);
        control.fail_nth(SimOp::Grow, 1, true);
        assert!(control.begin(SimOp::Flush).is_ok());
        assert!(matches!(control.begin(SimOp::Flush), Err(Error::Injected(_))));
        assert!(control.begin(SimOp::Flush).is_ok());
        for _ in 0..3 {
            assert!(matches!(control.begin(SimOp::Grow), Err(Error::Injected(_))));
        }
        assert!(control.begin(SimOp::Write).is_ok());
        assert_eq!(control.calls(SimOp::Flush), 4);
        control.clear_failures();
        assert!(control.begin(SimOp::Grow).is_ok());
        let ops = [SimOp::Write, SimOp::Flush, SimOp::Fence, SimOp::Grow];
        assert_eq!(ops.map(|op| control.calls(op)), [1, 4, 0, 4]);
    }
}
