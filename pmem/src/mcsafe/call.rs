//! Calling the routines of `asm` from Rust: which copy routine ([`Routine`]), the direct calls
//! that name exactly the registers each routine writes, the flush loop by instruction, and what a
//! routine returns ([`RawOutcome`], decoded into a [`ClaimedFault`]).
//!
//! INVARIANT: each inline-asm call site's clobber list names every register its routine (or the
//! landing pad, which returns `rax:rdx` set by the handler) may change; a routine returns `(0, 0)`
//! when it finished, `(si_addr, encode_fault(..))` when the handler redirected a claimed fault.
#![expect(unsafe_code, reason = "calls the hand-written copy and flush routines")]

use super::asm::{
    mcsafe_copy_auto, mcsafe_copy_avx2, mcsafe_copy_fragile, mcsafe_copy_movsb, mcsafe_copy_xxh3,
    mcsafe_flush_clflush, mcsafe_flush_clflushopt, mcsafe_flush_clwb,
};

/// `asm!` calling the vector routine named `routine` with the given operands, every vector
/// register listed as clobbered: the routines write some of ymm0-ymm7, and their `vzeroupper`
/// clears the upper halves of all sixteen.
macro_rules! call_vector_routine {
    ($($operands:tt)*) => {
        std::arch::asm!(
            "call {routine}",
            $($operands)*
            out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
            out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
            out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
            out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
        )
    };
}

/// What a routine returns in `rax:rdx`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RawOutcome {
    /// `si_addr` of the fault, or 0.
    addr: usize,
    /// `encode_fault(si_code, lsb)`, or 0 when the routine finished.
    info: u64,
}

/// A fault the handler claimed and handed back through the landing pad.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClaimedFault {
    /// `si_addr`: the faulting address.
    pub addr: usize,
    /// `si_code` (`BUS_ADRERR` or `BUS_MCEERR_AR`).
    pub si_code: i32,
    /// `si_addr_lsb` (only meaningful for `BUS_MCEERR_*`).
    pub lsb: u8,
}

const FAULT_FLAG: u64 = 1 << 63;

/// Pack a fault's code and lsb into the value the handler writes into `rdx`. Never 0.
pub(crate) const fn encode_fault(si_code: i32, lsb: u8) -> u64 {
    FAULT_FLAG | ((lsb as u64) << 32) | (si_code as u32 as u64)
}

impl RawOutcome {
    /// The claimed fault, if the routine did not finish.
    #[inline(always)]
    pub(crate) fn fault(self) -> Option<ClaimedFault> {
        if self.info & FAULT_FLAG == 0 {
            return None;
        }
        Some(ClaimedFault {
            addr: self.addr,
            si_code: self.info as u32 as i32,
            lsb: (self.info >> 32) as u8,
        })
    }
}

/// The copy routines, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Routine {
    /// `rep movsb`.
    Movsb,
    /// 8-byte loads aligned on the source.
    Fragile,
    /// AVX2 32-byte loads; only where AVX2 is available.
    Avx2,
}

/// Copy `len` bytes from `src` to `dst` with `routine`; a claimed fault stops it early.
///
/// The routine is reached by a direct `call` from inline assembly that names exactly the
/// registers the routines write, rather than through an `extern "C"` call (which in a
/// position-independent binary goes through the GOT and forces every caller-saved register to be
/// treated as lost): on a 64-byte read this is a measurable share of the whole copy.
///
/// # Safety
/// `dst` must be valid for `len` bytes of writes and not overlap `src`; `src` must lie in a live
/// mapping for `len` bytes (poisoned pages allowed); `Avx2` only where AVX2 is available; the
/// handler must be installed for a fault to come back instead of killing the process.
#[inline(always)]
pub(crate) unsafe fn copy(
    routine: Routine,
    dst: *mut u8,
    src: *const u8,
    len: usize,
) -> RawOutcome {
    let addr: usize;
    let info: u64;
    // INVARIANT: each clobber list names every register its routine (or the landing pad, which
    // returns rax:rdx set by the handler) may change. Without `nostack` the stack pointer is
    // aligned for a call and the red zone is free, so the pushed return address hurts nothing.
    match routine {
        // SAFETY: the caller upholds the routine's contract (valid, non-overlapping ranges);
        // the routine touches rdi, rsi, rcx, rax, rdx and the flags only.
        Routine::Movsb => unsafe {
            std::arch::asm!(
                "call {routine}",
                routine = sym mcsafe_copy_movsb,
                inout("rdi") dst => _,
                inout("rsi") src => _,
                inout("rdx") len => info,
                out("rax") addr,
                out("rcx") _,
            )
        },
        // SAFETY: as above; the routine also uses r8-r10.
        Routine::Fragile => unsafe {
            std::arch::asm!(
                "call {routine}",
                routine = sym mcsafe_copy_fragile,
                inout("rdi") dst => _,
                inout("rsi") src => _,
                inout("rdx") len => info,
                out("rax") addr,
                out("rcx") _,
                out("r8") _,
                out("r9") _,
                out("r10") _,
            )
        },
        // SAFETY: as above, and the caller checked AVX2. The routine writes rcx, r8 and ymm0-ymm7,
        // and its `vzeroupper` clears the upper halves of ymm0-ymm15, so all sixteen are clobbered.
        Routine::Avx2 => unsafe {
            call_vector_routine!(
                routine = sym mcsafe_copy_avx2,
                inout("rdi") dst => _,
                inout("rsi") src => _,
                inout("rdx") len => info,
                out("rax") addr,
                out("rcx") _,
                out("r8") _,
            )
        },
    }
    RawOutcome { addr, info }
}

