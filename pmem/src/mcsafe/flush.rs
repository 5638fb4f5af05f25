//! The flush loop (clwb / clflushopt / clflush over every line of a range) and the store fence.
//!
//! The loop runs inside the mcsafe text range: a flush of a poisoned page raises SIGBUS like a
//! load does, and here it becomes `Err(FaultAt)` instead of a death.
#![expect(unsafe_code, reason = "runs cache-line flush instructions on raw mapped memory")]

use super::call;
use super::cpu::{FlushInsn, cpu_features};
use super::handler::ensure_handler_on_hot_path;

/// A fault met by the flush loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultAt {
    /// Faulting address.
    pub addr: usize,
    /// The signal's `si_code`.
    pub si_code: i32,
}

/// Write back every cache line of `[addr, addr + len)` with `insn`; a fault is returned (the
/// lines before it were written back, the ones after it were not).
///
/// # Safety
/// The range must lie in one live mapping (poisoned pages allowed), and `insn` must exist on this
/// CPU (use [`cpu_features`]`().flush_insn`; asserted in debug builds).
pub unsafe fn flush_range(addr: *const u8, len: usize, insn: FlushInsn) -> Result<(), FaultAt> {
    ensure_handler_on_hot_path();
    debug_assert!(supported(insn), "{insn:?} is not available on this CPU");
    // SAFETY: the caller guarantees the range is mapped and the instruction exists.
    let outcome = unsafe { call::flush(insn.index(), addr, len) };
    match outcome.fault() {
        None => Ok(()),
        Some(fault) => Err(FaultAt { addr: fault.addr, si_code: fault.si_code }),
    }
}

fn supported(insn: FlushInsn) -> bool {
    let best = cpu_features().flush_insn;
    match insn {
        FlushInsn::Clwb => best == FlushInsn::Clwb,
        FlushInsn::Clflushopt => best != FlushInsn::Clflush,
        FlushInsn::Clflush => true,
    }
}

/// Store fence: orders earlier stores and flushes before later stores.
pub fn sfence() {
    // SAFETY: sfence has no operands and exists on every x86-64 CPU.
    unsafe { std::arch::x86_64::_mm_sfence() };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcsafe::testutil::PoisonedFile;

    const PAGE: usize = 4096;

    fn insns() -> Vec<FlushInsn> {
        [FlushInsn::Clwb, FlushInsn::Clflushopt, FlushInsn::Clflush]
            .into_iter()
            .filter(|&i| supported(i))
            .collect()
    }

    #[test]
    fn flush_over_poison_returns_the_fault() {
        let mut file = PoisonedFile::new(6);
        file.poison(3);
        for insn in insns() {
            // SAFETY: the range is the file's live mapping.
            let whole = unsafe { flush_range(file.at(0), 6 * PAGE, insn) };
            let page3 = file.at(3 * PAGE) as usize;
            assert_eq!(whole, Err(FaultAt { addr: page3, si_code: libc::BUS_ADRERR }), "{insn:?}");
            // Unaligned start inside the poisoned page: the fault is at its first line.
            // SAFETY: as above.
            let inside = unsafe { flush_range(file.at(3 * PAGE + 100), 10, insn) };
            assert_eq!(inside, Err(FaultAt { addr: page3 + 64, si_code: libc::BUS_ADRERR }));
            // SAFETY: as above.
            let clean = unsafe { flush_range(file.at(PAGE + 1), 2 * PAGE - 1, insn) };
            assert_eq!(clean, Ok(()));
            // SAFETY: as above; an empty range touches nothing.
            assert_eq!(unsafe { flush_range(file.at(3 * PAGE), 0, insn) }, Ok(()));
            sfence();
        }
    }

    #[test]
    fn the_best_instruction_is_chosen() {
        assert!(supported(cpu_features().flush_insn));
        assert!(supported(FlushInsn::Clflush));
    }
}
