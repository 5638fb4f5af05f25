//! The assembly that may fault: every copy routine, the flush loops and the landing pad, in one
//! text range `[mcsafe_text_start, mcsafe_text_end)` that the SIGBUS handler recognises, and the
//! symbols that name them. Calling them from Rust, and what they return, is `call`.
//!
//! INVARIANT: every routine here is a leaf that never touches the stack, so at any instruction
//! `rsp` points at its return address and the landing pad can simply `ret`. Each routine returns
//! a [`RawOutcome`] in `rax:rdx`: `(0, 0)` when it finished, `(si_addr, encode_fault(..))` when
//! the handler redirected a claimed fault to the landing pad.
#![expect(unsafe_code, reason = "declares and calls the hand-written copy and flush routines")]

use super::call::RawOutcome;
use super::dispatch::{MOVSB_MIN_BYTES, MOVSB_MIN_DISTANCE};
use crate::limits::PAGE_SIZE;

// Routines follow the System V ABI: rdi, rsi, rdx (and rcx for the hashing copy) in; rax:rdx out.
// Beyond those they write only rcx and r8 (vector and auto routines; plus ymm0-ymm7 and
// `vzeroupper`), rcx (movsb), rcx and r8-r10 (fragile), or r8-r10 and ymm0-ymm7 (the hashing
// copy, which also writes its state's memory): the inline-asm call sites in `call` list exactly
// these, so the compiler keeps live values in the other registers across the call instead of
// saving them.
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
    // --- copy and hash: (dst, src, stripes, state). Copies `stripes` whole 64-byte stripes
    // and accumulates each into XXH3's accumulators as it passes through the registers (the
    // stripe loop of `xxh3::avx2::stripes`, a block's scramble included). `state` is an
    // `xxh3::FusedState`: the eight accumulators, the secret's address, the stripe within the
    // block. The accumulators live in ymm0-ymm1 and are written back only when the routine
    // finishes, so a fault leaves the state as it was. The source is prefetched 1 KiB ahead
    // (the first kilobyte at once): the loop alone keeps too few lines in flight to stream a
    // cold value (measured: `docs/performance.md`, "Large values"). A prefetch never faults. ---
    ".p2align 4",
    ".globl mcsafe_copy_xxh3",
    ".hidden mcsafe_copy_xxh3",
    "mcsafe_copy_xxh3:",
    "    vmovdqu ymm0, ymmword ptr [rcx]",
    "    vmovdqu ymm1, ymmword ptr [rcx + 32]",
    "    mov r8, qword ptr [rcx + 64]",
    "    mov r9, qword ptr [rcx + 72]",
    "    lea r10, [r8 + 8 * r9]",
    "    mov eax, {prime32_1}",
    "    vmovq xmm7, rax",
    "    vpbroadcastq ymm7, xmm7",
    "    test rdx, rdx",
    "    jz .Lx_done",
    "    prefetcht0 byte ptr [rsi + 64]",
    "    prefetcht0 byte ptr [rsi + 128]",
    "    prefetcht0 byte ptr [rsi + 192]",
    "    prefetcht0 byte ptr [rsi + 256]",
    "    prefetcht0 byte ptr [rsi + 320]",
    "    prefetcht0 byte ptr [rsi + 384]",
    "    prefetcht0 byte ptr [rsi + 448]",
    "    prefetcht0 byte ptr [rsi + 512]",
    "    prefetcht0 byte ptr [rsi + 576]",
    "    prefetcht0 byte ptr [rsi + 640]",
    "    prefetcht0 byte ptr [rsi + 704]",
    "    prefetcht0 byte ptr [rsi + 768]",
    "    prefetcht0 byte ptr [rsi + 832]",
    "    prefetcht0 byte ptr [rsi + 896]",
    "    prefetcht0 byte ptr [rsi + 960]",
    ".Lx_stripe:",
    "    prefetcht0 byte ptr [rsi + 1024]",
    "    vmovdqu ymm2, ymmword ptr [rsi]",
    "    vmovdqu ymm3, ymmword ptr [rsi + 32]",
    "    vmovdqu ymmword ptr [rdi], ymm2",
    "    vmovdqu ymmword ptr [rdi + 32], ymm3",
    // Each 64-bit lane: acc += (low half * high half of value ^ key) + the neighbouring lane's
    // value.
    "    vpxor ymm4, ymm2, ymmword ptr [r10]",
    "    vpxor ymm5, ymm3, ymmword ptr [r10 + 32]",
    "    vpshufd ymm6, ymm4, 0x31",
    "    vpmuludq ymm4, ymm4, ymm6",
    "    vpshufd ymm2, ymm2, 0x4E",
    "    vpaddq ymm0, ymm0, ymm2",
    "    vpaddq ymm0, ymm0, ymm4",
    "    vpshufd ymm6, ymm5, 0x31",
    "    vpmuludq ymm5, ymm5, ymm6",
    "    vpshufd ymm3, ymm3, 0x4E",
    "    vpaddq ymm1, ymm1, ymm3",
    "    vpaddq ymm1, ymm1, ymm5",
    "    add rsi, 64",
    "    add rdi, 64",
    "    add r10, 8",
    "    inc r9",
    "    cmp r9, {stripes_per_block}",
    "    jne .Lx_next",
    // The end of a block: acc = (acc ^ acc >> 47 ^ key) * PRIME32_1, in two 32-bit products.
    "    vpsrlq ymm2, ymm0, 47",
    "    vpxor ymm0, ymm0, ymm2",
    "    vpxor ymm0, ymm0, ymmword ptr [r8 + {scramble_key_at}]",
    "    vpsrlq ymm2, ymm0, 32",
    "    vpmuludq ymm0, ymm0, ymm7",
    "    vpmuludq ymm2, ymm2, ymm7",
    "    vpsllq ymm2, ymm2, 32",
    "    vpaddq ymm0, ymm0, ymm2",
    "    vpsrlq ymm3, ymm1, 47",
    "    vpxor ymm1, ymm1, ymm3",
    "    vpxor ymm1, ymm1, ymmword ptr [r8 + {scramble_key_at} + 32]",
    "    vpsrlq ymm3, ymm1, 32",
    "    vpmuludq ymm1, ymm1, ymm7",
    "    vpmuludq ymm3, ymm3, ymm7",
    "    vpsllq ymm3, ymm3, 32",
    "    vpaddq ymm1, ymm1, ymm3",
    "    xor r9d, r9d",
    "    mov r10, r8",
    ".Lx_next:",
    "    dec rdx",
    "    jnz .Lx_stripe",
    ".Lx_done:",
    "    vmovdqu ymmword ptr [rcx], ymm0",
    "    vmovdqu ymmword ptr [rcx + 32], ymm1",
    "    mov qword ptr [rcx + 72], r9",
    "    vzeroupper",
    "    xor eax, eax",
    "    xor edx, edx",
    "    ret",
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
    prime32_1 = const crate::xxh3::PRIME32_1,
    stripes_per_block = const crate::xxh3::STRIPES_PER_BLOCK,
    scramble_key_at = const crate::xxh3::SCRAMBLE_KEY_AT,
);

