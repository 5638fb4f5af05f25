//! Software prefetch hints for the layers above, which hold no `unsafe`: a prefetch loads a line
//! toward the cache and changes nothing else. It cannot fault — not on an unmapped address and
//! not on a poisoned line (DESIGN.md's measured facts: prefetch raises no SIGBUS on emulated
//! poison) — so these functions are safe for any address. `advise_huge_pages` asks the kernel to
//! back a range of fresh anonymous memory with huge pages: advice only, it changes no byte.
//! `fill_in_parallel` writes a large fresh vector on several threads, so the kernel's clearing
//! of its pages, and the writes, are shared by every core.

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

/// Extend the empty `vec` to `len` values made by `init`, written on up to `threads` threads
/// (this one among them), in contiguous shares (all on this thread when `threads` ≤ 1, or when
/// no other can be started). For a large allocation that is
/// still fresh memory: the thread that first writes a page takes its fault, and with it the
/// kernel's clearing of the page, so that cost is shared as well as the writes. On this kind of
/// VM the clearing runs at ~1 GB/s per thread (docs/performance.md).
///
/// # Panics
/// If `vec` is not empty or holds less than `len` of capacity; if `init` panics (the values
/// already written are then leaked, not dropped).
pub fn fill_in_parallel<T, F>(vec: &mut Vec<T>, len: usize, threads: usize, init: F)
where
    T: Send,
    F: Fn() -> T + Sync,
{
    assert!(vec.is_empty() && vec.capacity() >= len, "an empty vector with room for {len}");
    let spare = &mut vec.spare_capacity_mut()[..len];
    let fill = |part: &mut [std::mem::MaybeUninit<T>]| {
        for slot in part {
            slot.write(init());
        }
    };
    if threads <= 1 || len < 2 {
        fill(spare);
    } else {
        // Shares are taken from a common queue by this thread and the ones it starts, so a
        // thread that cannot be started leaves its shares to the others.
        let shares = parking_lot::Mutex::new(spare.chunks_mut(len.div_ceil(threads)));
        let work = || {
            while let Some(part) = shares.lock().next() {
                fill(part);
            }
        };
        std::thread::scope(|scope| {
            for _ in 1..threads {
                let _ = std::thread::Builder::new().spawn_scoped(scope, work);
            }
            work();
        });
    }
    // SAFETY: the first `len` values of the spare capacity were all written above (every share
    // was taken from the queue and filled, by this thread or one the scope joined; a panic in
    // any would have unwound out of the scope before this line), and `len` ≤ the capacity
    // (asserted).
    unsafe { vec.set_len(len) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vector_filled_in_parallel_holds_every_value_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        for (len, threads) in [(0, 4), (1, 4), (7, 1), (1000, 2), (1001, 3), (4096, 8)] {
            let made = AtomicUsize::new(0);
            let mut vec: Vec<(usize, Vec<u8>)> = Vec::with_capacity(len + 5);
            fill_in_parallel(&mut vec, len, threads, || {
                let n = made.fetch_add(1, Ordering::Relaxed);
                (n, vec![n as u8; 3])
            });
            assert_eq!(vec.len(), len, "{len} on {threads}");
            assert_eq!(made.load(Ordering::Relaxed), len);
            let mut seen: Vec<usize> = vec.iter().map(|(n, _)| *n).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..len).collect::<Vec<_>>(), "each value made once");
            assert!(vec.iter().all(|(n, bytes)| bytes == &vec![*n as u8; 3]));
        }
    }

    #[test]
    #[should_panic(expected = "an empty vector")]
    fn a_vector_too_small_is_refused() {
        let mut vec: Vec<u64> = Vec::with_capacity(2);
        fill_in_parallel(&mut vec, 10, 2, || 0);
    }

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
