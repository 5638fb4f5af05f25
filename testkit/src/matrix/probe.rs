//! A probe medium for the poison matrix: it wraps a member and checks, on every read, that the
//! deferred error register recorded every poisoned unit the read covered (all of them with the
//! `Deferred` mask, the first with `Immediate`) and nothing that is not poisoned. Everything
//! else is passed through unchanged, so the store cannot tell it is there.
//!
//! INVARIANT: the poisoned ranges are taken from the wrapped medium just before each read; the
//! matrix drives one operation at a time, so no repair runs between that snapshot and the read.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mcstore_pmem::mcsafe::MappingId;
use mcstore_pmem::{
    Domain, ErrorRegister, FaultCode, FenceSite, MappedMedium, Mask, Medium, MemberId, Result,
    SimMedium,
};

/// What the probes of one cell saw, shared by every member's probe.
#[derive(Debug, Default)]
pub struct ReadCounts {
    reads: AtomicU64,
    poisoned_reads: AtomicU64,
    missed: AtomicU64,
    false_flags: AtomicU64,
    problems: Mutex<Vec<String>>,
}

impl ReadCounts {
    /// A fresh set of counters.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Reads seen.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Reads that covered at least one poisoned unit.
    pub fn poisoned_reads(&self) -> u64 {
        self.poisoned_reads.load(Ordering::Relaxed)
    }

    /// Poisoned reads whose register did not record the poison (must stay 0).
    pub fn missed(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }

    /// Faults recorded where nothing was poisoned (must stay 0).
    pub fn false_flags(&self) -> u64 {
        self.false_flags.load(Ordering::Relaxed)
    }

    /// A description of each miss and false flag, for assertion messages.
    pub fn problems(&self) -> Vec<String> {
        self.problems.lock().map(|p| p.clone()).unwrap_or_default()
    }

    fn problem(&self, counter: &AtomicU64, text: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut problems) = self.problems.lock() {
            problems.push(text);
        }
    }
}

type PoisonOracle = Box<dyn Fn() -> Vec<Range<u64>> + Send + Sync>;

/// A member wrapped by a probe (see the module header).
pub struct ProbedMedium {
    inner: Arc<dyn Medium>,
    poisoned: PoisonOracle,
    counts: Arc<ReadCounts>,
}

impl ProbedMedium {
    /// Probe a `SimMedium` (poison per cache line).
    pub fn sim(sim: &Arc<SimMedium>, counts: &Arc<ReadCounts>) -> Arc<dyn Medium> {
        let oracle = sim.clone();
        Arc::new(Self {
            inner: sim.clone(),
            poisoned: Box::new(move || oracle.poisoned_ranges()),
            counts: counts.clone(),
        })
    }

    /// Probe a `MappedMedium` (emulated poison per page).
    pub fn mapped(mapped: &Arc<MappedMedium>, counts: &Arc<ReadCounts>) -> Arc<dyn Medium> {
        let oracle = mapped.clone();
        Arc::new(Self {
            inner: mapped.clone(),
            poisoned: Box::new(move || {
                oracle.poisoned_ranges().into_iter().map(|(o, l)| o..o + l).collect()
            }),
            counts: counts.clone(),
        })
    }

    fn check(
        &self,
        read: Range<u64>,
        poisoned: &[Range<u64>],
        register: &ErrorRegister,
        before: usize,
    ) {
        let hits: Vec<Range<u64>> = poisoned
            .iter()
            .filter(|p| p.start < read.end && read.start < p.end)
            .map(|p| p.start.max(read.start)..p.end.min(read.end))
            .collect();
        let member = self.inner.member();
        let covered = |hit: &Range<u64>| {
            register.overflowed()
                || register.faults().iter().any(|f| {
                    f.member == member
                        && f.code != FaultCode::Checksum
                        && f.offset < hit.end
                        && hit.start < f.end()
                })
        };
        if !hits.is_empty() {
            self.counts.poisoned_reads.fetch_add(1, Ordering::Relaxed);
            let must: &[Range<u64>] = match register.mask() {
                Mask::Deferred => &hits,
                Mask::Immediate => &hits[..1],
            };
            if let Some(hit) = must.iter().find(|h| !covered(h)) {
                self.counts.problem(
                    &self.counts.missed,
                    format!(
                        "member {} read {read:?}: poison {hit:?} not in the register",
                        member.0
                    ),
                );
            }
        }
        for fault in register.faults().iter().skip(before) {
            let real = fault.code == FaultCode::Checksum
                || fault.member != member
                || poisoned.iter().any(|p| fault.offset < p.end && p.start < fault.end());
            if !real {
                self.counts.problem(
                    &self.counts.false_flags,
                    format!("member {} read {read:?}: false fault {fault:?}", member.0),
                );
            }
        }
    }
}