/// `(dst - src) & NEAR_MASK == 0` exactly when `(dst - src) mod 4096 < MOVSB_MIN_DISTANCE`.
const NEAR_MASK: usize = (PAGE_SIZE as usize - 1) & !(MOVSB_MIN_DISTANCE - 1);
const _: () = assert!(
    MOVSB_MIN_DISTANCE.is_power_of_two() && MOVSB_MIN_DISTANCE < PAGE_SIZE as usize,
    "the auto routine tests the distance with a mask"
);
const _: () = assert!(MOVSB_MIN_BYTES > 256, "auto's long path enters the vector loop for > 256 B");

unsafe extern "C" {
    fn mcsafe_text_start();
    fn mcsafe_text_end();
    fn mcsafe_landing_pad();
    pub(super) fn mcsafe_copy_movsb(dst: *mut u8, src: *const u8, len: usize) -> RawOutcome;
    pub(super) fn mcsafe_copy_fragile(dst: *mut u8, src: *const u8, len: usize) -> RawOutcome;
    pub(super) fn mcsafe_copy_avx2(dst: *mut u8, src: *const u8, len: usize) -> RawOutcome;
    pub(super) fn mcsafe_copy_auto(dst: *mut u8, src: *const u8, len: usize) -> RawOutcome;
    pub(super) fn mcsafe_copy_xxh3(
        dst: *mut u8,
        src: *const u8,
        stripes: usize,
        state: *mut crate::xxh3::FusedState,
    ) -> RawOutcome;
    pub(super) fn mcsafe_flush_clwb(addr: *const u8, len: usize) -> RawOutcome;
    pub(super) fn mcsafe_flush_clflushopt(addr: *const u8, len: usize) -> RawOutcome;
    pub(super) fn mcsafe_flush_clflush(addr: *const u8, len: usize) -> RawOutcome;
}

/// The half-open address range of every instruction that may fault recoverably.
pub(crate) fn text_range() -> (usize, usize) {
    (mcsafe_text_start as *const () as usize, mcsafe_text_end as *const () as usize)
}

/// Where the handler sends a claimed fault.
pub(crate) fn landing_pad() -> usize {
    mcsafe_landing_pad as *const () as usize
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
            mcsafe_copy_xxh3 as *const () as usize,
            mcsafe_flush_clwb as *const () as usize,
            mcsafe_flush_clflushopt as *const () as usize,
            mcsafe_flush_clflush as *const () as usize,
            landing_pad(),
        ] {
            assert!((start..end).contains(&f), "{f:#x} outside [{start:#x}, {end:#x})");
        }
    }
}
