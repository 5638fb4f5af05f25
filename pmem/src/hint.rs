//! Software prefetch hints for the layers above, which hold no `unsafe`: a prefetch loads a line
//! toward the cache and changes nothing else. It cannot fault — not on an unmapped address and
//! not on a poisoned line (DESIGN.md's measured facts: prefetch raises no SIGBUS on emulated
//! poison) — so these functions are safe for any address.

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
}
