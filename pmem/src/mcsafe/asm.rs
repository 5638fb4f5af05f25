//! The assembly that may fault: every copy routine, the flush loops and the landing pad, in one
//! text range `[mcsafe_text_start, mcsafe_text_end)` that the SIGBUS handler recognises.
//!
//! INVARIANT: every routine here is a leaf that never touches the stack, so at any instruction
//! `rsp` points at its return address and the landing pad can simply `ret`. Each routine returns
//! a [`RawOutcome`] in `rax:rdx`: `(0, 0)` when it finished, `(si_addr, encode_fault(..))` when
//! the handler redirected a claimed fault to the landing pad.
#![expect(unsafe_code, reason = "declares and calls the hand-written copy and flush routines")]

use super::dispatch::{MOVSB_MIN_BYTES, MOVSB_MIN_DISTANCE};
use crate::limits::PAGE_SIZE;

// Routines follow the System V ABI: rdi, rsi, rdx in; rax:rdx out. Beyond those they write only
// rcx and r8 (vector and auto routines; plus ymm0-ymm7 and `vzeroupper`), rcx (movsb), or rcx and
// r8-r10 (fragile): the inline-asm call sites in `copy` and `copy_auto` list exactly these, so
// the compiler keeps live values in the other registers across the call instead of saving them.
std::arch::global_asm!(
    ".pushsection .text.mcstore_mcsafe,\"ax\",@progbits",
    ".p2align 6",
    ".globl mcsafe_text_start",
    ".hidden mcsafe_text_start",
    "mcsafe_text_start:",
    // --- rep movsb: (dst, src, len) ---
    ".p2align 4",
    ".globl mcsafe_copy_movsb",
    ".hidden mcsafe_copy_movsb",
    "mcsafe_copy_movsb:",
    "    mov rcx, rdx",
    "    rep movsb",
    "    xor eax, eax",
    "    xor edx, edx",
    "    ret",
    // --- fragile: 8-byte loads aligned on the source, so no load crosses a line ---
    ".p2align 4",
    ".globl mcsafe_copy_fragile",
    ".hidden mcsafe_copy_fragile",
    "mcsafe_copy_fragile:",
    "    mov rcx, rdx",
    ".Lfrag_head:",
    "    test sil, 7",
    "    jz .Lfrag_body",
    "    test rcx, rcx",
    "    jz .Lfrag_done",
    "    movzx eax, byte ptr [rsi]",
    "    mov byte ptr [rdi], al",
    "    inc rsi",
    "    inc rdi",
    "    dec rcx",
    "    jmp .Lfrag_head",
    ".Lfrag_body:",
    "    cmp rcx, 32",
    "    jb .Lfrag_words",
    ".Lfrag_32:",
    "    mov rax, qword ptr [rsi]",
    "    mov r8, qword ptr [rsi + 8]",
    "    mov r9, qword ptr [rsi + 16]",
    "    mov r10, qword ptr [rsi + 24]",
    "    mov qword ptr [rdi], rax",
    "    mov qword ptr [rdi + 8], r8",
    "    mov qword ptr [rdi + 16], r9",
    "    mov qword ptr [rdi + 24], r10",
    "    add rsi, 32",
    "    add rdi, 32",
    "    sub rcx, 32",
    "    cmp rcx, 32",
    "    jae .Lfrag_32",
    ".Lfrag_words:",
    "    cmp rcx, 8",
    "    jb .Lfrag_tail",
    "    mov rax, qword ptr [rsi]",
    "    mov qword ptr [rdi], rax",
    "    add rsi, 8",
    "    add rdi, 8",
    "    sub rcx, 8",
    "    jmp .Lfrag_words",
    ".Lfrag_tail:",
    "    test rcx, rcx",
    "    jz .Lfrag_done",
    "    movzx eax, byte ptr [rsi]",
    "    mov byte ptr [rdi], al",
    "    inc rsi",
    "    inc rdi",
    "    dec rcx",
    "    jmp .Lfrag_tail",
    ".Lfrag_done:",
    "    xor eax, eax",
    "    xor edx, edx",
    "    ret",
    // --- auto: the `Auto` choice of `Dispatch::routine` on an AVX2 CPU without the fragile copy,
    // made here so the caller has one call site: below `movsb_min_bytes` fall through into the
    // vector copy; above, `rep movsb` unless `(dst - src) mod 4096` is below the minimum distance
    // (then the vector copy's long loop). ---
    ".p2align 4",
    ".globl mcsafe_copy_auto",
    ".hidden mcsafe_copy_auto",
    "mcsafe_copy_auto:",
    "    cmp rdx, {movsb_min_bytes}",
    "    jae .Lauto_big",
    // (no padding: falls through into mcsafe_copy_avx2)
    // --- vector: unaligned 32-byte AVX2 loads, overlapping head/tail for short copies ---
    ".globl mcsafe_copy_avx2",
    ".hidden mcsafe_copy_avx2",
    "mcsafe_copy_avx2:",
    "    cmp rdx, 32",
    "    jb .Lv_small",
    "    lea rcx, [rsi + rdx]",
    "    lea r8, [rdi + rdx]",
    // Each size class returns on its own: no jump to a shared epilogue. (Ordering the tests so
    // that 129..=256 falls through instead was measured slower at 64 B and no faster at 256 B.)
    "    cmp rdx, 64",
    "    ja .Lv_over64",
    // 32..=64 bytes: head and tail, overlapping.
    "    vmovdqu ymm0, ymmword ptr [rsi]",
    "    vmovdqu ymm1, ymmword ptr [rcx - 32]",
    "    vmovdqu ymmword ptr [rdi], ymm0",
    "    vmovdqu ymmword ptr [r8 - 32], ymm1",
    "    vzeroupper",
    "    xor eax, eax",
    "    xor edx, edx",
    "    ret",
    ".Lv_over64:",
    "    cmp rdx, 128",
    "    ja .Lv_over128",
    // 65..=128 bytes: two from the head, two from the tail.
    "    vmovdqu ymm0, ymmword ptr [rsi]",
    "    vmovdqu ymm1, ymmword ptr [rsi + 32]",
    "    vmovdqu ymm2, ymmword ptr [rcx - 64]",
    "    vmovdqu ymm3, ymmword ptr [rcx - 32]",
    "    vmovdqu ymmword ptr [rdi], ymm0",
    "    vmovdqu ymmword ptr [rdi + 32], ymm1",
    "    vmovdqu ymmword ptr [r8 - 64], ymm2",
    "    vmovdqu ymmword ptr [r8 - 32], ymm3",
    "    vzeroupper",
    "    xor eax, eax",
    "    xor edx, edx",
    "    ret",
    ".Lv_over128:",
    "    cmp rdx, 256",
    "    ja .Lv_big",
    // 129..=256 bytes: four from the head, four from the tail.
    "    vmovdqu ymm0, ymmword ptr [rsi]",
    "    vmovdqu ymm1, ymmword ptr [rsi + 32]",
    "    vmovdqu ymm2, ymmword ptr [rsi + 64]",
    "    vmovdqu ymm3, ymmword ptr [rsi + 96]",
    "    vmovdqu ymm4, ymmword ptr [rcx - 128]",
    "    vmovdqu ymm5, ymmword ptr [rcx - 96]",
    "    vmovdqu ymm6, ymmword ptr [rcx - 64]",
    "    vmovdqu ymm7, ymmword ptr [rcx - 32]",
    "    vmovdqu ymmword ptr [rdi], ymm0",
    "    vmovdqu ymmword ptr [rdi + 32], ymm1",
    "    vmovdqu ymmword ptr [rdi + 64], ymm2",
    "    vmovdqu ymmword ptr [rdi + 96], ymm3",
    "    vmovdqu ymmword ptr [r8 - 128], ymm4",
    "    vmovdqu ymmword ptr [r8 - 96], ymm5",
    "    vmovdqu ymmword ptr [r8 - 64], ymm6",
    "    vmovdqu ymmword ptr [r8 - 32], ymm7",
    "    vzeroupper",
    "    xor eax, eax",
    "    xor edx, edx",
    "    ret",
    // Over 256 bytes: copy the first 32, then continue from the next 32-aligned destination.
    ".Lv_big:",
    "    vmovdqu ymm0, ymmword ptr [rsi]",
    "    vmovdqu ymmword ptr [rdi], ymm0",
    "    mov eax, edi",
    "    and eax, 31",
    "    neg rax",
    "    add rax, 32",
    "    add rsi, rax",
    "    add rdi, rax",
    "    sub rdx, rax",
    ".Lv_128:",
    "    vmovdqu ymm0, ymmword ptr [rsi]",
    "    vmovdqu ymm1, ymmword ptr [rsi + 32]",
    "    vmovdqu ymm2, ymmword ptr [rsi + 64]",
    "    vmovdqu ymm3, ymmword ptr [rsi + 96]",
    "    vmovdqa ymmword ptr [rdi], ymm0",
    "    vmovdqa ymmword ptr [rdi + 32], ymm1",
    "    vmovdqa ymmword ptr [rdi + 64], ymm2",
    "    vmovdqa ymmword ptr [rdi + 96], ymm3",
    "    add rsi, 128",
    "    add rdi, 128",
    "    sub rdx, 128",
    "    cmp rdx, 128",
    "    jae .Lv_128",
    ".Lv_32:",
    "    cmp rdx, 32",
    "    jb .Lv_last",
    "    vmovdqu ymm0, ymmword ptr [rsi]",
    "    vmovdqu ymmword ptr [rdi], ymm0",
    "    add rsi, 32",
    "    add rdi, 32",
    "    sub rdx, 32",
    "    jmp .Lv_32",
    ".Lv_last:",
    // Fewer than 32 bytes left of a copy of at least 32: copy its last 32 bytes, overlapping.
    "    test rdx, rdx",
    "    jz .Lv_done_wide",
    "    vmovdqu ymm0, ymmword ptr [rcx - 32]",
    "    vmovdqu ymmword ptr [r8 - 32], ymm0",
    ".Lv_done_wide:",
    "    vzeroupper",
    "    xor eax, eax",
    "    xor edx, edx",
    "    ret",
    ".Lv_small:",
    "    cmp rdx, 16",
    "    jb .Lv_lt16",
    "    vmovdqu xmm0, xmmword ptr [rsi]",
    "    vmovdqu xmm1, xmmword ptr [rsi + rdx - 16]",
    "    vmovdqu xmmword ptr [rdi], xmm0",
    "    vmovdqu xmmword ptr [rdi + rdx - 16], xmm1",
    "    jmp .Lv_done",
    ".Lv_lt16:",
    "    cmp rdx, 8",
    "    jb .Lv_lt8",
    "    mov rax, qword ptr [rsi]",
    "    mov r8, qword ptr [rsi + rdx - 8]",
    "    mov qword ptr [rdi], rax",
    "    mov qword ptr [rdi + rdx - 8], r8",
    "    jmp .Lv_done",
    ".Lv_lt8:",
    "    cmp rdx, 4",
    "    jb .Lv_lt4",
    "    mov eax, dword ptr [rsi]",
    "    mov r8d, dword ptr [rsi + rdx - 4]",
    "    mov dword ptr [rdi], eax",
    "    mov dword ptr [rdi + rdx - 4], r8d",
    "    jmp .Lv_done",
    ".Lv_lt4:",
    // 0..=3 bytes: first, middle and last byte cover every length.
    "    test rdx, rdx",
    "    jz .Lv_done",
    "    mov rcx, rdx",
    "    shr rcx, 1",
    "    movzx eax, byte ptr [rsi]",
    "    movzx r8d, byte ptr [rsi + rcx]",
    "    mov byte ptr [rdi], al",
    "    mov byte ptr [rdi + rcx], r8b",
    "    movzx eax, byte ptr [rsi + rdx - 1]",
    "    mov byte ptr [rdi + rdx - 1], al",
    ".Lv_done:",
    "    xor eax, eax",
    "    xor edx, edx",
    "    ret",
    // --- auto, at least movsb_min_bytes: rep movsb unless the distance is short ---
    ".Lauto_big:",
    "    mov eax, edi",
    "    sub eax, esi",
    "    test eax, {near_mask}",
    "    jz .Lauto_near",
    "    mov rcx, rdx",
    "    rep movsb",
    "    xor eax, eax",
    "    xor edx, edx",
    "    ret",
    ".Lauto_near:",
    "    lea rcx, [rsi + rdx]",
    "    lea r8, [rdi + rdx]",
    "    jmp .Lv_big",
    // --- flush loops: (addr, len), one instruction per 64-byte line ---
    ".p2align 4",
    ".globl mcsafe_flush_clwb",
    ".hidden mcsafe_flush_clwb",
    "mcsafe_flush_clwb:",
    "    test rsi, rsi",
    "    jz .Lclwb_done",
    "    add rsi, rdi",
    "    and rdi, -64",
    ".Lclwb_loop:",
    "    clwb byte ptr [rdi]",
    "    add rdi, 64",
    "    cmp rdi, rsi",
    "    jb .Lclwb_loop",
    ".Lclwb_done:",
    "    xor eax, eax",
    "    xor edx, edx",
    "    ret",
    ".p2align 4",
    ".globl mcsafe_flush_clflushopt",
    ".hidden mcsafe_flush_clflushopt",
    "mcsafe_flush_clflushopt:",
    "    test rsi, rsi",
    "    jz .Lclflushopt_done",
    "    add rsi, rdi",
    "    and rdi, -64",
    ".Lclflushopt_loop:",
    "    clflushopt byte ptr [rdi]",
    "    add rdi, 64",
    "    cmp rdi, rsi",
    "    jb .Lclflushopt_loop",
    ".Lclflushopt_done:",
    "    xor eax, eax",
    "    xor edx, edx",
    "    ret",
    ".p2align 4",
    ".globl mcsafe_flush_clflush",
    ".hidden mcsafe_flush_clflush",
    "mcsafe_flush_clflush:",
    "    test rsi, rsi",
    "    jz .Lclflush_done",
    "    add rsi, rdi",
    "    and rdi, -64",
    ".Lclflush_loop:",
    "    clflush byte ptr [rdi]",
    "    add rdi, 64",
    "    cmp rdi, rsi",
    "    jb .Lclflush_loop",
    ".Lclflush_done:",
    "    xor eax, eax",
    "    xor edx, edx",
    "    ret",
    // --- landing pad: the handler put si_addr in rax and the encoded code in rdx ---
    ".p2align 4",
    ".globl mcsafe_landing_pad",
    ".hidden mcsafe_landing_pad",
    "mcsafe_landing_pad:",
    "    ret",
    ".globl mcsafe_text_end",
    ".hidden mcsafe_text_end",
    "mcsafe_text_end:",
    ".popsection",
    movsb_min_bytes = const MOVSB_MIN_BYTES,
    near_mask = const NEAR_MASK,
);