/// Copy with `mcsafe_copy_auto`: the routine `Dispatch::routine` picks for `CopyVariant::Auto`
/// on an AVX2 CPU that needs no fragile copy (vector below `MOVSB_MIN_BYTES`, else `rep movsb`
/// unless the distance is short), chosen inside the routine so the caller makes one direct call.
///
/// # Safety
/// As [`copy`] with `Routine::Avx2`: AVX2 must be available.
#[inline(always)]
pub(crate) unsafe fn copy_auto(dst: *mut u8, src: *const u8, len: usize) -> RawOutcome {
    let addr: usize;
    let info: u64;
    // SAFETY: the caller upholds the contract of both routines auto may run; the clobbers are
    // the union of theirs (rep movsb adds nothing the vector copy does not already list).
    unsafe {
        call_vector_routine!(
            routine = sym mcsafe_copy_auto,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            inout("rdx") len => info,
            out("rax") addr,
            out("rcx") _,
            out("r8") _,
        )
    };
    RawOutcome { addr, info }
}

/// Copy `stripes` whole 64-byte stripes from `src` to `dst` with `mcsafe_copy_xxh3`,
/// accumulating each into `state` (see [`crate::xxh3::FusedState`]); a claimed fault stops it
/// with `state` as it was.
///
/// # Safety
/// As [`copy`] with `Routine::Avx2` for `64 * stripes` bytes; `state` must be valid for reads and
/// writes, its secret readable for the default secret's 192 bytes and its stripe below a block's.
#[inline(always)]
pub(crate) unsafe fn copy_xxh3(
    dst: *mut u8,
    src: *const u8,
    stripes: usize,
    state: *mut crate::xxh3::FusedState,
) -> RawOutcome {
    let addr: usize;
    let info: u64;
    // SAFETY: the caller upholds the routine's contract; it writes r8-r10, ymm0-ymm7 (and by its
    // `vzeroupper` the upper halves of all sixteen), `state`'s memory and `dst`'s.
    unsafe {
        call_vector_routine!(
            routine = sym mcsafe_copy_xxh3,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            inout("rdx") stripes => info,
            inout("rcx") state => _,
            out("rax") addr,
            out("r8") _,
            out("r9") _,
            out("r10") _,
        )
    };
    RawOutcome { addr, info }
}

/// After a fault inside the AVX2 routine its `vzeroupper` was skipped; clear the upper halves
/// so later SSE code pays no transition penalty.
pub(crate) fn after_avx2_fault() {
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: AVX was detected just above.
        unsafe { zero_upper() };
    }
}

#[target_feature(enable = "avx")]
fn zero_upper() {
    std::arch::x86_64::_mm256_zeroupper();
}

