//! The streaming (non-temporal) copy a write-through uses for the whole cache lines of a large
//! store: the lines go to memory through the write-combining buffers without a read-for-ownership
//! and without a later write-back instruction. One `sfence` afterwards drains them.
//!
//! INVARIANT: only whole, 64-byte-aligned destination lines are stored here; the caller checked
//! that none lies in a page the medium knows to be poisoned (a store there faults, and this loop
//! is outside the mcsafe text range: such a fault is fatal by rule, see DESIGN.md).
#![expect(unsafe_code, reason = "non-temporal stores into raw mapped memory")]

use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};

/// Cache-line size the streaming copy works in.
pub const STREAM_LINE_BYTES: usize = 64;

/// Copy `len` bytes from `src` to `dst` with non-temporal stores. Not ordered with later stores
/// until an `sfence` on this thread ([`super::sfence`]).
///
/// # Safety
/// `dst` is 64-byte aligned, `len` a multiple of 64; `[dst, dst + len)` is writable mapped memory
/// with no poisoned page; `[src, src + len)` is readable and does not overlap it.
pub unsafe fn copy_lines_nt(dst: *mut u8, src: *const u8, len: usize) {
    debug_assert!((dst as usize).is_multiple_of(STREAM_LINE_BYTES), "unaligned stream target");
    debug_assert!(len.is_multiple_of(STREAM_LINE_BYTES), "partial stream line");
    let (dst, src) = (dst.cast::<__m128i>(), src.cast::<__m128i>());
    for i in 0..len / 16 {
        // Pointer arithmetic stays inside the caller's ranges (`i * 16 < len`).
        let (d, s) = (dst.wrapping_add(i), src.wrapping_add(i));
        // SAFETY: `s` points at 16 readable bytes (unaligned loads are allowed).
        let v = unsafe { _mm_loadu_si128(s) };
        // SAFETY: `d` is 16-aligned (inside a 64-aligned line) and points at 16 writable bytes
        // with no poisoned page (the caller's contract).
        unsafe { _mm_stream_si128(d, v) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_every_line_exactly() {
        let src: Vec<u8> = (0..4096 + 7).map(|i| (i * 31 % 251) as u8).collect();
        let mut dst = vec![0u8; 4096 + 128];
        let base = dst.as_mut_ptr();
        let aligned = base.wrapping_add(base.align_offset(64));
        let offset = aligned as usize - base as usize;
        // SAFETY: 64-aligned, 4096 bytes inside `dst`; the source is a separate buffer, read
        // from an unaligned start.
        unsafe { copy_lines_nt(aligned, src[7..].as_ptr(), 4096) };
        super::super::sfence();
        assert_eq!(&dst[offset..offset + 4096], &src[7..]);
        assert!(dst[..offset].iter().all(|&b| b == 0));
        assert!(dst[offset + 4096..].iter().all(|&b| b == 0));
    }
}
