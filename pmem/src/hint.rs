//! Software prefetch hints for the layers above, which hold no `unsafe`: a prefetch loads a line
//! toward the cache and changes nothing else. It cannot fault — not on an unmapped address and
//! not on a poisoned line (DESIGN.md's measured facts: prefetch raises no SIGBUS on emulated
//! poison) — so these functions are safe for any address. `advise_huge_pages` asks the kernel to
//! back a range of fresh anonymous memory with huge pages: advice only, it changes no byte.

#![allow(unsafe_code)]

/// Start loading the cache line that holds the start of `value`.
#[inline(always)]
pub fn prefetch<T: ?Sized>(value: &T) {
    prefetch_address((value as *const T).cast::<u8>());
}

/// Start loading the cache line at `address`, whatever it points to (mapped or not).
#[inline(always)]
pub fn prefetch_address(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` is a hint: it reads no architectural state, writes nothing and
    // raises no exception for any address; SSE is part of the x86-64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            address.cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// Huge page size the advice is rounded to (x86-64's 2 MiB transparent huge page).
const HUGE_PAGE_BYTES: usize = 2 << 20;

/// Ask the kernel to back the whole 2 MiB pages inside `[address, address + len)` with
/// transparent huge pages (`MADV_HUGEPAGE`), for a large allocation about to be touched for the
/// first time: one fault per 2 MiB instead of per 4 KiB, and fewer TLB misses after. A hint:
/// ignored where the kernel does not allow it, and harmless for any range (mapped or not).
/// Returns whether the kernel accepted the advice (false when no whole huge page fits).
pub fn advise_huge_pages(address: *const u8, len: usize) -> bool {
    let start = (address as usize).next_multiple_of(HUGE_PAGE_BYTES);
    let end = (address as usize).saturating_add(len) / HUGE_PAGE_BYTES * HUGE_PAGE_BYTES;
    if end <= start {
        return false;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `MADV_HUGEPAGE` only changes how the kernel backs pages of the range later
        // (the flag is kept on the mapping): it reads and writes no byte of it, keeps every
        // mapping's contents and protections, and fails with an error code (no signal) on a
        // range that is not mapped. No Rust-visible state changes.
        let rc =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        rc == 0
    }
    #[cfg(not(target_os = "linux"))]
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetching_any_address_changes_nothing() {
        let values = vec![7u64; 64];
        prefetch(&values[3]);
        prefetch(&values[..]);
        prefetch_address(std::ptr::null());
        prefetch_address(usize::MAX as *const u8);
        assert!(values.iter().all(|&v| v == 7));
    }

    #[test]
    fn huge_page_advice_keeps_the_bytes_and_skips_short_ranges() {
        let mut values = vec![3u8; 5 * HUGE_PAGE_BYTES];
        values[HUGE_PAGE_BYTES * 2] = 9;
        assert!(!advise_huge_pages(values.as_ptr(), 4096), "no whole huge page in the range");
        assert!(!advise_huge_pages(std::ptr::null(), 0));
        // Advice on a live allocation (accepted or not, as the kernel is configured).
        let _ = advise_huge_pages(values.as_ptr(), values.len());
        assert_eq!(values[HUGE_PAGE_BYTES * 2], 9);
        assert_eq!(values.iter().map(|&v| usize::from(v)).sum::<usize>(), 3 * values.len() + 6);
    }
}
