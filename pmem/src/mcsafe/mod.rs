//! The machine-check-safe copy, the flush loop and the SIGBUS handler that makes them safe.
//!
//! PLACEHOLDER API (helper A replaces the bodies): the names and signatures below are the
//! contract `mapped` codes against.

#![allow(unsafe_code)]

use crate::medium::MemberId;
use crate::register::{Domain, ErrorRegister};

/// Which cache-line write-back instruction the flush loop uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushInsn {
    /// `clwb`: write back, keep the line.
    Clwb,
    /// `clflushopt`: write back and evict, weakly ordered.
    Clflushopt,
    /// `clflush`: write back and evict, strongly ordered.
    Clflush,
}

/// A fault met by the flush loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultAt {
    /// Faulting address.
    pub addr: usize,
    /// The signal's `si_code`.
    pub si_code: i32,
}

/// Machine-check-safe copy of `dst.len()` bytes from `src` into `dst`, recording each poisoned
/// unit in `register` as offset `unit_addr - base` of `member`.
///
/// # Safety
/// `[src, src + dst.len())` must lie in one live mapping that starts at or after `base`.
pub unsafe fn read_safe(
    dst: &mut [u8],
    src: *const u8,
    base: *const u8,
    member: MemberId,
    register: &mut ErrorRegister,
    domain: Domain,
) {
    let _ = (base, member, register, domain);
    // SAFETY: the caller guarantees the source range is mapped.
    unsafe { std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len()) };
}

/// Write back every cache line of `[addr, addr + len)` with `insn`; a fault is returned.
///
/// # Safety
/// The range must lie in one live mapping.
pub unsafe fn flush_range(addr: *const u8, len: usize, insn: FlushInsn) -> Result<(), FaultAt> {
    let _ = (addr, len, insn);
    Ok(())
}

/// Store fence.
pub fn sfence() {
    // SAFETY: sfence has no memory operands.
    unsafe { std::arch::x86_64::_mm_sfence() };
}
