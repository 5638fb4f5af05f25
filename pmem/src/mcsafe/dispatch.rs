//! Which copy routine a read uses: the process-wide [`CopyVariant`], the CPU facts and the
//! handler's readiness, packed in one byte so a clean read pays a single atomic load for them.
//!
//! INVARIANT: the `READY` bit is set only after the SIGBUS handler is installed and the CPU bits
//! are filled in; until then every read takes the cold path that does both.

use std::sync::atomic::{AtomicU8, Ordering};

use super::call::Routine;
use super::cpu::CopyCpu;
use super::handler::ensure_handler;
use crate::limits::PAGE_SIZE;

/// Which copy routine `read_safe` uses; a process-wide setting (for the benchmark's sweep and
/// for forcing the fragile copy on parts the CPU model check does not know).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum CopyVariant {
    /// By CPU and copy shape: fragile on the Intel parts that need it, else `rep movsb` for
    /// large copies whose `(dst - src) mod 4096` is at least 64, else the vector copy.
    #[default]
    Auto = 0,
    /// Always `rep movsb`.
    RepMovsb = 1,
    /// Always the vector copy (AVX2 32-byte loads; the 8-byte loop where AVX2 is missing).
    Vector = 2,
    /// Always the 8-byte-load loop that never crosses a cache line in one load.
    Fragile = 3,
}

const VARIANT_MASK: u8 = 0b0011;
const AVX2: u8 = 0b0100;
const FRAGILE: u8 = 0b1000;
const READY: u8 = 0b1000_0000;

/// Variant bits, CPU bits and `READY`.
static DISPATCH: AtomicU8 = AtomicU8::new(CopyVariant::Auto as u8);

/// Choose the copy routine for every later `read_safe` in the process.
pub fn set_copy_variant(variant: CopyVariant) {
    let bits = variant as u8;
    // The closure always returns Some, so the update cannot fail.
    let _ = DISPATCH
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| Some((d & !VARIANT_MASK) | bits));
}

/// The copy routine setting in force.
pub fn copy_variant() -> CopyVariant {
    variant_of(DISPATCH.load(Ordering::Relaxed))
}

fn variant_of(bits: u8) -> CopyVariant {
    match bits & VARIANT_MASK {
        1 => CopyVariant::RepMovsb,
        2 => CopyVariant::Vector,
        3 => CopyVariant::Fragile,
        _ => CopyVariant::Auto,
    }
}

/// `rep movsb` pays a start-up cost; below this the vector copy is faster. Measured on the Zen 4
/// VM: at 2 KiB `rep movsb` reached 0.63–0.72x memcpy, the vector copy 0.81–1.03x; from 4 KiB up
/// both are within noise of memcpy (0.9–1.2x) when `(dst - src) mod 4096 >= 64`.
pub(crate) const MOVSB_MIN_BYTES: usize = 4096;
/// `rep movsb` is 10–30x slower than a vector copy when `(dst - src) mod 4096` is below this
/// (AMD Zen, measured in DESIGN.md).
pub(crate) const MOVSB_MIN_DISTANCE: usize = 64;

/// A snapshot of the dispatch byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dispatch(u8);

impl Dispatch {
    /// The current dispatch; installs the handler and reads the CPU on first use. One load
    /// (Acquire, a plain `mov` on x86-64, so the handler's saved state is visible) after that.
    #[inline]
    pub(crate) fn load() -> Self {
        let bits = DISPATCH.load(Ordering::Acquire);
        if bits & READY != 0 { Dispatch(bits) } else { Self::prepare() }
    }

    #[cold]
    #[inline(never)]
    fn prepare() -> Self {
        let installed = ensure_handler();
        debug_assert!(installed.is_ok(), "SIGBUS handler unavailable: {installed:?}");
        let cpu = CopyCpu::detect();
        let mut bits = if cpu.avx2 { AVX2 } else { 0 } | if cpu.fragile { FRAGILE } else { 0 };
        // Without the handler a fault kills the process as it would without mcstore; stay
        // un-ready so later reads retry the installation.
        if installed.is_ok() {
            bits |= READY;
        }
        Dispatch(DISPATCH.fetch_or(bits, Ordering::AcqRel) | bits)
    }