/// Write back every line of `[addr, addr + len)` with the given instruction (0 = clwb,
/// 1 = clflushopt, 2 = clflush).
///
/// # Safety
/// The range must lie in a live mapping (poisoned pages allowed); the instruction must exist on
/// this CPU.
pub(crate) unsafe fn flush(insn: u8, addr: *const u8, len: usize) -> RawOutcome {
    match insn {
        // SAFETY: the caller checked clwb exists and the range is mapped.
        0 => unsafe { mcsafe_flush_clwb(addr, len) },
        // SAFETY: the caller checked clflushopt exists and the range is mapped.
        1 => unsafe { mcsafe_flush_clflushopt(addr, len) },
        // SAFETY: clflush is baseline x86-64; the caller checked the range is mapped.
        _ => unsafe { mcsafe_flush_clflush(addr, len) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::PAGE_SIZE;
    use crate::mcsafe::dispatch::MOVSB_MIN_BYTES;

    #[test]
    fn fault_info_round_trips() {
        let raw = RawOutcome { addr: 0x1234_5000, info: encode_fault(libc::BUS_MCEERR_AR, 12) };
        assert_eq!(
            raw.fault(),
            Some(ClaimedFault { addr: 0x1234_5000, si_code: libc::BUS_MCEERR_AR, lsb: 12 })
        );
        assert_eq!(RawOutcome { addr: 0, info: 0 }.fault(), None);
    }

    fn check_routine(routine: Routine) {
        // SAFETY: forwarded from `check_copy`, whose ranges are live, distinct and long enough.
        check_copy(&format!("{routine:?}"), |d, s, n| unsafe { copy(routine, d, s, n) });
    }

    /// The copy-and-hash routine copies exactly and leaves the accumulators and block position
    /// the scalar stripe loop leaves, from every position within a block and across blocks.
    #[test]
    fn the_hashing_copy_matches_the_scalar_stripe_loop() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let src: Vec<u8> = (0..64 * 100 + 64).map(|i| (i * 131 + 7) as u8).collect();
        let initial: [u64; 8] =
            std::array::from_fn(|i| 0x0123_4567_89ab_cdef_u64.rotate_left(9 * i as u32));
        for start in 0..crate::xxh3::STRIPES_PER_BLOCK {
            for stripes in [0, 1, 2, 15, 16, 17, 33, 100] {
                for src_off in [0, 5] {
                    let data = &src[src_off..src_off + 64 * stripes];
                    let mut state = crate::xxh3::FusedState::new_for_test(initial, start);
                    let expected = state.scalar_after(data);
                    let mut dst = vec![0xeeu8; data.len() + 1];
                    // SAFETY: AVX2 is present; both ranges are live and distinct; the state is
                    // built over the default secret, its stripe below a block's.
                    let out = unsafe {
                        copy_xxh3(
                            dst.as_mut_ptr().wrapping_add(1),
                            data.as_ptr(),
                            stripes,
                            &mut state,
                        )
                    };
                    let what = format!("from stripe {start}, {stripes} stripes, offset {src_off}");
                    assert_eq!(out.fault(), None, "{what}");
                    assert_eq!(&dst[1..], data, "{what}");
                    assert_eq!(dst[0], 0xee, "{what}");
                    assert_eq!((state.acc, state.stripe), expected, "{what}");
                }
            }
        }
    }

    fn check_copy(name: &str, copy: impl Fn(*mut u8, *const u8, usize) -> RawOutcome) {
        let src: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in (0..300).chain([511, 512, 513, 1000, 4095, 4096, 4097]) {
            for src_off in [0, 1, 7, 31] {
                for dst_off in [0, 1, 3, 17, 31, 64] {
                    let mut dst = vec![0xeeu8; len + 200];
                    let s = &src[src_off..src_off + len];
                    let out = copy(dst.as_mut_ptr().wrapping_add(dst_off), s.as_ptr(), len);
                    assert_eq!(out.fault(), None);
                    assert_eq!(&dst[dst_off..dst_off + len], s, "{name} len {len}");
                    assert!(dst[..dst_off].iter().all(|&b| b == 0xee));
                    assert!(dst[dst_off + len..].iter().all(|&b| b == 0xee));
                }
            }
        }
    }

    #[test]
    fn movsb_copies_exactly() {
        check_routine(Routine::Movsb);
    }

    #[test]
    fn fragile_copies_exactly() {
        check_routine(Routine::Fragile);
    }

    #[test]
    fn avx2_copies_exactly() {
        if std::arch::is_x86_feature_detected!("avx2") {
            check_routine(Routine::Avx2);
        }
    }

    #[test]
    fn auto_copies_exactly_on_both_sides_of_its_thresholds() {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: ranges as in `check_copy`; AVX2 was detected.
            check_copy("auto", |d, s, n| unsafe { copy_auto(d, s, n) });
            // Long copies at every distance class: near (< 64, the vector loop) and far (movsb).
            let src: Vec<u8> = (0..3 * PAGE_SIZE as usize).map(|i| (i * 5 + 1) as u8).collect();
            for len in [MOVSB_MIN_BYTES - 1, MOVSB_MIN_BYTES, MOVSB_MIN_BYTES + 33] {
                for distance in [0, 1, 32, 63, 64, 65, 4000, 4095] {
                    let mut dst = vec![0u8; len + 2 * PAGE_SIZE as usize];
                    let base = dst.as_ptr() as usize;
                    let want = (src.as_ptr() as usize + distance) % PAGE_SIZE as usize;
                    let at = (want + PAGE_SIZE as usize - base % PAGE_SIZE as usize)
                        % PAGE_SIZE as usize;
                    // SAFETY: `dst[at..at + len]` and `src[..len]` are live and distinct.
                    let out =
                        unsafe { copy_auto(dst.as_mut_ptr().wrapping_add(at), src.as_ptr(), len) };
                    assert_eq!(out.fault(), None);
                    assert_eq!(&dst[at..at + len], &src[..len], "len {len} distance {distance}");
                    assert!(dst[..at].iter().chain(&dst[at + len..]).all(|&b| b == 0));
                }
            }
        }
    }
}
