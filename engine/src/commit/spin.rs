//! `SpinGate`: whether a writer that waits for the group in flight spins before it sleeps,
//! learned from how recent spins ended. A spin pays when the group persists within it (flush
//! instructions: about a microsecond) and wastes a core when it does not (an `msync` of a
//! disk-backed file: 0.2–1 ms here). On two cores, followers spinning through every `msync`
//! starved the server's reactor: 2.5× fewer durable SETs per second (docs/commit.md).
//!
//! INVARIANT: a heuristic only — its counters race by design, and no outcome of it changes what
//! a writer waits for, only whether it spins before sleeping.

use std::sync::atomic::{AtomicU32, Ordering};

/// The score a run of finished spins builds up to.
const SCORE_MAX: u32 = 16;
/// What one spin that ran out costs the score: four in a row stop spinning.
const RAN_OUT_COST: u32 = 4;
/// With spinning stopped, one wait in this many spins anyway, so a medium that became fast
/// (or a load that eased) is noticed.
const PROBE_EVERY: u32 = 64;

/// The spin decision of one commit queue.
#[derive(Debug)]
pub(crate) struct SpinGate {
    score: AtomicU32,
    waits: AtomicU32,
}

impl Default for SpinGate {
    fn default() -> Self {
        Self { score: AtomicU32::new(SCORE_MAX), waits: AtomicU32::new(0) }
    }
}

impl SpinGate {
    /// Whether this wait should spin before sleeping: while recent spins saw their group end,
    /// and one wait in `PROBE_EVERY` otherwise.
    pub(crate) fn should_spin(&self) -> bool {
        if self.score.load(Ordering::Relaxed) > 0 {
            return true;
        }
        // A lost update only moves the next probe.
        let waits = self.waits.load(Ordering::Relaxed).wrapping_add(1);
        self.waits.store(waits, Ordering::Relaxed);
        waits.is_multiple_of(PROBE_EVERY)
    }

    /// Record how a spin ended: `finished` if the group in flight ended within it.
    pub(crate) fn record(&self, finished: bool) {
        let step = |score: u32| {
            Some(if finished {
                (score + 1).min(SCORE_MAX)
            } else {
                score.saturating_sub(RAN_OUT_COST)
            })
        };
        // The closure always returns `Some`: the update cannot fail.
        let _ = self.score.fetch_update(Ordering::Relaxed, Ordering::Relaxed, step);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spins_stop_after_running_out_and_resume_after_probes_finish() {
        let gate = SpinGate::default();
        assert!(gate.should_spin(), "a fresh queue spins");
        for _ in 0..(SCORE_MAX / RAN_OUT_COST) {
            assert!(gate.should_spin());
            gate.record(false);
        }
        let spins = (0..PROBE_EVERY * 4).filter(|_| gate.should_spin()).count();
        assert_eq!(spins, 4, "only the probes spin once spins keep running out");
        // A probe whose group finished within it turns spinning back on.
        gate.record(true);
        assert!((0..10).all(|_| gate.should_spin()));
        // Finished spins build the score back up to its cap, no further.
        for _ in 0..100 {
            gate.record(true);
        }
        for _ in 0..(SCORE_MAX / RAN_OUT_COST) {
            assert!(gate.should_spin());
            gate.record(false);
        }
        let spins = (0..PROBE_EVERY).filter(|_| gate.should_spin()).count();
        assert_eq!(spins, 1, "capped: four spins that ran out stop spinning again");
    }
}