    #[cfg(test)]
    fn with(variant: CopyVariant, cpu: CopyCpu) -> Self {
        let cpu_bits = if cpu.avx2 { AVX2 } else { 0 } | if cpu.fragile { FRAGILE } else { 0 };
        Dispatch(variant as u8 | cpu_bits | READY)
    }

    /// `Auto` on an AVX2 CPU that needs no fragile copy: `call::copy_auto` makes the same choice
    /// as [`Dispatch::routine`] inside the routine.
    #[inline(always)]
    pub(crate) fn is_auto_avx2(self) -> bool {
        self.0 & (VARIANT_MASK | AVX2 | FRAGILE) == AVX2
    }

    /// The routine for a copy of `len` bytes from `src` to `dst`.
    #[inline(always)]
    pub(crate) fn routine(self, dst: usize, src: usize, len: usize) -> Routine {
        // The common case first, in two compares: `Auto` on an AVX2 CPU that needs no fragile
        // copy. A short copy never looks at the distance.
        if self.is_auto_avx2() {
            if len < MOVSB_MIN_BYTES {
                return Routine::Avx2;
            }
            let distance = dst.wrapping_sub(src) % PAGE_SIZE as usize;
            return if distance >= MOVSB_MIN_DISTANCE { Routine::Movsb } else { Routine::Avx2 };
        }
        self.routine_by_variant(dst, src, len)
    }

    /// [`Dispatch::routine`] for every other setting (the fragile CPUs' `Auto` among them, so it
    /// stays inline too).
    #[inline(always)]
    fn routine_by_variant(self, dst: usize, src: usize, len: usize) -> Routine {
        let vector = if self.0 & AVX2 != 0 { Routine::Avx2 } else { Routine::Fragile };
        match variant_of(self.0) {
            CopyVariant::Auto if self.0 & FRAGILE != 0 => Routine::Fragile,
            CopyVariant::Auto => {
                let distance = dst.wrapping_sub(src) % PAGE_SIZE as usize;
                if len >= MOVSB_MIN_BYTES && distance >= MOVSB_MIN_DISTANCE {
                    Routine::Movsb
                } else {
                    vector
                }
            }
            CopyVariant::RepMovsb => Routine::Movsb,
            CopyVariant::Vector => vector,
            CopyVariant::Fragile => Routine::Fragile,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_picks_by_shape() {
        let plain = CopyCpu { avx2: true, fragile: false };
        let pick =
            |variant, cpu, dst, src, len| Dispatch::with(variant, cpu).routine(dst, src, len);
        let big = 64 * 1024;
        let auto = CopyVariant::Auto;
        assert_eq!(pick(auto, plain, 0x10_0000, 0x20_0000, big), Routine::Avx2);
        assert_eq!(pick(auto, plain, 0x10_0040, 0x20_0000, big), Routine::Movsb);
        assert_eq!(pick(auto, plain, 0x10_0001, 0x20_0000, big), Routine::Avx2);
        assert_eq!(pick(auto, plain, 0x10_0000, 0x20_0001, big), Routine::Movsb);
        assert_eq!(pick(auto, plain, 0x10_0040, 0x20_0000, 256), Routine::Avx2);
        assert_eq!(pick(CopyVariant::RepMovsb, plain, 0x10_0000, 0x20_0000, 8), Routine::Movsb);
        assert_eq!(pick(CopyVariant::Fragile, plain, 0x10_0040, 0, big), Routine::Fragile);
        let fragile = CopyCpu { avx2: true, fragile: true };
        assert_eq!(pick(auto, fragile, 0x10_0040, 0x20_0000, big), Routine::Fragile);
        let old = CopyCpu { avx2: false, fragile: false };
        assert_eq!(pick(CopyVariant::Vector, old, 0, 0x40, 100), Routine::Fragile);
        assert_eq!(pick(auto, old, 0, 0x40, 100), Routine::Fragile);
    }

    #[test]
    fn variant_bits_round_trip() {
        for v in
            [CopyVariant::Auto, CopyVariant::RepMovsb, CopyVariant::Vector, CopyVariant::Fragile]
        {
            assert_eq!(variant_of(Dispatch::with(v, CopyCpu { avx2: true, fragile: true }).0), v);
        }
        let loaded = Dispatch::load();
        assert_ne!(loaded.0 & READY, 0);
        assert_eq!(loaded.0 & AVX2 != 0, CopyCpu::detect().avx2);
    }
}