impl Medium for ProbedMedium {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn member(&self) -> MemberId {
        self.inner.member()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.inner.write(offset, data)
    }

    fn store_u64(&self, offset: u64, value: u64) -> Result<()> {
        self.inner.store_u64(offset, value)
    }

    fn flush(&self, offset: u64, len: u64) -> Result<()> {
        self.inner.flush(offset, len)
    }

    fn fence(&self, site: FenceSite) -> Result<()> {
        self.inner.fence(site)
    }

    fn read(
        &self,
        offset: u64,
        dst: &mut [u8],
        register: &mut ErrorRegister,
        domain: Domain,
    ) -> Result<()> {
        self.counts.reads.fetch_add(1, Ordering::Relaxed);
        let poisoned = (self.poisoned)();
        let before = register.faults().len();
        let result = self.inner.read(offset, dst, register, domain);
        if result.is_ok() {
            self.check(offset..offset + dst.len() as u64, &poisoned, register, before);
        }
        result
    }

    fn grow(&self, new_len: u64) -> Result<()> {
        self.inner.grow(new_len)
    }

    fn flush_is_noop(&self) -> bool {
        self.inner.flush_is_noop()
    }

    fn repair(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.inner.repair(offset, data)
    }

    fn bad_blocks(&self) -> Vec<(u64, u64)> {
        self.inner.bad_blocks()
    }

    fn mapping(&self) -> Option<MappingId> {
        self.inner.mapping()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_read_is_seen_in_the_register_and_a_clean_one_is_not_flagged() {
        let sim = Arc::new(SimMedium::new(4096));
        let counts = ReadCounts::new();
        let probed = ProbedMedium::sim(&sim, &counts);
        sim.inject_poison(128, 64).unwrap();
        let mut register = ErrorRegister::deferred();
        let mut buf = vec![0u8; 512];
        probed.read(0, &mut buf, &mut register, Domain::User).unwrap();
        probed.read(1024, &mut buf, &mut register, Domain::User).unwrap();
        assert_eq!((counts.reads(), counts.poisoned_reads()), (2, 1));
        assert_eq!((counts.missed(), counts.false_flags()), (0, 0), "{:?}", counts.problems());
    }

    /// A medium that drops the fault: the probe must call it a miss (the probe can fail).
    #[test]
    #[expect(clippy::single_range_in_vec_init, reason = "one poisoned range is the case")]
    fn a_read_that_loses_the_fault_is_a_miss() {
        let sim = Arc::new(SimMedium::new(4096));
        let counts = ReadCounts::new();
        let probed = ProbedMedium::sim(&sim, &counts);
        sim.inject_poison(0, 64).unwrap();
        let mut register = ErrorRegister::deferred();
        let mut buf = vec![0u8; 128];
        probed.read(0, &mut buf, &mut register, Domain::User).unwrap();
        assert_eq!(counts.missed(), 0);
        // Now judge a register that was cleared: the same read, reported clean.
        let probe = ProbedMedium {
            inner: sim.clone(),
            poisoned: Box::new(|| vec![0..64]),
            counts: counts.clone(),
        };
        probe.check(0..128, &[0..64], &ErrorRegister::deferred(), 0);
        assert_eq!(counts.missed(), 1);
        let mut flagged = ErrorRegister::deferred();
        flagged.record(mcstore_pmem::Fault { offset: 1024, len: 64, ..Default::default() });
        probe.check(1024..1088, &[], &flagged, 0);
        assert_eq!(counts.false_flags(), 1);
    }
}
