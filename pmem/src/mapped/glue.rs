//! The medium's calls into `mcsafe`, in one place: handler installation, the flush instruction,
//! the mapping table for asynchronous poison notices, the safe copy, the flush loop and the fence.
//!
//! INVARIANT: every other file of `mapped` reaches `mcsafe` only through these functions, so a
//! change of its API is a change here alone.
#![allow(unsafe_code)]

use crate::error::Result;
use crate::mcsafe::{self, FaultAt, FlushInsn};
use crate::medium::MemberId;
use crate::register::{Domain, ErrorRegister};
use crate::xxh3::Xxh3Stream;

/// Make sure the SIGBUS handler is installed (before the first read of a mapping).
pub(super) fn ensure_handler() -> Result<()> {
    mcsafe::ensure_handler()
}

/// The write-back instruction this CPU has (clwb, else clflushopt, else clflush).
pub(super) fn flush_insn() -> FlushInsn {
    mcsafe::cpu_features().flush_insn
}

/// A registered mapping (for turning asynchronous poison addresses into offsets).
pub(super) type Registration = mcsafe::MappingId;

/// Record `[base, base + len)` as member `member`'s mapping.
pub(super) fn register(base: *const u8, len: u64, member: MemberId) -> Registration {
    mcsafe::register_mapping(base as usize, usize::try_from(len).unwrap_or(usize::MAX), member)
}

/// Forget a mapping recorded by [`register`].
pub(super) fn unregister(registration: Registration) {
    mcsafe::unregister_mapping(registration);
}

/// Machine-check-safe copy into `dst` from `src`, faults recorded relative to `base`.
///
/// # Safety
/// `[src, src + dst.len())` lies in the live reservation that starts at `base`.
#[inline(always)]
pub(super) unsafe fn read(
    dst: &mut [u8],
    src: *const u8,
    base: *const u8,
    member: MemberId,
    register: &mut ErrorRegister,
    domain: Domain,
) {
    debug_assert!(src >= base, "read below the mapping's base");
    // SAFETY: forwarded from the caller.
    unsafe { mcsafe::read_safe(dst, src, base, member, register, domain) }
}

/// [`read`] that also feeds the copied bytes to `hash`.
///
/// # Safety
/// As [`read`].
#[inline(always)]
pub(super) unsafe fn read_hashing(
    dst: &mut [u8],
    src: *const u8,
    base: *const u8,
    member: MemberId,
    register: &mut ErrorRegister,
    domain: Domain,
    hash: &mut Xxh3Stream,
) {
    debug_assert!(src >= base, "read below the mapping's base");
    // SAFETY: forwarded from the caller.
    unsafe { mcsafe::read_safe_hashing(dst, src, base, member, register, domain, hash) }
}

/// Write back the lines of `[addr, addr + len)`; a fault (poison) is returned, not fatal.
///
/// # Safety
/// The range lies in a live mapping.
pub(super) unsafe fn flush(addr: *const u8, len: usize, insn: FlushInsn) -> Result<(), FaultAt> {
    debug_assert!(!addr.is_null() && (addr as usize).checked_add(len).is_some());
    // SAFETY: forwarded from the caller.
    unsafe { mcsafe::flush_range(addr, len, insn) }
}

/// Store fence.
pub(super) fn sfence() {
    mcsafe::sfence();
}

/// Bytes of the lines [`stream`] stores.
pub(super) const LINE_BYTES: u64 = mcsafe::STREAM_LINE_BYTES as u64;

/// Copy whole lines from `src` to `dst` with non-temporal stores (drained by the next
/// [`sfence`] on this thread).
///
/// # Safety
/// As [`mcsafe::copy_lines_nt`]: `dst` line-aligned, `len` whole lines, writable, no poisoned
/// page; `src` readable and not overlapping.
pub(super) unsafe fn stream(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { mcsafe::copy_lines_nt(dst, src, len) }
}