/// `(dst - src) & NEAR_MASK == 0` exactly when `(dst - src) mod 4096 < MOVSB_MIN_DISTANCE`.
const NEAR_MASK: usize = (PAGE_SIZE as usize - 1) & !(MOVSB_MIN_DISTANCE - 1);
const _: () = assert!(
    MOVSB_MIN_DISTANCE.is_power_of_two() && MOVSB_MIN_DISTANCE < PAGE_SIZE as usize,
    "the auto routine tests the distance with a mask"
);
const _: () = assert!(MOVSB_MIN_BYTES > 256, "auto's long path enters the vector loop for > 256 B");

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

unsafe extern "C" {
    fn mcsafe_text_start();
    fn mcsafe_text_end();
    fn mcsafe_landing_pad();
    fn mcsafe_copy_movsb(dst: *mut u8, src: *const u8, len: usize) -> RawOutcome;
    fn mcsafe_copy_fragile(dst: *mut u8, src: *const u8, len: usize) -> RawOutcome;
    fn mcsafe_copy_avx2(dst: *mut u8, src: *const u8, len: usize) -> RawOutcome;
    fn mcsafe_copy_auto(dst: *mut u8, src: *const u8, len: usize) -> RawOutcome;
    fn mcsafe_flush_clwb(addr: *const u8, len: usize) -> RawOutcome;
    fn mcsafe_flush_clflushopt(addr: *const u8, len: usize) -> RawOutcome;
    fn mcsafe_flush_clflush(addr: *const u8, len: usize) -> RawOutcome;
}

/// The half-open address range of every instruction that may fault recoverably.
pub(crate) fn text_range() -> (usize, usize) {
    (mcsafe_text_start as *const () as usize, mcsafe_text_end as *const () as usize)
}

/// Where the handler sends a claimed fault.
pub(crate) fn landing_pad() -> usize {
    mcsafe_landing_pad as *const () as usize
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
            std::arch::asm!(
                "call {routine}",
                routine = sym mcsafe_copy_avx2,
                inout("rdi") dst => _,
                inout("rsi") src => _,
                inout("rdx") len => info,
                out("rax") addr,
                out("rcx") _,
                out("r8") _,
                out("xmm0") _,
                out("xmm1") _,
                out("xmm2") _,
                out("xmm3") _,
                out("xmm4") _,
                out("xmm5") _,
                out("xmm6") _,
                out("xmm7") _,
                out("xmm8") _,
                out("xmm9") _,
                out("xmm10") _,
                out("xmm11") _,
                out("xmm12") _,
                out("xmm13") _,
                out("xmm14") _,
                out("xmm15") _,
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
        std::arch::asm!(
            "call {routine}",
            routine = sym mcsafe_copy_auto,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            inout("rdx") len => info,
            out("rax") addr,
            out("rcx") _,
            out("r8") _,
            out("xmm0") _,
            out("xmm1") _,
            out("xmm2") _,
            out("xmm3") _,
            out("xmm4") _,
            out("xmm5") _,
            out("xmm6") _,
            out("xmm7") _,
            out("xmm8") _,
            out("xmm9") _,
            out("xmm10") _,
            out("xmm11") _,
            out("xmm12") _,
            out("xmm13") _,
            out("xmm14") _,
            out("xmm15") _,
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

    #[test]
    fn routines_and_landing_pad_lie_in_the_range() {
        let (start, end) = text_range();
        assert!(start < end);
        for f in [
            mcsafe_copy_movsb as *const () as usize,
            mcsafe_copy_fragile as *const () as usize,
            mcsafe_copy_avx2 as *const () as usize,
            mcsafe_copy_auto as *const () as usize,
            mcsafe_flush_clwb as *const () as usize,
            mcsafe_flush_clflushopt as *const () as usize,
            mcsafe_flush_clflush as *const () as usize,
            landing_pad(),
        ] {
            assert!((start..end).contains(&f), "{f:#x} outside [{start:#x}, {end:#x})");
        }
    }

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
